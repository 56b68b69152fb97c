// The operations of the wire protocol, and every fact about each, in one
// table (docs/PROTOCOL.md sections 2.2 and 3). The opcode enum, each
// operation's name on the wire, the key scopes that may call it, whether it
// posts, whether it may be part of a batch, how the server handles it and
// the member actor's request kind it becomes all come from
// LOYALTY_OPERATIONS below, so adding an operation is one row here; every
// switch over opcode has no `default:` and the build treats a missing case
// as an error (-Werror=switch, cmake/Warnings.cmake), so the compiler names
// each place that must learn about it.
#pragma once

#include "config/request_kind.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace loyalty::io {

// How the server handles an operation.
enum class op_family : std::uint8_t {
  none,        // not an operation (a request whose `op` could not be read)
  connection,  // hello: the connection itself
  member,      // a member actor carries it out (request_kind); may post
  partner,     // a partner's actor carries it out, then the member's
  member_read, // the server answers from the ledger: a member's or an entry's past
  report,      // coalition reports: reads over every member, off the io thread
  stream,      // the journal as a stream or pages: subscribe, journal
  admin,       // the engine itself: verify, stats, reload, backup
  batch,       // several member operations in one frame
};

// Who may call an operation, besides admin keys (which may call all).
// docs/PROTOCOL.md section 2.2 is this column in prose.
enum access : std::uint8_t {
  by_read = 1,     // a `read` key
  by_brand = 2,    // a `brand:CODE` key (then limited to its brand)
  by_partner = 4,  // a `partner:CODE` key (then limited to its partner)
  by_keyless = 8,  // any client of an engine with no keys configured
  by_any = by_read | by_brand | by_partner | by_keyless,
};

// An operation no actor carries out.
inline constexpr std::optional<request_kind> no_kind{};

// X(name, family, access, posts, batchable, the actor's request kind or no_kind)
// posts: the operation writes journal entries (all but enroll and expire
// take a `txn`, docs/PROTOCOL.md section 5).
// The order is the opcode numbering (never on the wire: ops are names there).
#define LOYALTY_OPERATIONS(X)                                                                                            \
  X(none,               none,        0,                                  false, false, no_kind)                          \
  X(hello,              connection,  by_any,                             false, false, no_kind)                          \
  X(enroll,             member,      by_brand | by_keyless,              true,  true,  request_kind::enroll)             \
  X(earn,               member,      by_brand | by_keyless,              true,  true,  request_kind::earn)               \
  X(redeem,             member,      by_brand | by_keyless,              true,  true,  request_kind::redeem)             \
  X(balance,            member,      by_any,                             false, true,  request_kind::balance)            \
  X(verify,             admin,       by_read | by_keyless,               false, false, no_kind)                          \
  X(stats,              admin,       by_read | by_keyless,               false, false, no_kind)                          \
  X(batch,              batch,       by_any,                             false, false, no_kind)                          \
  X(event,              member,      by_brand | by_keyless,              true,  true,  request_kind::event)              \
  X(hold,               member,      by_brand | by_keyless,              true,  true,  request_kind::hold)               \
  X(capture,            member,      by_brand | by_keyless,              true,  true,  request_kind::capture)            \
  X(release,            member,      by_brand | by_keyless,              true,  true,  request_kind::release)            \
  X(redeem_reward,      member,      by_brand | by_keyless,              true,  true,  request_kind::redeem_reward)      \
  X(refund,             member,      by_brand | by_keyless,              true,  true,  request_kind::refund)             \
  X(reverse_redemption, member,      by_brand | by_partner | by_keyless, true,  true,  request_kind::reverse_redemption) \
  X(adjust,             member,      0,                                  true,  true,  request_kind::adjust)             \
  X(transfer,           member,      by_brand | by_keyless,              true,  true,  request_kind::transfer)           \
  X(link_alias,         member,      by_brand | by_keyless,              true,  true,  request_kind::link_alias)         \
  X(lookup,             member_read, by_any,                             false, true,  no_kind)                          \
  X(history,            member_read, by_read | by_brand | by_keyless,    false, true,  no_kind)                          \
  X(expire,             member,      0,                                  true,  true,  request_kind::expire)             \
  X(explain,            member_read, by_read | by_brand | by_keyless,    false, true,  no_kind)                          \
  X(reload,             admin,       0,                                  false, false, no_kind)                          \
  X(partner_earn,       partner,     by_partner | by_keyless,            true,  true,  request_kind::partner_earn)       \
  X(partner_burn,       partner,     by_partner | by_keyless,            true,  true,  request_kind::partner_burn)       \
  X(liability,          report,      by_read | by_brand | by_keyless,    false, false, no_kind)                          \
  X(activity,           report,      by_read | by_brand | by_keyless,    false, false, no_kind)                          \
  X(settlement,         report,      by_any,                             false, false, no_kind)                          \
  X(backup,             admin,       0,                                  false, false, no_kind)                          \
  X(consent,            member,      by_brand | by_keyless,              true,  true,  request_kind::consent)            \
  X(subscribe,          stream,      by_read | by_brand | by_keyless,    false, false, no_kind)                          \
  X(quote,              member,      by_read | by_brand | by_keyless,    false, true,  request_kind::quote)              \
  X(report,             report,      by_read | by_brand | by_keyless,    false, false, no_kind)                          \
  X(journal,            stream,      by_read | by_keyless,               false, false, no_kind)                          \
  X(cluster_status,     admin,       by_read | by_keyless,               false, false, no_kind)                          \
  X(cluster_add,        admin,       0,                                  false, false, no_kind)                          \
  X(cluster_remove,     admin,       0,                                  false, false, no_kind)                          \
  X(release_pending,    member,      by_brand | by_keyless,              true,  true,  request_kind::release_pending) \
  X(household_join,     member,      by_brand | by_keyless,              true,  true,  request_kind::household_join)     \
  X(household_leave,    member,      by_brand | by_keyless,              true,  true,  request_kind::household_leave)    \
  X(household_dissolve, member,      by_keyless,                         true,  true,  request_kind::household_dissolve) \
  X(household,          member,      by_read | by_brand | by_keyless,    false, true,  request_kind::household) \
  X(erase,              member,      0,                                  true,  false, request_kind::erase) \
  X(block,              member,      0,                                  true,  true,  request_kind::block)              \
  X(unblock,            member,      0,                                  true,  true,  request_kind::unblock)            \
  X(risk_report,        report,      by_read | by_keyless,               false, false, no_kind)

enum class opcode : std::uint8_t {
#define LOYALTY_OP_ENUM(name, family, access, posts, batchable, kind) name,
  LOYALTY_OPERATIONS(LOYALTY_OP_ENUM)
#undef LOYALTY_OP_ENUM
};

struct op_info {
  opcode op;
  std::string_view name;
  op_family family;
  std::uint8_t access;  // access bits
  bool posts;
  bool batchable;
  std::optional<request_kind> kind;  // the member actor's request kind (member and partner families)
};


inline constexpr auto operations = std::to_array<op_info>({
#define LOYALTY_OP_ROW(name, family, access, posts, batchable, kind)                                      \
  {opcode::name, #name, op_family::family, static_cast<std::uint8_t>(access), posts, batchable,           \
   kind},
  LOYALTY_OPERATIONS(LOYALTY_OP_ROW)
#undef LOYALTY_OP_ROW
});

inline constexpr std::size_t opcode_count = operations.size();

// Every row sits at its opcode's index; the member and partner families,
// and only they, name a request kind; only what a member actor does may
// post or be batched besides the server's member reads.
constexpr bool operations_table_is_consistent() {
  for (std::size_t i = 0; i < operations.size(); ++i) {
    const auto& o = operations[i];
    const bool actor = o.family == op_family::member || o.family == op_family::partner;
    if (static_cast<std::size_t>(o.op) != i || actor != o.kind.has_value())
      return false;
    if (o.batchable && !actor && o.family != op_family::member_read)
      return false;
    if (o.posts && !actor)
      return false;
  }
  return true;
}
static_assert(operations_table_is_consistent());

// An opcode outside the table (a value no decoder produces) reads as none.
[[nodiscard]] constexpr const op_info& info(opcode op) noexcept {
  const auto i = static_cast<std::size_t>(op);
  return operations[i < operations.size() ? i : 0];
}
// The operation's name on the wire ("none" for none).
[[nodiscard]] constexpr const char* to_string(opcode op) noexcept { return info(op).name.data(); }
// The operation of a wire name; none if there is none (`none` itself is not a name on the wire).
[[nodiscard]] constexpr opcode opcode_from(std::string_view name) noexcept {
  for (std::size_t i = 1; i < operations.size(); ++i)
    if (operations[i].name == name)
      return operations[i].op;
  return opcode::none;
}

} // namespace loyalty::io

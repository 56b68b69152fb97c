// Error codes of loyaltyd: one list, shared by the ledger, the actors and the
// wire protocol, because every one of them ends up in a response frame.
// The numeric values are part of the wire contract (docs/PROTOCOL.md): never
// renumber, only append.
#pragma once

#include <cstdint>
#include <string_view>

namespace loyalty {

enum class errc : std::uint16_t {
  ok = 0,
  // -- framing and protocol (1..19) -----------------------------------------
  malformed_frame = 1,      // payload is not one valid msgpack value; connection closed
  frame_too_large = 2,      // length prefix over frame_bytes_max; connection closed
  hello_required = 3,       // first request on a connection must be `hello`
  unsupported_version = 4,  // hello asked for a protocol version we do not speak
  unknown_operation = 5,    // `op` names no operation
  missing_field = 6,        // a required field is absent
  wrong_type = 7,           // a field has the wrong msgpack type
  invalid_argument = 8,     // a field has the right type but an impossible value
  batch_too_large = 9,      // a batch carries more than batch_ops_max operations
  duplicate_id = 10,        // a request with this id is still in flight on the connection: not executed
  // -- amounts (20..29) -----------------------------------------------------
  invalid_amount = 20,      // zero or negative amount / points
  amount_overflow = 21,     // an amount, product or balance would leave int64
  currency_mismatch = 22,   // earn currency is not the program currency
  // -- members and policy (30..49) -------------------------------------------
  unknown_member = 30,      // member id was never enrolled
  member_exists = 31,       // enroll of an id that is already enrolled
  unknown_brand = 32,       // brand code not in the program
  insufficient_points = 33, // redeem of more points than available
  // issue 3
  unknown_reward = 34,      // reward code not in the catalog
  out_of_stock = 35,        // the reward's stock is used up
  unknown_hold = 36,        // capture / release of a hold that is not open (closed, expired, never opened)
  unknown_txn = 37,         // refund / reverse_redemption names a txn id that is not this member's earn / redemption
  already_reversed = 38,    // the referenced purchase is fully refunded, or the redemption already reversed
  negative_balance_limit = 39, // a refund or debit would leave a debt above the program's negative_balance_max
  alias_taken = 40,         // link_alias of an alias that belongs to another member
  unknown_alias = 41,       // no member has this alias
  unknown_event = 42,       // no event rule answers this event kind
  same_member = 43,         // transfer to the sending member itself
  // issue 4
  invalid_program = 44,     // reload: the program file has errors; the running version stays
  unknown_partner = 45,     // partner code not in the program (never configured, or removed)
  partner_suspended = 46,   // the partner is suspended: no new partner operations; its history stays
  // issue 19 item 2
  limit_exceeded = 47,      // the request would go past one of the program's [limits]: nothing posted
  member_blocked = 48,      // an admin blocked the member: it cannot earn or spend; reads still work
  // issue 19 item 3
  member_erased = 49,       // the member was erased (erase): nothing more is posted for it; reads show no personal value
  // -- idempotency (50..59) -----------------------------------------------------
  txn_id_conflict = 50,     // client txn id already used with different content
  // -- capacity and engine state (60..79) -------------------------------------
  overloaded = 60,          // in-flight limit reached: retry later, nothing posted
  too_many_connections = 61,// connection limit reached; connection closed
  unavailable = 62,         // the member actor stopped before answering; retry with the same txn id
  busy = 63,                // an admin operation of this kind is already running
  rate_limited = 64,        // the key's requests-per-second limit is reached: retry later, nothing posted
  storage_full = 65,        // the ledger's storage is (nearly) full: nothing posted; reads still served
  timed_out = 66,           // a connection limit (idle, frame read) expired; connection closed
  not_leader = 67,          // a cluster node that does not lead: send to the leader (`leader`); nothing posted
  internal_error = 70,      // a bug; nothing was posted
  // -- authorization (80..89) -------------------------------------------------
  not_authorized = 80,      // no valid key in hello, or the key's scope does not allow this operation
  // -- households, erasure and pending points (90..99) -----------------------
  household_full = 90,        // household_join of a household that has the program's max_members
  already_in_household = 91,  // household_join of a member that is in a household
  not_in_household = 92,      // household_leave of a member that is in none
  unknown_household = 93,     // a household with no members (never joined, or dissolved)
  nothing_pending = 95,     // release_pending of a purchase none of whose points are still pending
};

// Stable snake_case name, as it appears in the `error` field of a response.
[[nodiscard]] constexpr std::string_view to_string(errc e) noexcept {
  switch (e) {
    case errc::ok: return "ok";
    case errc::malformed_frame: return "malformed_frame";
    case errc::frame_too_large: return "frame_too_large";
    case errc::hello_required: return "hello_required";
    case errc::unsupported_version: return "unsupported_version";
    case errc::unknown_operation: return "unknown_operation";
    case errc::missing_field: return "missing_field";
    case errc::wrong_type: return "wrong_type";
    case errc::invalid_argument: return "invalid_argument";
    case errc::batch_too_large: return "batch_too_large";
    case errc::duplicate_id: return "duplicate_id";
    case errc::invalid_amount: return "invalid_amount";
    case errc::amount_overflow: return "amount_overflow";
    case errc::currency_mismatch: return "currency_mismatch";
    case errc::unknown_member: return "unknown_member";
    case errc::member_exists: return "member_exists";
    case errc::unknown_brand: return "unknown_brand";
    case errc::insufficient_points: return "insufficient_points";
    case errc::unknown_reward: return "unknown_reward";
    case errc::out_of_stock: return "out_of_stock";
    case errc::unknown_hold: return "unknown_hold";
    case errc::unknown_txn: return "unknown_txn";
    case errc::already_reversed: return "already_reversed";
    case errc::negative_balance_limit: return "negative_balance_limit";
    case errc::alias_taken: return "alias_taken";
    case errc::unknown_alias: return "unknown_alias";
    case errc::unknown_event: return "unknown_event";
    case errc::same_member: return "same_member";
    case errc::invalid_program: return "invalid_program";
    case errc::unknown_partner: return "unknown_partner";
    case errc::partner_suspended: return "partner_suspended";
    case errc::member_erased: return "member_erased";
    case errc::limit_exceeded: return "limit_exceeded";
    case errc::member_blocked: return "member_blocked";
    case errc::txn_id_conflict: return "txn_id_conflict";
    case errc::overloaded: return "overloaded";
    case errc::too_many_connections: return "too_many_connections";
    case errc::unavailable: return "unavailable";
    case errc::busy: return "busy";
    case errc::rate_limited: return "rate_limited";
    case errc::storage_full: return "storage_full";
    case errc::timed_out: return "timed_out";
    case errc::not_leader: return "not_leader";
    case errc::internal_error: return "internal_error";
    case errc::not_authorized: return "not_authorized";
    case errc::nothing_pending: return "nothing_pending";
    case errc::household_full: return "household_full";
    case errc::already_in_household: return "already_in_household";
    case errc::not_in_household: return "not_in_household";
    case errc::unknown_household: return "unknown_household";
  }
  return "internal_error";
}

// Default human-readable message for a code (responses may carry a more
// specific one).
[[nodiscard]] std::string_view default_message(errc e) noexcept;

// Parses a name produced by to_string; returns internal_error for unknown names.
[[nodiscard]] errc errc_from_string(std::string_view name) noexcept;

} // namespace loyalty

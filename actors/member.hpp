// Member actors: one per member, owning its book (point lots, holds, tier
// track, rule counters) and its account balance. All operations on one member
// are serialized by its mailbox, so there are no locks and no double spend:
// two carts cannot both spend the same points. The actor evaluates the
// program's policy (actors/policy.hpp) on its tentative book — committed
// entries plus the ones it handed to the ledger writer and that are not yet
// committed — turns the decision into one journal entry (postings and detail
// records, ledger/records.hpp) and hands it to the writer, which answers the
// client after the group commit. If the writer does not post an entry the
// actor had applied (a txn id replayed while in flight), the actor reloads
// its book from the ledger: the book is always a fold of the journal.
#pragma once

#include "actors/directory.hpp"
#include "actors/policy.hpp"
#include "config/clock.hpp"
#include "ledger/ledger.hpp"

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/behavior.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace loyalty::actors {

class partner_registry;
class household_registry;

// Program-wide totals that caps and stock are checked against: points given
// by each rule with a cap_total, units taken of each reward with a limited
// stock. Reservations are made atomically by member actors (any thread)
// before they hand an entry to the writer, and undone if the writer does not
// post it; the committed values are the ledger's counters table, from which
// these are loaded at start.
class program_counters {
public:
  void load(const program& prog, const std::vector<std::pair<std::uint64_t, std::int64_t>>& committed);
  // Null unless the rule has a cap_total / the reward a limited stock.
  [[nodiscard]] std::atomic<std::int64_t>* rule(const program& prog, std::uint32_t rule_id) const noexcept;
  [[nodiscard]] std::atomic<std::int64_t>* reward(const program& prog, std::uint32_t reward_id) const noexcept;
  // The same by the rule's position in the program (no lookup).
  [[nodiscard]] std::atomic<std::int64_t>* rule_at(const program& prog, std::size_t i) const noexcept {
    return rules_ && prog.rules[i].cap_total > 0 ? &rules_[i] : nullptr;
  }
  // Undoes the reservations an entry's details made (writer refused it).
  void undo(const program& prog, const std::vector<ledger::entry_detail>& details) const noexcept;

  // Issue 19 item 6: what rule i (a period budget's) gave in `day` and
  // `month` (program-local, ledger::rule_budget_period numbering): 0 for a
  // period after the one it last counted, INT64_MAX for one before it (the
  // clock went back: a closed period's budget is not reopened).
  void read_periods(const program& prog, std::size_t i, std::uint32_t day, std::uint32_t month,
                    rule_total& out) const;
  // Takes up to `want` points of rule i's day and month budgets now; returns
  // what it took (0: why says which budget is used up).
  [[nodiscard]] std::int64_t reserve_periods(const program& prog, std::size_t i, std::uint32_t day,
                                             std::uint32_t month, std::int64_t want, rule_why& why) const;
  // Gives `points` of rule_id's budget of that period back (a reservation
  // not posted, a refund's clawback), if it is still the period counted.
  void give_back(const program& prog, std::uint32_t rule_id, ledger::rule_budget_period period,
                 std::uint32_t number, std::int64_t points) const;
  // This becomes a private copy of `live`'s values now: a dry run checks
  // caps and stock against it and reserves in it, so the live totals never
  // move (docs/PROTOCOL.md, "Sandbox keys").
  void copy_of(const program& prog, const program_counters& live);

private:
  std::unique_ptr<std::atomic<std::int64_t>[]> rules_, rewards_;  // by position in the program
  // A rule's use of its period budgets: only the latest day and month, the
  // only ones an earn can count against (the engine's clock moves forward).
  // A mutex, not atomics: the day and its points move together. Only rules
  // with a period budget ever take it.
  struct period_use {
    mutable std::mutex m;
    std::uint32_t day = 0, month = 0;
    std::int64_t day_points = 0, month_points = 0;
  };
  std::unique_ptr<period_use[]> periods_;  // by position in the program
};

// One version of the program, with the program-wide counters of its caps
// and stock. A reload publishes a new one; the old ones stay alive (the
// engine keeps every version it ran: they are small and reloads rare), so a
// message being handled with an older snapshot never dangles.
struct policy_state {
  program prog;
  program_counters counters;
  std::uint32_t version = 0;  // recorded in the ledger (ledger::record_policy); 0 in unit tests
};

// Everything actors share. Owned by the engine; outlives every actor.
struct engine_context {
  std::atomic<const policy_state*> policy{nullptr};
  ledger::ledger* ledger = nullptr;
  const loyalty::clock* clock = nullptr;
  directory* dir = nullptr;
  std::vector<std::pair<std::uint32_t, caf::actor>> brand_actors;  // (brand id, its actor)
  partner_registry* partners = nullptr;  // partner actors (actors/partner.hpp)
  caf::actor root;                        // supervises members that are not enrolled
  household_registry* households = nullptr;  // member -> household (actors/household.hpp)
  caf::actor household_coordinator;          // carries out household operations and pooled spends

  // The current program version (a snapshot: take it once per message).
  [[nodiscard]] const policy_state& now() const noexcept { return *policy.load(std::memory_order_acquire); }
};

// Answers one request exactly once. If the request is dropped unanswered (the
// member actor was killed with it in its mailbox), the destructor answers
// `unavailable`, so a client never waits forever; a retry with the same txn
// id is safe.
class reply_guard {
public:
  reply_guard(std::shared_ptr<ledger::completion_target> target, std::uint64_t tag)
    : target_(std::move(target)), tag_(tag) {}
  ~reply_guard();
  reply_guard(const reply_guard&) = delete;
  reply_guard& operator=(const reply_guard&) = delete;

  // Answers now with an error (or a complete outcome).
  void answer(errc code);
  void answer(ledger::outcome o);
  // Hands the answer over to the ledger writer: fills op.target / op.tag.
  void hand_over(ledger::op& o);

private:
  std::shared_ptr<ledger::completion_target> target_;
  std::uint64_t tag_;
  bool answered_ = false;
};

// A completion target that drops outcomes: for entries the engine posts on
// its own (expiry, hold release on expiry) that no client waits for.
[[nodiscard]] std::shared_ptr<ledger::completion_target> discard_target();

struct member_request {
  request_kind kind = request_kind::balance;
  std::uint64_t member = 0;
  std::uint32_t brand_id = 0;          // enroll, earn, event, hold, adjust (0 = member's home brand)
  std::uint8_t txn_bytes = 0;
  std::array<char, limits::txn_id_bytes_max> txn{};
  std::uint64_t hash = 0;              // canonical content hash (request_content_hash)
  std::int64_t amount_minor = 0;       // earn: total; refund: amount (0 = by items / full)
  std::uint64_t occurred_at_us = 0;    // earn / event / refund; 0 = now
  std::int64_t points = 0;             // redeem, hold, capture (0 = all), adjust (signed), transfer
  std::vector<line_item> items;        // earn / refund
  std::string channel, store, event_kind;
  std::uint64_t ttl_s = 0;             // hold; 0 = program default
  std::uint32_t hold_id = 0;           // capture / release
  std::uint32_t reward_id = 0;         // redeem_reward
  std::string ref;                     // refund / reverse_redemption: the referenced txn id
  std::string reason;                  // adjust, block, unblock
  std::uint64_t to = 0;                // transfer
  std::string alias;                   // link_alias
  std::uint64_t as_of_us = 0;          // expire; 0 = now
  std::uint32_t key_id = 0;            // the API key that sent it, journaled with its entries
  std::uint32_t scope_brand = 0;       // a brand key's brand: the request may act for it only (0 = any)
  std::uint32_t partner_id = 0;        // partner_earn / partner_burn; a partner key's partner on reverse_redemption
  std::uint32_t scope_partner = 0;     // a partner key's partner: the request may act for it only (0 = any)
  std::uint32_t consent_mask = 0;      // consent: the channels it sets (config/consent.hpp bits)
  std::uint32_t consent_values = 0;    // consent: their new values (bits within consent_mask)
  std::string source;                  // consent: where the member gave it (journaled as the entry's note)
  bool dry_run = false;                // a sandbox key's posting request: evaluated and answered, never posted
  std::uint64_t household = 0;         // household_join / household_dissolve / household; the household
                                       //   coordinator fills it for the entries it has members post
  bool pooled = false;                 // redeem / balance sent by the household coordinator: not forwarded to it
  bool household_move = false;         // a transfer the household coordinator asked for (entry household_move)
  std::shared_ptr<reply_guard> reply;

  [[nodiscard]] std::string_view txn_id() const noexcept { return {txn.data(), txn_bytes}; }
};

// What `balance` answers, computed by the member actor from its book and
// carried to the server as the barrier op's note.
struct balance_note {
  balance_view view;
  std::int64_t lifetime = 0;
  std::uint32_t tier = 0;
  std::uint32_t brand_id = 0;
  std::int64_t qualifying = 0;         // metric over the window now
  std::int64_t to_next_tier = 0;       // 0 at the top tier
  std::int64_t debt = 0;
  std::uint32_t consents = 0;          // consent channel bits now
  ledger::risk_record risk{};          // breaches, flagged, blocked (issue 19 item 2)
  tier_outlook outlook;                // how long `tier` holds without a change (policy.hpp)
};

// What `quote` answers (with the earn's rule_line records as the outcome's
// details): the member now, and what the earn would leave.
struct quote_note {
  std::int64_t points = 0;             // the earn's points: the sum of its lines
  std::int64_t balance = 0;            // points account now (after the housekeeping due now)
  std::int64_t balance_after = 0;      // ... after the earn
  std::uint32_t tier = 0;              // tier now (a due review applied)
  std::uint32_t tier_after = 0;        // as the earn would journal it (journal_header.tier_after)
  std::int64_t qualifying_after = 0;   // tier metric over the window after the earn
  std::int64_t to_next_tier = 0;       // metric still missing above tier_after; 0 at the top tier
};

// What `household` (and `balance` of a household member) answers.
struct household_note {
  std::uint64_t household = 0;
  std::int64_t available = 0;  // the members' available points together (saturates at INT64_MAX)
  std::vector<std::pair<std::uint64_t, std::int64_t>> members;  // (member, its available points)
};

// The note of an outcome (ledger::outcome::note) a member actor produces:
// an error's message, or what balance / expire / quote answer.
struct answer_note {
  std::string message;
  bool has_balance = false;
  balance_note balance;
  bool has_quote = false;
  quote_note quote;
  std::int64_t expired = 0;   // expire: points expired
  std::uint64_t members = 0;  // expire: members looked at
  // earn (when the program explains earns: explains_earns) and quote: what
  // became of each purchase rule (the answer's `rules`)
  bool has_rules = false;
  std::vector<rule_verdict> rules;
  bool has_household = false;
  household_note household;
};

// Whether an earn's answer says what became of each purchase rule: under
// rule_resolution best or with a period budget; otherwise only a quote does,
// so that a plain earn allocates nothing for it.
[[nodiscard]] bool explains_earns(const program& prog) noexcept;

// A transfer's entry on its way from the sender's actor to the receiver's,
// which adds its own records and hands it to the writer.
struct transfer_leg {
  ledger::op op;
  std::uint64_t sender = 0;
  std::int64_t points = 0;
  std::vector<ledger::lot_take> takes;  // from the sender's lots: one receiver lot each
};

struct member_data {
  std::uint64_t id = 0;
  std::uint64_t due_at_us = UINT64_MAX;  // housekeeping is due then (a hold or lot expires, inactivity)
  bool loaded = false;
  bool enrolled = false;
  std::uint32_t brand_id = 0;   // home brand
  std::int64_t balance = 0;     // member_points account: committed + in flight
  ledger::member_book book;     // committed + in flight
  // Holds opened since the book was loaded, by id: their book record has no
  // source_seq (a book learns seqs only when it is folded from the ledger),
  // so the entry that closes one names this cell, where the writer puts the
  // hold entry's seq, for its ref (ledger::op::seq_to).
  std::vector<std::pair<std::uint32_t, std::shared_ptr<std::atomic<std::uint64_t>>>> hold_seqs;
};

struct member_state {
  std::shared_ptr<member_slot> slot;
  engine_context* ctx = nullptr;
  member_data data;
  std::uint32_t policy_version = 0;  // of the program snapshot the current message is handled with
  // Txn ids of entries handed to the writer since the member last had none
  // in flight: a retry of one of them is answered by the writer (replay),
  // never applied twice to the book.
  std::vector<std::string> inflight_txns;
  // Entries handed to the writer since the book was loaded (a passivation
  // stores the book when they are many: limits::book_checkpoint_entries).
  std::uint32_t posted = 0;
  // The directory's count of live member actors, counted down when the
  // state is destroyed (the actor ended); set by directory::spawn_member.
  struct live_token {
    std::atomic<std::int64_t>* count = nullptr;
    live_token() = default;
    live_token(const live_token&) = delete;
    live_token& operator=(const live_token&) = delete;
    ~live_token() {
      if (count != nullptr) {
        count->fetch_sub(1, std::memory_order_acq_rel);
        count->notify_all();
      }
    }
  } live;
  static inline const char* name = "member";
};

// Answers a request refused before any member state was looked at (a
// partner's status): through the ledger writer when it carries a txn id, so
// a retry of an earlier success still gets its original answer (or
// txn_id_conflict); at once otherwise. Any thread.
void refuse_request(engine_context& ctx, member_request& r, errc code, std::string message);

// Enrolls r.member (r.kind == enroll) without an actor: for a member with
// no slot but `slot`, just made by directory::enroll, which names it as its
// ops' owner. Looks the member up in the ledger (member_exists), prepares the
// enrollment with the same code as the actor, and hands it to the writer.
void enroll_without_actor(engine_context& ctx, const std::shared_ptr<member_slot>& slot, member_request& r);

// The actor's behavior. Spawned by the directory with lazy_init.
caf::behavior member_actor(caf::stateful_actor<member_state>* self,
                           std::shared_ptr<member_slot> slot, engine_context* ctx);

// -- plain transitions ----------------------------------------------------------------
// Called by the actor (and by tests directly). Each checks a request against
// the member's data at `now_us`, and on ok fills `op` (to submit) and applies
// it to `m` (tentative state); on an error nothing changed.
struct env {
  const program& prog;
  const ledger::ledger* ledger;  // may be null where no refund, reversal or alias is prepared
  const program_counters* counters;  // may be null (no caps enforced across members)
  std::uint64_t now_us;
  std::uint32_t policy_version = 0;  // journaled with every entry prepared under it
};

// The request's entries are appended to `ops`; the last one carries the answer.
[[nodiscard]] errc prepare(member_data& m, const env& e, const member_request& r, std::vector<ledger::op>& ops,
                           std::string& message);

// Housekeeping due at `as_of_us` before any operation: releases holds past
// their expiry, then expires lots past theirs (and all lots after
// lifecycle.inactivity_days without activity). Appends one op per entry to
// post (none if nothing is due) and applies them to `m`.
void housekeeping(member_data& m, const env& e, std::uint64_t as_of_us, std::vector<ledger::op>& ops);

// What `balance` shows at now: the view of the book, with a tier review that
// is due applied (not journaled).
[[nodiscard]] balance_note balance_of_member(const member_data& m, const program& prog, std::uint64_t now);

// A quote: what prepare() of an earn with r's fields would do at e.now_us —
// after the housekeeping due then, with the same checks and errors, rule
// lines, caps (read, never reserved) and tier review — computed by the
// earn's own code, changing neither m nor the program counters. On ok:
// `out`, and the earn's rule_line records in `lines`.
[[nodiscard]] errc quote_earn(const member_data& m, const env& e, const member_request& r, quote_note& out,
                              std::vector<ledger::entry_detail>& lines, std::vector<rule_verdict>& rules,
                              std::string& message);

// A transfer in two steps: the sender takes the points out of its lots and
// fills the leg; the receiver adds one lot per take (same brand and expiry)
// and hands the entry to the writer.
// A transfer past a [limits] bound is refused limit_exceeded, with the
// limit_breach entry to journal (if one is due) appended to `ops`.
[[nodiscard]] errc prepare_transfer(member_data& m, const env& e, const member_request& r, transfer_leg& leg,
                                    std::vector<ledger::op>& ops, std::string& message);
[[nodiscard]] errc accept_transfer(member_data& m, const env& e, transfer_leg& leg);

// The expiry sweep's notice: lots with points that expire after as_of and
// within the program's expiry_notice_days of it, later than any lot noticed
// before, go into one expiry_notice entry (no postings; up to 100 lots, the
// soonest first; the rest at the next sweep). Appends it to `ops` and
// applies it to `m`; nothing when notices are off or no lot is due one.
void expiry_notices(member_data& m, const env& e, std::uint64_t as_of, std::vector<ledger::op>& ops);
// Journals a tier_notice when the member's tier drops within the program's
// tier_policy.warning_days if nothing else happens, once per drop (the
// book's tier_warned_day); the expiry sweep calls it after expiry_notices.
void tier_notices(member_data& m, const env& e, std::uint64_t as_of, std::vector<ledger::op>& ops);

// When housekeeping next has work for a book (UINT64_MAX: never).
[[nodiscard]] std::uint64_t next_due(const member_data& m, const program& prog) noexcept;

} // namespace loyalty::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(loyalty::actors::member_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(loyalty::actors::transfer_leg)

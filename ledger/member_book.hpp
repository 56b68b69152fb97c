// A member's book: everything the program's policy needs to know about one
// member beyond its account balances — point lots with their availability and
// expiry, open holds, the tier qualification track and per-rule counters.
//
// Plain data (STYLE 10): member actors keep one as their state, policy
// functions (actors/policy.hpp) read and change it, and the ledger persists it
// in the member's record. It is always a fold of the member's journal entries
// (docs/ARCHITECTURE.md): nothing in it is known only to memory.
//
// Units: points are int64; instants are microseconds since the Unix epoch;
// days are days since 1970-01-01 in program-local time.
#pragma once

#include "config/consent.hpp"
#include "ledger/records.hpp"

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace loyalty::ledger {

// Points earned by one transaction (or transferred in, or restored), with
// their own availability and expiry. Spending consumes the lot that expires
// soonest first (never-expiring lots last), among available lots.
struct lot {
  std::uint32_t id;               // per member, assigned in journal order from next_lot_id
  std::uint32_t brand_id;         // brand that issued the points
  std::int64_t points;            // remaining, >= 0
  std::int64_t original;          // as created
  std::uint64_t earned_at_us;     // occurred-at of the earning transaction
  std::uint64_t available_at_us;  // pending until then (0 = at once)
  std::uint64_t expires_at_us;    // expires at this instant (0 = never)
  std::uint64_t source_seq;       // journal entry that created the lot (0 until committed)
};
static_assert(sizeof(lot) == 56);
static_assert(std::is_trivially_copyable_v<lot>);

// Points taken out of one lot, remembered so that they can go back to it
// (hold release, redemption reversal) with the lot's original expiry.
struct lot_take {
  std::uint32_t lot_id;
  std::uint32_t brand_id;
  std::int64_t points;            // > 0
  std::uint64_t expires_at_us;    // of the lot, so a pruned lot can be recreated
  std::uint64_t earned_at_us;
};
static_assert(sizeof(lot_take) == 32);
static_assert(std::is_trivially_copyable_v<lot_take>);

// Points reserved for a pending purchase: out of their lots, not spendable,
// until captured (spent) or released (back to the lots). A hold past its
// expiry is released by the engine.
struct hold {
  std::uint32_t id;               // per member, from next_hold_id
  std::uint32_t brand_id;         // brand where it will be captured
  std::int64_t points;            // > 0
  std::uint64_t opened_at_us;
  std::uint64_t expires_at_us;
  std::uint64_t source_seq;       // journal entry that opened it
  std::vector<lot_take> takes;    // where the points came from; sums to points
};

// Qualifying metric (points or spend, per program) booked on one local day.
struct qualify_bucket {
  std::uint32_t day;
  std::uint32_t reserved;         // zero
  std::int64_t amount;            // may drop through refunds, never below 0
};
static_assert(sizeof(qualify_bucket) == 16);
static_assert(std::is_trivially_copyable_v<qualify_bucket>);

// Tier qualification: upgrades are immediate, downgrades happen at review.
// effective tier = max(secured, tier reached by the metric over the window),
// where `secured` is what the last review granted; a review that lowers it
// takes effect grace days later (pending_tier / pending_at_us).
struct tier_track {
  std::uint32_t secured = 0;            // tier index granted at the last review
  std::uint32_t pending_tier = 0;       // lower tier a review decided, if pending_at_us != 0
  std::uint64_t pending_at_us = 0;      // when the pending downgrade takes effect
  std::uint64_t reviewed_through_us = 0;// end of the last review period processed
  std::vector<qualify_bucket> buckets;  // ascending by day; older than needed are pruned
};

// What one rule has given this member: for per-member caps.
struct rule_counter {
  std::uint32_t rule_id;
  std::uint32_t uses;
  std::int64_t points;
};
static_assert(sizeof(rule_counter) == 16);
static_assert(std::is_trivially_copyable_v<rule_counter>);

// The UTC day of a tier drop instant, plus 1 (0: no notice): what the book
// remembers of the drops tier notices told of (one notice per drop).
[[nodiscard]] constexpr std::uint32_t tier_notice_day(std::uint64_t drop_at_us) noexcept {
  return static_cast<std::uint32_t>(drop_at_us / 86'400'000'000ull) + 1;
}

// Velocity windows (issue 19 item 2): what the member did in the current
// program-local clock hour and local day, counted by its velocity records,
// and which limits it breached in each (one limit_breach entry per limit and
// window at most). Fixed windows: a record of a later hour starts a new hour
// (and, of a later day, a new day); a record of an earlier hour than the
// current one is not counted (the clock went back).
struct velocity_windows {
  std::uint32_t hour = 0;          // local hour (hours since the local epoch) of in_hour
  std::uint32_t day = 0;           // local day (hour / 24) of in_day
  std::int64_t in_hour[velocity_metrics] = {};  // by velocity_metric
  std::int64_t in_day[velocity_metrics] = {};
  std::uint32_t hour_breached = 0;  // bit (1 << metric): a breach of its hour limit journaled this hour
  std::uint32_t day_breached = 0;   // ... of its day limit this day
};
static_assert(sizeof(velocity_windows) == 112);
static_assert(std::is_trivially_copyable_v<velocity_windows>);

// Moves the windows to local hour `hour` (a later hour resets the hour's
// counts, a later day the day's too). False: `hour` is before the current
// hour, nothing moved.
[[nodiscard]] bool roll_windows(velocity_windows& w, std::uint32_t hour) noexcept;
// The value of `metric` in `window` as of local hour `hour` (0 if the
// window is over).
[[nodiscard]] std::int64_t window_value(const velocity_windows& w, velocity_metric metric, velocity_window window,
                                        std::uint32_t hour) noexcept;
// Whether a breach of `metric`'s limit in `window` was journaled in the
// window containing `hour`.
[[nodiscard]] bool window_breached(const velocity_windows& w, velocity_metric metric, velocity_window window,
                                   std::uint32_t hour) noexcept;

// The member's risk state after a risk record (breach, block, unblock) of an
// entry with this seq and occurred-at time. The fold and the ledger writer
// (its risk table) both call it, so they agree.
void apply_risk(risk_record& r, const entry_detail& d, std::uint64_t seq, std::uint64_t occurred_at_us) noexcept;

struct member_book {
  std::uint64_t enrolled_at_us = 0;
  std::uint64_t last_activity_us = 0;    // inactivity expiry counts from here
  std::uint64_t first_purchase_seq = 0;  // 0 until the first earn committed
  std::int64_t lifetime_earned = 0;      // points ever credited by earn rules, net of clawbacks
  std::int64_t debt = 0;                 // points owed after a refund of spent points (>= 0)
  std::uint32_t next_lot_id = 1;
  std::uint32_t next_hold_id = 1;
  std::uint32_t consents = 0;            // consent channel bits now (config/consent.hpp)
  std::uint64_t noticed_through_us = 0;  // the latest lot expiry an expiry notice told of
  std::uint32_t tier_warned_day = 0;     // tier_notice_day of the latest tier drop a tier notice told of
  std::vector<lot> lots;                 // points > 0 only; ascending id
  std::vector<hold> holds;               // open holds; ascending id
  tier_track tier;
  std::vector<rule_counter> counters;    // ascending rule_id
  // Issue 19 item 2: this hour's and day's counts, 0 or 1 of them: made by
  // the member's first velocity record or breach (only while [limits] is
  // configured), so a book without limits carries an empty vector (24 bytes)
  // instead of 112 bytes of counts (a million active members). Read through
  // velocity_of, written through velocity_for.
  std::vector<velocity_windows> velocity;
  risk_record risk{};                    // breaches, flagged, blocked (records.hpp)
};

// The member's velocity windows (all zero if it has none).
[[nodiscard]] const velocity_windows& velocity_of(const member_book& book) noexcept;
// ... made if it has none.
[[nodiscard]] velocity_windows& velocity_for(member_book& book);

// -- the fold ----------------------------------------------------------------------
// Applies the detail records of one journal entry that belong to this member
// (counterparty == false: records without detail_counterparty; true: those
// with it) in order. Deterministic: the member actor (tentative state), the
// ledger writer (committed state) and recovery (journal replay) all call it
// and reach the same book. `seq` is the entry's seq (0 while not yet
// committed: lots and holds then carry source_seq 0), `occurred_at_us` its
// occurred-at time.
// Returns false, with `why` set, if a record does not fit the book (a lot or
// hold that is not there, more points taken than a lot holds, an id reused):
// the entry must be refused, and the book is then unspecified (partly
// applied) — callers apply to a copy when they must survive that, or reload.
[[nodiscard]] bool apply_details(member_book& book, std::span<const entry_detail> records, bool counterparty,
                                 std::uint64_t seq, std::uint64_t occurred_at_us, std::string& why);

// The lot that new points (of `brand`, available at `available_at_us`,
// expiring at `expires_at_us`, credited by an entry that occurred at
// `occurred_at_us`) join instead of making a lot of their own: the member's
// newest lot, if it is of the same brand and expiry, both are available when
// the entry occurs or both are pending until the same instant, the expiry
// sweep has not told the member of that lot yet, and the sum stays in int64.
// nullptr: a new lot. The member actor decides with it (lot_top_up) and the
// fold checks the record against it.
[[nodiscard]] const lot* top_up_target(const member_book& book, std::uint32_t brand, std::int64_t points,
                                       std::uint64_t available_at_us, std::uint64_t expires_at_us,
                                       std::uint64_t occurred_at_us) noexcept;

// Adds `delta` to the bucket of `day` (creating it), keeping buckets ascending;
// a bucket never goes below zero (a refund of a purchase whose qualifying
// amount already dropped out of a pruned bucket removes what is left).
void add_qualifying(tier_track& track, std::uint32_t day, std::int64_t delta);

// Sum of the lots' remaining points, or of the holds' points; false if the
// sum would leave int64.
[[nodiscard]] bool sum_lots(const member_book& book, std::int64_t& out) noexcept;
[[nodiscard]] bool sum_holds(const member_book& book, std::int64_t& out) noexcept;

// -- encoding -------------------------------------------------------------------------
// The book as stored in the ledger (little-endian fixed layouts, see
// member_book.cpp). decode_book returns false for a value that is not a
// well-formed book (wrong size or version, counts that do not add up).
void encode_book(const member_book& book, std::vector<char>& out);
[[nodiscard]] bool decode_book(const char* data, std::size_t size, member_book& out);

} // namespace loyalty::ledger

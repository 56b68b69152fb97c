// Policy evaluation: pure functions over the program (config) and a member's
// plain book. Member actors call these; tests call them directly.
//
// Rounding: every earn is a list of lines (base, tier bonus, one per rule),
// each floored once in unsigned 128-bit arithmetic (evaluate_earn). A result
// above INT64_MAX is amount_overflow, never a wrap.
#pragma once

#include "config/errc.hpp"
#include "config/program.hpp"
#include "config/request_kind.hpp"
#include "ledger/ledger.hpp"
#include "ledger/member_book.hpp"

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace loyalty::actors {


struct points_result {
  errc code = errc::ok;
  std::int64_t points = 0;
};

// The kinds of request a member actor carries out (config/request_kind.hpp).
using loyalty::request_kind;

// Canonical content hash of a request, stored with its journal entry: the
// request kind, then each content field in a fixed order, integers as 8
// little-endian bytes and strings as their 8-byte length then bytes, hashed
// with ledger::content_hash as they are added (no buffer). A reused txn id
// whose hash differs is a txn_id_conflict. Never change the encoding.
class content_hasher {
public:
  explicit content_hasher(request_kind kind) { add(static_cast<std::uint64_t>(kind)); }
  content_hasher& add(std::uint64_t v);
  content_hasher& add(std::int64_t v) { return add(static_cast<std::uint64_t>(v)); }
  content_hasher& add(std::string_view s);
  [[nodiscard]] std::uint64_t value() const noexcept { return h_; }

private:
  std::uint64_t h_ = ledger::content_hash_basis;
};

// =============================================================================
// Issue 3: policy as data. Everything below is pure: it reads the program and
// a member's plain book (ledger/member_book.hpp), takes time as a parameter
// and never reads a clock. Instants are microseconds since the Unix epoch
// (UTC); "local" means utc + program.utc_offset_minutes (a fixed offset, no
// time zone database); days are days since 1970-01-01 in local time. Points
// and amounts are int64; every product is formed in unsigned 128-bit
// arithmetic and floored once per rule line. A result outside int64 is
// errc::amount_overflow.
// =============================================================================

// -- calendar ----------------------------------------------------------------------

// A proleptic Gregorian date; month 1..12, day 1..31.
struct civil_date {
  std::int64_t year = 1970;
  std::uint32_t month = 1;
  std::uint32_t day = 1;
};

// Days since 1970-01-01 of a date, and back (Howard Hinnant's algorithms).
// Exact for every date in int64 range that this engine can meet.
[[nodiscard]] std::int64_t days_from_civil(std::int64_t year, std::uint32_t month,
                                           std::uint32_t day) noexcept;
[[nodiscard]] civil_date civil_from_days(std::int64_t days) noexcept;

// Local wall-clock time of an instant, in microseconds since the local epoch
// (negative before it). Instants are clamped to 2^62 us (year ~148,000).
[[nodiscard]] std::int64_t local_us(const program& prog, std::uint64_t utc_us) noexcept;
// Local day of an instant; instants before the local epoch are day 0.
[[nodiscard]] std::uint32_t local_day(const program& prog, std::uint64_t utc_us) noexcept;
// Local weekday of an instant, 0 = Monday ... 6 = Sunday (matches time_window
// bit numbering).
[[nodiscard]] std::uint32_t local_weekday(const program& prog, std::uint64_t utc_us) noexcept;
// Local hour of an instant, 0..23.
[[nodiscard]] std::uint32_t local_hour(const program& prog, std::uint64_t utc_us) noexcept;
// The UTC instant of local midnight starting `day` (0 if that is before the
// Unix epoch).
[[nodiscard]] std::uint64_t local_day_start(const program& prog, std::uint32_t day) noexcept;
// First UTC instant of the local calendar month / quarter / year containing
// utc_us, and the first UTC instant after it (= start of the next period).
// period == none returns utc_us itself (nothing to round to).
[[nodiscard]] std::uint64_t period_start(const program& prog, std::uint64_t utc_us,
                                         calendar_period period) noexcept;
[[nodiscard]] std::uint64_t period_end(const program& prog, std::uint64_t utc_us,
                                       calendar_period period) noexcept;

// Whether a rule's time window admits an instant: from_us <= utc_us < to_us
// (0 = open; the loader stores both as UTC instants, docs/PROGRAM.md section
// 9), the bit of the local weekday is set, hour_from <= local hour < hour_to.
[[nodiscard]] bool window_matches(const program& prog, const time_window& w,
                                  std::uint64_t utc_us) noexcept;

// -- lots ------------------------------------------------------------------------------

// When a lot earned at earned_at_us expires: 0 (never) if
// lifecycle.expiry_days == 0; else earned_at + expiry_days, then, unless
// expiry_rounding is none, moved to period_end of that instant (the end of
// its local month / quarter / year). Saturates at UINT64_MAX (never reached).
[[nodiscard]] std::uint64_t lot_expiry(const program& prog, std::uint64_t earned_at_us) noexcept;
// When points of a purchase that occurred at occurred_at_us become spendable:
// occurred_at + lifecycle.pending_days (the return window). Saturating.
[[nodiscard]] std::uint64_t lot_available_at(const program& prog,
                                             std::uint64_t occurred_at_us) noexcept;
// A lot is expired from its expiry instant on (now >= expires_at, 0 = never),
// and available when its pending time has come and it is not expired.
[[nodiscard]] bool lot_expired(const ledger::lot& l, std::uint64_t now_us) noexcept;
[[nodiscard]] bool lot_available(const ledger::lot& l, std::uint64_t now_us) noexcept;

// -- earn evaluation -----------------------------------------------------------

// One line of a basket. Amounts are minor currency units, >= 0. quantity is
// informational (rules match on sku / category and amount only).
struct line_item {
  std::string sku;
  std::string category;
  std::int64_t quantity = 1;
  std::int64_t amount = 0;
};

// A purchase as the policy sees it. amount is the total (> 0); if lines are
// given they must sum to it. No lines = the whole amount is one line with an
// empty sku and category (so only rules without sku / category lists match).
struct basket {
  std::uint32_t brand_id = 0;
  std::string channel;
  std::string store;
  std::uint64_t occurred_at_us = 0;
  std::vector<line_item> lines;
  std::int64_t amount = 0;
};

// The journal's kind of a rule line (ledger/records.hpp, rule_line detail):
// base = amount x brand rate; tier = amount x rate x (tier multiplier - 1);
// rule = an earn rule (purchase, first_purchase, enroll or event).
using line_kind = ledger::rule_line_kind;

// Points from one source, as they are journaled (and later clawed back).
struct rule_line {
  line_kind kind = line_kind::base;
  std::uint32_t rule_id = 0;         // 0 for base and tier
  std::int64_t points = 0;           // after caps; negative in clawbacks
  std::int64_t matched_amount = 0;   // amount the line was computed from (0 for events)
};

// Issue 19 item 6: what became of one purchase rule in an earn, for the
// answer's `rules` (docs/PROTOCOL.md, earn). Names on the wire: why_name.
enum class rule_why : std::uint8_t {
  counted,       // rule_resolution sum: it gave points
  best,          // rule_resolution best: it gave the most points, the earn's one rule line
  outscored,     // best: it would have given points, but `by` gave more (or as many, ranking first)
  not_matched,   // brands, channels, window, items, min_amount, or the first purchase was made
  no_points,     // it matched, but its points on this amount floor to 0
  uses_max,      // uses_per_member_max reached for this member
  member_cap,    // cap_per_member reached for this member
  budget_total,  // cap_total used up (all members)
  budget_day,    // budget_per_day used up today (program-local day of the engine's clock)
  budget_month,  // budget_per_month used up this calendar month
};
[[nodiscard]] std::string_view why_name(rule_why why) noexcept;

struct rule_verdict {
  std::uint32_t rule_id = 0;
  rule_why why = rule_why::not_matched;
  std::uint32_t by = 0;             // outscored: the winning rule's id
  std::int32_t priority = 0;        // the rule's, for ranking
  std::int64_t points = 0;          // after caps and budgets: given (counted, best) or offered (outscored)
  std::int64_t matched_amount = 0;  // as its rule_line would carry
};

// The result of an evaluation. On any code but ok, lines is empty and the
// sums are 0.
struct earn_decision {
  errc code = errc::ok;
  std::vector<rule_line> lines;
  std::int64_t points = 0;      // sum of lines
  std::int64_t qualifying = 0;  // tier metric delta: points (qualifying_points) or amount (spend)
  // One per purchase and first_purchase rule, in program order, when the
  // caller asked for them (`explain`) or the program resolves `best` (which
  // ranks them); else empty, so an earn allocates nothing for them.
  std::vector<rule_verdict> verdicts;
};

// Points a rule has given all members: in all (for cap_total), and in the
// current program-local day and month of the engine's clock (for the
// period budgets; the caller knows which day that is). A read-only view the
// caller assembles (any order); a rule missing from it has given 0.
struct rule_total {
  std::uint32_t rule_id = 0;
  std::int64_t points = 0;
  std::int64_t day_points = 0;
  std::int64_t month_points = 0;
};
using rule_totals = std::span<const rule_total>;

// Points for a purchase by a member whose effective tier is `tier` (index
// into prog.tiers; out of range = no tier line). Lines, in this order:
//  - base: floor(amount x brand rate), always present (even if 0);
//  - tier: floor(amount x rate x (m - 1)) if the tier multiplier m > 1;
//  - one per matching purchase rule, and per matching first_purchase rule
//    while book.first_purchase_seq == 0 and the member has no counter for
//    it, in program order. A rule matches if brands / channels admit the
//    basket, its window admits occurred_at, at least one line item matches
//    its skus / categories and the matched amount >= min_amount. Multiplier
//    rules give floor(matched x rate x (m - 1)), bonus rules bonus_points.
//    Caps (cap_per_member against the member's counter, cap_total against
//    `totals`, uses_per_member_max) limit the points; a rule line left with
//    0 points is not emitted (and so uses nothing).
//    Budgets (budget_per_day / _month against `totals`) limit them alike.
//  - prog.resolution == best: of those rule lines only the one with the
//    most points (after caps and budgets) is kept; a tie goes to the higher
//    priority, then to the earlier rule. A rule whose caps or budgets leave
//    it nothing does not compete, so the next best wins.
// qualifying = total points, or basket.amount for the spend metric.
// explain: fill d.verdicts (always filled under best).
// Errors: unknown_brand; invalid_amount (amount <= 0 or a negative line);
// invalid_argument (lines do not sum to amount); amount_overflow.
[[nodiscard]] earn_decision evaluate_earn(const program& prog, const ledger::member_book& book,
                                          std::uint32_t tier, const basket& b, rule_totals totals,
                                          bool explain = false);

// Under best: the verdict that should win now that the current winner got
// nothing (its budget ran out between evaluation and reservation): the best
// ranked `outscored` one, or null. Ranking as in evaluate_earn.
[[nodiscard]] rule_verdict* runner_up(std::span<rule_verdict> verdicts) noexcept;

// Where and when a non-purchase transaction (event, enrollment) happened:
// rules' brands, channels and time window apply to them too.
struct occasion {
  std::uint32_t brand_id = 0;   // 0 = none: matches only rules without brands
  std::string_view channel;     // empty = none: matches only rules without channels
  std::uint64_t at_us = 0;      // occurred-at (UTC)
};

// Bonus points for a non-purchase event of `event_kind`: one line per event
// rule answering that kind whose brands, channels and window admit the
// occasion, with bonus_points limited by the rule's caps (as in
// evaluate_earn). All matching rules capped or outside their window is ok
// with no lines. qualifying is 0 (events do not qualify for tiers).
// Errors: invalid_argument if no rule answers event_kind; amount_overflow.
[[nodiscard]] earn_decision evaluate_event(const program& prog, const ledger::member_book& book,
                                           std::string_view event_kind, const occasion& when,
                                           rule_totals totals);

// Welcome points of a member enrolling: one line per enroll rule whose
// brands, channels and window admit the occasion, limited by cap_total (a new
// member has no counters). qualifying is 0. Errors: amount_overflow.
[[nodiscard]] earn_decision evaluate_enroll(const program& prog, const occasion& when,
                                            rule_totals totals);

// -- spending ----------------------------------------------------------------------

struct spend_plan {
  errc code = errc::ok;
  std::vector<ledger::lot_take> takes;  // sums to the points asked; empty on error
};

// Which lots `points` (> 0) come out of at now_us: available lots only
// (lot_available), soonest expiry first, never-expiring lots last, ties by
// lot id. The book is not changed; the caller applies the takes.
// Errors: invalid_amount (points <= 0); insufficient_points if the available
// sum minus book.debt is below points (debt is owed before anything is spent).
[[nodiscard]] spend_plan plan_spend(const ledger::member_book& book, std::uint64_t now_us,
                                    std::int64_t points);

// A member's points at now_us, by state. available = available lots - debt
// (may be negative); pending = lots not yet available and not expired; held =
// points in open holds; expired_unswept = points in lots past expiry that the
// sweeper has not yet posted. next_expiry_at_us is the soonest expiry among
// unexpired lots (available or pending; 0 = none) and next_expiry_points the
// points expiring at that instant. code is amount_overflow if a sum leaves
// int64 (then the sums are 0). Inactivity expiry is not considered here.
struct balance_view {
  errc code = errc::ok;
  std::int64_t available = 0;
  std::int64_t pending = 0;
  std::int64_t held = 0;
  std::int64_t expired_unswept = 0;
  std::int64_t next_expiry_points = 0;
  std::uint64_t next_expiry_at_us = 0;
};
[[nodiscard]] balance_view balance_of(const ledger::member_book& book, std::uint64_t now_us) noexcept;

// -- tiers ------------------------------------------------------------------------------

// Qualifying deltas are booked with ledger::add_qualifying (the fold of the
// `qualify` detail): pass earn_decision::qualifying and the local_day of the
// purchase's occurred-at; for a refund, the (negative) delta and the day of
// the original purchase, so that it lowers the bucket it was booked in.

// The metric at at_us: the sum of buckets with day in
// (local_day(at) - window_days, local_day(at)]; with window_days == 0 every
// bucket up to local_day(at). Saturates at INT64_MAX.
[[nodiscard]] std::int64_t metric_over_window(const program& prog, const ledger::tier_track& track,
                                              std::uint64_t at_us) noexcept;

// The outcome of the reviews due at a given time, as the tier_track fields
// to journal in one tier_state detail (ledger/records.hpp). changed == false:
// nothing to journal (no review was due, nothing to apply or prune).
struct tier_review {
  bool changed = false;
  std::uint32_t secured = 0;
  std::uint32_t pending_tier = 0;
  std::uint64_t pending_at_us = 0;
  std::uint64_t reviewed_through_us = 0;
  std::uint32_t prune_before_day = 0;  // buckets with day < this are dropped
};

// Runs every review that is due at now_us, oldest first, then applies a due
// downgrade and computes the pruning; the track is not changed (journal the
// result, or apply_tier_review it). Call it before effective_tier on each
// member activity; it is cheap when nothing is due.
//  - Review periods are the local calendar periods of tier_rules.review. The
//    first one reviewed is the period containing the member's first bucket
//    (or now_us if there is none): while reviewed_through_us == 0 the result
//    anchors reviewed_through_us at that period's start (changed == true).
//  - For each period end E with reviewed_through < E <= now: a downgrade due
//    by E is applied; new = tier_for(metric_over_window at E - 1us); if new
//    >= secured (= the effective tier at E, as the metric gives new), secured
//    = new and a pending downgrade is cancelled; else the downgrade to new is
//    pending at E + grace_days (a downgrade already pending keeps its date and
//    takes the new tier, so a grace longer than a period cannot postpone it
//    for ever). reviewed_through = E.
//  - review == none: no reviews, secured never changes (tiers drop only as
//    the metric drops).
//  - prune_before_day = local_day(now) - window_days + 1: neither the current
//    window nor any later review can reach an older bucket (window 0: 0).
[[nodiscard]] tier_review review_tier(const program& prog, const ledger::tier_track& track,
                                      std::uint64_t now_us);

// Applies a review to a track as the ledger fold applies its tier_state
// detail: the four fields, then buckets before prune_before_day are dropped.
void apply_tier_review(ledger::tier_track& track, const tier_review& review);

// The member's tier at now_us: max(secured, or pending_tier once
// pending_at_us <= now; tier_for(metric_over_window(now))). Upgrades by the
// metric count at once; it does not run reviews (see review_tier).
[[nodiscard]] std::uint32_t effective_tier(const program& prog, const ledger::tier_track& track,
                                           std::uint64_t now_us) noexcept;

// How long the member's tier holds if nothing else happens: no purchase, no
// refund. The effective tier (effective_tier) changes only at review period
// ends (a review, or a downgrade it left pending taking effect) and at local
// day starts where a qualifying bucket leaves a rolling window, so the
// outlook steps through those instants in order, running reviews as they
// fall due, and stops at the first one where the tier is lower than now.
// holds_until_us == 0: it does not drop without a change (the lowest tier;
// review "none" with a metric that stays; or a window of 0 days, "since
// enrollment", whose metric never falls). `missing` is what the metric
// lacks at that instant to keep the current tier (>= 0; points or minor
// units of spend, tier_policy.metric).
struct tier_outlook {
  std::uint32_t tier = 0;            // the effective tier now
  std::uint64_t holds_until_us = 0;  // the first instant it is lower; 0 = no end without a change
  std::uint32_t drops_to = 0;        // the tier from then on
  std::int64_t missing = 0;          // metric the current tier lacks at holds_until_us
};
[[nodiscard]] tier_outlook tier_outlook_of(const program& prog, const ledger::tier_track& track,
                                           std::uint64_t now_us);

// -- refunds -------------------------------------------------------------------------

// Clawback of a partial or full refund, proportional to amount. A purchase of
// original_amount A (> 0) earned `original` lines (points >= 0); refunded_before
// R0 (>= 0) was refunded already and refund_now r (> 0) is refunded now, R =
// R0 + r <= A. Returns one line per original line, same order and kind, with
// points = floor(p x (A - R) / A) - floor(p x (A - R0) / A) (<= 0, may be 0)
// and matched_amount = -r: after any sequence of refunds each line keeps
// floor(p x (A - R) / A), so a full refund claws back exactly everything.
// qualifying = the points sum, or -r for the spend metric.
// Errors: invalid_amount (A <= 0, R0 < 0, r <= 0, R > A, a line below 0);
// amount_overflow.
[[nodiscard]] earn_decision refund_lines(const program& prog, std::span<const rule_line> original,
                                         std::int64_t original_amount, std::int64_t refunded_before,
                                         std::int64_t refund_now);

// Clawback of refunded line items. Each original line's refunded matched
// amount R_i is recomputed from the refunded items with evaluate_earn's
// sku / category matching (base and tier lines, and rules no longer in the
// program, match every item), clamped to its matched_amount M_i; the line
// keeps floor(p x (M_i - R_i) / M_i) (M_i == 0: everything once the whole
// purchase is refunded). A = the base line's matched_amount. Returns one line
// per original line with matched_amount = -(R_i now); qualifying as above.
// Errors: invalid_argument (no base line); invalid_amount (an item amount < 0,
// nothing refunded now, refunded total > A, a line's points or matched amount
// below 0); amount_overflow.
[[nodiscard]] earn_decision refund_lines_by_items(const program& prog,
                                                  std::span<const rule_line> original,
                                                  std::span<const line_item> refunded_before,
                                                  std::span<const line_item> refund_now);

// Clawback of one refund of a purchase, given what each of its original lines
// (points p_i >= 0 over matched amount m_i, the base line's m = A) still keeps
// (kept_i, after earlier refunds' clawbacks) and how much of its matched amount
// earlier refunds took (refunded_i); refunded_before R0 of A was refunded.
// Exactly one way of refunding:
//  - refund_amount r > 0: each line is to keep floor(p x (A - R) / A), R = R0 + r;
//  - items (non-empty): each line's refunded matched amount r1_i = refunded_i +
//    the refunded items it matches (as in refund_lines_by_items), at most m_i;
//    it is to keep floor(p x (m_i - r1_i) / m_i); r = the items' total;
//  - neither: the rest of the purchase, r = A - R0.
// Once R == A every line keeps 0, so a purchase refunded in full, in any
// sequence of partial refunds, claws back everything it gave. A line's point
// delta is min(0, target - kept_i): a refund never gives points back.
// matched_amount of each returned line is -(its refunded matched amount now).
// qualifying = the points sum, or -r for the spend metric.
// Errors: already_reversed (R0 == A); invalid_amount (r <= 0, an item
// amount < 0, R > A, inconsistent spans); amount_overflow.
[[nodiscard]] earn_decision refund_clawback(const program& prog, std::span<const rule_line> original,
                                            std::span<const std::int64_t> kept,
                                            std::span<const std::int64_t> refunded,
                                            std::int64_t refunded_before, std::int64_t refund_amount,
                                            std::span<const line_item> items);

// -- velocity limits (issue 19 item 2) ----------------------------------------------------
// Fixed windows: the program-local clock hour and local day of the engine's
// clock when the request is checked (not the request's occurred_at, which a
// client could backdate past a limit). A book keeps the counts of its
// current hour and day only (ledger/member_book.hpp velocity_windows).

// Hours since the local epoch of an instant (0 before it): the window id of
// velocity records; its local day is hour / 24.
[[nodiscard]] std::uint32_t local_hour_index(const program& prog, std::uint64_t utc_us) noexcept;

// The first limit a request would go past, if any.
struct limit_breach {
  bool breached = false;
  ledger::velocity_metric metric = ledger::velocity_metric::earns;
  ledger::velocity_window window = ledger::velocity_window::hour;
  std::int64_t reached = 0;  // the value the request would have taken the metric to
  std::int64_t limit = 0;
};

// Whether one more `count` (earns, redemptions, transfers_out or
// aliases_linked) in local hour `hour`, with `points` (earns: points earned,
// redemptions: points redeemed; else 0), stays within `limits`: each count
// must stay <= its bound, and the points <= theirs, per hour then per day.
[[nodiscard]] limit_breach check_limits(const velocity_limits& limits, const ledger::velocity_windows& w,
                                        std::uint32_t hour, ledger::velocity_metric count,
                                        std::int64_t points) noexcept;

// "earns", "points_earned", ... and "hour" / "day": the names of
// docs/PROGRAM.md [limits] and of the limit_exceeded event.
[[nodiscard]] const char* metric_name(ledger::velocity_metric m) noexcept;
[[nodiscard]] const char* window_name(ledger::velocity_window w) noexcept;

} // namespace loyalty::actors

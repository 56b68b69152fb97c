#include "actors/policy.hpp"

#include "ledger/ledger.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

namespace loyalty::actors {

// =============================================================================
// Issue 3: policy as data.
// =============================================================================

namespace {

__extension__ typedef unsigned __int128 u128;
__extension__ typedef __int128 i128;

constexpr std::int64_t i64_max = std::numeric_limits<std::int64_t>::max();
constexpr std::uint64_t u64_max = std::numeric_limits<std::uint64_t>::max();
constexpr std::int64_t day_us = static_cast<std::int64_t>(us_per_day);
constexpr std::int64_t hour_us = 3'600'000'000;
constexpr std::int64_t minute_us = 60'000'000;
constexpr std::uint64_t instant_max = std::uint64_t{1} << 62;  // year ~148,000

earn_decision failed(errc code) {
  earn_decision d;
  d.code = code;
  return d;
}

// floor(a x n1 x n2 / (d1 x d2)) for a >= 0, or amount_overflow.
points_result mul_div_floor(std::int64_t a, std::uint64_t n1, std::uint64_t n2, std::uint64_t d1,
                            std::uint64_t d2) noexcept {
  if (a < 0)
    return {errc::invalid_amount, 0};
  if (d1 == 0 || d2 == 0)
    return {errc::invalid_argument, 0};
  u128 num = 0;
  if (__builtin_mul_overflow(static_cast<u128>(a), static_cast<u128>(n1), &num) ||
      __builtin_mul_overflow(num, static_cast<u128>(n2), &num))
    return {errc::amount_overflow, 0};
  u128 q = num / (static_cast<u128>(d1) * d2);  // (2^64 - 1)^2 fits
  if (q > static_cast<u128>(i64_max))
    return {errc::amount_overflow, 0};
  return {errc::ok, static_cast<std::int64_t>(q)};
}

// Points a brand gives for `amount`, scaled by the factor xn / xd (1/1 for
// the base line, m - 1 for a tier or rule multiplier m): proportional
// floor(amount x rate x factor), or in whole steps floor(whole steps x
// rate.num x factor). One floor per line.
points_result brand_points(const brand_def& brand, std::int64_t amount, std::uint64_t xn, std::uint64_t xd) noexcept {
  const rational& rate = brand.earn_rate;
  if (brand.earn_in_steps) {
    if (amount < 0 || rate.den == 0)
      return {amount < 0 ? errc::invalid_amount : errc::invalid_argument, 0};
    return mul_div_floor(amount / static_cast<std::int64_t>(rate.den), rate.num, xn, 1, xd);
  }
  return mul_div_floor(amount, rate.num, xn, rate.den, xd);
}

// floor(p x kept / whole) for 0 <= kept <= whole, whole > 0: never above p.
std::int64_t keep_share(std::int64_t p, std::int64_t kept, std::int64_t whole) noexcept {
  return static_cast<std::int64_t>(static_cast<u128>(p) * static_cast<u128>(kept) /
                                   static_cast<u128>(whole));
}

std::int64_t floor_div(std::int64_t a, std::int64_t b) noexcept {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

std::uint64_t sat_add(std::uint64_t a, std::uint64_t b) noexcept {
  std::uint64_t r = 0;
  return __builtin_add_overflow(a, b, &r) ? u64_max : r;
}

std::uint64_t days_us(std::uint32_t days) noexcept {
  std::uint64_t r = 0;
  return __builtin_mul_overflow(static_cast<std::uint64_t>(days), us_per_day, &r) ? u64_max : r;
}

// Fits a 128-bit sum into int64, or reports overflow.
bool narrow(i128 v, std::int64_t& out) noexcept {
  if (v > i64_max || v < std::numeric_limits<std::int64_t>::min())
    return false;
  out = static_cast<std::int64_t>(v);
  return true;
}

// Signed local day of an instant (not clamped).
std::int64_t local_day_signed(const program& prog, std::uint64_t utc_us) noexcept {
  return floor_div(local_us(prog, utc_us), day_us);
}

// UTC instant of local midnight starting local day `days` (0 if before the epoch).
std::uint64_t utc_of_local_day(const program& prog, std::int64_t days) noexcept {
  i128 utc = static_cast<i128>(days) * day_us - static_cast<i128>(prog.utc_offset_minutes) * minute_us;
  if (utc < 0)
    return 0;
  return utc > static_cast<i128>(u64_max) ? u64_max : static_cast<std::uint64_t>(utc);
}

// First month (1-based) of the period containing `month`.
std::uint32_t period_first_month(std::uint32_t month, calendar_period p) noexcept {
  switch (p) {
    case calendar_period::month: return month;
    case calendar_period::quarter: return (month - 1) / 3 * 3 + 1;
    default: return 1;
  }
}

std::uint32_t period_months(calendar_period p) noexcept {
  switch (p) {
    case calendar_period::month: return 1;
    case calendar_period::quarter: return 3;
    default: return 12;
  }
}

template <class List, class Value>
bool listed(const List& list, const Value& v) {
  return list.empty() || std::find(list.begin(), list.end(), v) != list.end();
}

bool item_matches(const earn_rule& r, std::string_view sku, std::string_view category) {
  return listed(r.skus, sku) && listed(r.categories, category);
}

const earn_rule* rule_by_id(const program& prog, std::uint32_t id) noexcept {
  for (const auto& r : prog.rules)
    if (r.id == id)
      return &r;
  return nullptr;
}

const ledger::rule_counter* find_counter(const ledger::member_book& book, std::uint32_t rule_id) {
  auto it = std::lower_bound(book.counters.begin(), book.counters.end(), rule_id,
                             [](const ledger::rule_counter& c, std::uint32_t id) { return c.rule_id < id; });
  return it != book.counters.end() && it->rule_id == rule_id ? &*it : nullptr;
}

const rule_total* total_of(rule_totals totals, std::uint32_t rule_id) noexcept {
  for (const auto& t : totals)
    if (t.rule_id == rule_id)
      return &t;
  return nullptr;
}

// cap - used, within [0, INT64_MAX].
std::int64_t room(std::int64_t cap, std::int64_t used) noexcept {
  i128 r = static_cast<i128>(cap) - used;
  return r < 0 ? 0 : r > i64_max ? i64_max : static_cast<std::int64_t>(r);
}

// Points of rule r after its caps and budgets, for a member with counter c
// (or none) and what the rule gave all members (t, or none); why names the
// limit that left it nothing.
struct capped_points {
  std::int64_t points = 0;
  rule_why why = rule_why::counted;
};
capped_points capped(const earn_rule& r, const ledger::rule_counter* c, const rule_total* t,
                     std::int64_t pts) noexcept {
  if (pts <= 0)
    return {0, rule_why::no_points};
  if (r.uses_per_member_max != 0 && c != nullptr && c->uses >= r.uses_per_member_max)
    return {0, rule_why::uses_max};
  const std::pair<std::int64_t, std::int64_t> limits[] = {
    {r.cap_per_member, c != nullptr ? c->points : 0},
    {r.cap_total, t != nullptr ? t->points : 0},
    {r.budget_per_day, t != nullptr ? t->day_points : 0},
    {r.budget_per_month, t != nullptr ? t->month_points : 0},
  };
  static constexpr rule_why whys[] = {rule_why::member_cap, rule_why::budget_total, rule_why::budget_day,
                                      rule_why::budget_month};
  for (std::size_t i = 0; i < std::size(limits); ++i) {
    if (limits[i].first <= 0)
      continue;
    pts = std::min(pts, room(limits[i].first, limits[i].second));
    if (pts == 0)
      return {0, whys[i]};
  }
  return {pts, rule_why::counted};
}

// Ranks verdicts under best: more points first, then higher priority; the
// earlier rule (lower index in program order) wins what is left, which the
// caller gets by scanning in order and replacing only on a strict win.
bool outranks(const rule_verdict& a, const rule_verdict& b) noexcept {
  return a.points != b.points ? a.points > b.points : a.priority > b.priority;
}

errc push_line(earn_decision& d, const rule_line& line) {
  std::int64_t sum = 0;
  if (__builtin_add_overflow(d.points, line.points, &sum))
    return errc::amount_overflow;
  d.points = sum;
  d.lines.push_back(line);
  return errc::ok;
}

errc check_basket(const basket& b) noexcept {
  if (b.amount <= 0)
    return errc::invalid_amount;
  if (b.lines.empty())
    return errc::ok;
  std::int64_t sum = 0;
  for (const auto& l : b.lines) {
    if (l.amount < 0)
      return errc::invalid_amount;
    if (__builtin_add_overflow(sum, l.amount, &sum))
      return errc::amount_overflow;
  }
  return sum == b.amount ? errc::ok : errc::invalid_argument;
}

// Amount of the basket's items rule r matches, or -1 if no item matches.
// Cannot overflow: the lines were checked to sum to b.amount.
std::int64_t matched_amount(const earn_rule& r, const basket& b) {
  if (b.lines.empty())
    return item_matches(r, {}, {}) ? b.amount : -1;
  std::int64_t sum = -1;
  for (const auto& l : b.lines)
    if (item_matches(r, l.sku, l.category))
      sum = (sum < 0 ? 0 : sum) + l.amount;
  return sum;
}

// Whether purchase / first_purchase rule r applies to basket b at all.
bool purchase_rule_applies(const program& prog, const earn_rule& r, const ledger::member_book& book,
                           const basket& b) {
  if (r.trigger == rule_trigger::first_purchase) {
    if (book.first_purchase_seq != 0 || find_counter(book, r.id) != nullptr)
      return false;
  } else if (r.trigger != rule_trigger::purchase) {
    return false;
  }
  return listed(r.brands, b.brand_id) && listed(r.channels, b.channel) &&
         window_matches(prog, r.window, b.occurred_at_us);
}

// Whether an event / enroll rule's brands, channels and window admit `when`.
bool occasion_matches(const program& prog, const earn_rule& r, const occasion& when) {
  return listed(r.brands, when.brand_id) && listed(r.channels, when.channel) &&
         window_matches(prog, r.window, when.at_us);
}

// Uncapped points of a purchase rule over `matched`.
points_result rule_points(const earn_rule& r, const brand_def& brand, std::int64_t matched) noexcept {
  if (!r.multiplier)
    return {errc::ok, std::max<std::int64_t>(r.bonus_points, 0)};
  const rational& m = *r.multiplier;
  if (m.num <= m.den)
    return {errc::ok, 0};
  return brand_points(brand, matched, m.num - m.den, m.den);
}

errc add_tier_line(earn_decision& d, const program& prog, const brand_def& brand, std::uint32_t tier,
                   std::int64_t amount) {
  if (tier >= prog.tiers.size())
    return errc::ok;
  const rational& m = prog.tiers[tier].multiplier;
  if (m.den == 0)
    return errc::invalid_argument;
  if (m.num <= m.den)
    return errc::ok;
  auto p = brand_points(brand, amount, m.num - m.den, m.den);
  if (p.code != errc::ok)
    return p.code;
  return push_line(d, {line_kind::tier, 0, p.points, amount});
}

// Rule r on basket b: its line goes into d at once (sum), or only its
// verdict v (best, which picks the line afterwards). v may be null (sum
// without explain).
errc add_purchase_rule(earn_decision& d, const program& prog, const earn_rule& r,
                       const ledger::member_book& book, const brand_def& brand, const basket& b,
                       rule_totals totals, rule_verdict* v) {
  if (!purchase_rule_applies(prog, r, book, b))
    return errc::ok;
  std::int64_t matched = matched_amount(r, b);
  if (matched < 0 || matched < r.min_amount)
    return errc::ok;
  auto p = rule_points(r, brand, matched);
  if (p.code != errc::ok)
    return p.code;
  const auto c = capped(r, find_counter(book, r.id), total_of(totals, r.id), p.points);
  if (v != nullptr) {
    v->why = c.why;
    v->points = c.points;
    v->matched_amount = matched;
  }
  if (prog.resolution == rule_resolution::best)
    return errc::ok;
  return c.points > 0 ? push_line(d, {line_kind::rule, r.id, c.points, matched}) : errc::ok;
}

// Under best: keeps the best ranked verdict that gives points as the one
// rule line, the others that give points are outscored by it.
errc pick_best(earn_decision& d) {
  rule_verdict* win = nullptr;
  for (auto& v : d.verdicts)
    if (v.why == rule_why::counted && (win == nullptr || outranks(v, *win)))
      win = &v;
  if (win == nullptr)
    return errc::ok;
  for (auto& v : d.verdicts)
    if (&v != win && v.why == rule_why::counted) {
      v.why = rule_why::outscored;
      v.by = win->rule_id;
    }
  win->why = rule_why::best;
  return push_line(d, {line_kind::rule, win->rule_id, win->points, win->matched_amount});
}

// Applies a downgrade that is due at `at`.
void apply_due_downgrade(tier_review& t, std::uint64_t at) noexcept {
  if (t.pending_at_us == 0 || t.pending_at_us > at)
    return;
  t.secured = t.pending_tier;
  t.pending_tier = 0;
  t.pending_at_us = 0;
}

// One review at period end e (see review_tier), over the track's buckets.
void review_once(const program& prog, const ledger::tier_track& track, tier_review& t, std::uint64_t e) {
  apply_due_downgrade(t, e);
  std::uint32_t fresh = prog.tier_for(metric_over_window(prog, track, e - 1));
  if (fresh >= t.secured) {
    t.secured = fresh;
    t.pending_tier = 0;
    t.pending_at_us = 0;
  } else {
    if (t.pending_at_us == 0)
      t.pending_at_us = sat_add(e, days_us(prog.tier_rules.grace_days));
    t.pending_tier = fresh;
  }
  t.reviewed_through_us = e;
}

// First bucket day that a window at or after now can still reach.
std::uint32_t first_needed_day(const program& prog, std::uint64_t now_us) noexcept {
  std::uint32_t w = prog.tier_rules.window_days;
  if (w == 0)
    return 0;
  std::int64_t first = static_cast<std::int64_t>(local_day(prog, now_us)) - w + 1;
  return first < 0 ? 0 : static_cast<std::uint32_t>(first);
}

// Sum of refunded item amounts rule r matches (r == nullptr: every item).
std::int64_t refunded_matching(const earn_rule* r, std::span<const line_item> items) {
  std::int64_t sum = 0;  // bounded by the checked total of items
  for (const auto& it : items)
    if (r == nullptr || item_matches(*r, it.sku, it.category))
      sum += it.amount;
  return sum;
}

// Sum of item amounts (each >= 0), or an error.
points_result items_total(std::span<const line_item> items) noexcept {
  std::int64_t sum = 0;
  for (const auto& it : items) {
    if (it.amount < 0)
      return {errc::invalid_amount, 0};
    if (__builtin_add_overflow(sum, it.amount, &sum))
      return {errc::amount_overflow, 0};
  }
  return {errc::ok, sum};
}

// Points a line of p points over matched amount m keeps once r of it is refunded.
std::int64_t kept_by_items(std::int64_t p, std::int64_t m, std::int64_t r, bool whole_refunded) noexcept {
  if (m <= 0)
    return whole_refunded ? 0 : p;
  return keep_share(p, m - r, m);
}

} // namespace

// -- calendar ----------------------------------------------------------------------

std::int64_t days_from_civil(std::int64_t y, std::uint32_t m, std::uint32_t d) noexcept {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const std::int64_t yoe = y - era * 400;
  const std::int64_t mp = static_cast<std::int64_t>((m + 9) % 12);
  const std::int64_t doy = (153 * mp + 2) / 5 + static_cast<std::int64_t>(d) - 1;
  const std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

civil_date civil_from_days(std::int64_t z) noexcept {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const std::int64_t doe = z - era * 146097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  const std::int64_t d = doy - (153 * mp + 2) / 5 + 1;
  const std::int64_t m = mp < 10 ? mp + 3 : mp - 9;
  return {yoe + era * 400 + (m <= 2), static_cast<std::uint32_t>(m), static_cast<std::uint32_t>(d)};
}

std::int64_t local_us(const program& prog, std::uint64_t utc_us) noexcept {
  std::int64_t t = static_cast<std::int64_t>(std::min(utc_us, instant_max));
  return t + static_cast<std::int64_t>(prog.utc_offset_minutes) * minute_us;
}

std::uint32_t local_day(const program& prog, std::uint64_t utc_us) noexcept {
  std::int64_t d = local_day_signed(prog, utc_us);
  return d < 0 ? 0 : static_cast<std::uint32_t>(std::min<std::int64_t>(d, UINT32_MAX));
}

std::uint32_t local_weekday(const program& prog, std::uint64_t utc_us) noexcept {
  std::int64_t d = local_day_signed(prog, utc_us) + 3;  // 1970-01-01 was a Thursday
  return static_cast<std::uint32_t>(d - floor_div(d, 7) * 7);
}

std::uint32_t local_hour(const program& prog, std::uint64_t utc_us) noexcept {
  std::int64_t t = local_us(prog, utc_us);
  return static_cast<std::uint32_t>((t - floor_div(t, day_us) * day_us) / hour_us);
}

std::uint64_t local_day_start(const program& prog, std::uint32_t day) noexcept {
  return utc_of_local_day(prog, day);
}

std::uint64_t period_start(const program& prog, std::uint64_t utc_us, calendar_period period) noexcept {
  if (period == calendar_period::none)
    return utc_us;
  civil_date c = civil_from_days(local_day_signed(prog, utc_us));
  return utc_of_local_day(prog, days_from_civil(c.year, period_first_month(c.month, period), 1));
}

std::uint64_t period_end(const program& prog, std::uint64_t utc_us, calendar_period period) noexcept {
  if (period == calendar_period::none)
    return utc_us;
  civil_date c = civil_from_days(local_day_signed(prog, utc_us));
  std::uint32_t next = period_first_month(c.month, period) + period_months(period);  // 2..13
  std::int64_t year = c.year + (next > 12);
  return utc_of_local_day(prog, days_from_civil(year, next > 12 ? next - 12 : next, 1));
}

bool window_matches(const program& prog, const time_window& w, std::uint64_t utc_us) noexcept {
  if (w.from_us != 0 && utc_us < w.from_us)
    return false;
  if (w.to_us != 0 && utc_us >= w.to_us)
    return false;
  if ((w.weekdays & (1u << local_weekday(prog, utc_us))) == 0)
    return false;
  std::uint32_t h = local_hour(prog, utc_us);
  return w.hour_from <= h && h < w.hour_to;
}

// -- lots ------------------------------------------------------------------------------

std::uint64_t lot_expiry(const program& prog, std::uint64_t earned_at_us) noexcept {
  const auto& lc = prog.lifecycle;
  if (lc.expiry_days == 0)
    return 0;
  std::uint64_t at = sat_add(earned_at_us, days_us(lc.expiry_days));
  if (lc.expiry_rounding == calendar_period::none || at >= instant_max)
    return at;
  return period_end(prog, at, lc.expiry_rounding);
}

std::uint64_t lot_available_at(const program& prog, std::uint64_t occurred_at_us) noexcept {
  return sat_add(occurred_at_us, days_us(prog.lifecycle.pending_days));
}

bool lot_expired(const ledger::lot& l, std::uint64_t now_us) noexcept {
  return l.expires_at_us != 0 && now_us >= l.expires_at_us;
}

bool lot_available(const ledger::lot& l, std::uint64_t now_us) noexcept {
  return l.available_at_us <= now_us && !lot_expired(l, now_us);
}

// -- earn evaluation -----------------------------------------------------------

std::string_view why_name(rule_why why) noexcept {
  switch (why) {
    case rule_why::counted: return "counted";
    case rule_why::best: return "best";
    case rule_why::outscored: return "outscored";
    case rule_why::not_matched: return "not_matched";
    case rule_why::no_points: return "no_points";
    case rule_why::uses_max: return "uses_max";
    case rule_why::member_cap: return "member_cap";
    case rule_why::budget_total: return "budget_total";
    case rule_why::budget_day: return "budget_day";
    case rule_why::budget_month: return "budget_month";
  }
  return "?";
}

rule_verdict* runner_up(std::span<rule_verdict> verdicts) noexcept {
  rule_verdict* next = nullptr;
  for (auto& v : verdicts)
    if (v.why == rule_why::outscored && (next == nullptr || outranks(v, *next)))
      next = &v;
  return next;
}

earn_decision evaluate_earn(const program& prog, const ledger::member_book& book, std::uint32_t tier,
                            const basket& b, rule_totals totals, bool explain) {
  const brand_def* brand = prog.find_brand(b.brand_id);
  if (brand == nullptr)
    return failed(errc::unknown_brand);
  if (errc c = check_basket(b); c != errc::ok)
    return failed(c);
  auto base = brand_points(*brand, b.amount, 1, 1);
  if (base.code != errc::ok)
    return failed(base.code);
  earn_decision d;
  d.lines.reserve(2 + prog.rules.size());
  d.lines.push_back({line_kind::base, 0, base.points, b.amount});
  d.points = base.points;
  if (errc c = add_tier_line(d, prog, *brand, tier, b.amount); c != errc::ok)
    return failed(c);
  const bool best = prog.resolution == rule_resolution::best;
  if (explain || best)
    d.verdicts.reserve(prog.rules.size());
  for (const auto& r : prog.rules) {
    if (r.trigger != rule_trigger::purchase && r.trigger != rule_trigger::first_purchase)
      continue;
    rule_verdict* v = nullptr;
    if (explain || best)
      v = &d.verdicts.emplace_back(rule_verdict{r.id, rule_why::not_matched, 0, r.priority, 0, 0});
    if (errc c = add_purchase_rule(d, prog, r, book, *brand, b, totals, v); c != errc::ok)
      return failed(c);
  }
  if (best)
    if (errc c = pick_best(d); c != errc::ok)
      return failed(c);
  d.qualifying = prog.tier_rules.metric == tier_metric::spend ? b.amount : d.points;
  return d;
}

earn_decision evaluate_event(const program& prog, const ledger::member_book& book,
                             std::string_view event_kind, const occasion& when, rule_totals totals) {
  earn_decision d;
  bool answered = false;
  for (const auto& r : prog.rules) {
    if (r.trigger != rule_trigger::event || r.event_kind != event_kind)
      continue;
    answered = true;
    if (!occasion_matches(prog, r, when))
      continue;
    std::int64_t pts = capped(r, find_counter(book, r.id), total_of(totals, r.id),
                              std::max<std::int64_t>(r.bonus_points, 0)).points;
    if (pts > 0)
      if (errc c = push_line(d, {line_kind::rule, r.id, pts, 0}); c != errc::ok)
        return failed(c);
  }
  return answered ? d : failed(errc::invalid_argument);
}

earn_decision evaluate_enroll(const program& prog, const occasion& when, rule_totals totals) {
  earn_decision d;
  for (const auto& r : prog.rules) {
    if (r.trigger != rule_trigger::enroll || !occasion_matches(prog, r, when))
      continue;
    std::int64_t pts = capped(r, nullptr, total_of(totals, r.id), std::max<std::int64_t>(r.bonus_points, 0)).points;
    if (pts > 0)
      if (errc c = push_line(d, {line_kind::rule, r.id, pts, 0}); c != errc::ok)
        return failed(c);
  }
  return d;
}

// -- spending ----------------------------------------------------------------------

spend_plan plan_spend(const ledger::member_book& book, std::uint64_t now_us, std::int64_t points) {
  if (points <= 0)
    return {errc::invalid_amount, {}};
  std::vector<const ledger::lot*> usable;
  usable.reserve(book.lots.size());
  i128 sum = 0;
  for (const auto& l : book.lots)
    if (l.points > 0 && lot_available(l, now_us)) {
      usable.push_back(&l);
      sum += l.points;
    }
  if (sum - book.debt < points)
    return {errc::insufficient_points, {}};
  auto key = [](const ledger::lot* l) {
    return std::pair{l->expires_at_us == 0 ? u64_max : l->expires_at_us, l->id};
  };
  std::sort(usable.begin(), usable.end(), [&](auto* a, auto* b) { return key(a) < key(b); });
  spend_plan plan;
  for (const ledger::lot* l : usable) {
    if (points == 0)
      break;
    std::int64_t take = std::min(points, l->points);
    plan.takes.push_back({l->id, l->brand_id, take, l->expires_at_us, l->earned_at_us});
    points -= take;
  }
  return plan;
}

balance_view balance_of(const ledger::member_book& book, std::uint64_t now_us) noexcept {
  i128 available = -static_cast<i128>(book.debt), pending = 0, held = 0, expired = 0, next_points = 0;
  balance_view v;
  for (const auto& l : book.lots) {
    if (lot_expired(l, now_us)) {
      expired += l.points;
      continue;
    }
    (l.available_at_us <= now_us ? available : pending) += l.points;
    if (l.expires_at_us != 0 && (v.next_expiry_at_us == 0 || l.expires_at_us < v.next_expiry_at_us)) {
      v.next_expiry_at_us = l.expires_at_us;
      next_points = 0;
    }
    if (l.expires_at_us != 0 && l.expires_at_us == v.next_expiry_at_us)
      next_points += l.points;
  }
  for (const auto& h : book.holds)
    held += h.points;
  if (!narrow(available, v.available) || !narrow(pending, v.pending) || !narrow(held, v.held) ||
      !narrow(expired, v.expired_unswept) || !narrow(next_points, v.next_expiry_points))
    return {errc::amount_overflow, 0, 0, 0, 0, 0, 0};
  return v;
}

// -- tiers ------------------------------------------------------------------------------

std::int64_t metric_over_window(const program& prog, const ledger::tier_track& track,
                                std::uint64_t at_us) noexcept {
  const std::int64_t today = local_day(prog, at_us);
  const std::uint32_t w = prog.tier_rules.window_days;
  const std::int64_t after = w == 0 ? std::numeric_limits<std::int64_t>::min() : today - w;
  i128 sum = 0;
  for (const auto& b : track.buckets)
    if (b.day > after && b.day <= today)
      sum += b.amount;
  return sum > i64_max ? i64_max : static_cast<std::int64_t>(sum);
}

tier_review review_tier(const program& prog, const ledger::tier_track& track, std::uint64_t now_us) {
  tier_review t{false, track.secured, track.pending_tier, track.pending_at_us, track.reviewed_through_us, 0};
  const calendar_period period = prog.tier_rules.review;
  if (period != calendar_period::none) {
    if (t.reviewed_through_us == 0) {
      std::uint64_t anchor = track.buckets.empty() ? now_us : local_day_start(prog, track.buckets.front().day);
      t.reviewed_through_us = period_start(prog, anchor, period);
    }
    for (std::uint64_t e = period_end(prog, t.reviewed_through_us, period);
         e <= now_us && e > t.reviewed_through_us; e = period_end(prog, e, period))
      review_once(prog, track, t, e);
  }
  apply_due_downgrade(t, now_us);
  t.prune_before_day = first_needed_day(prog, now_us);
  t.changed = t.secured != track.secured || t.pending_tier != track.pending_tier ||
              t.pending_at_us != track.pending_at_us || t.reviewed_through_us != track.reviewed_through_us ||
              (!track.buckets.empty() && track.buckets.front().day < t.prune_before_day);
  return t;
}

void apply_tier_review(ledger::tier_track& track, const tier_review& review) {
  track.secured = review.secured;
  track.pending_tier = review.pending_tier;
  track.pending_at_us = review.pending_at_us;
  track.reviewed_through_us = review.reviewed_through_us;
  auto& bk = track.buckets;
  bk.erase(bk.begin(), std::lower_bound(bk.begin(), bk.end(), review.prune_before_day,
                                        [](const ledger::qualify_bucket& b, std::uint32_t d) { return b.day < d; }));
}

std::uint32_t effective_tier(const program& prog, const ledger::tier_track& track,
                             std::uint64_t now_us) noexcept {
  bool due = track.pending_at_us != 0 && track.pending_at_us <= now_us;
  std::uint32_t granted = due ? track.pending_tier : track.secured;
  return std::max(granted, prog.tier_for(metric_over_window(prog, track, now_us)));
}

tier_outlook tier_outlook_of(const program& prog, const ledger::tier_track& track, std::uint64_t now_us) {
  ledger::tier_track sim = track;
  if (auto rv = review_tier(prog, sim, now_us); rv.changed)
    apply_tier_review(sim, rv);
  tier_outlook out;
  out.tier = effective_tier(prog, sim, now_us);
  if (out.tier == 0)
    return out;
  const std::uint32_t w = prog.tier_rules.window_days;
  const calendar_period period = prog.tier_rules.review;
  // The instants where the effective tier can change, after now: where each
  // bucket leaves the window (its day + w), the pending downgrade, and the
  // review period ends up to the last of those plus a period and the grace
  // (after every bucket left, the next review decides the lowest tier). A
  // window of 0 days keeps every bucket: only a downgrade already pending
  // can lower the tier then.
  std::vector<std::uint64_t> at;
  if (sim.pending_at_us > now_us)
    at.push_back(sim.pending_at_us);
  std::uint64_t last = now_us;
  if (w != 0)
    for (const auto& b : sim.buckets) {
      const std::uint64_t leaves = local_day_start(prog, b.day + w);
      if (leaves > now_us) {
        at.push_back(leaves);
        last = std::max(last, leaves);
      }
    }
  if (period != calendar_period::none && (w != 0 || sim.pending_at_us > now_us)) {
    const std::uint64_t horizon =
      sat_add(period_end(prog, std::max(last, sim.pending_at_us), period), days_us(prog.tier_rules.grace_days));
    for (std::uint64_t e = period_end(prog, std::max(sim.reviewed_through_us, now_us), period);
         e <= horizon && e > now_us; e = period_end(prog, e, period)) {
      at.push_back(e);
      if (prog.tier_rules.grace_days != 0)
        at.push_back(sat_add(e, days_us(prog.tier_rules.grace_days)));
    }
  }
  std::sort(at.begin(), at.end());
  at.erase(std::unique(at.begin(), at.end()), at.end());
  for (const std::uint64_t t : at) {
    if (auto rv = review_tier(prog, sim, t); rv.changed)
      apply_tier_review(sim, rv);
    const std::uint32_t tier = effective_tier(prog, sim, t);
    if (tier < out.tier) {
      out.holds_until_us = t;
      out.drops_to = tier;
      out.missing = std::max<std::int64_t>(0, prog.tiers[out.tier].threshold - metric_over_window(prog, sim, t));
      return out;
    }
  }
  return out;
}

// -- refunds -------------------------------------------------------------------------

earn_decision refund_lines(const program& prog, std::span<const rule_line> original,
                           std::int64_t original_amount, std::int64_t refunded_before,
                           std::int64_t refund_now) {
  const std::int64_t a = original_amount;
  std::int64_t total = 0;
  if (a <= 0 || refunded_before < 0 || refund_now <= 0 ||
      __builtin_add_overflow(refunded_before, refund_now, &total) || total > a)
    return failed(errc::invalid_amount);
  earn_decision d;
  d.lines.reserve(original.size());
  for (const auto& l : original) {
    if (l.points < 0)
      return failed(errc::invalid_amount);
    std::int64_t delta = keep_share(l.points, a - total, a) - keep_share(l.points, a - refunded_before, a);
    if (errc c = push_line(d, {l.kind, l.rule_id, delta, -refund_now}); c != errc::ok)
      return failed(c);
  }
  d.qualifying = prog.tier_rules.metric == tier_metric::spend ? -refund_now : d.points;
  return d;
}

earn_decision refund_lines_by_items(const program& prog, std::span<const rule_line> original,
                                    std::span<const line_item> refunded_before,
                                    std::span<const line_item> refund_now) {
  auto base = std::find_if(original.begin(), original.end(),
                           [](const rule_line& l) { return l.kind == line_kind::base; });
  if (base == original.end())
    return failed(errc::invalid_argument);
  const std::int64_t a = base->matched_amount;
  auto before = items_total(refunded_before), now = items_total(refund_now);
  if (before.code != errc::ok || now.code != errc::ok)
    return failed(before.code != errc::ok ? before.code : now.code);
  std::int64_t total = 0;
  if (a <= 0 || now.points <= 0 || __builtin_add_overflow(before.points, now.points, &total) || total > a)
    return failed(errc::invalid_amount);
  earn_decision d;
  d.lines.reserve(original.size());
  for (const auto& l : original) {
    if (l.points < 0 || l.matched_amount < 0)
      return failed(errc::invalid_amount);
    const earn_rule* r = l.kind == line_kind::rule ? rule_by_id(prog, l.rule_id) : nullptr;
    const std::int64_t m = l.matched_amount;
    std::int64_t r0 = std::min(refunded_matching(r, refunded_before), m);
    std::int64_t r1 = std::min(r0 + refunded_matching(r, refund_now), m);
    std::int64_t delta = kept_by_items(l.points, m, r1, total == a) -
                         kept_by_items(l.points, m, r0, before.points == a);
    if (errc c = push_line(d, {l.kind, l.rule_id, delta, -(r1 - r0)}); c != errc::ok)
      return failed(c);
  }
  d.qualifying = prog.tier_rules.metric == tier_metric::spend ? -now.points : d.points;
  return d;
}

// -- content hash ----------------------------------------------------------------------

content_hasher& content_hasher::add(std::uint64_t v) {
  char le[8];
  for (int i = 0; i < 8; ++i)
    le[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  h_ = ledger::content_hash({le, sizeof le}, h_);
  return *this;
}

content_hasher& content_hasher::add(std::string_view s) {
  add(static_cast<std::uint64_t>(s.size()));
  h_ = ledger::content_hash(s, h_);
  return *this;
}

// -- refund clawback ---------------------------------------------------------------------

earn_decision refund_clawback(const program& prog, std::span<const rule_line> original,
                              std::span<const std::int64_t> kept, std::span<const std::int64_t> refunded,
                              std::int64_t refunded_before, std::int64_t refund_amount,
                              std::span<const line_item> items) {
  if (kept.size() != original.size() || refunded.size() != original.size())
    return failed(errc::invalid_amount);
  auto base = std::find_if(original.begin(), original.end(),
                           [](const rule_line& l) { return l.kind == line_kind::base; });
  if (base == original.end())
    return failed(errc::invalid_argument);
  const std::int64_t a = base->matched_amount;
  if (a <= 0 || refunded_before < 0 || refunded_before > a)
    return failed(errc::invalid_amount);
  if (refunded_before == a)
    return failed(errc::already_reversed);
  const bool by_items = !items.empty();
  std::int64_t r = refund_amount;
  if (by_items) {
    auto t = items_total(items);
    if (t.code != errc::ok)
      return failed(t.code);
    r = t.points;
  } else if (r == 0) {
    r = a - refunded_before;
  }
  std::int64_t total = 0;
  if (r <= 0 || __builtin_add_overflow(refunded_before, r, &total) || total > a)
    return failed(errc::invalid_amount);
  earn_decision d;
  d.lines.reserve(original.size());
  for (std::size_t i = 0; i < original.size(); ++i) {
    const auto& l = original[i];
    if (l.points < 0 || l.matched_amount < 0 || kept[i] < 0 || kept[i] > l.points || refunded[i] < 0)
      return failed(errc::invalid_amount);
    const std::int64_t m = l.matched_amount;
    const std::int64_t r0 = std::min(refunded[i], m);
    std::int64_t r1 = 0, target = 0;
    if (by_items) {
      const earn_rule* rule = l.kind == line_kind::rule ? rule_by_id(prog, l.rule_id) : nullptr;
      r1 = std::min(r0 + refunded_matching(rule, items), m);
      target = total == a ? 0 : kept_by_items(l.points, m, r1, false);
    } else {
      r1 = std::max(r0, m - keep_share(m, a - total, a));
      target = total == a ? 0 : keep_share(l.points, a - total, a);
    }
    const std::int64_t delta = std::min<std::int64_t>(0, target - kept[i]);
    if (errc c = push_line(d, {l.kind, l.rule_id, delta, -(r1 - r0)}); c != errc::ok)
      return failed(c);
  }
  d.qualifying = prog.tier_rules.metric == tier_metric::spend ? -r : d.points;
  return d;
}

// -- velocity limits ----------------------------------------------------------------------

std::uint32_t local_hour_index(const program& prog, std::uint64_t utc_us) noexcept {
  const std::int64_t t = local_us(prog, utc_us);
  return t < 0 ? 0 : static_cast<std::uint32_t>(std::min<std::int64_t>(t / hour_us, UINT32_MAX));
}

limit_breach check_limits(const velocity_limits& limits, const ledger::velocity_windows& w, std::uint32_t hour,
                          ledger::velocity_metric count, std::int64_t points) noexcept {
  using ledger::velocity_metric;
  using ledger::velocity_window;
  const bool has_points = count == velocity_metric::earns || count == velocity_metric::redemptions;
  const auto points_metric = static_cast<velocity_metric>(static_cast<std::uint32_t>(count) + 1);
  for (auto window : {velocity_window::hour, velocity_window::day}) {
    const velocity_bounds& b = window == velocity_window::hour ? limits.per_hour : limits.per_day;
    auto over = [&](velocity_metric m, std::int64_t plus) -> limit_breach {
      const std::int64_t bound = b.at(static_cast<std::size_t>(m));
      std::int64_t reached = 0;
      if (__builtin_add_overflow(ledger::window_value(w, m, window, hour), plus, &reached))
        reached = INT64_MAX;
      if (bound > 0 && reached > bound)
        return limit_breach{true, m, window, reached, bound};
      return {};
    };
    if (auto r = over(count, 1); r.breached)
      return r;
    if (has_points)
      if (auto r = over(points_metric, points); r.breached)
        return r;
  }
  return {};
}

const char* metric_name(ledger::velocity_metric m) noexcept {
  switch (m) {
    case ledger::velocity_metric::earns: return "earns";
    case ledger::velocity_metric::points_earned: return "points_earned";
    case ledger::velocity_metric::redemptions: return "redemptions";
    case ledger::velocity_metric::points_redeemed: return "points_redeemed";
    case ledger::velocity_metric::transfers_out: return "transfers_out";
    case ledger::velocity_metric::aliases_linked: return "aliases_linked";
  }
  return "unknown";
}

const char* window_name(ledger::velocity_window w) noexcept {
  switch (w) {
    case ledger::velocity_window::hour: return "hour";
    case ledger::velocity_window::day: return "day";
  }
  return "unknown";
}

} // namespace loyalty::actors

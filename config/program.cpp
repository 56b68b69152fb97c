// Loading and validating the program and engine settings (toml11 3.7).
// Every problem is collected as "file:line: message"; nothing is accepted
// partially.
#include "config/program.hpp"
#include "config/toml_checker.hpp"

#include <toml.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace loyalty {

const brand_def* program::find_brand(std::string_view code) const noexcept {
  for (const auto& b : brands)
    if (b.code == code)
      return &b;
  return nullptr;
}

const brand_def* program::find_brand(std::uint32_t id) const noexcept {
  for (const auto& b : brands)
    if (b.id == id)
      return &b;
  return nullptr;
}

const earn_rule* program::find_rule(std::uint32_t id) const noexcept {
  for (const auto& r : rules)
    if (r.id == id)
      return &r;
  return nullptr;
}

const reward_def* program::find_reward(std::string_view code) const noexcept {
  for (const auto& r : rewards)
    if (r.code == code)
      return &r;
  return nullptr;
}

const reward_def* program::find_reward(std::uint32_t id) const noexcept {
  for (const auto& r : rewards)
    if (r.id == id)
      return &r;
  return nullptr;
}

const partner_def* program::find_partner(std::string_view code) const noexcept {
  for (const auto& p : partners)
    if (p.code == code)
      return &p;
  return nullptr;
}

const partner_def* program::find_partner(std::uint32_t id) const noexcept {
  for (const auto& p : partners)
    if (p.id == id)
      return &p;
  return nullptr;
}

std::uint32_t program::tier_for(std::int64_t metric_value) const noexcept {
  std::uint32_t result = 0;
  for (std::uint32_t i = 0; i < tiers.size(); ++i)
    if (tiers[i].threshold <= metric_value)
      result = i;
  return result;
}

namespace {

using table = toml::value;

using checker = toml_checker;

bool valid_code(const std::string& s) {
  if (s.empty() || s.size() > 64)
    return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

std::string code_problem(const std::string& s) {
  return valid_code(s) ? std::string() : "must be 1..64 of a-z 0-9 _ -";
}

std::string length_problem(const std::string& s) {
  return (s.empty() || s.size() > 64) ? "must be 1..64 bytes long" : std::string();
}

// Days since 1970-01-01 of a proleptic Gregorian date (month 1..12).
constexpr std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}
static_assert(days_from_civil(1970, 1, 1) == 0);
static_assert(days_from_civil(2000, 3, 1) == 11017);

bool valid_date(const toml::local_date& d) {
  static constexpr unsigned days_in[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const int y = d.year;
  const unsigned m = d.month;  // 0..11
  if (m > 11 || d.day < 1)
    return false;
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return d.day <= days_in[m] + ((m == 1 && leap) ? 1 : 0);
}

// Microseconds of a local date (+ time) since 1970-01-01T00:00 of that clock.
std::int64_t local_us(const toml::local_date& d, const toml::local_time* t) {
  std::int64_t s = days_from_civil(d.year, d.month + 1u, d.day) * 86'400;
  std::int64_t us = 0;
  if (t) {
    s += t->hour * 3600 + t->minute * 60 + t->second;
    us = t->millisecond * 1000 + t->microsecond;  // nanoseconds are truncated
  }
  return s * 1'000'000 + us;
}

// An instant: a local date-time or local date (program-local, shifted by the
// program's UTC offset) or an offset date-time. Microseconds since the epoch.
std::optional<std::uint64_t> instant(checker& ck, const toml::value& t, const std::string& key,
                                     const std::string& what, std::int32_t utc_offset_minutes) {
  auto v = ck.get(t, key, false, what);
  if (!v)
    return std::nullopt;
  std::int64_t us = 0;
  const toml::local_date* date = nullptr;
  if (v->is_offset_datetime()) {
    const auto& odt = v->as_offset_datetime();
    date = &odt.date;
    const std::int64_t off = odt.offset.hour * 60 + odt.offset.minute;
    us = local_us(odt.date, &odt.time) - off * 60'000'000;
  } else if (v->is_local_datetime()) {
    const auto& ldt = v->as_local_datetime();
    date = &ldt.date;
    us = local_us(ldt.date, &ldt.time) - std::int64_t{utc_offset_minutes} * 60'000'000;
  } else if (v->is_local_date()) {
    date = &v->as_local_date();
    us = local_us(*date, nullptr) - std::int64_t{utc_offset_minutes} * 60'000'000;
  } else {
    ck.fail(*v, "'" + key + "' in " + what +
                  " must be a date-time (2026-11-27T08:00:00, program-local), an offset "
                  "date-time (2026-11-27T08:00:00+01:00) or a date (2026-11-27)");
    return std::nullopt;
  }
  if (!valid_date(*date)) {
    ck.fail(*v, "'" + key + "' in " + what + " is not a calendar date");
    return std::nullopt;
  }
  if (us < 0) {
    ck.fail(*v, "'" + key + "' in " + what + " must not be before 1970-01-01T00:00:00Z");
    return std::nullopt;
  }
  return static_cast<std::uint64_t>(us);
}

void parse_head(checker& ck, const toml::value& root, program& p) {
  auto head = ck.get(root, "program", true, "the program file");
  if (!head)
    return;
  const std::string w = "[program]";
  if (!head->is_table()) {
    ck.fail(*head, "'program' must be a table ([program])");
    return;
  }
  ck.only_keys(*head, {"name", "currency", "minor_units", "utc_offset_minutes", "point_rounding", "rule_resolution"},
                w);
  if (auto name = ck.str(*head, "name", true, w)) {
    p.name = *name;
    if (p.name.empty())
      ck.fail(*ck.get(*head, "name", false, w), "'name' in [program] must not be empty");
  }
  if (auto cur = ck.str(*head, "currency", true, w)) {
    p.currency = *cur;
    if (p.currency.size() != 3 ||
        !std::all_of(p.currency.begin(), p.currency.end(), [](char c) { return c >= 'A' && c <= 'Z'; }))
      ck.fail(*ck.get(*head, "currency", false, w), "currency must be a 3-letter ISO 4217 code in capitals");
  }
  p.minor_units = static_cast<std::uint32_t>(ck.integer(*head, "minor_units", false, w, 0, 4).value_or(2));
  p.utc_offset_minutes =
    static_cast<std::int32_t>(ck.integer(*head, "utc_offset_minutes", false, w, -720, 840).value_or(0));
  // Only one rounding exists; the key lets a program state it explicitly.
  ck.choice<int>(*head, "point_rounding", false, w, {{"floor", 0}});
  p.resolution = ck.choice<rule_resolution>(*head, "rule_resolution", false, w,
                                            {{"sum", rule_resolution::sum}, {"best", rule_resolution::best}})
                   .value_or(rule_resolution::sum);
}

// Brand code -> id (0 when the id itself was invalid: the program fails anyway).
using brand_index = std::vector<std::pair<std::string, std::uint32_t>>;

const std::uint32_t* lookup(const brand_index& idx, const std::string& code) {
  for (const auto& [c, id] : idx)
    if (c == code)
      return &id;
  return nullptr;
}

void parse_brands(checker& ck, const toml::value& root, program& p, brand_index& idx) {
  auto brands = ck.table_array(root, "brands", true);
  if (!brands)
    return;
  std::set<std::uint32_t> ids;
  const std::string what = "[[brands]]";
  for (const auto& b : *brands) {
    if (!b.is_table())
      continue;
    ck.only_keys(b, {"id", "code", "name", "earn_rate", "earn_mode", "cost_per_point"}, what);
    brand_def d;
    auto id = ck.integer(b, "id", true, what, 1, 0xFFFFFFFF);
    auto code = ck.str(b, "code", true, what);
    d.name = ck.str(b, "name", false, what).value_or("");
    auto rate = ck.ratio(b, "earn_rate", true, what, true);
    if (id) {
      d.id = static_cast<std::uint32_t>(*id);
      if (!ids.insert(d.id).second)
        ck.fail(*ck.get(b, "id", false, what), "duplicate brand id " + std::to_string(d.id));
    }
    if (code) {
      d.code = *code;
      if (!valid_code(d.code))
        ck.fail(*ck.get(b, "code", false, what), "brand code '" + d.code + "' must be 1..64 of a-z 0-9 _ -");
      else if (lookup(idx, d.code))
        ck.fail(*ck.get(b, "code", false, what), "duplicate brand code '" + d.code + "'");
      else
        idx.emplace_back(d.code, d.id);
    }
    if (rate)
      d.earn_rate = *rate;
    if (auto cpp = ck.ratio(b, "cost_per_point", false, what, true))
      d.cost_per_point = *cpp;
    if (auto mode = ck.str(b, "earn_mode", false, what)) {
      if (*mode == "steps")
        d.earn_in_steps = true;
      else if (*mode != "proportional")
        ck.fail(*ck.get(b, "earn_mode", false, what), "earn_mode must be \"proportional\" or \"steps\"");
    }
    p.brands.push_back(std::move(d));
  }
}

void parse_tier_policy(checker& ck, const toml::value& root, program& p) {
  auto tp = ck.section(root, "tier_policy");
  if (!tp)
    return;
  const std::string w = "[tier_policy]";
  ck.only_keys(*tp, {"metric", "window_days", "review", "grace_days", "warning_days"}, w);
  auto& r = p.tier_rules;
  if (auto m = ck.choice<tier_metric>(*tp, "metric", false, w,
                                      {{"qualifying_points", tier_metric::qualifying_points},
                                       {"spend", tier_metric::spend}}))
    r.metric = *m;
  if (auto d = ck.integer(*tp, "window_days", false, w, 0, 3660))
    r.window_days = static_cast<std::uint32_t>(*d);
  auto review = ck.choice<calendar_period>(*tp, "review", false, w,
                                           {{"none", calendar_period::none},
                                            {"month", calendar_period::month},
                                            {"quarter", calendar_period::quarter},
                                            {"year", calendar_period::year}});
  if (review)
    r.review = *review;
  if (auto g = ck.integer(*tp, "grace_days", false, w, 0, 366)) {
    r.grace_days = static_cast<std::uint32_t>(*g);
    if (r.grace_days > 0 && r.review == calendar_period::none &&
        (review || !ck.get(*tp, "review", false, w)))
      ck.fail(*ck.get(*tp, "grace_days", false, w),
              "'grace_days' in [tier_policy] has no effect when review = \"none\" (tiers are never "
              "lowered); set review or remove grace_days");
  }
  if (auto d = ck.integer(*tp, "warning_days", false, w, 0, 366))
    r.warning_days = static_cast<std::uint32_t>(*d);
}

void parse_tiers(checker& ck, const toml::value& root, program& p) {
  auto tiers = ck.table_array(root, "tiers", true);
  if (!tiers)
    return;
  std::set<std::string> names;
  const std::string what = "[[tiers]]";
  // Last tier with a valid threshold, to compare the next one against.
  std::optional<std::size_t> prev;
  std::optional<std::int64_t> first_threshold;
  const toml::value* first_threshold_at = nullptr;
  for (const auto& t : *tiers) {
    if (!t.is_table())
      continue;
    ck.only_keys(t, {"name", "threshold", "multiplier"}, what);
    tier_def d;
    if (auto name = ck.str(t, "name", true, what)) {
      d.name = *name;
      if (d.name.empty())
        ck.fail(*ck.get(t, "name", false, what), "tier name must not be empty");
      else if (!names.insert(d.name).second)
        ck.fail(*ck.get(t, "name", false, what), "duplicate tier name '" + d.name + "'");
    }
    auto th = ck.integer(t, "threshold", true, what, 0, INT64_MAX);
    if (th)
      d.threshold = *th;
    if (auto m = ck.ratio(t, "multiplier", true, what, false)) {
      d.multiplier = *m;
      if (m->num < m->den)
        ck.fail(*ck.get(t, "multiplier", false, what),
                "tier '" + d.name + "' multiplier " + std::to_string(m->num) + "/" +
                  std::to_string(m->den) + " must be at least 1 (num >= den)");
    }
    if (th && prev && d.threshold <= p.tiers[*prev].threshold) {
      const auto& before = p.tiers[*prev];
      ck.fail(*ck.get(t, "threshold", false, what),
              "tier '" + d.name + "' threshold " + std::to_string(d.threshold) +
                (d.threshold == before.threshold ? " equals" : " is below") + " tier '" + before.name +
                "' threshold " + std::to_string(before.threshold) +
                ": the tiers overlap; tier thresholds must strictly increase in file order");
    }
    if (th && p.tiers.empty()) {
      first_threshold = th;
      first_threshold_at = ck.get(t, "threshold", false, what);
    }
    p.tiers.push_back(std::move(d));
    if (th)
      prev = p.tiers.size() - 1;
  }
  if (first_threshold && *first_threshold != 0)
    ck.fail(*first_threshold_at,
            "the first tier must have threshold = 0 (every member holds a tier), got " +
              std::to_string(*first_threshold));
}

void parse_rules(checker& ck, const toml::value& root, program& p, const brand_index& brands) {
  auto rules = ck.table_array(root, "rules", false);
  if (!rules)
    return;
  std::set<std::uint32_t> ids;
  std::set<std::string> codes;
  p.rules.reserve(rules->size());
  for (const auto& r : *rules) {
    if (!r.is_table())
      continue;
    const std::string what = "[[rules]]";
    ck.only_keys(r, {"id", "code", "trigger", "event", "brands", "skus", "categories", "channels",
                     "from", "to", "weekdays", "hours", "min_amount", "multiplier", "bonus_points",
                     "cap_per_member", "cap_total", "uses_per_member_max", "budget_per_day", "budget_per_month",
                     "priority"},
                 what);
    earn_rule d;
    if (auto id = ck.integer(r, "id", true, what, 1, 0x7FFFFFFF)) {
      d.id = static_cast<std::uint32_t>(*id);
      if (!ids.insert(d.id).second)
        ck.fail(*ck.get(r, "id", false, what), "duplicate rule id " + std::to_string(d.id));
    }
    if (auto code = ck.str(r, "code", true, what)) {
      d.code = *code;
      if (!valid_code(d.code))
        ck.fail(*ck.get(r, "code", false, what), "rule code '" + d.code + "' must be 1..64 of a-z 0-9 _ -");
      else if (!codes.insert(d.code).second)
        ck.fail(*ck.get(r, "code", false, what), "duplicate rule code '" + d.code + "'");
    }
    // Name the rule in cross-key messages.
    const std::string self = "rule '" + (d.code.empty() ? std::to_string(d.id) : d.code) + "'";
    auto trig = ck.choice<rule_trigger>(r, "trigger", true, what,
                                        {{"purchase", rule_trigger::purchase},
                                         {"enroll", rule_trigger::enroll},
                                         {"first_purchase", rule_trigger::first_purchase},
                                         {"event", rule_trigger::event}});
    if (trig)
      d.trigger = *trig;
    const bool basket = trig && (*trig == rule_trigger::purchase || *trig == rule_trigger::first_purchase);
    const char* trig_name = !trig ? "" :
                            *trig == rule_trigger::enroll ? "enroll" :
                            *trig == rule_trigger::event ? "event" :
                            *trig == rule_trigger::first_purchase ? "first_purchase" : "purchase";

    // event <-> trigger
    if (auto ev = ck.str(r, "event", false, what)) {
      d.event_kind = *ev;
      if (!valid_code(d.event_kind))
        ck.fail(*ck.get(r, "event", false, what), "event '" + d.event_kind + "' must be 1..64 of a-z 0-9 _ -");
      else if (trig && *trig != rule_trigger::event)
        ck.fail(*ck.get(r, "event", false, what),
                self + ": 'event' is only for trigger = \"event\" (trigger is \"" + trig_name + "\")");
    } else if (trig && *trig == rule_trigger::event && !ck.get(r, "event", false, what)) {
      ck.fail(r, self + ": trigger = \"event\" needs 'event' (the event name it answers)");
    }

    // matching
    if (auto bl = ck.str_list(r, "brands", what, code_problem)) {
      bool ok = true;
      const auto& arr = ck.get(r, "brands", false, what)->as_array();
      for (std::size_t i = 0; i < bl->size(); ++i) {
        if (auto id = lookup(brands, (*bl)[i])) {
          d.brands.push_back(*id);
        } else {
          ck.fail(arr[i], self + " names unknown brand '" + (*bl)[i] + "' (not in [[brands]])");
          ok = false;
        }
      }
      if (!ok)
        d.brands.clear();
    }
    for (const char* key : {"skus", "categories"}) {
      if (auto l = ck.str_list(r, key, what, length_problem)) {
        if (trig && !basket)
          ck.fail(*ck.get(r, key, false, what),
                  self + ": '" + key + "' is only for purchase and first_purchase rules (trigger is \"" +
                    trig_name + "\")");
        (std::string_view(key) == "skus" ? d.skus : d.categories) = std::move(*l);
      }
    }
    if (auto l = ck.str_list(r, "channels", what, length_problem))
      d.channels = std::move(*l);

    // time window
    auto from = instant(ck, r, "from", what, p.utc_offset_minutes);
    auto to = instant(ck, r, "to", what, p.utc_offset_minutes);
    if (from)
      d.window.from_us = *from;
    if (to)
      d.window.to_us = *to;
    if (from && to && *to <= *from)
      ck.fail(*ck.get(r, "to", false, what),
              self + ": 'to' must be after 'from' (the window ends before it starts)");
    if (auto wd = ck.str_list(r, "weekdays", what, [](const std::string& s) {
          static constexpr std::string_view days[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
          return std::find(std::begin(days), std::end(days), s) == std::end(days)
                   ? std::string("is not a weekday (mon tue wed thu fri sat sun)")
                   : std::string();
        })) {
      static constexpr std::string_view days[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
      std::uint8_t mask = 0;
      for (const auto& s : *wd)
        mask |= static_cast<std::uint8_t>(1u << (std::find(std::begin(days), std::end(days), s) - std::begin(days)));
      d.window.weekdays = mask;
    }
    if (auto h = ck.get(r, "hours", false, what)) {
      const std::string msg = "'hours' in " + what + " must be [from, to] local hours with 0 <= from < to <= 24";
      if (!h->is_array() || h->as_array().size() != 2 || !h->as_array()[0].is_integer() ||
          !h->as_array()[1].is_integer()) {
        ck.fail(*h, msg);
      } else {
        auto hf = h->as_array()[0].as_integer();
        auto ht = h->as_array()[1].as_integer();
        if (hf < 0 || hf > 23 || ht < 1 || ht > 24 || hf >= ht) {
          ck.fail(*h, msg + ", got [" + std::to_string(hf) + ", " + std::to_string(ht) + "]");
        } else {
          d.window.hour_from = static_cast<std::uint8_t>(hf);
          d.window.hour_to = static_cast<std::uint8_t>(ht);
        }
      }
    }
    if (auto m = ck.integer(r, "min_amount", false, what, 0, INT64_MAX)) {
      d.min_amount = *m;
      if (trig && !basket)
        ck.fail(*ck.get(r, "min_amount", false, what),
                self + ": 'min_amount' is only for purchase and first_purchase rules (trigger is \"" +
                  trig_name + "\")");
    }

    // effect: exactly one of multiplier / bonus_points
    auto mult = ck.ratio(r, "multiplier", false, what, false);
    auto bonus = ck.integer(r, "bonus_points", false, what, 1, INT64_MAX);
    const bool has_mult = ck.get(r, "multiplier", false, what) != nullptr;
    const bool has_bonus = ck.get(r, "bonus_points", false, what) != nullptr;
    if (mult) {
      d.multiplier = *mult;
      if (mult->num < mult->den)
        ck.fail(*ck.get(r, "multiplier", false, what),
                self + ": multiplier " + std::to_string(mult->num) + "/" + std::to_string(mult->den) +
                  " must be at least 1 (num >= den)");
    }
    if (bonus)
      d.bonus_points = *bonus;
    if (has_mult && has_bonus)
      ck.fail(*ck.get(r, "bonus_points", false, what),
              self + " has both 'multiplier' and 'bonus_points'; give exactly one");
    else if (!has_mult && !has_bonus)
      ck.fail(r, self + " has neither 'multiplier' nor 'bonus_points'; give exactly one");
    else if (has_mult && trig && *trig != rule_trigger::purchase)
      ck.fail(*ck.get(r, "multiplier", false, what),
              self + ": 'multiplier' is only for purchase rules; trigger \"" + trig_name +
                "\" needs 'bonus_points'");

    // caps
    if (auto c = ck.integer(r, "cap_per_member", false, what, 0, INT64_MAX))
      d.cap_per_member = *c;
    if (auto c = ck.integer(r, "cap_total", false, what, 0, INT64_MAX))
      d.cap_total = *c;
    if (auto c = ck.integer(r, "uses_per_member_max", false, what, 0, 0xFFFFFFFF))
      d.uses_per_member_max = static_cast<std::uint32_t>(*c);
    if (auto c = ck.integer(r, "budget_per_day", false, what, 0, INT64_MAX))
      d.budget_per_day = *c;
    if (auto c = ck.integer(r, "budget_per_month", false, what, 0, INT64_MAX))
      d.budget_per_month = *c;
    if (auto c = ck.integer(r, "priority", false, what, -1'000'000, 1'000'000))
      d.priority = static_cast<std::int32_t>(*c);
    p.rules.push_back(std::move(d));
  }
}

void parse_lifecycle(checker& ck, const toml::value& root, program& p) {
  auto lc = ck.section(root, "lifecycle");
  if (!lc)
    return;
  const std::string w = "[lifecycle]";
  ck.only_keys(*lc, {"pending_days", "expiry_days", "expiry_rounding", "inactivity_days", "expiry_notice_days",
                     "negative_balance_max", "hold_ttl_default_s", "hold_ttl_max_s"},
               w);
  auto& l = p.lifecycle;
  if (auto v = ck.integer(*lc, "pending_days", false, w, 0, 3660))
    l.pending_days = static_cast<std::uint32_t>(*v);
  auto expiry = ck.integer(*lc, "expiry_days", false, w, 0, 36600);
  if (expiry)
    l.expiry_days = static_cast<std::uint32_t>(*expiry);
  if (auto v = ck.choice<calendar_period>(*lc, "expiry_rounding", false, w,
                                          {{"none", calendar_period::none},
                                           {"month", calendar_period::month},
                                           {"quarter", calendar_period::quarter},
                                           {"year", calendar_period::year}})) {
    l.expiry_rounding = *v;
    if (*v != calendar_period::none && l.expiry_days == 0 &&
        (expiry || !ck.get(*lc, "expiry_days", false, w)))
      ck.fail(*ck.get(*lc, "expiry_rounding", false, w),
              "'expiry_rounding' in [lifecycle] needs expiry_days > 0 (points never expire)");
  }
  if (auto v = ck.integer(*lc, "inactivity_days", false, w, 0, 36600))
    l.inactivity_days = static_cast<std::uint32_t>(*v);
  if (auto v = ck.integer(*lc, "expiry_notice_days", false, w, 0, 3660))
    l.expiry_notice_days = static_cast<std::uint32_t>(*v);
  if (auto v = ck.integer(*lc, "negative_balance_max", false, w, 0, INT64_MAX))
    l.negative_balance_max = *v;
  auto ttl_max = ck.integer(*lc, "hold_ttl_max_s", false, w, 1, 2'592'000);
  if (ttl_max)
    l.hold_ttl_max_s = static_cast<std::uint32_t>(*ttl_max);
  auto ttl_default = ck.integer(*lc, "hold_ttl_default_s", false, w, 1, 2'592'000);
  if (ttl_default)
    l.hold_ttl_default_s = static_cast<std::uint32_t>(*ttl_default);
  const bool max_ok = ttl_max || !ck.get(*lc, "hold_ttl_max_s", false, w);
  const bool default_ok = ttl_default || !ck.get(*lc, "hold_ttl_default_s", false, w);
  if (max_ok && default_ok && l.hold_ttl_default_s > l.hold_ttl_max_s) {
    if (ttl_default)
      ck.fail(*ck.get(*lc, "hold_ttl_default_s", false, w),
              "'hold_ttl_default_s' in [lifecycle] (" + std::to_string(l.hold_ttl_default_s) +
                ") must not exceed hold_ttl_max_s (" + std::to_string(l.hold_ttl_max_s) + ")");
    else
      ck.fail(*ck.get(*lc, "hold_ttl_max_s", false, w),
              "'hold_ttl_max_s' in [lifecycle] (" + std::to_string(l.hold_ttl_max_s) +
                ") is below the default hold_ttl_default_s (" + std::to_string(l.hold_ttl_default_s) +
                "); set hold_ttl_default_s too");
  }
}

void parse_households(checker& ck, const toml::value& root, program& p) {
  auto hh = ck.section(root, "households");
  if (!hh)
    return;
  const std::string w = "[households]";
  ck.only_keys(*hh, {"max_members", "spend", "on_leave"}, w);
  auto& h = p.households;
  h.enabled = true;
  if (auto v = ck.integer(*hh, "max_members", true, w, 2, limits::household_members_max))
    h.max_members = static_cast<std::uint32_t>(*v);
  if (auto v = ck.choice<household_spend>(*hh, "spend", true, w,
                                          {{"pooled", household_spend::pooled},
                                           {"own_first", household_spend::own_first}}))
    h.spend = *v;
  if (auto v = ck.choice<household_leave>(*hh, "on_leave", true, w,
                                          {{"nothing", household_leave::nothing},
                                           {"own_points", household_leave::own_points}}))
    h.on_leave = *v;
}

void parse_rewards(checker& ck, const toml::value& root, program& p, const brand_index& brands) {
  auto rewards = ck.table_array(root, "rewards", false);
  if (!rewards)
    return;
  std::set<std::uint32_t> ids;
  std::set<std::string> codes;
  const std::string what = "[[rewards]]";
  for (const auto& r : *rewards) {
    if (!r.is_table())
      continue;
    ck.only_keys(r, {"id", "code", "name", "cost", "stock", "brand"}, what);
    reward_def d;
    if (auto id = ck.integer(r, "id", true, what, 1, 0xFFFFFFFF)) {
      d.id = static_cast<std::uint32_t>(*id);
      if (!ids.insert(d.id).second)
        ck.fail(*ck.get(r, "id", false, what), "duplicate reward id " + std::to_string(d.id));
    }
    if (auto code = ck.str(r, "code", true, what)) {
      d.code = *code;
      if (!valid_code(d.code))
        ck.fail(*ck.get(r, "code", false, what), "reward code '" + d.code + "' must be 1..64 of a-z 0-9 _ -");
      else if (!codes.insert(d.code).second)
        ck.fail(*ck.get(r, "code", false, what), "duplicate reward code '" + d.code + "'");
    }
    d.name = ck.str(r, "name", false, what).value_or("");
    if (auto c = ck.integer(r, "cost", true, what, 1, INT64_MAX))
      d.cost = *c;
    if (auto s = ck.integer(r, "stock", false, what, 0, INT64_MAX))
      d.stock = *s;
    if (auto b = ck.str(r, "brand", true, what)) {
      if (auto id = lookup(brands, *b))
        d.brand_id = *id;
      else
        ck.fail(*ck.get(r, "brand", false, what),
                "reward '" + d.code + "' names unknown brand '" + *b + "' (not in [[brands]])");
    }
    p.rewards.push_back(std::move(d));
  }
}

void parse_partners(checker& ck, const toml::value& root, program& p, const brand_index& brands) {
  auto partners = ck.table_array(root, "partners", false);
  if (!partners)
    return;
  std::set<std::uint32_t> ids;
  std::set<std::string> codes;
  const std::string what = "[[partners]]";
  for (const auto& t : *partners) {
    if (!t.is_table())
      continue;
    ck.only_keys(t, {"id", "code", "name", "brand", "earn_cost", "burn_reimbursement", "status"}, what);
    partner_def d;
    // 16 bits: the journal header names the partner in a 16-bit field.
    if (auto id = ck.integer(t, "id", true, what, 1, 65535)) {
      d.id = static_cast<std::uint32_t>(*id);
      if (!ids.insert(d.id).second)
        ck.fail(*ck.get(t, "id", false, what), "duplicate partner id " + std::to_string(d.id));
    }
    if (auto code = ck.str(t, "code", true, what)) {
      d.code = *code;
      if (!valid_code(d.code))
        ck.fail(*ck.get(t, "code", false, what), "partner code '" + d.code + "' must be 1..64 of a-z 0-9 _ -");
      else if (!codes.insert(d.code).second)
        ck.fail(*ck.get(t, "code", false, what), "duplicate partner code '" + d.code + "'");
    }
    d.name = ck.str(t, "name", false, what).value_or("");
    if (auto b = ck.str(t, "brand", true, what)) {
      if (auto id = lookup(brands, *b))
        d.brand_id = *id;
      else
        ck.fail(*ck.get(t, "brand", false, what),
                "partner '" + d.code + "' names unknown brand '" + *b + "' (not in [[brands]])");
    }
    if (auto r = ck.ratio(t, "earn_cost", true, what, true))
      d.earn_cost = *r;
    if (auto r = ck.ratio(t, "burn_reimbursement", true, what, true))
      d.burn_reimbursement = *r;
    if (auto st = ck.choice<partner_status>(t, "status", false, what,
                                            {{"active", partner_status::active}, {"suspended", partner_status::suspended}}))
      d.status = *st;
    p.partners.push_back(std::move(d));
  }
}

void parse_limits(checker& ck, const toml::value& root, program& p) {
  auto lt = ck.section(root, "limits");
  if (!lt)
    return;
  const std::string w = "[limits]";
  ck.only_keys(*lt, {"per_hour", "per_day", "flag_after_breaches"}, w);
  auto bounds = [&](const char* key, velocity_bounds& b) {
    const toml::value* t = ck.get(*lt, key, false, w);
    if (t == nullptr)
      return;
    const std::string what = std::string("[limits.") + key + "]";
    if (!t->is_table()) {
      ck.fail(*t, "'" + std::string(key) + "' in [limits] must be a table (" + what + ")");
      return;
    }
    ck.only_keys(*t, {"earns", "points_earned", "redemptions", "points_redeemed", "transfers_out", "aliases_linked"},
                 what);
    auto one = [&](const char* name, std::int64_t& out) {
      if (auto v = ck.integer(*t, name, false, what, 0, INT64_MAX))
        out = *v;
    };
    one("earns", b.earns);
    one("points_earned", b.points_earned);
    one("redemptions", b.redemptions);
    one("points_redeemed", b.points_redeemed);
    one("transfers_out", b.transfers_out);
    one("aliases_linked", b.aliases_linked);
  };
  bounds("per_hour", p.limits.per_hour);
  bounds("per_day", p.limits.per_day);
  if (auto v = ck.integer(*lt, "flag_after_breaches", false, w, 0, 1'000'000))
    p.limits.flag_after_breaches = static_cast<std::uint32_t>(*v);
  p.limits.enabled = p.limits.per_hour.any() || p.limits.per_day.any();
}

std::optional<program> build_program(const toml::value& root, const std::string& file,
                                     std::vector<config_error>& errors) {
  auto before = errors.size();
  checker ck(file, errors);
  program p;
  ck.only_keys(root, {"program", "brands", "tier_policy", "tiers", "rules", "lifecycle", "rewards", "partners",
                      "households", "limits"},
               "the program file");
  brand_index brands;
  parse_head(ck, root, p);
  parse_brands(ck, root, p, brands);
  parse_tier_policy(ck, root, p);
  parse_tiers(ck, root, p);
  parse_rules(ck, root, p, brands);
  parse_lifecycle(ck, root, p);
  parse_rewards(ck, root, p, brands);
  parse_partners(ck, root, p, brands);
  parse_households(ck, root, p);
  parse_limits(ck, root, p);
  std::sort(p.brands.begin(), p.brands.end(), [](auto& a, auto& b) { return a.id < b.id; });
  std::sort(p.partners.begin(), p.partners.end(), [](auto& a, auto& b) { return a.id < b.id; });
  if (errors.size() != before)
    return std::nullopt;
  return p;
}

template <class F>
auto parse_guarded(F&& f, const std::string& file, std::vector<config_error>& errors)
  -> std::optional<toml::value> {
  try {
    return f();
  } catch (const toml::syntax_error& e) {
    errors.push_back({file + ": syntax error: " + e.what()});
  } catch (const std::exception& e) {
    errors.push_back({file + ": " + e.what()});
  }
  return std::nullopt;
}

} // namespace

std::optional<program> parse_program(std::string_view text, const std::string& name,
                                     std::vector<config_error>& errors) {
  auto root = parse_guarded(
    [&] {
      std::istringstream in{std::string(text)};
      return toml::parse(in, name);
    },
    name, errors);
  if (!root)
    return std::nullopt;
  auto p = build_program(*root, name, errors);
  if (p) {
    p->sha256 = key_sha256(text);
    p->text = std::string(text);
  }
  return p;
}

std::optional<program> load_program(const std::string& path, std::vector<config_error>& errors) {
  std::ifstream in(path, std::ios::binary);
  if (!std::filesystem::exists(path) || !in) {
    errors.push_back({path + ": no such file"});
    return std::nullopt;
  }
  std::string text((std::istreambuf_iterator<char>(in)), {});
  return parse_program(text, path, errors);
}

namespace {

bool hex_digest(const std::string& text, std::array<unsigned char, 32>& out) {
  if (text.size() != 64)
    return false;
  for (std::size_t i = 0; i < 32; ++i) {
    unsigned v = 0;
    for (int k = 0; k < 2; ++k) {
      char c = text[2 * i + static_cast<std::size_t>(k)];
      unsigned d = c >= '0' && c <= '9' ? static_cast<unsigned>(c - '0')
                 : c >= 'a' && c <= 'f' ? static_cast<unsigned>(c - 'a' + 10)
                                        : 16;
      if (d == 16)
        return false;
      v = v * 16 + d;
    }
    out[i] = static_cast<unsigned char>(v);
  }
  return true;
}

// [[keys]]: id, name, sha256 (64 lowercase hex digits), scope, rate_per_s.
// Brand and partner codes are checked against the program at engine start.
// host:port with a non-empty host and a port 1..65535.
bool host_port(const std::string& a) {
  const auto colon = a.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == a.size())
    return false;
  const auto port = a.substr(colon + 1);
  if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
    return false;
  const auto p = std::stoul(port);
  return p >= 1 && p <= 65535;
}

void parse_cluster(checker& ck, const toml::value& root, const std::filesystem::path& base, engine_settings& s) {
  if (!root.contains("cluster"))
    return;
  const toml::value* c = ck.get(root, "cluster", false, "the settings file");
  if (c == nullptr || !c->is_table())
    return;
  const std::string w = "[cluster]";
  ck.only_keys(*c, {"node_id", "dir", "election_timeout_ms", "heartbeat_ms", "snapshot_entries", "snapshot_trailing",
                   "install_snapshot_timeout_ms", "pipeline_batches", "join", "peers"},
               w);
  auto& out = s.cluster;
  if (auto v = ck.integer(*c, "node_id", true, w, 1, 1'000'000))
    out.node_id = static_cast<std::uint64_t>(*v);
  if (auto d = ck.str(*c, "dir", false, w)) {
    std::filesystem::path dp(*d);
    out.dir = (dp.is_absolute() ? dp : base / dp).lexically_normal().string();
  }
  if (auto v = ck.integer(*c, "election_timeout_ms", false, w, 100, 60'000))
    out.election_timeout_ms = static_cast<std::uint32_t>(*v);
  if (auto v = ck.integer(*c, "heartbeat_ms", false, w, 10, 10'000))
    out.heartbeat_ms = static_cast<std::uint32_t>(*v);
  if (auto v = ck.boolean(*c, "join", false, w))
    out.join = *v;
  if (auto v = ck.integer(*c, "snapshot_entries", false, w, 16, 1'000'000'000))
    out.snapshot_entries = static_cast<std::uint32_t>(*v);
  if (auto v = ck.integer(*c, "snapshot_trailing", false, w, 0, 1'000'000'000))
    out.snapshot_trailing = static_cast<std::uint32_t>(*v);
  if (auto v = ck.integer(*c, "install_snapshot_timeout_ms", false, w, 0, 86'400'000)) {
    out.install_snapshot_timeout_ms = static_cast<std::uint32_t>(*v);
    if (*v != 0 && *v < 100)
      ck.fail(*ck.get(*c, "install_snapshot_timeout_ms", false, w),
              "install_snapshot_timeout_ms must be 0 (automatic) or at least 100");
  }
  if (auto v = ck.integer(*c, "pipeline_batches", false, w, 1, limits::pipeline_batches_max))
    out.pipeline_batches = static_cast<std::uint32_t>(*v);
  if (out.heartbeat_ms * 2 > out.election_timeout_ms)
    ck.fail(*c, "heartbeat_ms (" + std::to_string(out.heartbeat_ms) + ") must be at most half of election_timeout_ms (" +
                    std::to_string(out.election_timeout_ms) + ")");
  auto peers = ck.table_array(*c, "peers", true);
  if (!peers)
    return;
  const std::string pw = "[[cluster.peers]]";
  std::set<std::uint64_t> ids;
  std::set<std::string> addresses;
  for (const auto& p : *peers) {
    if (!p.is_table())
      continue;
    ck.only_keys(p, {"id", "raft", "client"}, pw);
    cluster_peer peer;
    if (auto id = ck.integer(p, "id", true, pw, 1, 1'000'000)) {
      peer.id = static_cast<std::uint64_t>(*id);
      if (!ids.insert(peer.id).second)
        ck.fail(*ck.get(p, "id", false, pw), "duplicate node id " + std::to_string(peer.id));
    }
    for (auto [key, field] : {std::pair<const char*, std::string*>{"raft", &peer.raft}, {"client", &peer.client}}) {
      if (auto a = ck.str(p, key, true, pw)) {
        *field = *a;
        if (!host_port(*a))
          ck.fail(*ck.get(p, key, false, pw), std::string(key) + " must be host:port, not \"" + *a + "\"");
        else if (!addresses.insert(*a).second)
          ck.fail(*ck.get(p, key, false, pw), "the address " + *a + " is given twice");
      }
    }
    out.peers.push_back(std::move(peer));
  }
  if (out.peers.size() > 7)
    ck.fail(*c, "a cluster has at most 7 nodes, not " + std::to_string(out.peers.size()));
  if (out.node_id != 0 && ids.count(out.node_id) == 0)
    ck.fail(*c, "node_id " + std::to_string(out.node_id) + " is not one of [[cluster.peers]]");
}

void parse_keys(checker& ck, const toml::value& root, engine_settings& s) {
  if (!root.contains("keys"))
    return;
  auto keys = ck.table_array(root, "keys", false);
  if (!keys)
    return;
  const std::string what = "[[keys]]";
  std::set<std::uint32_t> ids;
  std::set<std::array<unsigned char, 32>> hashes;
  for (const auto& k : *keys) {
    if (!k.is_table())
      continue;
    ck.only_keys(k, {"id", "name", "sha256", "scope", "rate_per_s", "dry_run"}, what);
    api_key key;
    if (auto id = ck.integer(k, "id", true, what, 1, 0x7FFFFFFF)) {
      key.id = static_cast<std::uint32_t>(*id);
      if (!ids.insert(key.id).second)
        ck.fail(*ck.get(k, "id", false, what), "duplicate key id " + std::to_string(key.id));
    }
    key.name = ck.str(k, "name", true, what).value_or("");
    if (auto h = ck.str(k, "sha256", true, what)) {
      if (!hex_digest(*h, key.sha256))
        ck.fail(*ck.get(k, "sha256", false, what),
                "sha256 must be 64 lowercase hex digits (make a key with `loyaltyctl keygen`)");
      else if (!hashes.insert(key.sha256).second)
        ck.fail(*ck.get(k, "sha256", false, what), "two keys have the same sha256");
    }
    if (auto sc = ck.str(k, "scope", true, what)) {
      auto colon = sc->find(':');
      auto head = sc->substr(0, colon);
      auto code = colon == std::string::npos ? std::string{} : sc->substr(colon + 1);
      if (*sc == "admin") {
        key.scope = key_scope::admin;
      } else if (*sc == "read") {
        key.scope = key_scope::read;
      } else if ((head == "brand" || head == "partner") && valid_code(code)) {
        key.scope = head == "brand" ? key_scope::brand : key_scope::partner;
        key.scope_code = code;
      } else {
        ck.fail(*ck.get(k, "scope", false, what),
                "scope must be \"admin\", \"read\", \"brand:CODE\" or \"partner:CODE\"");
      }
    }
    if (auto r = ck.integer(k, "rate_per_s", false, what, 0, 10'000'000))
      key.rate_per_s = static_cast<std::uint32_t>(*r);
    key.dry_run = ck.boolean(k, "dry_run", false, what).value_or(false);
    s.keys.push_back(std::move(key));
  }
}

// tls_cert and tls_key: both or neither, resolved like data_dir. Whether the
// files can be read is checked when the server starts.
void load_tls_paths(checker& ck, const toml::value& e, const std::string& w, const std::filesystem::path& base,
                    engine_settings& s) {
  auto resolve = [&](const char* key, std::string& out) {
    auto v = ck.str(e, key, false, w);
    if (!v)
      return;
    if (v->empty()) {
      ck.fail(*ck.get(e, key, false, w), std::string("'") + key + "' in " + w + " must not be empty");
      return;
    }
    std::filesystem::path p(*v);
    out = (p.is_absolute() ? p : base / p).lexically_normal().string();
  };
  resolve("tls_cert", s.tls_cert);
  resolve("tls_key", s.tls_key);
  const bool has_cert = ck.get(e, "tls_cert", false, w) != nullptr;
  const bool has_key = ck.get(e, "tls_key", false, w) != nullptr;
  if (has_cert != has_key)
    ck.fail(*ck.get(e, has_cert ? "tls_cert" : "tls_key", false, w),
            std::string("tls_cert and tls_key in ") + w + " go together: " + (has_cert ? "tls_key" : "tls_cert") +
              " is missing");
}

// metrics_host, metrics_port (0 = off), metrics_read_timeout_ms. Whether
// the address can be bound is checked when the engine starts.
void load_metrics(checker& ck, const toml::value& e, const std::string& w, engine_settings& s) {
  if (auto h = ck.str(e, "metrics_host", false, w)) {
    if (h->empty())
      ck.fail(*ck.get(e, "metrics_host", false, w), "'metrics_host' in " + w + " must not be empty");
    else
      s.metrics_host = *h;
  }
  if (auto v = ck.integer(e, "metrics_port", false, w, 0, 65535)) {
    s.metrics_port = static_cast<std::uint16_t>(*v);
    if (s.metrics_port != 0 && s.metrics_port == s.listen_port && s.metrics_host == s.listen_host)
      ck.fail(*ck.get(e, "metrics_port", false, w),
              "'metrics_port' in " + w + " is the listen port " + std::to_string(s.listen_port) +
                ": metrics need a port of their own (or 0 for none)");
  }
  if (auto v = ck.integer(e, "metrics_read_timeout_ms", false, w, 1, 600'000))
    s.metrics_read_timeout_ms = static_cast<std::uint32_t>(*v);
}

} // namespace

std::optional<engine_settings> load_settings(const std::string& path,
                                             std::vector<config_error>& errors) {
  if (!std::filesystem::exists(path)) {
    errors.push_back({path + ": no such file"});
    return std::nullopt;
  }
  auto root = parse_guarded([&] { return toml::parse(path); }, path, errors);
  if (!root)
    return std::nullopt;
  auto before = errors.size();
  checker ck(path, errors);
  engine_settings s;
  ck.only_keys(*root, {"engine", "keys", "cluster"}, "the settings file");
  const toml::value* e = ck.get(*root, "engine", true, "the settings file");
  if (!e)
    return std::nullopt;
  const std::string w = "[engine]";
  ck.only_keys(*e, {"program", "listen_host", "listen_port", "data_dir", "map_gib", "durability",
                    "batch_entries_max", "commit_window_us", "checkpoint_accounts_max",
                    "checkpoint_interval_ms", "checkpoint_chunk_accounts", "inflight_per_connection_max",
                    "inflight_total_max", "connections_max", "idle_timeout_s", "frame_read_timeout_ms",
                    "write_stall_timeout_ms", "connection_output_bytes_max", "output_mib_max", "shutdown_drain_ms", "active_members_max",
                    "member_idle_s", "io_threads", "actor_threads", "actor_scheduler",
                    "expiry_sweep_interval_s", "expiry_sweep_members_per_s", "tls_cert", "tls_key",
                    "tls_handshake_timeout_ms", "metrics_host", "metrics_port", "metrics_read_timeout_ms",
                    "txn_filter_mib"},
               w);
  auto base = std::filesystem::path(path).parent_path();
  if (auto prog = ck.str(*e, "program", true, w)) {
    std::filesystem::path pp(*prog);
    s.program_path = (pp.is_absolute() ? pp : base / pp).lexically_normal().string();
  }
  if (auto h = ck.str(*e, "listen_host", false, w))
    s.listen_host = *h;
  if (auto v = ck.integer(*e, "listen_port", false, w, 0, 65535))
    s.listen_port = static_cast<std::uint16_t>(*v);
  if (auto d = ck.str(*e, "data_dir", false, w)) {
    std::filesystem::path dp(*d);
    s.data_dir = (dp.is_absolute() ? dp : base / dp).lexically_normal().string();
  }
  if (auto v = ck.integer(*e, "map_gib", false, w, 1, 1 << 20))
    s.map_bytes = static_cast<std::uint64_t>(*v) << 30;
  if (auto d = ck.str(*e, "durability", false, w)) {
    if (*d == "fsync")
      s.sync = durability::fsync;
    else if (*d == "nosync_unsafe")
      s.sync = durability::nosync_unsafe;
    else
      ck.fail(*ck.get(*e, "durability", false, w), "durability must be \"fsync\" or \"nosync_unsafe\"");
  }
  auto u32 = [&](const char* key, std::uint32_t& out, std::int64_t lo, std::int64_t hi) {
    if (auto v = ck.integer(*e, key, false, w, lo, hi))
      out = static_cast<std::uint32_t>(*v);
  };
  u32("batch_entries_max", s.batch_entries_max, 1, 1'000'000);
  u32("commit_window_us", s.commit_window_us, 0, 1'000'000);
  u32("checkpoint_accounts_max", s.checkpoint_accounts_max, 1, 100'000'000);
  u32("checkpoint_interval_ms", s.checkpoint_interval_ms, 1, 3'600'000);
  u32("checkpoint_chunk_accounts", s.checkpoint_chunk_accounts, 1, 100'000'000);
  if (auto v = ck.integer(*e, "txn_filter_mib", false, w, 0, 65536))
    s.txn_filter_bytes = static_cast<std::uint64_t>(*v) << 20;
  u32("inflight_per_connection_max", s.inflight_per_connection_max, 1, 1'000'000);
  u32("inflight_total_max", s.inflight_total_max, 1, 10'000'000);
  u32("connections_max", s.connections_max, 1, 100'000);
  u32("idle_timeout_s", s.idle_timeout_s, 0, 86'400 * 7);
  u32("frame_read_timeout_ms", s.frame_read_timeout_ms, 1, 3'600'000);
  u32("write_stall_timeout_ms", s.write_stall_timeout_ms, 1, 3'600'000);
  // A threshold, not a cap (answers of requests in flight still queue past
  // it): below 64 KiB a pipelining client would pause on every few answers.
  u32("connection_output_bytes_max", s.connection_output_bytes_max, 64 << 10, 1 << 30);
  // Engine-wide, in MiB: at least one connection's worth.
  if (auto v = ck.integer(*e, "output_mib_max", false, w, 1, 1 << 20))
    s.output_bytes_max = static_cast<std::uint64_t>(*v) << 20;
  u32("shutdown_drain_ms", s.shutdown_drain_ms, 0, 600'000);
  u32("active_members_max", s.active_members_max, 1, 100'000'000);
  u32("member_idle_s", s.member_idle_s, 1, 86'400 * 365);
  u32("io_threads", s.io_threads, 1, 64);
  u32("actor_threads", s.actor_threads, 0, 256);
  if (auto d = ck.str(*e, "actor_scheduler", false, w)) {
    if (*d == "sharing")
      s.actor_scheduler = actor_scheduling::sharing;
    else if (*d == "stealing")
      s.actor_scheduler = actor_scheduling::stealing;
    else
      ck.fail(*ck.get(*e, "actor_scheduler", false, w), "actor_scheduler must be \"sharing\" or \"stealing\"");
  }
  u32("expiry_sweep_interval_s", s.expiry_sweep_interval_s, 0, 86'400 * 366);
  u32("expiry_sweep_members_per_s", s.expiry_sweep_members_per_s, 1, 10'000'000);
  u32("tls_handshake_timeout_ms", s.tls_handshake_timeout_ms, 1, 600'000);
  load_tls_paths(ck, *e, w, base, s);
  load_metrics(ck, *e, w, s);
  parse_keys(ck, *root, s);
  parse_cluster(ck, *root, base, s);
  if (s.cluster.enabled() && s.cluster.dir.empty())
    s.cluster.dir = (std::filesystem::path(s.data_dir) / "raft").string();
  if (errors.size() != before)
    return std::nullopt;
  return s;
}

} // namespace loyalty

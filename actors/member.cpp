#include "actors/member.hpp"

#include "actors/atoms.hpp"
#include "actors/coalition.hpp"
#include "actors/household.hpp"
#include "config/log.hpp"
#include "ledger/record_views.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/skip.hpp>

#include <algorithm>
#include <cassert>
#include <optional>
#include <chrono>
#include <thread>

namespace loyalty::actors {

// -- program_counters ------------------------------------------------------------

void program_counters::load(const program& prog,
                            const std::vector<std::pair<std::uint64_t, std::int64_t>>& committed) {
  rules_ = std::make_unique<std::atomic<std::int64_t>[]>(prog.rules.size());
  rewards_ = std::make_unique<std::atomic<std::int64_t>[]>(prog.rewards.size());
  for (std::size_t i = 0; i < prog.rules.size(); ++i)
    rules_[i].store(0);
  for (std::size_t i = 0; i < prog.rewards.size(); ++i)
    rewards_[i].store(0);
  periods_ = std::make_unique<period_use[]>(prog.rules.size());
  for (const auto& [id, value] : committed) {
    const auto kind = static_cast<ledger::counter_kind>(id >> 56);
    const auto entity = static_cast<std::uint32_t>(id & 0xffffffffu);
    const earn_rule* r = prog.find_rule(entity);
    const std::size_t i = r != nullptr ? static_cast<std::size_t>(r - prog.rules.data()) : 0;
    switch (kind) {
      case ledger::counter_kind::rule_points:
        if (r != nullptr)
          rules_[i].store(value);
        break;
      case ledger::counter_kind::reward_units:
        if (const reward_def* w = prog.find_reward(entity))
          rewards_[static_cast<std::size_t>(w - prog.rewards.data())].store(value);
        break;
      // The latest period of each rule is the one still counting.
      case ledger::counter_kind::rule_day_points:
        if (r != nullptr && ledger::counter_period(id) >= periods_[i].day) {
          periods_[i].day = ledger::counter_period(id);
          periods_[i].day_points = value;
        }
        break;
      case ledger::counter_kind::rule_month_points:
        if (r != nullptr && ledger::counter_period(id) >= periods_[i].month) {
          periods_[i].month = ledger::counter_period(id);
          periods_[i].month_points = value;
        }
        break;
      case ledger::counter_kind::household_member:
        break;  // the household registry's (actors/household.hpp), not a program counter
    }
  }
}

namespace {
// What a period counter shows for `asked`: its points in its own period, 0
// in a later one, everything in an earlier one (closed for good).
std::int64_t used_in(std::uint32_t counted, std::int64_t points, std::uint32_t asked) noexcept {
  return asked == counted ? points : asked > counted ? 0 : INT64_MAX;
}
} // namespace

void program_counters::read_periods(const program& prog, std::size_t i, std::uint32_t day, std::uint32_t month,
                                    rule_total& out) const {
  if (!periods_ || !prog.rules[i].has_period_budget())
    return;
  const auto& p = periods_[i];
  std::lock_guard lock(p.m);
  out.day_points = used_in(p.day, p.day_points, day);
  out.month_points = used_in(p.month, p.month_points, month);
}

std::int64_t program_counters::reserve_periods(const program& prog, std::size_t i, std::uint32_t day,
                                               std::uint32_t month, std::int64_t want, rule_why& why) const {
  const earn_rule& r = prog.rules[i];
  if (!periods_ || !r.has_period_budget())
    return want;
  auto& p = periods_[i];
  std::lock_guard lock(p.m);
  if (day < p.day || month < p.month) {
    why = day < p.day ? rule_why::budget_day : rule_why::budget_month;
    return 0;
  }
  if (day > p.day) {
    p.day = day;
    p.day_points = 0;
  }
  if (month > p.month) {
    p.month = month;
    p.month_points = 0;
  }
  std::int64_t take = want;
  if (r.budget_per_day > 0 && (take = std::min(take, std::max<std::int64_t>(0, r.budget_per_day - p.day_points))) == 0)
    why = rule_why::budget_day;
  if (take > 0 && r.budget_per_month > 0 &&
      (take = std::min(take, std::max<std::int64_t>(0, r.budget_per_month - p.month_points))) == 0)
    why = rule_why::budget_month;
  p.day_points += take;  // within the budget, so within int64
  p.month_points += take;
  return take;
}

void program_counters::give_back(const program& prog, std::uint32_t rule_id, ledger::rule_budget_period period,
                                 std::uint32_t number, std::int64_t points) const {
  const earn_rule* r = prog.find_rule(rule_id);
  if (!periods_ || r == nullptr)
    return;
  auto& p = periods_[static_cast<std::size_t>(r - prog.rules.data())];
  std::lock_guard lock(p.m);
  switch (period) {
    case ledger::rule_budget_period::day:
      if (p.day == number)
        p.day_points -= points;
      break;
    case ledger::rule_budget_period::month:
      if (p.month == number)
        p.month_points -= points;
      break;
  }
}

std::atomic<std::int64_t>* program_counters::rule(const program& prog, std::uint32_t rule_id) const noexcept {
  const earn_rule* r = prog.find_rule(rule_id);
  return r != nullptr ? rule_at(prog, static_cast<std::size_t>(r - prog.rules.data())) : nullptr;
}

std::atomic<std::int64_t>* program_counters::reward(const program& prog, std::uint32_t reward_id) const noexcept {
  const reward_def* w = prog.find_reward(reward_id);
  if (w == nullptr || w->stock < 0 || !rewards_)
    return nullptr;
  return &rewards_[static_cast<std::size_t>(w - prog.rewards.data())];
}

void program_counters::undo(const program& prog, const std::vector<ledger::entry_detail>& details) const noexcept {
  for (const auto& d : details) {
    if (d.kind == static_cast<std::uint16_t>(ledger::detail_kind::rule_line) &&
        d.aux == static_cast<std::uint32_t>(ledger::rule_line_kind::rule)) {
      if (auto* c = rule(prog, d.id))
        c->fetch_sub(d.a);
    } else if (d.kind == static_cast<std::uint16_t>(ledger::detail_kind::reward)) {
      if (auto* c = reward(prog, d.id))
        c->fetch_sub(d.a);
    } else if (d.kind == static_cast<std::uint16_t>(ledger::detail_kind::rule_budget)) {
      give_back(prog, d.id, static_cast<ledger::rule_budget_period>(d.aux), static_cast<std::uint32_t>(d.b), d.a);
    }
  }
}

void program_counters::copy_of(const program& prog, const program_counters& live) {
  rules_.reset();
  rewards_.reset();
  if (live.rules_) {
    rules_ = std::make_unique<std::atomic<std::int64_t>[]>(prog.rules.size());
    for (std::size_t i = 0; i < prog.rules.size(); ++i)
      rules_[i].store(live.rules_[i].load(std::memory_order_relaxed), std::memory_order_relaxed);
  }
  if (live.rewards_) {
    rewards_ = std::make_unique<std::atomic<std::int64_t>[]>(prog.rewards.size());
    for (std::size_t i = 0; i < prog.rewards.size(); ++i)
      rewards_[i].store(live.rewards_[i].load(std::memory_order_relaxed), std::memory_order_relaxed);
  }
  periods_.reset();
  if (live.periods_) {
    periods_ = std::make_unique<period_use[]>(prog.rules.size());
    for (std::size_t i = 0; i < prog.rules.size(); ++i) {
      if (!prog.rules[i].has_period_budget())
        continue;
      std::lock_guard lock(live.periods_[i].m);
      periods_[i].day = live.periods_[i].day;
      periods_[i].month = live.periods_[i].month;
      periods_[i].day_points = live.periods_[i].day_points;
      periods_[i].month_points = live.periods_[i].month_points;
    }
  }
}

// -- reply_guard -------------------------------------------------------------

reply_guard::~reply_guard() {
  if (!answered_ && target_)
    answer(errc::unavailable);
}

void reply_guard::answer(errc code) {
  ledger::outcome o;
  o.code = code;
  answer(std::move(o));
}

void reply_guard::answer(ledger::outcome o) {
  answered_ = true;
  o.tag = tag_;
  std::vector<ledger::outcome> v;
  v.push_back(std::move(o));
  target_->complete(std::move(v));
}

void reply_guard::hand_over(ledger::op& o) {
  answered_ = true;
  o.target = target_;
  o.tag = tag_;
}

namespace {
class discarding_target final : public ledger::completion_target {
public:
  void complete(std::vector<ledger::outcome>&&) noexcept override {}
};
} // namespace

std::shared_ptr<ledger::completion_target> discard_target() {
  static const auto t = std::make_shared<discarding_target>();
  return t;
}

namespace {

// The answer of an enrollment that a welcome rule gave points, which posts
// two entries: the enrollment's seq (what `enroll` answers, docs/PROTOCOL.md),
// with the welcome entry's points, balance, lifetime, tier and lines. The
// writer completes both ops, in the order they were submitted, on its own
// thread; the client is answered once, after the second, so the points it
// is told of are committed.
class enrollment_answer final : public ledger::completion_target {
public:
  static constexpr std::uint64_t enrollment = 0, welcome = 1;  // the ops' tags

  enrollment_answer(std::shared_ptr<ledger::completion_target> target, std::uint64_t tag)
    : target_(std::move(target)), tag_(tag) {}
  ~enrollment_answer() override {
    if (answered_)
      return;
    ledger::outcome o;  // an op dropped unanswered, as reply_guard: a retry is safe
    o.code = errc::unavailable;
    forward(std::move(o));
  }
  enrollment_answer(const enrollment_answer&) = delete;
  enrollment_answer& operator=(const enrollment_answer&) = delete;

  void complete(std::vector<ledger::outcome>&& outcomes) noexcept override {
    for (auto& o : outcomes) {
      if (o.tag == enrollment) {
        enrolled_ = std::move(o);
        continue;
      }
      if (enrolled_.code != errc::ok) {
        forward(std::move(enrolled_));
        continue;
      }
      o.seq = enrolled_.seq;
      forward(std::move(o));
    }
  }

private:
  void forward(ledger::outcome o) noexcept {
    answered_ = true;
    o.tag = tag_;
    std::vector<ledger::outcome> v;
    v.push_back(std::move(o));
    target_->complete(std::move(v));
  }

  std::shared_ptr<ledger::completion_target> target_;
  std::uint64_t tag_;
  ledger::outcome enrolled_;
  bool answered_ = false;
};

// Hands an enrollment's answer to the writer: with the enrollment's own op,
// or with both when a welcome entry follows it (enrollment_answer).
void hand_over_enrollment(member_request& r, std::vector<ledger::op>& ops) {
  r.reply->hand_over(ops.back());
  if (ops.size() == 1)
    return;
  assert(ops.size() == 2);  // the enrollment, then its welcome entry
  auto answer = std::make_shared<enrollment_answer>(std::move(ops.back().target), ops.back().tag);
  ops.front().target = answer;
  ops.front().tag = enrollment_answer::enrollment;
  ops.back().target = std::move(answer);
  ops.back().tag = enrollment_answer::welcome;
}

} // namespace

// -- building entries ---------------------------------------------------------------

namespace {

using ledger::detail_kind;
using ledger::entry_detail;
using ledger::posting_side;

// Lots one spend may draw on: each becomes one detail record (two for a
// transfer), and an entry holds at most details_per_entry_max.
constexpr std::size_t takes_max = 60;

std::uint64_t u(std::int64_t v) noexcept { return static_cast<std::uint64_t>(v); }

entry_detail detail(detail_kind kind, std::uint32_t id, std::uint32_t brand, std::uint32_t aux, std::int64_t a,
                    std::uint64_t b = 0, std::uint64_t c = 0, std::uint16_t flags = 0) {
  return entry_detail{static_cast<std::uint16_t>(kind), flags, id, brand, aux, a, b, c};
}

void add_posting(ledger::op& op, std::uint64_t account, std::int64_t amount, posting_side side) {
  op.postings.push_back(ledger::posting{account, u(amount), static_cast<std::uint32_t>(side), 0});
}

std::uint64_t member_acct(std::uint64_t member) {
  return ledger::account_id(ledger::account_kind::member_points, member);
}
std::uint64_t brand_acct(ledger::account_kind k, std::uint32_t brand) { return ledger::account_id(k, brand); }

// Member points moves with its brand counter-account: credit (+) or debit (-)
// the member.
void move_points(ledger::op& op, std::uint64_t member, std::int64_t signed_points, std::uint64_t other) {
  if (signed_points > 0) {
    add_posting(op, other, signed_points, posting_side::debit);
    add_posting(op, member_acct(member), signed_points, posting_side::credit);
  } else if (signed_points < 0) {
    add_posting(op, member_acct(member), -signed_points, posting_side::debit);
    add_posting(op, other, -signed_points, posting_side::credit);
  }
}

void start(ledger::op& op, const member_request& r, ledger::entry_kind kind, std::uint32_t brand) {
  op.kind = ledger::op_kind::post;
  op.entry = kind;
  op.member_id = r.member;
  op.brand_id = brand;
  op.txn_id_bytes = r.txn_bytes;
  op.txn_id = r.txn;
  op.request_hash = r.hash;
}

// Change of the member's points account an op makes.
bool member_delta(const ledger::op& op, std::uint64_t member, std::int64_t& out) {
  std::int64_t d = 0;
  for (const auto& p : op.postings) {
    if (p.account != member_acct(member))
      continue;
    auto amt = static_cast<std::int64_t>(p.amount);
    if (p.side == static_cast<std::uint32_t>(posting_side::debit))
      amt = -amt;
    if (__builtin_add_overflow(d, amt, &d))
      return false;
  }
  out = d;
  return true;
}

// Applies a finished op to the tentative state and stamps the member state
// the writer journals. False (state must be reloaded) if the book refuses
// a record, which means a bug in the op's construction.
bool finish(member_data& m, const env& e, ledger::op& op, bool counterparty = false) {
  std::int64_t delta = 0;
  const std::uint64_t member = counterparty ? op.counterparty_id : op.member_id;
  if (!member_delta(op, member, delta))
    return false;
  std::string why;
  if (!ledger::apply_details(m.book, op.details, counterparty, 0, op.occurred_at_us, why)) {
    log(log_level::error, "member %llu: an entry it built does not fit its book: %s", static_cast<unsigned long long>(member), why.c_str());
    return false;
  }
  m.balance += delta;  // checked by the callers before building
  if (!counterparty) {
    op.has_member_state = true;
    op.lifetime_after = m.book.lifetime_earned;
    op.tier_after = effective_tier(e.prog, m.book.tier, e.now_us);
  }
  return true;
}

// A tier review due now, as the first detail of a member-initiated entry.
void add_review(const member_data& m, const env& e, ledger::op& op, ledger::tier_track& reviewed,
                const ledger::tier_track*& track) {
  track = &m.book.tier;
  auto rv = review_tier(e.prog, m.book.tier, e.now_us);
  if (!rv.changed)
    return;
  op.details.push_back(detail(detail_kind::tier_state, rv.secured, 0, rv.pending_tier, rv.prune_before_day,
                              rv.pending_at_us, rv.reviewed_through_us));
  reviewed = m.book.tier;
  apply_tier_review(reviewed, rv);
  track = &reviewed;
}

// The program-local day and month (ledger::rule_budget_period numbering) of
// the engine's clock: the periods whose budgets an earn handled now counts
// against.
struct budget_periods {
  std::uint32_t day = 0;
  std::uint32_t month = 0;
};
budget_periods periods_at(const program& prog, std::uint64_t now_us) noexcept {
  const std::uint32_t day = std::min(local_day(prog, now_us), ledger::counter_period_max);
  const civil_date c = civil_from_days(day);
  const std::int64_t month = c.year * 12 + static_cast<std::int64_t>(c.month) - 1;
  return {day, static_cast<std::uint32_t>(std::min<std::int64_t>(month, ledger::counter_period_max))};
}

std::vector<rule_total> totals_of(const env& e) {
  std::vector<rule_total> t;
  if (e.counters == nullptr)
    return t;
  budget_periods now{};
  bool now_known = false;
  for (std::size_t i = 0; i < e.prog.rules.size(); ++i) {
    const earn_rule& r = e.prog.rules[i];
    auto* c = e.counters->rule_at(e.prog, i);
    if (c == nullptr && !r.has_period_budget())
      continue;
    rule_total x{r.id, c != nullptr ? c->load(std::memory_order_relaxed) : 0, 0, 0};
    if (r.has_period_budget()) {
      if (!now_known)
        now = periods_at(e.prog, e.now_us);
      now_known = true;
      e.counters->read_periods(e.prog, i, now.day, now.month, x);
    }
    t.push_back(x);
  }
  return t;
}

// Takes up to `want` points of rule_id's period budgets and cap_total now;
// returns what it got (0: why names the limit used up).
std::int64_t reserve_rule(const env& e, std::uint32_t rule_id, std::int64_t want, rule_why& why) {
  const earn_rule* r = e.prog.find_rule(rule_id);
  if (r == nullptr || want <= 0)
    return want;
  const auto i = static_cast<std::size_t>(r - e.prog.rules.data());
  const budget_periods now = r->has_period_budget() ? periods_at(e.prog, e.now_us) : budget_periods{};
  const std::int64_t periods = e.counters->reserve_periods(e.prog, i, now.day, now.month, want, why);
  auto* c = e.counters->rule_at(e.prog, i);
  if (c == nullptr || periods == 0)
    return periods;
  std::int64_t cur = c->load();
  std::int64_t take = 0;
  do {
    take = std::min(periods, std::max<std::int64_t>(0, r->cap_total - cur));
  } while (!c->compare_exchange_weak(cur, cur + take));
  if (take < periods && r->has_period_budget()) {  // the periods give back what cap_total did not allow
    e.counters->give_back(e.prog, rule_id, ledger::rule_budget_period::day, now.day, periods - take);
    e.counters->give_back(e.prog, rule_id, ledger::rule_budget_period::month, now.month, periods - take);
  }
  if (take == 0)
    why = rule_why::budget_total;
  return take;
}

rule_verdict* verdict_of(earn_decision& d, std::uint32_t rule_id) noexcept {
  for (auto& v : d.verdicts)
    if (v.rule_id == rule_id)
      return &v;
  return nullptr;
}

// Reserves the points of capped and budgeted rule lines against the
// program-wide totals (lines that got less are trimmed, lines left with 0
// dropped; under best the runner-up then takes the place of a winner left
// with 0) and recomputes the sums.
void reserve_caps(const env& e, earn_decision& d) {
  if (e.counters == nullptr)
    return;
  for (auto& l : d.lines) {
    if (l.kind != line_kind::rule)
      continue;
    rule_why why = rule_why::counted;
    l.points = reserve_rule(e, l.rule_id, l.points, why);
    if (rule_verdict* v = verdict_of(d, l.rule_id)) {
      v->points = l.points;
      if (l.points == 0)
        v->why = why;
    }
    if (e.prog.resolution != rule_resolution::best || l.points > 0)
      continue;
    // The winner's budget ran out since it was evaluated: the next best.
    while (rule_verdict* next = runner_up(d.verdicts)) {
      for (auto& v : d.verdicts)
        if (v.why == rule_why::outscored)
          v.by = next->rule_id;
      why = rule_why::counted;
      const std::int64_t got = reserve_rule(e, next->rule_id, next->points, why);
      next->points = got;
      next->by = 0;
      next->why = got > 0 ? rule_why::best : why;
      if (got > 0) {
        l = {line_kind::rule, next->rule_id, got, next->matched_amount};
        break;
      }
    }
  }
  std::erase_if(d.lines, [](const rule_line& l) { return l.kind == line_kind::rule && l.points == 0; });
  std::int64_t sum = 0;
  for (const auto& l : d.lines)
    sum += l.points;  // only ever smaller than the checked sum
  if (e.prog.tier_rules.metric == tier_metric::qualifying_points)
    d.qualifying = sum;
  d.points = sum;
}

void add_lines(ledger::op& op, const earn_decision& d, std::uint32_t brand) {
  for (const auto& l : d.lines)
    op.details.push_back(detail(detail_kind::rule_line, l.rule_id, brand, static_cast<std::uint32_t>(l.kind), l.points,
                                u(l.matched_amount)));
}

// The rule_budget records of an earn's lines of rules with period budgets:
// what they count against today's and this month's budgets (the writer's
// counters, which a restart loads).
void add_budget_records(ledger::op& op, const env& e, const earn_decision& d) {
  budget_periods now{};
  bool now_known = false;
  for (const auto& l : d.lines) {
    const earn_rule* r = l.kind == line_kind::rule ? e.prog.find_rule(l.rule_id) : nullptr;
    if (r == nullptr || !r->has_period_budget() || l.points == 0)
      continue;
    if (!now_known)
      now = periods_at(e.prog, e.now_us);
    now_known = true;
    if (r->budget_per_day > 0)
      op.details.push_back(detail(detail_kind::rule_budget, r->id, 0,
                                  static_cast<std::uint32_t>(ledger::rule_budget_period::day), l.points, now.day));
    if (r->budget_per_month > 0)
      op.details.push_back(detail(detail_kind::rule_budget, r->id, 0,
                                  static_cast<std::uint32_t>(ledger::rule_budget_period::month), l.points, now.month));
  }
}

// Takes `points` out of lots: soonest-expiring unexpired lots first
// (available before pending), the rest becomes debt. For clawbacks and
// negative adjustments, which may reach pending points and go below zero.
// `first` is a lot to draw on before any other (the refunded earn's).
struct clawback {
  std::vector<ledger::lot_take> takes;
  std::int64_t debt = 0;
};
clawback plan_clawback(const ledger::member_book& book, std::uint64_t now, std::int64_t points, std::uint32_t first) {
  clawback c;
  std::vector<const ledger::lot*> order;
  for (const auto& l : book.lots)
    if (!lot_expired(l, now) && l.points > 0)
      order.push_back(&l);
  std::stable_sort(order.begin(), order.end(), [&](const ledger::lot* a, const ledger::lot* b) {
    auto key = [&](const ledger::lot* l) {
      return std::tuple(l->id != first, !lot_available(*l, now), l->expires_at_us == 0 ? UINT64_MAX : l->expires_at_us,
                        l->id);
    };
    return key(a) < key(b);
  });
  std::int64_t left = points;
  for (const auto* l : order) {
    if (left == 0 || c.takes.size() == takes_max)
      break;
    // Lots of a brand beyond the spend_brands_max-th are left alone (their
    // part becomes debt): the entry has postings for that many brands.
    c.takes.push_back({l->id, l->brand_id, 0, 0, 0});
    const bool too_many = issuer_count(c.takes) > ledger::spend_brands_max;
    c.takes.pop_back();
    if (too_many)
      continue;
    const std::int64_t t = std::min(left, l->points);
    c.takes.push_back({l->id, l->brand_id, t, l->expires_at_us, l->earned_at_us});
    left -= t;
  }
  c.debt = left;
  return c;
}

void add_takes(ledger::op& op, const std::vector<ledger::lot_take>& takes, std::uint32_t hold_id = 0) {
  for (const auto& t : takes)
    op.details.push_back(detail(detail_kind::lot_take, t.lot_id, t.brand_id, hold_id, t.points, t.expires_at_us,
                                t.earned_at_us));
}

void add_restore(ledger::op& op, const ledger::lot_take& t) {
  op.details.push_back(
    detail(detail_kind::lot_restore, t.lot_id, t.brand_id, 0, t.points, t.expires_at_us, t.earned_at_us));
}

void add_activity(ledger::op& op, std::uint64_t at) {
  op.details.push_back(detail(detail_kind::activity, 0, 0, 0, 0, at));
}

void add_text(ledger::op& op, std::string_view text) { ledger::append_note(op.details, text); }

std::uint32_t home_or(const member_data& m, std::uint32_t brand) { return brand != 0 ? brand : m.brand_id; }

errc fail(std::string& message, errc code, std::string text) {
  message = std::move(text);
  return code;
}

// Why a key limited to a brand or a partner may not post an entry of
// `brand` and `partner` (null: it may).
const char* out_of_scope(const member_request& r, std::uint32_t brand, std::uint32_t partner) {
  if (r.scope_brand != 0 && brand != r.scope_brand)
    return "the key may act for its own brand only";
  if (r.scope_partner != 0 && partner != r.scope_partner)
    return "the key may act for its own partner only";
  return nullptr;
}

// The key's scope, checked by each operation as soon as it knows the brand
// (and partner) of the entry it would post, before any business check: a
// refusal must never depend on, nor tell, the state of another brand's
// member, hold, purchase or redemption (docs/PROTOCOL.md section 2.2).
errc check_scope(const member_request& r, std::uint32_t brand, std::uint32_t partner, std::string& msg) {
  if (const char* why = out_of_scope(r, brand, partner))
    return fail(msg, errc::not_authorized, why);
  return errc::ok;
}

// negative_balance_max bounds the debt a clawback leaves. Points in open
// holds count in the balance, but a clawback cannot take them (they are
// captured or released later), so they make no room for debt: checking the
// balance instead let debt grow past the limit behind a large hold.
errc check_debt(const member_data& m, const env& e, const clawback& cb, std::string_view what, std::string& msg) {
  const std::int64_t limit = e.prog.lifecycle.negative_balance_max;
  std::int64_t debt = 0;
  if (__builtin_add_overflow(m.book.debt, cb.debt, &debt) || debt > limit)
    return fail(msg, errc::negative_balance_limit,
                std::string(what) + " would leave a debt of more than " + std::to_string(limit) + " points");
  return errc::ok;
}

errc check_balance(const member_data& m, std::int64_t plus) {
  std::int64_t b = 0;
  return __builtin_add_overflow(m.balance, plus, &b) ? errc::amount_overflow : errc::ok;
}

basket basket_of(const member_request& r, std::uint64_t occurred) {
  basket b;
  b.brand_id = r.brand_id;
  b.channel = r.channel;
  b.store = r.store;
  b.occurred_at_us = occurred;
  b.amount = r.amount_minor;
  b.lines = r.items;
  return b;
}

// -- the operations ------------------------------------------------------------------------

// New points repay the member's debt first (docs/PROTOCOL.md, refund): of a
// lot of `points`, min(points, debt left) go to the debt and the lot keeps
// the rest. Appends the lot (the id advances even if nothing is left of it)
// and returns what was repaid; `debt_left` goes down by it.
std::int64_t add_lot(ledger::op& op, std::uint32_t id, std::uint32_t brand, std::int64_t points,
                     std::uint64_t available_at, std::uint64_t expires_at, std::int64_t& debt_left,
                     std::uint16_t flags = 0) {
  const std::int64_t repaid = std::min(points, debt_left);
  debt_left -= repaid;
  op.details.push_back(detail(detail_kind::lot_add, id, brand, 0, points - repaid, available_at, expires_at, flags));
  return repaid;
}

// New points credited by an earn, event, partner earn or credit adjustment
// that occurred at `at`: a lot, or a top-up of the member's newest lot when
// they may join it (ledger::top_up_target), which keeps the book of a member
// who earns often at a few lots. Debt is repaid first, as in add_lot.
std::int64_t credit_lot(ledger::op& op, const ledger::member_book& book, std::uint32_t brand, std::int64_t points,
                        std::uint64_t at, std::uint64_t available_at, std::uint64_t expires_at,
                        std::int64_t& debt_left) {
  const std::int64_t repaid = std::min(points, debt_left);
  if (const auto* l = ledger::top_up_target(book, brand, points - repaid, available_at, expires_at, at)) {
    debt_left -= repaid;
    op.details.push_back(detail(detail_kind::lot_top_up, l->id, brand, 0, points - repaid, available_at, expires_at));
    return repaid;
  }
  return add_lot(op, book.next_lot_id, brand, points, available_at, expires_at, debt_left);
}

void add_repayment(ledger::op& op, std::uint32_t brand, std::int64_t repaid, std::uint16_t flags = 0) {
  if (repaid > 0)
    op.details.push_back(detail(detail_kind::debt, 0, brand, 0, -repaid, 0, 0, flags));
}

// Whether the capped rule lines of an entry reserve their points in the
// program-wide counters (an entry to post) or only read them (a quote:
// evaluate_earn already limits each line by what the counters have left).
enum class caps : bool { read, reserve };

// The shared part of an earn and an event: checks, cap reservation, the
// entry's start and its lot (points of a purchase are pending until
// available_at; the lot expires by the program's rule from `at`).
errc credit(const member_data& m, const env& e, const member_request& r, earn_decision& d, ledger::entry_kind kind,
            std::uint32_t brand, std::uint64_t at, std::uint64_t available_at, caps use, ledger::op& op) {
  if (errc c = check_balance(m, d.points); c != errc::ok)
    return c;
  if (std::int64_t life = 0; __builtin_add_overflow(m.book.lifetime_earned, d.points, &life))
    return errc::amount_overflow;
  if (use == caps::reserve)
    reserve_caps(e, d);
  start(op, r, kind, brand);
  op.occurred_at_us = at;
  op.points = d.points;
  std::int64_t debt = m.book.debt;
  add_repayment(op, brand, credit_lot(op, m.book, brand, d.points, at, available_at, lot_expiry(e.prog, at), debt));
  return errc::ok;
}

// ... and its end: the rule lines, the activity, the postings.
void credit_tail(ledger::op& op, const env& e, const earn_decision& d, const member_request& r, std::uint64_t at) {
  add_lines(op, d, op.brand_id);
  add_budget_records(op, e, d);
  add_activity(op, at);
  move_points(op, r.member, d.points, brand_acct(ledger::account_kind::brand_issued, op.brand_id));
}

// The entry of an earn of r on m's book now: the due tier review, the
// decision, the lot, the qualifying delta, the rule lines, the postings.
// Changes nothing of m; `use` says whether capped lines reserve their points
// (an earn) or not (a quote, which builds the same entry and posts nothing).
// verdicts: what became of each purchase rule, when not null.
errc earn_entry(const member_data& m, const env& e, const member_request& r, caps use, ledger::op& op,
                std::string& msg, std::vector<rule_verdict>* verdicts = nullptr) {
  if (errc c = check_scope(r, r.brand_id, 0, msg); c != errc::ok)
    return c;
  if (e.prog.find_brand(r.brand_id) == nullptr)
    return errc::unknown_brand;
  const std::uint64_t occurred = r.occurred_at_us != 0 ? r.occurred_at_us : e.now_us;
  ledger::tier_track reviewed;
  const ledger::tier_track* track = nullptr;
  add_review(m, e, op, reviewed, track);
  const auto totals = totals_of(e);
  auto d = evaluate_earn(e.prog, m.book, effective_tier(e.prog, *track, e.now_us), basket_of(r, occurred), totals,
                         verdicts != nullptr);
  if (d.code == errc::invalid_argument)
    return fail(msg, d.code, "line item amounts do not add up to the amount");
  if (d.code != errc::ok)
    return d.code;
  if (errc c = credit(m, e, r, d, ledger::entry_kind::earn, r.brand_id, occurred,
                      lot_available_at(e.prog, occurred), use, op);
      c != errc::ok)
    return c;
  op.amount_minor = r.amount_minor;
  if (d.qualifying != 0)
    op.details.push_back(detail(detail_kind::qualify, local_day(e.prog, occurred), 0, 0, d.qualifying));
  credit_tail(op, e, d, r, occurred);
  if (verdicts != nullptr)
    *verdicts = std::move(d.verdicts);
  return errc::ok;
}

errc do_earn(member_data& m, const env& e, const member_request& r, std::vector<ledger::op>& ops, std::string& msg) {
  ledger::op op;
  if (!explains_earns(e.prog)) {
    if (errc c = earn_entry(m, e, r, caps::reserve, op, msg); c != errc::ok)
      return c;
  } else {
    auto n = std::make_shared<answer_note>();
    if (errc c = earn_entry(m, e, r, caps::reserve, op, msg, &n->rules); c != errc::ok)
      return c;
    n->has_rules = true;
    op.note = std::move(n);
  }
  ops.push_back(std::move(op));
  return errc::ok;
}

errc do_event(member_data& m, const env& e, const member_request& r, std::vector<ledger::op>& ops, std::string& msg) {
  const std::uint64_t at = r.occurred_at_us != 0 ? r.occurred_at_us : e.now_us;
  const std::uint32_t brand = home_or(m, r.brand_id);
  if (errc c = check_scope(r, brand, 0, msg); c != errc::ok)
    return c;
  ledger::op op;
  ledger::tier_track reviewed;
  const ledger::tier_track* track = nullptr;
  add_review(m, e, op, reviewed, track);
  occasion when{r.brand_id, r.channel, at};
  auto d = evaluate_event(e.prog, m.book, r.event_kind, when, totals_of(e));
  if (d.code == errc::invalid_argument)
    return fail(msg, errc::unknown_event, "no event rule answers '" + r.event_kind + "'");
  if (d.code != errc::ok)
    return d.code;
  if (errc c = credit(m, e, r, d, ledger::entry_kind::event, brand, at, 0, caps::reserve, op); c != errc::ok)
    return c;
  credit_tail(op, e, d, r, at);
  ops.push_back(std::move(op));
  return errc::ok;
}

// `for_brands`: the points will be spent for a brand or partner, whose
// postings need one credit per issuing brand (ledger::spend_brands_max).
errc plan(const member_data& m, const env& e, std::int64_t points, spend_plan& p, std::string& msg,
          bool for_brands = true) {
  p = plan_spend(m.book, e.now_us, points);
  if (p.code != errc::ok)
    return p.code;
  if (p.takes.size() > takes_max)
    return fail(msg, errc::invalid_argument,
                "the points are spread over more than " + std::to_string(takes_max) + " lots; spend them in two steps");
  if (for_brands && issuer_count(p.takes) > ledger::spend_brands_max)
    return fail(msg, errc::invalid_argument,
                "the points come from more than " + std::to_string(ledger::spend_brands_max) +
                  " brands; spend them in two steps");
  return errc::ok;
}

// r.points leave the member's lots for `party` (a brand where they are
// redeemed, a partner where they are burned): one entry of `kind` at
// `brand`.
errc spend(member_data& m, const env& e, const member_request& r, ledger::entry_kind kind, std::uint32_t brand,
           std::uint32_t partner_id, spend_purpose purpose, std::uint32_t party, std::vector<ledger::op>& ops,
           std::string& msg) {
  spend_plan p;
  if (errc c = plan(m, e, r.points, p, msg); c != errc::ok)
    return c;
  ledger::op op;
  ledger::tier_track reviewed;
  const ledger::tier_track* track = nullptr;
  add_review(m, e, op, reviewed, track);
  start(op, r, kind, brand);
  op.partner_id = static_cast<std::uint16_t>(partner_id);
  op.occurred_at_us = e.now_us;
  op.points = r.points;
  op.require_nonnegative = true;
  add_takes(op, p.takes);
  add_activity(op, e.now_us);
  if (errc c = post_spend(op, e.prog, r.member, p.takes, 0, purpose, party, msg); c != errc::ok)
    return c;
  ops.push_back(std::move(op));
  return errc::ok;
}

errc do_redeem(member_data& m, const env& e, const member_request& r, std::vector<ledger::op>& ops, std::string& msg) {
  if (r.points <= 0)
    return errc::invalid_amount;
  // Where the points are redeemed: as asked, else a brand key's brand, else
  // the member's home brand.
  const std::uint32_t brand = r.brand_id != 0 ? r.brand_id : r.scope_brand != 0 ? r.scope_brand : m.brand_id;
  if (errc c = check_scope(r, brand, 0, msg); c != errc::ok)
    return c;
  if (e.prog.find_brand(brand) == nullptr)
    return errc::unknown_brand;
  return spend(m, e, r, ledger::entry_kind::redeem, brand, 0, spend_purpose::redeem, brand, ops, msg);
}

errc do_redeem_reward(member_data& m, const env& e, const member_request& r, std::vector<ledger::op>& ops,
                      std::string& msg) {
  const reward_def* w = e.prog.find_reward(r.reward_id);
  if (w == nullptr)
    return errc::unknown_reward;
  const std::uint32_t brand = home_or(m, w->brand_id);
  if (errc c = check_scope(r, brand, 0, msg); c != errc::ok)
    return c;
  spend_plan p;
  if (errc c = plan(m, e, w->cost, p, msg); c != errc::ok)
    return c;
  if (auto* stock = e.counters ? e.counters->reward(e.prog, w->id) : nullptr) {
    if (stock->fetch_add(1) + 1 > w->stock) {
      stock->fetch_sub(1);
      return errc::out_of_stock;
    }
  }
  ledger::op op;
  ledger::tier_track reviewed;
  const ledger::tier_track* track = nullptr;
  add_review(m, e, op, reviewed, track);
  start(op, r, ledger::entry_kind::redeem_reward, brand);
  op.occurred_at_us = e.now_us;
  op.points = w->cost;
  op.require_nonnegative = true;
  add_takes(op, p.takes);
  op.details.push_back(detail(detail_kind::reward, w->id, brand, 0, 1));
  add_activity(op, e.now_us);
  if (errc c = post_spend(op, e.prog, r.member, p.takes, 0, spend_purpose::redeem, brand, msg); c != errc::ok) {
    if (e.counters != nullptr)
      e.counters->undo(e.prog, op.details);  // the unit reserved above
    return c;
  }
  ops.push_back(std::move(op));
  return errc::ok;
}

errc do_hold(member_data& m, const env& e, const member_request& r, std::vector<ledger::op>& ops, std::string& msg) {
  if (r.points <= 0)
    return errc::invalid_amount;
  const auto& lc = e.prog.lifecycle;
  const std::uint64_t ttl = r.ttl_s != 0 ? r.ttl_s : lc.hold_ttl_default_s;
  if (ttl > lc.hold_ttl_max_s)
    return fail(msg, errc::invalid_argument, "ttl_s is over the program's hold_ttl_max_s (" +
                                               std::to_string(lc.hold_ttl_max_s) + ")");
  // Where the hold will be captured: as asked, else a brand key's brand,
  // else the member's home brand (as for redeem).
  const std::uint32_t brand = r.brand_id != 0 ? r.brand_id : r.scope_brand != 0 ? r.scope_brand : m.brand_id;
  if (errc c = check_scope(r, brand, 0, msg); c != errc::ok)
    return c;
  if (e.prog.find_brand(brand) == nullptr)
    return errc::unknown_brand;
  spend_plan p;
  if (errc c = plan(m, e, r.points, p, msg); c != errc::ok)
    return c;
  const std::uint32_t id = m.book.next_hold_id;
  ledger::op op;
  ledger::tier_track reviewed;
  const ledger::tier_track* track = nullptr;
  add_review(m, e, op, reviewed, track);
  start(op, r, ledger::entry_kind::hold, brand);
  op.occurred_at_us = e.now_us;
  op.points = r.points;
  op.details.push_back(detail(detail_kind::hold_open, id, brand, 0, r.points, e.now_us + ttl * 1'000'000ull));
  add_takes(op, p.takes, id);
  op.seq_to = std::make_shared<std::atomic<std::uint64_t>>(0);
  std::erase_if(m.hold_seqs, [id](const auto& h) { return h.first == id; });  // of a hold that never opened
  m.hold_seqs.emplace_back(id, op.seq_to);
  ops.push_back(std::move(op));
  return errc::ok;
}

const ledger::hold* find_hold(const member_data& m, std::uint32_t id) {
  for (const auto& h : m.book.holds)
    if (h.id == id)
      return &h;
  return nullptr;
}

// The ref of an entry that closes hold `h`: the seq of the entry that
// opened it, known to the book once it was folded from the ledger, else
// (opened since) put by the writer where the closing entry reads it.
void ref_hold(ledger::op& op, const member_data& m, const ledger::hold& h) {
  op.ref_seq = h.source_seq;
  if (op.ref_seq != 0)
    return;
  for (const auto& [id, seq] : m.hold_seqs)
    if (id == h.id)
      op.ref_seq_from = seq;
}

// Drops the cells of holds no longer open.
void forget_closed_holds(member_data& m) {
  std::erase_if(m.hold_seqs, [&m](const auto& h) { return find_hold(m, h.first) == nullptr; });
}

// Closes a hold: `captured` points spent (taken from its takes in order),
// the rest restored to the lots they came from. Returns the takes spent.
std::vector<ledger::lot_take> close_hold(ledger::op& op, const ledger::hold& h, std::int64_t captured,
                                         ledger::hold_close_reason why) {
  op.details.push_back(detail(detail_kind::hold_close, h.id, h.brand_id, static_cast<std::uint32_t>(why), captured));
  std::vector<ledger::lot_take> spent;
  std::int64_t spend = captured;
  for (auto t : h.takes) {
    const std::int64_t used = std::min(spend, t.points);
    spend -= used;
    if (used > 0) {
      spent.push_back(t);
      spent.back().points = used;
    }
    t.points -= used;
    if (t.points > 0)
      add_restore(op, t);
  }
  return spent;
}

errc do_capture(member_data& m, const env& e, const member_request& r, std::vector<ledger::op>& ops, std::string& msg) {
  const ledger::hold* h = find_hold(m, r.hold_id);
  if (h == nullptr)
    return errc::unknown_hold;
  if (errc c = check_scope(r, h->brand_id, 0, msg); c != errc::ok)
    return c;
  const std::int64_t pts = r.points != 0 ? r.points : h->points;
  if (pts <= 0 || pts > h->points)
    return errc::invalid_amount;
  ledger::op op;
  ledger::tier_track reviewed;
  const ledger::tier_track* track = nullptr;
  add_review(m, e, op, reviewed, track);
  start(op, r, ledger::entry_kind::capture, h->brand_id);
  op.occurred_at_us = e.now_us;
  op.points = pts;
  ref_hold(op, m, *h);
  const auto spent = close_hold(op, *h, pts, ledger::hold_close_reason::captured);
  add_activity(op, e.now_us);
  if (errc c = post_spend(op, e.prog, r.member, spent, 0, spend_purpose::redeem, h->brand_id, msg); c != errc::ok)
    return c;
  ops.push_back(std::move(op));
  return errc::ok;
}

errc do_release(member_data& m, const env& e, const member_request& r, std::vector<ledger::op>& ops,
                std::string& msg) {
  const ledger::hold* h = find_hold(m, r.hold_id);
  if (h == nullptr)
    return errc::unknown_hold;
  if (errc c = check_scope(r, h->brand_id, 0, msg); c != errc::ok)
    return c;
  ledger::op op;
  start(op, r, ledger::entry_kind::release, h->brand_id);
  op.occurred_at_us = e.now_us;
  op.points = h->points;
  ref_hold(op, m, *h);
  close_hold(op, *h, 0, ledger::hold_close_reason::released);
  ops.push_back(std::move(op));
  return errc::ok;
}

// The committed entry a refund or reversal refers to, and what later
// entries already did to it (committed: the caller settles in-flight ops
// first).
struct referenced {
  ledger::ledger::entry entry;
  std::vector<ledger::ledger::entry> followers;  // entries of the member with ref_seq == entry seq
};

errc find_referenced(const env& e, const member_request& r, std::initializer_list<ledger::entry_kind> kinds,
                     referenced& out, std::string& msg) {
  auto seq = e.ledger->find_txn(r.ref);
  if (!seq)
    return fail(msg, errc::unknown_txn, "no transaction with txn id '" + r.ref + "'");
  auto entry = e.ledger->read_entry(*seq);
  bool kind_ok = false;
  if (entry)
    for (auto k : kinds)
      kind_ok = kind_ok || entry->header.kind == static_cast<std::uint16_t>(k);
  if (!entry || !kind_ok || entry->header.member_id != r.member)
    return fail(msg, errc::unknown_txn, "txn id '" + r.ref + "' is not one of this member's transactions this applies to");
  out.entry = std::move(*entry);
  // The member's entries newer than the referenced one, newest first.
  std::uint64_t before = 0;
  for (;;) {
    auto page = e.ledger->history(r.member, before, 256);
    bool reached = page.empty();
    for (auto& x : page) {
      if (x.header.seq <= *seq) {
        reached = true;
        break;
      }
      if (x.header.ref_seq == *seq && x.header.member_id == r.member)
        out.followers.push_back(std::move(x));
    }
    if (reached || page.size() < 256)
      break;
    before = page.back().header.seq;
  }
  return errc::ok;
}

std::vector<rule_line> lines_of(const std::vector<entry_detail>& details) {
  std::vector<rule_line> v;
  for (const auto& d : details)
    if (d.kind == static_cast<std::uint16_t>(detail_kind::rule_line))
      v.push_back({static_cast<line_kind>(d.aux), d.id, d.a, static_cast<std::int64_t>(d.b)});
  return v;
}

// A refund's clawback gives back to the program-wide limits what it takes
// from rule lines, as the writer's counters (net of clawbacks) count it: to
// cap_total, and to the budgets of the periods the earn counted against
// (its rule_budget records, repeated with the clawed-back points). The live
// counters follow at once (a period's only while it is still counting).
void give_budgets_back(ledger::op& op, const env& e, const earn_decision& claw,
                       const std::vector<entry_detail>& earned) {
  for (const auto& l : claw.lines) {
    if (l.kind != line_kind::rule || l.points == 0)
      continue;
    if (auto* c = e.counters != nullptr ? e.counters->rule(e.prog, l.rule_id) : nullptr)
      c->fetch_add(l.points);
    for (const auto& x : earned) {
      if (x.kind != static_cast<std::uint16_t>(detail_kind::rule_budget) || x.id != l.rule_id)
        continue;
      op.details.push_back(detail(detail_kind::rule_budget, x.id, 0, x.aux, l.points, x.b));
      if (e.counters != nullptr)
        e.counters->give_back(e.prog, x.id, static_cast<ledger::rule_budget_period>(x.aux),
                              static_cast<std::uint32_t>(x.b), -l.points);
    }
  }
}

errc do_refund(member_data& m, const env& e, const member_request& r, std::vector<ledger::op>& ops, std::string& msg) {
  referenced ref;
  if (errc c = find_referenced(e, r, {ledger::entry_kind::earn}, ref, msg); c != errc::ok)
    return c;
  if (errc c = check_scope(r, ref.entry.header.brand_id, 0, msg); c != errc::ok)
    return c;
  const auto original = lines_of(ref.entry.details);
  std::vector<std::int64_t> kept, refunded(original.size(), 0);
  for (const auto& l : original)
    kept.push_back(l.points);
  std::int64_t before = 0;
  for (const auto& f : ref.followers) {
    if (f.header.kind != static_cast<std::uint16_t>(ledger::entry_kind::refund))
      continue;
    before += f.header.amount_minor;
    auto back = lines_of(f.details);
    for (std::size_t i = 0; i < back.size() && i < original.size(); ++i) {
      kept[i] += back[i].points;
      refunded[i] -= back[i].matched_amount;
    }
  }
  const std::int64_t whole = ref.entry.header.amount_minor;
  auto d = refund_clawback(e.prog, original, kept, refunded, before, r.amount_minor, r.items);
  if (d.code == errc::already_reversed)
    return fail(msg, d.code, "the purchase is already refunded in full");
  if (d.code == errc::invalid_amount) {
    std::int64_t asked = r.amount_minor;
    for (const auto& it : r.items)
      asked += it.amount;
    const std::int64_t base = [&] {
      for (const auto& l : original)
        if (l.kind == line_kind::base)
          return l.matched_amount;
      return std::int64_t{0};
    }();
    if (!r.items.empty() && asked == 0)
      return fail(msg, d.code, "the items refunded add up to 0: nothing to refund");
    return fail(msg, d.code, "the refund (" + std::to_string(asked) + ") is more than what is left of the purchase (" +
                               std::to_string(std::min(whole, base) - before) + " of " + std::to_string(whole) + ")");
  }
  if (d.code != errc::ok)
    return d.code;
  std::int64_t refund_amount = r.amount_minor;
  if (!r.items.empty()) {
    refund_amount = 0;
    for (const auto& it : r.items)
      refund_amount += it.amount;  // checked by refund_clawback
  } else if (refund_amount == 0) {
    refund_amount = whole - before;
  }
  const std::int64_t claw = -d.points;
  std::uint32_t earn_lot = 0;
  for (const auto& x : ref.entry.details)
    if (x.kind == static_cast<std::uint16_t>(detail_kind::lot_add) ||
        x.kind == static_cast<std::uint16_t>(detail_kind::lot_top_up))
      earn_lot = x.id;  // the lot it made or joined
  for (const auto& f : ref.followers)
    if (f.header.kind == static_cast<std::uint16_t>(ledger::entry_kind::release_pending))
      for (const auto& x : f.details)
        if (x.kind == static_cast<std::uint16_t>(detail_kind::lot_release) && x.c != 0)
          earn_lot = static_cast<std::uint32_t>(x.c);  // its released points left that lot for this one
  auto cb = plan_clawback(m.book, e.now_us, claw, earn_lot);
  if (errc c = check_debt(m, e, cb, "the refund", msg); c != errc::ok)
    return c;
  const std::uint32_t brand = ref.entry.header.brand_id;
  ledger::op op;
  ledger::tier_track reviewed;
  const ledger::tier_track* track = nullptr;
  add_review(m, e, op, reviewed, track);
  start(op, r, ledger::entry_kind::refund, brand);
  op.occurred_at_us = r.occurred_at_us != 0 ? r.occurred_at_us : e.now_us;
  op.amount_minor = refund_amount;
  op.points = claw;
  op.ref_seq = ref.entry.header.seq;
  add_lines(op, d, brand);
  add_takes(op, cb.takes);
  if (cb.debt > 0)
    op.details.push_back(detail(detail_kind::debt, 0, brand, 0, cb.debt));
  if (d.qualifying != 0)
    op.details.push_back(
      detail(detail_kind::qualify, local_day(e.prog, ref.entry.header.occurred_at_us), 0, 0, d.qualifying));
  if (errc c = post_spend(op, e.prog, r.member, cb.takes, cb.debt, spend_purpose::clawback, brand, msg); c != errc::ok)
    return c;
  give_budgets_back(op, e, d, ref.entry.details);
  ops.push_back(std::move(op));
  return errc::ok;
}

// A purchase's points that are still pending become spendable now
// (docs/PROTOCOL.md, release_pending): the lot the purchase made or joined,
// at most the points the purchase put into it (points of another purchase
// that joined the same lot stay pending: the released part then becomes a
// lot of its own). No postings: pending points are already the member's.
errc do_release_pending(member_data& m, const env& e, const member_request& r, std::vector<ledger::op>& ops,
                        std::string& msg) {
  referenced ref;
  if (errc c = find_referenced(e, r, {ledger::entry_kind::earn}, ref, msg); c != errc::ok)
    return c;
  if (errc c = check_scope(r, ref.entry.header.brand_id, 0, msg); c != errc::ok)
    return c;
  for (const auto& f : ref.followers)
    if (f.header.kind == static_cast<std::uint16_t>(ledger::entry_kind::release_pending))
      return fail(msg, errc::nothing_pending, "the purchase's pending points were already released");
  std::uint32_t lot_id = 0;
  std::int64_t credited = 0;
  for (const auto& x : ref.entry.details)
    if (x.kind == static_cast<std::uint16_t>(detail_kind::lot_add) ||
        x.kind == static_cast<std::uint16_t>(detail_kind::lot_top_up)) {
      lot_id = x.id;
      credited = x.a;
    }
  const ledger::lot* l = nullptr;
  for (const auto& x : m.book.lots)
    if (x.id == lot_id)
      l = &x;
  if (l == nullptr || credited <= 0 || l->available_at_us <= e.now_us || lot_expired(*l, e.now_us))
    return fail(msg, errc::nothing_pending,
                "none of the purchase's points are pending now (available already, clawed back, spent or expired)");
  const std::int64_t points = std::min(l->points, credited);
  ledger::op op;
  start(op, r, ledger::entry_kind::release_pending, l->brand_id);
  op.occurred_at_us = e.now_us;
  op.points = points;
  op.ref_seq = ref.entry.header.seq;
  op.details.push_back(detail(detail_kind::lot_release, l->id, l->brand_id, 0, points, e.now_us,
                              points == l->points ? 0 : m.book.next_lot_id));
  ops.push_back(std::move(op));
  return errc::ok;
}

errc do_reverse(member_data& m, const env& e, const member_request& r, std::vector<ledger::op>& ops, std::string& msg) {
  referenced ref;
  if (errc c = find_referenced(
        e, r, {ledger::entry_kind::redeem, ledger::entry_kind::redeem_reward, ledger::entry_kind::partner_burn}, ref, msg);
      c != errc::ok)
    return c;
  // A partner burn is reversed by its partner (or an admin), nobody else; a
  // partner's key reverses nothing but its own burns.
  const bool burn = ref.entry.header.kind == static_cast<std::uint16_t>(ledger::entry_kind::partner_burn);
  if (r.scope_partner != 0 && (!burn || ref.entry.header.partner_id != r.scope_partner))
    return fail(msg, errc::not_authorized, "the key may reverse its own partner's burns only");
  if (r.scope_brand != 0 && burn)
    return fail(msg, errc::not_authorized, "a partner burn is reversed by its partner");
  if (errc c = check_scope(r, ref.entry.header.brand_id, ref.entry.header.partner_id, msg); c != errc::ok)
    return c;
  for (const auto& f : ref.followers)
    if (f.header.kind == static_cast<std::uint16_t>(ledger::entry_kind::reverse_redemption))
      return fail(msg, errc::already_reversed, "the redemption is already reversed");
  const std::uint32_t brand = ref.entry.header.brand_id;
  ledger::op op;
  start(op, r, ledger::entry_kind::reverse_redemption, brand);
  op.partner_id = ref.entry.header.partner_id;
  op.occurred_at_us = e.now_us;
  op.ref_seq = ref.entry.header.seq;
  std::int64_t restored = 0;
  std::vector<std::pair<std::uint32_t, std::int64_t>> expired;  // per lot brand: stays expired (breakage)
  for (const auto& x : ref.entry.details) {
    if (x.kind == static_cast<std::uint16_t>(detail_kind::reward)) {
      op.details.push_back(detail(detail_kind::reward, x.id, x.brand, 0, -x.a));
      if (auto* c = e.counters ? e.counters->reward(e.prog, x.id) : nullptr)
        c->fetch_sub(x.a);
    }
    if (x.kind != static_cast<std::uint16_t>(detail_kind::lot_take))
      continue;
    ledger::lot_take t{x.id, x.brand, x.a, x.b, x.c};
    if (t.expires_at_us != 0 && t.expires_at_us <= e.now_us) {
      auto it = std::find_if(expired.begin(), expired.end(), [&](const auto& p) { return p.first == t.brand_id; });
      if (it == expired.end())
        expired.emplace_back(t.brand_id, t.points);
      else
        it->second += t.points;  // takes of one entry sum within int64 (the entry posted them)
      continue;
    }
    add_restore(op, t);
    restored += t.points;
  }
  auto undo = [&](errc c) {
    if (e.counters != nullptr)
      e.counters->undo(e.prog, op.details);  // the reward unit taken back above
    return c;
  };
  if (errc c = check_balance(m, restored); c != errc::ok)
    return undo(c);
  op.points = restored;
  // The redemption's credits to the redeemed accounts are debited back
  // (mirrored, whatever brands they named), the points go to the member or,
  // for lots that expired since, to their brand's breakage; its settlements
  // are undone.
  for (const auto& p : ref.entry.postings)
    if (ledger::kind_of(p.account) == ledger::account_kind::brand_redeemed &&
        p.side == static_cast<std::uint32_t>(posting_side::credit))
      add_posting(op, p.account, static_cast<std::int64_t>(p.amount), posting_side::debit);
  if (restored > 0)
    add_posting(op, member_acct(r.member), restored, posting_side::credit);
  for (const auto& [lot_brand, pts] : expired)
    add_posting(op, brand_acct(ledger::account_kind::brand_expired, lot_brand), pts, posting_side::credit);
  if (errc c = post_settle_reversal(op, ref.entry.details); c != errc::ok)
    return undo(c);
  ops.push_back(std::move(op));
  return errc::ok;
}

// A member earns points at a partner: the partner's brand issues them (the
// lot is that brand's, available at once, expiring by the lifecycle) and the
// partner owes the brand for them. They count in lifetime, not toward tier
// qualification.
errc do_partner_earn(member_data& m, const env& e, const member_request& r, std::vector<ledger::op>& ops,
                     std::string& msg) {
  // Admitted again under this snapshot: the version journaled with the entry.
  if (errc c = partner_admission(e.prog, r.partner_id); c != errc::ok)
    return c;
  const partner_def* pd = e.prog.find_partner(r.partner_id);
  if (errc c = check_scope(r, pd->brand_id, pd->id, msg); c != errc::ok)
    return c;
  if (r.points <= 0 || r.amount_minor < 0)
    return errc::invalid_amount;
  if (errc c = check_balance(m, r.points); c != errc::ok)
    return c;
  if (std::int64_t life = 0; __builtin_add_overflow(m.book.lifetime_earned, r.points, &life))
    return errc::amount_overflow;
  const std::uint64_t at = r.occurred_at_us != 0 ? r.occurred_at_us : e.now_us;
  ledger::op op;
  ledger::tier_track reviewed;
  const ledger::tier_track* track = nullptr;
  add_review(m, e, op, reviewed, track);
  start(op, r, ledger::entry_kind::partner_earn, pd->brand_id);
  op.partner_id = static_cast<std::uint16_t>(pd->id);
  op.occurred_at_us = at;
  op.amount_minor = r.amount_minor;
  op.points = r.points;
  std::int64_t debt = m.book.debt;
  add_repayment(op, pd->brand_id, credit_lot(op, m.book, pd->brand_id, r.points, at, 0, lot_expiry(e.prog, at), debt));
  op.details.push_back(detail(detail_kind::rule_line, pd->id, pd->brand_id,
                              static_cast<std::uint32_t>(ledger::rule_line_kind::partner), r.points, u(r.amount_minor)));
  add_activity(op, at);
  move_points(op, r.member, r.points, brand_acct(ledger::account_kind::brand_issued, pd->brand_id));
  if (errc c = post_partner_earn(op, *pd, r.points); c != errc::ok)
    return fail(msg, c, "the partner's cost of these points does not fit in 64 bits");
  ops.push_back(std::move(op));
  return errc::ok;
}

// A member burns points at a partner: they leave the member's lots like a
// redemption, and each issuing brand owes the partner for its points.
errc do_partner_burn(member_data& m, const env& e, const member_request& r, std::vector<ledger::op>& ops,
                     std::string& msg) {
  if (errc c = partner_admission(e.prog, r.partner_id); c != errc::ok)
    return c;
  const partner_def* pd = e.prog.find_partner(r.partner_id);
  if (errc c = check_scope(r, pd->brand_id, pd->id, msg); c != errc::ok)
    return c;
  if (r.points <= 0)
    return errc::invalid_amount;
  return spend(m, e, r, ledger::entry_kind::partner_burn, pd->brand_id, pd->id, spend_purpose::burn, pd->id, ops, msg);
}

errc do_adjust(member_data& m, const env& e, const member_request& r, std::vector<ledger::op>& ops, std::string& msg) {
  if (r.points == 0 || r.points == INT64_MIN)
    return errc::invalid_amount;
  const std::uint32_t brand = home_or(m, r.brand_id);
  if (errc c = check_scope(r, brand, 0, msg); c != errc::ok)
    return c;
  if (e.prog.find_brand(brand) == nullptr)
    return errc::unknown_brand;
  ledger::op op;
  start(op, r, ledger::entry_kind::adjust, brand);
  op.occurred_at_us = e.now_us;
  op.points = r.points > 0 ? r.points : -r.points;
  if (r.points > 0) {
    if (errc c = check_balance(m, r.points); c != errc::ok)
      return c;
    std::int64_t debt = m.book.debt;
    add_repayment(op, brand,
                  credit_lot(op, m.book, brand, r.points, e.now_us, 0, lot_expiry(e.prog, e.now_us), debt));
  } else {
    auto cb = plan_clawback(m.book, e.now_us, -r.points, 0);
    if (errc c = check_debt(m, e, cb, "the adjustment", msg); c != errc::ok)
      return c;
    add_takes(op, cb.takes);
    if (cb.debt > 0)
      op.details.push_back(detail(detail_kind::debt, 0, brand, 0, cb.debt));
    if (errc c = post_spend(op, e.prog, r.member, cb.takes, cb.debt, spend_purpose::clawback, brand, msg);
        c != errc::ok)
      return c;
  }
  add_text(op, r.reason);
  if (r.points > 0)
    move_points(op, r.member, r.points, brand_acct(ledger::account_kind::brand_issued, brand));
  ops.push_back(std::move(op));
  return errc::ok;
}

errc do_link_alias(member_data& m, const env& e, const member_request& r, std::vector<ledger::op>& ops,
                   std::string& msg) {
  if (errc c = check_scope(r, m.brand_id, 0, msg); c != errc::ok)
    return c;
  if (auto owner = e.ledger->find_alias(r.alias); owner && *owner != r.member)
    return fail(msg, errc::alias_taken, "the alias belongs to another member");
  ledger::op op;
  start(op, r, ledger::entry_kind::link_alias, m.brand_id);
  op.occurred_at_us = e.now_us;
  op.alias = r.alias;
  // `a` is filled by the writer: a hash keyed with the member's key
  // (ledger/sealing.hpp), never the alias's plain hash.
  op.details.push_back(detail(detail_kind::alias, 0, 0, 0, 0));
  ops.push_back(std::move(op));
  return errc::ok;
}

// The member asked to be forgotten (docs/OPERATIONS.md "Erasure"): an entry
// without postings, which the writer turns into the destruction of the
// member's key and aliases. The points stay where they are (liability does
// not move); an operator who wants them gone adjusts them first. The
// reason is the operator's (a ticket number), journaled as the note.
errc do_erase(member_data& m, const env& e, const member_request& r, std::vector<ledger::op>& ops, std::string& msg) {
  if (errc c = check_scope(r, m.brand_id, 0, msg); c != errc::ok)
    return c;
  ledger::op op;
  start(op, r, ledger::entry_kind::erase, m.brand_id);
  op.occurred_at_us = e.now_us;
  add_text(op, r.reason);
  ops.push_back(std::move(op));
  return errc::ok;
}

// A consent change: the member's consent after it is its consent now with
// the request's channels set to the request's values. Journaled even when
// nothing changes: the entry records that the member confirmed it, when and
// where (the source, as the entry's note).
errc do_consent(member_data& m, const env& e, const member_request& r, std::vector<ledger::op>& ops,
                std::string& msg) {
  if (errc c = check_scope(r, m.brand_id, 0, msg); c != errc::ok)
    return c;
  const std::uint32_t values = r.consent_values & r.consent_mask;
  const std::uint32_t after = (m.book.consents & ~r.consent_mask) | values;
  ledger::op op;
  start(op, r, ledger::entry_kind::consent, m.brand_id);
  op.occurred_at_us = r.occurred_at_us != 0 ? r.occurred_at_us : e.now_us;
  op.details.push_back(detail(detail_kind::consent, r.consent_mask, 0, values, after, m.book.consents));
  add_text(op, r.source);
  ops.push_back(std::move(op));
  return errc::ok;
}

// A household entry of the member (no postings): the household coordinator
// checked the household's rules; this records the change, and the writer
// moves the member's household counter by the detail's `a`.
errc do_household(member_data& m, const env& e, const member_request& r, std::vector<ledger::op>& ops,
                  std::string& msg) {
  if (errc c = check_scope(r, m.brand_id, 0, msg); c != errc::ok)
    return c;
  if (r.household == 0 || r.household > ledger::entity_id_max)
    return errc::internal_error;  // the coordinator names the household
  const bool join = r.kind == request_kind::household_join;
  const auto kind = join ? ledger::entry_kind::household_join
                    : r.kind == request_kind::household_leave ? ledger::entry_kind::household_leave
                                                              : ledger::entry_kind::household_dissolve;
  const auto reason = join ? ledger::household_reason::join
                      : kind == ledger::entry_kind::household_leave ? ledger::household_reason::leave
                                                                     : ledger::household_reason::dissolve;
  const auto h = static_cast<std::int64_t>(r.household);
  ledger::op op;
  start(op, r, kind, m.brand_id);
  op.occurred_at_us = e.now_us;
  op.details.push_back(detail(detail_kind::household, 0, 0, static_cast<std::uint32_t>(reason), join ? h : -h,
                              r.household, r.member));
  ops.push_back(std::move(op));
  return errc::ok;
}

// -- limits and blocks (issue 19 item 2) ---------------------------------------------------

// An entry the engine posts to tell of the member (no postings, no txn id):
// the expiry sweep's notices, a limit breach.
ledger::op notice_op(const member_data& m, ledger::entry_kind kind, std::uint64_t as_of) {
  ledger::op op;
  op.kind = ledger::op_kind::post;
  op.entry = kind;
  op.member_id = m.id;
  op.brand_id = m.brand_id;
  op.occurred_at_us = as_of;
  return op;
}

bool is_blocked(const member_data& m) noexcept { return (m.book.risk.flags & ledger::risk_blocked) != 0; }

// What a blocked member may not do: earn or spend (a refund, a reversal, a
// release, an adjustment and consent still work: they undo or correct, or
// are the member's own right).
bool refused_when_blocked(request_kind k) noexcept {
  switch (k) {
    case request_kind::earn:
    case request_kind::event:
    case request_kind::partner_earn:
    case request_kind::redeem:
    case request_kind::redeem_reward:
    case request_kind::hold:
    case request_kind::capture:
    case request_kind::transfer:
    case request_kind::partner_burn:
    case request_kind::link_alias:
    case request_kind::household_join: return true;  // no access to a household's points either
    case request_kind::enroll:
    case request_kind::balance:
    case request_kind::release:
    case request_kind::refund:
    case request_kind::reverse_redemption:
    case request_kind::adjust:
    case request_kind::expire:
    case request_kind::consent:
    case request_kind::quote:
    case request_kind::block:
    case request_kind::unblock:
    case request_kind::release_pending:
    case request_kind::erase:  // the member's right, blocked or not
    case request_kind::household_leave:
    case request_kind::household_dissolve:
    case request_kind::household: return false;
  }
  return false;
}

// Drops the entries a request built from ops[first] on, giving back what
// they reserved of the program's caps and budgets.
void drop_built(const env& e, std::vector<ledger::op>& ops, std::size_t first) {
  if (e.counters != nullptr)
    for (std::size_t j = first; j < ops.size(); ++j)
      e.counters->undo(e.prog, ops[j].details);
  ops.resize(first);
}

errc refuse_blocked(const member_data& m, std::string& msg) {
  return fail(msg, errc::member_blocked,
              "member " + std::to_string(m.id) + " is blocked: it cannot earn or spend until an admin unblocks it");
}

// The count an entry of this kind adds to under [limits], if any.
std::optional<ledger::velocity_metric> counted_as(ledger::entry_kind k) noexcept {
  using ek = ledger::entry_kind;
  using vm = ledger::velocity_metric;
  switch (k) {
    case ek::earn:
    case ek::event:
    case ek::partner_earn: return vm::earns;
    case ek::redeem:
    case ek::redeem_reward:
    case ek::hold:
    case ek::partner_burn: return vm::redemptions;
    case ek::transfer: return vm::transfers_out;
    case ek::link_alias: return vm::aliases_linked;
    case ek::enroll:
    case ek::capture:  // its hold counted
    case ek::release:
    case ek::refund:
    case ek::reverse_redemption:
    case ek::adjust:
    case ek::expire:
    case ek::tier_review:
    case ek::consent:
    case ek::expiry_notice:
    case ek::tier_notice:
    case ek::limit_breach:
    case ek::block:
    case ek::unblock:
    case ek::release_pending:
    case ek::erase:
    case ek::household_join:
    case ek::household_leave:
    case ek::household_dissolve:
    case ek::household_move: return std::nullopt;  // the household's own moves, not the member's transfers
  }
  return std::nullopt;
}

// Checks a built op against the program's [limits] (only called when some
// are set) and, within them, adds its velocity record. Past one: limit_exceeded,
// and `breach` is the limit_breach entry to journal (applied to `m`), unless
// that limit was breached in this window before (one entry per limit and
// window, however often a client retries).
errc check_velocity(member_data& m, const env& e, ledger::op& op, std::uint32_t key_id,
                    std::optional<ledger::op>& breach, std::string& msg) {
  const auto metric = counted_as(op.entry);
  if (!metric)
    return errc::ok;
  if (op.entry == ledger::entry_kind::link_alias && e.ledger != nullptr)
    if (auto owner = e.ledger->find_alias(op.alias); owner && *owner == m.id)
      return errc::ok;  // the member has it already: the writer posts nothing, so nothing counts
  const std::uint32_t hour = local_hour_index(e.prog, e.now_us);
  const bool has_points =
    *metric == ledger::velocity_metric::earns || *metric == ledger::velocity_metric::redemptions;
  const std::int64_t points = has_points ? op.points : 0;
  const limit_breach b = check_limits(e.prog.limits, ledger::velocity_of(m.book), hour, *metric, points);
  if (!b.breached) {
    op.details.push_back(detail(detail_kind::velocity, hour, 0, static_cast<std::uint32_t>(*metric), points));
    return errc::ok;
  }
  if (!ledger::window_breached(ledger::velocity_of(m.book), b.metric, b.window, hour)) {
    const auto& risk = m.book.risk;
    const std::uint32_t after = e.prog.limits.flag_after_breaches;
    const bool flags = after != 0 && (risk.flags & ledger::risk_flagged) == 0 && risk.breaches + 1ull >= after;
    auto bo = notice_op(m, ledger::entry_kind::limit_breach, e.now_us);
    bo.key_id = key_id;  // whose request crossed the limit
    bo.details.push_back(detail(detail_kind::risk, hour, 0,
                                static_cast<std::uint32_t>(ledger::risk_change::breach) |
                                  static_cast<std::uint32_t>(b.metric) << 8 | static_cast<std::uint32_t>(b.window) << 16,
                                b.reached, u(b.limit), flags ? 1 : 0));
    if (finish(m, e, bo))
      breach = std::move(bo);
    else
      m.loaded = false;
  }
  return fail(msg, errc::limit_exceeded,
              std::string("the member's ") + metric_name(b.metric) + " this " + window_name(b.window) +
                " would reach " + std::to_string(b.reached) + ", over the program's limit of " +
                std::to_string(b.limit) + " ([limits.per_" + window_name(b.window) + "] " + metric_name(b.metric) + ")");
}

// block / unblock: an admin's decision, journaled with its reason (the
// entry's note). Blocking a blocked member is refused (invalid_argument);
// unblocking always journals: it also clears the flag and the breach count.
errc do_block(member_data& m, const env& e, const member_request& r, std::vector<ledger::op>& ops, std::string& msg) {
  const bool block = r.kind == request_kind::block;
  if (block && is_blocked(m))
    return fail(msg, errc::invalid_argument, "member " + std::to_string(m.id) + " is already blocked");
  ledger::op op;
  start(op, r, block ? ledger::entry_kind::block : ledger::entry_kind::unblock, m.brand_id);
  op.occurred_at_us = e.now_us;
  const auto change = block ? ledger::risk_change::block : ledger::risk_change::unblock;
  op.details.push_back(detail(detail_kind::risk, 0, 0, static_cast<std::uint32_t>(change), 0));
  add_text(op, r.reason);
  ops.push_back(std::move(op));
  return errc::ok;
}

// The tier metric still missing for the tier above `tier` (0 at the top).
std::int64_t to_next_tier(const program& prog, std::uint32_t tier, std::int64_t qualifying) {
  if (tier + 1 >= prog.tiers.size())
    return 0;
  return std::max<std::int64_t>(0, prog.tiers[tier + 1].threshold - qualifying);
}

} // namespace

// -- housekeeping ----------------------------------------------------------------------

void expiry_notices(member_data& m, const env& e, std::uint64_t as_of, std::vector<ledger::op>& ops) {
  constexpr std::size_t notice_lots_max = 100;
  static_assert(notice_lots_max < ledger::details_per_entry_max);
  const auto days = e.prog.lifecycle.expiry_notice_days;
  if (days == 0)
    return;
  const std::uint64_t horizon = as_of + static_cast<std::uint64_t>(days) * us_per_day;
  std::vector<const ledger::lot*> due;
  for (const auto& l : m.book.lots)
    if (l.points > 0 && l.expires_at_us > as_of && l.expires_at_us <= horizon &&
        l.expires_at_us > m.book.noticed_through_us)
      due.push_back(&l);
  if (due.empty())
    return;
  std::stable_sort(due.begin(), due.end(),
                   [](const ledger::lot* a, const ledger::lot* b) { return a->expires_at_us < b->expires_at_us; });
  if (due.size() > notice_lots_max)
    due.resize(notice_lots_max);
  auto op = notice_op(m, ledger::entry_kind::expiry_notice, as_of);
  for (const auto* l : due) {
    op.points += l->points;  // lots of one member sum within int64 (the account holds them)
    op.details.push_back(detail(detail_kind::expiry_notice, l->id, l->brand_id, 0, l->points, l->expires_at_us));
  }
  const env at{e.prog, e.ledger, e.counters, as_of, e.policy_version};
  if (!finish(m, at, op)) {
    m.loaded = false;
    return;
  }
  ops.push_back(std::move(op));
}

void tier_notices(member_data& m, const env& e, std::uint64_t as_of, std::vector<ledger::op>& ops) {
  const auto days = e.prog.tier_rules.warning_days;
  if (days == 0)
    return;
  const auto o = tier_outlook_of(e.prog, m.book.tier, as_of);
  if (o.holds_until_us == 0 || o.holds_until_us > as_of + static_cast<std::uint64_t>(days) * us_per_day ||
      ledger::tier_notice_day(o.holds_until_us) <= m.book.tier_warned_day)
    return;
  auto op = notice_op(m, ledger::entry_kind::tier_notice, as_of);
  op.details.push_back(detail(detail_kind::tier_notice, o.tier, 0, o.drops_to, o.missing, o.holds_until_us));
  const env at{e.prog, e.ledger, e.counters, as_of, e.policy_version};
  if (!finish(m, at, op)) {
    m.loaded = false;
    return;
  }
  ops.push_back(std::move(op));
}

// Keeps m.due_at_us at or before the next instant housekeeping has work,
// after records that add lots or holds (cheap: no scan of the book).
void note_due(member_data& m, const program& prog, const std::vector<entry_detail>& details) {
  for (const auto& d : details) {
    std::uint64_t at = UINT64_MAX;
    switch (static_cast<detail_kind>(d.kind)) {
      case detail_kind::lot_add:
      case detail_kind::lot_top_up: at = d.c; break;
      case detail_kind::lot_restore: at = d.b; break;
      case detail_kind::hold_open: at = d.b; break;
      default: continue;
    }
    if (at != 0)
      m.due_at_us = std::min(m.due_at_us, at);
    if (prog.lifecycle.inactivity_days != 0 && m.book.last_activity_us != 0)
      m.due_at_us = std::min(m.due_at_us, m.book.last_activity_us +
                                            static_cast<std::uint64_t>(prog.lifecycle.inactivity_days) * us_per_day);
  }
}

std::uint64_t next_due(const member_data& m, const program& prog) noexcept {
  std::uint64_t due = UINT64_MAX;
  for (const auto& h : m.book.holds)
    due = std::min(due, h.expires_at_us);
  for (const auto& l : m.book.lots)
    if (l.expires_at_us != 0)
      due = std::min(due, l.expires_at_us);
  const auto days = prog.lifecycle.inactivity_days;
  if (days != 0 && m.book.last_activity_us != 0 && !m.book.lots.empty())
    due = std::min(due, m.book.last_activity_us + static_cast<std::uint64_t>(days) * us_per_day);
  return due;
}

void housekeeping(member_data& m, const env& e, std::uint64_t as_of, std::vector<ledger::op>& ops) {
  if (m.due_at_us > as_of)
    return;
  const env at{e.prog, e.ledger, e.counters, as_of, e.policy_version};
  auto base = [&](ledger::entry_kind kind, std::uint32_t brand) {
    ledger::op op;
    op.kind = ledger::op_kind::post;
    op.entry = kind;
    op.member_id = m.id;
    op.brand_id = brand;
    op.occurred_at_us = as_of;
    return op;
  };
  // 1. Holds past their expiry go back to their lots.
  while (true) {
    auto it = std::find_if(m.book.holds.begin(), m.book.holds.end(),
                           [&](const ledger::hold& h) { return h.expires_at_us <= as_of; });
    if (it == m.book.holds.end())
      break;
    const ledger::hold h = *it;
    auto op = base(ledger::entry_kind::release, h.brand_id);
    op.points = h.points;
    ref_hold(op, m, h);
    close_hold(op, h, 0, ledger::hold_close_reason::expired);
    if (!finish(m, at, op)) {
      m.loaded = false;
      return;
    }
    ops.push_back(std::move(op));
  }
  // 2. Lots past their expiry, or every lot after the inactivity period:
  //    one entry per brand (the breakage account is the brand's).
  const auto days = e.prog.lifecycle.inactivity_days;
  const bool inactive = days != 0 && m.book.last_activity_us != 0 &&
                        m.book.last_activity_us + static_cast<std::uint64_t>(days) * us_per_day <= as_of;
  std::vector<ledger::lot_take> due;
  for (const auto& l : m.book.lots)
    if (l.points > 0 && (inactive || lot_expired(l, as_of)))
      due.push_back({l.id, l.brand_id, l.points, l.expires_at_us, l.earned_at_us});
  std::stable_sort(due.begin(), due.end(), [](const auto& a, const auto& b) { return a.brand_id < b.brand_id; });
  for (std::size_t i = 0; i < due.size();) {
    auto op = base(ledger::entry_kind::expire, due[i].brand_id);
    std::int64_t sum = 0;
    std::size_t j = i;
    for (; j < due.size() && due[j].brand_id == due[i].brand_id && j - i < takes_max; ++j) {
      sum += due[j].points;  // lots of one member sum within int64 (the account holds them)
      op.details.push_back(detail(detail_kind::lot_take, due[j].lot_id, due[j].brand_id, 0, due[j].points,
                                  due[j].expires_at_us, due[j].earned_at_us));
    }
    op.points = sum;
    move_points(op, m.id, -sum, brand_acct(ledger::account_kind::brand_expired, due[i].brand_id));
    if (!finish(m, at, op)) {
      m.loaded = false;
      return;
    }
    ops.push_back(std::move(op));
    i = j;
  }
  if (!m.hold_seqs.empty())
    forget_closed_holds(m);
  m.due_at_us = next_due(m, e.prog);
}

// -- prepare ------------------------------------------------------------------------

balance_note balance_of_member(const member_data& m, const program& prog, std::uint64_t now) {
  balance_note n;
  n.view = balance_of(m.book, now);
  ledger::tier_track reviewed;
  const ledger::tier_track* track = &m.book.tier;
  if (auto rv = review_tier(prog, m.book.tier, now); rv.changed) {
    reviewed = m.book.tier;
    apply_tier_review(reviewed, rv);
    track = &reviewed;
  }
  n.tier = effective_tier(prog, *track, now);
  n.qualifying = metric_over_window(prog, *track, now);
  n.to_next_tier = to_next_tier(prog, n.tier, n.qualifying);
  n.outlook = tier_outlook_of(prog, *track, now);
  n.lifetime = m.book.lifetime_earned;
  n.brand_id = m.brand_id;
  n.debt = m.book.debt;
  n.consents = m.book.consents;
  n.risk = m.book.risk;
  return n;
}

bool explains_earns(const program& prog) noexcept {
  return prog.resolution == rule_resolution::best ||
         std::any_of(prog.rules.begin(), prog.rules.end(), [](const earn_rule& r) { return r.has_period_budget(); });
}

errc quote_earn(const member_data& m, const env& e, const member_request& r, quote_note& out,
                std::vector<entry_detail>& lines, std::vector<rule_verdict>& rules, std::string& msg) {
  if (!m.enrolled)
    return errc::unknown_member;
  // An earn now would come after the housekeeping due now (expired lots,
  // holds past their time): the quote sees it on a copy, made only then.
  const member_data* at = &m;
  member_data swept;
  if (m.due_at_us <= e.now_us) {
    swept = m;
    std::vector<ledger::op> discarded;
    housekeeping(swept, e, e.now_us, discarded);
    if (!swept.loaded)
      return errc::internal_error;
    at = &swept;
  }
  ledger::op op;
  if (errc c = earn_entry(*at, e, r, caps::read, op, msg, &rules); c != errc::ok)
    return c;
  // The tier as the earn's entry would leave it: its records folded into a
  // copy of the track by the ledger's own fold, the review first (the tier
  // now), then the qualifying delta (the tier after).
  std::int64_t delta = 0;
  if (!member_delta(op, op.member_id, delta))
    return errc::internal_error;
  ledger::member_book scratch;
  scratch.tier = at->book.tier;
  std::string why;
  for (const auto kind : {detail_kind::tier_state, detail_kind::qualify}) {
    std::vector<entry_detail> records;
    for (const auto& d : op.details)
      if (static_cast<detail_kind>(d.kind) == kind)
        records.push_back(d);
    if (!ledger::apply_details(scratch, records, false, 0, op.occurred_at_us, why))
      return errc::internal_error;
    if (kind == detail_kind::tier_state)
      out.tier = effective_tier(e.prog, scratch.tier, e.now_us);
  }
  out.points = op.points;
  out.balance = at->balance;
  out.balance_after = at->balance + delta;  // check_balance: it fits
  out.tier_after = effective_tier(e.prog, scratch.tier, e.now_us);
  out.qualifying_after = metric_over_window(e.prog, scratch.tier, e.now_us);
  out.to_next_tier = to_next_tier(e.prog, out.tier_after, out.qualifying_after);
  lines.clear();
  for (const auto& d : op.details)
    if (static_cast<detail_kind>(d.kind) == detail_kind::rule_line)
      lines.push_back(d);
  return errc::ok;
}

errc prepare_transfer(member_data& m, const env& e, const member_request& r, transfer_leg& leg,
                      std::vector<ledger::op>& ops, std::string& msg) {
  if (!m.enrolled)
    return errc::unknown_member;
  if (is_blocked(m))
    return refuse_blocked(m, msg);
  if (r.to == r.member)
    return errc::same_member;
  if (r.points <= 0)
    return errc::invalid_amount;
  if (errc c = check_scope(r, m.brand_id, 0, msg); c != errc::ok)
    return c;
  spend_plan p;
  if (errc c = plan(m, e, r.points, p, msg); c != errc::ok)
    return c;
  auto& op = leg.op;
  start(op, r, r.household_move ? ledger::entry_kind::household_move : ledger::entry_kind::transfer, m.brand_id);
  op.key_id = r.key_id;
  op.occurred_at_us = e.now_us;
  op.points = r.points;
  op.counterparty_id = r.to;
  op.require_nonnegative = true;
  add_takes(op, p.takes);
  add_activity(op, e.now_us);
  add_posting(op, member_acct(r.member), r.points, posting_side::debit);
  add_posting(op, member_acct(r.to), r.points, posting_side::credit);
  if (e.prog.limits.enabled) {
    std::optional<ledger::op> breach;
    if (errc c = check_velocity(m, e, op, r.key_id, breach, msg); c != errc::ok) {
      if (breach)
        ops.push_back(std::move(*breach));
      return c;
    }
  }
  if (!finish(m, e, op)) {
    m.loaded = false;
    return errc::internal_error;
  }
  leg.sender = r.member;
  leg.points = r.points;
  leg.takes = std::move(p.takes);
  return errc::ok;
}

errc accept_transfer(member_data& m, const env& e, transfer_leg& leg) {
  if (!m.enrolled)
    return errc::unknown_member;
  if (is_blocked(m))
    return errc::member_blocked;
  if (errc c = check_balance(m, leg.points); c != errc::ok)
    return c;
  std::uint32_t id = m.book.next_lot_id;
  std::int64_t debt = m.book.debt, repaid = 0;
  for (const auto& t : leg.takes)  // each lot keeps its brand and its expiry
    repaid += add_lot(leg.op, id++, t.brand_id, t.points, 0, t.expires_at_us, debt, ledger::detail_counterparty);
  add_repayment(leg.op, m.brand_id, repaid, ledger::detail_counterparty);
  if (!finish(m, e, leg.op, true)) {
    m.loaded = false;
    return errc::internal_error;
  }
  note_due(m, e.prog, leg.op.details);
  return errc::ok;
}

errc prepare(member_data& m, const env& e, const member_request& r, std::vector<ledger::op>& ops,
             std::string& message) {
  if (r.kind == request_kind::enroll) {
    if (errc c = check_scope(r, r.brand_id, 0, message); c != errc::ok)
      return c;
    if (m.enrolled)
      return errc::member_exists;
    if (e.prog.find_brand(r.brand_id) == nullptr)
      return errc::unknown_brand;
    occasion when{r.brand_id, r.channel, e.now_us};
    auto d = evaluate_enroll(e.prog, when, totals_of(e));
    if (d.code != errc::ok)
      return d.code;
    reserve_caps(e, d);
    ledger::op en;
    en.kind = ledger::op_kind::enroll;
    en.entry = ledger::entry_kind::enroll;
    en.member_id = r.member;
    en.brand_id = r.brand_id;
    en.occurred_at_us = e.now_us;
    en.key_id = r.key_id;
    ops.push_back(std::move(en));
    m.enrolled = true;
    m.brand_id = r.brand_id;
    m.id = r.member;
    if (d.points > 0) {  // the welcome bonus: its own entry, right after
      ledger::op op;
      start(op, r, ledger::entry_kind::event, r.brand_id);
      op.txn_id_bytes = 0;
      op.key_id = r.key_id;
      op.occurred_at_us = e.now_us;
      op.points = d.points;
      op.details.push_back(
        detail(detail_kind::lot_add, m.book.next_lot_id, r.brand_id, 0, d.points, 0, lot_expiry(e.prog, e.now_us)));
      add_lines(op, d, r.brand_id);
      add_budget_records(op, e, d);
      add_activity(op, e.now_us);
      move_points(op, r.member, d.points, brand_acct(ledger::account_kind::brand_issued, r.brand_id));
      if (!finish(m, e, op))
        return errc::internal_error;
      ops.push_back(std::move(op));
    }
    m.due_at_us = next_due(m, e.prog);
    return errc::ok;
  }
  if (!m.enrolled)
    return errc::unknown_member;
  if (is_blocked(m) && refused_when_blocked(r.kind))
    return refuse_blocked(m, message);
  const std::size_t first = ops.size();
  errc code = errc::ok;
  switch (r.kind) {
    case request_kind::earn: code = do_earn(m, e, r, ops, message); break;
    case request_kind::event: code = do_event(m, e, r, ops, message); break;
    case request_kind::redeem: code = do_redeem(m, e, r, ops, message); break;
    case request_kind::redeem_reward: code = do_redeem_reward(m, e, r, ops, message); break;
    case request_kind::hold: code = do_hold(m, e, r, ops, message); break;
    case request_kind::capture: code = do_capture(m, e, r, ops, message); break;
    case request_kind::release: code = do_release(m, e, r, ops, message); break;
    case request_kind::refund: code = do_refund(m, e, r, ops, message); break;
    case request_kind::reverse_redemption: code = do_reverse(m, e, r, ops, message); break;
    case request_kind::release_pending: code = do_release_pending(m, e, r, ops, message); break;
    case request_kind::adjust: code = do_adjust(m, e, r, ops, message); break;
    case request_kind::link_alias: code = do_link_alias(m, e, r, ops, message); break;
    case request_kind::partner_earn: code = do_partner_earn(m, e, r, ops, message); break;
    case request_kind::partner_burn: code = do_partner_burn(m, e, r, ops, message); break;
    case request_kind::consent: code = do_consent(m, e, r, ops, message); break;
    case request_kind::household_join:
    case request_kind::household_leave:
    case request_kind::household_dissolve: code = do_household(m, e, r, ops, message); break;
    case request_kind::erase: code = do_erase(m, e, r, ops, message); break;
    case request_kind::block:
    case request_kind::unblock: code = do_block(m, e, r, ops, message); break;
    default: return errc::internal_error;  // balance, expire, transfer: the actor handles them
  }
  if (code != errc::ok)
    return code;
  for (std::size_t i = first; i < ops.size(); ++i) {
    // Each operation checked the scope before its business checks; this
    // holds every entry to it, whatever an operation forgot.
    if (const char* why = out_of_scope(r, ops[i].brand_id, ops[i].partner_id)) {
      drop_built(e, ops, first);
      return fail(message, errc::not_authorized, why);
    }
    ops[i].key_id = r.key_id;
  }
  if (e.prog.limits.enabled)
    for (std::size_t i = first; i < ops.size(); ++i) {
      std::optional<ledger::op> breach;
      if (errc c = check_velocity(m, e, ops[i], r.key_id, breach, message); c != errc::ok) {
        drop_built(e, ops, first);
        if (breach)
          ops.push_back(std::move(*breach));
        return c;
      }
    }
  for (std::size_t i = first; i < ops.size(); ++i)
    if (!finish(m, e, ops[i])) {
      m.loaded = false;
      if (e.counters)
        e.counters->undo(e.prog, ops[i].details);
      ops.resize(first);
      return errc::internal_error;
    }
  for (std::size_t i = first; i < ops.size(); ++i)
    note_due(m, e.prog, ops[i].details);
  if (!m.hold_seqs.empty())
    forget_closed_holds(m);
  return errc::ok;
}

// -- the actor -------------------------------------------------------------------

namespace {

using self_ptr = caf::stateful_actor<member_state>*;

env env_of(self_ptr self) {
  auto& c = *self->state.ctx;
  const policy_state& p = c.now();
  self->state.policy_version = p.version;
  return env{p.prog, c.ledger, &p.counters, c.clock->now_us(), p.version};
}

ledger::entry_kind entry_of(request_kind k) {
  using ek = ledger::entry_kind;
  switch (k) {
    case request_kind::enroll: return ek::enroll;
    case request_kind::earn: return ek::earn;
    case request_kind::redeem: return ek::redeem;
    case request_kind::event: return ek::event;
    case request_kind::hold: return ek::hold;
    case request_kind::capture: return ek::capture;
    case request_kind::release: return ek::release;
    case request_kind::redeem_reward: return ek::redeem_reward;
    case request_kind::refund: return ek::refund;
    case request_kind::reverse_redemption: return ek::reverse_redemption;
    case request_kind::release_pending: return ek::release_pending;
    case request_kind::adjust: return ek::adjust;
    case request_kind::transfer: return ek::transfer;
    case request_kind::link_alias: return ek::link_alias;
    case request_kind::partner_earn: return ek::partner_earn;
    case request_kind::partner_burn: return ek::partner_burn;
    case request_kind::consent: return ek::consent;
    case request_kind::household_join: return ek::household_join;
    case request_kind::household_leave: return ek::household_leave;
    case request_kind::household_dissolve: return ek::household_dissolve;
    case request_kind::erase: return ek::erase;
    case request_kind::block: return ek::block;
    case request_kind::unblock: return ek::unblock;
    case request_kind::household:
    case request_kind::balance:
    case request_kind::expire:
    case request_kind::quote: break;
  }
  return ek::earn;
}

caf::actor supervisor_for(const engine_context& ctx, const member_data& m) {
  if (m.enrolled)
    for (const auto& [id, actor] : ctx.brand_actors)
      if (id == m.brand_id)
        return actor;
  return ctx.root;  // not enrolled, or a brand added by a reload
}

// Loads the committed book (waiting first for ops of this member still in
// the writer, so that it includes them).
void load(self_ptr self) {
  auto& st = self->state;
  while (st.slot->enrolling.load(std::memory_order_acquire))
    std::this_thread::yield();  // an enrollment without actor is handing its ops to the writer (microseconds)
  if (st.slot->inflight.load() > 0)
    st.ctx->ledger->barrier();
  st.slot->stale.store(false);
  member_data m;
  m.id = st.slot->member_id;
  if (auto ms = st.ctx->ledger->load_member(m.id)) {
    std::string why;
    ledger::ledger::fold_info folded;
    auto book = st.ctx->ledger->fold_book(m.id, why, &folded);
    if (!book) {
      log(log_level::error, "member %llu: its journal entries do not fold into a book: %s", static_cast<unsigned long long>(m.id), why.c_str());
      throw std::runtime_error("member book does not fold");  // the brand logs it; the next message retries
    }
    m.enrolled = true;
    m.brand_id = ms->record.brand_id;
    m.balance = ms->balance();
    m.book = std::move(*book);
    // A long way from the stored book (or none): store this one, so the next
    // activation reads one book and the few entries after it.
    if (folded.entries >= limits::book_checkpoint_entries)
      st.ctx->ledger->store_book(m.id, folded.as_of, m.book);
  }
  m.loaded = true;
  st.posted = 0;
  m.due_at_us = next_due(m, st.ctx->now().prog);
  const bool was_enrolled = st.data.enrolled;
  st.data = std::move(m);
  st.inflight_txns.clear();
  if (st.data.enrolled && !was_enrolled)
    caf::anon_send(supervisor_for(*st.ctx, st.data), supervise_atom::value, self->address(), st.slot);
}

void ensure_loaded(self_ptr self) {
  auto& st = self->state;
  if (st.slot->stale.exchange(false))
    st.data.loaded = false;
  if (!st.data.loaded)
    load(self);
}

std::shared_ptr<const void> message_note(std::string msg) {
  if (msg.empty())
    return nullptr;
  auto n = std::make_shared<answer_note>();
  n->message = std::move(msg);
  return n;
}

void submit_one(self_ptr self, ledger::op&& op) {
  op.owner = self->state.slot;
  op.policy_version = self->state.policy_version;
  if (!op.target)
    op.target = discard_target();
  if (op.txn_id_bytes > 0)
    self->state.inflight_txns.emplace_back(op.txn());
  self->state.posted++;
  self->state.ctx->ledger->submit(std::move(op));
}

void submit_all(self_ptr self, std::vector<ledger::op>& ops) {
  for (auto& op : ops)
    submit_one(self, std::move(op));
  ops.clear();
}

// A request refused for the member's state (or a retry of a txn id seen
// before), which carries a txn id: the writer checks for a replay of an
// earlier success first, else answers `code`.
void refuse_via_writer(self_ptr self, member_request& r, errc code, std::string msg) {
  refuse_request(*self->state.ctx, r, code, std::move(msg));
}

void answer_error(self_ptr self, member_request& r, errc code, std::string msg) {
  if (r.txn_bytes > 0 && code != errc::unknown_member) {
    refuse_via_writer(self, r, code, std::move(msg));
    return;
  }
  ledger::outcome o;
  o.code = code;
  o.note = message_note(std::move(msg));
  r.reply->answer(std::move(o));
}

} // namespace

void refuse_request(engine_context& ctx, member_request& r, errc code, std::string msg) {
  if (r.txn_bytes == 0) {
    ledger::outcome o;
    o.code = code;
    o.note = message_note(std::move(msg));
    r.reply->answer(std::move(o));
    return;
  }
  ledger::op op;
  op.kind = ledger::op_kind::post;
  op.entry = entry_of(r.kind);  // a replay must match the stored entry's kind
  op.member_id = r.member;
  op.brand_id = r.brand_id;
  op.txn_id_bytes = r.txn_bytes;
  op.txn_id = r.txn;
  op.request_hash = r.hash;
  op.precheck = code;
  op.note = message_note(std::move(msg));
  r.reply->hand_over(op);
  ctx.ledger->submit(std::move(op));
}

namespace {

// Answers after everything submitted before it committed, with a note.
void answer_with_barrier(self_ptr self, member_request& r, std::shared_ptr<answer_note> note) {
  ledger::op op;
  op.kind = ledger::op_kind::barrier;
  op.member_id = r.member;
  op.brand_id = self->state.data.brand_id;
  op.note = std::move(note);
  r.reply->hand_over(op);
  submit_one(self, std::move(op));
}

void schedule_housekeeping(self_ptr self) {
  const auto due = self->state.data.due_at_us;
  const auto now = self->state.ctx->clock->now_us();
  if (due == UINT64_MAX || due <= now || due - now > 3'600'000'000ull)
    return;  // the expiry sweep and the next request cover the rest
  self->delayed_send(self, std::chrono::microseconds(due - now), housekeep_atom::value);
}

bool is_replay(self_ptr self, const member_request& r) {
  auto& st = self->state;
  if (st.slot->inflight.load() == 0)
    st.inflight_txns.clear();
  const auto txn = r.txn_id();
  for (const auto& t : st.inflight_txns)
    if (t == txn)
      return true;
  // Nearly every request is new: the filter says so without LMDB.
  return st.ctx->ledger->maybe_committed(txn) && st.ctx->ledger->find_txn(txn).has_value();
}

caf::behavior awaiting_behavior(self_ptr self);

// A quote posts nothing, so it is answered at once, from the tentative book
// (the member's earlier operations included, committed or not), never
// through the writer.
void answer_quote(self_ptr self, member_request& r, const env& e) {
  auto n = std::make_shared<answer_note>();
  ledger::outcome o;
  std::string msg;
  const errc code = quote_earn(self->state.data, e, r, n->quote, o.details, n->rules, msg);
  if (code != errc::ok) {
    if (code == errc::not_authorized)
      log(log_level::warn, "key %u: a quote for member %llu refused: %s", r.key_id,
          static_cast<unsigned long long>(r.member), msg.c_str());
    answer_error(self, r, code, std::move(msg));
    return;
  }
  n->has_quote = true;
  n->has_rules = true;
  o.points = n->quote.points;
  o.balance = n->quote.balance;
  o.tier = n->quote.tier;
  o.brand_id = r.brand_id;
  o.note = std::move(n);
  r.reply->answer(std::move(o));
}

// A sandbox key's posting request (docs/PROTOCOL.md, "Sandbox keys"). The
// code that would post it runs on copies, of the member's tentative book and
// of the program-wide counters, and the entries it builds are dropped: the
// member, the caps and stock, the txn ids and the journal stay as they were.
// The answer is what the writer would answer for the request's last entry,
// with seq 0; a refusal is answered at once (not through the writer, which
// would only look for a replay, and is_replay already did).
void answer_dry_run(self_ptr self, member_request& r, env e) {
  auto& st = self->state;
  auto refuse = [&](errc code, std::string msg) {
    if (code == errc::not_authorized)
      log(log_level::warn, "key %u: a dry run for member %llu refused: %s", r.key_id,
          static_cast<unsigned long long>(r.member), msg.c_str());
    ledger::outcome o;
    o.code = code;
    o.note = message_note(std::move(msg));
    r.reply->answer(std::move(o));
  };
  if (r.kind != request_kind::enroll && !st.data.enrolled)
    return refuse(errc::unknown_member, {});
  if (r.txn_bytes > 0 && is_replay(self, r)) {
    // A real retry gets the original answer (or txn_id_conflict) from the
    // writer; so does its dry run, and the writer posts nothing for it.
    refuse_via_writer(self, r, errc::unavailable, {});
    return;
  }
  if (r.kind == request_kind::refund || r.kind == request_kind::reverse_redemption ||
      r.kind == request_kind::release_pending) {
    // As the real request: they read what committed entries did to the referenced one.
    if (st.slot->inflight.load() > 0)
      st.ctx->ledger->barrier();
    ensure_loaded(self);
  }
  program_counters counters;
  if (e.counters != nullptr) {
    counters.copy_of(e.prog, *e.counters);
    e.counters = &counters;
  }
  member_data m = st.data;
  std::vector<ledger::op> ops;
  std::string msg;
  errc code = errc::ok;
  std::shared_ptr<answer_note> note;
  switch (r.kind) {
    case request_kind::enroll: code = prepare(m, e, r, ops, msg); break;
    case request_kind::expire: {
      const std::uint64_t as_of = r.as_of_us != 0 ? r.as_of_us : e.now_us;
      if (as_of > e.now_us)
        return refuse(errc::invalid_argument, "as_of_us is in the future");
      housekeeping(m, e, as_of, ops);
      note = std::make_shared<answer_note>();
      note->members = 1;
      for (const auto& op : ops)
        if (op.entry == ledger::entry_kind::expire)
          note->expired += op.points;
      ops.clear();  // its answer is the member's state after them, not an entry
      break;
    }
    case request_kind::transfer: {
      housekeeping(m, e, e.now_us, ops);
      transfer_leg leg;
      if (m.loaded && (code = prepare_transfer(m, e, r, leg, ops, msg)) == errc::ok)
        ops.push_back(std::move(leg.op));
      break;
    }
    default:
      housekeeping(m, e, e.now_us, ops);
      if (m.loaded)
        code = prepare(m, e, r, ops, msg);
      break;
  }
  if (!m.loaded)  // a bug: the book refused its own records (the real request would say the same)
    return refuse(errc::internal_error, {});
  if (code != errc::ok)
    return refuse(code, std::move(msg));
  ledger::outcome o;
  o.balance = m.balance;
  o.lifetime = m.book.lifetime_earned;
  o.tier = effective_tier(e.prog, m.book.tier, e.now_us);
  o.brand_id = m.brand_id;
  if (!ops.empty()) {
    auto& last = ops.back();
    o.points = last.points;
    o.brand_id = last.brand_id;
    if (last.has_member_state) {
      o.lifetime = last.lifetime_after;
      o.tier = last.tier_after;
    }
    o.details = std::move(last.details);
    if (note == nullptr)  // an earn's note: what became of each rule
      o.note = std::move(last.note);
  }
  if (note != nullptr)
    o.note = std::move(note);
  r.reply->answer(std::move(o));
}

void send_transfer(self_ptr self, member_request& r, std::vector<ledger::op>& ops) {
  auto& st = self->state;
  auto e = env_of(self);
  transfer_leg leg;
  std::string msg;
  errc code = prepare_transfer(st.data, e, r, leg, ops, msg);
  submit_all(self, ops);
  if (code != errc::ok) {
    answer_error(self, r, code, std::move(msg));
    return;
  }
  r.reply->hand_over(leg.op);
  leg.op.owner = st.slot;
  leg.op.policy_version = st.policy_version;
  auto target = leg.op.target;
  auto tag = leg.op.tag;
  st.inflight_txns.emplace_back(leg.op.txn());
  st.posted++;
  if (!st.ctx->dir->send(r.to, caf::make_message(std::move(leg)))) {
    ledger::outcome o;  // shutting down: the leg was dropped
    o.tag = tag;
    o.code = errc::unavailable;
    target->complete({std::move(o)});
    st.data.loaded = false;
    return;
  }
  self->become(caf::keep_behavior, awaiting_behavior(self));
}

void receive_transfer(self_ptr self, transfer_leg& leg) {
  auto& st = self->state;
  ensure_loaded(self);
  auto e = env_of(self);
  errc code = accept_transfer(st.data, e, leg);
  if (code == errc::ok) {
    leg.op.counterparty_owner = st.slot;
    st.ctx->ledger->submit(std::move(leg.op));
  } else {
    ledger::outcome o;
    o.tag = leg.op.tag;
    o.code = code;
    if (code == errc::unknown_member)
      o.note = message_note("the receiving member " + std::to_string(leg.op.counterparty_id) + " is not enrolled");
    if (code == errc::member_blocked)
      o.note = message_note("the receiving member " + std::to_string(leg.op.counterparty_id) + " is blocked");
    if (leg.op.target)
      leg.op.target->complete({std::move(o)});
  }
  st.ctx->dir->send(leg.sender, caf::make_message(transfer_done_atom::value, code == errc::ok));
}

void handle(self_ptr self, member_request& r) {
  auto& st = self->state;
  ensure_loaded(self);
  auto e = env_of(self);
  if (r.dry_run) {
    answer_dry_run(self, r, e);
    return;
  }
  if (r.kind == request_kind::enroll) {
    std::vector<ledger::op> ops;
    std::string msg;
    errc code = prepare(st.data, e, r, ops, msg);
    if (code != errc::ok) {
      answer_error(self, r, code, std::move(msg));
      return;
    }
    hand_over_enrollment(r, ops);
    submit_all(self, ops);
    caf::anon_send(supervisor_for(*st.ctx, st.data), supervise_atom::value, self->address(), st.slot);
    return;
  }
  if (!st.data.enrolled) {
    answer_error(self, r, errc::unknown_member, {});
    return;
  }
  if (r.kind == request_kind::quote) {
    answer_quote(self, r, e);
    return;
  }
  // A household member's redeem and balance are the household's: the
  // coordinator serializes them (only when the program has households, so
  // the members of a program without them pay nothing for it).
  // (A balance a brand key may not read is refused below, as any.)
  if (!r.pooled && (r.kind == request_kind::redeem || r.kind == request_kind::balance) &&
      (r.kind == request_kind::redeem || r.scope_brand == 0 || r.scope_brand == st.data.brand_id) &&
      e.prog.households.enabled && st.ctx->households != nullptr &&
      st.ctx->households->household_of(r.member) != 0) {
    caf::anon_send(st.ctx->household_coordinator, std::move(r));
    return;
  }
  if (r.txn_bytes > 0 && is_replay(self, r)) {
    // The writer answers with the original result (or txn_id_conflict);
    // `unavailable` only if the original was never posted.
    refuse_via_writer(self, r, errc::unavailable, {});
    return;
  }
  std::uint64_t as_of = e.now_us;
  if (r.kind == request_kind::expire && r.as_of_us != 0) {
    if (r.as_of_us > e.now_us) {
      answer_error(self, r, errc::invalid_argument, "as_of_us is in the future");
      return;
    }
    as_of = r.as_of_us;
  }
  std::vector<ledger::op> ops;
  housekeeping(st.data, e, as_of, ops);
  if (!st.data.loaded) {  // a bug: the book refused its own records
    submit_all(self, ops);
    answer_error(self, r, errc::internal_error, {});
    return;
  }
  switch (r.kind) {
    case request_kind::balance: {
      submit_all(self, ops);
      if (r.scope_brand != 0 && st.data.brand_id != r.scope_brand) {
        log(log_level::warn, "key %u: balance of member %llu of another brand refused", r.key_id,
            static_cast<unsigned long long>(r.member));
        answer_error(self, r, errc::not_authorized, "the key may read members of its brand only");
        return;
      }
      auto n = std::make_shared<answer_note>();
      n->has_balance = true;
      n->balance = balance_of_member(st.data, e.prog, e.now_us);
      answer_with_barrier(self, r, std::move(n));
      schedule_housekeeping(self);
      return;
    }
    case request_kind::expire: {
      auto n = std::make_shared<answer_note>();
      n->members = 1;
      for (const auto& op : ops)
        if (op.entry == ledger::entry_kind::expire)
          n->expired += op.points;
      if (auto rv = review_tier(e.prog, st.data.book.tier, e.now_us); rv.changed) {
        ledger::op op;
        op.kind = ledger::op_kind::post;
        op.entry = ledger::entry_kind::tier_review;
        op.member_id = r.member;
        op.brand_id = st.data.brand_id;
        op.occurred_at_us = e.now_us;
        op.details.push_back(ledger::entry_detail{static_cast<std::uint16_t>(ledger::detail_kind::tier_state), 0,
                                                  rv.secured, 0, rv.pending_tier,
                                                  static_cast<std::int64_t>(rv.prune_before_day), rv.pending_at_us,
                                                  rv.reviewed_through_us});
        std::string why;
        if (ledger::apply_details(st.data.book, op.details, false, 0, op.occurred_at_us, why)) {
          op.has_member_state = true;
          op.lifetime_after = st.data.book.lifetime_earned;
          op.tier_after = effective_tier(e.prog, st.data.book.tier, e.now_us);
          ops.push_back(std::move(op));
        } else {
          st.data.loaded = false;
        }
      }
      if (st.data.loaded)
        expiry_notices(st.data, e, as_of, ops);
      if (st.data.loaded)
        tier_notices(st.data, e, as_of, ops);
      submit_all(self, ops);
      answer_with_barrier(self, r, std::move(n));
      return;
    }
    case request_kind::transfer:
      send_transfer(self, r, ops);
      return;
    case request_kind::refund:
    case request_kind::reverse_redemption:
    case request_kind::release_pending:
      // They read what earlier entries did to the referenced one: settle
      // everything in flight first.
      submit_all(self, ops);
      if (st.slot->inflight.load() > 0)
        st.ctx->ledger->barrier();
      ensure_loaded(self);
      break;
    default:
      break;
  }
  std::string msg;
  const std::size_t before = ops.size();
  errc code = prepare(st.data, e, r, ops, msg);
  if (code != errc::ok) {
    if (code == errc::not_authorized)
      log(log_level::warn, "key %u: a request for member %llu refused: %s", r.key_id,
          static_cast<unsigned long long>(r.member), msg.c_str());
    submit_all(self, ops);
    answer_error(self, r, code, std::move(msg));
    return;
  }
  if (ops.size() > before)
    r.reply->hand_over(ops.back());
  submit_all(self, ops);
  schedule_housekeeping(self);
}

void on_housekeeping(self_ptr self) {
  auto& st = self->state;
  ensure_loaded(self);
  if (!st.data.enrolled)
    return;
  auto e = env_of(self);
  std::vector<ledger::op> ops;
  housekeeping(st.data, e, e.now_us, ops);
  submit_all(self, ops);
  schedule_housekeeping(self);
}

caf::behavior awaiting_behavior(self_ptr self) {
  auto dequeued = [self] { self->state.slot->pending.fetch_sub(1, std::memory_order_acq_rel); };
  return {
    [self, dequeued](transfer_leg& leg) {
      dequeued();
      receive_transfer(self, leg);
    },
    [self, dequeued](transfer_done_atom, bool ok) {
      dequeued();
      if (!ok)
        self->state.data.loaded = false;  // the leg was refused: take the points back from the ledger
      self->unbecome();
    },
  };
}

} // namespace

void enroll_without_actor(engine_context& ctx, const std::shared_ptr<member_slot>& slot, member_request& r) {
  // Nothing of this member is in flight (it had no slot), so the ledger's
  // committed state is the whole truth. Refusals are answered as the actor
  // answers them (answer_error).
  if (std::string msg; check_scope(r, r.brand_id, 0, msg) != errc::ok) {  // before the member's existence
    refuse_request(ctx, r, errc::not_authorized, std::move(msg));
    return;
  }
  if (ctx.ledger->load_member(r.member)) {
    refuse_request(ctx, r, errc::member_exists, {});
    return;
  }
  const policy_state& p = ctx.now();
  env e{p.prog, ctx.ledger, &p.counters, ctx.clock->now_us(), p.version};
  member_data m;
  m.id = r.member;
  m.loaded = true;
  std::vector<ledger::op> ops;
  std::string msg;
  if (errc code = prepare(m, e, r, ops, msg); code != errc::ok) {
    refuse_request(ctx, r, code, std::move(msg));
    return;
  }
  hand_over_enrollment(r, ops);
  for (auto& op : ops) {
    op.owner = slot;
    op.policy_version = p.version;
    if (!op.target)
      op.target = discard_target();
    ctx.ledger->submit(std::move(op));
  }
}

caf::behavior member_actor(caf::stateful_actor<member_state>* self, std::shared_ptr<member_slot> slot,
                           engine_context* ctx) {
  self->state.slot = std::move(slot);
  self->state.ctx = ctx;
  self->set_default_handler(caf::skip);  // while awaiting a transfer, other messages wait
  auto dequeued = [self] {
    auto& s = *self->state.slot;
    s.pending.fetch_sub(1, std::memory_order_acq_rel);
  };
  // Once the directory stops, an actor handles nothing: a request is
  // answered `unavailable` (its reply_guard, as the message is dropped) and
  // nothing reaches the ledger, which closes after the stop.
  auto stopped = [self] { return self->state.ctx->dir->stopping(); };
  return {
    [self, dequeued, stopped](member_request& r) {
      dequeued();
      if (!stopped())
        handle(self, r);
    },
    [self, dequeued, stopped](transfer_leg& leg) {
      dequeued();
      if (!stopped())
        receive_transfer(self, leg);
    },
    [self, stopped](housekeep_atom) {
      if (!stopped())
        on_housekeeping(self);
    },
    [self, dequeued, stopped](passivate_atom) {
      dequeued();
      if (stopped())
        return;
      auto& st = self->state;
      if (!st.ctx->dir->try_passivate(*st.slot, self->address()))
        return;
      // It posted enough since its book was loaded that the next activation
      // would fold many entries: fold them now (idle, off any request's
      // path) and store the book. A stop skips this (docs/ARCHITECTURE.md).
      if (st.posted >= limits::book_checkpoint_entries && st.data.enrolled)
        (void)st.ctx->ledger->checkpoint_book(st.slot->member_id, limits::book_checkpoint_entries);
      self->quit();
    },
  };
}

} // namespace loyalty::actors

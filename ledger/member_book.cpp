// The fold of journal details into a member's book, and the book's encoding.
#include "ledger/member_book.hpp"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <iterator>

namespace loyalty::ledger {

namespace {

lot* find_lot(member_book& b, std::uint32_t id) {
  auto it = std::lower_bound(b.lots.begin(), b.lots.end(), id, [](const lot& l, std::uint32_t v) { return l.id < v; });
  return it != b.lots.end() && it->id == id ? &*it : nullptr;
}

hold* find_hold(member_book& b, std::uint32_t id) {
  auto it = std::lower_bound(b.holds.begin(), b.holds.end(), id, [](const hold& h, std::uint32_t v) { return h.id < v; });
  return it != b.holds.end() && it->id == id ? &*it : nullptr;
}

void insert_lot(member_book& b, const lot& l) {
  auto it = std::lower_bound(b.lots.begin(), b.lots.end(), l.id, [](const lot& x, std::uint32_t v) { return x.id < v; });
  b.lots.insert(it, l);
}

bool fail(std::string& why, const char* what, std::uint32_t id) {
  why.assign(what);
  why.push_back(' ');
  why.append(std::to_string(id));
  return false;
}

bool apply_one(member_book& b, const entry_detail& d, std::uint64_t seq, std::uint64_t occurred_at_us, std::string& why) {
  switch (static_cast<detail_kind>(d.kind)) {
    case detail_kind::lot_add: {
      if (d.a < 0 || d.id == 0 || find_lot(b, d.id) != nullptr || d.id < b.next_lot_id)
        return fail(why, "lot_add of an existing or invalid lot", d.id);
      if (d.a > 0)  // an earn worth 0 points still advances the id, creates nothing
        insert_lot(b, lot{d.id, d.brand, d.a, d.a, occurred_at_us, d.b, d.c, seq});
      b.next_lot_id = d.id + 1;
      return true;
    }
    case detail_kind::lot_top_up: {
      const lot* t = top_up_target(b, d.brand, d.a, d.b, d.c, occurred_at_us);
      if (d.a <= 0 || t == nullptr || t->id != d.id)
        return fail(why, "lot_top_up of a lot the points may not join:", d.id);
      lot& l = b.lots.back();  // top_up_target is the newest lot
      l.points += d.a;         // in int64: top_up_target checked
      l.original += std::min(d.a, INT64_MAX - l.original);
      return true;
    }
    case detail_kind::lot_take: {
      lot* l = find_lot(b, d.id);
      if (l == nullptr || d.a <= 0 || d.a > l->points)
        return fail(why, "lot_take of more points than lot holds:", d.id);
      l->points -= d.a;
      if (d.aux != 0) {
        hold* h = find_hold(b, d.aux);
        if (h == nullptr)
          return fail(why, "lot_take into a hold that is not open:", d.aux);
        h->takes.push_back(lot_take{d.id, d.brand, d.a, d.b, d.c});
      }
      if (l->points == 0)
        b.lots.erase(b.lots.begin() + (l - b.lots.data()));
      return true;
    }
    case detail_kind::lot_restore: {
      if (d.a <= 0 || d.id == 0 || d.id >= b.next_lot_id)
        return fail(why, "lot_restore of an invalid lot", d.id);
      if (lot* l = find_lot(b, d.id)) {
        if (__builtin_add_overflow(l->points, d.a, &l->points))
          return fail(why, "lot_restore overflows lot", d.id);
      } else {
        insert_lot(b, lot{d.id, d.brand, d.a, d.a, d.c, 0, d.b, seq});
      }
      return true;
    }
    case detail_kind::hold_open: {
      if (d.a <= 0 || d.id == 0 || d.id < b.next_hold_id)
        return fail(why, "hold_open of an existing or invalid hold", d.id);
      b.holds.push_back(hold{d.id, d.brand, d.a, occurred_at_us, d.b, seq, {}});
      b.next_hold_id = d.id + 1;
      return true;
    }
    case detail_kind::hold_close: {
      hold* h = find_hold(b, d.id);
      if (h == nullptr)
        return fail(why, "hold_close of a hold that is not open:", d.id);
      b.holds.erase(b.holds.begin() + (h - b.holds.data()));
      return true;
    }
    case detail_kind::qualify:
      add_qualifying(b.tier, d.id, d.a);
      return true;
    case detail_kind::rule_line: {
      if (__builtin_add_overflow(b.lifetime_earned, d.a, &b.lifetime_earned))
        return fail(why, "rule_line overflows lifetime points of rule", d.id);
      // The first purchase: the first base line over a positive amount (a
      // tentative entry, seq 0, marks it with 1 until it commits).
      if (d.aux == static_cast<std::uint32_t>(rule_line_kind::base) && static_cast<std::int64_t>(d.b) > 0 &&
          b.first_purchase_seq == 0)
        b.first_purchase_seq = seq != 0 ? seq : 1;
      if (d.aux != static_cast<std::uint32_t>(rule_line_kind::rule))
        return true;
      auto it = std::lower_bound(b.counters.begin(), b.counters.end(), d.id,
                                 [](const rule_counter& c, std::uint32_t v) { return c.rule_id < v; });
      if (it == b.counters.end() || it->rule_id != d.id)
        it = b.counters.insert(it, rule_counter{d.id, 0, 0});
      if (__builtin_add_overflow(it->points, d.a, &it->points))
        return fail(why, "rule_line overflows the counter of rule", d.id);
      if (d.a > 0)
        it->uses++;
      return true;
    }
    case detail_kind::reward:
    case detail_kind::rule_budget:
      return true;  // stock and budgets are program-wide, not the member's
    case detail_kind::alias:
    case detail_kind::note:
    case detail_kind::household:  // the household is the counters table's (the writer keeps it), not the book's
    case detail_kind::sealed_alias:
    case detail_kind::sealed_note:
    case detail_kind::settle:  // money between coalition parties, not the member's
      return true;  // not part of the book
    case detail_kind::debt:
      if (__builtin_add_overflow(b.debt, d.a, &b.debt) || b.debt < 0)
        return fail(why, "debt would leave 0..INT64_MAX, change", static_cast<std::uint32_t>(d.a));
      return true;
    case detail_kind::tier_state: {
      b.tier.secured = d.id;
      b.tier.pending_tier = d.aux;
      b.tier.pending_at_us = d.b;
      b.tier.reviewed_through_us = d.c;
      auto& bk = b.tier.buckets;
      bk.erase(bk.begin(), std::lower_bound(bk.begin(), bk.end(), static_cast<std::uint32_t>(d.a),
                                            [](const qualify_bucket& q, std::uint32_t v) { return q.day < v; }));
      return true;
    }
    case detail_kind::activity:
      b.last_activity_us = std::max(b.last_activity_us, d.b);
      return true;
    case detail_kind::consent:
      if (static_cast<std::uint32_t>(d.a) != d.a || d.b != b.consents || (d.a & ~std::int64_t{consent_channels_all}) != 0)
        return fail(why, "consent record that does not follow the member's consent", static_cast<std::uint32_t>(d.b));
      b.consents = static_cast<std::uint32_t>(d.a);
      return true;
    case detail_kind::expiry_notice:
      b.noticed_through_us = std::max(b.noticed_through_us, d.b);
      return true;
    case detail_kind::lot_release: {
      lot* l = find_lot(b, d.id);
      if (l == nullptr || l->brand_id != d.brand || d.a <= 0 || d.a > l->points || l->available_at_us <= d.b)
        return fail(why, "lot_release of a lot that is not pending then, of another brand, or of more points than it holds:",
                    d.id);
      if (d.c == 0) {
        if (d.a != l->points)
          return fail(why, "lot_release in place of part of lot", d.id);
        l->available_at_us = d.b;
        return true;
      }
      if (d.c != b.next_lot_id || d.a == l->points)
        return fail(why, "lot_release into a lot that is not the member's next, or of a whole lot:", d.id);
      l->points -= d.a;
      const lot moved{b.next_lot_id, l->brand_id, d.a, d.a, l->earned_at_us, d.b, l->expires_at_us, seq};
      insert_lot(b, moved);
      b.next_lot_id = moved.id + 1;
      return true;
    }
    case detail_kind::tier_notice:
      if (d.a < 0 || d.aux >= d.id)
        return fail(why, "tier notice of a drop to a tier not below the member's, or a negative shortfall", d.id);
      b.tier_warned_day = std::max(b.tier_warned_day, tier_notice_day(d.b));
      return true;
    case detail_kind::velocity: {
      const auto metric = d.aux;
      if (d.a < 0 || metric >= velocity_metrics || metric == static_cast<std::uint32_t>(velocity_metric::points_earned) ||
          metric == static_cast<std::uint32_t>(velocity_metric::points_redeemed))
        return fail(why, "velocity record of an invalid metric or negative points:", metric);
      if (!roll_windows(velocity_for(b), d.id))
        return true;  // an hour before the current one: not counted (the clock went back)
      auto count = [&](std::int64_t* v) {
        v[metric] = v[metric] == INT64_MAX ? INT64_MAX : v[metric] + 1;
        if (metric == static_cast<std::uint32_t>(velocity_metric::earns) ||
            metric == static_cast<std::uint32_t>(velocity_metric::redemptions)) {
          auto& p = v[metric + 1];  // points_earned / points_redeemed follow their counts
          if (__builtin_add_overflow(p, d.a, &p))
            p = INT64_MAX;
        }
      };
      count(b.velocity.front().in_hour);
      count(b.velocity.front().in_day);
      return true;
    }
    case detail_kind::risk: {
      const auto change = d.aux & 0xff;
      if (change < static_cast<std::uint32_t>(risk_change::breach) || change > static_cast<std::uint32_t>(risk_change::unblock))
        return fail(why, "risk record of an unknown change", change);
      if (change == static_cast<std::uint32_t>(risk_change::breach)) {
        const auto metric = (d.aux >> 8) & 0xff, window = d.aux >> 16;
        if (metric >= velocity_metrics || window > static_cast<std::uint32_t>(velocity_window::day))
          return fail(why, "breach of an unknown limit", d.aux);
        if (auto& w = velocity_for(b); roll_windows(w, d.id)) {
          auto& mask = window == 0 ? w.hour_breached : w.day_breached;
          mask |= 1u << metric;
        }
      }
      apply_risk(b.risk, d, seq, occurred_at_us);
      return true;
    }
  }
  return fail(why, "unknown detail kind", d.kind);
}

} // namespace

bool apply_details(member_book& book, std::span<const entry_detail> records, bool counterparty, std::uint64_t seq,
                   std::uint64_t occurred_at_us, std::string& why) {
  for (const auto& d : records) {
    if (((d.flags & detail_counterparty) != 0) != counterparty)
      continue;
    if (!apply_one(book, d, seq, occurred_at_us, why))
      return false;
  }
  return true;
}

const lot* top_up_target(const member_book& book, std::uint32_t brand, std::int64_t points,
                         std::uint64_t available_at_us, std::uint64_t expires_at_us,
                         std::uint64_t occurred_at_us) noexcept {
  if (book.lots.empty() || points <= 0)
    return nullptr;
  const lot& l = book.lots.back();
  const bool available_alike = l.available_at_us == available_at_us ||
                               (l.available_at_us <= occurred_at_us && available_at_us <= occurred_at_us);
  std::int64_t sum = 0;
  if (l.brand_id != brand || l.expires_at_us != expires_at_us || !available_alike ||
      (expires_at_us != 0 && expires_at_us <= book.noticed_through_us) || __builtin_add_overflow(l.points, points, &sum))
    return nullptr;
  return &l;
}

const velocity_windows& velocity_of(const member_book& book) noexcept {
  static const velocity_windows none{};
  return book.velocity.empty() ? none : book.velocity.front();
}

velocity_windows& velocity_for(member_book& book) {
  if (book.velocity.empty())
    book.velocity.emplace_back();
  return book.velocity.front();
}

bool roll_windows(velocity_windows& w, std::uint32_t hour) noexcept {
  if (hour < w.hour)
    return false;
  if (hour / 24 != w.day) {
    w.day = hour / 24;
    std::fill(std::begin(w.in_day), std::end(w.in_day), 0);
    w.day_breached = 0;
  }
  if (hour != w.hour) {
    w.hour = hour;
    std::fill(std::begin(w.in_hour), std::end(w.in_hour), 0);
    w.hour_breached = 0;
  }
  return true;
}

namespace {
bool window_current(const velocity_windows& w, velocity_window window, std::uint32_t hour) noexcept {
  return window == velocity_window::hour ? w.hour == hour : w.day == hour / 24;
}
} // namespace

std::int64_t window_value(const velocity_windows& w, velocity_metric metric, velocity_window window,
                          std::uint32_t hour) noexcept {
  if (!window_current(w, window, hour))
    return 0;
  const auto i = static_cast<std::size_t>(metric);
  return window == velocity_window::hour ? w.in_hour[i] : w.in_day[i];
}

bool window_breached(const velocity_windows& w, velocity_metric metric, velocity_window window,
                     std::uint32_t hour) noexcept {
  if (!window_current(w, window, hour))
    return false;
  const auto bit = 1u << static_cast<std::uint32_t>(metric);
  return ((window == velocity_window::hour ? w.hour_breached : w.day_breached) & bit) != 0;
}

void apply_risk(risk_record& r, const entry_detail& d, std::uint64_t seq, std::uint64_t occurred_at_us) noexcept {
  switch (static_cast<risk_change>(d.aux & 0xff)) {
    case risk_change::breach:
      if (r.breaches < UINT32_MAX)
        r.breaches++;
      if (d.c != 0)
        r.flags |= risk_flagged;
      break;
    case risk_change::block:
      r.flags |= risk_blocked;
      r.blocked_at_us = occurred_at_us;
      r.block_seq = seq;
      break;
    case risk_change::unblock:
      // An admin looked at the member: the breaches and the flag are over too.
      r = risk_record{};
      break;
  }
  r.seq = seq;
}

void add_qualifying(tier_track& track, std::uint32_t day, std::int64_t delta) {
  auto& bk = track.buckets;
  auto it = std::lower_bound(bk.begin(), bk.end(), day, [](const qualify_bucket& q, std::uint32_t v) { return q.day < v; });
  if (it == bk.end() || it->day != day) {
    if (delta <= 0)
      return;  // nothing booked that day (pruned or never): nothing to take back
    bk.insert(it, qualify_bucket{day, 0, delta});
    return;
  }
  std::int64_t v = 0;
  if (__builtin_add_overflow(it->amount, delta, &v))
    v = delta > 0 ? INT64_MAX : 0;
  it->amount = std::max<std::int64_t>(0, v);
}

bool sum_lots(const member_book& book, std::int64_t& out) noexcept {
  std::int64_t s = 0;
  for (const auto& l : book.lots)
    if (__builtin_add_overflow(s, l.points, &s))
      return false;
  out = s;
  return true;
}

bool sum_holds(const member_book& book, std::int64_t& out) noexcept {
  std::int64_t s = 0;
  for (const auto& h : book.holds)
    if (__builtin_add_overflow(s, h.points, &s))
      return false;
  out = s;
  return true;
}

// -- encoding -------------------------------------------------------------------------------

namespace {

// Stored book: book_header, then `lots` lot records, then for each hold a
// hold_record followed by its `takes` lot_take records, then the buckets,
// then the counters. Format 3 (format 2 had no velocity windows or risk
// state and decodes with them zero; format 1 had no consents / noticed_through_us).
struct book_header {
  std::uint32_t format;
  std::uint32_t next_lot_id;
  std::uint32_t next_hold_id;
  std::uint32_t lots;
  std::uint32_t holds;
  std::uint32_t takes;  // over all holds
  std::uint32_t buckets;
  std::uint32_t counters;
  std::uint64_t enrolled_at_us;
  std::uint64_t last_activity_us;
  std::uint64_t first_purchase_seq;
  std::int64_t lifetime_earned;
  std::int64_t debt;
  std::uint32_t tier_secured;
  std::uint32_t tier_pending;
  std::uint64_t tier_pending_at_us;
  std::uint64_t tier_reviewed_through_us;
  std::uint32_t consents;
  std::uint32_t tier_warned_day;  // zero in books stored before tier notices (none was told of)
  std::uint64_t noticed_through_us;
  // format 3, issue 19 item 2 (fraud limits): zero in a format-2 book (no
  // velocity record or risk entry was journaled before them)
  velocity_windows velocity;
  risk_record risk;
};
static_assert(sizeof(book_header) == 256);
// The header of a format-2 book: the fields before `velocity`.
constexpr std::size_t book_header_v2_bytes = 112;
static_assert(offsetof(book_header, velocity) == book_header_v2_bytes);
static_assert(std::is_trivially_copyable_v<book_header>);

struct hold_record {
  std::uint32_t id;
  std::uint32_t brand_id;
  std::int64_t points;
  std::uint64_t opened_at_us;
  std::uint64_t expires_at_us;
  std::uint64_t source_seq;
  std::uint32_t takes;
  std::uint32_t reserved;
};
static_assert(sizeof(hold_record) == 48);
static_assert(std::is_trivially_copyable_v<hold_record>);

constexpr std::uint32_t book_format = 3;

template <class T>
void put(std::vector<char>& out, const T& v) {
  auto at = out.size();
  out.resize(at + sizeof(T));
  std::memcpy(out.data() + at, &v, sizeof(T));
}

template <class T>
void put_all(std::vector<char>& out, const std::vector<T>& v) {
  auto at = out.size();
  out.resize(at + v.size() * sizeof(T));
  if (!v.empty())
    std::memcpy(out.data() + at, v.data(), v.size() * sizeof(T));
}

class reader {
public:
  reader(const char* p, std::size_t n) : p_(p), n_(n) {}
  template <class T>
  bool get(T& v) {
    if (n_ < sizeof(T))
      return false;
    std::memcpy(&v, p_, sizeof(T));
    p_ += sizeof(T);
    n_ -= sizeof(T);
    return true;
  }
  template <class T>
  bool get_all(std::vector<T>& v, std::size_t count) {
    if (count > n_ / sizeof(T))
      return false;
    v.resize(count);
    if (count > 0)
      std::memcpy(v.data(), p_, count * sizeof(T));
    p_ += count * sizeof(T);
    n_ -= count * sizeof(T);
    return true;
  }
  [[nodiscard]] bool done() const { return n_ == 0; }

private:
  const char* p_;
  std::size_t n_;
};

} // namespace

void encode_book(const member_book& b, std::vector<char>& out) {
  std::uint32_t takes = 0;
  for (const auto& h : b.holds)
    takes += static_cast<std::uint32_t>(h.takes.size());
  book_header h{book_format,
                b.next_lot_id,
                b.next_hold_id,
                static_cast<std::uint32_t>(b.lots.size()),
                static_cast<std::uint32_t>(b.holds.size()),
                takes,
                static_cast<std::uint32_t>(b.tier.buckets.size()),
                static_cast<std::uint32_t>(b.counters.size()),
                b.enrolled_at_us,
                b.last_activity_us,
                b.first_purchase_seq,
                b.lifetime_earned,
                b.debt,
                b.tier.secured,
                b.tier.pending_tier,
                b.tier.pending_at_us,
                b.tier.reviewed_through_us,
                b.consents,
                b.tier_warned_day,
                b.noticed_through_us,
                velocity_of(b),
                b.risk};
  out.reserve(out.size() + sizeof h + b.lots.size() * sizeof(lot) + b.holds.size() * sizeof(hold_record) +
              takes * sizeof(lot_take) + b.tier.buckets.size() * sizeof(qualify_bucket) +
              b.counters.size() * sizeof(rule_counter));
  put(out, h);
  put_all(out, b.lots);
  for (const auto& x : b.holds) {
    put(out, hold_record{x.id, x.brand_id, x.points, x.opened_at_us, x.expires_at_us, x.source_seq,
                         static_cast<std::uint32_t>(x.takes.size()), 0});
    put_all(out, x.takes);
  }
  put_all(out, b.tier.buckets);
  put_all(out, b.counters);
}

bool decode_book(const char* data, std::size_t size, member_book& out) {
  reader r(data, size);
  book_header h{};
  std::uint32_t format = 0;
  if (size >= sizeof format)
    std::memcpy(&format, data, sizeof format);
  if (format == 2) {  // the older, shorter header; the rest stays zero
    if (size < book_header_v2_bytes)
      return false;
    std::memcpy(static_cast<void*>(&h), data, book_header_v2_bytes);
    r = reader(data + book_header_v2_bytes, size - book_header_v2_bytes);
  } else if (!r.get(h) || h.format != book_format) {
    return false;
  }
  member_book b;
  b.enrolled_at_us = h.enrolled_at_us;
  b.last_activity_us = h.last_activity_us;
  b.first_purchase_seq = h.first_purchase_seq;
  b.lifetime_earned = h.lifetime_earned;
  b.debt = h.debt;
  b.next_lot_id = h.next_lot_id;
  b.next_hold_id = h.next_hold_id;
  b.tier.secured = h.tier_secured;
  b.tier.pending_tier = h.tier_pending;
  b.tier.pending_at_us = h.tier_pending_at_us;
  b.tier.reviewed_through_us = h.tier_reviewed_through_us;
  b.consents = h.consents;
  b.noticed_through_us = h.noticed_through_us;
  b.tier_warned_day = h.tier_warned_day;
  if (h.velocity.hour != 0)  // a member's windows are at the hour of its first record, never hour 0
    b.velocity.push_back(h.velocity);
  b.risk = h.risk;
  if (!r.get_all(b.lots, h.lots))
    return false;
  std::uint64_t takes = 0;
  b.holds.reserve(std::min<std::uint32_t>(h.holds, 1024));
  for (std::uint32_t i = 0; i < h.holds; ++i) {
    hold_record hr{};
    if (!r.get(hr))
      return false;
    hold x{hr.id, hr.brand_id, hr.points, hr.opened_at_us, hr.expires_at_us, hr.source_seq, {}};
    if (!r.get_all(x.takes, hr.takes))
      return false;
    takes += hr.takes;
    b.holds.push_back(std::move(x));
  }
  if (takes != h.takes || !r.get_all(b.tier.buckets, h.buckets) || !r.get_all(b.counters, h.counters) || !r.done())
    return false;
  out = std::move(b);
  return true;
}

} // namespace loyalty::ledger

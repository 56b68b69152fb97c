// The member book: the fold of journal detail records and its stored form.
#include "ledger/member_book.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <random>

using namespace loyalty::ledger;

namespace {

entry_detail rec(detail_kind k, std::uint32_t id, std::int64_t a, std::uint64_t b = 0, std::uint64_t c = 0,
           std::uint32_t aux = 0, std::uint32_t brand = 1) {
  return entry_detail{static_cast<std::uint16_t>(k), 0, id, brand, aux, a, b, c};
}

void fold(member_book& book, std::initializer_list<entry_detail> records, std::uint64_t seq, std::uint64_t at = 1000) {
  std::string why;
  std::vector<entry_detail> v(records);
  REQUIRE(apply_details(book, v, false, seq, at, why));
}

// Encodes, decodes and encodes again: the decoded book and identical bytes.
member_book round_trip(const member_book& b) {
  std::vector<char> bytes;
  encode_book(b, bytes);
  member_book d;
  REQUIRE(decode_book(bytes.data(), bytes.size(), d));
  std::vector<char> again;
  encode_book(d, again);
  REQUIRE(again == bytes);
  return d;
}

std::int64_t lots_total(const member_book& b) {
  std::int64_t s = 0;
  REQUIRE(sum_lots(b, s));
  return s;
}

} // namespace

TEST_CASE("earned lots are created in id order and used-up lots disappear", "[ledger][book]") {
  member_book b;
  fold(b, {rec(detail_kind::lot_add, 1, 100, 0, 5000)}, 10);
  fold(b, {rec(detail_kind::lot_add, 2, 50, 0, 4000)}, 11);
  REQUIRE(b.lots.size() == 2);
  CHECK(b.lots[0].source_seq == 10);
  CHECK(b.lots[1].expires_at_us == 4000);
  CHECK(b.next_lot_id == 3);
  fold(b, {rec(detail_kind::lot_take, 2, 50, 4000), rec(detail_kind::lot_take, 1, 30, 5000)}, 12);
  REQUIRE(b.lots.size() == 1);
  CHECK(b.lots[0].id == 1);
  CHECK(b.lots[0].points == 70);
  CHECK(lots_total(b) == 70);
}

TEST_CASE("points of the same brand, expiry and availability top up the newest lot", "[ledger][book]") {
  member_book b;
  fold(b, {rec(detail_kind::lot_add, 1, 100, 500, 9000)}, 10);  // available at 500, the entry occurs at 1000
  REQUIRE(top_up_target(b, 1, 5, 900, 9000, 1000) == &b.lots.back());  // both available when the entry occurs
  fold(b, {rec(detail_kind::lot_top_up, 1, 5, 900, 9000)}, 11);
  REQUIRE(b.lots.size() == 1);
  CHECK(b.lots[0].points == 105);
  CHECK(b.lots[0].original == 105);
  CHECK(b.lots[0].available_at_us == 500);
  CHECK(b.lots[0].source_seq == 10);  // the entry that made it
  CHECK(b.next_lot_id == 2);          // no id handed out

  // Another brand, another expiry, points pending (or a lot pending) past the
  // entry, a lot the expiry sweep told of, a sum beyond int64: a lot of their own.
  CHECK(top_up_target(b, 2, 5, 900, 9000, 1000) == nullptr);
  CHECK(top_up_target(b, 1, 5, 900, 9001, 1000) == nullptr);
  CHECK(top_up_target(b, 1, 5, 1500, 9000, 1000) == nullptr);
  CHECK(top_up_target(b, 1, 0, 900, 9000, 1000) == nullptr);
  CHECK(top_up_target(b, 1, INT64_MAX - 104, 900, 9000, 1000) == nullptr);
  member_book noticed = b;
  noticed.noticed_through_us = 9000;
  CHECK(top_up_target(noticed, 1, 5, 900, 9000, 1000) == nullptr);
  member_book pending;
  fold(pending, {rec(detail_kind::lot_add, 1, 10, 7000, 9000)}, 1);
  CHECK(top_up_target(pending, 1, 5, 7000, 9000, 1000) == &pending.lots.back());  // pending until the same instant
  CHECK(top_up_target(pending, 1, 5, 900, 9000, 1000) == nullptr);

  // Only the newest lot takes a top-up; a record that does not fit is refused.
  fold(b, {rec(detail_kind::lot_add, 2, 10, 0, 8000)}, 12);
  std::string why;
  for (const auto& bad : {rec(detail_kind::lot_top_up, 1, 5, 900, 9000), rec(detail_kind::lot_top_up, 2, 5, 900, 9000),
                          rec(detail_kind::lot_top_up, 2, 0, 0, 8000), rec(detail_kind::lot_top_up, 3, 5, 0, 8000)}) {
    member_book copy = b;
    std::vector<entry_detail> v{bad};
    CHECK_FALSE(apply_details(copy, v, false, 13, 1000, why));
  }
  fold(b, {rec(detail_kind::lot_top_up, 2, 5, 0, 8000)}, 13);
  CHECK(b.lots.back().points == 15);
  CHECK(round_trip(b).lots.back().points == 15);
}

TEST_CASE("a lot_add of zero points advances the lot id and creates no lot", "[ledger][book]") {
  member_book b;
  fold(b, {rec(detail_kind::lot_add, 1, 0)}, 1);
  CHECK(b.lots.empty());
  CHECK(b.next_lot_id == 2);
}

TEST_CASE("taking more points than a lot holds, or from a lot that is not there, does not fit", "[ledger][book]") {
  member_book b;
  fold(b, {rec(detail_kind::lot_add, 1, 10)}, 1);
  std::string why;
  std::vector<entry_detail> over{rec(detail_kind::lot_take, 1, 11)};
  CHECK_FALSE(apply_details(b, over, false, 2, 0, why));
  CHECK(why.find("lot_take") != std::string::npos);
  member_book c;
  fold(c, {rec(detail_kind::lot_add, 1, 10)}, 1);
  std::vector<entry_detail> missing{rec(detail_kind::lot_take, 7, 1)};
  CHECK_FALSE(apply_details(c, missing, false, 2, 0, why));
  std::vector<entry_detail> reused{rec(detail_kind::lot_add, 1, 5)};
  CHECK_FALSE(apply_details(c, reused, false, 2, 0, why));
}

TEST_CASE("a hold keeps where its points came from; a release puts them back with their expiry", "[ledger][book]") {
  member_book b;
  fold(b, {rec(detail_kind::lot_add, 1, 40, 0, 7000), rec(detail_kind::lot_add, 2, 60, 0, 9000)}, 1);
  fold(b,
       {rec(detail_kind::hold_open, 1, 70, 2000), rec(detail_kind::lot_take, 1, 40, 7000, 1000, 1),
        rec(detail_kind::lot_take, 2, 30, 9000, 1000, 1)},
       2);
  REQUIRE(b.holds.size() == 1);
  CHECK(b.holds[0].points == 70);
  REQUIRE(b.holds[0].takes.size() == 2);
  CHECK(b.holds[0].takes[0].lot_id == 1);
  CHECK(lots_total(b) == 30);  // lot 1 used up, 30 left in lot 2
  CHECK(b.lots.size() == 1);
  std::int64_t held = 0;
  REQUIRE(sum_holds(b, held));
  CHECK(held == 70);
  // Release: close the hold and restore every take.
  fold(b,
       {rec(detail_kind::hold_close, 1, 0, 0, 0, static_cast<std::uint32_t>(hold_close_reason::released)),
        rec(detail_kind::lot_restore, 1, 40, 7000, 1000), rec(detail_kind::lot_restore, 2, 30, 9000, 1000)},
       3);
  CHECK(b.holds.empty());
  REQUIRE(b.lots.size() == 2);
  CHECK(b.lots[0].id == 1);
  CHECK(b.lots[0].points == 40);
  CHECK(b.lots[0].expires_at_us == 7000);  // recreated with its original expiry
  CHECK(b.lots[1].points == 60);
}

TEST_CASE("closing a hold that is not open does not fit", "[ledger][book]") {
  member_book b;
  std::string why;
  std::vector<entry_detail> v{rec(detail_kind::hold_close, 3, 0)};
  CHECK_FALSE(apply_details(b, v, false, 1, 0, why));
}

TEST_CASE("counterparty records apply to the receiver only", "[ledger][book]") {
  member_book sender, receiver;
  fold(sender, {rec(detail_kind::lot_add, 1, 100)}, 1);
  auto take = rec(detail_kind::lot_take, 1, 25);
  auto give = rec(detail_kind::lot_add, 1, 25, 0, 8000);
  give.flags = detail_counterparty;
  std::vector<entry_detail> transfer{take, give};
  std::string why;
  REQUIRE(apply_details(sender, transfer, false, 2, 0, why));
  REQUIRE(apply_details(receiver, transfer, true, 2, 0, why));
  CHECK(lots_total(sender) == 75);
  CHECK(lots_total(receiver) == 25);
  CHECK(receiver.lots[0].expires_at_us == 8000);
}

TEST_CASE("rule lines count lifetime points and per-rule counters, clawbacks included", "[ledger][book]") {
  member_book b;
  auto rule = static_cast<std::uint32_t>(rule_line_kind::rule);
  auto base = static_cast<std::uint32_t>(rule_line_kind::base);
  fold(b, {rec(detail_kind::rule_line, 0, 10, 1000, 0, base), rec(detail_kind::rule_line, 77, 5, 500, 0, rule)}, 1);
  fold(b, {rec(detail_kind::rule_line, 77, 5, 500, 0, rule)}, 2);
  fold(b, {rec(detail_kind::rule_line, 77, -3, 0, 0, rule)}, 3);
  CHECK(b.lifetime_earned == 17);
  REQUIRE(b.counters.size() == 1);
  CHECK(b.counters[0].rule_id == 77);
  CHECK(b.counters[0].points == 7);
  CHECK(b.counters[0].uses == 2);
}

TEST_CASE("qualifying buckets stay ascending, never drop below zero, and tier_state prunes them", "[ledger][book]") {
  tier_track t;
  add_qualifying(t, 20, 100);
  add_qualifying(t, 10, 50);
  add_qualifying(t, 30, 5);
  add_qualifying(t, 20, -130);
  add_qualifying(t, 15, -10);  // never booked: nothing to take back
  REQUIRE(t.buckets.size() == 3);
  CHECK(t.buckets[0].day == 10);
  CHECK(t.buckets[1].amount == 0);
  member_book b;
  b.tier = t;
  fold(b, {rec(detail_kind::tier_state, 2, 25, 111, 222, 1)}, 4);
  CHECK(b.tier.secured == 2);
  CHECK(b.tier.pending_tier == 1);
  CHECK(b.tier.pending_at_us == 111);
  CHECK(b.tier.reviewed_through_us == 222);
  REQUIRE(b.tier.buckets.size() == 1);
  CHECK(b.tier.buckets[0].day == 30);
}

TEST_CASE("debt never goes below zero", "[ledger][book]") {
  member_book b;
  fold(b, {rec(detail_kind::debt, 0, 30)}, 1);
  CHECK(b.debt == 30);
  std::string why;
  std::vector<entry_detail> v{rec(detail_kind::debt, 0, -31)};
  CHECK_FALSE(apply_details(b, v, false, 2, 0, why));
}

TEST_CASE("a book survives encode and decode exactly", "[ledger][book]") {
  member_book b;
  b.enrolled_at_us = 5;
  b.first_purchase_seq = 9;
  fold(b,
       {rec(detail_kind::lot_add, 1, 40, 3, 7000), rec(detail_kind::lot_add, 2, 60, 4, 9000),
        rec(detail_kind::activity, 0, 0, 4242), rec(detail_kind::qualify, 19000, 70)},
       1);
  fold(b, {rec(detail_kind::hold_open, 1, 10, 2000), rec(detail_kind::lot_take, 1, 10, 7000, 0, 1)}, 2);
  fold(b, {rec(detail_kind::rule_line, 12, 8, 0, 0, static_cast<std::uint32_t>(rule_line_kind::rule))}, 3);
  auto d = round_trip(b);
  CHECK(d.last_activity_us == 4242);
  REQUIRE(d.holds.size() == 1);
  CHECK(d.holds[0].takes.size() == 1);
  CHECK(d.tier.buckets.size() == 1);
  CHECK(d.counters.size() == 1);
  CHECK(d.lots.size() == 2);
}

TEST_CASE("truncated, padded or garbled stored books are refused", "[ledger][book]") {
  member_book b;
  fold(b, {rec(detail_kind::lot_add, 1, 40), rec(detail_kind::hold_open, 1, 5),
           rec(detail_kind::lot_take, 1, 5, 0, 0, 1)}, 1);
  std::vector<char> bytes;
  encode_book(b, bytes);
  member_book d;
  for (std::size_t cut = 0; cut < bytes.size(); cut += 7)
    CHECK_FALSE(decode_book(bytes.data(), cut, d));
  auto padded = bytes;
  padded.push_back(0);
  CHECK_FALSE(decode_book(padded.data(), padded.size(), d));
  auto wrong_format = bytes;
  wrong_format[0] = 9;
  CHECK_FALSE(decode_book(wrong_format.data(), wrong_format.size(), d));
}

TEST_CASE("random earn, spend, hold and release sequences keep lots and holds consistent", "[ledger][book]") {
  const auto seed = Catch::rngSeed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  member_book b;
  std::int64_t expected = 0;  // points in lots + holds
  for (std::uint64_t seq = 1; seq < 400; ++seq) {
    std::vector<entry_detail> v;
    auto dice = rng() % 4;
    if (dice == 0 || b.lots.empty()) {
      auto pts = static_cast<std::int64_t>(rng() % 100);
      v.push_back(rec(detail_kind::lot_add, b.next_lot_id, pts, 0, rng() % 10000));
    } else if (dice == 1 || dice == 2) {
      const auto& l = b.lots[rng() % b.lots.size()];
      auto take = 1 + static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(l.points));
      if (dice == 1) {
        v.push_back(rec(detail_kind::lot_take, l.id, take, l.expires_at_us));
        expected -= take;
      } else {
        v.push_back(rec(detail_kind::hold_open, b.next_hold_id, take, 0));
        v.push_back(rec(detail_kind::lot_take, l.id, take, l.expires_at_us, 0, b.next_hold_id));
      }
    } else if (!b.holds.empty()) {
      const auto& h = b.holds.front();
      v.push_back(rec(detail_kind::hold_close, h.id, 0));
      for (const auto& t : h.takes)
        v.push_back(rec(detail_kind::lot_restore, t.lot_id, t.points, t.expires_at_us, t.earned_at_us));
    }
    if (!v.empty() && static_cast<detail_kind>(v[0].kind) == detail_kind::lot_add)
      expected += v[0].a;
    std::string why;
    REQUIRE(apply_details(b, v, false, seq, seq, why));
    std::int64_t lots = 0, holds = 0;
    REQUIRE(sum_lots(b, lots));
    REQUIRE(sum_holds(b, holds));
    REQUIRE(lots + holds == expected);
    for (const auto& h : b.holds) {
      std::int64_t taken = 0;
      for (const auto& t : h.takes)
        taken += t.points;
      REQUIRE(taken == h.points);
    }
    round_trip(b);
  }
}

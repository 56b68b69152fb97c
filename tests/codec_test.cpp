// The wire codec: round trips and every validation error. The hex examples
// of docs/PROTOCOL.md are checked against a live engine, byte for byte, by
// protocol_examples_test.
#include "config/consent.hpp"
#include "io/wire/codec.hpp"

#include <msgpack.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <functional>
#include <sstream>
#include <tuple>

using namespace loyalty;
using namespace loyalty::io;

namespace {

template <class F>
std::string payload(F fill) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  fill(pk);
  return {buf.data(), buf.size()};
}

request decode(const std::string& p) { return decode_request(p.data(), p.size()); }

// A full earn map with one field replaced (or dropped when `value` is null).
template <class V>
std::string earn_with(const std::string& key, const V* value) {
  return payload([&](auto& pk) {
    std::vector<std::string> keys{"op", "id", "txn", "member", "brand", "amount", "currency", "occurred_at"};
    bool drop = value == nullptr && std::find(keys.begin(), keys.end(), key) != keys.end();
    pk.pack_map(static_cast<std::uint32_t>(keys.size() - (drop ? 1 : 0)));
    for (auto& k : keys) {
      if (k == key) {
        if (value != nullptr)
          pk.pack(k), pk.pack(*value);
        continue;
      }
      pk.pack(k);
      if (k == "op") pk.pack("earn");
      else if (k == "id") pk.pack(9);
      else if (k == "txn") pk.pack("t-1");
      else if (k == "member") pk.pack(5);
      else if (k == "brand") pk.pack("acme");
      else if (k == "amount") pk.pack(1999);
      else if (k == "currency") pk.pack("EUR");
      else if (k == "occurred_at") pk.pack(1'700'000'000'000'000ull);
    }
  });
}

} // namespace

TEST_CASE("a well-formed earn decodes with every field", "[io][codec]") {
  std::string p = payload([](auto& pk) {
    pk.pack_map(8);
    pk.pack("op"), pk.pack("earn");
    pk.pack("id"), pk.pack(9);
    pk.pack("txn"), pk.pack("t-1");
    pk.pack("member"), pk.pack(5);
    pk.pack("brand"), pk.pack("acme");
    pk.pack("amount"), pk.pack(1999);
    pk.pack("currency"), pk.pack("EUR");
    pk.pack("occurred_at"), pk.pack(1'700'000'000'000'000ull);
  });
  auto r = decode(p);
  REQUIRE(r.error == errc::ok);
  CHECK(r.op == opcode::earn);
  CHECK(r.id == 9);
  CHECK(r.txn == "t-1");
  CHECK(r.member == 5);
  CHECK(r.brand == "acme");
  CHECK(r.amount == 1999);
  CHECK(r.currency == "EUR");
  CHECK(r.occurred_at_us == 1'700'000'000'000'000ull);
}

TEST_CASE("every request kind survives encode_request and decode_request", "[io][codec]") {
  request e;
  e.op = opcode::earn;
  e.id = 77;
  e.txn = std::string("\x00\x01\xff", 3);  // binary txn ids are fine
  e.member = (std::uint64_t{1} << 56) - 1;
  e.brand = "globex";
  e.amount = INT64_MAX;
  e.currency = "USD";
  e.occurred_at_us = 12345;
  request rd;
  rd.op = opcode::redeem;
  rd.id = 78;
  rd.txn = "r";
  rd.member = 1;
  rd.points = 10;
  request en;
  en.op = opcode::enroll;
  en.id = 79;
  en.member = 2;
  en.brand = "acme";
  request bal;
  bal.op = opcode::balance;
  bal.id = 80;
  bal.member = 3;
  request batch;
  batch.op = opcode::batch;
  batch.id = 81;
  batch.ops = {e, rd, en, bal};
  for (const auto& q : {e, rd, en, bal, batch}) {
    std::vector<char> buf;
    encode_request(buf, q);
    REQUIRE(read_be32(reinterpret_cast<const unsigned char*>(buf.data())) == buf.size() - 4);
    auto back = decode_request(buf.data() + 4, buf.size() - 4);
    INFO(to_string(q.op) << ": " << back.error_message);
    REQUIRE(back.error == errc::ok);
    CHECK(back.op == q.op);
    CHECK(back.id == q.id);
    CHECK(back.txn == q.txn);
    CHECK(back.member == q.member);
    CHECK(back.amount == q.amount);
    CHECK(back.points == q.points);
    CHECK(back.ops.size() == q.ops.size());
  }
}

TEST_CASE("every response kind survives encode_response and decode_response", "[io][codec]") {
  response ok;
  ok.op = opcode::earn;
  ok.id = 5;
  ok.seq = 99;
  ok.member = 7;
  ok.points = 12;
  ok.balance = -3;  // balances can be negative in later programs; the codec keeps the sign
  ok.lifetime = 500;
  ok.tier = "gold";
  ok.replayed = true;
  response err;
  err.op = opcode::redeem;
  err.id = 6;
  err.code = errc::insufficient_points;
  err.message = "no";
  response v;
  v.op = opcode::verify;
  v.id = 7;
  v.verify.valid = false;
  v.verify.entries = 3;
  v.verify.problems = {"p1", "p2"};
  response st;
  st.op = opcode::stats;
  st.id = 8;
  st.stats = {{"a", 1}, {"b", 2}};
  response b;
  b.op = opcode::batch;
  b.id = 9;
  b.results = {ok, err};
  for (const auto& r : {ok, err, v, st, b}) {
    std::vector<char> buf;
    encode_response(buf, r);
    response back;
    std::string error;
    REQUIRE(decode_response(buf.data() + 4, buf.size() - 4, back, error));
    CHECK(back.op == r.op);
    CHECK(back.id == r.id);
    CHECK(back.code == r.code);
    CHECK(back.message == r.message);
    CHECK(back.balance == r.balance);
    CHECK(back.tier == r.tier);
    CHECK(back.replayed == r.replayed);
    CHECK(back.verify.problems == r.verify.problems);
    CHECK(back.stats == r.stats);
    CHECK(back.results.size() == r.results.size());
  }
}

TEST_CASE("bad fields decode to their documented error codes", "[io][codec]") {
  const std::string str_amount = "100";
  const double float_amount = 1.5;
  const int negative = -5, zero = 0;
  const std::uint64_t huge = std::uint64_t{1} << 63;
  const std::string long_txn(65, 'x'), bad_currency = "eur", empty;
  const std::uint64_t member_too_big = std::uint64_t{1} << 56;
  CHECK(decode(earn_with("amount", &str_amount)).error == errc::wrong_type);
  CHECK(decode(earn_with("amount", &float_amount)).error == errc::wrong_type);
  CHECK(decode(earn_with("amount", &negative)).error == errc::invalid_amount);
  CHECK(decode(earn_with("amount", &zero)).error == errc::invalid_amount);
  CHECK(decode(earn_with("amount", &huge)).error == errc::amount_overflow);
  CHECK(decode(earn_with<int>("amount", nullptr)).error == errc::missing_field);
  CHECK(decode(earn_with<int>("txn", nullptr)).error == errc::missing_field);
  CHECK(decode(earn_with("txn", &long_txn)).error == errc::invalid_argument);
  CHECK(decode(earn_with("txn", &empty)).error == errc::invalid_argument);
  CHECK(decode(earn_with("currency", &bad_currency)).error == errc::invalid_argument);
  CHECK(decode(earn_with("member", &zero)).error == errc::invalid_argument);
  CHECK(decode(earn_with("member", &negative)).error == errc::invalid_argument);
  CHECK(decode(earn_with("member", &member_too_big)).error == errc::invalid_argument);
  CHECK(decode(earn_with("member", &str_amount)).error == errc::wrong_type);
  CHECK(decode(earn_with("occurred_at", &str_amount)).error == errc::wrong_type);
  CHECK(decode(earn_with("occurred_at", &negative)).error == errc::invalid_argument);
  auto r = decode(earn_with("amount", &negative));
  CHECK(r.id == 9);  // the id is still known, so the answer can be matched
  CHECK(r.error_message.find("amount") != std::string::npos);
}

TEST_CASE("requests that are not maps, lack op or id, or name no operation are refused", "[io][codec]") {
  CHECK(decode(payload([](auto& pk) { pk.pack(1); })).error == errc::wrong_type);
  CHECK(decode(payload([](auto& pk) {
          pk.pack_map(1);
          pk.pack("op"), pk.pack("balance");
        })).error == errc::missing_field);
  CHECK(decode(payload([](auto& pk) {
          pk.pack_map(1);
          pk.pack("id"), pk.pack(1);
        })).error == errc::missing_field);
  auto u = decode(payload([](auto& pk) {
    pk.pack_map(2);
    pk.pack("op"), pk.pack("fly");
    pk.pack("id"), pk.pack(4);
  }));
  CHECK(u.error == errc::unknown_operation);
  CHECK(u.id == 4);
  CHECK(decode(payload([](auto& pk) {
          pk.pack_map(2);
          pk.pack("op"), pk.pack(7);
          pk.pack("id"), pk.pack(4);
        })).error == errc::wrong_type);
}

TEST_CASE("unknown extra keys are ignored", "[io][codec]") {
  auto r = decode(payload([](auto& pk) {
    pk.pack_map(4);
    pk.pack("op"), pk.pack("balance");
    pk.pack("id"), pk.pack(1);
    pk.pack("member"), pk.pack(3);
    pk.pack("future_field"), pk.pack_array(0);
  }));
  CHECK(r.error == errc::ok);
  CHECK(r.member == 3);
}

TEST_CASE("truncated msgpack and trailing bytes are malformed frames", "[io][codec]") {
  auto p = earn_with("none", static_cast<int*>(nullptr));
  CHECK(decode_request(p.data(), p.size() - 3).error == errc::malformed_frame);
  auto extra = p + "\x01";
  CHECK(decode(extra).error == errc::malformed_frame);
  const char never_valid[] = "\xc1";
  CHECK(decode_request(never_valid, 1).error == errc::malformed_frame);
}

TEST_CASE("a batch over the limit is refused whole; a bad element fails alone", "[io][codec]") {
  auto big = payload([](auto& pk) {
    pk.pack_map(3);
    pk.pack("op"), pk.pack("batch");
    pk.pack("id"), pk.pack(1);
    pk.pack("ops"), pk.pack_array(static_cast<std::uint32_t>(limits::batch_ops_max + 1));
    for (std::size_t i = 0; i <= limits::batch_ops_max; ++i) {
      pk.pack_map(3);
      pk.pack("op"), pk.pack("balance");
      pk.pack("id"), pk.pack(i);
      pk.pack("member"), pk.pack(1);
    }
  });
  CHECK(decode(big).error == errc::batch_too_large);
  auto mixed = decode(payload([](auto& pk) {
    pk.pack_map(3);
    pk.pack("op"), pk.pack("batch");
    pk.pack("id"), pk.pack(1);
    pk.pack("ops"), pk.pack_array(3);
    pk.pack_map(3), pk.pack("op"), pk.pack("balance"), pk.pack("id"), pk.pack(1), pk.pack("member"), pk.pack(1);
    pk.pack_map(3), pk.pack("op"), pk.pack("balance"), pk.pack("id"), pk.pack(2), pk.pack("member"), pk.pack(0);
    pk.pack_map(2), pk.pack("op"), pk.pack("verify"), pk.pack("id"), pk.pack(3);
  }));
  REQUIRE(mixed.error == errc::ok);
  REQUIRE(mixed.ops.size() == 3);
  CHECK(mixed.ops[0].error == errc::ok);
  CHECK(mixed.ops[1].error == errc::invalid_argument);
  CHECK(mixed.ops[2].error == errc::invalid_argument);
  auto empty = decode(payload([](auto& pk) {
    pk.pack_map(3);
    pk.pack("op"), pk.pack("batch");
    pk.pack("id"), pk.pack(1);
    pk.pack("ops"), pk.pack_array(0);
  }));
  CHECK(empty.error == errc::invalid_argument);
}

TEST_CASE("error code names round-trip through their strings", "[io][codec]") {
  for (int i = 0; i < 128; ++i) {
    auto e = static_cast<errc>(i);
    auto name = to_string(e);
    if (name == "internal_error" && e != errc::internal_error)
      continue;  // not a defined code
    CHECK(errc_from_string(name) == e);
    CHECK_FALSE(default_message(e).empty());
  }
}

// -- issue 3 operations ---------------------------------------------------------------------

namespace loyalty::io {
// Field-wise equality of the wire structs, for exact round-trip checks.
bool operator==(const item& a, const item& b) {
  return std::tie(a.sku, a.category, a.qty, a.amount) == std::tie(b.sku, b.category, b.qty, b.amount);
}
bool operator==(const line& a, const line& b) {
  return std::tie(a.kind, a.rule, a.points, a.amount) == std::tie(b.kind, b.rule, b.points, b.amount);
}
bool operator==(const history_entry& a, const history_entry& b) {
  return std::tie(a.seq, a.kind, a.txn, a.occurred_at_us, a.committed_at_us, a.points, a.balance, a.amount,
                  a.brand, a.ref, a.counterparty, a.partner) ==
         std::tie(b.seq, b.kind, b.txn, b.occurred_at_us, b.committed_at_us, b.points, b.balance, b.amount,
                  b.brand, b.ref, b.counterparty, b.partner);
}
bool operator==(const settlement_move& a, const settlement_move& b) {
  return std::tie(a.payer, a.payee, a.points, a.amount, a.rate, a.reversal) ==
         std::tie(b.payer, b.payee, b.points, b.amount, b.rate, b.reversal);
}
bool operator==(const liability_row& a, const liability_row& b) {
  return std::tie(a.brand, a.issued, a.redeemed, a.expired, a.outstanding, a.cost_per_point, a.liability,
                  a.settlement) == std::tie(b.brand, b.issued, b.redeemed, b.expired, b.outstanding,
                                            b.cost_per_point, b.liability, b.settlement);
}
bool operator==(const activity_result& a, const activity_result& b) {
  return std::tie(a.brand, a.from_us, a.to_us, a.first_seq, a.last_seq, a.issued, a.refunded, a.redeemed,
                  a.reversed, a.expired, a.opening_outstanding, a.closing_outstanding, a.closing_liability,
                  a.settlement) ==
         std::tie(b.brand, b.from_us, b.to_us, b.first_seq, b.last_seq, b.issued, b.refunded, b.redeemed,
                  b.reversed, b.expired, b.opening_outstanding, b.closing_outstanding, b.closing_liability,
                  b.settlement);
}
bool operator==(const statement_row& a, const statement_row& b) {
  return std::tie(a.seq, a.committed_at_us, a.member, a.kind, a.txn, a.counterparty, a.points, a.due, a.rate,
                  a.reversal) == std::tie(b.seq, b.committed_at_us, b.member, b.kind, b.txn, b.counterparty,
                                          b.points, b.due, b.rate, b.reversal);
}
bool operator==(const statement_result& a, const statement_result& b) {
  return std::tie(a.party, a.from_us, a.to_us, a.first_seq, a.last_seq, a.opening, a.closing, a.net, a.points,
                  a.line_count, a.lines, a.next_after) ==
         std::tie(b.party, b.from_us, b.to_us, b.first_seq, b.last_seq, b.opening, b.closing, b.net, b.points,
                  b.line_count, b.lines, b.next_after);
}
} // namespace loyalty::io

namespace {

request via_wire(const request& q) {
  std::vector<char> buf;
  encode_request(buf, q);
  REQUIRE(read_be32(reinterpret_cast<const unsigned char*>(buf.data())) == buf.size() - 4);
  return decode_request(buf.data() + 4, buf.size() - 4);
}

response via_wire(const response& r) {
  std::vector<char> buf;
  encode_response(buf, r);
  response back;
  std::string error;
  INFO(to_string(r.op));
  REQUIRE(decode_response(buf.data() + 4, buf.size() - 4, back, error));
  return back;
}

// Every field a request can carry (has_member is the decoder's: compared by
// the caller).
void check_same(const request& a, const request& b) {
  INFO("request " << to_string(a.op) << " id " << a.id << ": " << b.error_message);
  CHECK(b.error == errc::ok);
  CHECK(a.op == b.op);
  CHECK(a.id == b.id);
  CHECK(a.version == b.version);
  CHECK(a.client_name == b.client_name);
  CHECK(a.member == b.member);
  CHECK(a.brand == b.brand);
  CHECK(a.txn == b.txn);
  CHECK(a.amount == b.amount);
  CHECK(a.currency == b.currency);
  CHECK(a.occurred_at_us == b.occurred_at_us);
  CHECK(a.points == b.points);
  CHECK(a.key == b.key);
  CHECK(a.alias == b.alias);
  CHECK(a.items == b.items);
  CHECK(a.channel == b.channel);
  CHECK(a.store == b.store);
  CHECK(a.event == b.event);
  CHECK(a.ttl_s == b.ttl_s);
  CHECK(a.hold == b.hold);
  CHECK(a.reward == b.reward);
  CHECK(a.ref == b.ref);
  CHECK(a.reason == b.reason);
  CHECK(a.to == b.to);
  CHECK(a.before == b.before);
  CHECK(a.limit == b.limit);
  CHECK(a.as_of_us == b.as_of_us);
  CHECK(a.partner == b.partner);
  CHECK(a.from_us == b.from_us);
  CHECK(a.to_us == b.to_us);
  CHECK(a.after == b.after);
  REQUIRE(a.ops.size() == b.ops.size());
  for (std::size_t i = 0; i < a.ops.size(); ++i)
    check_same(a.ops[i], b.ops[i]);
}

void check_same(const response& a, const response& b) {
  INFO("response " << to_string(a.op) << " id " << a.id);
  CHECK(a.op == b.op);
  CHECK(a.id == b.id);
  CHECK(a.code == b.code);
  CHECK(a.message == b.message);
  CHECK(a.seq == b.seq);
  CHECK(a.member == b.member);
  CHECK(a.points == b.points);
  CHECK(a.balance == b.balance);
  CHECK(a.lifetime == b.lifetime);
  CHECK(a.tier == b.tier);
  CHECK(a.brand == b.brand);
  CHECK(a.replayed == b.replayed);
  CHECK(a.lines == b.lines);
  CHECK(a.available == b.available);
  CHECK(a.pending == b.pending);
  CHECK(a.held == b.held);
  CHECK(a.debt == b.debt);
  CHECK(a.next_tier == b.next_tier);
  CHECK(a.qualifying == b.qualifying);
  CHECK(a.to_next_tier == b.to_next_tier);
  CHECK(a.next_expiry_points == b.next_expiry_points);
  CHECK(a.next_expiry_at_us == b.next_expiry_at_us);
  CHECK(a.hold == b.hold);
  CHECK(a.expires_at_us == b.expires_at_us);
  CHECK(a.reward == b.reward);
  CHECK(a.entries == b.entries);
  CHECK(a.next_before == b.next_before);
  CHECK(a.expired == b.expired);
  CHECK(a.members == b.members);
  CHECK(a.key_id == b.key_id);
  CHECK(a.key_name == b.key_name);
  CHECK(a.policy_version == b.policy_version);
  CHECK(a.partner == b.partner);
  CHECK(a.settlements == b.settlements);
  CHECK(a.liabilities == b.liabilities);
  CHECK(a.activity == b.activity);
  CHECK(a.statement == b.statement);
  REQUIRE(a.moves.size() == b.moves.size());
  for (std::size_t i = 0; i < a.moves.size(); ++i) {
    CHECK(a.moves[i].account == b.moves[i].account);
    CHECK(a.moves[i].side == b.moves[i].side);
    CHECK(a.moves[i].amount == b.moves[i].amount);
  }
  CHECK(a.verify.entries == b.verify.entries);
  CHECK(a.verify.members == b.verify.members);
  REQUIRE(a.results.size() == b.results.size());
  for (std::size_t i = 0; i < a.results.size(); ++i)
    check_same(a.results[i], b.results[i]);
}

request make(opcode op, std::uint64_t id) {
  request r;
  r.op = op;
  r.id = id;
  return r;
}

// One request of each issue-3 kind with every field it can carry set.
std::vector<request> issue3_requests() {
  std::vector<request> v;
  auto r = make(opcode::event, 100);
  r.txn = "ev-1", r.member = 5, r.event = "survey", r.brand = "acme", r.channel = "app", r.store = "s-9";
  r.occurred_at_us = 1'700'000'000'000'000ull;
  v.push_back(r);
  r = make(opcode::hold, 101);
  r.txn = std::string("\x00h", 2), r.alias = "card-4411", r.points = 300, r.brand = "acme", r.ttl_s = 600;
  v.push_back(r);
  r = make(opcode::capture, 102);
  r.txn = "cap-1", r.member = 5, r.hold = 17, r.points = 250;
  v.push_back(r);
  r = make(opcode::release, 103);
  r.txn = "rel-1", r.member = 5, r.hold = 18;
  v.push_back(r);
  r = make(opcode::redeem_reward, 104);
  r.txn = "rw-1", r.member = 5, r.reward = "free-coffee";
  v.push_back(r);
  r = make(opcode::refund, 105);
  r.txn = "rf-1", r.member = 5, r.ref = std::string("\xff\x00order", 7), r.amount = 1000, r.occurred_at_us = 9;
  v.push_back(r);
  r = make(opcode::refund, 106);
  r.txn = "rf-2", r.alias = "bob", r.ref = "order-2";
  r.items = {{"sku-1", "dairy", 2, 350}, {"", "", 1, 0}};
  v.push_back(r);
  r = make(opcode::reverse_redemption, 107);
  r.txn = "rr-1", r.member = 5, r.ref = "rw-1";
  v.push_back(r);
  r = make(opcode::adjust, 108);
  r.txn = "adj-1", r.member = 5, r.points = -INT64_MAX, r.reason = "goodwill correction", r.brand = "acme";
  v.push_back(r);
  r = make(opcode::transfer, 109);
  r.txn = "tr-1", r.member = 5, r.to = (std::uint64_t{1} << 56) - 1, r.points = 40;
  v.push_back(r);
  r = make(opcode::link_alias, 110);
  r.txn = "la-1", r.member = 5, r.alias = std::string(64, 'a');
  v.push_back(r);
  r = make(opcode::lookup, 111);
  r.alias = "card-4411";
  v.push_back(r);
  r = make(opcode::history, 112);
  r.member = 5, r.before = 1234, r.limit = 100;
  v.push_back(r);
  r = make(opcode::expire, 113);
  r.as_of_us = 1'800'000'000'000'000ull;
  v.push_back(r);
  r = make(opcode::expire, 114);
  r.alias = "bob";
  v.push_back(r);
  r = make(opcode::earn, 115);
  r.txn = "e-items", r.member = 5, r.brand = "acme", r.amount = 1000, r.currency = "EUR", r.occurred_at_us = 1;
  r.items = {{"sku-1", "dairy", 3, 600}, {"sku-2", "", 1, 400}};
  r.channel = "store", r.store = "berlin-1";
  v.push_back(r);
  r = make(opcode::redeem, 116);
  r.txn = "rd-alias", r.alias = "bob", r.points = 5;
  v.push_back(r);
  r = make(opcode::balance, 117);
  r.alias = "bob";
  v.push_back(r);
  r = make(opcode::hello, 118);
  r.version = 1, r.client_name = "pos", r.key = std::string(128, 'k');
  v.push_back(r);
  return v;
}

// One response of each issue-3 shape with every field it carries set.
std::vector<response> issue3_responses() {
  std::vector<response> v;
  auto base = [](opcode op, std::uint64_t id) {
    response r;
    r.op = op;
    r.id = id;
    r.seq = 900 + id;
    r.member = 5;
    r.points = -12;
    r.balance = -7;
    r.replayed = true;
    return r;
  };
  const std::vector<line> lines{{"base", "", 10, 1000}, {"tier", "", 2, 1000}, {"rule", "double-dairy", 6, 600}};
  for (auto op : {opcode::earn, opcode::event, opcode::refund, opcode::enroll}) {
    auto r = base(op, static_cast<std::uint64_t>(op));
    r.lifetime = 1049, r.tier = "silver", r.lines = lines;
    v.push_back(r);
  }
  for (auto op : {opcode::redeem_reward, opcode::capture, opcode::release, opcode::reverse_redemption,
                  opcode::adjust, opcode::transfer, opcode::hold}) {
    auto r = base(op, static_cast<std::uint64_t>(op));
    if (op == opcode::hold)
      r.hold = 77, r.expires_at_us = 1'700'000'900'000'000ull;
    if (op == opcode::redeem_reward)
      r.reward = "free-coffee";
    v.push_back(r);
  }
  response b;
  b.op = opcode::balance, b.id = 30, b.member = 5, b.brand = "acme", b.balance = 100, b.lifetime = 900;
  b.tier = "silver", b.available = 80, b.pending = 15, b.held = 5, b.debt = 3, b.next_tier = "gold";
  b.qualifying = 900, b.to_next_tier = 100, b.next_expiry_points = 20, b.next_expiry_at_us = 1'800'000'000'000'000ull;
  v.push_back(b);
  response la;
  la.op = opcode::link_alias, la.id = 31, la.seq = 44, la.member = 5, la.replayed = true;
  v.push_back(la);
  response lk;
  lk.op = opcode::lookup, lk.id = 32, lk.member = 5;
  v.push_back(lk);
  response h;
  h.op = opcode::history, h.id = 33, h.member = 5, h.next_before = 40;
  h.entries = {{45, "transfer", std::string("t\x00x", 3), 10, 11, -40, 60, 0, "acme", 0, 6},
               {41, "refund", "rf-1", 12, 13, -10, 100, -1000, "acme", 39, 0},
               {40, "enroll", "", 1, 2, 0, 0, 0, "acme", 0, 0}};
  v.push_back(h);
  response x;
  x.op = opcode::expire, x.id = 34, x.expired = 1234, x.members = 1'000'000, x.seq = 0;
  v.push_back(x);
  response x1 = x;
  x1.id = 35, x1.members = 1, x1.seq = 77;
  v.push_back(x1);
  response err;
  err.op = opcode::adjust, err.id = 36, err.code = errc::not_authorized, err.message = "needs the admin key";
  v.push_back(err);
  return v;
}

using pk_t = msgpack::packer<msgpack::sbuffer>;
using value_fn = std::function<void(pk_t&)>;
struct field {
  std::string key;
  value_fn value;
};
template <class T>
value_fn val(T v) {
  return [v](pk_t& pk) { pk.pack(v); };
}
value_fn nil() {
  return [](pk_t& pk) { pk.pack_nil(); };
}

// A request map {op, id: 7, fields...}, decoded.
request decode_op(const std::string& op, const std::vector<field>& fields) {
  return decode(payload([&](pk_t& pk) {
    pk.pack_map(static_cast<std::uint32_t>(fields.size() + 2));
    pk.pack("op"), pk.pack(op);
    pk.pack("id"), pk.pack(7);
    for (auto& f : fields)
      pk.pack(f.key), f.value(pk);
  }));
}

// The minimal valid fields of each member op that takes txn (member by id).
std::vector<field> minimal(const std::string& op) {
  std::vector<field> f{{"member", val(5)}};
  if (op != "balance" && op != "history" && op != "expire")
    f.push_back({"txn", val(std::string("t-1"))});
  if (op == "earn")
    f.insert(f.end(), {{"brand", val(std::string("acme"))}, {"amount", val(1000)},
                       {"currency", val(std::string("EUR"))}, {"occurred_at", val(1)}});
  if (op == "redeem" || op == "hold" || op == "transfer")
    f.push_back({"points", val(10)});
  if (op == "event") f.push_back({"event", val(std::string("survey"))});
  if (op == "capture" || op == "release") f.push_back({"hold", val(3)});
  if (op == "redeem_reward") f.push_back({"reward", val(std::string("free-coffee"))});
  if (op == "refund" || op == "reverse_redemption") f.push_back({"ref", val(std::string("order-1"))});
  if (op == "adjust")
    f.insert(f.end(), {{"points", val(-5)}, {"reason", val(std::string("fix"))}, {"brand", val(std::string("acme"))}});
  if (op == "transfer") f.push_back({"to", val(6)});
  if (op == "partner_earn" || op == "partner_burn")
    f.insert(f.end(), {{"partner", val(std::string("skyair"))}, {"points", val(500)}});
  return f;
}

std::vector<field> with(std::vector<field> f, const std::string& key, value_fn v) {
  std::erase_if(f, [&](const field& x) { return x.key == key; });
  if (v)
    f.push_back({key, std::move(v)});
  return f;
}
std::vector<field> without(std::vector<field> f, const std::string& key) { return with(std::move(f), key, {}); }

const std::vector<std::string> member_ops{"earn", "redeem", "balance", "event", "hold", "capture", "release",
                                          "redeem_reward", "refund", "reverse_redemption", "adjust",
                                          "transfer", "history", "expire", "partner_earn", "partner_burn"};
const std::vector<std::string> txn_ops{"earn", "redeem", "event", "hold", "capture", "release", "redeem_reward",
                                       "refund", "reverse_redemption", "adjust", "transfer", "link_alias",
                                       "partner_earn", "partner_burn"};

// items of n lines of `each` minor units.
value_fn items_of(std::size_t n, std::int64_t each) {
  return [n, each](pk_t& pk) {
    pk.pack_array(static_cast<std::uint32_t>(n));
    for (std::size_t i = 0; i < n; ++i) {
      pk.pack_map(2);
      pk.pack("sku"), pk.pack("s" + std::to_string(i));
      pk.pack("amount"), pk.pack(each);
    }
  };
}
// items with one line given as raw key / value pairs.
value_fn one_item(const std::vector<field>& kv) {
  return [kv](pk_t& pk) {
    pk.pack_array(1);
    pk.pack_map(static_cast<std::uint32_t>(kv.size()));
    for (auto& f : kv)
      pk.pack(f.key), f.value(pk);
  };
}

} // namespace

TEST_CASE("every issue-3 request survives encode_request and decode_request field for field", "[io][codec]") {
  for (const auto& q : issue3_requests()) {
    auto back = via_wire(q);
    check_same(q, back);
    CHECK(back.has_member == (q.member != 0));
  }
}

TEST_CASE("every issue-3 response survives encode_response and decode_response field for field", "[io][codec]") {
  for (const auto& r : issue3_responses())
    check_same(r, via_wire(r));
  response b;
  b.op = opcode::batch;
  b.id = 50;
  b.results = issue3_responses();
  check_same(b, via_wire(b));
}

TEST_CASE("answers of enroll, earn and balance without issue-3 fields encode as before", "[io][codec]") {
  // The issue-3 fields appear only when set, after the original ones.
  auto keys = [](const response& r) {
    std::vector<char> buf;
    encode_response(buf, r);
    auto oh = msgpack::unpack(buf.data() + 4, buf.size() - 4);
    std::vector<std::string> k;
    for (std::uint32_t i = 0; i < oh.get().via.map.size; ++i)
      k.push_back(oh.get().via.map.ptr[i].key.as<std::string>());
    return k;
  };
  response e;
  e.op = opcode::enroll, e.id = 1, e.seq = 2, e.member = 3;
  CHECK(keys(e) == std::vector<std::string>{"id", "op", "ok", "seq", "member"});
  e.lines = {{"rule", "welcome", 500, 0}};
  e.points = 500;
  CHECK(keys(e) == std::vector<std::string>{"id", "op", "ok", "seq", "member", "points", "lines"});
  response n;
  n.op = opcode::earn, n.id = 1, n.seq = 2, n.member = 3, n.points = 4, n.balance = 5, n.lifetime = 6;
  n.tier = "member";
  CHECK(keys(n) == std::vector<std::string>{"id", "op", "ok", "seq", "member", "points", "balance", "lifetime",
                                            "tier", "replayed"});
  n.lines = {{"base", "", 4, 400}};
  CHECK(keys(n).back() == "lines");
  response b;
  b.op = opcode::balance, b.id = 1, b.member = 3, b.brand = "acme", b.tier = "member";
  CHECK(keys(b) == std::vector<std::string>{"id", "op", "ok", "member", "brand", "balance", "lifetime", "tier"});
  b.held = 5;
  CHECK(keys(b).back() == "held");
  response h;
  h.op = opcode::hold, h.id = 1;  // a new op: every field, even when zero
  CHECK(keys(h) == std::vector<std::string>{"id", "op", "ok", "seq", "member", "points", "balance", "replayed",
                                            "hold", "expires_at_us"});
}

TEST_CASE("member ops take member or alias, not both and not neither", "[io][codec]") {
  for (const auto& op : member_ops) {
    INFO(op);
    auto by_id = decode_op(op, minimal(op));
    CHECK(by_id.error == errc::ok);
    CHECK(by_id.has_member);
    CHECK(by_id.member == 5);
    auto by_alias = decode_op(op, with(without(minimal(op), "member"), "alias", val(std::string("card-1"))));
    CHECK(by_alias.error == errc::ok);
    CHECK_FALSE(by_alias.has_member);
    CHECK(by_alias.alias == "card-1");
    auto both = decode_op(op, with(minimal(op), "alias", val(std::string("card-1"))));
    CHECK(both.error == errc::invalid_argument);
    CHECK(both.id == 7);
    auto neither = decode_op(op, without(minimal(op), "member"));
    if (op == "expire") {
      CHECK(neither.error == errc::ok);
      CHECK_FALSE(neither.has_member);
    } else {
      CHECK(neither.error == errc::missing_field);
      CHECK(neither.error_message.find("'member'") != std::string::npos);
    }
    auto no_alias = without(minimal(op), "member");
    CHECK(decode_op(op, with(no_alias, "alias", val(std::string()))).error == errc::invalid_argument);
    CHECK(decode_op(op, with(no_alias, "alias", val(std::string(65, 'a')))).error == errc::invalid_argument);
    CHECK(decode_op(op, with(no_alias, "alias", val(std::string(64, 'a')))).error == errc::ok);
    CHECK(decode_op(op, with(no_alias, "alias", val(12))).error == errc::wrong_type);
    CHECK(decode_op(op, with(minimal(op), "member", val(0))).error == errc::invalid_argument);
    CHECK(decode_op(op, with(minimal(op), "member", val(std::uint64_t{1} << 56))).error == errc::invalid_argument);
  }
}

TEST_CASE("enroll refuses an alias; link_alias needs member and alias; lookup needs alias", "[io][codec]") {
  std::vector<field> enroll{{"member", val(5)}, {"brand", val(std::string("acme"))}};
  CHECK(decode_op("enroll", enroll).error == errc::ok);
  CHECK(decode_op("enroll", with(enroll, "alias", val(std::string("bob")))).error == errc::invalid_argument);
  // An alias alone too: the alias is what is wrong, not a missing member.
  auto by_alias = decode_op("enroll", with(without(enroll, "member"), "alias", val(std::string("bob"))));
  CHECK(by_alias.error == errc::invalid_argument);
  CHECK(by_alias.error_message.find("'alias'") != std::string::npos);
  CHECK(decode_op("enroll", without(enroll, "member")).error == errc::missing_field);
  std::vector<field> link{{"txn", val(std::string("l-1"))}, {"member", val(5)}, {"alias", val(std::string("bob"))}};
  auto ok = decode_op("link_alias", link);
  CHECK(ok.error == errc::ok);
  CHECK(ok.member == 5);
  CHECK(ok.alias == "bob");
  CHECK(decode_op("link_alias", without(link, "alias")).error == errc::missing_field);
  CHECK(decode_op("link_alias", without(link, "member")).error == errc::missing_field);
  CHECK(decode_op("link_alias", with(link, "alias", val(std::string(65, 'b')))).error == errc::invalid_argument);
  CHECK(decode_op("link_alias", with(link, "member", val(0))).error == errc::invalid_argument);
  CHECK(decode_op("lookup", {{"alias", val(std::string("bob"))}}).alias == "bob");
  CHECK(decode_op("lookup", {}).error == errc::missing_field);
  CHECK(decode_op("lookup", {{"alias", val(std::string())}}).error == errc::invalid_argument);
  CHECK(decode_op("lookup", {{"alias", val(3)}}).error == errc::wrong_type);
}

TEST_CASE("earn and quote may leave out occurred_at: it decodes as 0, and 0 is not written", "[io][codec]") {
  for (const std::string op : {"earn", "quote"}) {
    INFO(op);
    auto f = without(minimal("earn"), "occurred_at");
    if (op == "quote")
      f = without(f, "txn");
    auto r = decode_op(op, f);
    CHECK(r.error == errc::ok);
    CHECK(r.occurred_at_us == 0);
    CHECK(decode_op(op, with(f, "occurred_at", val(55))).occurred_at_us == 55);
    CHECK(decode_op(op, with(f, "occurred_at", val(-1))).error == errc::invalid_argument);
    CHECK(decode_op(op, with(f, "occurred_at", val(std::string("now")))).error == errc::wrong_type);
  }
  request e;
  e.op = opcode::earn;
  e.id = 1;
  e.txn = "t-1";
  e.member = 5;
  e.brand = "acme";
  e.amount = 100;
  e.currency = "EUR";
  std::vector<char> frame;
  encode_request(frame, e);
  CHECK(std::string(frame.begin(), frame.end()).find("occurred_at") == std::string::npos);
  e.occurred_at_us = 9;
  frame.clear();
  encode_request(frame, e);
  CHECK(std::string(frame.begin(), frame.end()).find("occurred_at") != std::string::npos);
}

TEST_CASE("every op with a txn requires one of 1 to 64 bytes", "[io][codec]") {
  for (const auto& op : txn_ops) {
    INFO(op);
    auto f = op == "link_alias" ? std::vector<field>{{"txn", val(std::string("l"))}, {"member", val(5)},
                                                      {"alias", val(std::string("a"))}}
                                : minimal(op);
    CHECK(decode_op(op, f).error == errc::ok);
    CHECK(decode_op(op, without(f, "txn")).error == errc::missing_field);
    CHECK(decode_op(op, with(f, "txn", val(std::string(65, 't')))).error == errc::invalid_argument);
    CHECK(decode_op(op, with(f, "txn", val(std::string()))).error == errc::invalid_argument);
    CHECK(decode_op(op, with(f, "txn", val(4))).error == errc::wrong_type);
  }
}

TEST_CASE("hello takes an optional admin key of at most 128 bytes", "[io][codec]") {
  std::vector<field> h{{"version", val(1)}};
  CHECK(decode_op("hello", h).key.empty());
  CHECK(decode_op("hello", with(h, "key", val(std::string(128, 'k')))).key == std::string(128, 'k'));
  CHECK(decode_op("hello", with(h, "key", val(std::string(129, 'k')))).error == errc::invalid_argument);
  CHECK(decode_op("hello", with(h, "key", val(42))).error == errc::wrong_type);
}

TEST_CASE("earn line items are validated and must add up to the amount", "[io][codec]") {
  auto earn = minimal("earn");  // amount 1000
  auto ok = decode_op("earn", with(earn, "items", items_of(4, 250)));
  REQUIRE(ok.error == errc::ok);
  REQUIRE(ok.items.size() == 4);
  CHECK(ok.items[3].sku == "s3");
  CHECK(ok.items[3].qty == 1);  // default
  CHECK(ok.items[3].amount == 250);
  CHECK(decode_op("earn", with(earn, "items", items_of(4, 249))).error == errc::invalid_argument);
  CHECK(decode_op("earn", with(earn, "items", items_of(4, 251))).error == errc::invalid_argument);
  CHECK(decode_op("earn", with(earn, "items", items_of(0, 0))).error == errc::invalid_argument);
  CHECK(decode_op("earn", with(with(earn, "amount", val(items_max)), "items", items_of(items_max, 1))).error ==
        errc::ok);
  CHECK(decode_op("earn", with(with(earn, "amount", val(items_max + 1)), "items", items_of(items_max + 1, 1)))
          .error == errc::invalid_argument);
  CHECK(decode_op("earn", with(earn, "items", val(std::string("x")))).error == errc::wrong_type);
  // Sums that would overflow int64 are caught without overflowing.
  auto huge = with(earn, "amount", val(INT64_MAX));
  CHECK(decode_op("earn", with(huge, "items", items_of(2, INT64_MAX))).error == errc::invalid_argument);
  CHECK(decode_op("earn", with(huge, "items", items_of(1, INT64_MAX))).error == errc::ok);
  auto item_err = [&](const std::vector<field>& kv) { return decode_op("earn", with(earn, "items", one_item(kv))); };
  const std::string long_code(65, 'c');
  CHECK(item_err({{"amount", val(1000)}, {"qty", val(3)}, {"category", val(std::string("dairy"))}}).error ==
        errc::ok);
  CHECK(item_err({{"sku", val(std::string("a"))}}).error == errc::missing_field);
  CHECK(item_err({{"amount", val(-1)}}).error == errc::invalid_amount);
  CHECK(item_err({{"amount", val(std::uint64_t{1} << 63)}}).error == errc::amount_overflow);
  CHECK(item_err({{"amount", val(std::string("1000"))}}).error == errc::wrong_type);
  CHECK(item_err({{"amount", val(1000)}, {"qty", val(0)}}).error == errc::invalid_argument);
  CHECK(item_err({{"amount", val(1000)}, {"qty", val(-2)}}).error == errc::invalid_argument);
  CHECK(item_err({{"amount", val(1000)}, {"qty", val(1.5)}}).error == errc::wrong_type);
  CHECK(item_err({{"amount", val(1000)}, {"sku", val(long_code)}}).error == errc::invalid_argument);
  CHECK(item_err({{"amount", val(1000)}, {"category", val(7)}}).error == errc::wrong_type);
  auto not_map = decode_op("earn", with(earn, "items", [](pk_t& pk) { pk.pack_array(1), pk.pack(5); }));
  CHECK(not_map.error == errc::wrong_type);
  CHECK(not_map.error_message.find("items[0]") != std::string::npos);
  auto where = decode_op("earn", with(earn, "channel", val(long_code)));
  CHECK(where.error == errc::invalid_argument);
  CHECK(decode_op("earn", with(earn, "store", val(1))).error == errc::wrong_type);
  auto at = decode_op("earn", with(with(earn, "channel", val(std::string("app"))), "store", val(std::string("s1"))));
  CHECK(at.channel == "app");
  CHECK(at.store == "s1");
}

TEST_CASE("event, hold, capture, release and redeem_reward fields are validated", "[io][codec]") {
  const std::string long_code(65, 'c');
  auto ev = minimal("event");
  CHECK(decode_op("event", without(ev, "event")).error == errc::missing_field);
  CHECK(decode_op("event", with(ev, "event", val(std::string()))).error == errc::invalid_argument);
  CHECK(decode_op("event", with(ev, "event", val(long_code))).error == errc::invalid_argument);
  CHECK(decode_op("event", with(ev, "brand", val(long_code))).error == errc::invalid_argument);
  CHECK(decode_op("event", with(ev, "occurred_at", val(std::string("now")))).error == errc::wrong_type);
  CHECK(decode_op("event", with(ev, "occurred_at", val(55))).occurred_at_us == 55);
  auto hold = minimal("hold");
  CHECK(decode_op("hold", without(hold, "points")).error == errc::missing_field);
  CHECK(decode_op("hold", with(hold, "points", val(0))).error == errc::invalid_amount);
  CHECK(decode_op("hold", with(hold, "points", val(-3))).error == errc::invalid_amount);
  CHECK(decode_op("hold", with(hold, "ttl_s", val(0))).error == errc::invalid_argument);
  CHECK(decode_op("hold", with(hold, "ttl_s", val(60))).ttl_s == 60);
  CHECK(decode_op("hold", with(hold, "ttl_s", nil())).error == errc::wrong_type);
  CHECK(decode_op("hold", with(hold, "brand", val(std::string("acme")))).brand == "acme");
  auto cap = minimal("capture");
  CHECK(decode_op("capture", cap).points == 0);  // the whole hold
  CHECK(decode_op("capture", with(cap, "points", val(7))).points == 7);
  CHECK(decode_op("capture", with(cap, "points", val(0))).error == errc::invalid_amount);
  CHECK(decode_op("capture", without(cap, "hold")).error == errc::missing_field);
  CHECK(decode_op("capture", with(cap, "hold", val(0))).error == errc::invalid_argument);
  CHECK(decode_op("capture", with(cap, "hold", val(std::string("3")))).error == errc::wrong_type);
  auto rel = minimal("release");
  CHECK(decode_op("release", rel).hold == 3);
  CHECK(decode_op("release", without(rel, "hold")).error == errc::missing_field);
  CHECK(decode_op("release", with(rel, "hold", val(-1))).error == errc::invalid_argument);
  auto rw = minimal("redeem_reward");
  CHECK(decode_op("redeem_reward", rw).reward == "free-coffee");
  CHECK(decode_op("redeem_reward", without(rw, "reward")).error == errc::missing_field);
  CHECK(decode_op("redeem_reward", with(rw, "reward", val(long_code))).error == errc::invalid_argument);
}

TEST_CASE("refund, reverse_redemption, adjust and transfer fields are validated", "[io][codec]") {
  auto rf = minimal("refund");
  auto full = decode_op("refund", rf);
  CHECK(full.error == errc::ok);
  CHECK(full.amount == 0);  // a full refund
  CHECK(full.items.empty());
  CHECK(decode_op("refund", with(rf, "amount", val(300))).amount == 300);
  CHECK(decode_op("refund", with(rf, "amount", val(0))).error == errc::invalid_amount);
  CHECK(decode_op("refund", with(rf, "items", items_of(2, 100))).items.size() == 2);
  CHECK(decode_op("refund", with(rf, "items", items_of(257, 1))).error == errc::invalid_argument);
  CHECK(decode_op("refund", with(with(rf, "items", items_of(1, 100)), "amount", val(100))).error ==
        errc::invalid_argument);
  CHECK(decode_op("refund", without(rf, "ref")).error == errc::missing_field);
  CHECK(decode_op("refund", with(rf, "ref", val(std::string(65, 'r')))).error == errc::invalid_argument);
  CHECK(decode_op("refund", with(rf, "occurred_at", val(-1))).error == errc::invalid_argument);
  auto rr = minimal("reverse_redemption");
  CHECK(decode_op("reverse_redemption", rr).ref == "order-1");
  CHECK(decode_op("reverse_redemption", without(rr, "ref")).error == errc::missing_field);
  CHECK(decode_op("reverse_redemption", with(rr, "ref", val(std::string()))).error == errc::invalid_argument);
  auto adj = minimal("adjust");
  CHECK(decode_op("adjust", adj).points == -5);
  CHECK(decode_op("adjust", with(adj, "points", val(INT64_MAX))).points == INT64_MAX);
  CHECK(decode_op("adjust", with(adj, "points", val(-INT64_MAX))).points == -INT64_MAX);
  CHECK(decode_op("adjust", with(adj, "points", val(0))).error == errc::invalid_amount);
  CHECK(decode_op("adjust", with(adj, "points", val(INT64_MIN))).error == errc::invalid_amount);
  CHECK(decode_op("adjust", with(adj, "points", val(std::uint64_t{1} << 63))).error == errc::amount_overflow);
  CHECK(decode_op("adjust", with(adj, "points", val(2.5))).error == errc::wrong_type);
  CHECK(decode_op("adjust", without(adj, "points")).error == errc::missing_field);
  CHECK(decode_op("adjust", without(adj, "reason")).error == errc::missing_field);
  CHECK(decode_op("adjust", with(adj, "reason", val(std::string(200, 'w')))).error == errc::ok);
  CHECK(decode_op("adjust", with(adj, "reason", val(std::string(201, 'w')))).error == errc::invalid_argument);
  CHECK(decode_op("adjust", with(adj, "reason", val(std::string()))).error == errc::invalid_argument);
  CHECK(decode_op("adjust", without(adj, "brand")).error == errc::missing_field);
  auto tr = minimal("transfer");
  CHECK(decode_op("transfer", tr).to == 6);
  CHECK(decode_op("transfer", without(tr, "to")).error == errc::missing_field);
  CHECK(decode_op("transfer", with(tr, "to", val(0))).error == errc::invalid_argument);
  CHECK(decode_op("transfer", with(tr, "to", val(std::uint64_t{1} << 56))).error == errc::invalid_argument);
  CHECK(decode_op("transfer", with(tr, "to", val(std::string("6")))).error == errc::wrong_type);
  CHECK(decode_op("transfer", with(tr, "points", val(0))).error == errc::invalid_amount);
  CHECK(decode_op("transfer", without(tr, "points")).error == errc::missing_field);
}

TEST_CASE("history pages take before and a limit of 1 to 100; expire takes an as-of instant", "[io][codec]") {
  auto h = minimal("history");
  auto first = decode_op("history", h);
  CHECK(first.before == 0);
  CHECK(first.limit == 0);  // the server's default page, history_limit_default
  auto page = decode_op("history", with(with(h, "before", val(99)), "limit", val(100)));
  CHECK(page.before == 99);
  CHECK(page.limit == 100);
  CHECK(decode_op("history", with(h, "limit", val(0))).error == errc::invalid_argument);
  CHECK(decode_op("history", with(h, "limit", val(101))).error == errc::invalid_argument);
  CHECK(decode_op("history", with(h, "limit", val(std::uint64_t{1} << 40))).error == errc::invalid_argument);
  CHECK(decode_op("history", with(h, "before", val(std::string("x")))).error == errc::wrong_type);
  auto all = decode_op("expire", {{"as_of_us", val(1234)}});
  CHECK(all.error == errc::ok);
  CHECK(all.as_of_us == 1234);
  CHECK_FALSE(all.has_member);
  CHECK(decode_op("expire", {{"as_of_us", val(-1)}}).error == errc::invalid_argument);
  CHECK(decode_op("expire", {{"as_of_us", val(std::string("now"))}}).error == errc::wrong_type);
}

TEST_CASE("a batch carries the issue-3 ops; hello, verify, stats and batch stay out", "[io][codec]") {
  request b = make(opcode::batch, 1);
  for (const auto& q : issue3_requests())
    if (q.op != opcode::hello)
      b.ops.push_back(q);
  REQUIRE(b.ops.size() > 13);
  auto back = via_wire(b);
  check_same(b, back);
  for (const char* op : {"hello", "verify", "stats", "batch"}) {
    INFO(op);
    auto mixed = decode(payload([&](pk_t& pk) {
      pk.pack_map(3);
      pk.pack("op"), pk.pack("batch");
      pk.pack("id"), pk.pack(1);
      pk.pack("ops"), pk.pack_array(3);
      pk.pack_map(3), pk.pack("op"), pk.pack("lookup"), pk.pack("id"), pk.pack(2), pk.pack("alias"), pk.pack("a");
      pk.pack_map(3), pk.pack("op"), pk.pack(op), pk.pack("id"), pk.pack(3), pk.pack("version"), pk.pack(1);
      pk.pack_map(4), pk.pack("op"), pk.pack("hold"), pk.pack("id"), pk.pack(4), pk.pack("member"), pk.pack(1),
        pk.pack("points"), pk.pack(5);  // no txn
    }));
    REQUIRE(mixed.error == errc::ok);
    REQUIRE(mixed.ops.size() == 3);
    CHECK(mixed.ops[0].error == errc::ok);
    CHECK(mixed.ops[1].error == errc::invalid_argument);
    CHECK(mixed.ops[2].error == errc::missing_field);
    CHECK(mixed.ops[2].id == 4);
  }
}

TEST_CASE("explain: the request takes a txn id; the answer carries key, version, entry, lines and moves",
          "[io][codec]") {
  request q;
  q.op = opcode::explain;
  q.id = 77;
  q.txn = "order-5531";
  auto back = via_wire(q);
  CHECK(back.op == opcode::explain);
  CHECK(back.error == errc::ok);
  CHECK(back.txn == "order-5531");
  request no_txn;
  no_txn.op = opcode::explain;
  no_txn.id = 78;
  CHECK(via_wire(no_txn).error == errc::invalid_argument);  // an empty txn id

  response r;
  r.op = opcode::explain;
  r.id = 77;
  r.seq = 9;
  r.member = 42;
  r.key_id = 2;
  r.key_name = "shop-pos";
  r.policy_version = 3;
  history_entry e;
  e.seq = 9;
  e.kind = "earn";
  e.txn = "order-5531";
  e.points = 49;
  e.brand = "acme";
  r.entries.push_back(e);
  line l;
  l.kind = "rule";
  l.rule = "double-coffee";
  l.points = 12;
  l.amount = 1200;
  r.lines.push_back(l);
  r.moves.push_back({"brand_issued:acme", "debit", 61});
  r.moves.push_back({"member:42", "credit", 61});
  check_same(r, via_wire(r));
}

// -- issue 4: coalition money ---------------------------------------------------------------

namespace {

// One request of each issue-4 kind (and redeem at a brand) with every field
// it can carry set.
std::vector<request> issue4_requests() {
  std::vector<request> v;
  auto r = make(opcode::partner_earn, 200);
  r.txn = std::string("pe\x00\xff", 4), r.member = 5, r.partner = std::string(64, 'p'), r.points = INT64_MAX;
  r.amount = 12'999, r.occurred_at_us = 1'700'000'000'000'000ull;
  v.push_back(r);
  r = make(opcode::partner_earn, 201);  // the optional fields left out
  r.txn = "pe-2", r.alias = "card-4411", r.partner = "skyair", r.points = 1;
  v.push_back(r);
  r = make(opcode::partner_burn, 202);
  r.txn = "pb-1", r.member = 5, r.partner = "skyair", r.points = 2500;
  v.push_back(r);
  r = make(opcode::redeem, 203);
  r.txn = "rd-globex", r.member = 5, r.points = 500, r.brand = "globex";
  v.push_back(r);
  r = make(opcode::liability, 204);
  v.push_back(r);
  r = make(opcode::liability, 205);
  r.brand = "acme";
  v.push_back(r);
  r = make(opcode::activity, 206);
  r.brand = "acme";
  v.push_back(r);
  r = make(opcode::activity, 207);
  r.brand = "globex", r.from_us = 1'700'000'000'000'000ull, r.to_us = 1'702'000'000'000'000ull;
  v.push_back(r);
  r = make(opcode::settlement, 208);
  r.brand = "acme";
  v.push_back(r);
  r = make(opcode::settlement, 209);
  r.partner = "skyair", r.from_us = 1, r.to_us = 2, r.after = 1234, r.limit = statement_limit_max;
  v.push_back(r);
  r = make(opcode::settlement, 210);
  r.brand = "globex", r.to_us = 99, r.limit = 1;
  v.push_back(r);
  return v;
}

std::vector<settlement_move> some_settlements(bool reversal) {
  return {{"brand:acme", "brand:globex", 300, 150, "1/2", reversal},
          {"brand:7", "partner:skyair", 1, 1, "3/2", reversal}};
}

// One response of each issue-4 shape with every field it carries set, and
// the older posting answers with settle records.
std::vector<response> issue4_responses() {
  std::vector<response> v;
  auto posting = [](opcode op, std::uint64_t id) {
    response r;
    r.op = op, r.id = id, r.seq = 1000 + id, r.member = 5, r.points = 500, r.balance = 1200, r.replayed = true;
    r.settlements = some_settlements(false);
    return r;
  };
  for (auto op : {opcode::earn, opcode::redeem, opcode::refund, opcode::event}) {
    auto r = posting(op, static_cast<std::uint64_t>(op));
    r.lifetime = 4000, r.tier = "gold";
    if (op != opcode::redeem)
      r.lines = {{"base", "", 10, 1000}};
    v.push_back(r);
  }
  for (auto op : {opcode::redeem_reward, opcode::capture, opcode::release, opcode::adjust, opcode::transfer}) {
    auto r = posting(op, static_cast<std::uint64_t>(op));
    if (op == opcode::redeem_reward)
      r.reward = "free-coffee";
    v.push_back(r);
  }
  auto rr = posting(opcode::reverse_redemption, 60);
  rr.settlements = some_settlements(true);
  v.push_back(rr);
  auto pe = posting(opcode::partner_earn, 61);
  pe.lifetime = 4500, pe.tier = "silver", pe.partner = "skyair";
  pe.lines = {{"partner", "skyair", 500, 12'999}};
  pe.settlements = {{"partner:skyair", "brand:acme", 500, 750, "3/2", false}};
  v.push_back(pe);
  auto pe0 = posting(opcode::partner_earn, 62);  // no money moved: earn_cost 0
  pe0.partner = "freebies", pe0.lines = {{"partner", "freebies", 5, 0}}, pe0.settlements.clear();
  v.push_back(pe0);
  auto pb = posting(opcode::partner_burn, 63);
  pb.lifetime = 4500, pb.tier = "silver", pb.partner = "skyair", pb.points = 2500, pb.balance = -3;
  pb.settlements = {{"brand:acme", "partner:skyair", 2000, 2000, "1/1", false},
                    {"brand:globex", "partner:skyair", 500, 500, "1/1", false}};
  v.push_back(pb);
  response x;
  x.op = opcode::explain, x.id = 64, x.seq = 9, x.member = 42, x.key_id = 3, x.key_name = "skyair-api";
  x.policy_version = 4, x.partner = "skyair";
  history_entry e;
  e.seq = 9, e.kind = "partner_burn", e.txn = "pb-1", e.points = -2500, e.partner = "skyair";
  x.entries.push_back(e);
  x.moves.push_back({"member:42", "debit", 2500});
  x.settlements = pb.settlements;
  v.push_back(x);
  response h;
  h.op = opcode::history, h.id = 65, h.member = 5;
  h.entries = {{46, "partner_earn", "pe-1", 10, 11, 500, 1700, 12'999, "acme", 0, 0, "skyair"},
               {45, "earn", "e-1", 8, 9, 40, 1200, 4000, "acme", 0, 0, ""}};
  v.push_back(h);
  response l;
  l.op = opcode::liability, l.id = 66;
  l.liabilities = {{"acme", 10'000, 6'000, 1'000, 3'000, "1/2", 1'500, -750},
                   {"globex", 5, 9, 0, -4, "3/2", -6, INT64_MIN}};  // floor toward minus infinity
  v.push_back(l);
  response l0;  // a program without brands
  l0.op = opcode::liability, l0.id = 67;
  v.push_back(l0);
  response a;
  a.op = opcode::activity, a.id = 68;
  a.activity = {"acme", 1'700'000'000'000'000ull, 1'702'000'000'000'000ull, 100, 250, 5000, 200, 3000, 100, 50,
                9000, 10'850, 5'425, -1'250};
  v.push_back(a);
  response a0;  // an empty period: last_seq < first_seq
  a0.op = opcode::activity, a0.id = 69;
  a0.activity.brand = "globex", a0.activity.first_seq = 251, a0.activity.last_seq = 250;
  v.push_back(a0);
  response st;
  st.op = opcode::settlement, st.id = 70;
  st.statement.party = "partner:skyair", st.statement.from_us = 1, st.statement.to_us = 2;
  st.statement.first_seq = 40, st.statement.last_seq = 90, st.statement.opening = 100, st.statement.closing = 1850;
  st.statement.net = 1750, st.statement.points = 3000, st.statement.line_count = 7, st.statement.next_after = 61;
  st.statement.lines = {{46, 11, 5, "partner_earn", "pe-1", "brand:acme", -500, -750, "3/2", false},
                        {60, 12, 6, "partner_burn", std::string("p\x00b", 3), "brand:globex", 2500, 2500, "1/1", false},
                        {61, 13, 6, "reverse_redemption", "rr-1", "brand:globex", -500, -500, "1/1", true}};
  v.push_back(st);
  response st0;  // the last (or an empty) page
  st0.op = opcode::settlement, st0.id = 71, st0.statement.party = "brand:acme";
  v.push_back(st0);
  for (auto code : {errc::unknown_partner, errc::partner_suspended}) {
    response err;
    err.op = opcode::partner_earn, err.id = 72 + static_cast<std::uint64_t>(code), err.code = code;
    err.message = std::string(default_message(code));
    v.push_back(err);
  }
  return v;
}

// The top-level keys of an encoded response, in order.
std::vector<std::string> response_keys(const response& r) {
  std::vector<char> buf;
  encode_response(buf, r);
  auto oh = msgpack::unpack(buf.data() + 4, buf.size() - 4);
  std::vector<std::string> k;
  for (std::uint32_t i = 0; i < oh.get().via.map.size; ++i)
    k.push_back(oh.get().via.map.ptr[i].key.as<std::string>());
  return k;
}

// A request map {op, id: 7, fields...} as one element of a batch, decoded.
request batched(const std::string& op, const std::vector<field>& fields) {
  auto b = decode(payload([&](pk_t& pk) {
    pk.pack_map(3);
    pk.pack("op"), pk.pack("batch");
    pk.pack("id"), pk.pack(1);
    pk.pack("ops"), pk.pack_array(1);
    pk.pack_map(static_cast<std::uint32_t>(fields.size() + 2));
    pk.pack("op"), pk.pack(op);
    pk.pack("id"), pk.pack(7);
    for (auto& f : fields)
      pk.pack(f.key), f.value(pk);
  }));
  REQUIRE(b.error == errc::ok);
  REQUIRE(b.ops.size() == 1);
  return b.ops[0];
}

} // namespace

TEST_CASE("the issue-4 operations have their wire names", "[io][codec]") {
  CHECK(std::string(to_string(opcode::partner_earn)) == "partner_earn");
  CHECK(std::string(to_string(opcode::partner_burn)) == "partner_burn");
  CHECK(std::string(to_string(opcode::liability)) == "liability");
  CHECK(std::string(to_string(opcode::activity)) == "activity");
  CHECK(std::string(to_string(opcode::settlement)) == "settlement");
  for (const char* op : {"partner_earn", "partner_burn", "liability", "activity", "settlement"})
    CHECK(decode_op(op, {}).error != errc::unknown_operation);
}

TEST_CASE("backup takes one absolute path and never rides in a batch", "[io][codec]") {
  CHECK(std::string(to_string(opcode::backup)) == "backup");
  CHECK(std::string(to_string(opcode::cluster_remove)) == "cluster_remove");
  CHECK(std::string(to_string(opcode::risk_report)) == "risk_report");  // the last opcode
  CHECK(std::string(to_string(static_cast<opcode>(static_cast<int>(opcode::risk_report) + 1))) == "none");
  auto ok = decode_op("backup", {{"path", val(std::string("/var/backups/loyalty-1"))}});
  CHECK(ok.error == errc::ok);
  CHECK(ok.op == opcode::backup);
  CHECK(ok.path == "/var/backups/loyalty-1");
  CHECK(decode_op("backup", {}).error == errc::missing_field);
  CHECK(decode_op("backup", {{"path", val(42)}}).error == errc::wrong_type);
  CHECK(decode_op("backup", {{"path", val(std::string("backups/x"))}}).error == errc::invalid_argument);
  CHECK(decode_op("backup", {{"path", val(std::string(""))}}).error == errc::invalid_argument);
  CHECK(decode_op("backup", {{"path", val("/" + std::string(path_bytes_max, 'a'))}}).error == errc::invalid_argument);
  CHECK(batched("backup", {{"path", val(std::string("/tmp/b"))}}).error == errc::invalid_argument);
  // The client's request and the server's answer survive the round trip.
  request q;
  q.op = opcode::backup;
  q.id = 3;
  q.path = "/tmp/b";
  std::vector<char> buf;
  encode_request(buf, q);
  auto back = decode(std::string(buf.data() + 4, buf.size() - 4));
  CHECK(back.path == "/tmp/b");
  response r;
  r.op = opcode::backup;
  r.id = 3;
  r.seq = 981;
  r.file = "/tmp/b/data.mdb";
  r.bytes = 1 << 20;
  buf.clear();
  encode_response(buf, r);
  response got;
  std::string error;
  REQUIRE(decode_response(buf.data() + 4, buf.size() - 4, got, error));
  CHECK(got.seq == 981);
  CHECK(got.file == "/tmp/b/data.mdb");
  CHECK(got.bytes == std::uint64_t{1} << 20);
}

TEST_CASE("report takes an optional brand a period and bounded active_days and top and never rides in a batch",
          "[io][codec]") {
  auto none = decode_op("report", {});
  CHECK(none.error == errc::ok);
  CHECK(none.brand.empty());
  CHECK(none.active_days == 0);  // absent: the server's default (90)
  CHECK(none.top == 0);          // absent: 10
  auto all = decode_op("report", {{"brand", val(std::string("acme"))}, {"from_us", val(5)}, {"to_us", val(9)},
                                  {"active_days", val(3650)}, {"top", val(100)}});
  CHECK(all.error == errc::ok);
  CHECK(all.brand == "acme");
  CHECK(all.from_us == 5);
  CHECK(all.to_us == 9);
  CHECK(all.active_days == 3650);
  CHECK(all.top == 100);
  for (const auto& [name, bad] : std::vector<std::pair<std::string, int>>{
         {"active_days", 0}, {"active_days", 3651}, {"top", 0}, {"top", 101}}) {
    INFO(name << " " << bad);
    CHECK(decode_op("report", {{name, val(bad)}}).error == errc::invalid_argument);
  }
  CHECK(decode_op("report", {{"top", val(std::string("ten"))}}).error == errc::wrong_type);
  CHECK(decode_op("report", {{"brand", val(std::string(""))}}).error == errc::invalid_argument);
  CHECK(decode_op("report", {{"from_us", val(9)}, {"to_us", val(9)}}).error == errc::invalid_argument);
  CHECK(batched("report", {}).error == errc::invalid_argument);
  // The client's request and the server's answer survive the round trip.
  request q;
  q.op = opcode::report;
  q.id = 4;
  q.brand = "acme";
  q.to_us = 77;
  q.active_days = 30;
  q.top = 3;
  std::vector<char> buf;
  encode_request(buf, q);
  auto back = decode(std::string(buf.data() + 4, buf.size() - 4));
  CHECK(back.brand == "acme");
  CHECK(back.from_us == 0);
  CHECK(back.to_us == 77);
  CHECK(back.active_days == 30);
  CHECK(back.top == 3);
  response r;
  r.op = opcode::report;
  r.id = 4;
  r.report.to_us = 77;
  r.report.last_seq = 12;
  r.report.active_days = 30;
  r.report.active_from_us = 7;
  report_row row;
  row.brand = "acme";
  row.issued = 930;
  row.refunded = 100;
  row.closing_outstanding = -3;
  row.closing_liability = -2;
  row.cost_per_point = "1/2";
  row.settlement_closing = -100;
  row.redemption_rate = "200/930";
  row.redemption_rate_bp = 2150;
  row.members = 3;
  row.active_members = 1;
  row.active_rate_bp = 3333;
  row.tiers = {{"blue", 2}, {"silver", 1}};
  row.top = {{2, 500}, {1, 310}};
  r.report.brands = {row};
  buf.clear();
  encode_response(buf, r);
  response got;
  std::string error;
  REQUIRE(decode_response(buf.data() + 4, buf.size() - 4, got, error));
  CHECK(got.report.to_us == 77);
  CHECK(got.report.last_seq == 12);
  CHECK(got.report.active_days == 30);
  CHECK(got.report.active_from_us == 7);
  REQUIRE(got.report.brands.size() == 1);
  const auto& g = got.report.brands[0];
  CHECK(g.brand == "acme");
  CHECK(g.issued == 930);
  CHECK(g.refunded == 100);
  CHECK(g.closing_outstanding == -3);
  CHECK(g.closing_liability == -2);
  CHECK(g.cost_per_point == "1/2");
  CHECK(g.settlement_closing == -100);
  CHECK(g.redemption_rate == "200/930");
  CHECK(g.redemption_rate_bp == 2150);
  CHECK(g.members == 3);
  CHECK(g.active_members == 1);
  CHECK(g.active_rate_bp == 3333);
  REQUIRE(g.tiers.size() == 2);
  CHECK(g.tiers[1].tier == "silver");
  CHECK(g.tiers[1].members == 1);
  REQUIRE(g.top.size() == 2);
  CHECK(g.top[1].member == 1);
  CHECK(g.top[1].points == 310);
}

TEST_CASE("every issue-4 request survives encode_request and decode_request field for field", "[io][codec]") {
  for (const auto& q : issue4_requests()) {
    auto back = via_wire(q);
    check_same(q, back);
    CHECK(back.limit == q.limit);
  }
}

TEST_CASE("every issue-4 response survives encode_response and decode_response field for field",
          "[io][codec]") {
  for (const auto& r : issue4_responses())
    check_same(r, via_wire(r));
  response b;
  b.op = opcode::batch;
  b.id = 80;
  for (const auto& r : issue4_responses())
    if (r.op != opcode::liability && r.op != opcode::activity && r.op != opcode::settlement)
      b.results.push_back(r);
  check_same(b, via_wire(b));
}

TEST_CASE("answers without settle records or partner encode as before; with them the keys come last",
          "[io][codec]") {
  response e;
  e.op = opcode::earn, e.id = 1, e.tier = "silver";
  const std::vector<std::string> earn_keys{"id", "op", "ok", "seq", "member", "points", "balance", "lifetime",
                                           "tier", "replayed"};
  CHECK(response_keys(e) == earn_keys);
  e.settlements = some_settlements(false);
  auto with = earn_keys;
  with.push_back("settlements");
  CHECK(response_keys(e) == with);
  response rd;
  rd.op = opcode::redeem, rd.id = 1;
  CHECK(response_keys(rd) == earn_keys);
  for (auto op : {opcode::capture, opcode::reverse_redemption, opcode::adjust, opcode::redeem_reward}) {
    response p;
    p.op = op, p.id = 1;
    auto plain = response_keys(p);
    CHECK(std::find(plain.begin(), plain.end(), "settlements") == plain.end());
    p.settlements = some_settlements(op == opcode::reverse_redemption);
    auto keys = response_keys(p);
    CHECK(keys.back() == "settlements");
    CHECK(keys.size() == plain.size() + 1);
  }
  // A settle record writes reversal only when true.
  response rr;
  rr.op = opcode::redeem, rr.id = 1, rr.settlements = {some_settlements(false)[0]};
  std::vector<char> buf;
  encode_response(buf, rr);
  auto oh = msgpack::unpack(buf.data() + 4, buf.size() - 4);
  const auto& top = oh.get().via.map;
  const auto& rec = top.ptr[top.size - 1].val.via.array.ptr[0].via.map;
  CHECK(rec.size == 5);
  rr.settlements[0].reversal = true;
  CHECK(via_wire(rr).settlements[0].reversal);
  // explain: partner and settlements only when set.
  response x;
  x.op = opcode::explain, x.id = 1;
  auto xk = response_keys(x);
  CHECK(xk.back() == "moves");
  x.partner = "skyair", x.settlements = some_settlements(false);
  xk = response_keys(x);
  REQUIRE(xk.size() >= 2);
  CHECK(xk[xk.size() - 2] == "partner");
  CHECK(xk.back() == "settlements");
  // history entries: partner only for partner entries.
  response h;
  h.op = opcode::history, h.id = 1, h.entries.resize(1);
  auto entry_size = [&] {
    std::vector<char> b2;
    encode_response(b2, h);
    auto o2 = msgpack::unpack(b2.data() + 4, b2.size() - 4);
    const auto& m = o2.get().via.map;
    for (std::uint32_t i = 0; i < m.size; ++i)
      if (m.ptr[i].key.as<std::string>() == "entries")
        return m.ptr[i].val.via.array.ptr[0].via.map.size;
    return std::uint32_t{0};
  };
  CHECK(entry_size() == 11);
  h.entries[0].partner = "skyair";
  CHECK(entry_size() == 12);
}

TEST_CASE("the new operations' answers carry their fields even when zero", "[io][codec]") {
  response pe;
  pe.op = opcode::partner_earn, pe.id = 1;
  CHECK(response_keys(pe) == std::vector<std::string>{"id", "op", "ok", "seq", "member", "points", "balance",
                                                      "lifetime", "tier", "replayed", "partner", "lines"});
  response pb;
  pb.op = opcode::partner_burn, pb.id = 1;
  CHECK(response_keys(pb) == std::vector<std::string>{"id", "op", "ok", "seq", "member", "points", "balance",
                                                      "lifetime", "tier", "replayed", "partner"});
  response l;
  l.op = opcode::liability, l.id = 1;
  CHECK(response_keys(l) == std::vector<std::string>{"id", "op", "ok", "brands"});
  response a;
  a.op = opcode::activity, a.id = 1;
  CHECK(response_keys(a) == std::vector<std::string>{"id", "op", "ok", "activity"});
  response s;
  s.op = opcode::settlement, s.id = 1;
  CHECK(response_keys(s) == std::vector<std::string>{"id", "op", "ok", "statement"});
  response err;
  err.op = opcode::settlement, err.id = 1, err.code = errc::unknown_partner, err.message = "no";
  CHECK(response_keys(err) == std::vector<std::string>{"id", "op", "ok", "error", "code", "message"});
  auto back = via_wire(err);
  CHECK(back.code == errc::unknown_partner);
  CHECK(to_string(errc::unknown_partner) == "unknown_partner");
  CHECK(static_cast<int>(errc::unknown_partner) == 45);
  CHECK(to_string(errc::partner_suspended) == "partner_suspended");
  CHECK(static_cast<int>(errc::partner_suspended) == 46);
}

TEST_CASE("redeem takes an optional brand of 1 to 64 bytes", "[io][codec]") {
  auto rd = minimal("redeem");
  CHECK(decode_op("redeem", rd).brand.empty());
  CHECK(decode_op("redeem", with(rd, "brand", val(std::string("globex")))).brand == "globex");
  CHECK(decode_op("redeem", with(rd, "brand", val(std::string(64, 'b')))).error == errc::ok);
  auto long_brand = decode_op("redeem", with(rd, "brand", val(std::string(65, 'b'))));
  CHECK(long_brand.error == errc::invalid_argument);
  CHECK(long_brand.error_message.find("'brand'") != std::string::npos);
  CHECK(decode_op("redeem", with(rd, "brand", val(std::string()))).error == errc::invalid_argument);
  CHECK(decode_op("redeem", with(rd, "brand", val(3))).error == errc::wrong_type);
  CHECK(decode_op("redeem", with(rd, "brand", nil())).error == errc::wrong_type);
  // Without a brand the request's bytes are those of issue 1.
  request q = make(opcode::redeem, 3);
  q.txn = "r", q.member = 1, q.points = 10;
  std::vector<char> a, b;
  encode_request(a, q);
  q.brand = "acme";
  encode_request(b, q);
  CHECK(b.size() == a.size() + 11);  // a5 "brand" a4 "acme"
}

TEST_CASE("partner_earn and partner_burn validate partner, points, amount and occurred_at", "[io][codec]") {
  const std::string long_code(65, 'p');
  for (const std::string op : {"partner_earn", "partner_burn"}) {
    INFO(op);
    auto f = minimal(op);
    auto ok = decode_op(op, f);
    REQUIRE(ok.error == errc::ok);
    CHECK(ok.partner == "skyair");
    CHECK(ok.points == 500);
    CHECK(ok.member == 5);
    CHECK(ok.txn == "t-1");
    auto missing = decode_op(op, without(f, "partner"));
    CHECK(missing.error == errc::missing_field);
    CHECK(missing.error_message.find("'partner'") != std::string::npos);
    CHECK(decode_op(op, with(f, "partner", val(std::string()))).error == errc::invalid_argument);
    auto too_long = decode_op(op, with(f, "partner", val(long_code)));
    CHECK(too_long.error == errc::invalid_argument);
    CHECK(too_long.error_message.find("'partner'") != std::string::npos);
    CHECK(decode_op(op, with(f, "partner", val(std::string(64, 'p')))).error == errc::ok);
    CHECK(decode_op(op, with(f, "partner", val(12))).error == errc::wrong_type);
    CHECK(decode_op(op, with(f, "partner", nil())).error == errc::wrong_type);
    auto no_points = decode_op(op, without(f, "points"));
    CHECK(no_points.error == errc::missing_field);
    CHECK(no_points.error_message.find("'points'") != std::string::npos);
    CHECK(decode_op(op, with(f, "points", val(0))).error == errc::invalid_amount);
    CHECK(decode_op(op, with(f, "points", val(-5))).error == errc::invalid_amount);
    CHECK(decode_op(op, with(f, "points", val(std::uint64_t{1} << 63))).error == errc::amount_overflow);
    CHECK(decode_op(op, with(f, "points", val(INT64_MAX))).points == INT64_MAX);
    CHECK(decode_op(op, with(f, "points", val(std::string("5")))).error == errc::wrong_type);
    CHECK(decode_op(op, with(f, "points", val(2.5))).error == errc::wrong_type);
    // Validation order: txn, member, partner, points.
    CHECK(decode_op(op, without(without(f, "partner"), "txn")).error_message.find("'txn'") != std::string::npos);
    CHECK(decode_op(op, with(without(f, "partner"), "points", val(0))).error == errc::missing_field);
  }
  auto pe = minimal("partner_earn");
  CHECK(decode_op("partner_earn", pe).amount == 0);
  CHECK(decode_op("partner_earn", pe).occurred_at_us == 0);
  CHECK(decode_op("partner_earn", with(pe, "amount", val(0))).error == errc::ok);  // 0 = not recorded
  CHECK(decode_op("partner_earn", with(pe, "amount", val(12'999))).amount == 12'999);
  CHECK(decode_op("partner_earn", with(pe, "amount", val(INT64_MAX))).amount == INT64_MAX);
  auto neg = decode_op("partner_earn", with(pe, "amount", val(-1)));
  CHECK(neg.error == errc::invalid_amount);
  CHECK(neg.error_message.find("'amount'") != std::string::npos);
  CHECK(decode_op("partner_earn", with(pe, "amount", val(std::uint64_t{1} << 63))).error == errc::amount_overflow);
  CHECK(decode_op("partner_earn", with(pe, "amount", val(std::string("1")))).error == errc::wrong_type);
  CHECK(decode_op("partner_earn", with(pe, "amount", val(1.5))).error == errc::wrong_type);
  CHECK(decode_op("partner_earn", with(pe, "occurred_at", val(77))).occurred_at_us == 77);
  CHECK(decode_op("partner_earn", with(pe, "occurred_at", val(-1))).error == errc::invalid_argument);
  auto at = decode_op("partner_earn", with(pe, "occurred_at", val(std::string("now"))));
  CHECK(at.error == errc::wrong_type);
  CHECK(at.error_message.find("'occurred_at'") != std::string::npos);
  // partner_burn has no amount or occurred_at: they are ignored like unknown keys.
  auto pb = decode_op("partner_burn", with(with(minimal("partner_burn"), "amount", val(-1)), "occurred_at", val(5)));
  CHECK(pb.error == errc::ok);
  CHECK(pb.amount == 0);
  CHECK(pb.occurred_at_us == 0);
}

TEST_CASE("liability takes an optional brand; activity a brand and a period", "[io][codec]") {
  const std::string long_code(65, 'b');
  CHECK(decode_op("liability", {}).error == errc::ok);
  CHECK(decode_op("liability", {{"brand", val(std::string("acme"))}}).brand == "acme");
  CHECK(decode_op("liability", {{"brand", val(std::string())}}).error == errc::invalid_argument);
  CHECK(decode_op("liability", {{"brand", val(long_code)}}).error == errc::invalid_argument);
  CHECK(decode_op("liability", {{"brand", val(7)}}).error == errc::wrong_type);

  std::vector<field> act{{"brand", val(std::string("acme"))}};
  auto a = decode_op("activity", act);
  REQUIRE(a.error == errc::ok);
  CHECK(a.brand == "acme");
  CHECK(a.from_us == 0);
  CHECK(a.to_us == 0);
  auto none = decode_op("activity", {});
  CHECK(none.error == errc::missing_field);
  CHECK(none.error_message.find("'brand'") != std::string::npos);
  CHECK(decode_op("activity", {{"brand", val(std::string())}}).error == errc::invalid_argument);
  CHECK(decode_op("activity", {{"brand", val(long_code)}}).error == errc::invalid_argument);
  CHECK(decode_op("activity", {{"brand", val(1)}}).error == errc::wrong_type);
  auto p = decode_op("activity", with(with(act, "from_us", val(10)), "to_us", val(20)));
  CHECK(p.from_us == 10);
  CHECK(p.to_us == 20);
  CHECK(decode_op("activity", with(act, "from_us", val(10))).error == errc::ok);  // to_us 0 = now
  CHECK(decode_op("activity", with(act, "to_us", val(1))).error == errc::ok);
  auto empty = decode_op("activity", with(with(act, "from_us", val(20)), "to_us", val(20)));
  CHECK(empty.error == errc::invalid_argument);
  CHECK(empty.error_message.find("'from_us'") != std::string::npos);
  CHECK(decode_op("activity", with(with(act, "from_us", val(21)), "to_us", val(20))).error ==
        errc::invalid_argument);
  auto neg = decode_op("activity", with(act, "from_us", val(-1)));
  CHECK(neg.error == errc::invalid_argument);
  CHECK(neg.error_message.find("'from_us'") != std::string::npos);
  CHECK(decode_op("activity", with(act, "to_us", val(-1))).error == errc::invalid_argument);
  auto str_from = decode_op("activity", with(act, "from_us", val(std::string("2025-01-01"))));
  CHECK(str_from.error == errc::wrong_type);
  CHECK(str_from.error_message.find("'from_us'") != std::string::npos);
  auto str_to = decode_op("activity", with(act, "to_us", val(1.5)));
  CHECK(str_to.error == errc::wrong_type);
  CHECK(str_to.error_message.find("'to_us'") != std::string::npos);
}

TEST_CASE("settlement takes exactly one party, a period, after and a limit of 1 to 1000", "[io][codec]") {
  const std::string long_code(65, 'x');
  std::vector<field> by_brand{{"brand", val(std::string("acme"))}};
  std::vector<field> by_partner{{"partner", val(std::string("skyair"))}};
  auto b = decode_op("settlement", by_brand);
  REQUIRE(b.error == errc::ok);
  CHECK(b.brand == "acme");
  CHECK(b.partner.empty());
  CHECK(b.limit == 0);  // the server's default page, statement_limit_default
  auto p = decode_op("settlement", by_partner);
  REQUIRE(p.error == errc::ok);
  CHECK(p.partner == "skyair");
  CHECK(p.brand.empty());
  auto neither = decode_op("settlement", {});
  CHECK(neither.error == errc::missing_field);
  CHECK(neither.error_message.find("'brand'") != std::string::npos);
  CHECK(neither.error_message.find("'partner'") != std::string::npos);
  auto both = decode_op("settlement", {{"brand", val(std::string("acme"))}, {"partner", val(std::string("s"))}});
  CHECK(both.error == errc::invalid_argument);
  CHECK(both.id == 7);
  for (const auto& party : {by_brand, by_partner}) {
    const std::string key = party[0].key;
    INFO(key);
    CHECK(decode_op("settlement", with(party, key, val(std::string()))).error == errc::invalid_argument);
    auto lc = decode_op("settlement", with(party, key, val(long_code)));
    CHECK(lc.error == errc::invalid_argument);
    CHECK(lc.error_message.find("'" + key + "'") != std::string::npos);
    CHECK(decode_op("settlement", with(party, key, val(std::string(64, 'x')))).error == errc::ok);
    CHECK(decode_op("settlement", with(party, key, val(5))).error == errc::wrong_type);
    CHECK(decode_op("settlement", with(party, key, nil())).error == errc::wrong_type);
    auto period = decode_op("settlement", with(with(party, "from_us", val(5)), "to_us", val(6)));
    CHECK(period.from_us == 5);
    CHECK(period.to_us == 6);
    CHECK(decode_op("settlement", with(with(party, "from_us", val(6)), "to_us", val(6))).error ==
          errc::invalid_argument);
    CHECK(decode_op("settlement", with(party, "from_us", val(-6))).error == errc::invalid_argument);
    CHECK(decode_op("settlement", with(party, "to_us", val(std::string("x")))).error == errc::wrong_type);
    CHECK(decode_op("settlement", with(party, "after", val(40))).after == 40);
    auto after_neg = decode_op("settlement", with(party, "after", val(-1)));
    CHECK(after_neg.error == errc::invalid_argument);
    CHECK(after_neg.error_message.find("'after'") != std::string::npos);
    CHECK(decode_op("settlement", with(party, "after", val(std::string("40")))).error == errc::wrong_type);
    CHECK(decode_op("settlement", with(party, "limit", val(0))).limit == 0);  // 0 = the default, 100
    CHECK(decode_op("settlement", with(party, "limit", val(1))).limit == 1);
    CHECK(decode_op("settlement", with(party, "limit", val(1000))).limit == 1000);
    auto big = decode_op("settlement", with(party, "limit", val(1001)));
    CHECK(big.error == errc::invalid_argument);
    CHECK(big.error_message.find("'limit'") != std::string::npos);
    CHECK(decode_op("settlement", with(party, "limit", val(std::uint64_t{1} << 40))).error ==
          errc::invalid_argument);
    CHECK(decode_op("settlement", with(party, "limit", val(-1))).error == errc::invalid_argument);
    CHECK(decode_op("settlement", with(party, "limit", val(2.5))).error == errc::wrong_type);
  }
}

TEST_CASE("a batch carries partner_earn and partner_burn; the reports stay out", "[io][codec]") {
  request b = make(opcode::batch, 1);
  for (const auto& q : issue4_requests())
    if (q.op == opcode::partner_earn || q.op == opcode::partner_burn || q.op == opcode::redeem)
      b.ops.push_back(q);
  REQUIRE(b.ops.size() == 4);
  check_same(b, via_wire(b));
  CHECK(batched("partner_earn", minimal("partner_earn")).error == errc::ok);
  CHECK(batched("partner_burn", without(minimal("partner_burn"), "partner")).error == errc::missing_field);
  for (const char* op : {"liability", "activity", "settlement"}) {
    INFO(op);
    auto inner = batched(op, {{"brand", val(std::string("acme"))}});
    CHECK(inner.error == errc::invalid_argument);
    CHECK(inner.id == 7);
    CHECK(inner.error_message.find(op) != std::string::npos);
  }
}

TEST_CASE("quote takes the fields of earn but no txn and may ride in a batch", "[io][codec]") {
  auto fields = without(minimal("earn"), "txn");
  auto ok = decode_op("quote", fields);
  REQUIRE(ok.error == errc::ok);
  CHECK(ok.op == opcode::quote);
  CHECK(ok.member == 5);
  CHECK(ok.amount == 1000);
  CHECK(ok.brand == "acme");
  // Nothing is posted, so a txn id is refused before anything else is read.
  auto with_txn = decode_op("quote", with(fields, "txn", val(std::string("t-1"))));
  CHECK(with_txn.error == errc::invalid_argument);
  CHECK(with_txn.error_message.find("txn") != std::string::npos);
  // The earn's validation, in the earn's order.
  CHECK(decode_op("quote", without(fields, "member")).error == errc::missing_field);
  CHECK(decode_op("quote", without(fields, "brand")).error == errc::missing_field);
  CHECK(decode_op("quote", with(fields, "amount", val(0))).error == errc::invalid_amount);
  CHECK(decode_op("quote", with(fields, "currency", val(std::string("eur")))).error == errc::invalid_argument);
  CHECK(decode_op("quote", with(fields, "items", items_of(4, 250))).error == errc::ok);
  CHECK(decode_op("quote", with(fields, "items", items_of(4, 249))).error == errc::invalid_argument);
  CHECK(batched("quote", fields).error == errc::ok);
  // The client's request and the server's answer survive the round trip.
  request q;
  q.op = opcode::quote;
  q.id = 9;
  q.alias = "card-1";
  q.brand = "acme";
  q.amount = 1000;
  q.currency = "EUR";
  q.occurred_at_us = 77;
  q.items = {{"s1", "coffee", 2, 400}, {"s2", "", 1, 600}};
  q.channel = "app";
  std::vector<char> buf;
  encode_request(buf, q);
  auto back = decode(std::string(buf.data() + 4, buf.size() - 4));
  REQUIRE(back.error == errc::ok);
  CHECK(back.alias == "card-1");
  CHECK(back.items.size() == 2);
  CHECK(back.items[0].category == "coffee");
  CHECK(back.channel == "app");
  CHECK(back.txn.empty());
  response r;
  r.op = opcode::quote;
  r.id = 9;
  r.member = 5;
  r.points = 12;
  r.balance = 990;
  r.balance_after = 1002;
  r.tier = "member";
  r.tier_after = "silver";
  r.next_tier = "gold";
  r.qualifying = 1002;
  r.to_next_tier = 3998;
  r.lines = {{"base", "", 10, 1000}, {"rule", "double-coffee", 2, 400}};
  r.quoted = true;
  CHECK(response_keys(r) == std::vector<std::string>{"id", "op", "ok", "member", "points", "balance",
                                                      "balance_after", "tier", "tier_after", "next_tier",
                                                      "qualifying", "to_next_tier", "lines", "quoted"});
  buf.clear();
  encode_response(buf, r);
  response got;
  std::string error;
  REQUIRE(decode_response(buf.data() + 4, buf.size() - 4, got, error));
  CHECK(got.op == opcode::quote);
  CHECK(got.points == 12);
  CHECK(got.balance == 990);
  CHECK(got.balance_after == 1002);
  CHECK(got.tier == "member");
  CHECK(got.tier_after == "silver");
  CHECK(got.next_tier == "gold");
  CHECK(got.to_next_tier == 3998);
  CHECK(got.qualifying == 1002);
  REQUIRE(got.lines.size() == 2);
  CHECK(got.lines[1].rule == "double-coffee");
  CHECK(got.quoted);
}

namespace {
// A msgpack map {name: bool, ...} as a field value.
value_fn bool_map(std::vector<std::pair<std::string, bool>> kv) {
  return [kv](pk_t& pk) {
    pk.pack_map(static_cast<std::uint32_t>(kv.size()));
    for (auto& [k, v] : kv)
      pk.pack(k), pk.pack(v);
  };
}
} // namespace

TEST_CASE("consent takes a map of known channels to booleans and a source", "[io][codec][consent]") {
  const std::vector<field> base{{"txn", val(std::string("c-1"))}, {"member", val(7)},
                                {"source", val(std::string("web-form"))}};
  auto with_consents = [&](value_fn v) {
    auto f = base;
    f.push_back({"consents", std::move(v)});
    return decode_op("consent", f);
  };
  auto ok = with_consents(bool_map({{"email", true}, {"sms", false}, {"profiling", true}}));
  REQUIRE(ok.error == errc::ok);
  CHECK(ok.consent_mask == (consent_bit("email") | consent_bit("sms") | consent_bit("profiling")));
  CHECK(ok.consent_values == (consent_bit("email") | consent_bit("profiling")));
  CHECK(ok.source == "web-form");
  CHECK(decode_op("consent", base).error == errc::missing_field);
  CHECK(with_consents(bool_map({})).error == errc::invalid_argument);
  CHECK(with_consents(bool_map({{"fax", true}})).error == errc::invalid_argument);
  CHECK(with_consents(bool_map({{"email", true}, {"email", false}})).error == errc::invalid_argument);
  CHECK(with_consents(val(std::string("email"))).error == errc::wrong_type);
  CHECK(with_consents([](pk_t& pk) {
          pk.pack_map(1);
          pk.pack(std::string("email")), pk.pack(1);
        }).error == errc::wrong_type);
  auto no_source = with_consents(bool_map({{"email", true}}));
  CHECK(no_source.error == errc::ok);
  CHECK(decode_op("consent", {{"txn", val(std::string("c-1"))}, {"member", val(7)},
                              {"consents", bool_map({{"email", true}})}})
          .error == errc::missing_field);
  CHECK(batched("consent", {{"txn", val(std::string("c-1"))}, {"member", val(7)},
                            {"consents", bool_map({{"sms", true}})}, {"source", val(std::string("pos"))}})
          .error == errc::ok);
  // The client's request survives the round trip; the answer names channels.
  request q;
  q.op = opcode::consent;
  q.id = 4;
  q.txn = "c-2";
  q.member = 9;
  q.consent_mask = consent_bit("sms") | consent_bit("push");
  q.consent_values = consent_bit("push");
  q.source = "app";
  std::vector<char> buf;
  encode_request(buf, q);
  auto back = decode(std::string(buf.data() + 4, buf.size() - 4));
  CHECK(back.error == errc::ok);
  CHECK(back.consent_mask == q.consent_mask);
  CHECK(back.consent_values == q.consent_values);
  response r;
  r.op = opcode::consent;
  r.id = 4;
  r.seq = 12;
  r.member = 9;
  r.consents = consent_bit("email") | consent_bit("push");
  buf.clear();
  encode_response(buf, r);
  response got;
  std::string error;
  REQUIRE(decode_response(buf.data() + 4, buf.size() - 4, got, error));
  CHECK(got.consents == r.consents);
}

TEST_CASE("subscribe takes a start seq known event types and one channel and never rides in a batch",
          "[io][codec][stream]") {
  auto all = decode_op("subscribe", {});
  REQUIRE(all.error == errc::ok);
  CHECK(all.from_seq == 0);
  CHECK(all.event_types == 0);
  auto f = decode_op("subscribe", {{"from", val(42)},
                                   {"types", val(std::vector<std::string>{"points_earned", "tier_changed"})},
                                   {"consent", val(std::string("sms"))}, {"brand", val(std::string("acme"))}});
  REQUIRE(f.error == errc::ok);
  CHECK(f.from_seq == 42);
  CHECK(f.event_types == ((1u << 1) | (1u << 11)));
  CHECK(f.consent_filter == consent_bit("sms"));
  CHECK(f.brand == "acme");
  CHECK(decode_op("subscribe", {{"types", val(std::vector<std::string>{"points_earned", "nope"})}}).error ==
        errc::invalid_argument);
  CHECK(decode_op("subscribe", {{"types", val(std::vector<std::string>{})}}).error == errc::invalid_argument);
  CHECK(decode_op("subscribe", {{"types", val(std::string("points_earned"))}}).error == errc::wrong_type);
  CHECK(decode_op("subscribe", {{"consent", val(std::string("fax"))}}).error == errc::invalid_argument);
  CHECK(decode_op("subscribe", {{"from", val(-1)}}).error == errc::invalid_argument);
  CHECK(batched("subscribe", {}).error == errc::invalid_argument);
  // An events frame survives the round trip.
  response r;
  r.op = opcode::subscribe;
  r.id = 3;
  r.seq = 125;
  r.next = 123;
  stream_event e;
  e.seq = 122, e.type = "points_expiring", e.entry = "expiry_notice", e.member = 7, e.brand = "acme";
  e.points = 50, e.balance = 410, e.consents = consent_bit("email"), e.tier = "silver";
  e.expiring = {{"acme", 50, 1'800'000'000'000'000ull}};
  r.events = {e};
  std::vector<char> buf;
  encode_response(buf, r);
  response got;
  std::string error;
  REQUIRE(decode_response(buf.data() + 4, buf.size() - 4, got, error));
  CHECK(got.seq == 125);
  CHECK(got.next == 123);
  REQUIRE(got.events.size() == 1);
  CHECK(got.events[0].type == "points_expiring");
  CHECK(got.events[0].consents == consent_bit("email"));
  REQUIRE(got.events[0].expiring.size() == 1);
  CHECK(got.events[0].expiring[0].expires_at_us == 1'800'000'000'000'000ull);
}

TEST_CASE("not_leader carries the leader's client address, empty when none is known", "[io][codec]") {
  for (const std::string addr : {"10.0.0.2:7411", ""}) {
    response r;
    r.op = opcode::earn;
    r.id = 9;
    r.code = errc::not_leader;
    r.message = std::string(default_message(errc::not_leader));
    r.leader = addr;
    std::vector<char> frame;
    encode_response(frame, r);
    response back;
    std::string err;
    REQUIRE(decode_response(frame.data() + 4, frame.size() - 4, back, err));
    CHECK(back.code == errc::not_leader);
    CHECK(static_cast<int>(back.code) == 67);
    CHECK(back.leader == addr);
    CHECK(back.id == 9);
  }
}

TEST_CASE("a cluster_status answer survives encode_response and decode_response field for field", "[io][codec]") {
  response r;
  r.op = opcode::cluster_status;
  r.id = 9;
  r.role = "follower";
  r.leader = "10.0.0.2:7411";
  r.stats = {{"id", 3}, {"term", 7}, {"journal_digest", 0xfedcba9876543210ull}};
  r.nodes = {{1, "10.0.0.1:7511", "10.0.0.1:7411", "voter", 0, 0},
             {4, "10.0.0.4:7511", "", "spare", 120, 3}};
  std::vector<char> buf;
  encode_response(buf, r);
  response got;
  std::string error;
  REQUIRE(decode_response(buf.data() + 4, buf.size() - 4, got, error));
  CHECK(got.ok());
  CHECK(got.role == "follower");
  CHECK(got.leader == "10.0.0.2:7411");
  CHECK(got.stats == r.stats);
  REQUIRE(got.nodes.size() == 2);
  CHECK(got.nodes[1].id == 4);
  CHECK(got.nodes[1].raft == "10.0.0.4:7511");
  CHECK(got.nodes[1].client.empty());
  CHECK(got.nodes[1].role == "spare");
  CHECK(got.nodes[1].match_index == 120);
  CHECK(got.nodes[1].lag == 3);
  CHECK(got.nodes[0].client == "10.0.0.1:7411");
}

TEST_CASE("cluster_add takes a node id and two host:port addresses; cluster_remove a node id", "[io][codec]") {
  const auto u = [](std::uint64_t x) { return val(x); };  // NOLINT
  const auto str = [](const char* x) { return val(std::string(x)); };
  auto ok = decode_op("cluster_add", {{"node", u(4)}, {"raft", str("10.0.0.4:7511")}, {"address", str("10.0.0.4:7411")}});
  REQUIRE(ok.error == errc::ok);
  CHECK(ok.op == opcode::cluster_add);
  CHECK(ok.node_id == 4);
  CHECK(ok.raft_address == "10.0.0.4:7511");
  CHECK(ok.client_address == "10.0.0.4:7411");
  CHECK(decode_op("cluster_add", {{"raft", str("h:1")}, {"address", str("h:2")}}).error == errc::missing_field);
  CHECK(decode_op("cluster_add", {{"node", u(4)}, {"raft", str("h:1")}}).error == errc::missing_field);
  for (const char* bad : {"nohost", "h:0", "h:65536", ":7511", "h:", "a|b:1", "h:12x"})
    CHECK(decode_op("cluster_add", {{"node", u(4)}, {"raft", str(bad)}, {"address", str("h:2")}}).error ==
          errc::invalid_argument);
  CHECK(decode_op("cluster_remove", {{"node", u(0)}}).error == errc::invalid_argument);
  CHECK(decode_op("cluster_remove", {{"node", str("2")}}).error == errc::wrong_type);
  auto rm = decode_op("cluster_remove", {{"node", u(2)}});
  CHECK(rm.error == errc::ok);
  CHECK(rm.node_id == 2);
}

TEST_CASE("dry_run rides on answers, errors included, and is absent when false", "[io][codec]") {
  response ok;
  ok.op = opcode::earn;
  ok.id = 4;
  ok.points = 120;
  response refused = ok;
  refused.code = errc::insufficient_points;
  refused.message = "no";
  for (response* r : {&ok, &refused}) {
    std::vector<char> plain, dry;
    encode_response(plain, *r);
    r->dry_run = true;
    encode_response(dry, *r);
    CHECK(dry.size() == plain.size() + 9);  // the key "dry_run" (8 bytes) and true (1 byte)
    response back, back_plain;
    std::string err;
    REQUIRE(decode_response(dry.data() + 4, dry.size() - 4, back, err));
    REQUIRE(decode_response(plain.data() + 4, plain.size() - 4, back_plain, err));
    CHECK(back.dry_run);
    CHECK_FALSE(back_plain.dry_run);
    CHECK(back.code == r->code);
  }
}

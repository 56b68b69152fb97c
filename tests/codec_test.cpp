// The wire codec: round trips, every validation error, and the hex examples
// of docs/PROTOCOL.md (read from the document itself, so it cannot go stale).
#include "io/codec.hpp"

#include <msgpack.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

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

std::string hex(const std::vector<char>& v) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (unsigned char c : v) {
    s += d[c >> 4];
    s += d[c & 15];
  }
  return s;
}

// The hex block labelled `name` in docs/PROTOCOL.md (```hex name ... ```).
std::string doc_hex(const std::string& name) {
  std::ifstream f(LOYALTY_SOURCE_DIR "/docs/PROTOCOL.md");
  REQUIRE(f);
  std::string line, out;
  bool in = false;
  while (std::getline(f, line)) {
    if (!in && line == "```hex " + name) {
      in = true;
      continue;
    }
    if (in && line.rfind("```", 0) == 0)
      return out;
    if (in)
      for (char c : line)
        if (std::isxdigit(static_cast<unsigned char>(c)))
          out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  FAIL("no hex block '" << name << "' in docs/PROTOCOL.md");
  return {};
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

TEST_CASE("the hex examples in docs/PROTOCOL.md are exactly what the codec writes", "[io][codec][docs]") {
  std::vector<char> b;
  request h;
  h.op = opcode::hello;
  h.id = 1;
  h.version = 1;
  h.client_name = "pos-17";
  encode_request(b, h);
  CHECK(hex(b) == doc_hex("hello-request"));
  b.clear();
  response hr;
  hr.op = opcode::hello;
  hr.id = 1;
  hr.version = 1;
  hr.server = "loyaltyd 0.1.0";
  hr.frame_bytes_max = 1048576;
  hr.inflight_max = 8192;
  hr.batch_ops_max = 1000;
  encode_response(b, hr);
  CHECK(hex(b) == doc_hex("hello-response"));
  b.clear();
  request e;
  e.op = opcode::earn;
  e.id = 2;
  e.txn = "order-5531";
  e.member = 1001;
  e.brand = "acme";
  e.amount = 4999;
  e.currency = "EUR";
  e.occurred_at_us = 1763812800000000ull;
  encode_request(b, e);
  CHECK(hex(b) == doc_hex("earn-request"));
  auto back = decode_request(b.data() + 4, b.size() - 4);
  CHECK(back.error == errc::ok);
  b.clear();
  response er;
  er.op = opcode::earn;
  er.id = 2;
  er.seq = 42;
  er.member = 1001;
  er.points = 49;
  er.balance = 149;
  er.lifetime = 1049;
  er.tier = "silver";
  encode_response(b, er);
  CHECK(hex(b) == doc_hex("earn-response"));
  b.clear();
  response x;
  x.op = opcode::redeem;
  x.id = 3;
  x.code = errc::insufficient_points;
  x.message = "the member does not have enough points";
  encode_response(b, x);
  CHECK(hex(b) == doc_hex("error-response"));
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

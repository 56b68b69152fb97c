// What docs/PROTOCOL.md says about requests a client library would never
// build, about batches and about admin jobs, shown over real TCP against a
// real engine (LMDB in a temporary directory, CAF member actors) running
// config/examples/retail.toml: frames written byte by byte where the client
// library cannot build them, answers read as bytes where their exact shape
// is the point.
#include "engine_rig.hpp"
#include "raw_wire.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

using namespace loyalty;
using namespace loyalty::io;
using test::decoded;
using test::frame_of;
using test::json_of;
using test::raw_socket;

namespace {

constexpr std::uint64_t t0 = 1'763'812'800'000'000ull;  // 2025-11-22T12:00:00Z

std::string retail_toml() {
  std::ifstream f(LOYALTY_SOURCE_DIR "/config/examples/retail.toml");
  REQUIRE(f);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

struct retail_rig : test::engine_rig {
  // The rig's admin key only (its other keys name the brand `shop`).
  explicit retail_rig(const std::string& what, std::function<void(engine_options&)> more = {})
    : test::engine_rig(what, retail_toml(), t0, [more = std::move(more)](engine_options& o) {
        o.settings.keys.resize(1);
        if (more)
          more(o);
      }) {}

  // A member of acme with `points` acme points earned now.
  void member_with(std::uint64_t member, std::int64_t points) {
    REQUIRE(c->enroll(member, "acme").ok());
    if (points > 0)
      REQUIRE(c->earn("seed-" + std::to_string(member), member, "acme", points * 100, "EUR", t0).points == points);
  }

  // The newest seq (seqs run 1, 2, ... without gaps), read by a verify that
  // also proves the ledger sound.
  std::uint64_t last_seq() {
    auto v = c->verify();
    REQUIRE(v.ok());
    REQUIRE(v.verify.valid);
    return v.verify.entries;
  }
};

// A request map written field by field: keys are strings, values unsigned
// or signed integers, strings or binaries, in the order given.
struct bin {
  std::string bytes;
};
using value = std::variant<std::uint64_t, std::int64_t, std::string, bin>;
using fields = std::vector<std::pair<std::string, value>>;

template <class Packer>
void pack_value(Packer& pk, const value& v) {
  if (const auto* u = std::get_if<std::uint64_t>(&v))
    pk.pack(*u);
  else if (const auto* i = std::get_if<std::int64_t>(&v))
    pk.pack(*i);
  else if (const auto* s = std::get_if<std::string>(&v))
    pk.pack(*s);
  else {
    const auto& b = std::get<bin>(v).bytes;
    pk.pack_bin(static_cast<std::uint32_t>(b.size()));
    pk.pack_bin_body(b.data(), static_cast<std::uint32_t>(b.size()));
  }
}

std::string request_frame(const fields& f) {
  return frame_of([&](auto& pk) {
    pk.pack_map(static_cast<std::uint32_t>(f.size()));
    for (const auto& [k, v] : f) {
      pk.pack(k);
      pack_value(pk, v);
    }
  });
}

std::string frame(const request& r) {
  std::vector<char> out;
  encode_request(out, r);
  return {out.begin(), out.end()};
}

// A raw connection that has said hello with the rig's admin key.
std::unique_ptr<raw_socket> admin_socket(test::engine_rig& g) {
  auto s = std::make_unique<raw_socket>(g.eng->port());
  s->send(request_frame({{"op", std::string("hello")}, {"id", std::uint64_t{1}}, {"version", std::uint64_t{1}},
                         {"key", std::string(test::admin_key)}}));
  REQUIRE(decoded(s->frame()).ok());
  return s;
}

// The fields of an earn of 10.00 EUR at acme for member 1 now.
fields earn_fields(std::uint64_t id, value txn) {
  return {{"op", std::string("earn")},  {"id", id},
          {"txn", std::move(txn)},      {"member", std::uint64_t{1}},
          {"brand", std::string("acme")}, {"amount", std::uint64_t{1000}},
          {"currency", std::string("EUR")}, {"occurred_at", t0}};
}

fields with(fields f, const std::string& key, value v) {
  for (auto& [k, old] : f)
    if (k == key)
      old = std::move(v);
  return f;
}

} // namespace

TEST_CASE("a map key that is not a string is ignored with its value", "[io][docs]") {
  retail_rig g("keys");
  g.member_with(1, 0);
  auto s = admin_socket(g);
  // An integer key and a binary key beside the real fields: ignored.
  s->send(frame_of([](auto& pk) {
    pk.pack_map(10);
    for (const auto& [k, v] : earn_fields(2, std::string("k-1"))) {
      pk.pack(k);
      pack_value(pk, v);
    }
    pk.pack(7), pk.pack(std::string("ignored"));
    pk.pack_bin(5), pk.pack_bin_body("brand", 5), pk.pack(std::string("globex"));
  }));
  auto ok = decoded(s->frame());
  INFO(ok.message);
  REQUIRE(ok.ok());
  CHECK(ok.points == 10);  // acme's rate: the binary "brand" key did not count
  // The member under a binary key is no member at all.
  const auto before = g.last_seq();
  s->send(frame_of([](auto& pk) {
    pk.pack_map(8);
    for (const auto& [k, v] : earn_fields(3, std::string("k-2"))) {
      if (k == "member")
        pk.pack_bin(6), pk.pack_bin_body("member", 6);
      else
        pk.pack(k);
      pack_value(pk, v);
    }
  }));
  auto missing = decoded(s->frame());
  CHECK(missing.id == 3);
  CHECK(missing.code == errc::missing_field);
  CHECK(missing.message.find("'member'") != std::string::npos);
  CHECK(g.last_seq() == before);
}

TEST_CASE("a key given twice in a request counts with its last value", "[io][docs]") {
  retail_rig g("dup-keys");
  g.member_with(1, 0);
  auto s = admin_socket(g);
  auto f = earn_fields(2, std::string("twice-1"));
  f.emplace_back("amount", std::uint64_t{3000});  // after amount 1000
  s->send(request_frame(f));
  auto r = decoded(s->frame());
  INFO(r.message);
  REQUIRE(r.ok());
  CHECK(r.points == 30);  // acme earns a point per euro: 30.00 EUR counted, not 10.00
}

TEST_CASE("a negative number in a uint field is invalid_argument, and an id of -1 is answered with id 0",
          "[io][docs]") {
  retail_rig g("negative");
  g.member_with(1, 100);
  const auto before = g.last_seq();
  auto s = admin_socket(g);
  s->send(request_frame({{"op", std::string("balance")}, {"id", std::uint64_t{5}}, {"member", std::int64_t{-1}}}));
  auto member = decoded(s->frame());
  CHECK(member.id == 5);
  CHECK(member.code == errc::invalid_argument);
  CHECK(member.message.find("'member'") != std::string::npos);
  s->send(request_frame({{"op", std::string("hold")},
                         {"id", std::uint64_t{6}},
                         {"txn", std::string("h-1")},
                         {"member", std::uint64_t{1}},
                         {"points", std::uint64_t{10}},
                         {"ttl_s", std::int64_t{-600}}}));
  auto ttl = decoded(s->frame());
  CHECK(ttl.id == 6);
  CHECK(ttl.code == errc::invalid_argument);
  CHECK(ttl.message.find("'ttl_s'") != std::string::npos);
  // A negative id cannot be echoed: 0 instead; the operation is still named.
  s->send(request_frame({{"op", std::string("balance")}, {"id", std::int64_t{-1}}, {"member", std::uint64_t{1}}}));
  const auto neg_id = s->frame();
  CHECK(json_of(neg_id).rfind(R"({"id":0,"op":"balance","ok":false,"error":"invalid_argument","code":8,)", 0) == 0);
  CHECK(decoded(neg_id).message.find("'id'") != std::string::npos);
  // No id at all: the same, as missing_field.
  s->send(request_frame({{"op", std::string("balance")}, {"member", std::uint64_t{1}}}));
  CHECK(json_of(s->frame()).rfind(R"({"id":0,"op":"balance","ok":false,"error":"missing_field","code":6,)", 0) == 0);
  // In an int field (amounts, points) a negative number is invalid_amount.
  s->send(request_frame(with(earn_fields(7, std::string("neg-amount")), "amount", std::int64_t{-1000})));
  CHECK(decoded(s->frame()).code == errc::invalid_amount);
  CHECK(g.last_seq() == before);
}

TEST_CASE("an unknown operation is answered with op none, its id and unknown_operation, before hello too",
          "[io][docs]") {
  retail_rig g("unknown-op");
  g.member_with(1, 100);
  raw_socket s(g.eng->port());
  // Before hello: a request that fails validation gets its own error, a
  // valid one hello_required.
  s.send(request_frame({{"op", std::string("teleport")}, {"id", std::uint64_t{9}}}));
  CHECK(json_of(s.frame()) ==
        R"({"id":9,"op":"none","ok":false,"error":"unknown_operation","code":5,"message":"unknown operation 'teleport'"})");
  s.send(request_frame({{"op", std::string("balance")}, {"id", std::uint64_t{10}}}));
  auto missing = decoded(s.frame());
  CHECK(missing.id == 10);
  CHECK(missing.code == errc::missing_field);
  s.send(request_frame({{"op", std::string("balance")}, {"id", std::uint64_t{11}}, {"member", std::uint64_t{1}}}));
  CHECK(decoded(s.frame()).code == errc::hello_required);
  s.send(request_frame({{"op", std::string("hello")}, {"id", std::uint64_t{12}}, {"version", std::uint64_t{1}},
                        {"key", std::string(test::admin_key)}}));
  REQUIRE(decoded(s.frame()).ok());
  s.send(request_frame({{"op", std::string("teleport")}, {"id", std::uint64_t{13}}, {"member", std::uint64_t{1}}}));
  CHECK(json_of(s.frame()).rfind(R"({"id":13,"op":"none","ok":false,"error":"unknown_operation","code":5,)", 0) == 0);
  // The connection stays open.
  s.send(request_frame({{"op", std::string("balance")}, {"id", std::uint64_t{14}}, {"member", std::uint64_t{1}}}));
  auto b = decoded(s.frame());
  CHECK(b.id == 14);
  CHECK(b.balance == 100);
}

TEST_CASE("timed_out is sent with op none and id 0", "[io][docs]") {
  retail_rig g("timed-out", [](engine_options& o) { o.settings.frame_read_timeout_ms = 200; });
  auto s = admin_socket(g);
  s->send(std::string("\0\0", 2));  // half of a length prefix, then nothing
  CHECK(json_of(s->frame()).rfind(R"({"id":0,"op":"none","ok":false,"error":"timed_out","code":66,)", 0) == 0);
}

TEST_CASE("a txn id sent as str and retried as bin with the same bytes is one transaction", "[io][docs]") {
  retail_rig g("txn-encoding");
  g.member_with(1, 0);
  auto s = admin_socket(g);
  s->send(request_frame(earn_fields(2, std::string("pos-1"))));
  auto first = decoded(s->frame());
  REQUIRE(first.ok());
  CHECK_FALSE(first.replayed);
  s->send(request_frame(earn_fields(3, bin{"pos-1"})));
  auto retry = decoded(s->frame());
  REQUIRE(retry.ok());
  CHECK(retry.replayed);
  CHECK(retry.seq == first.seq);
  CHECK(g.c->balance(1).balance == 10);  // posted once
  // One id space: other content under the bin spelling is a conflict.
  s->send(request_frame(with(earn_fields(4, bin{"pos-1"}), "amount", std::uint64_t{2000})));
  CHECK(decoded(s->frame()).code == errc::txn_id_conflict);
  // `ref` names the earn in either encoding.
  s->send(request_frame({{"op", std::string("refund")},
                         {"id", std::uint64_t{5}},
                         {"txn", bin{"ret-1"}},
                         {"member", std::uint64_t{1}},
                         {"ref", bin{"pos-1"}},
                         {"amount", std::uint64_t{500}}}));
  auto refund = decoded(s->frame());
  INFO(refund.message);
  CHECK(refund.ok());
  CHECK(refund.points == 5);
  s->send(request_frame({{"op", std::string("explain")}, {"id", std::uint64_t{6}}, {"txn", bin{"pos-1"}}}));
  CHECK(decoded(s->frame()).seq == first.seq);
}

TEST_CASE("a batch runs the elements for one member in order, whatever other members' elements do", "[io][docs]") {
  retail_rig g("batch-order");
  // 20 members, their elements interleaved: each member is enrolled, earns
  // 100 points, spends them, then asks for 1 more. Only in order do the
  // spends find the points and the last one find none.
  constexpr std::uint64_t members = 20;
  request batch;
  batch.op = opcode::batch;
  auto element = [&](opcode op, std::uint64_t member) -> request& {
    request e;
    e.op = op;
    e.id = batch.ops.size() + 1;
    e.member = member;
    batch.ops.push_back(std::move(e));
    return batch.ops.back();
  };
  for (std::uint64_t m = 1; m <= members; ++m)
    element(opcode::enroll, m).brand = "acme";
  for (std::uint64_t m = 1; m <= members; ++m) {
    auto& e = element(opcode::earn, m);
    e.txn = "earn-" + std::to_string(m), e.brand = "acme", e.amount = 10000, e.currency = "EUR", e.occurred_at_us = t0;
  }
  for (std::uint64_t m = 1; m <= members; ++m) {
    element(opcode::redeem, m).points = 100;
    batch.ops.back().txn = "spend-" + std::to_string(m);
  }
  for (std::uint64_t m = 1; m <= members; ++m) {
    element(opcode::redeem, m).points = 1;
    batch.ops.back().txn = "more-" + std::to_string(m);
  }
  for (std::uint64_t m = 1; m <= members; ++m)
    element(opcode::balance, m);
  auto r = g.c->call(batch);
  REQUIRE(r.ok());
  REQUIRE(r.results.size() == batch.ops.size());
  for (std::size_t i = 0; i < r.results.size(); ++i)
    CHECK(r.results[i].id == i + 1);  // results in the order of ops
  for (std::uint64_t m = 1; m <= members; ++m) {
    INFO("member " << m);
    const auto& enroll = r.results[m - 1];
    const auto& earn = r.results[members + m - 1];
    const auto& spend = r.results[2 * members + m - 1];
    const auto& more = r.results[3 * members + m - 1];
    const auto& balance = r.results[4 * members + m - 1];
    CHECK(enroll.ok());
    CHECK(earn.points == 100);
    CHECK(spend.ok());
    CHECK(more.code == errc::insufficient_points);
    CHECK(balance.balance == 0);
    CHECK(enroll.seq < earn.seq);
    CHECK(earn.seq < spend.seq);
  }
}

TEST_CASE("a debit adjust makes debt up to negative_balance_max and is negative_balance_limit past it, never "
          "insufficient_points",
          "[io][docs]") {
  retail_rig g("adjust-debit");
  g.member_with(1, 100);
  // retail.toml: negative_balance_max = 5000.
  auto debt = g.c->adjust("d-1", 1, -300, "goodwill reversed", "acme");
  INFO(debt.message);
  REQUIRE(debt.ok());
  CHECK(debt.points == 300);
  auto b = g.c->balance(1);
  CHECK(b.balance == -200);
  CHECK(b.debt == 200);
  const auto before = g.last_seq();
  auto past = g.c->adjust("d-2", 1, -4801, "one point too far", "acme");
  CHECK(past.code == errc::negative_balance_limit);
  CHECK(g.last_seq() == before);
  CHECK(g.c->balance(1).debt == 200);
  auto up_to = g.c->adjust("d-3", 1, -4800, "exactly to the limit", "acme");
  REQUIRE(up_to.ok());
  CHECK(g.c->balance(1).debt == 5000);
  g.check_verify();
}

namespace {

// The admin jobs of docs/PROTOCOL.md section 7, "Operations that take a
// slot": each request makes a fresh one (a backup needs a new directory).
struct jobs {
  std::filesystem::path dir;
  std::uint64_t n = 100;
  request make(const std::string& kind) {
    request r;
    r.id = ++n;
    if (kind == "verify") r.op = opcode::verify;
    else if (kind == "expire-all") r.op = opcode::expire;
    else if (kind == "reload") r.op = opcode::reload;
    else if (kind == "backup") r.op = opcode::backup, r.path = (dir / ("backup-" + std::to_string(n))).string();
    else if (kind == "activity") r.op = opcode::activity, r.brand = "acme";
    else if (kind == "settlement") r.op = opcode::settlement, r.brand = "acme";
    else if (kind == "report") r.op = opcode::report;
    else if (kind == "liability") r.op = opcode::liability;
    else if (kind == "expire-one") r.op = opcode::expire, r.member = 1;
    else FAIL("no job " << kind);
    return r;
  }
};

// A ledger big enough that each job takes a while (it reads every member or
// every entry): 1000 members of both brands with a purchase each.
void busy_ledger(retail_rig& g) {
  request batch;
  batch.op = opcode::batch;
  for (std::uint64_t m = 1; m <= 1000; ++m) {
    request e;
    e.op = opcode::enroll, e.id = m, e.member = m, e.brand = m % 2 == 0 ? "acme" : "globex";
    batch.ops.push_back(e);
  }
  REQUIRE(g.c->call(batch).ok());
  batch.ops.clear();
  for (std::uint64_t m = 1; m <= 1000; ++m) {
    request e;
    e.op = opcode::earn, e.id = m, e.member = m, e.txn = "b-" + std::to_string(m);
    e.brand = m % 3 == 0 ? "acme" : "globex", e.amount = 5000 + static_cast<std::int64_t>(m), e.currency = "EUR";
    e.occurred_at_us = t0;
    batch.ops.push_back(e);
  }
  REQUIRE(g.c->call(batch).ok());
}

// Sends `first` and `second` at once until one finds the other still
// running. On one connection both go in one write, so the io thread starts
// the first and reads the second in the same breath; on two it may read
// either first. A round can miss (the first job ends before the second is
// read, e.g. when the new job thread preempts the io thread on a loaded
// machine), so up to 200 rounds. One succeeds, the other succeeds or is
// `busy`, and a busy one does nothing.
void one_is_busy(retail_rig& g, jobs& j, const std::string& first, const std::string& second,
                 bool two_connections = false) {
  INFO(first << " and " << second << " at once" << (two_connections ? ", on two connections" : ""));
  auto a = admin_socket(g);
  auto b = two_connections ? admin_socket(g) : nullptr;
  for (int round = 0; round < 200; ++round) {
    const request one = j.make(first), two = j.make(second);
    response r1, r2;
    if (b) {
      a->send(frame(one));
      b->send(frame(two));
      r1 = decoded(a->frame()), r2 = decoded(b->frame());
    } else {
      a->send(frame(one) + frame(two));
      r1 = decoded(a->frame()), r2 = decoded(a->frame());
      if (r1.id == two.id)
        std::swap(r1, r2);
    }
    INFO(r1.message << " / " << r2.message);
    CHECK(r1.id == one.id);
    CHECK(r2.id == two.id);
    CHECK(r1.op == one.op);
    CHECK(r2.op == two.op);
    REQUIRE((r1.ok() || r2.ok()));
    const auto refused = !r1.ok() ? std::make_pair(&r1, &one) : std::make_pair(&r2, &two);
    if (!refused.first->ok()) {
      CHECK(refused.first->code == errc::busy);
      if (refused.second->op == opcode::backup)
        CHECK_FALSE(std::filesystem::exists(refused.second->path));
      return;
    }
  }
  FAIL("never busy in 200 rounds");
}

} // namespace

TEST_CASE("a second verify, expire of every member, reload or backup while one of its kind runs is busy, "
          "from any connection",
          "[io][docs]") {
  retail_rig g("busy");
  busy_ledger(g);
  jobs j{g.dir.path};
  for (const char* kind : {"verify", "expire-all", "reload", "backup"})
    one_is_busy(g, j, kind, kind);
  // One slot for the whole engine, not one per connection.
  one_is_busy(g, j, "verify", "verify", true);
  one_is_busy(g, j, "backup", "backup", true);
}

TEST_CASE("activity, settlement and report share one slot", "[io][docs]") {
  retail_rig g("busy-reports");
  busy_ledger(g);
  jobs j{g.dir.path};
  for (const char* first : {"activity", "settlement", "report"})
    for (const char* second : {"activity", "settlement", "report"})
      one_is_busy(g, j, first, second);
}

TEST_CASE("admin jobs of different slots, liability and the expire of one member run side by side", "[io][docs]") {
  retail_rig g("side-by-side");
  busy_ledger(g);
  jobs j{g.dir.path};
  auto s = admin_socket(g);
  // All sent in one write: none waits for another, none is busy.
  const std::vector<std::string> kinds{"verify", "expire-all", "reload", "backup", "report", "liability", "expire-one"};
  std::string all;
  for (const auto& k : kinds)
    all += frame(j.make(k));
  s->send(all);
  for (std::size_t i = 0; i < kinds.size(); ++i) {
    auto r = decoded(s->frame());
    INFO(r.message);
    CHECK(r.ok());
  }
}

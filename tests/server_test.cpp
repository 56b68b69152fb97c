// The engine over real TCP on loopback: a real engine (ledger in a temporary
// directory, CAF actors, Asio server on an ephemeral port) and the client
// library, the load generator and loyaltyctl as integrators use them.
#include "engine_process.hpp"
#include "raw_wire.hpp"
#include "temp_dir.hpp"
#include "io/client/client.hpp"
#include "io/wire/codec.hpp"
#include "io/server/engine.hpp"

#include <msgpack.hpp>

#include <catch2/catch.hpp>

#include <csignal>
#include <ctime>
#include <sys/syscall.h>
#include <unistd.h>
#include <cstdlib>
#include <map>
#include <thread>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

using namespace loyalty;
using namespace loyalty::io;
using test::frame_of;

namespace {

program test_program() {
  program p;
  p.name = "t";
  p.currency = "EUR";
  p.brands.push_back({1, "acme", "Acme", {1, 100}});
  p.brands.push_back({2, "globex", "Globex", {2, 100}});
  p.tiers.push_back({"member", 0, {1, 1}});
  p.tiers.push_back({"silver", 1000, {3, 2}});
  return p;
}

struct temp_dir : test::temp_dir {
  temp_dir() : test::temp_dir("server") {}
};

engine_settings test_settings(const std::filesystem::path& dir) {
  engine_settings s;
  s.listen_host = "127.0.0.1";
  s.listen_port = 0;
  s.data_dir = (dir / "data").string();
  s.map_bytes = 1ull << 30;
  s.commit_window_us = 100;
  s.actor_threads = 2;
  return s;
}

std::unique_ptr<engine> start_engine(const engine_settings& s) {
  engine_options o;
  o.settings = s;
  o.prog = test_program();
  std::string err;
  auto e = engine::start(std::move(o), err);
  INFO(err);
  REQUIRE(e);
  return e;
}

std::unique_ptr<client> connect(const engine& e, bool hello = true) {
  std::string err;
  auto c = client::connect("127.0.0.1", e.port(), err);
  INFO(err);
  REQUIRE(c);
  if (hello)
    REQUIRE(c->hello().ok());
  return c;
}

response receive_one(client& c) {
  response r;
  std::string err;
  INFO(err);
  REQUIRE(c.receive(r, err, std::chrono::seconds(20)));
  return r;
}

// Whether the server closes the connection with nothing more to read: the
// end of the stream, not a silence that outlasts the wait (bounded).
bool closed_by_server(client& c) {
  response r;
  std::string err;
  const bool more = c.receive(r, err, std::chrono::seconds(20));
  INFO(err);
  return !more && err == "the server closed the connection";
}

// Purchases happen "now" (fixed for the whole run, so that a retry carries
// the same content): points of a purchase years ago would have expired.
const std::uint64_t purchase_at_us = static_cast<std::uint64_t>(
  std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count());

request earn_req(std::uint64_t member, std::int64_t amount, std::string txn, std::string brand = "acme") {
  request r;
  r.op = opcode::earn;
  r.member = member;
  r.brand = std::move(brand);
  r.amount = amount;
  r.currency = "EUR";
  r.occurred_at_us = purchase_at_us;
  r.txn = std::move(txn);
  return r;
}

} // namespace

TEST_CASE("a member enrolls, earns, redeems and reads its balance over TCP", "[io][server]") {
  temp_dir tmp;
  auto e = start_engine(test_settings(tmp.path));
  auto c = connect(*e);
  CHECK(c->enroll(1, "acme").ok());
  auto earned = c->earn("t-1", 1, "acme", 25000, "EUR", purchase_at_us);
  REQUIRE(earned.ok());
  CHECK(earned.points == 250);
  CHECK(earned.tier == "member");
  CHECK_FALSE(earned.replayed);
  auto spent = c->redeem("t-2", 1, 50);
  REQUIRE(spent.ok());
  CHECK(spent.balance == 200);
  auto bal = c->balance(1);
  REQUIRE(bal.ok());
  CHECK(bal.balance == 200);
  CHECK(bal.lifetime == 250);
  CHECK(bal.brand == "acme");
  auto v = c->verify();
  REQUIRE(v.ok());
  CHECK(v.verify.valid);
  CHECK(v.verify.entries == 3);
}

TEST_CASE("a request before hello is refused and the connection stays usable", "[io][server]") {
  temp_dir tmp;
  auto e = start_engine(test_settings(tmp.path));
  auto c = connect(*e, false);
  auto r = c->call([] {
    request q;
    q.op = opcode::balance;
    q.member = 1;
    return q;
  }());
  CHECK(r.code == errc::hello_required);
  CHECK(c->hello().ok());
  CHECK(c->balance(1).code == errc::unknown_member);
}

TEST_CASE("a hello with an unsupported version is answered and the connection closed", "[io][server]") {
  temp_dir tmp;
  auto e = start_engine(test_settings(tmp.path));
  auto c = connect(*e, false);
  auto f = frame_of([](auto& pk) {
    pk.pack_map(3);
    pk.pack("op"), pk.pack("hello");
    pk.pack("id"), pk.pack(1);
    pk.pack("version"), pk.pack(99);
  });
  c->send_raw(f.data(), f.size());
  CHECK(receive_one(*c).code == errc::unsupported_version);
  CHECK(closed_by_server(*c));
}

TEST_CASE("a thousand pipelined earns on one connection are all answered and all posted", "[io][server]") {
  temp_dir tmp;
  auto e = start_engine(test_settings(tmp.path));
  auto c = connect(*e);
  for (std::uint64_t m = 1; m <= 10; ++m)
    REQUIRE(c->enroll(m, "acme").ok());
  std::set<std::uint64_t> ids;
  for (int i = 0; i < 1000; ++i)
    ids.insert(c->send(earn_req(1 + i % 10, 100, "p-" + std::to_string(i))));
  std::int64_t points = 0;
  for (int i = 0; i < 1000; ++i) {
    auto r = receive_one(*c);
    REQUIRE(r.ok());
    CHECK(ids.erase(r.id) == 1);
    points += r.points;
  }
  CHECK(ids.empty());
  CHECK(points == 1000);
  for (std::uint64_t m = 1; m <= 10; ++m)
    CHECK(c->balance(m).balance == 100);
  CHECK(e->ledger().verify().ok);
}

TEST_CASE("every kind of bad request gets its error code, posts nothing, and the connection stays usable",
          "[io][server]") {
  temp_dir tmp;
  auto e = start_engine(test_settings(tmp.path));
  auto c = connect(*e);
  REQUIRE(c->enroll(1, "acme").ok());
  REQUIRE(c->earn("ok-1", 1, "acme", 1000, "EUR", 1).ok());
  auto seq = e->ledger().last_seq();

  auto raw = [&](const std::string& f) {
    c->send_raw(f.data(), f.size());
    return receive_one(*c);
  };
  // Missing field.
  CHECK(raw(frame_of([](auto& pk) {
          pk.pack_map(3);
          pk.pack("op"), pk.pack("earn");
          pk.pack("id"), pk.pack(10);
          pk.pack("member"), pk.pack(1);
        })).code == errc::missing_field);
  // Wrong type: amount as a string.
  CHECK(raw(frame_of([](auto& pk) {
          pk.pack_map(8);
          pk.pack("op"), pk.pack("earn");
          pk.pack("id"), pk.pack(11);
          pk.pack("txn"), pk.pack("w");
          pk.pack("member"), pk.pack(1);
          pk.pack("brand"), pk.pack("acme");
          pk.pack("amount"), pk.pack("100");
          pk.pack("currency"), pk.pack("EUR");
          pk.pack("occurred_at"), pk.pack(1);
        })).code == errc::wrong_type);
  // Amount above INT64_MAX.
  CHECK(raw(frame_of([](auto& pk) {
          pk.pack_map(8);
          pk.pack("op"), pk.pack("earn");
          pk.pack("id"), pk.pack(12);
          pk.pack("txn"), pk.pack("o");
          pk.pack("member"), pk.pack(1);
          pk.pack("brand"), pk.pack("acme");
          pk.pack("amount"), pk.pack(std::uint64_t{1} << 63);
          pk.pack("currency"), pk.pack("EUR");
          pk.pack("occurred_at"), pk.pack(1);
        })).code == errc::amount_overflow);
  // Unknown operation.
  CHECK(raw(frame_of([](auto& pk) {
          pk.pack_map(2);
          pk.pack("op"), pk.pack("teleport");
          pk.pack("id"), pk.pack(13);
        })).code == errc::unknown_operation);
  // Not a map.
  CHECK(raw(frame_of([](auto& pk) { pk.pack(42); })).code == errc::wrong_type);

  CHECK(c->call(earn_req(1, -5, "neg")).code == errc::invalid_amount);
  CHECK(c->call(earn_req(1, 0, "zero")).code == errc::invalid_amount);
  CHECK(c->call(earn_req(2, 100, "nobody")).code == errc::unknown_member);
  CHECK(c->call(earn_req(1, 100, "b", "initech")).code == errc::unknown_brand);
  auto usd = earn_req(1, 100, "usd");
  usd.currency = "USD";
  CHECK(c->call(usd).code == errc::currency_mismatch);
  CHECK(c->enroll(1, "acme").code == errc::member_exists);
  CHECK(c->redeem("r-big", 1, 11).code == errc::insufficient_points);
  CHECK(c->redeem("ok-1", 1, 1).code == errc::txn_id_conflict);
  request neg_redeem;
  neg_redeem.op = opcode::redeem;
  neg_redeem.member = 1;
  neg_redeem.points = -3;
  neg_redeem.txn = "nr";
  CHECK(c->call(neg_redeem).code == errc::invalid_amount);
  auto long_txn = earn_req(1, 100, std::string(65, 'x'));
  CHECK(c->call(long_txn).code == errc::invalid_argument);

  CHECK(e->ledger().last_seq() == seq);
  auto b = c->balance(1);
  REQUIRE(b.ok());
  CHECK(b.balance == 10);
  auto replay = c->earn("ok-1", 1, "acme", 1000, "EUR", 1);
  CHECK(replay.ok());
  CHECK(replay.replayed);
  CHECK(e->ledger().last_seq() == seq);
}

TEST_CASE("an enroll that names its member by alias alone is invalid_argument and posts nothing", "[io][server]") {
  temp_dir tmp;
  auto e = start_engine(test_settings(tmp.path));
  auto c = connect(*e);
  REQUIRE(c->enroll(1, "acme").ok());
  REQUIRE(c->link_alias("l-1", 1, "card-1").ok());
  const auto seq = e->ledger().last_seq();
  // A new alias, and one that already names a member: neither enrolls anyone.
  for (const char* alias : {"card-2", "card-1"}) {
    INFO(alias);
    const auto f = frame_of([&](auto& pk) {
      pk.pack_map(4);
      pk.pack("op"), pk.pack("enroll");
      pk.pack("id"), pk.pack(20);
      pk.pack("alias"), pk.pack(alias);
      pk.pack("brand"), pk.pack("acme");
    });
    c->send_raw(f.data(), f.size());
    auto r = receive_one(*c);
    CHECK(r.id == 20);
    CHECK(r.code == errc::invalid_argument);
    CHECK(r.message.find("'alias'") != std::string::npos);
  }
  CHECK(e->ledger().last_seq() == seq);
  CHECK(c->balance(1).ok());  // the connection stays usable
}

TEST_CASE("a frame over the size limit gets frame_too_large and the connection is closed, others go on",
          "[io][server]") {
  temp_dir tmp;
  auto e = start_engine(test_settings(tmp.path));
  auto other = connect(*e);
  auto c = connect(*e);
  unsigned char hdr[4];
  write_be32(hdr, limits::frame_bytes_max + 1);
  c->send_raw(hdr, 4);
  CHECK(receive_one(*c).code == errc::frame_too_large);
  CHECK(closed_by_server(*c));
  CHECK(other->enroll(5, "acme").ok());
}

TEST_CASE("an unreadable frame gets malformed_frame and the connection is closed", "[io][server]") {
  temp_dir tmp;
  auto e = start_engine(test_settings(tmp.path));
  auto c = connect(*e);
  const unsigned char bad[] = {0, 0, 0, 3, 0xc1, 0xc1, 0xc1};  // 0xc1 is never valid msgpack
  c->send_raw(bad, sizeof bad);
  CHECK(receive_one(*c).code == errc::malformed_frame);
  CHECK(closed_by_server(*c));
  CHECK(connect(*e)->enroll(9, "acme").ok());
}

TEST_CASE("a batch carries many operations and answers each in order", "[io][server]") {
  temp_dir tmp;
  auto e = start_engine(test_settings(tmp.path));
  auto c = connect(*e);
  request b;
  b.op = opcode::batch;
  request en;
  en.op = opcode::enroll;
  en.id = 1;
  en.member = 77;
  en.brand = "globex";
  b.ops.push_back(en);
  auto ea = earn_req(77, 1000, "bx-1", "globex");
  ea.id = 2;
  b.ops.push_back(ea);
  auto bad = earn_req(78, 1000, "bx-2");
  bad.id = 3;
  b.ops.push_back(bad);
  auto r = c->call(b);
  REQUIRE(r.ok());
  REQUIRE(r.results.size() == 3);
  CHECK(r.results[0].ok());
  CHECK(r.results[0].id == 1);
  CHECK(r.results[1].ok());
  CHECK(r.results[1].points == 20);
  CHECK(r.results[2].code == errc::unknown_member);
  CHECK(r.results[2].id == 3);
}

TEST_CASE("past the in-flight limit a request is answered overloaded at once and nothing is posted",
          "[io][server]") {
  temp_dir tmp;
  auto s = test_settings(tmp.path);
  s.inflight_per_connection_max = 4;
  auto e = start_engine(s);
  auto c = connect(*e);
  request b;
  b.op = opcode::batch;
  for (std::uint64_t i = 1; i <= 5; ++i) {
    request en;
    en.op = opcode::enroll;
    en.id = i;
    en.member = i;
    en.brand = "acme";
    b.ops.push_back(en);
  }
  CHECK(c->call(b).code == errc::overloaded);
  CHECK(e->ledger().last_seq() == 0);
  b.ops.pop_back();
  CHECK(c->call(b).ok());
}

TEST_CASE("past the connection limit a new connection is told too_many_connections and closed", "[io][server]") {
  temp_dir tmp;
  auto s = test_settings(tmp.path);
  s.connections_max = 2;
  auto e = start_engine(s);
  auto a = connect(*e);
  auto b = connect(*e);
  std::string err;
  auto c = client::connect("127.0.0.1", e->port(), err);
  REQUIRE(c);
  CHECK(receive_one(*c).code == errc::too_many_connections);
  CHECK(closed_by_server(*c));
  CHECK(a->balance(1).code == errc::unknown_member);
}

TEST_CASE("an earn retried after an engine restart returns the original result and posts nothing",
          "[io][server]") {
  temp_dir tmp;
  auto s = test_settings(tmp.path);
  response first;
  {
    auto e = start_engine(s);
    auto c = connect(*e);
    REQUIRE(c->enroll(1, "acme").ok());
    first = c->earn("restart-1", 1, "acme", 4200, "EUR", 5);
    REQUIRE(first.ok());
  }
  auto e = start_engine(s);
  auto c = connect(*e);
  auto again = c->earn("restart-1", 1, "acme", 4200, "EUR", 5);
  REQUIRE(again.ok());
  CHECK(again.replayed);
  CHECK(again.seq == first.seq);
  CHECK(again.balance == first.balance);
  CHECK(c->balance(1).balance == 42);
  CHECK(c->earn("restart-1", 1, "acme", 4300, "EUR", 5).code == errc::txn_id_conflict);
}

TEST_CASE("loyalty-loadgen drives the engine and writes a JSON summary; loyaltyctl verifies it",
          "[io][server][tools]") {
  temp_dir tmp;
  auto e = start_engine(test_settings(tmp.path));
  auto json = (tmp.path / "summary.json").string();
  std::ostringstream cmd;
  cmd << LOYALTY_LOADGEN_BIN << " --port " << e->port()
      << " --members 200 --connections 2 --depth 16 --duration 2 --seed 7 --json " << json << " > "
      << (tmp.path / "loadgen.out").string() << " 2>&1";
  int rc = std::system(cmd.str().c_str());
  std::ifstream out((tmp.path / "loadgen.out").string());
  std::string text((std::istreambuf_iterator<char>(out)), {});
  INFO(text);
  REQUIRE(rc == 0);
  std::ifstream js(json);
  std::string summary((std::istreambuf_iterator<char>(js)), {});
  CHECK(summary.find("\"seed\"") != std::string::npos);
  CHECK(e->ledger().last_seq() > 200);  // 200 enrolls and some earns
  std::ostringstream ctl;
  ctl << LOYALTYCTL_BIN << " --port " << e->port() << " verify > /dev/null";
  CHECK(std::system(ctl.str().c_str()) == 0);
}

TEST_CASE("the load generator drives a mix of every operation against the retail program and the ledger verifies",
          "[io][server][tools]") {
  temp_dir tmp;
  engine_options o;
  o.settings = test_settings(tmp.path);
  std::vector<config_error> errors;
  auto prog = load_program(LOYALTY_SOURCE_DIR "/config/examples/retail.toml", errors);
  REQUIRE(prog);
  o.prog = std::move(*prog);
  std::string err;
  auto e = engine::start(std::move(o), err);
  INFO(err);
  REQUIRE(e);
  auto json = (tmp.path / "mix.json").string();
  std::ostringstream cmd;
  cmd << LOYALTY_LOADGEN_BIN << " --port " << e->port()
      << " --members 100 --connections 2 --depth 8 --duration 2 --seed 11 --items 3 --channel app"
      << " --mix earn=40,redeem=5,event=5,hold=10,refund=10,reward=5,transfer=10,balance=10,history=5"
      << " --json " << json << " > " << (tmp.path / "mix.out").string() << " 2>&1";
  int rc = std::system(cmd.str().c_str());
  std::ifstream out((tmp.path / "mix.out").string());
  std::string text((std::istreambuf_iterator<char>(out)), {});
  INFO(text);
  REQUIRE(rc == 0);
  std::ifstream js(json);
  std::string summary((std::istreambuf_iterator<char>(js)), {});
  for (const char* op : {"earn", "redeem", "event", "hold", "capture", "release", "refund", "redeem_reward",
                         "transfer", "balance", "history"}) {
    INFO(op);
    CHECK(summary.find(std::string("\"") + op + "\": {\"ok\": ") != std::string::npos);
  }
  // Only refusals the workload provokes on purpose: nothing internal.
  CHECK(summary.find("internal_error") == std::string::npos);
  CHECK(summary.find("unavailable") == std::string::npos);
  auto v = e->ledger().verify();
  std::string why;
  for (const auto& p : v.problems)
    why += p + "\n";
  INFO(why);
  CHECK(v.ok);
}

namespace {

// A loyaltyd process of our own (tests/engine_process.hpp), so it can be
// killed with SIGKILL.
loyalty::test::engine_process_options process_options(
  const std::filesystem::path& dir, const std::string& program = LOYALTY_SOURCE_DIR "/config/examples/retail.toml") {
  loyalty::test::engine_process_options o;
  o.binary = LOYALTYD_BIN;
  o.dir = dir;
  o.program = program;
  return o;
}

} // namespace

TEST_CASE("every earn acknowledged before kill -9 is in the ledger after restart, and retries are safe",
          "[io][server][crash]") {
  temp_dir tmp;
  constexpr int members = 20, earns = 3000;
  std::map<std::string, response> acked;
  {
    loyalty::test::engine_process eng(process_options(tmp.path));
    std::string err;
    auto c = client::connect("127.0.0.1", eng.port(), err);
    REQUIRE(c);
    REQUIRE(c->hello().ok());
    for (int m = 1; m <= members; ++m)
      REQUIRE(c->enroll(static_cast<std::uint64_t>(m), "acme").ok());
    std::map<std::uint64_t, std::string> txn_of;
    for (int i = 0; i < earns; ++i) {
      auto txn = "k-" + std::to_string(i);
      txn_of[c->send(earn_req(1 + i % members, 100 + i, txn))] = txn;
    }
    for (int i = 0; i < earns / 3; ++i) {  // read a third of the answers, then crash
      auto r = receive_one(*c);
      REQUIRE(r.ok());
      acked[txn_of[r.id]] = r;
    }
    eng.kill9();
  }
  loyalty::test::engine_process eng(process_options(tmp.path));
  std::string err;
  auto c = client::connect("127.0.0.1", eng.port(), err);
  REQUIRE(c);
  REQUIRE(c->hello().ok());
  std::int64_t total = 0;
  for (int i = 0; i < earns; ++i) {
    auto txn = "k-" + std::to_string(i);
    auto r = c->call(earn_req(1 + i % members, 100 + i, txn));
    REQUIRE(r.ok());
    total += r.points;
    if (auto it = acked.find(txn); it != acked.end()) {
      CHECK(r.replayed);
      CHECK(r.seq == it->second.seq);
      CHECK(r.balance == it->second.balance);
    }
  }
  std::int64_t balances = 0;
  for (int m = 1; m <= members; ++m)
    balances += c->balance(static_cast<std::uint64_t>(m)).balance;
  CHECK(balances == total);  // every earn exactly once
  auto v = c->verify();
  REQUIRE(v.ok());
  CHECK(v.verify.valid);
  CHECK(v.verify.txn_ids == static_cast<std::uint64_t>(earns));
}

TEST_CASE("SIGHUP reloads the program file: a valid one becomes the next version, an invalid one is refused",
          "[io][server][versions]") {
  temp_dir tmp;
  const auto program = (tmp.path / "program.toml").string();
  std::string text;
  {
    std::ifstream in(LOYALTY_SOURCE_DIR "/config/examples/retail.toml");
    text.assign((std::istreambuf_iterator<char>(in)), {});
  }
  std::ofstream(program) << text;
  loyalty::test::engine_process eng(process_options(tmp.path, program));
  std::string err;
  auto c = client::connect("127.0.0.1", eng.port(), err);
  REQUIRE(c);
  REQUIRE(c->hello().ok());
  REQUIRE(c->enroll(1, "acme").ok());
  auto version_of = [&](const std::string& txn) {
    request r;
    r.op = opcode::explain;
    r.txn = txn;
    return c->call(r).policy_version;
  };
  auto earn = [&](const std::string& txn) {
    auto r = c->call(earn_req(1, 10000, txn));
    REQUIRE(r.ok());
    return r.points;
  };
  // Whether the engine logs a line with `what` and `more` (bounded wait).
  auto logged = [&](const std::string& what, const std::string& more = "") {
    for (int i = 0; i < 2000; ++i) {
      std::ifstream in(eng.stderr_file());
      for (std::string line; std::getline(in, line);)
        if (line.find(what) != std::string::npos && line.find(more) != std::string::npos)
          return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  };
  const auto base = earn("h-1");
  CHECK(version_of("h-1") == 1);
  // An invalid program: the SIGHUP is handled (the reload tried, the file
  // read and refused, the refusal logged) and changes nothing.
  std::ofstream(program) << text << "\n[bogus]\n";
  eng.signal(SIGHUP);
  CHECK(logged("SIGHUP: program not reloaded: ", "unknown key 'bogus'"));  // what is wrong, and where
  CHECK(earn("h-2") == base);
  CHECK(version_of("h-2") == 1);
  // Acme now earns 2 points per 1.00 instead of 1.
  auto doubled = text;
  auto at = doubled.find("earn_rate = { num = 1, den = 100 }");
  REQUIRE(at != std::string::npos);
  doubled.replace(at, 34, "earn_rate = { num = 2, den = 100 }");
  std::ofstream(program) << doubled;
  eng.signal(SIGHUP);
  REQUIRE(logged("is now version 2"));
  CHECK(earn("h-3") == 2 * base);
  CHECK(version_of("h-3") == 2);
  auto verify = c->verify();
  CHECK(verify.verify.valid);
}

namespace {
extern "C" void on_tick(int) {}
} // namespace

TEST_CASE("the blocking client reads on through signals that interrupt its calls", "[io][server][client]") {
  // A timer signal without SA_RESTART (as libFuzzer's, or a profiler's)
  // makes blocking connect, read and write fail with EINTR: the client must
  // carry on, not report a broken connection.
  temp_dir tmp;
  auto e = start_engine(test_settings(tmp.path));
  struct sigaction sa {}, old {};
  sa.sa_handler = on_tick;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART
  REQUIRE(sigaction(SIGALRM, &sa, &old) == 0);
  // Every 200 us, to this thread only (the engine's threads run here too).
  sigevent sev{};
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = SIGALRM;
  sev._sigev_un._tid = static_cast<pid_t>(::syscall(SYS_gettid));
  timer_t timer{};
  REQUIRE(timer_create(CLOCK_MONOTONIC, &sev, &timer) == 0);
  const itimerspec every{{0, 200'000}, {0, 200'000}};
  REQUIRE(timer_settime(timer, 0, &every, nullptr) == 0);
  int ok = 0;
  for (int i = 0; i < 50; ++i) {
    std::string err;
    auto c = client::connect("127.0.0.1", e->port(), err);
    INFO(err);
    REQUIRE(c);
    REQUIRE(c->hello().ok());
    if (i == 0)
      REQUIRE(c->enroll(1, "acme").ok());
    for (int k = 0; k < 20; ++k)
      ok += c->balance(1).ok() ? 1 : 0;
  }
  timer_delete(timer);
  sigaction(SIGALRM, &old, nullptr);
  CHECK(ok == 1000);
}

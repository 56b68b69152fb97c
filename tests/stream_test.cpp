// Issue 7: consent and the event stream, over real TCP against a real
// engine (tests/engine_rig.hpp): consent recorded in the ledger and shown by
// balance; subscribers that disconnect and resume (also across a restart)
// without gaps or duplicates; consent, brand and type filters; tier and
// expiry events; a subscriber that does not read never holds up ingestion
// and loses nothing; loyaltyctl tail.
#include "command.hpp"
#include "engine_rig.hpp"

#include "config/consent.hpp"
#include "io/wire/codec.hpp"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <map>
#include <set>
#include <sstream>

using namespace loyalty;
using namespace loyalty::io;

namespace {

constexpr std::uint64_t t0 = 1'772'452'800'000'000ull;  // 2026-03-02T12:00:00Z
constexpr std::uint64_t day = 86'400'000'000ull;
const std::uint32_t email = consent_bit("email");
const std::uint32_t sms = consent_bit("sms");

// 1 point per 1.00 EUR; silver from 300 lifetime points; lots expire 90
// days after they were earned; the sweep notices lots 30 days ahead.
constexpr const char* program_toml = R"(
[program]
name = "stream"
currency = "EUR"
minor_units = 2
utc_offset_minutes = 0

[[brands]]
id = 1
code = "shop"
name = "Shop"
earn_rate = { num = 1, den = 100 }

[[brands]]
id = 2
code = "web"
name = "Web"
earn_rate = { num = 1, den = 100 }

[tier_policy]
metric = "qualifying_points"
window_days = 365
review = "none"

[[tiers]]
name = "member"
threshold = 0
multiplier = { num = 1, den = 1 }

[[tiers]]
name = "silver"
threshold = 300
multiplier = { num = 1, den = 1 }

[lifecycle]
expiry_days = 90
expiry_notice_days = 30
hold_ttl_default_s = 60
)";

struct rig : test::engine_rig {
  explicit rig(const char* what) : engine_rig(what, program_toml, t0) {}

  void enroll(std::uint64_t m, const std::string& brand = "shop") { REQUIRE(c->enroll(m, brand).ok()); }
  response earn(const std::string& txn, std::uint64_t m, std::int64_t cents, const std::string& brand = "shop") {
    auto r = c->earn(txn, m, brand, cents, "EUR", clock.now_us());
    REQUIRE(r.ok());
    return r;
  }
};

// Reads events frames from a subscribed client until the stream has passed
// entry `through`; returns the `next` of the last frame.
std::uint64_t read_through(client& s, std::uint64_t through, std::vector<stream_event>& out) {
  std::uint64_t next = 0;
  while (next <= through) {
    response r;
    std::string err;
    INFO(err);
    REQUIRE(s.receive(r, err, std::chrono::seconds(20)));
    REQUIRE(r.ok());
    REQUIRE(r.op == opcode::subscribe);
    REQUIRE(r.next >= next);
    for (auto& e : r.events)
      out.push_back(std::move(e));
    next = r.next;
  }
  return next;
}

// Every (seq, type) of a set of events, with how often it was seen.
std::map<std::pair<std::uint64_t, std::string>, int> keys_of(const std::vector<stream_event>& events) {
  std::map<std::pair<std::uint64_t, std::string>, int> k;
  for (const auto& e : events)
    ++k[{e.seq, e.type}];
  return k;
}

} // namespace

TEST_CASE("consent is journaled with its source and shown by balance", "[stream][consent]") {
  rig g("consent");
  g.enroll(7);
  auto r = g.c->consent("c-1", 7, email | sms, email | sms, "web-form");
  REQUIRE(r.ok());
  CHECK(r.consents == (email | sms));
  CHECK_FALSE(r.replayed);
  const auto first_seq = r.seq;

  // Withdraw sms only; email stays.
  r = g.c->consent("c-2", 7, sms, 0, "app");
  REQUIRE(r.ok());
  CHECK(r.consents == email);
  auto b = g.c->balance(7);
  REQUIRE(b.ok());
  CHECK(b.consents == email);

  // A retry is a replay; the same txn id with other content is refused.
  const auto last = g.eng->ledger().last_seq();
  r = g.c->consent("c-2", 7, sms, 0, "app");
  REQUIRE(r.ok());
  CHECK(r.replayed);
  CHECK(g.c->consent("c-2", 7, sms, sms, "app").code == errc::txn_id_conflict);
  CHECK(g.c->consent("c-2", 7, sms, 0, "pos").code == errc::txn_id_conflict);
  CHECK(g.eng->ledger().last_seq() == last);

  // Bad requests change nothing.
  CHECK(g.c->consent("c-3", 7, 0, 0, "app").code == errc::invalid_argument);     // no channel
  CHECK(g.c->consent("c-4", 7, email, 0, "").code == errc::invalid_argument);   // no source
  CHECK(g.c->consent("c-5", 99, email, 0, "app").code == errc::unknown_member);
  auto reader = g.connect(test::read_key);
  CHECK(reader->consent("c-6", 7, email, 0, "app").code == errc::not_authorized);
  CHECK(g.eng->ledger().last_seq() == last);

  // The entry says what was set, where, by which key; explain shows it.
  auto x = g.c->call([&] {
    request q;
    q.op = opcode::explain;
    q.txn = "c-1";
    return q;
  }());
  REQUIRE(x.ok());
  CHECK(x.seq == first_seq);
  REQUIRE(x.entries.size() == 1);
  CHECK(x.entries[0].kind == "consent");
  CHECK(x.key_id == 1);

  // The ledger is the truth: a restart rebuilds it, and verify checks the
  // consents table against the entries.
  g.check_verify();
  g.restart();
  b = g.c->balance(7);
  REQUIRE(b.ok());
  CHECK(b.consents == email);
  g.check_verify();
}

TEST_CASE("a subscriber that disconnects resumes without gaps or duplicates", "[stream]") {
  rig g("resume");
  for (std::uint64_t m = 1; m <= 5; ++m)
    g.enroll(m);
  for (int i = 0; i < 40; ++i)
    g.earn("e-" + std::to_string(i), 1 + static_cast<std::uint64_t>(i) % 5, 1000 + i);
  const auto through1 = g.eng->ledger().last_seq();

  // The whole journal, read in one go: the reference.
  std::vector<stream_event> all;
  {
    auto s = g.connect(test::admin_key);
    auto first = s->subscribe(1);
    REQUIRE(first.ok());
    CHECK(first.seq == through1);
    CHECK(first.next == 1);
    read_through(*s, through1, all);
  }
  REQUIRE(all.size() >= through1);  // every entry has an event here (no tier_review entries)
  for (std::size_t i = 1; i < all.size(); ++i)
    REQUIRE(all[i - 1].seq <= all[i].seq);

  // A consumer processes the events up to the middle of the journal (in
  // the middle of a frame: it crashes there), remembers the last seq it
  // processed, and goes away.
  std::vector<stream_event> got;
  const std::uint64_t last_done = through1 / 2;
  {
    auto s = g.connect(test::admin_key);
    REQUIRE(s->subscribe(1).ok());
    std::vector<stream_event> read;
    read_through(*s, last_done, read);
    for (auto& e : read)
      if (e.seq <= last_done)
        got.push_back(std::move(e));
  }
  // More activity while it is away, and an engine restart.
  for (int i = 40; i < 60; ++i)
    g.earn("e-" + std::to_string(i), 1 + static_cast<std::uint64_t>(i) % 5, 1000 + i);
  g.restart();
  for (int i = 60; i < 70; ++i)
    g.earn("e-" + std::to_string(i), 1 + static_cast<std::uint64_t>(i) % 5, 1000 + i);
  const auto through2 = g.eng->ledger().last_seq();
  {
    auto s = g.connect(test::admin_key);
    REQUIRE(s->subscribe(last_done + 1).ok());
    read_through(*s, through2, got);
  }
  // Exactly once each, and the same as a fresh full read.
  const auto k = keys_of(got);
  for (const auto& [key, n] : k) {
    INFO("seq " << key.first << " " << key.second);
    CHECK(n == 1);
  }
  std::vector<stream_event> all2;
  {
    auto s = g.connect(test::admin_key);
    REQUIRE(s->subscribe(1).ok());
    read_through(*s, through2, all2);
  }
  CHECK(k == keys_of(all2));
  std::set<std::uint64_t> seqs;
  for (const auto& e : all2)
    seqs.insert(e.seq);
  CHECK(seqs.size() == through2);  // no entry without its event
  CHECK(*seqs.rbegin() == through2);
}

TEST_CASE("events arrive as entries commit and describe them", "[stream]") {
  rig g("live");
  g.enroll(1);
  auto s = g.connect(test::admin_key);
  auto first = s->subscribe();  // from the next entry
  REQUIRE(first.ok());
  const auto from = first.next;
  CHECK(from == g.eng->ledger().last_seq() + 1);

  auto e1 = g.earn("live-1", 1, 25'000);  // 250 points
  auto e2 = g.earn("live-2", 1, 10'000);  // 100 more: silver at 300
  std::vector<stream_event> ev;
  read_through(*s, e2.seq, ev);
  REQUIRE(ev.size() == 3);
  CHECK(ev[0].seq == e1.seq);
  CHECK(ev[0].type == "points_earned");
  CHECK(ev[0].entry == "earn");
  CHECK(ev[0].txn == "live-1");
  CHECK(ev[0].member == 1);
  CHECK(ev[0].brand == "shop");
  CHECK(ev[0].points == 250);
  CHECK(ev[0].balance == e1.balance);
  CHECK(ev[0].amount == 25'000);
  CHECK(ev[0].tier == "member");
  CHECK(ev[1].seq == e2.seq);
  CHECK(ev[1].type == "points_earned");
  CHECK(ev[1].tier == "silver");
  CHECK(ev[2].seq == e2.seq);
  CHECK(ev[2].type == "tier_changed");
  CHECK(ev[2].previous_tier == "member");
  CHECK(ev[2].tier == "silver");

  // A hold that runs out: hold_expired from the engine's own entry.
  auto h = g.c->hold("h-1", 1, 50);
  REQUIRE(h.ok());
  g.clock.advance(120'000'000);  // past the 60 s TTL
  REQUIRE(g.admin->expire(1).ok());
  const auto newest = g.eng->ledger().last_seq();
  std::vector<stream_event> more;
  read_through(*s, newest, more);
  REQUIRE(more.size() >= 2);
  CHECK(more[0].type == "points_held");
  CHECK(more[0].hold == h.hold);
  CHECK(more[1].type == "hold_expired");
  CHECK(more[1].hold == h.hold);
  CHECK(more[1].txn.empty());
}

TEST_CASE("the expiry sweep notices points before they expire", "[stream]") {
  rig g("notice");
  g.enroll(1);
  g.enroll(2);
  g.earn("n-1", 1, 10'000);  // 100 points, expire at t0 + 90 days
  g.clock.advance(20 * day);
  g.earn("n-2", 1, 5'000);   // 50 points, expire 20 days later
  g.earn("n-3", 2, 7'000);
  auto s = g.connect(test::admin_key);
  REQUIRE(s->subscribe(0, 1u << 13).ok());  // points_expiring only

  // 55 days in: nothing within 30 days yet.
  g.clock.set(t0 + 55 * day);
  REQUIRE(g.admin->expire_all().ok());
  // 65 days in: the first lots of both members are within 30 days.
  g.clock.set(t0 + 65 * day);
  REQUIRE(g.admin->expire_all().ok());
  std::vector<stream_event> ev;
  read_through(*s, g.eng->ledger().last_seq(), ev);
  REQUIRE(ev.size() == 1);  // member 2's lot expires at 110 days: not yet
  CHECK(ev[0].member == 1);
  CHECK(ev[0].entry == "expiry_notice");
  CHECK(ev[0].points == 100);
  REQUIRE(ev[0].expiring.size() == 1);
  CHECK(ev[0].expiring[0].points == 100);
  CHECK(ev[0].expiring[0].expires_at_us == t0 + 90 * day);
  CHECK(ev[0].expiring[0].brand == "shop");

  // A second sweep notices nothing twice; later lots come when they are due.
  REQUIRE(g.admin->expire_all().ok());
  g.clock.set(t0 + 85 * day);
  REQUIRE(g.admin->expire_all().ok());
  std::vector<stream_event> later;
  read_through(*s, g.eng->ledger().last_seq(), later);
  REQUIRE(later.size() == 2);
  std::set<std::uint64_t> members{later[0].member, later[1].member};
  CHECK(members == std::set<std::uint64_t>{1, 2});
  for (const auto& e : later) {
    REQUIRE(e.expiring.size() == 1);
    CHECK(e.expiring[0].points == (e.member == 1 ? 50 : 70));
  }
  g.check_verify();
}

TEST_CASE("a subscriber may ask for members who consented to a channel", "[stream][consent]") {
  rig g("consent-filter");
  for (std::uint64_t m = 1; m <= 3; ++m)
    g.enroll(m);
  REQUIRE(g.c->consent("a-email", 1, email, email, "web").ok());  // member 1: email
  REQUIRE(g.c->consent("c-email", 3, email, email, "web").ok());  // member 3: email, then not
  auto a1 = g.earn("a-1", 1, 1000);
  auto b1 = g.earn("b-1", 2, 1000);  // member 2 never consented
  auto c1 = g.earn("c-1", 3, 1000);
  auto off = g.c->consent("c-off", 3, email, 0, "call-centre");
  REQUIRE(off.ok());
  auto c2 = g.earn("c-2", 3, 1000);
  auto a2 = g.earn("a-2", 1, 1000);

  auto s = g.connect(test::admin_key);
  REQUIRE(s->subscribe(1, 0, email).ok());
  std::vector<stream_event> ev;
  read_through(*s, g.eng->ledger().last_seq(), ev);
  std::set<std::uint64_t> seqs;
  for (const auto& e : ev) {
    CHECK((e.consents & email) != 0);  // each carries the member's consent as of the event
    seqs.insert(e.seq);
  }
  CHECK(seqs.count(a1.seq) == 1);
  CHECK(seqs.count(a2.seq) == 1);
  CHECK(seqs.count(c1.seq) == 1);  // member 3 consented then
  CHECK(seqs.count(b1.seq) == 0);
  CHECK(seqs.count(off.seq) == 0);  // after it, member 3 no longer consents
  CHECK(seqs.count(c2.seq) == 0);

  // The consent change is itself an event, with what was set and where.
  auto all = g.connect(test::admin_key);
  REQUIRE(all->subscribe(1, 1u << 12).ok());  // consent_changed only
  std::vector<stream_event> changes;
  read_through(*all, g.eng->ledger().last_seq(), changes);
  REQUIRE(changes.size() == 3);
  CHECK(changes[2].seq == off.seq);
  CHECK(changes[2].member == 3);
  CHECK(changes[2].changed == email);
  CHECK(changes[2].consents == 0);
  CHECK(changes[2].source == "call-centre");
}

TEST_CASE("subscribe refuses what it cannot do and honours key scopes", "[stream]") {
  rig g("sub-errors");
  g.enroll(1, "shop");
  g.enroll(2, "web");
  g.earn("s-1", 1, 1000, "shop");
  g.earn("w-1", 2, 1000, "web");
  const auto newest = g.eng->ledger().last_seq();
  auto s = g.connect(test::admin_key);
  CHECK(s->subscribe(newest + 2).code == errc::invalid_argument);
  CHECK(s->subscribe(0, 0, 0, "nope").code == errc::unknown_brand);
  request batch;
  batch.op = opcode::batch;
  request sub;
  sub.op = opcode::subscribe;
  batch.ops.push_back(sub);
  auto br = s->call(batch);
  REQUIRE(br.ok());
  REQUIRE(br.results.size() == 1);
  CHECK(br.results[0].code == errc::invalid_argument);
  REQUIRE(s->subscribe(newest + 1).ok());
  CHECK(s->subscribe(1).code == errc::invalid_argument);  // one subscription per connection

  // A brand key reads its own brand's events only.
  auto shop = g.connect(test::shop_key);
  CHECK(shop->subscribe(1, 0, 0, "web").code == errc::not_authorized);
  auto shop2 = g.connect(test::shop_key);
  REQUIRE(shop2->subscribe(1).ok());
  std::vector<stream_event> ev;
  read_through(*shop2, newest, ev);
  REQUIRE_FALSE(ev.empty());
  for (const auto& e : ev)
    CHECK(e.brand == "shop");
}

namespace {

// A raw loopback connection with a tiny receive buffer: a subscriber that
// stops reading fills it at once.
struct raw_conn {
  int fd = -1;
  explicit raw_conn(std::uint16_t port) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    int small = 4096;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  }
  ~raw_conn() { ::close(fd); }
  void send(const request& r) {
    std::vector<char> out;
    encode_request(out, r);
    REQUIRE(::send(fd, out.data(), out.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(out.size()));
  }
  bool read_exact(char* p, std::size_t n) {
    while (n > 0) {
      auto got = ::recv(fd, p, n, 0);
      if (got <= 0)
        return false;
      p += got;
      n -= static_cast<std::size_t>(got);
    }
    return true;
  }
  response receive() {
    unsigned char h[4];
    REQUIRE(read_exact(reinterpret_cast<char*>(h), 4));
    std::vector<char> body(read_be32(h));
    REQUIRE(read_exact(body.data(), body.size()));
    response r;
    std::string err;
    REQUIRE(decode_response(body.data(), body.size(), r, err));
    return r;
  }
};

std::uint64_t stat_of(const response& stats, const std::string& name) {
  for (const auto& [k, v] : stats.stats)
    if (k == name)
      return v;
  FAIL("no stat " << name);
  return 0;
}

} // namespace

TEST_CASE("a subscriber that stops reading holds up nothing and loses nothing", "[stream][backpressure]") {
  rig g("backpressure");
  constexpr std::uint64_t members = 50;
  for (std::uint64_t m = 1; m <= members; ++m)
    g.enroll(m);
  raw_conn sub(g.eng->port());
  request hello;
  hello.op = opcode::hello;
  hello.id = 1;
  hello.version = 1;
  hello.key = test::admin_key;
  sub.send(hello);
  REQUIRE(sub.receive().ok());
  request s;
  s.op = opcode::subscribe;
  s.id = 2;
  s.from_seq = g.eng->ledger().last_seq() + 1;
  sub.send(s);
  auto first = sub.receive();
  REQUIRE(first.ok());
  const auto from = first.next;

  // 20,000 earns in batches of 100 while the subscriber reads nothing: every
  // one is answered (ingestion does not wait for the stream).
  constexpr int total = 20'000;
  int answered = 0;
  for (int b = 0; b < total / 100; ++b) {
    request batch;
    batch.op = opcode::batch;
    for (int i = 0; i < 100; ++i) {
      const int n = b * 100 + i;
      request e;
      e.op = opcode::earn;
      e.txn = "bp-" + std::to_string(n);
      e.member = 1 + static_cast<std::uint64_t>(n) % members;
      e.brand = "shop";
      e.amount = 100;
      e.currency = "EUR";
      e.occurred_at_us = g.clock.now_us();
      batch.ops.push_back(std::move(e));
    }
    auto r = g.c->call(std::move(batch));
    REQUIRE(r.ok());
    for (const auto& x : r.results)
      answered += x.ok() ? 1 : 0;
  }
  CHECK(answered == total);
  const auto newest = g.eng->ledger().last_seq();
  // The stream stopped reading the journal once its output backed up: far
  // fewer events were encoded than committed (the rest wait in the ledger).
  const auto sent = stat_of(g.c->stats(), "stream_events");
  INFO("events encoded while the subscriber read nothing: " << sent);
  CHECK(sent < static_cast<std::uint64_t>(total) / 2);

  // It reads now, and gets every entry, in order, once.
  std::uint64_t expect = from;
  std::uint64_t next = from;
  while (next <= newest) {
    auto r = sub.receive();
    REQUIRE(r.ok());
    for (const auto& e : r.events) {
      if (e.type == "tier_changed")
        continue;
      REQUIRE(e.seq == expect);
      ++expect;
    }
    next = r.next;
  }
  CHECK(expect == newest + 1);
}

TEST_CASE("loyaltyctl tail prints the events as JSON lines", "[stream][ctl]") {
  rig g("tail");
  g.enroll(1);
  g.earn("t-1", 1, 1234);
  REQUIRE(g.c->consent("t-c", 1, email, email, "pos").ok());
  const auto newest = g.eng->ledger().last_seq();
  const std::string cmd = std::string(LOYALTYCTL_BIN) + " --port " + std::to_string(g.eng->port()) +
                          " --key " + test::admin_key + " tail --from 1 --no-follow 2>&1";
  int status = -1;
  const std::string out = test::run_command(cmd, status);
  INFO(out);
  CHECK(status == 0);
  std::istringstream lines(out);
  std::string line;
  std::vector<std::string> got;
  while (std::getline(lines, line))
    got.push_back(line);
  REQUIRE(got.size() == newest);  // enroll, earn, consent
  CHECK(got[0].find("\"type\":\"member_enrolled\"") != std::string::npos);
  CHECK(got[1].find("\"type\":\"points_earned\"") != std::string::npos);
  CHECK(got[1].find("\"txn\":\"t-1\"") != std::string::npos);
  CHECK(got[1].find("\"points\":12,") != std::string::npos);
  CHECK(got[2].find("\"type\":\"consent_changed\"") != std::string::npos);
  CHECK(got[2].find("\"consents\":[\"email\"]") != std::string::npos);
  CHECK(got[2].find("\"source\":\"pos\"") != std::string::npos);
}

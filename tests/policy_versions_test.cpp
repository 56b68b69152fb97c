// Program versions over real TCP: every version the engine runs is recorded
// in the ledger with its SHA-256; every entry names the version it was
// evaluated under; `reload` (admin) validates the program file first and
// refuses an invalid one with its errors, keeping the running version; and
// reloads while clients post without pause.
#include "engine_rig.hpp"

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <thread>
#include <unordered_map>

using namespace loyalty;
using namespace loyalty::io;

namespace {

constexpr std::uint64_t t0 = 1'772'452'800'000'000ull;

std::string program_with_rate(int num) {
  return R"(
[program]
name = "versions"
currency = "EUR"

[[brands]]
id = 1
code = "shop"
earn_rate = { num = )" + std::to_string(num) + R"(, den = 100 }

[[tiers]]
name = "member"
threshold = 0
multiplier = { num = 1, den = 1 }
)";
}

request explain_of(const std::string& txn) {
  request r;
  r.op = opcode::explain;
  r.txn = txn;
  return r;
}

response reload(client& c) {
  request r;
  r.op = opcode::reload;
  return c.call(r);
}

} // namespace

TEST_CASE("a reload makes a new version; entries name the version they were evaluated under", "[versions]") {
  test::engine_rig g("versions", program_with_rate(1), t0);
  CHECK(g.eng->policy_version() == 1);
  REQUIRE(g.c->enroll(1, "shop").ok());
  auto before = g.c->earn("v-1", 1, "shop", 10000, "EUR", t0);
  REQUIRE(before.ok());
  CHECK(before.points == 100);

  // The operator raises the rate to 3 points per 1.00 and reloads.
  std::ofstream(g.dir.path / "program.toml") << program_with_rate(3);
  auto r = reload(*g.admin);
  INFO(r.message);
  REQUIRE(r.ok());
  CHECK(r.policy_version == 2);
  auto after = g.c->earn("v-2", 1, "shop", 10000, "EUR", t0);
  REQUIRE(after.ok());
  CHECK(after.points == 300);

  CHECK(g.c->call(explain_of("v-1")).policy_version == 1);
  CHECK(g.c->call(explain_of("v-2")).policy_version == 2);

  // Recorded in the ledger with the hash of each version's text.
  auto versions = g.eng->ledger().policies();
  REQUIRE(versions.size() == 2);
  CHECK(versions[0].first == 1);
  CHECK(versions[1].first == 2);
  const auto digest = key_sha256(program_with_rate(3));
  CHECK(std::equal(digest.begin(), digest.end(), versions[1].second.sha256));
  CHECK(versions[1].second.first_seq > before.seq);

  // Reloading the same text changes nothing.
  auto again = reload(*g.admin);
  REQUIRE(again.ok());
  CHECK(again.policy_version == 2);
  CHECK(g.eng->ledger().policies().size() == 2);
  g.check_verify();

  // A restart runs the same version; a retry of v-1 still answers its original result.
  g.restart();
  CHECK(g.eng->policy_version() == 2);
  auto retry = g.c->earn("v-1", 1, "shop", 10000, "EUR", t0);
  REQUIRE(retry.ok());
  CHECK(retry.replayed);
  CHECK(retry.points == 100);
}

TEST_CASE("an invalid program is refused with its errors and the running version stays", "[versions]") {
  test::engine_rig g("versions-bad", program_with_rate(1), t0);
  REQUIRE(g.c->enroll(1, "shop").ok());
  std::ofstream(g.dir.path / "program.toml") << program_with_rate(1) << "\n[[tiers]]\nname = \"gold\"\n";
  auto r = reload(*g.admin);
  CHECK(r.code == errc::invalid_program);
  CHECK(r.message.find("program.toml:") != std::string::npos);  // file:line of each error
  CHECK(g.eng->policy_version() == 1);
  CHECK(g.eng->ledger().policies().size() == 1);
  auto earn = g.c->earn("b-1", 1, "shop", 10000, "EUR", t0);
  REQUIRE(earn.ok());
  CHECK(earn.points == 100);
  CHECK(g.c->call(explain_of("b-1")).policy_version == 1);
  // Only an admin key may reload.
  CHECK(reload(*g.connect(test::shop_key)).code == errc::not_authorized);
  CHECK(reload(*g.connect(test::read_key)).code == errc::not_authorized);
  // A program without a brand a key needs is refused too.
  std::ofstream(g.dir.path / "program.toml") << "\n" << program_with_rate(2);
  std::string text = program_with_rate(2);
  text.replace(text.find("\"shop\""), 6, "\"store\"");
  std::ofstream(g.dir.path / "program.toml") << text;
  auto no_brand = reload(*g.admin);
  CHECK(no_brand.code == errc::invalid_program);
  CHECK(no_brand.message.find("shop") != std::string::npos);
  CHECK(g.eng->policy_version() == 1);
  g.check_verify();
}

namespace {

// One request of the load and its answer.
struct posted {
  bool redeem = false;
  std::string txn;
  std::uint64_t member = 0;
  std::int64_t amount = 0;  // earn: minor units; redeem: points
  response answer;
};

// A client that keeps `depth` earns and redeems in flight on its own
// connection until `stop`, then collects the answers still due. Runs on a
// thread of its own: it records what went wrong instead of asserting
// (Catch2's assertions are for the test's thread).
struct load_client {
  std::unique_ptr<client> c;
  int name = 0;
  std::vector<posted> done;
  std::string failure;

  void run(const std::atomic<bool>& stop, std::atomic<std::uint64_t>& answered, std::uint64_t members) {
    constexpr std::size_t depth = 8;
    std::unordered_map<std::uint64_t, posted> inflight;
    std::uint64_t k = 0;
    try {
      while (!stop.load() || !inflight.empty()) {
        while (!stop.load() && inflight.size() < depth) {
          posted p;
          p.member = 1 + (k * 7 + static_cast<std::uint64_t>(name)) % members;
          p.redeem = k % 5 == 4;
          p.txn = "load-" + std::to_string(name) + "-" + std::to_string(k);
          request r;
          r.member = p.member;
          r.txn = p.txn;
          if (p.redeem) {
            p.amount = 5;
            r.op = opcode::redeem;
            r.points = p.amount;
          } else {
            p.amount = 100 * static_cast<std::int64_t>(1 + k % 50) + static_cast<std::int64_t>(k % 97);
            r.op = opcode::earn;
            r.brand = "shop";
            r.amount = p.amount;
            r.currency = "EUR";
            r.occurred_at_us = t0;
          }
          inflight.emplace(c->send(r), std::move(p));
          ++k;
        }
        response a;
        std::string err;
        if (!c->receive(a, err, std::chrono::seconds(30))) {
          failure = "client " + std::to_string(name) + ": " + err;
          return;
        }
        auto it = inflight.find(a.id);
        if (it == inflight.end()) {
          failure = "client " + std::to_string(name) + ": an answer with an id it never sent or already had: " +
                    std::to_string(a.id);
          return;
        }
        it->second.answer = std::move(a);
        done.push_back(std::move(it->second));
        inflight.erase(it);
        ++answered;
      }
    } catch (const std::exception& e) {
      failure = "client " + std::to_string(name) + ": " + e.what();
    }
  }
};

std::vector<journal_entry> whole_journal(client& c) {
  std::vector<journal_entry> all;
  std::uint64_t from = 1;
  do {
    auto page = c.journal(from, journal_limit_max);
    REQUIRE(page.ok());
    all.insert(all.end(), page.journal.begin(), page.journal.end());
    from = page.next;
  } while (from != 0);
  return all;
}

} // namespace

TEST_CASE("reloads under a continuous load lose nothing and every entry earns what the version it names gives",
          "[versions]") {
  test::engine_rig g("versions-load", program_with_rate(1), t0);
  constexpr std::uint64_t members = 16;
  for (std::uint64_t m = 1; m <= members; ++m)
    REQUIRE(g.c->enroll(m, "shop").ok());
  std::map<std::uint32_t, std::int64_t> rate_of{{1, 1}};  // version -> points per 1.00

  std::vector<load_client> load(3);
  for (std::size_t i = 0; i < load.size(); ++i) {
    load[i].c = g.connect(test::admin_key);
    load[i].name = static_cast<int>(i);
  }
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> answered{0};
  std::vector<std::thread> threads;
  for (auto& l : load)
    threads.emplace_back([&] { l.run(stop, answered, members); });
  // Each reload comes after the load has had answers under the version
  // before it (more than the 24 requests in flight at a time).
  auto let_the_load_run = [&] {
    const auto until = answered.load() + 60;
    for (int i = 0; i < 6000 && answered.load() < until; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return answered.load() >= until;
  };
  constexpr std::uint32_t reloads = 12;
  bool loaded = let_the_load_run();
  for (std::uint32_t i = 1; i <= reloads && loaded; ++i) {
    const std::int64_t rate = 1 + i % 3;  // 2, 3, 1, 2, ...: each text differs from the one before
    std::ofstream(g.dir.path / "program.toml") << program_with_rate(static_cast<int>(rate));
    auto r = reload(*g.admin);
    INFO(r.message);
    REQUIRE(r.ok());
    REQUIRE(r.policy_version == i + 1);
    rate_of[i + 1] = rate;
    loaded = let_the_load_run();
  }
  stop.store(true);
  for (auto& t : threads)
    t.join();
  for (auto& l : load) {
    INFO(l.failure);
    CHECK(l.failure.empty());
  }
  REQUIRE(loaded);

  // Every version recorded once, in order, with the seq it starts at.
  const auto versions = g.eng->ledger().policies();
  REQUIRE(versions.size() == reloads + 1);
  std::map<std::uint32_t, std::uint64_t> first_seq;
  for (std::size_t i = 0; i < versions.size(); ++i) {
    CHECK(versions[i].first == i + 1);
    first_seq[versions[i].first] = versions[i].second.first_seq;
  }

  const auto journal = whole_journal(*g.c);
  std::map<std::string, const journal_entry*> by_txn;
  std::size_t with_txn = 0;
  for (const auto& e : journal) {
    if (e.entry.txn.empty())
      continue;
    ++with_txn;
    CHECK(by_txn.emplace(e.entry.txn, &e).second);  // each txn once
  }
  std::size_t ok = 0;
  std::map<std::uint64_t, std::int64_t> balance_of;
  std::map<std::uint32_t, std::size_t> earns_under;
  std::map<std::uint64_t, std::pair<std::uint64_t, std::uint32_t>> newest_of;  // member -> seq, version
  std::vector<const posted*> answers;
  for (const auto& l : load)
    for (const auto& p : l.done)
      answers.push_back(&p);
  std::sort(answers.begin(), answers.end(), [](auto* a, auto* b) { return a->answer.seq < b->answer.seq; });
  for (const auto* p : answers) {
    INFO(p->txn << ": " << to_string(p->answer.code) << " " << p->answer.message);
    const auto found = by_txn.find(p->txn);
    if (!p->answer.ok()) {
      // Refused: a documented error, and nothing posted.
      if (p->redeem)
        CHECK((p->answer.code == errc::insufficient_points || p->answer.code == errc::overloaded));
      else
        CHECK(p->answer.code == errc::overloaded);
      CHECK(found == by_txn.end());
      continue;
    }
    ++ok;
    REQUIRE(found != by_txn.end());
    const journal_entry& e = *found->second;
    CHECK(e.entry.seq == p->answer.seq);
    CHECK(e.member == p->member);
    const auto v = e.policy_version;
    REQUIRE(rate_of.count(v) == 1);
    CHECK(e.entry.seq >= first_seq[v]);  // evaluated under v: after v was recorded
    auto& newest = newest_of[p->member];
    CHECK(v >= newest.second);  // one member's entries never go back to an older version
    newest = {e.entry.seq, v};
    if (p->redeem) {
      CHECK(e.entry.points == -p->amount);
    } else {
      CHECK(p->answer.points == p->amount * rate_of[v] / 100);
      CHECK(e.entry.points == p->answer.points);
      ++earns_under[v];
    }
    balance_of[p->member] += e.entry.points;
  }
  CHECK(with_txn == ok);  // nothing posted that no answer said ok to
  CHECK(journal.size() == members + ok);
  for (const auto& [v, rate] : rate_of) {
    INFO("version " << v);
    CHECK(earns_under[v] > 0);  // the load ran under every version
  }
  for (std::uint64_t m = 1; m <= members; ++m) {
    auto b = g.c->balance(m);
    REQUIRE(b.ok());
    CHECK(b.balance == balance_of[m]);
  }
  g.check_verify();
}

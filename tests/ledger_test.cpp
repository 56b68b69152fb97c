// The ledger on a real LMDB environment in a temporary directory.
#include "ledger/ledger.hpp"

#include <lmdb.h>  // only to corrupt data behind the ledger's back

#include <catch2/catch.hpp>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>

using namespace loyalty;
using namespace loyalty::ledger;
using namespace std::chrono_literals;

namespace {

struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    char tmpl[] = "/tmp/loyalty-ledger-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~temp_dir() { std::filesystem::remove_all(path); }
};

struct collector final : completion_target {
  std::mutex mtx;
  std::condition_variable cv;
  std::vector<outcome> got;
  std::size_t calls = 0;
  void complete(std::vector<outcome>&& v) noexcept override {
    std::lock_guard<std::mutex> g(mtx);
    ++calls;
    for (auto& o : v)
      got.push_back(o);
    cv.notify_all();
  }
  outcome by_tag(std::uint64_t tag) {
    std::unique_lock<std::mutex> g(mtx);
    outcome found;
    REQUIRE(cv.wait_for(g, 20s, [&] {
      for (auto& o : got)
        if (o.tag == tag) {
          found = o;
          return true;
        }
      return false;
    }));
    return found;
  }
};

struct recording_owner final : op_owner {
  std::mutex mtx;
  std::vector<errc> rejections;
  void rejected(const op&, errc code) noexcept override {
    std::lock_guard<std::mutex> g(mtx);
    rejections.push_back(code);
  }
};

struct fixture {
  temp_dir tmp;
  manual_clock clock;
  std::shared_ptr<collector> out = std::make_shared<collector>();
  std::unique_ptr<class ledger> led;
  std::uint64_t tag = 1;
  // Newest lot id handed out per member: earns carry a lot_add of a fresh
  // id, redeems take from the newest lot, so the books fit the postings
  // (verify checks it). Ids of ops that were not posted leave gaps, which
  // the fold allows.
  std::map<std::uint64_t, std::uint32_t> last_lot;

  fixture() { reopen(); }

  void reopen(std::uint32_t window_us = 0, std::uint32_t checkpoint_accounts = 1000000, bool checkpoint_on_close = true) {
    led.reset();
    options o;
    o.dir = (tmp.path / "data").string();
    o.map_bytes = 1ull << 30;
    o.commit_window_us = window_us;
    o.checkpoint_accounts_max = checkpoint_accounts;
    o.checkpoint_on_close = checkpoint_on_close;
    o.clock = &clock;
    o.tier_of = [](std::int64_t l) { return l >= 1000 ? 1u : 0u; };
    std::string err;
    led = ledger::ledger::open(o, err);
    INFO(err);
    REQUIRE(led);
  }

  op enroll(std::uint64_t m, std::uint32_t brand = 1) {
    op o;
    o.kind = op_kind::enroll;
    o.entry = entry_kind::enroll;
    o.member_id = m;
    o.brand_id = brand;
    return o;
  }
  // An entry moving `points` from `from` to `to` (two postings).
  static op moving(entry_kind kind, std::uint64_t member, std::uint64_t from, std::uint64_t to, std::int64_t points,
                   std::string_view txn, std::uint64_t hash) {
    op o;
    o.kind = op_kind::post;
    o.entry = kind;
    o.member_id = member;
    o.brand_id = 1;
    o.set_txn(txn);
    o.request_hash = hash;
    o.points = points;
    o.posting_count = 2;
    o.postings[0] = {from, static_cast<std::uint64_t>(points), static_cast<std::uint32_t>(posting_side::debit), 0};
    o.postings[1] = {to, static_cast<std::uint64_t>(points), static_cast<std::uint32_t>(posting_side::credit), 0};
    return o;
  }
  op earn(std::uint64_t m, std::int64_t points, std::string_view txn, std::uint64_t hash = 1) {
    op o = moving(entry_kind::earn, m, account_id(account_kind::brand_issued, 1),
                  account_id(account_kind::member_points, m), points, txn, hash);
    o.details = {detail(detail_kind::lot_add, ++last_lot[m], points)};
    o.balance_delta = o.lifetime_delta = points;
    return o;
  }
  op redeem(std::uint64_t m, std::int64_t points, std::string_view txn, std::uint64_t hash = 2) {
    op o = moving(entry_kind::redeem, m, account_id(account_kind::member_points, m),
                  account_id(account_kind::brand_redeemed, 1), points, txn, hash);
    o.require_nonnegative = true;
    o.details = {detail(detail_kind::lot_take, last_lot[m], points)};
    o.balance_delta = -points;
    return o;
  }
  static entry_detail detail(detail_kind kind, std::uint32_t id, std::int64_t a, std::uint32_t aux = 0,
                             std::uint64_t b = 0, std::uint64_t c = 0, std::uint16_t flags = 0) {
    return entry_detail{static_cast<std::uint16_t>(kind), flags, id, 1, aux, a, b, c};
  }
  // Closes the ledger and changes its files behind its back, in one raw
  // LMDB write transaction, to test what verify and open make of it.
  void tamper(const std::function<void(MDB_txn*)>& change) {
    led.reset();
    MDB_env* env = nullptr;
    REQUIRE(mdb_env_create(&env) == 0);
    mdb_env_set_maxdbs(env, 8);
    REQUIRE(mdb_env_open(env, (tmp.path / "data").c_str(), 0, 0644) == 0);
    MDB_txn* txn = nullptr;
    REQUIRE(mdb_txn_begin(env, nullptr, 0, &txn) == 0);
    change(txn);
    REQUIRE(mdb_txn_commit(txn) == 0);
    mdb_env_close(env);
  }

  // Reopens, runs verify, which must fail, and returns its problems, one a line.
  std::string failed_verify() {
    reopen();
    auto rep = led->verify();
    CHECK_FALSE(rep.ok);
    std::string all;
    for (auto& p : rep.problems)
      all += p + "\n";
    return all;
  }

  outcome run(op o, std::shared_ptr<op_owner> owner = nullptr) {
    o.target = out;
    o.tag = tag++;
    o.owner = std::move(owner);
    auto t = o.tag;
    led->submit(std::move(o));
    return out->by_tag(t);
  }
};

} // namespace

TEST_CASE("an earn posts one balanced entry and verify passes", "[ledger]") {
  fixture f;
  REQUIRE(f.run(f.enroll(1)).code == errc::ok);
  auto e = f.run(f.earn(1, 250, "t1"));
  REQUIRE(e.code == errc::ok);
  CHECK(e.balance == 250);
  CHECK(e.lifetime == 250);
  auto entry = f.led->read_entry(e.seq);
  REQUIRE(entry);
  CHECK(entry->txn_id == "t1");
  REQUIRE(entry->postings.size() == 2);
  CHECK(entry->postings[0].account == account_id(account_kind::brand_issued, 1));
  CHECK(entry->postings[1].account == account_id(account_kind::member_points, 1));
  CHECK(entry->header.balance_after == 250);
  CHECK(f.led->load_account(account_id(account_kind::brand_issued, 1))->debit_total == 250);
  auto rep = f.led->verify();
  INFO((rep.problems.empty() ? "" : rep.problems[0]));
  CHECK(rep.ok);
  CHECK(rep.entries == 2);
  CHECK(rep.txn_ids == 1);
  CHECK(rep.members == 1);
}

TEST_CASE("a redeem of more than the balance is refused, posts nothing and tells the owner", "[ledger]") {
  fixture f;
  f.run(f.enroll(1));
  f.run(f.earn(1, 10, "e"));
  auto seq = f.led->last_seq();
  auto owner = std::make_shared<recording_owner>();
  auto r = f.run(f.redeem(1, 11, "r"), owner);
  CHECK(r.code == errc::insufficient_points);
  CHECK(f.led->last_seq() == seq);
  CHECK(f.led->load_member(1)->balance() == 10);
  REQUIRE(owner->rejections.size() == 1);
  CHECK(owner->rejections[0] == errc::insufficient_points);
  f.led->barrier();  // in-flight counts drop right after the outcome is handed over
  CHECK(owner->inflight.load() == 0);
  CHECK(f.led->verify().ok);
}

TEST_CASE("a replayed txn id returns the original result and posts nothing, also after reopening", "[ledger]") {
  fixture f;
  f.run(f.enroll(1));
  auto first = f.run(f.earn(1, 100, "same"));
  f.run(f.earn(1, 5, "other"));
  auto seq = f.led->last_seq();
  auto again = f.run(f.earn(1, 100, "same"));
  CHECK(again.replayed);
  CHECK(again.seq == first.seq);
  CHECK(again.balance == 100);  // the original result, not today's balance
  CHECK(f.led->last_seq() == seq);
  f.reopen();
  auto after = f.run(f.earn(1, 100, "same"));
  CHECK(after.replayed);
  CHECK(after.seq == first.seq);
  CHECK(f.led->last_seq() == seq);
  CHECK(f.led->load_member(1)->balance() == 105);
}

TEST_CASE("the same txn id with different content is txn_id_conflict", "[ledger]") {
  fixture f;
  f.run(f.enroll(1));
  f.run(f.earn(1, 100, "x", 111));
  CHECK(f.run(f.earn(1, 100, "x", 222)).code == errc::txn_id_conflict);
  CHECK(f.run(f.redeem(1, 1, "x", 111)).code == errc::txn_id_conflict);  // same hash, other kind
  CHECK(f.led->load_member(1)->balance() == 100);
}

TEST_CASE("two ops with one txn id in the same batch post once", "[ledger]") {
  fixture f;
  f.reopen(/*window*/ 50000);  // 50 ms window: both land in one batch
  f.run(f.enroll(1));
  auto a = f.earn(1, 7, "dup");
  auto b = f.earn(1, 7, "dup");
  a.target = b.target = f.out;
  a.tag = 1000;
  b.tag = 1001;
  f.led->submit(std::move(a));
  f.led->submit(std::move(b));
  auto oa = f.out->by_tag(1000);
  auto ob = f.out->by_tag(1001);
  CHECK_FALSE(oa.replayed);
  CHECK(ob.replayed);
  CHECK(oa.seq == ob.seq);
  CHECK(f.led->load_member(1)->balance() == 7);
}

TEST_CASE("enrolling twice is member_exists", "[ledger]") {
  fixture f;
  CHECK(f.run(f.enroll(4)).code == errc::ok);
  CHECK(f.run(f.enroll(4, 2)).code == errc::member_exists);
  CHECK(f.led->load_member(4)->record.brand_id == 1);
}

TEST_CASE("balances and member records survive closing and reopening", "[ledger]") {
  fixture f;
  for (std::uint64_t m = 1; m <= 20; ++m) {
    f.run(f.enroll(m, static_cast<std::uint32_t>(m % 3 + 1)));
    f.run(f.earn(m, static_cast<std::int64_t>(m * 10), "e" + std::to_string(m)));
  }
  auto seq = f.led->last_seq();
  f.reopen();
  CHECK(f.led->last_seq() == seq);
  for (std::uint64_t m = 1; m <= 20; ++m) {
    auto s = f.led->load_member(m);
    REQUIRE(s);
    CHECK(s->balance() == static_cast<std::int64_t>(m * 10));
    CHECK(s->record.brand_id == m % 3 + 1);
  }
  // New entries continue the sequence.
  CHECK(f.run(f.earn(1, 1, "next")).seq == seq + 1);
  CHECK(f.led->verify().ok);
}

TEST_CASE("many ops submitted at once are group-committed and complete in order per target", "[ledger]") {
  fixture f;
  f.reopen(/*window*/ 2000);
  f.run(f.enroll(1));
  auto owner = std::make_shared<recording_owner>();
  constexpr int n = 5000;
  for (int i = 0; i < n; ++i) {
    auto o = f.earn(1, 1, "g" + std::to_string(i));
    o.target = f.out;
    o.tag = 10000 + static_cast<std::uint64_t>(i);
    o.owner = owner;
    f.led->submit(std::move(o));
  }
  f.led->barrier();
  auto last = f.out->by_tag(10000 + n - 1);
  CHECK(last.balance == n);
  auto st = f.led->stats();
  CHECK(st.commits < static_cast<std::uint64_t>(n) / 2);
  CHECK(st.batch_max > 1);
  CHECK(owner->inflight.load() == 0);
  std::lock_guard<std::mutex> g(f.out->mtx);
  std::int64_t prev = 0;
  for (auto& o : f.out->got)
    if (o.tag >= 10000) {
      CHECK(o.balance == prev + 1);
      prev = o.balance;
    }
}

TEST_CASE("a member balance that would leave 64 bits is amount_overflow", "[ledger]") {
  fixture f;
  f.run(f.enroll(1));
  REQUIRE(f.run(f.earn(1, INT64_MAX, "max")).code == errc::ok);
  auto owner = std::make_shared<recording_owner>();
  CHECK(f.run(f.earn(1, 1, "one-more"), owner).code == errc::amount_overflow);
  CHECK(owner->rejections.size() == 1);
  CHECK(f.led->verify().ok);
}

TEST_CASE("a precheck failure still returns the original result of a committed txn id", "[ledger]") {
  fixture f;
  f.run(f.enroll(1));
  f.run(f.earn(1, 10, "e"));
  auto spent = f.run(f.redeem(1, 10, "r"));
  REQUIRE(spent.code == errc::ok);
  auto retry = f.redeem(1, 10, "r");
  retry.precheck = errc::insufficient_points;
  auto o = f.run(std::move(retry));
  CHECK(o.code == errc::ok);
  CHECK(o.replayed);
  auto fresh = f.redeem(1, 10, "r2");
  fresh.precheck = errc::insufficient_points;
  CHECK(f.run(std::move(fresh)).code == errc::insufficient_points);
}

TEST_CASE("barrier returns after everything submitted before it completed", "[ledger]") {
  fixture f;
  f.run(f.enroll(1));
  for (int i = 0; i < 100; ++i) {
    auto o = f.earn(1, 1, "b" + std::to_string(i));
    o.target = f.out;
    o.tag = 500 + static_cast<std::uint64_t>(i);
    f.led->submit(std::move(o));
  }
  f.led->barrier();
  std::lock_guard<std::mutex> g(f.out->mtx);
  std::size_t seen = 0;
  for (auto& o : f.out->got)
    seen += o.tag >= 500 && o.tag < 600;
  CHECK(seen == 100);
}

TEST_CASE("verify reports a corrupted account and a dangling txn index entry", "[ledger]") {
  fixture f;
  f.run(f.enroll(1));
  f.run(f.earn(1, 40, "ok"));
  f.tamper([&](MDB_txn* txn) {
    MDB_dbi accounts, index;
    REQUIRE(mdb_dbi_open(txn, "accounts", MDB_INTEGERKEY, &accounts) == 0);
    REQUIRE(mdb_dbi_open(txn, "txn_index", 0, &index) == 0);
    std::uint64_t id = account_id(account_kind::member_points, 1);
    account_record rec{0, 41, 1, 2};  // one point too many
    MDB_val k{sizeof id, &id}, v{sizeof rec, &rec};
    REQUIRE(mdb_put(txn, accounts, &k, &v, 0) == 0);
    std::uint64_t seq = 999;
    char ghost[] = "ghost";
    MDB_val gk{5, ghost}, gv{sizeof seq, &seq};
    REQUIRE(mdb_put(txn, index, &gk, &gv, 0) == 0);
  });
  auto all = f.failed_verify();
  INFO(all);
  CHECK(all.find("account member_points(1)") != std::string::npos);
  CHECK(all.find("'ghost'") != std::string::npos);
  CHECK(all.find("sum over all accounts") != std::string::npos);
}

TEST_CASE("a data directory of another schema version is refused with a clear error", "[ledger]") {
  fixture f;
  f.tamper([&](MDB_txn* txn) {
    MDB_dbi meta;
    REQUIRE(mdb_dbi_open(txn, "meta", 0, &meta) == 0);
    std::uint64_t v = 99;
    char key[] = "schema_version";
    MDB_val k{sizeof key - 1, key}, val{sizeof v, &v};
    REQUIRE(mdb_put(txn, meta, &k, &val, 0) == 0);
  });
  options o;
  o.dir = (f.tmp.path / "data").string();
  o.map_bytes = 1ull << 30;
  o.clock = &f.clock;
  o.tier_of = [](std::int64_t) { return 0u; };
  std::string err;
  CHECK_FALSE(ledger::ledger::open(o, err));
  CHECK(err.find("schema version 99") != std::string::npos);
}

TEST_CASE("the relaxed nosync_unsafe mode opens and posts", "[ledger]") {
  temp_dir tmp;
  manual_clock clock;
  options o;
  o.dir = (tmp.path / "d").string();
  o.map_bytes = 1ull << 30;
  o.sync = durability::nosync_unsafe;
  o.clock = &clock;
  o.tier_of = [](std::int64_t) { return 0u; };
  std::string err;
  auto led = ledger::ledger::open(o, err);
  REQUIRE(led);
  auto out = std::make_shared<collector>();
  op e;
  e.kind = op_kind::enroll;
  e.member_id = 3;
  e.brand_id = 1;
  e.target = out;
  e.tag = 1;
  led->submit(std::move(e));
  CHECK(out->by_tag(1).code == errc::ok);
}

TEST_CASE("balances newer than the last checkpoint are rebuilt from the journal after a crash", "[ledger]") {
  fixture f;
  f.reopen(0, 1000000, /*checkpoint_on_close*/ false);
  for (std::uint64_t m = 1; m <= 10; ++m) {
    f.run(f.enroll(m));
    f.run(f.earn(m, static_cast<std::int64_t>(m), "c" + std::to_string(m)));
  }
  f.run(f.redeem(3, 2, "r3"));
  auto seq = f.led->last_seq();
  CHECK(f.led->stats().checkpoints == 0);
  f.reopen(0, 1000000, false);  // as after kill -9: nothing was checkpointed
  auto rep = f.led->verify();
  CHECK(rep.checkpoint_seq == 0);
  CHECK(rep.ok);
  CHECK(f.led->last_seq() == seq);
  for (std::uint64_t m = 1; m <= 10; ++m)
    CHECK(f.led->load_member(m)->balance() == static_cast<std::int64_t>(m == 3 ? 1 : m));
  CHECK(f.run(f.redeem(3, 2, "too-much")).code == errc::insufficient_points);
  CHECK(f.run(f.earn(5, 1, "c5")).replayed);
}

TEST_CASE("checkpoints write cached balances to the accounts table and verify checks them", "[ledger]") {
  fixture f;
  f.reopen(0, /*checkpoint_accounts*/ 4, /*checkpoint_on_close*/ false);
  for (std::uint64_t m = 1; m <= 30; ++m) {
    f.run(f.enroll(m));
    f.run(f.earn(m, 10, "k" + std::to_string(m)));
  }
  auto st = f.led->stats();
  CHECK(st.checkpoints > 0);
  CHECK(st.accounts_cached < 4);
  auto rep = f.led->verify();
  CHECK(rep.ok);
  CHECK(rep.checkpoint_seq > 0);
  CHECK(rep.checkpoint_seq <= f.led->last_seq());
  f.reopen(0, 4, false);
  for (std::uint64_t m = 1; m <= 30; ++m)
    CHECK(f.led->load_member(m)->balance() == 10);
  CHECK(f.led->load_account(account_id(account_kind::brand_issued, 1))->debit_total == 300);
  CHECK(f.led->verify().ok);
}

namespace {

std::vector<std::uint64_t> seqs_of(const std::vector<ledger::ledger::entry>& v) {
  std::vector<std::uint64_t> out;
  for (auto& e : v)
    out.push_back(e.header.seq);
  return out;
}

// Takes `points` from the sender's newest lot into a new lot of the receiver.
op transfer(fixture& f, std::uint64_t from, std::uint64_t to, std::int64_t points, std::string_view txn) {
  op o = fixture::moving(entry_kind::transfer, from, account_id(account_kind::member_points, from),
                         account_id(account_kind::member_points, to), points, txn, 7);
  o.require_nonnegative = true;
  o.counterparty_id = to;
  o.details = {fixture::detail(detail_kind::lot_take, f.last_lot[from], points),
               fixture::detail(detail_kind::lot_add, ++f.last_lot[to], points, 0, 0, 99, detail_counterparty)};
  return o;
}

} // namespace

TEST_CASE("a member's history is its entries newest first, paged after the last entry shown", "[ledger]") {
  fixture f;
  f.run(f.enroll(1));
  f.run(f.enroll(2));
  std::vector<std::uint64_t> mine{1};
  for (int i = 0; i < 5; ++i) {
    mine.push_back(f.run(f.earn(1, 10, "a" + std::to_string(i))).seq);
    f.run(f.earn(2, 10, "b" + std::to_string(i)));
  }
  std::reverse(mine.begin(), mine.end());
  auto p1 = f.led->history(1, 0, 4);
  REQUIRE(p1.size() == 4);
  auto p2 = f.led->history(1, p1.back().header.seq, 4);
  REQUIRE(p2.size() == 2);
  auto all = seqs_of(p1);
  for (auto s : seqs_of(p2))
    all.push_back(s);
  CHECK(all == mine);
  CHECK(p2.back().header.kind == static_cast<std::uint16_t>(entry_kind::enroll));
  CHECK(f.led->history(1, p2.back().header.seq, 4).empty());
  CHECK(f.led->history(3, 0, 10).empty());                  // never enrolled
  CHECK(f.led->history(1, p1.front().header.seq - 1, 10).empty());  // member 2's entry, not 1's
}

TEST_CASE("a transfer is in both members' histories and its details read back as written", "[ledger]") {
  fixture f;
  f.run(f.enroll(1));
  f.run(f.enroll(2));
  f.run(f.earn(1, 100, "e1"));
  auto t = f.run(transfer(f, 1, 2, 30, "t1"));
  REQUIRE(t.code == errc::ok);
  auto e = f.led->read_entry(t.seq);
  REQUIRE(e);
  CHECK(e->header.counterparty_id == 2);
  CHECK(e->header.counterparty_prev_seq == 2);  // member 2's enrollment
  REQUIRE(e->details.size() == 2);
  CHECK(e->details[1].flags == detail_counterparty);
  CHECK(e->details[1].c == 99);
  auto h2 = f.led->history(2, 0, 10);
  REQUIRE(h2.size() == 2);
  CHECK(h2[0].header.seq == t.seq);
  CHECK(seqs_of(f.led->history(1, 0, 10)) == std::vector<std::uint64_t>{t.seq, 3, 1});
  CHECK(f.led->load_member(2)->balance() == 30);
  auto rep = f.led->verify();
  INFO((rep.problems.empty() ? "" : rep.problems[0]));
  CHECK(rep.ok);
}

TEST_CASE("the history chain and member heads survive checkpoints and a crash", "[ledger]") {
  fixture f;
  f.reopen(0, 2, false);  // checkpoint after every 2 changed balances; a close is a crash
  f.run(f.enroll(1));
  f.run(f.enroll(2));
  for (int i = 0; i < 6; ++i)
    f.run(f.earn(1 + i % 2, 5, "c" + std::to_string(i)));
  f.run(transfer(f, 1, 2, 4, "tx"));
  f.reopen(0, 1000000, false);  // replays the journal after the last checkpoint
  auto e = f.run(f.earn(2, 5, "after"));
  REQUIRE(e.code == errc::ok);
  auto h = f.led->history(2, 0, 100);
  REQUIRE(h.size() == 6);  // enroll, 3 earns, the transfer, the new earn
  CHECK(h[0].header.seq == e.seq);
  CHECK(h.back().header.kind == static_cast<std::uint16_t>(entry_kind::enroll));
  auto rep = f.led->verify();
  INFO((rep.problems.empty() ? "" : rep.problems[0]));
  CHECK(rep.ok);
  CHECK(rep.checkpoint_seq > 0);
}

TEST_CASE("verify reports an entry that breaks its member's history chain", "[ledger]") {
  fixture f;
  f.run(f.enroll(1));
  auto e = f.run(f.earn(1, 40, "ok"));
  f.tamper([&](MDB_txn* txn) {
    MDB_dbi journal;
    REQUIRE(mdb_dbi_open(txn, "journal", MDB_INTEGERKEY, &journal) == 0);
    std::uint64_t seq = e.seq;
    MDB_val k{sizeof seq, &seq}, v{};
    REQUIRE(mdb_get(txn, journal, &k, &v) == 0);
    std::vector<char> value(static_cast<char*>(v.mv_data), static_cast<char*>(v.mv_data) + v.mv_size);
    journal_header h{};
    std::memcpy(&h, value.data(), sizeof h);
    h.prev_member_seq = 0;  // forget the enrollment
    std::memcpy(value.data(), &h, sizeof h);
    MDB_val nv{value.size(), value.data()};
    REQUIRE(mdb_put(txn, journal, &k, &nv, 0) == 0);
  });
  auto all = f.failed_verify();
  INFO(all);
  CHECK(all.find("previous entry of member 1 is 1, the entry says 0") != std::string::npos);
}

// The ledger on a real LMDB environment in a temporary directory.
#include "eventually.hpp"
#include "same_journal.hpp"
#include "temp_dir.hpp"
#include "ledger/command.hpp"
#include "ledger/detail/txn_filter.hpp"
#include "ledger/ledger.hpp"
#include "ledger/record_views.hpp"
#include "ledger/sealing.hpp"

#include <lmdb.h>  // only to corrupt data behind the ledger's back

#include <catch2/catch.hpp>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>

using namespace loyalty;
using namespace loyalty::ledger;
using namespace std::chrono_literals;

namespace {

struct temp_dir : test::temp_dir {
  temp_dir() : test::temp_dir("ledger") {}
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
  // options::replicate / propose / pipeline_batches of the next reopen
  // (both empty: a single node).
  std::function<std::uint64_t(std::string_view)> replicate;
  std::function<bool(std::string, std::uint64_t)> propose;
  std::uint32_t pipeline_batches = limits::pipeline_batches_default;

  std::uint64_t save_min_ids = limits::txn_filter_save_min_ids_default;  // options of the next reopen
  fixture() { reopen(); }

  void reopen(std::uint32_t window_us = 0, std::uint32_t checkpoint_accounts = 1000000, bool checkpoint_on_close = true,
              std::uint32_t checkpoint_chunk = limits::checkpoint_chunk_accounts_default) {
    led.reset();
    options o;
    o.dir = (tmp.path / "data").string();
    o.map_bytes = 1ull << 30;
    o.commit_window_us = window_us;
    o.checkpoint_accounts_max = checkpoint_accounts;
    o.checkpoint_chunk_accounts = checkpoint_chunk;
    o.checkpoint_on_close = checkpoint_on_close;
    o.clock = &clock;
    o.tier_of = [](std::int64_t l) { return l >= 1000 ? 1u : 0u; };
    o.replicate = replicate;
    o.propose = propose;
    o.pipeline_batches = pipeline_batches;
    o.txn_filter_save_min_ids = save_min_ids;
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
    o.postings = {{from, static_cast<std::uint64_t>(points), static_cast<std::uint32_t>(posting_side::debit), 0},
                  {to, static_cast<std::uint64_t>(points), static_cast<std::uint32_t>(posting_side::credit), 0}};
    return o;
  }
  op earn(std::uint64_t m, std::int64_t points, std::string_view txn, std::uint64_t hash = 1) {
    op o = moving(entry_kind::earn, m, account_id(account_kind::brand_issued, 1),
                  account_id(account_kind::member_points, m), points, txn, hash);
    o.details = {detail(detail_kind::lot_add, ++last_lot[m], points)};
    return o;
  }
  op redeem(std::uint64_t m, std::int64_t points, std::string_view txn, std::uint64_t hash = 2) {
    op o = moving(entry_kind::redeem, m, account_id(account_kind::member_points, m),
                  account_id(account_kind::brand_redeemed, 1), points, txn, hash);
    o.require_nonnegative = true;
    o.details = {detail(detail_kind::lot_take, last_lot[m], points)};
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

// Rewrites journal entry `seq` in place (header, postings, details), inside a tamper().
void rewrite_entry(MDB_txn* txn, std::uint64_t seq,
                   const std::function<void(journal_header&, std::vector<posting>&, std::vector<entry_detail>&)>& f) {
  MDB_dbi journal;
  REQUIRE(mdb_dbi_open(txn, "journal", MDB_INTEGERKEY, &journal) == 0);
  MDB_val k{sizeof seq, &seq}, v{};
  REQUIRE(mdb_get(txn, journal, &k, &v) == 0);
  std::vector<char> bytes(static_cast<char*>(v.mv_data), static_cast<char*>(v.mv_data) + v.mv_size);
  journal_header h{};
  std::memcpy(&h, bytes.data(), sizeof h);
  std::vector<posting> ps(h.posting_count);
  std::memcpy(ps.data(), bytes.data() + sizeof h, ps.size() * sizeof(posting));
  const std::size_t details_at = sizeof h + ps.size() * sizeof(posting) + h.txn_id_bytes;
  std::vector<entry_detail> ds(h.detail_count);
  std::memcpy(ds.data(), bytes.data() + details_at, ds.size() * sizeof(entry_detail));
  f(h, ps, ds);
  std::memcpy(bytes.data(), &h, sizeof h);
  std::memcpy(bytes.data() + sizeof h, ps.data(), ps.size() * sizeof(posting));
  std::memcpy(bytes.data() + details_at, ds.data(), ds.size() * sizeof(entry_detail));
  MDB_val nv{bytes.size(), bytes.data()};
  REQUIRE(mdb_put(txn, journal, &k, &nv, 0) == 0);
}

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

TEST_CASE("an entry that would take an account's debit or credit total past int64 is refused with amount_overflow, "
          "and the rest of its batch commits",
          "[ledger]") {
  fixture f;
  f.run(f.enroll(1));
  f.run(f.enroll(2));
  const auto issued = account_id(account_kind::brand_issued, 1);
  const auto redeemed = account_id(account_kind::brand_redeemed, 1);
  const auto expired = account_id(account_kind::brand_expired, 1);
  // brand_issued(1) is debited INT64_MAX; brand_redeemed(1) is credited
  // INT64_MAX and debited 1, so its balance leaves room but its credit
  // total does not.
  REQUIRE(f.run(f.earn(1, INT64_MAX, "max")).code == errc::ok);
  REQUIRE(f.run(f.redeem(1, INT64_MAX, "spend")).code == errc::ok);
  REQUIRE(f.run(fixture::moving(entry_kind::adjust, 1, redeemed, expired, 1, "back", 3)).code == errc::ok);
  const auto seq = f.led->last_seq();
  const auto issued_before = *f.led->load_account(issued);
  const auto redeemed_before = *f.led->load_account(redeemed);
  REQUIRE(issued_before.debit_total == static_cast<std::uint64_t>(INT64_MAX));
  REQUIRE(redeemed_before.credit_total == static_cast<std::uint64_t>(INT64_MAX));

  // One batch (a commit window far longer than the submits take): a debit
  // past the bound, a credit past it, and an entry of another brand.
  f.reopen(/*window*/ 1'000'000);
  const auto commits = f.led->stats().commits;
  auto owner = std::make_shared<recording_owner>();
  auto submit = [&](op o) {
    o.target = f.out;
    o.tag = f.tag++;
    o.owner = owner;
    const auto t = o.tag;
    f.led->submit(std::move(o));
    return t;
  };
  const auto debit_past = submit(f.earn(2, 1, "issued+1"));
  const auto credit_past = submit(fixture::moving(entry_kind::adjust, 1, expired, redeemed, 1, "redeemed+1", 4));
  auto other = fixture::moving(entry_kind::earn, 2, account_id(account_kind::brand_issued, 2),
                               account_id(account_kind::member_points, 2), 7, "other-brand", 5);
  other.details = {fixture::detail(detail_kind::lot_add, ++f.last_lot[2], 7)};
  const auto fine = submit(std::move(other));
  f.led->barrier();
  CHECK(f.led->stats().commits == commits + 1);  // all three in one group commit

  CHECK(f.out->by_tag(debit_past).code == errc::amount_overflow);
  CHECK(f.out->by_tag(credit_past).code == errc::amount_overflow);
  const auto posted = f.out->by_tag(fine);
  CHECK(posted.code == errc::ok);
  CHECK(posted.seq == seq + 1);
  CHECK(f.led->last_seq() == seq + 1);
  CHECK(owner->rejections == std::vector<errc>{errc::amount_overflow, errc::amount_overflow});
  CHECK_FALSE(f.led->find_txn("issued+1"));
  CHECK_FALSE(f.led->find_txn("redeemed+1"));
  const auto issued_after = *f.led->load_account(issued);
  const auto redeemed_after = *f.led->load_account(redeemed);
  CHECK(issued_after.debit_total == issued_before.debit_total);
  CHECK(issued_after.credit_total == issued_before.credit_total);
  CHECK(redeemed_after.debit_total == redeemed_before.debit_total);
  CHECK(redeemed_after.credit_total == redeemed_before.credit_total);
  CHECK(f.led->load_member(2)->balance() == 7);
  CHECK(f.led->verify().ok);
}

TEST_CASE("verify reports an account whose debit total in the journal is past int64", "[ledger]") {
  fixture f;
  f.run(f.enroll(1));
  f.run(f.enroll(2));
  REQUIRE(f.run(f.earn(1, INT64_MAX - 10, "big")).code == errc::ok);
  const auto small = f.run(f.earn(2, 5, "small"));
  REQUIRE(small.code == errc::ok);
  REQUIRE(f.led->verify().ok);
  // The small earn grows by 6 in every place that records it (postings, lot,
  // header, the checkpointed accounts), so only the int64 bound is broken:
  // brand_issued(1) is debited 2^63 in all.
  f.tamper([&](MDB_txn* txn) {
    rewrite_entry(txn, small.seq, [](journal_header& h, std::vector<posting>& ps, std::vector<entry_detail>& ds) {
      h.points += 6;
      h.balance_after += 6;
      h.lifetime_after += 6;
      for (auto& q : ps)
        q.amount += 6;
      REQUIRE(ds.size() == 1);
      REQUIRE(ds[0].kind == static_cast<std::uint16_t>(detail_kind::lot_add));
      ds[0].a += 6;
    });
    MDB_dbi accounts;
    REQUIRE(mdb_dbi_open(txn, "accounts", MDB_INTEGERKEY, &accounts) == 0);
    for (auto [id, debit] : {std::pair{account_id(account_kind::brand_issued, 1), true},
                             std::pair{account_id(account_kind::member_points, 2), false}}) {
      MDB_val ak{sizeof id, &id}, av{};
      REQUIRE(mdb_get(txn, accounts, &ak, &av) == 0);
      account_record rec{};
      std::memcpy(&rec, av.mv_data, sizeof rec);
      (debit ? rec.debit_total : rec.credit_total) += 6;
      MDB_val nav{sizeof rec, &rec};
      REQUIRE(mdb_put(txn, accounts, &ak, &nav, 0) == 0);
    }
  });
  auto all = f.failed_verify();
  INFO(all);
  CHECK(all.find("account brand_issued(1): its debit total 9223372036854775808 is past 2^63-1") != std::string::npos);
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
  for (int i = 0; i < 1000 && f.led->stats().checkpoint_pending > 0; ++i)  // the last one finishes while idle
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto st = f.led->stats();
  CHECK(st.checkpoints > 0);
  // Bounded: a generation is written while the next one collects (its
  // freeze waits for it), so a little more than one generation's worth.
  CHECK(st.accounts_cached < 20);
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
  // A checkpoint is written once its generation is sorted (another thread):
  // wait for one before the crash.
  for (int i = 0; i < 1000 && f.led->stats().checkpoints == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  REQUIRE(f.led->stats().checkpoints > 0);
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
    rewrite_entry(txn, e.seq, [](journal_header& h, std::vector<posting>&, std::vector<entry_detail>&) {
      h.prev_member_seq = 0;  // forget the enrollment
    });
  });
  auto all = f.failed_verify();
  INFO(all);
  CHECK(all.find("previous entry of member 1 is 1, the entry says 0") != std::string::npos);
}

// -- issue 3: aliases, counters, books, and what the writer passes through ----------------

namespace {

op link(std::uint64_t m, std::string_view alias, std::string_view txn) {
  op o;
  o.kind = op_kind::post;
  o.entry = entry_kind::link_alias;
  o.member_id = m;
  o.brand_id = 1;
  o.set_txn(txn);
  o.request_hash = content_hash(alias);
  o.alias = std::string(alias);
  o.details = {fixture::detail(detail_kind::alias, 0, static_cast<std::int64_t>(content_hash(alias)))};
  return o;
}

// An entry without postings (hold, ...), carrying only details.
op bookkeeping(entry_kind kind, std::uint64_t m, std::string_view txn, std::vector<entry_detail> details) {
  op o = fixture::moving(kind, m, 0, 0, 0, txn, 5);
  o.postings.clear();
  o.details = std::move(details);
  return o;
}

std::vector<char> encoded(const member_book& b) {
  std::vector<char> out;
  encode_book(b, out);
  return out;
}

std::string all_problems(const verify_report& rep) {
  std::string all;
  for (auto& p : rep.problems)
    all += p + "\n";
  return all;
}

constexpr std::uint64_t rule_points(std::uint32_t rule) { return counter_id(counter_kind::rule_points, rule); }
constexpr std::uint64_t reward_units(std::uint32_t reward) { return counter_id(counter_kind::reward_units, reward); }

} // namespace

TEST_CASE("a link_alias entry makes the alias name the member, and linking it to the same member again posts nothing",
          "[ledger]") {
  fixture f;
  f.run(f.enroll(1));
  auto owner = std::make_shared<recording_owner>();
  auto linked = f.run(link(1, "card-1", "l1"), owner);
  REQUIRE(linked.code == errc::ok);
  CHECK_FALSE(linked.replayed);
  CHECK(linked.seq == 2);
  CHECK(owner->rejections.empty());
  CHECK(f.led->find_alias("card-1") == std::optional<std::uint64_t>(1));
  auto e = f.led->read_entry(linked.seq);
  REQUIRE(e);
  CHECK(e->header.kind == static_cast<std::uint16_t>(entry_kind::link_alias));
  CHECK(e->postings.empty());
  REQUIRE(e->details.size() == 1);
  // Schema 9: the alias's hash is keyed with the member's key (sealing.hpp),
  // and so is the request hash, which a dictionary could otherwise invert.
  CHECK(e->details[0].kind == static_cast<std::uint16_t>(detail_kind::sealed_alias));
  CHECK(e->details[0].a != static_cast<std::int64_t>(content_hash("card-1")));
  CHECK(e->header.request_hash != content_hash("card-1"));

  auto again = f.run(link(1, "card-1", "l2"), owner);
  CHECK(again.code == errc::ok);
  CHECK(again.replayed);
  CHECK(again.seq == 0);
  CHECK(f.led->last_seq() == linked.seq);
  CHECK_FALSE(f.led->find_txn("l2"));
  REQUIRE(owner->rejections.size() == 1);  // not posted: the owner undoes its tentative state
  CHECK(owner->rejections[0] == errc::ok);

  f.reopen();
  CHECK(f.led->find_alias("card-1") == std::optional<std::uint64_t>(1));
  CHECK_FALSE(f.led->find_alias("card-2"));
  CHECK_FALSE(f.led->find_alias(""));
  CHECK(f.run(link(1, "card-1", "l3")).replayed);
  CHECK(f.led->last_seq() == linked.seq);
  auto rep = f.led->verify();
  INFO(all_problems(rep));
  CHECK(rep.ok);
}

TEST_CASE("an alias of another member is refused with alias_taken and nothing of the op is written", "[ledger]") {
  fixture f;
  f.reopen(/*window*/ 50000);  // 50 ms: ops submitted together share a batch
  f.run(f.enroll(1));
  f.run(f.enroll(2));
  REQUIRE(f.run(link(1, "card-1", "l1")).code == errc::ok);
  const auto seq = f.led->last_seq();
  auto owner = std::make_shared<recording_owner>();
  auto taken = f.run(link(2, "card-1", "l2"), owner);
  CHECK(taken.code == errc::alias_taken);
  CHECK_FALSE(taken.replayed);
  REQUIRE(owner->rejections.size() == 1);
  CHECK(owner->rejections[0] == errc::alias_taken);
  CHECK(f.led->last_seq() == seq);
  CHECK_FALSE(f.led->find_txn("l2"));
  CHECK(f.led->find_alias("card-1") == std::optional<std::uint64_t>(1));
  CHECK(f.led->history(2, 0, 10).size() == 1);  // its enrollment only

  // Two members claiming one alias in the same batch: the first one wins.
  auto a = link(1, "card-9", "x1");
  auto b = link(2, "card-9", "x2");
  a.target = b.target = f.out;
  a.tag = 900;
  b.tag = 901;
  f.led->submit(std::move(a));
  f.led->submit(std::move(b));
  CHECK(f.out->by_tag(900).code == errc::ok);
  CHECK(f.out->by_tag(901).code == errc::alias_taken);
  CHECK(f.led->find_alias("card-9") == std::optional<std::uint64_t>(1));
  auto rep = f.led->verify();
  INFO(all_problems(rep));
  CHECK(rep.ok);
}

namespace {

// Member 1 earns with rule lines, gives some back, redeems a reward twice and
// has one redemption reversed. Lot 1 holds 160 points, lot 2 30.
void post_counted_entries(fixture& f) {
  using F = fixture;
  f.run(f.enroll(1));
  auto e1 = f.earn(1, 160, "c1");  // lot 1
  e1.details.push_back(F::detail(detail_kind::rule_line, 0, 100, static_cast<std::uint32_t>(rule_line_kind::base)));
  e1.details.push_back(F::detail(detail_kind::rule_line, 0, 0, static_cast<std::uint32_t>(rule_line_kind::tier)));
  e1.details.push_back(F::detail(detail_kind::rule_line, 7, 50, static_cast<std::uint32_t>(rule_line_kind::rule)));
  e1.details.push_back(F::detail(detail_kind::rule_line, 9, 10, static_cast<std::uint32_t>(rule_line_kind::rule)));
  REQUIRE(f.run(std::move(e1)).code == errc::ok);
  auto e2 = f.earn(1, 30, "c2");  // lot 2
  e2.details.push_back(F::detail(detail_kind::rule_line, 7, 30, static_cast<std::uint32_t>(rule_line_kind::rule)));
  REQUIRE(f.run(std::move(e2)).code == errc::ok);
  // A refund claws 20 points of rule 7 back, out of lot 2.
  auto refund = F::moving(entry_kind::refund, 1, account_id(account_kind::member_points, 1),
                          account_id(account_kind::brand_issued, 1), 20, "c3", 3);
  refund.details = {F::detail(detail_kind::lot_take, 2, 20),
                    F::detail(detail_kind::rule_line, 7, -20, static_cast<std::uint32_t>(rule_line_kind::rule))};
  REQUIRE(f.run(std::move(refund)).code == errc::ok);
  for (auto txn : {"r1", "r2"}) {
    auto r = f.redeem(1, 10, txn);
    r.entry = entry_kind::redeem_reward;
    r.details = {F::detail(detail_kind::lot_take, 1, 10), F::detail(detail_kind::reward, 3, 1)};
    REQUIRE(f.run(std::move(r)).code == errc::ok);
  }
  auto reverse = F::moving(entry_kind::reverse_redemption, 1, account_id(account_kind::brand_redeemed, 1),
                           account_id(account_kind::member_points, 1), 10, "c4", 4);
  reverse.details = {F::detail(detail_kind::lot_restore, 1, 10), F::detail(detail_kind::reward, 3, -1)};
  REQUIRE(f.run(std::move(reverse)).code == errc::ok);
}

} // namespace

TEST_CASE("counters sum the rule lines of rules and the reward units of all entries, clawbacks included, "
          "and survive reopening",
          "[ledger]") {
  fixture f;
  post_counted_entries(f);
  using counters_t = std::vector<std::pair<std::uint64_t, std::int64_t>>;
  const counters_t expected{{rule_points(7), 60}, {rule_points(9), 10}, {reward_units(3), 1}};
  CHECK(f.led->counters() == expected);  // base and tier lines count for no rule
  auto rep = f.led->verify();
  INFO(all_problems(rep));
  CHECK(rep.ok);
  f.reopen();
  CHECK(f.led->counters() == expected);
  // The writer continues from the stored values.
  auto more = f.earn(1, 5, "c5");
  more.details.push_back(fixture::detail(detail_kind::rule_line, 9, 5, static_cast<std::uint32_t>(rule_line_kind::rule)));
  REQUIRE(f.run(std::move(more)).code == errc::ok);
  CHECK(f.led->counters() == counters_t{{rule_points(7), 60}, {rule_points(9), 15}, {reward_units(3), 1}});
  CHECK(f.led->verify().ok);
}

TEST_CASE("a counter that would leave int64 refuses the entry with amount_overflow and writes nothing of it",
          "[ledger]") {
  fixture f;
  f.run(f.enroll(1));
  auto big = f.earn(1, 1, "a");
  big.details.push_back(
    fixture::detail(detail_kind::rule_line, 5, INT64_MAX, static_cast<std::uint32_t>(rule_line_kind::rule)));
  REQUIRE(f.run(std::move(big)).code == errc::ok);
  const auto seq = f.led->last_seq();
  auto owner = std::make_shared<recording_owner>();
  auto one_more = f.earn(1, 1, "b");
  one_more.details.push_back(
    fixture::detail(detail_kind::rule_line, 5, 1, static_cast<std::uint32_t>(rule_line_kind::rule)));
  CHECK(f.run(std::move(one_more), owner).code == errc::amount_overflow);
  REQUIRE(owner->rejections.size() == 1);
  CHECK(owner->rejections[0] == errc::amount_overflow);
  CHECK(f.led->last_seq() == seq);
  CHECK_FALSE(f.led->find_txn("b"));
  CHECK(f.led->load_member(1)->balance() == 1);
  using counters_t = std::vector<std::pair<std::uint64_t, std::int64_t>>;
  CHECK(f.led->counters() == counters_t{{rule_points(5), INT64_MAX}});
  CHECK(f.led->verify().ok);
}

TEST_CASE("verify reports a counter that differs from its details and an alias of no member", "[ledger]") {
  fixture f;
  post_counted_entries(f);
  f.tamper([&](MDB_txn* txn) {
    MDB_dbi counters, aliases;
    REQUIRE(mdb_dbi_open(txn, "counters", MDB_INTEGERKEY, &counters) == 0);
    REQUIRE(mdb_dbi_open(txn, "aliases", 0, &aliases) == 0);
    std::uint64_t id7 = rule_points(7), id9 = rule_points(9);
    std::int64_t wrong = 61;
    MDB_val k7{sizeof id7, &id7}, v7{sizeof wrong, &wrong}, k9{sizeof id9, &id9};
    REQUIRE(mdb_put(txn, counters, &k7, &v7, 0) == 0);
    REQUIRE(mdb_del(txn, counters, &k9, nullptr) == 0);
    char alias[] = "ghost-card";
    std::uint64_t nobody = 42;
    MDB_val ka{sizeof alias - 1, alias}, va{sizeof nobody, &nobody};
    REQUIRE(mdb_put(txn, aliases, &ka, &va, 0) == 0);
  });
  auto all = f.failed_verify();
  INFO(all);
  CHECK(all.find("counter rule_points(7): stored 61 but its details sum to 60") != std::string::npos);
  CHECK(all.find("counter rule_points(9): its details sum to 10 but it has no record") != std::string::npos);
  CHECK(all.find("alias 'ghost-card': names member 42, who is not enrolled") != std::string::npos);
}

TEST_CASE("rule_budget records move one counter per rule and period, clawbacks included, and verify checks them",
          "[ledger]") {
  using F = fixture;
  fixture f;
  f.run(f.enroll(1));
  const auto day = static_cast<std::uint32_t>(rule_budget_period::day);
  const auto month = static_cast<std::uint32_t>(rule_budget_period::month);
  const std::pair<const char*, std::uint64_t> earns[] = {{"b1", 20'000}, {"b2", 20'000}, {"b3", 20'001}};
  for (const auto& [txn, d] : earns) {
    auto e = f.earn(1, 30, txn);
    e.details.push_back(F::detail(detail_kind::rule_line, 7, 30, static_cast<std::uint32_t>(rule_line_kind::rule)));
    e.details.push_back(F::detail(detail_kind::rule_budget, 7, 30, day, d));
    e.details.push_back(F::detail(detail_kind::rule_budget, 7, 30, month, 657));
    REQUIRE(f.run(std::move(e)).code == errc::ok);
  }
  auto claw = F::moving(entry_kind::refund, 1, account_id(account_kind::member_points, 1),
                        account_id(account_kind::brand_issued, 1), 10, "b1-back", 1);
  claw.details = {F::detail(detail_kind::lot_take, 1, 10),
                  F::detail(detail_kind::rule_line, 7, -10, static_cast<std::uint32_t>(rule_line_kind::rule)),
                  F::detail(detail_kind::rule_budget, 7, -10, day, 20'000),
                  F::detail(detail_kind::rule_budget, 7, -10, month, 657)};
  REQUIRE(f.run(std::move(claw)).code == errc::ok);
  const auto day_of = [](std::uint32_t d) { return counter_id(counter_kind::rule_day_points, 7, d); };
  const auto month_of = counter_id(counter_kind::rule_month_points, 7, 657);
  using counters_t = std::vector<std::pair<std::uint64_t, std::int64_t>>;
  counters_t expected{{rule_points(7), 80}, {day_of(20'000), 50}, {day_of(20'001), 30}, {month_of, 80}};
  std::sort(expected.begin(), expected.end());
  CHECK(f.led->counters() == expected);
  CHECK(counter_period(day_of(20'001)) == 20'001);
  CHECK(f.led->verify().ok);
  f.reopen();
  CHECK(f.led->counters() == expected);

  f.tamper([&](MDB_txn* txn) {
    MDB_dbi counters;
    REQUIRE(mdb_dbi_open(txn, "counters", MDB_INTEGERKEY, &counters) == 0);
    std::uint64_t id = day_of(20'001);
    std::int64_t wrong = 31;
    MDB_val k{sizeof id, &id}, v{sizeof wrong, &wrong};
    REQUIRE(mdb_put(txn, counters, &k, &v, 0) == 0);
  });
  auto all = f.failed_verify();
  INFO(all);
  CHECK(all.find("counter rule_day_points(7, period 20001): stored 31 but its details sum to 30") !=
        std::string::npos);
}

TEST_CASE("a member's book folded from the journal equals the book built by applying the same details, "
          "the transfer it received included",
          "[ledger]") {
  using F = fixture;
  fixture f;
  f.run(f.enroll(1));
  f.run(f.enroll(2));
  // Each posted op with the member it belongs to, as the fold must see it.
  struct posted {
    std::uint64_t seq;
    std::uint64_t occurred_at_us;
    std::uint64_t member;
    std::uint64_t counterparty;
    std::vector<entry_detail> details;
  };
  std::vector<posted> log;
  std::uint64_t at = 1'000'000;
  auto post = [&](op o) {
    o.occurred_at_us = at += 1000;
    posted p{0, o.occurred_at_us, o.member_id, o.counterparty_id, o.details};
    auto out = f.run(std::move(o));
    REQUIRE(out.code == errc::ok);
    REQUIRE_FALSE(out.replayed);
    p.seq = out.seq;
    log.push_back(std::move(p));
  };
  auto earn = f.earn(1, 200, "e1");  // lot 1
  earn.details.push_back(F::detail(detail_kind::rule_line, 0, 150, static_cast<std::uint32_t>(rule_line_kind::base)));
  earn.details.push_back(F::detail(detail_kind::rule_line, 7, 50, static_cast<std::uint32_t>(rule_line_kind::rule)));
  earn.details.push_back(F::detail(detail_kind::qualify, 3, 200));
  earn.details.push_back(F::detail(detail_kind::activity, 0, 0, 0, 1'001'000));
  post(std::move(earn));
  post(bookkeeping(entry_kind::hold, 1, "h1",
                   {F::detail(detail_kind::hold_open, 1, 60, 0, 9'000'000), F::detail(detail_kind::lot_take, 1, 60, 1)}));
  post(transfer(f, 1, 2, 30, "t1"));  // lot 1 of member 1 -> lot 1 of member 2
  post(f.earn(2, 10, "e2"));          // lot 2 of member 2
  // A refund of more than is left in the lots: 10 points of debt.
  auto refund = F::moving(entry_kind::refund, 1, account_id(account_kind::member_points, 1),
                          account_id(account_kind::brand_issued, 1), 120, "rf", 3);
  refund.details = {F::detail(detail_kind::lot_take, 1, 110), F::detail(detail_kind::debt, 0, 10),
                    F::detail(detail_kind::rule_line, 7, -50, static_cast<std::uint32_t>(rule_line_kind::rule))};
  post(std::move(refund));

  auto expected = [&](std::uint64_t m) {
    member_book b;
    b.enrolled_at_us = f.led->load_member(m)->record.enrolled_at_us;
    for (auto& p : log) {
      if (p.member != m && p.counterparty != m)
        continue;
      std::string why;
      REQUIRE(apply_details(b, p.details, p.member != m, p.seq, p.occurred_at_us, why));
    }
    return b;
  };
  auto check_books = [&] {
    for (std::uint64_t m : {1, 2}) {
      std::string why;
      auto book = f.led->fold_book(m, why);
      INFO("member " << m << ": " << why);
      REQUIRE(book);
      CHECK(why.empty());
      CHECK(encoded(*book) == encoded(expected(m)));
    }
  };
  check_books();
  std::string why;
  auto one = f.led->fold_book(1, why);
  REQUIRE(one);
  CHECK(one->lots.empty());  // 200 - 60 held - 30 given - 110 refunded
  REQUIRE(one->holds.size() == 1);
  CHECK(one->holds[0].points == 60);
  CHECK(one->debt == 10);
  CHECK(one->lifetime_earned == 150);
  auto two = f.led->fold_book(2, why);
  REQUIRE(two);
  REQUIRE(two->lots.size() == 2);
  CHECK(two->lots[0].points == 30);
  CHECK(two->lots[0].source_seq == log[2].seq);  // the transfer
  CHECK(two->lots[0].expires_at_us == 99);
  CHECK_FALSE(f.led->fold_book(3, why));
  CHECK(why.empty());

  auto rep = f.led->verify();
  INFO(all_problems(rep));
  CHECK(rep.ok);
  f.reopen(0, 1000000, /*checkpoint_on_close*/ false);  // the heads come back from the journal tail
  check_books();
}

TEST_CASE("verify reports a member whose lots do not add up to its points and one whose entries do not fit its book",
          "[ledger]") {
  fixture f;
  f.run(f.enroll(1));
  f.run(f.enroll(2));
  auto short_lot = f.earn(1, 50, "e1");
  short_lot.details[0].a = 40;  // the lot says 40, the postings 50
  REQUIRE(f.run(std::move(short_lot)).code == errc::ok);
  f.run(f.earn(2, 20, "e2"));
  auto r = f.redeem(2, 5, "r2");
  r.details[0].id = 9;  // a lot member 2 never had
  const auto bad_seq = f.run(std::move(r)).seq;
  auto rep = f.led->verify();
  CHECK_FALSE(rep.ok);
  auto all = all_problems(rep);
  INFO(all);
  CHECK(all.find("member 1: lots + holds - debt = 40 + 0 - 0 = 40 but its member_points balance is 50") !=
        std::string::npos);
  CHECK(all.find("member 2: entry " + std::to_string(bad_seq) + " does not fit the book") != std::string::npos);
  std::string why;
  CHECK_FALSE(f.led->fold_book(2, why));
  CHECK(why.find("entry " + std::to_string(bad_seq)) != std::string::npos);
}

TEST_CASE("a stored book starts the fold: the entries since it are read, the book is the same, verify checks it",
          "[ledger][book]") {
  fixture f;
  f.run(f.enroll(1));
  f.run(f.enroll(2));
  for (int i = 0; i < 40; ++i)
    REQUIRE(f.run(f.earn(1, 10 + i, "a" + std::to_string(i))).code == errc::ok);
  std::string why;
  ledger::ledger::fold_info info;
  auto full = f.led->fold_book(1, why, &info);
  REQUIRE(full);
  CHECK(info.stored_seq == 0);  // none stored yet: from the enrollment
  CHECK(info.entries == 41);
  const auto forty = info.as_of;
  CHECK(f.led->checkpoint_book(1, 16) == 41);  // stored with the next commit
  for (int i = 0; i < 3; ++i)
    REQUIRE(f.run(f.earn(1, 5, "b" + std::to_string(i))).code == errc::ok);
  auto book = f.led->fold_book(1, why, &info);
  REQUIRE(book);
  CHECK(info.stored_seq == forty);
  CHECK(info.entries == 3);
  // The same book as the fold from the enrollment (verify folds from there
  // and compares the stored book with the fold through its entry).
  auto rep = f.led->verify();
  INFO(all_problems(rep));
  CHECK(rep.ok);
  CHECK(rep.stored_books == 1);
  std::int64_t lots = 0;
  REQUIRE(ledger::sum_lots(*book, lots));
  CHECK(lots == f.led->load_member(1)->balance());
  // An older book never replaces a newer one; a short walk stores nothing.
  f.led->store_book(1, forty - 1, member_book{});
  CHECK(f.led->checkpoint_book(1, 16) == 3);
  const auto c_seq = f.run(f.earn(2, 7, "c")).seq;  // a commit: the queued books are written with it
  REQUIRE(f.led->fold_book(1, why, &info));
  CHECK(info.stored_seq == forty);
  rep = f.led->verify();
  INFO(all_problems(rep));
  CHECK(rep.ok);

  // A stored book that is not the fold of its entries is a problem verify names.
  auto wrong = f.led->fold_book(2, why, &info);
  REQUIRE(wrong);
  REQUIRE(info.as_of == c_seq);
  wrong->lots.back().points += 1;
  f.led->store_book(2, c_seq, *wrong);
  f.run(f.earn(2, 7, "d"));
  rep = f.led->verify();
  CHECK_FALSE(rep.ok);
  auto all = all_problems(rep);
  INFO(all);
  CHECK(all.find("member 2: its stored book of entry") != std::string::npos);
}

TEST_CASE("the txn filter saved at a clean close is loaded at the next start, with the ids committed after it",
          "[ledger][txn_filter]") {
  fixture f;
  f.save_min_ids = 0;  // these few ids are saved too
  f.reopen();
  f.run(f.enroll(1));
  for (int i = 0; i < 50; ++i)
    REQUIRE(f.run(f.earn(1, 5, "a" + std::to_string(i))).code == errc::ok);
  auto ready = [&] { return test::eventually([&] { return f.led->txn_filter_ready(); }); };
  auto all_maybe = [&](const char* prefix, int n) {
    for (int i = 0; i < n; ++i)
      if (!f.led->maybe_committed(prefix + std::to_string(i)))
        return false;
    return true;
  };
  REQUIRE(ready());
  CHECK_FALSE(f.led->txn_filter_from_saved());  // a new ledger: nothing saved
  f.reopen();                                   // a clean close saves it
  REQUIRE(ready());
  CHECK(f.led->txn_filter_from_saved());
  CHECK(all_maybe("a", 50));
  CHECK_FALSE(f.led->maybe_committed("never-posted"));

  // Commits after the saved filter, then a close that saves nothing (as a
  // kill -9): the next start uses the old file and adds the journal's tail.
  for (int i = 0; i < 30; ++i)
    REQUIRE(f.run(f.earn(1, 5, "b" + std::to_string(i))).code == errc::ok);
  f.reopen(0, 1000000, /*checkpoint_on_close*/ false);
  REQUIRE(ready());
  CHECK(f.led->txn_filter_from_saved());
  CHECK(all_maybe("a", 50));
  CHECK(all_maybe("b", 30));
  // A replay of a tail id is still answered from the ledger (the filter said maybe).
  CHECK(f.run(f.earn(1, 5, "b7")).code == errc::ok);
  CHECK(f.led->load_member(1)->balance() == 5 * 80);

  // A damaged file, and a file of another journal, are not used: the scan is.
  const auto file = f.tmp.path / "data" / "txn_filter";
  f.reopen();
  f.led.reset();  // closed cleanly: saved
  REQUIRE(std::filesystem::exists(file));
  {
    std::fstream io(file, std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(100);
    io.put('\x5a');
  }
  f.reopen(0, 1000000, false);
  REQUIRE(ready());
  CHECK_FALSE(f.led->txn_filter_from_saved());
  CHECK(all_maybe("a", 50));
  CHECK(all_maybe("b", 30));

  fixture other;  // its own journal: one earn, then closed cleanly (its file saved)
  other.save_min_ids = 0;
  other.reopen();
  other.run(other.enroll(1));
  REQUIRE(other.run(other.earn(1, 5, "z")).code == errc::ok);
  other.led.reset();
  f.led.reset();
  std::filesystem::copy_file(other.tmp.path / "data" / "txn_filter", file,
                             std::filesystem::copy_options::overwrite_existing);
  f.reopen(0, 1000000, false);
  REQUIRE(ready());
  CHECK_FALSE(f.led->txn_filter_from_saved());
  CHECK(all_maybe("a", 50));
}

TEST_CASE("an outcome carries the details of its posted entry and the op's note, whatever became of the op",
          "[ledger]") {
  fixture f;
  auto note = std::make_shared<int>(42);
  auto with_note = [&](op o) {
    o.note = note;
    return o;
  };
  CHECK(f.run(with_note(f.enroll(1))).note == note);
  auto posted = f.run(with_note(f.earn(1, 25, "e1")));
  REQUIRE(posted.code == errc::ok);
  CHECK(posted.note == note);
  REQUIRE(posted.details.size() == 1);
  CHECK(posted.details[0].kind == static_cast<std::uint16_t>(detail_kind::lot_add));
  CHECK(posted.details[0].a == 25);

  auto replay = f.run(with_note(f.earn(1, 25, "e1")));
  CHECK(replay.replayed);
  CHECK(replay.details.empty());
  CHECK(replay.note == note);
  auto refused = f.run(with_note(f.redeem(1, 26, "r1")));
  CHECK(refused.code == errc::insufficient_points);
  CHECK(refused.details.empty());
  CHECK(refused.note == note);
  auto prechecked = f.redeem(1, 26, "r2");
  prechecked.precheck = errc::insufficient_points;
  CHECK(f.run(with_note(std::move(prechecked))).note == note);
  op b;
  b.kind = op_kind::barrier;
  b.member_id = 1;
  auto barrier = f.run(with_note(std::move(b)));
  CHECK(barrier.note == note);
  CHECK(barrier.balance == 25);
  CHECK(barrier.details.empty());
  CHECK(f.run(with_note(f.enroll(1))).note == note);  // member_exists
}

TEST_CASE("with has_member_state the journal header takes the member's lifetime and tier from the op", "[ledger]") {
  fixture f;
  f.run(f.enroll(1));
  auto o = f.earn(1, 100, "m1");
  o.has_member_state = true;
  o.lifetime_after = 777;
  o.tier_after = 3;
  auto out = f.run(std::move(o));
  REQUIRE(out.code == errc::ok);
  CHECK(out.lifetime == 777);
  CHECK(out.tier == 3);
  auto e = f.led->read_entry(out.seq);
  REQUIRE(e);
  CHECK(e->header.lifetime_after == 777);
  CHECK(e->header.tier_after == 3);
  CHECK(e->header.balance_after == 100);  // the balance still comes from the account
  auto replay = f.run(f.earn(1, 100, "m1"));
  CHECK(replay.replayed);
  CHECK(replay.lifetime == 777);
  CHECK(replay.tier == 3);
  auto plain = f.run(f.earn(1, 2000, "m2"));  // without: the member_points account decides
  CHECK(plain.lifetime == 2100);
  CHECK(plain.tier == 1);
}

TEST_CASE("a transfer's counterparty owner hears of a replay and a refusal and its in-flight count returns to zero",
          "[ledger]") {
  fixture f;
  f.run(f.enroll(1));
  f.run(f.enroll(2));
  f.run(f.earn(1, 100, "e1"));
  auto sender = std::make_shared<recording_owner>();
  auto receiver = std::make_shared<recording_owner>();
  auto send = [&](std::int64_t points, std::string_view txn) {
    auto o = transfer(f, 1, 2, points, txn);
    o.counterparty_owner = receiver;
    return f.run(std::move(o), sender);
  };
  REQUIRE(send(30, "t1").code == errc::ok);
  CHECK(sender->rejections.empty());
  CHECK(receiver->rejections.empty());
  auto replay = send(30, "t1");
  CHECK(replay.replayed);
  REQUIRE(receiver->rejections.size() == 1);
  CHECK(receiver->rejections[0] == errc::ok);
  CHECK(sender->rejections == receiver->rejections);
  CHECK(send(500, "t2").code == errc::insufficient_points);
  REQUIRE(receiver->rejections.size() == 2);
  CHECK(receiver->rejections[1] == errc::insufficient_points);
  CHECK(sender->rejections == receiver->rejections);
  f.led->barrier();
  CHECK(sender->inflight.load() == 0);
  CHECK(receiver->inflight.load() == 0);
  CHECK(f.led->load_member(2)->balance() == 30);
}

TEST_CASE("find_txn names the entry of a committed txn id and for_each_member pages members in id order",
          "[ledger]") {
  fixture f;
  for (std::uint64_t m : {5, 1, 9, 3})
    f.run(f.enroll(m));
  auto e = f.run(f.earn(3, 10, "t-3"));
  CHECK(f.led->find_txn("t-3") == std::optional<std::uint64_t>(e.seq));
  CHECK_FALSE(f.led->find_txn("t-4"));
  CHECK_FALSE(f.led->find_txn(""));
  std::vector<std::uint64_t> seen;
  auto visit = [&](std::uint64_t id) { seen.push_back(id); };
  CHECK(f.led->for_each_member(0, 2, visit) == 3);
  CHECK(seen == std::vector<std::uint64_t>{1, 3});
  CHECK(f.led->for_each_member(3, 10, visit) == 9);
  CHECK(seen == std::vector<std::uint64_t>{1, 3, 5, 9});
  CHECK(f.led->for_each_member(9, 10, visit) == 0);
  CHECK(f.led->for_each_member(0, 0, visit) == 0);
  CHECK(seen.size() == 4);
}

// -- issue 4: coalition money, periods and statements ---------------------------------------

namespace {

constexpr std::uint64_t member_acct(std::uint64_t m) { return account_id(account_kind::member_points, m); }
constexpr std::uint64_t issued(std::uint32_t b) { return account_id(account_kind::brand_issued, b); }
constexpr std::uint64_t redeemed(std::uint32_t b) { return account_id(account_kind::brand_redeemed, b); }
constexpr std::uint64_t settlement_acct(std::uint32_t b) { return account_id(account_kind::brand_settlement, b); }
constexpr std::uint64_t payable(std::uint32_t p) { return account_id(account_kind::partner_payable, p); }
constexpr std::uint64_t receivable(std::uint32_t p) { return account_id(account_kind::partner_receivable, p); }

posting debit(std::uint64_t account, std::uint64_t amount) {
  return {account, amount, static_cast<std::uint32_t>(posting_side::debit), 0};
}
posting credit(std::uint64_t account, std::uint64_t amount) {
  return {account, amount, static_cast<std::uint32_t>(posting_side::credit), 0};
}

// The payer owes the payee floor(points x num / den).
entry_detail settle(party_kind payer_kind, std::uint32_t payer, party_kind payee_kind, std::uint32_t payee,
                    std::int64_t points, std::uint32_t num, std::uint32_t den, bool reversal = false) {
  const auto amount = static_cast<std::uint64_t>(points) * num / den;  // test numbers stay far below 2^64
  return entry_detail{static_cast<std::uint16_t>(detail_kind::settle),
                      reversal ? detail_reversal : std::uint16_t{0},
                      payee,
                      payer,
                      settle_parties(payer_kind, payee_kind),
                      points,
                      amount,
                      settle_rate(num, den)};
}

// An earn of `points` of brand `brand` into a new lot.
op earn_of(fixture& f, std::uint64_t m, std::uint32_t brand, std::int64_t points, std::string_view txn) {
  op o = fixture::moving(entry_kind::earn, m, issued(brand), member_acct(m), points, txn, 11);
  o.brand_id = brand;
  auto lot = fixture::detail(detail_kind::lot_add, ++f.last_lot[m], points);
  lot.brand = brand;
  o.details = {lot};
  return o;
}

// One issuing brand's share of a partner burn: `points` from lot `lot`,
// which the brand pays the partner for at num/den per point.
struct burn_part {
  std::uint32_t brand;
  std::uint32_t lot;
  std::int64_t points;
  std::uint32_t num, den;
};

op partner_burn(std::uint64_t m, std::uint16_t partner, const std::vector<burn_part>& parts, std::string_view txn) {
  op o;
  o.kind = op_kind::post;
  o.entry = entry_kind::partner_burn;
  o.member_id = m;
  o.brand_id = parts.front().brand;
  o.partner_id = partner;
  o.set_txn(txn);
  o.request_hash = 17;
  o.require_nonnegative = true;
  std::int64_t points = 0;
  std::uint64_t paid = 0;
  for (const auto& p : parts) {
    auto take = fixture::detail(detail_kind::lot_take, p.lot, p.points);
    take.brand = p.brand;
    const auto s = settle(party_kind::brand, p.brand, party_kind::partner, partner, p.points, p.num, p.den);
    o.details.push_back(take);
    o.details.push_back(s);
    o.postings.push_back(credit(redeemed(p.brand), static_cast<std::uint64_t>(p.points)));
    o.postings.push_back(debit(settlement_acct(p.brand), s.b));
    points += p.points;
    paid += s.b;
  }
  o.postings.insert(o.postings.begin(), debit(member_acct(m), static_cast<std::uint64_t>(points)));
  o.postings.push_back(credit(payable(partner), paid));
  o.points = points;
  return o;
}

// Undoes one brand's share of a burn: the points go back to its lot, and
// the partner pays the brand's money back (a reversal record).
op burn_reversal(std::uint64_t m, std::uint16_t partner, const burn_part& p, std::uint64_t ref, std::string_view txn) {
  op o;
  o.kind = op_kind::post;
  o.entry = entry_kind::reverse_redemption;
  o.member_id = m;
  o.brand_id = p.brand;
  o.partner_id = partner;
  o.ref_seq = ref;
  o.set_txn(txn);
  o.request_hash = 19;
  o.points = p.points;
  auto restore = fixture::detail(detail_kind::lot_restore, p.lot, p.points);
  restore.brand = p.brand;
  const auto s = settle(party_kind::brand, p.brand, party_kind::partner, partner, p.points, p.num, p.den, true);
  o.details = {restore, s};
  o.postings = {debit(redeemed(p.brand), static_cast<std::uint64_t>(p.points)),
                credit(member_acct(m), static_cast<std::uint64_t>(p.points)), credit(settlement_acct(p.brand), s.b),
                debit(payable(partner), s.b)};
  return o;
}

// Points of `brand` a member earns at a partner, which owes the brand for them.
op partner_earn(fixture& f, std::uint64_t m, std::uint16_t partner, std::uint32_t brand, std::int64_t points,
                std::uint32_t num, std::uint32_t den, std::string_view txn) {
  op o = earn_of(f, m, brand, points, txn);
  o.entry = entry_kind::partner_earn;
  o.partner_id = partner;
  const auto s = settle(party_kind::partner, partner, party_kind::brand, brand, points, num, den);
  o.details.push_back(s);
  o.postings.push_back(debit(receivable(partner), s.b));
  o.postings.push_back(credit(settlement_acct(brand), s.b));
  return o;
}

void put_schema_version(fixture& f, std::uint64_t version) {
  f.tamper([&](MDB_txn* txn) {
    MDB_dbi meta;
    REQUIRE(mdb_dbi_open(txn, "meta", 0, &meta) == 0);
    char key[] = "schema_version";
    MDB_val k{sizeof key - 1, key}, v{sizeof version, &version};
    REQUIRE(mdb_put(txn, meta, &k, &v, 0) == 0);
  });
}

std::uint64_t schema_version_on_disk(fixture& f) {
  std::uint64_t version = 0;
  f.tamper([&](MDB_txn* txn) {
    MDB_dbi meta;
    REQUIRE(mdb_dbi_open(txn, "meta", 0, &meta) == 0);
    char key[] = "schema_version";
    MDB_val k{sizeof key - 1, key}, v{};
    REQUIRE(mdb_get(txn, meta, &k, &v) == 0);
    REQUIRE(v.mv_size == sizeof version);
    std::memcpy(&version, v.mv_data, sizeof version);
  });
  return version;
}

} // namespace

TEST_CASE("a schema-3 data directory opens with its entries and is recorded as the current schema; versions 2 and 6 "
          "are refused",
          "[ledger]") {
  fixture f;
  f.run(f.enroll(1));
  f.run(f.earn(1, 40, "e1"));
  put_schema_version(f, 3);
  f.reopen();
  CHECK(f.led->load_member(1)->balance() == 40);
  CHECK(f.run(f.earn(1, 40, "e1")).replayed);
  auto rep = f.led->verify();
  INFO(all_problems(rep));
  CHECK(rep.ok);
  CHECK(schema_version_on_disk(f) == schema_version);
  for (std::uint64_t version : {std::uint64_t{2}, schema_version + 1}) {
    put_schema_version(f, version);
    options o;
    o.dir = (f.tmp.path / "data").string();
    o.map_bytes = 1ull << 30;
    o.clock = &f.clock;
    o.tier_of = [](std::int64_t) { return 0u; };
    std::string err;
    CHECK_FALSE(ledger::ledger::open(o, err));
    CHECK(err.find("schema version " + std::to_string(version)) != std::string::npos);
    CHECK(schema_version_on_disk(f) == version);  // a refused directory is left as it was
  }
}

TEST_CASE("commit times never decrease along the journal when the clock steps back, also after reopening", "[ledger]") {
  fixture f;
  const auto t = f.clock.now_us();
  f.run(f.enroll(1));
  f.clock.set(t - 5'000'000);
  auto back = f.run(f.earn(1, 10, "e1"));
  CHECK(f.led->read_entry(back.seq)->header.committed_at_us == t);
  f.reopen();  // the floor comes back from the newest entry
  auto reopened = f.run(f.earn(1, 10, "e2"));
  CHECK(f.led->read_entry(reopened.seq)->header.committed_at_us == t);
  f.clock.set(t + 7);
  auto forward = f.run(f.earn(1, 10, "e3"));
  CHECK(f.led->read_entry(forward.seq)->header.committed_at_us == t + 7);
}

TEST_CASE("a partner burn of two brands' points posts points and money that balance apart, and verify passes",
          "[ledger]") {
  fixture f;
  f.run(f.enroll(1));
  REQUIRE(f.run(earn_of(f, 1, 1, 100, "e1")).code == errc::ok);  // lot 1
  REQUIRE(f.run(earn_of(f, 1, 2, 100, "e2")).code == errc::ok);  // lot 2
  // 30 points of brand 1 at 3/2: 45; 20 of brand 2 at 7/3: 46 (46.67 rounded down).
  auto out = f.run(partner_burn(1, 9, {{1, 1, 30, 3, 2}, {2, 2, 20, 7, 3}}, "b1"));
  REQUIRE(out.code == errc::ok);
  CHECK(out.balance == 150);
  auto e = f.led->read_entry(out.seq);
  REQUIRE(e);
  CHECK(e->header.partner_id == 9);
  CHECK(e->header.kind == static_cast<std::uint16_t>(entry_kind::partner_burn));
  CHECK(e->postings.size() == 6);
  auto accounts =
    f.led->load_accounts({settlement_acct(1), settlement_acct(2), payable(9), receivable(9), redeemed(2)});
  REQUIRE(accounts.size() == 5);
  CHECK(accounts[0].debit_total == 45);
  CHECK(accounts[0].credit_total == 0);
  CHECK(accounts[1].debit_total == 46);
  CHECK(accounts[2].credit_total == 91);
  CHECK(accounts[3].posting_count == 0);  // never posted to: zeroes
  CHECK(accounts[4].credit_total == 20);
  auto rep = f.led->verify();
  INFO(all_problems(rep));
  CHECK(rep.ok);
  CHECK(rep.settlements == 2);
  f.reopen();  // checkpointed on close: now from the table
  CHECK(f.led->load_accounts({payable(9)}).at(0).credit_total == 91);
  CHECK(f.led->verify().ok);
}

TEST_CASE("the writer refuses with internal_error an entry whose money is not what its settle records say, posts "
          "nothing of it and goes on",
          "[ledger]") {
  fixture f;
  f.run(f.enroll(1));
  f.run(earn_of(f, 1, 1, 100, "e1"));
  const auto before = f.led->last_seq();
  auto owner = std::make_shared<recording_owner>();
  // One unit more to the partner than the brand owes (the money still balances).
  auto more = partner_burn(1, 9, {{1, 1, 30, 3, 2}}, "b1");
  for (auto& p : more.postings)
    if (p.account == payable(9) || p.account == settlement_acct(1))
      p.amount += 1;
  CHECK(f.run(std::move(more), owner).code == errc::internal_error);
  // 30 points at 7/4 is 52.5: an amount of 53, with postings that follow it.
  auto rounded_up = partner_burn(1, 9, {{1, 1, 30, 7, 4}}, "b1");
  for (auto& d : rounded_up.details)
    if (d.kind == static_cast<std::uint16_t>(detail_kind::settle))
      d.b += 1;
  for (auto& p : rounded_up.postings)
    if (p.account == payable(9) || p.account == settlement_acct(1))
      p.amount += 1;
  CHECK(f.run(std::move(rounded_up), owner).code == errc::internal_error);
  // Money postings without a settle record.
  auto unexplained = f.earn(1, 10, "e2");
  unexplained.postings.push_back(debit(receivable(9), 5));
  unexplained.postings.push_back(credit(settlement_acct(1), 5));
  CHECK(f.run(std::move(unexplained), owner).code == errc::internal_error);
  CHECK(owner->rejections == std::vector<errc>(3, errc::internal_error));
  CHECK(f.led->last_seq() == before);
  CHECK_FALSE(f.led->find_txn("b1"));
  CHECK(f.led->load_accounts({payable(9)}).at(0).posting_count == 0);
  auto fine = f.run(partner_burn(1, 9, {{1, 1, 30, 3, 2}}, "b1"));
  CHECK(fine.code == errc::ok);
  CHECK(fine.seq == before + 1);
  auto rep = f.led->verify();
  INFO(all_problems(rep));
  CHECK(rep.ok);
}

TEST_CASE("an incremental checkpoint is consistent at every commit and a ledger closed without finishing one "
          "reopens with everything",
          "[ledger]") {
  // Generations of 20 changed accounts written 3 records a commit: most
  // commits leave a generation half in the table, with records newer than
  // accounts_seq. verify, account flows and the replay at the next open must
  // each take every record for what it holds. The close here only skips its
  // checkpoint (checkpoint_on_close false); a process killed inside a
  // checkpoint's commit is tests/crash_test.cpp's.
  fixture f;
  f.reopen(0, /*checkpoint_accounts*/ 20, /*checkpoint_on_close*/ false, /*checkpoint_chunk*/ 3);
  const auto t0 = f.clock.now_us();
  std::map<std::uint64_t, std::int64_t> expect;
  std::int64_t issued_total = 0;
  bool saw_partial = false;
  for (std::uint64_t m = 1; m <= 60; ++m) {
    f.run(f.enroll(m));
    f.clock.set(t0 + m * 10);
    const auto pts = static_cast<std::int64_t>(m % 7 + 1);
    REQUIRE(f.run(f.earn(m, pts, "i" + std::to_string(m))).code == errc::ok);
    expect[m] = pts;
    issued_total += pts;
    if (m % 4 == 0) {  // a member earns again: its account is in the cache and maybe in `frozen`
      REQUIRE(f.run(f.earn(m / 2, 1, "j" + std::to_string(m))).code == errc::ok);
      expect[m / 2] += 1;
      issued_total += 1;
    }
    auto rep = f.led->verify();
    INFO("after member " << m << ": " << all_problems(rep));
    REQUIRE(rep.ok);
    saw_partial = saw_partial || f.led->stats().checkpoint_pending > 0;
    std::string err;
    auto fl = f.led->account_flows({issued(1)}, t0 + 300, t0 + 1'000'000, err);
    INFO(err);
    REQUIRE(fl);
    CHECK(static_cast<std::int64_t>(fl->accounts[0].opening_debit + fl->accounts[0].debit) == issued_total);
  }
  CHECK(saw_partial);
  CHECK(f.led->stats().checkpoints >= 3);
  // Into the middle of one: frozen, sorted, and some of its records written
  // (records written since the last completed checkpoint, and more pending).
  std::uint64_t done = f.led->stats().checkpoints, written_at_done = f.led->stats().checkpoint_accounts;
  auto midway = [&] {
    auto st = f.led->stats();
    if (st.checkpoints != done) {
      done = st.checkpoints;
      written_at_done = st.checkpoint_accounts;
    }
    return st.checkpoint_pending > 0 && st.checkpoint_accounts > written_at_done;
  };
  for (std::uint64_t m = 61; !midway(); ++m) {
    REQUIRE(m < 400);
    f.run(f.enroll(m));
    REQUIRE(f.run(f.earn(m, 2, "i" + std::to_string(m))).code == errc::ok);
    expect[m] = 2;
    issued_total += 2;
  }
  const auto seq = f.led->last_seq();
  f.reopen(0, 20, false, 3);  // the table as a kill -9 in the middle of a generation leaves it
  CHECK(f.led->last_seq() == seq);
  for (auto [m, pts] : expect)
    CHECK(f.led->load_member(m)->balance() == pts);
  CHECK(f.led->load_account(issued(1))->debit_total == static_cast<std::uint64_t>(issued_total));
  auto rep = f.led->verify();
  INFO(all_problems(rep));
  CHECK(rep.ok);
  CHECK(f.run(f.earn(5, 1, "i5")).replayed);
  f.reopen();  // the instance that replayed closes like a crash too (checkpoint_on_close false)
  f.reopen();  // this one closed cleanly: it wrote the rest of the generation and every newer balance
  CHECK(f.led->verify().checkpoint_seq == seq);
  CHECK(f.led->verify().ok);
}

TEST_CASE("a checkpoint in progress is finished while no operations come", "[ledger]") {
  fixture f;
  f.reopen(0, /*checkpoint_accounts*/ 20, /*checkpoint_on_close*/ true, /*checkpoint_chunk*/ 3);
  for (std::uint64_t m = 1; m <= 60; ++m) {
    f.run(f.enroll(m));
    REQUIRE(f.run(f.earn(m, 5, "q" + std::to_string(m))).code == errc::ok);
    if (f.led->stats().checkpoint_pending > 0)
      break;  // a generation frozen, a chunk of it written
  }
  REQUIRE(f.led->stats().checkpoint_pending > 0);
  const auto seq = f.led->last_seq();
  const auto done_before = f.led->stats().checkpoints;
  bool finished = false;
  for (int i = 0; i < 500 && !finished; ++i) {  // chunks every 20 ms; well within 10 s
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    finished = f.led->stats().checkpoint_pending == 0;
  }
  CHECK(finished);
  CHECK(f.led->stats().checkpoints == done_before + 1);
  CHECK(f.led->last_seq() == seq);  // nothing posted: commits of account records only
  auto rep = f.led->verify();
  INFO(all_problems(rep));
  CHECK(rep.ok);
}

TEST_CASE("account flows give an account's totals before a period and its movement inside it, wherever the last "
          "checkpoint lies",
          "[ledger]") {
  fixture f;
  f.reopen(0, 1000000, /*checkpoint_on_close*/ false);
  const auto t0 = f.clock.now_us(), t1 = t0 + 1000, t2 = t0 + 2000;
  f.run(f.enroll(1));           // 1
  f.run(f.earn(1, 100, "e1"));  // 2
  f.clock.set(t1);
  f.run(f.earn(1, 50, "e2"));  // 3
  const std::vector<std::uint64_t> asked{member_acct(1), issued(1), redeemed(1)};
  std::string err;
  {
    INFO("no checkpoint yet: the entries before the period are added to the empty table");
    auto fl = f.led->account_flows(asked, t1, t2, err);
    INFO(err);
    REQUIRE(fl);
    CHECK(fl->period.first_seq == 3);
    CHECK(fl->period.last_seq == 3);
    CHECK(fl->accounts[0].opening_credit == 100);
    CHECK(fl->accounts[0].credit == 50);
    CHECK(fl->accounts[0].postings == 1);
    CHECK(fl->accounts[1].opening_debit == 100);
  }
  f.reopen(0, 1000000, true);
  f.run(f.redeem(1, 30, "r1"));              // 4
  f.reopen(0, 1000000, false);               // checkpoint through 4, inside the period
  REQUIRE(f.led->verify().checkpoint_seq == 4);
  f.clock.set(t2);
  f.run(f.earn(1, 7, "e3"));  // 5
  {
    INFO("checkpoint at the period's end: the period's entries are taken out of the table");
    auto fl = f.led->account_flows(asked, t1, t2, err);
    INFO(err);
    REQUIRE(fl);
    CHECK(fl->period.first_seq == 3);
    CHECK(fl->period.last_seq == 4);
    CHECK(fl->accounts[0].opening_credit == 100);
    CHECK(fl->accounts[0].opening_debit == 0);
    CHECK(fl->accounts[0].credit == 50);
    CHECK(fl->accounts[0].debit == 30);
    CHECK(fl->accounts[0].postings == 2);
    CHECK(fl->accounts[1].opening_debit == 100);
    CHECK(fl->accounts[1].debit == 50);
    CHECK(fl->accounts[2].opening_credit == 0);
    CHECK(fl->accounts[2].credit == 30);
  }
  {
    INFO("checkpoint after the period");
    auto fl = f.led->account_flows(asked, t0, t1, err);
    REQUIRE(fl);
    CHECK(fl->period.first_seq == 1);
    CHECK(fl->period.last_seq == 2);
    CHECK(fl->accounts[0].opening_credit == 0);
    CHECK(fl->accounts[0].credit == 100);
  }
  {
    INFO("checkpoint before the period, which runs to the newest entry");
    auto fl = f.led->account_flows(asked, t2, 0, err);
    REQUIRE(fl);
    CHECK(fl->period.to_us == t2 + 1);
    CHECK(fl->period.first_seq == 5);
    CHECK(fl->period.last_seq == 5);
    CHECK(fl->accounts[0].opening_credit == 150);
    CHECK(fl->accounts[0].opening_debit == 30);
    CHECK(fl->accounts[0].credit == 7);
  }
  {
    INFO("the whole journal moves each account to its balance now; a period after it is empty");
    auto all = f.led->account_flows(asked, 0, 0, err);
    REQUIRE(all);
    auto now = f.led->load_accounts(asked);
    for (std::size_t i = 0; i < asked.size(); ++i) {
      CHECK(all->accounts[i].debit == now[i].debit_total);
      CHECK(all->accounts[i].credit == now[i].credit_total);
      CHECK(all->accounts[i].postings == now[i].posting_count);
    }
    auto after = f.led->account_flows(asked, t2 + 10, 0, err);
    REQUIRE(after);
    CHECK(after->period.last_seq < after->period.first_seq);
    CHECK(after->accounts[0].opening_credit == 157);
    CHECK(after->accounts[0].postings == 0);
  }
  CHECK_FALSE(f.led->account_flows(asked, t2, t1, err));
  CHECK(err.find("before its end") != std::string::npos);
  CHECK_FALSE(f.led->account_flows(asked, t1, t1, err));
}

TEST_CASE("a settlement statement reconciles with the party's accounts, counts reversals negative and pages every "
          "line exactly once",
          "[ledger]") {
  fixture f;
  const auto t0 = f.clock.now_us(), t1 = t0 + 1000, t2 = t0 + 2000;
  f.run(f.enroll(1));
  f.run(earn_of(f, 1, 1, 100, "e1"));                                 // lot 1
  f.run(earn_of(f, 1, 2, 100, "e2"));                                 // lot 2
  REQUIRE(f.run(partner_burn(1, 9, {{1, 1, 10, 3, 2}}, "b0")).code == errc::ok);  // before: 15 to partner 9
  f.clock.set(t1);
  const burn_part b1_of_burn1{1, 1, 30, 3, 2};                       // 45
  auto burn1 = f.run(partner_burn(1, 9, {b1_of_burn1, {2, 2, 20, 7, 3}}, "b1"));   // 45 + 46
  auto burn2 = f.run(partner_burn(1, 9, {{1, 1, 10, 3, 2}, {2, 2, 10, 7, 3}}, "b2"));  // 15 + 23
  auto reversal = f.run(burn_reversal(1, 9, b1_of_burn1, burn1.seq, "v1"));          // -45
  auto earned = f.run(partner_earn(f, 1, 9, 1, 44, 1, 2, "pe"));                     // partner pays brand 1: 22
  for (const auto* o : {&burn1, &burn2, &reversal, &earned})
    REQUIRE(o->code == errc::ok);
  f.clock.set(t2);
  REQUIRE(f.run(partner_burn(1, 9, {{1, 1, 5, 3, 2}}, "b3")).code == errc::ok);     // after the period
  std::string err;

  auto whole = f.led->settlement(party_kind::partner, 9, t1, t2, 0, 100, err);
  INFO(err);
  REQUIRE(whole);
  CHECK(whole->line_count == 6);
  REQUIRE(whole->lines.size() == 6);
  CHECK(whole->next_after == 0);
  CHECK(whole->opening == 15);
  CHECK(whole->due_total == 45 + 46 + 15 + 23 - 45 - 22);
  CHECK(whole->closing - whole->opening == whole->due_total);
  CHECK(whole->points_total == 30 + 20 + 10 + 10 - 30 - 44);
  for (const auto& line : whole->lines)
    if (line.seq == reversal.seq) {
      CHECK((line.settle.flags & detail_reversal) != 0);
      CHECK(line.due == -45);
      CHECK(line.entry_kind == static_cast<std::uint16_t>(entry_kind::reverse_redemption));
      CHECK(line.txn_id == "v1");
      CHECK(line.member_id == 1);
      CHECK(line.committed_at_us == t1);
    }
  CHECK(whole->lines.back().seq == earned.seq);
  CHECK(whole->lines.back().due == -22);  // the partner pays

  auto brand = f.led->settlement(party_kind::brand, 1, t1, t2, 0, 100, err);
  REQUIRE(brand);
  CHECK(brand->line_count == 4);
  CHECK(brand->opening == -15);
  CHECK(brand->due_total == -45 - 15 + 45 + 22);
  CHECK(brand->closing - brand->opening == brand->due_total);

  for (std::size_t limit : {1, 2, 3, 5}) {
    INFO("limit " << limit);
    std::vector<std::pair<std::uint64_t, std::int64_t>> paged;
    std::uint64_t after = 0;
    for (int pages = 0; pages < 10; ++pages) {
      auto page = f.led->settlement(party_kind::partner, 9, t1, t2, after, limit, err);
      REQUIRE(page);
      CHECK(page->due_total == whole->due_total);  // totals are the period's, whatever the page
      CHECK(page->line_count == 6);
      for (const auto& line : page->lines) {
        CHECK(line.seq > after);
        paged.emplace_back(line.seq, line.due);
      }
      after = page->next_after;
      if (after == 0)
        break;
      CHECK(after == page->lines.back().seq);
    }
    std::vector<std::pair<std::uint64_t, std::int64_t>> expected;
    for (const auto& line : whole->lines)
      expected.emplace_back(line.seq, line.due);
    CHECK(paged == expected);
  }
  auto first = f.led->settlement(party_kind::partner, 9, t1, t2, 0, 3, err);
  REQUIRE(first);
  CHECK(first->lines.size() == 2);  // the next entry's two lines would not fit
  CHECK(first->next_after == burn1.seq);
  auto totals = f.led->settlement(party_kind::partner, 9, t1, t2, 0, 0, err);
  REQUIRE(totals);
  CHECK(totals->lines.empty());
  CHECK(totals->due_total == whole->due_total);
  CHECK(totals->next_after == 0);

  auto rep = f.led->verify();
  INFO(all_problems(rep));
  CHECK(rep.ok);
  CHECK(rep.settlements == 8);
}

TEST_CASE("verify reports a malformed settle record, money postings its records do not imply, a party whose records "
          "and accounts disagree and an account of unknown kind",
          "[ledger]") {
  fixture f;
  f.run(f.enroll(1));
  f.run(earn_of(f, 1, 1, 100, "e1"));                                    // 2
  const auto bad_amount = f.run(partner_burn(1, 9, {{1, 1, 30, 3, 2}}, "b1")).seq;  // 45
  const auto bad_payee = f.run(partner_burn(1, 9, {{1, 1, 10, 3, 2}}, "b2")).seq;   // 15
  REQUIRE(f.led->verify().ok);
  f.tamper([&](MDB_txn* txn) {
    rewrite_entry(txn, bad_amount, [](journal_header&, std::vector<posting>&, std::vector<entry_detail>& ds) {
      ds.at(1).b += 1;
    });
    rewrite_entry(txn, bad_payee, [](journal_header&, std::vector<posting>& ps, std::vector<entry_detail>&) {
      for (auto& p : ps)
        if (p.account == payable(9))
          p.account = payable(8);
    });
    rewrite_entry(txn, 2, [](journal_header&, std::vector<posting>& ps, std::vector<entry_detail>&) {
      ps.at(0).account = (std::uint64_t{9} << 56) | 1;
    });
  });
  auto all = f.failed_verify();
  INFO(all);
  const auto at = [](std::uint64_t seq) { return "entry " + std::to_string(seq) + ": "; };
  CHECK(all.find(at(bad_amount) + "detail 1: a settle record's amount is not floor(points x rate)") !=
        std::string::npos);
  CHECK(all.find(at(bad_payee) + "its money postings are not what its settle records imply") != std::string::npos);
  CHECK(all.find("settlement of partner 8: its records sum to 0 but its accounts to 15") != std::string::npos);
  CHECK(all.find("settlement of partner 9: its records sum to 15 but its accounts to 45") != std::string::npos);
  CHECK(all.find("settlement of brand 1: its records sum to -15 but its accounts to -60") != std::string::npos);
  CHECK(all.find(at(2) + "posting to account kind 9(1) of unknown kind") != std::string::npos);
}

TEST_CASE("the txn filter never forgets an id it was given and rarely claims one it was not", "[ledger][filter]") {
  loyalty::ledger::detail::txn_filter f(1u << 20);
  REQUIRE(f.enabled());
  for (int i = 0; i < 20000; ++i)
    f.add("seen-" + std::to_string(i));
  for (int i = 0; i < 20000; ++i)
    REQUIRE(f.maybe("seen-" + std::to_string(i)));  // no false negatives, ever
  int false_positives = 0;
  for (int i = 0; i < 20000; ++i)
    false_positives += f.maybe("never-" + std::to_string(i)) ? 1 : 0;
  CHECK(false_positives < 200);  // 1 MiB for 20,000 ids: far under 1 %
  // Off: every question goes to LMDB.
  loyalty::ledger::detail::txn_filter off(0);
  CHECK_FALSE(off.enabled());
  CHECK(off.maybe("anything"));
}

// -- issue 17: the batch command and the journal digest -------------------------------------

namespace {

// A leader whose writer hands every batch's command to `log` before applying it.
struct leader_fixture : fixture {
  std::mutex log_mtx;
  std::vector<std::string> log;
  bool accept = true;  // what replicate answers
  leader_fixture() {
    replicate = [this](std::string_view c) -> std::uint64_t {
      std::lock_guard<std::mutex> g(log_mtx);
      if (!accept)
        return 0;
      log.emplace_back(c);
      return log.size();  // its log index
    };
    reopen(100'000);  // a wide window: ops submitted together share a batch
  }
};

// A leader whose log is asynchronous: proposals are kept until the test
// answers them (own_committed / own_failed), as a Raft log does.
struct pipeline_fixture : fixture {
  std::mutex prop_mtx;
  std::condition_variable prop_cv;
  std::vector<std::pair<std::string, std::uint64_t>> proposed;  // command, id
  explicit pipeline_fixture(std::uint32_t depth) {
    propose = [this](std::string c, std::uint64_t id) {
      std::lock_guard<std::mutex> g(prop_mtx);
      proposed.emplace_back(std::move(c), id);
      prop_cv.notify_all();
      return true;
    };
    pipeline_batches = depth;
    reopen(0);
  }
  // Waits until `n` proposals were made; false if not within `patience`.
  bool proposals(std::size_t n, std::chrono::milliseconds patience = 20s) {
    std::unique_lock<std::mutex> g(prop_mtx);
    return prop_cv.wait_for(g, patience, [&] { return proposed.size() >= n; });
  }
  std::size_t proposal_count() {
    std::lock_guard<std::mutex> g(prop_mtx);
    return proposed.size();
  }
  std::pair<std::string, std::uint64_t> proposal(std::size_t i) {
    std::lock_guard<std::mutex> g(prop_mtx);
    return proposed.at(i);
  }
  std::uint64_t send(op o) {
    o.target = out;
    o.tag = tag++;
    const auto t = o.tag;
    led->submit(std::move(o));
    return t;
  }
};

} // namespace

TEST_CASE("a pipelined leader proposes the next batches before the first is committed, applies each in log order "
          "when the log answers it, answers a failed one unavailable, and holds back a batch that refers to one "
          "not applied yet",
          "[ledger][replication]") {
  pipeline_fixture lead(4);
  const auto t_enroll = lead.send(lead.enroll(1));
  REQUIRE(lead.proposals(1));
  const auto t_a = lead.send(lead.earn(1, 100, "a"));
  REQUIRE(lead.proposals(2));  // proposed while the first is not committed
  CHECK(lead.led->last_seq() == 0);  // nothing applied before the log answers

  lead.led->own_committed(lead.proposal(0).second, 1);
  lead.led->own_committed(lead.proposal(1).second, 2);
  CHECK(lead.out->by_tag(t_enroll).code == errc::ok);
  const auto a = lead.out->by_tag(t_a);
  CHECK(a.code == errc::ok);
  CHECK(a.seq == 2);
  CHECK(lead.led->applied_log_index() == 2);

  // A proposal the log fails: answered unavailable, nothing written.
  const auto t_b = lead.send(lead.earn(1, 50, "b"));
  REQUIRE(lead.proposals(3));
  lead.led->own_failed(lead.proposal(2).second);
  CHECK(lead.out->by_tag(t_b).code == errc::unavailable);
  CHECK_FALSE(lead.led->find_txn("b"));
  CHECK(lead.led->last_seq() == 2);

  // An op naming one of a batch still in flight by its cell waits for it:
  // its command must carry that op's seq.
  auto cell = std::make_shared<std::atomic<std::uint64_t>>(0);
  op c = lead.earn(1, 10, "c");
  c.seq_to = cell;
  const auto t_c = lead.send(std::move(c));
  REQUIRE(lead.proposals(4));
  op d = lead.earn(1, 20, "d");
  d.ref_seq_from = cell;
  const auto t_d = lead.send(std::move(d));
  CHECK_FALSE(lead.proposals(5, 300ms));  // held back
  lead.led->own_committed(lead.proposal(3).second, 4);
  CHECK(lead.out->by_tag(t_c).code == errc::ok);
  REQUIRE(lead.proposals(5));
  command cmd;
  std::string err;
  REQUIRE(decode_command(lead.proposal(4).first, cmd, err));
  REQUIRE(cmd.ops.size() == 1);
  CHECK(cmd.ops[0].ref_seq == cell->load());  // the seq itself, known by now
  CHECK(cmd.ops[0].ref_seq != 0);
  lead.led->own_committed(lead.proposal(4).second, 5);
  CHECK(lead.out->by_tag(t_d).code == errc::ok);
  CHECK(lead.led->applied_log_index() == 5);
  CHECK(lead.led->verify().ok);
}

TEST_CASE("a follower applying the leader's commands holds the same journal, byte for byte, and the same digest",
          "[ledger][replication]") {
  leader_fixture lead;
  fixture follow;
  // One batch: enrollments, earns, a replay and a conflict of a txn id of
  // the same batch, a redeem the writer refuses, aliases (one taken), a
  // barrier, and an entry that names another of the batch by its cell.
  std::vector<op> ops;
  ops.push_back(lead.enroll(1));
  ops.push_back(lead.enroll(2));
  ops.push_back(lead.earn(1, 500, "e1"));
  ops.push_back(lead.earn(1, 500, "e1"));          // replay of the one before
  ops.push_back(lead.earn(1, 700, "e1", 99));      // same txn, other content: conflict
  ops.push_back(lead.redeem(2, 50, "r-short"));    // member 2 has nothing: insufficient_points
  ops.push_back(lead.earn(2, 300, "e2"));
  ops.push_back(link(1, "card-1", "l1"));
  ops.push_back(link(2, "card-1", "l2"));          // taken by member 1: alias_taken
  {
    op b;
    b.kind = op_kind::barrier;
    b.member_id = 1;
    ops.push_back(std::move(b));
  }
  auto cell = std::make_shared<std::atomic<std::uint64_t>>(0);
  ops.push_back(lead.earn(1, 10, "e-cell"));
  ops.back().seq_to = cell;
  ops.push_back(lead.earn(1, 20, "e-ref"));
  ops.back().ref_seq_from = cell;
  std::vector<std::uint64_t> tags;
  for (auto& o : ops) {
    o.target = lead.out;
    o.tag = lead.tag++;
    tags.push_back(o.tag);
    lead.led->submit(std::move(o));
  }
  std::vector<outcome> outs;
  for (auto t : tags)
    outs.push_back(lead.out->by_tag(t));
  CHECK(outs[2].code == errc::ok);
  CHECK(outs[3].replayed);
  CHECK(outs[4].code == errc::txn_id_conflict);
  CHECK(outs[5].code == errc::insufficient_points);
  CHECK(outs[8].code == errc::alias_taken);
  // Then a second batch, which names an entry of the first by its seq.
  op later = lead.earn(2, 40, "e-later");
  later.ref_seq_from = cell;
  REQUIRE(lead.run(std::move(later)).code == errc::ok);
  REQUIRE(lead.log.size() >= 2);

  for (std::size_t i = 0; i < lead.log.size(); ++i) {
    std::string err;
    REQUIRE(follow.led->apply_command(lead.log[i], i + 1, err));
  }
  REQUIRE(follow.led->last_seq() == lead.led->last_seq());
  test::same_journals(*lead.led, *follow.led);
  auto e_ref = follow.led->read_entry(follow.led->last_seq() - 1);
  auto e_later = follow.led->read_entry(follow.led->last_seq());
  REQUIRE(e_ref);
  REQUIRE(e_later);
  CHECK(e_ref->header.ref_seq == cell->load());
  CHECK(e_later->header.ref_seq == cell->load());
  CHECK(cell->load() != 0);
  const auto dl = lead.led->journal_digest();
  const auto df = follow.led->journal_digest();
  CHECK(dl.seq == lead.led->last_seq());
  CHECK(df.seq == dl.seq);
  CHECK(df.digest == dl.digest);
  CHECK(follow.led->find_alias("card-1") == std::optional<std::uint64_t>(1));
  CHECK(follow.led->find_txn("e1") == lead.led->find_txn("e1"));
  auto vl = lead.led->verify();
  auto vf = follow.led->verify();
  INFO(all_problems(vf));
  CHECK(vl.ok);
  CHECK(vf.ok);
  CHECK(vf.journal_digest == df.digest);
  // And after both reopen (the follower's state is its own data directory).
  follow.reopen();
  CHECK(follow.led->journal_digest().digest == dl.digest);
}

TEST_CASE("a command cut short or changed is refused whole and writes nothing", "[ledger][replication]") {
  leader_fixture lead;
  REQUIRE(lead.run(lead.enroll(1)).code == errc::ok);
  REQUIRE(lead.run(lead.earn(1, 100, "e1")).code == errc::ok);
  REQUIRE(lead.log.size() == 2);
  const std::string good = lead.log[1];
  fixture follow;
  std::string err;
  REQUIRE(follow.led->apply_command(lead.log[0], 1, err));
  const auto before = follow.led->last_seq();
  for (std::size_t n = 0; n < good.size(); ++n) {
    err.clear();
    CHECK_FALSE(follow.led->apply_command(std::string_view(good).substr(0, n), 2, err));
    CHECK_FALSE(err.empty());
  }
  CHECK_FALSE(follow.led->apply_command(good + "x", 2, err));
  CHECK(err.find("after its last op") != std::string::npos);
  std::string bad_kind = good;
  bad_kind[16] = 7;  // the first op's kind
  CHECK_FALSE(follow.led->apply_command(bad_kind, 2, err));
  CHECK(err.find("unknown op kind 7") != std::string::npos);
  CHECK(follow.led->last_seq() == before);
  REQUIRE(follow.led->apply_command(good, 2, err));
  CHECK(follow.led->journal_digest().digest == lead.led->journal_digest().digest);
  CHECK(follow.led->applied_log_index() == 2);
  // The log replayed from its start (a node restarting): the entries this
  // ledger holds are skipped, nothing is posted twice.
  const auto seq = follow.led->last_seq();
  REQUIRE(follow.led->apply_command(lead.log[0], 1, err));
  REQUIRE(follow.led->apply_command(good, 2, err));
  CHECK(follow.led->last_seq() == seq);
  follow.reopen();
  CHECK(follow.led->applied_log_index() == 2);
  REQUIRE(follow.led->apply_command(good, 2, err));
  CHECK(follow.led->last_seq() == seq);
  CHECK(follow.led->journal_digest().digest == lead.led->journal_digest().digest);
}

TEST_CASE("a batch the log refuses is answered unavailable, tells its owners and writes nothing",
          "[ledger][replication]") {
  leader_fixture lead;
  REQUIRE(lead.run(lead.enroll(1)).code == errc::ok);
  const auto seq = lead.led->last_seq();
  const auto digest = lead.led->journal_digest();
  lead.accept = false;
  auto owner = std::make_shared<recording_owner>();
  auto out = lead.run(lead.earn(1, 100, "e1"), owner);
  CHECK(out.code == errc::unavailable);
  CHECK(owner->rejections == std::vector<errc>{errc::unavailable});
  CHECK(lead.led->last_seq() == seq);
  CHECK_FALSE(lead.led->find_txn("e1"));
  CHECK(lead.led->journal_digest().digest == digest.digest);
  // A retry once the log takes it again posts it.
  lead.accept = true;
  CHECK(lead.run(lead.earn(1, 100, "e1")).code == errc::ok);
  CHECK(lead.led->verify().ok);
}

TEST_CASE("the journal digest is recorded with each commit, rebuilt for a directory without it, and verify checks it",
          "[ledger][replication]") {
  fixture f;
  REQUIRE(f.run(f.enroll(1)).code == errc::ok);
  REQUIRE(f.run(f.earn(1, 100, "e1")).code == errc::ok);
  const auto d = f.led->journal_digest();
  CHECK(d.seq == 2);
  // Folded by hand over the journal values.
  {
    std::string err;
    auto j = f.led->read_journal(1, 10, err);
    REQUIRE(j);
    std::uint64_t x = journal_digest_basis;
    for (const auto& e : j->entries) {
      std::string v(reinterpret_cast<const char*>(&e.header), sizeof e.header);
      v.append(reinterpret_cast<const char*>(e.postings.data()), e.postings.size() * sizeof(posting));
      v += e.txn_id;
      v.append(reinterpret_cast<const char*>(e.details.data()), e.details.size() * sizeof(entry_detail));
      x = journal_digest_step(x, v.data(), v.size());
    }
    CHECK(x == d.digest);
  }
  // A directory written before the digest existed: the key is gone.
  f.tamper([](MDB_txn* txn) {
    MDB_dbi meta;
    REQUIRE(mdb_dbi_open(txn, "meta", 0, &meta) == 0);
    MDB_val k{14, const_cast<char*>("journal_digest")};
    REQUIRE(mdb_del(txn, meta, &k, nullptr) == 0);
  });
  f.reopen();
  CHECK(f.led->journal_digest().digest == d.digest);
  CHECK(f.led->verify().ok);
  // A recorded digest that is not the journal's.
  f.tamper([](MDB_txn* txn) {
    MDB_dbi meta;
    REQUIRE(mdb_dbi_open(txn, "meta", 0, &meta) == 0);
    digest_record rec{2, 12345};
    MDB_val k{14, const_cast<char*>("journal_digest")}, v{sizeof rec, &rec};
    REQUIRE(mdb_put(txn, meta, &k, &v, 0) == 0);
  });
  auto all = f.failed_verify();
  INFO(all);
  CHECK(all.find("the recorded journal digest 12345 is not the journal's") != std::string::npos);
}

TEST_CASE("commands the log committed while a batch was being replicated are applied before that batch",
          "[ledger][replication]") {
  // An entry of an earlier leader, committed by the log just before this
  // node's batch: the state machine queues it while the writer waits.
  leader_fixture earlier;
  REQUIRE(earlier.run(earlier.enroll(7)).code == errc::ok);
  REQUIRE(earlier.log.size() == 1);
  const std::string foreign = earlier.log[0];
  fixture lead;
  std::string err;
  lead.replicate = [&](std::string_view) -> std::uint64_t {
    std::string e;
    if (!lead.led->enqueue_command(foreign, 1, e))
      return 0;
    return 2;
  };
  lead.reopen();
  REQUIRE(lead.run(lead.enroll(1)).code == errc::ok);
  CHECK(lead.led->applied_log_index() == 2);
  auto first = lead.led->read_entry(1);
  auto second = lead.led->read_entry(2);
  REQUIRE(first);
  REQUIRE(second);
  CHECK(first->header.member_id == 7);
  CHECK(second->header.member_id == 1);
  CHECK(lead.led->verify().ok);
}

// -- erasure (issue 19 item 3, ledger/sealing.hpp) ---------------------------------

namespace {

op consent_with_source(std::uint64_t m, std::string_view txn, std::string_view source) {
  op o = bookkeeping(entry_kind::consent, m, txn, {fixture::detail(detail_kind::consent, 1, 1, 1)});
  append_note(o.details, source);
  return o;
}

op erase_of(std::uint64_t m, std::string_view txn) { return bookkeeping(entry_kind::erase, m, txn, {}); }

} // namespace

TEST_CASE("an erase deletes the member's key and aliases, hides its consent source from readers, refuses its later "
          "entries, and verify still passes, across a reopen",
          "[ledger][erasure]") {
  fixture f;
  f.run(f.enroll(1));
  REQUIRE(f.run(link(1, "card-1", "l1")).code == errc::ok);
  auto c = f.run(consent_with_source(1, "c1", "kiosk at store 12"));
  REQUIRE(c.code == errc::ok);
  REQUIRE(f.run(f.earn(1, 40, "e1")).code == errc::ok);
  // Sealed on disk, readable while the key exists.
  auto sealed = f.led->read_entry(c.seq);
  REQUIRE(sealed);
  CHECK(note_text(sealed->details) == "kiosk at store 12");

  auto x = f.run(erase_of(1, "x1"));
  REQUIRE(x.code == errc::ok);
  auto check = [&] {
    CHECK_FALSE(f.led->find_alias("card-1"));
    auto gone = f.led->read_entry(c.seq);
    REQUIRE(gone);
    CHECK(note_text(gone->details).empty());
    CHECK(std::none_of(gone->details.begin(), gone->details.end(), [](const entry_detail& d) {
      return d.kind == static_cast<std::uint16_t>(detail_kind::note) ||
             d.kind == static_cast<std::uint16_t>(detail_kind::sealed_note);
    }));
    CHECK(f.run(f.earn(1, 5, "e2")).code == errc::member_erased);
    CHECK(f.run(erase_of(1, "x2")).code == errc::member_erased);
    auto again = f.run(erase_of(1, "x1"));
    CHECK(again.code == errc::ok);
    CHECK(again.replayed);
    CHECK(f.led->load_member(1)->balance() == 40);
    auto rep = f.led->verify();
    INFO(all_problems(rep));
    CHECK(rep.ok);
  };
  check();
  f.reopen();
  check();
  // The alias is free for a new member.
  f.run(f.enroll(2));
  REQUIRE(f.run(link(2, "card-1", "l2")).code == errc::ok);
  CHECK(f.led->find_alias("card-1") == std::optional<std::uint64_t>(2));
  CHECK(f.led->verify().ok);
}

TEST_CASE("verify reports an alias or a key left behind for an erased member", "[ledger][erasure]") {
  fixture f;
  f.run(f.enroll(1));
  REQUIRE(f.run(link(1, "card-1", "l1")).code == errc::ok);
  REQUIRE(f.run(erase_of(1, "x1")).code == errc::ok);
  REQUIRE(f.led->verify().ok);
  f.tamper([&](MDB_txn* txn) {
    MDB_dbi aliases = 0, keys = 0;
    REQUIRE(mdb_dbi_open(txn, "aliases", 0, &aliases) == 0);
    REQUIRE(mdb_dbi_open(txn, "member_keys", MDB_INTEGERKEY, &keys) == 0);
    const auto key = alias_key_of("card-1");
    std::uint64_t member = 1;
    MDB_val k{key.size(), const_cast<unsigned char*>(key.data())}, v{sizeof member, &member};
    REQUIRE(mdb_put(txn, aliases, &k, &v, 0) == 0);
    member_key secret{};
    MDB_val mk{sizeof member, &member}, mv{secret.size(), secret.data()};
    REQUIRE(mdb_put(txn, keys, &mk, &mv, 0) == 0);
  });
  const auto all = f.failed_verify();
  CHECK(all.find("who was erased") != std::string::npos);
  CHECK(all.find("its key is still stored") != std::string::npos);
}

TEST_CASE("a schema-8 directory's aliases, stored as text, are found by their hash after the upgrade", "[ledger][erasure]") {
  fixture f;
  f.run(f.enroll(1));
  f.tamper([&](MDB_txn* txn) {
    MDB_dbi aliases = 0, meta = 0;
    REQUIRE(mdb_dbi_open(txn, "aliases", 0, &aliases) == 0);
    REQUIRE(mdb_dbi_open(txn, "meta", 0, &meta) == 0);
    std::string text = "legacy-card";
    std::uint64_t member = 1, version = 8;
    MDB_val k{text.size(), text.data()}, v{sizeof member, &member};
    REQUIRE(mdb_put(txn, aliases, &k, &v, 0) == 0);
    std::string vk = "schema_version";
    MDB_val sk{vk.size(), vk.data()}, sv{sizeof version, &version};
    REQUIRE(mdb_put(txn, meta, &sk, &sv, 0) == 0);
  });
  f.reopen();
  CHECK(f.led->find_alias("legacy-card") == std::optional<std::uint64_t>(1));
  auto rep = f.led->verify();
  INFO(all_problems(rep));
  CHECK(rep.ok);
  // The member's erase removes the migrated row too.
  REQUIRE(f.run(erase_of(1, "x1")).code == errc::ok);
  CHECK_FALSE(f.led->find_alias("legacy-card"));
  CHECK(f.led->verify().ok);
}

TEST_CASE("a command carries a personal op's member key, and a command written before keys (LLC1) still decodes",
          "[ledger][erasure]") {
  fixture f;
  op linking = link(1, "card-1", "l1");
  linking.fresh_key = new_member_key();
  std::vector<op> batch;
  batch.push_back(f.earn(1, 10, "e1"));
  batch.push_back(std::move(linking));
  const auto bytes = encode_command(batch, 77);
  command cmd;
  std::string err;
  REQUIRE(decode_command(bytes, cmd, err));
  REQUIRE(cmd.ops.size() == 2);
  CHECK_FALSE(cmd.ops[0].fresh_key);
  REQUIRE(cmd.ops[1].fresh_key);
  CHECK(*cmd.ops[1].fresh_key == *batch[1].fresh_key);

  // The same earn alone as an LLC1 command: no key byte after the op.
  batch.resize(1);
  auto old = encode_command(batch, 77);
  REQUIRE(old.back() == '\0');
  old.pop_back();
  old[3] = '1';
  REQUIRE(decode_command(old, cmd, err));
  REQUIRE(cmd.ops.size() == 1);
  CHECK(cmd.ops[0].points == 10);
  CHECK_FALSE(cmd.ops[0].fresh_key);
  old[3] = '2';  // read as LLC2 it is cut short
  CHECK_FALSE(decode_command(old, cmd, err));
}

TEST_CASE("verify reports a risk table that disagrees with the member's block and breach entries", "[ledger][limits]") {
  fixture f;
  REQUIRE(f.run(f.enroll(1)).code == errc::ok);
  op block;
  block.kind = op_kind::post;
  block.entry = entry_kind::block;
  block.member_id = 1;
  block.brand_id = 1;
  block.set_txn("block-1");
  block.details = {fixture::detail(detail_kind::risk, 0, 0, static_cast<std::uint32_t>(risk_change::block))};
  REQUIRE(f.run(block).code == errc::ok);
  {
    auto rep = f.led->verify();
    CHECK(rep.ok);
  }
  f.tamper([&](MDB_txn* txn) {
    MDB_dbi risk;
    REQUIRE(mdb_dbi_open(txn, "risk", MDB_INTEGERKEY, &risk) == 0);
    std::uint64_t id = 1;
    risk_record rec{};
    MDB_val k{sizeof id, &id}, v{};
    REQUIRE(mdb_get(txn, risk, &k, &v) == 0);
    std::memcpy(&rec, v.mv_data, sizeof rec);
    CHECK(rec.flags == risk_blocked);
    rec.flags = 0;  // the table forgets the block
    MDB_val nv{sizeof rec, &rec};
    REQUIRE(mdb_put(txn, risk, &k, &nv, 0) == 0);
    std::uint64_t ghost = 99;
    MDB_val gk{sizeof ghost, &ghost};
    REQUIRE(mdb_put(txn, risk, &gk, &nv, 0) == 0);
  });
  auto all = f.failed_verify();
  INFO(all);
  CHECK(all.find("member 1: risk table says") != std::string::npos);
  CHECK(all.find("risk: member 99 is not enrolled") != std::string::npos);
}

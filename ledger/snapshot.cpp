// A cluster follower's snapshot install: the ledger's tables replaced by
// another node's copy inside the running environment (docs/ARCHITECTURE.md,
// "Snapshots and log compaction").
#include "config/log.hpp"
#include "config/thread_name.hpp"
#include "ledger/detail/impl.hpp"

#include <chrono>
#include <filesystem>

namespace loyalty::ledger {

namespace {

// The snapshot's environment, read-only and without a lock file (nothing
// else opens it), closed on scope exit.
struct source_env {
  MDB_env* env = nullptr;
  MDB_txn* txn = nullptr;
  ~source_env() {
    if (txn != nullptr)
      mdb_txn_abort(txn);
    if (env != nullptr)
      mdb_env_close(env);
  }
};

} // namespace

void ledger::impl::install_snapshot(const std::string& dir) {
  namespace fs = std::filesystem;
  const auto t0 = std::chrono::steady_clock::now();
  const std::string file = (fs::path(dir) / detail::data_file_name).string();
  auto fail = [&](const std::string& why) {
    detail::fail_stop("installing the snapshot " + file + " into data directory " + opts.dir + ": " + why);
  };
  std::string why;
  if (!detail::check_data_file(file, why))
    fail(why);
  source_env src;
  if (int rc = mdb_env_create(&src.env); rc != MDB_SUCCESS)
    fail(detail::mdb_error("mdb_env_create", rc));
  mdb_env_set_maxdbs(src.env, 16);
  if (int rc = mdb_env_open(src.env, file.c_str(), MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK, 0644); rc != MDB_SUCCESS)
    fail(std::string("cannot open it: ") + mdb_strerror(rc));
  if (int rc = mdb_txn_begin(src.env, nullptr, MDB_RDONLY, &src.txn); rc != MDB_SUCCESS)
    fail(detail::mdb_error("mdb_txn_begin", rc));

  // The checkpoint generation in progress describes the old contents: it
  // is dropped with them (the new ones carry their own accounts_seq).
  if (sorting.valid())
    sorting.get();
  flush_order.clear();
  flush_pos = 0;
  generation = false;

  MDB_txn* txn = nullptr;
  if (int rc = mdb_txn_begin(env, nullptr, 0, &txn); rc != MDB_SUCCESS)
    fail_stop("mdb_txn_begin", rc);
  std::uint64_t records = 0;
  for (const auto& t : tables) {
    MDB_dbi from = 0;
    if (int rc = mdb_dbi_open(src.txn, t.name, t.flags, &from); rc != MDB_SUCCESS)
      fail(std::string("its table ") + t.name + ": " + mdb_strerror(rc));
    const MDB_dbi to = db.*t.dbi;
    if (int rc = mdb_drop(txn, to, 0); rc != MDB_SUCCESS)
      fail_stop("emptying a table for a snapshot", rc);
    detail::cursor cur(src.txn, from);
    if (cur.rc() != MDB_SUCCESS)
      fail(detail::mdb_error("a cursor on its table", cur.rc()));
    MDB_val k{}, v{};
    int rc = mdb_cursor_get(cur.get(), &k, &v, MDB_FIRST);
    for (; rc == MDB_SUCCESS; rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT)) {
      // Same table flags, so the same key order: appended, page by page.
      put_or_die(txn, to, k, v, MDB_APPEND, "copying a snapshot's record");
      ++records;
    }
    if (rc != MDB_NOTFOUND)
      fail(std::string("reading its table ") + t.name + ": " + mdb_strerror(rc));
  }
  std::uint64_t version = 0;
  if (!detail::get_record(txn, db.meta, detail::val(detail::schema_key, sizeof detail::schema_key - 1), version) || version != schema_version)
    fail("its ledger schema version is " + std::to_string(version) + ", this build's " +
         std::to_string(schema_version) + " (every node of a cluster runs the same build)");
  {
    // Readers of balances look in the cache under cache_mtx: they wait for
    // the rebuild instead of seeing half of it.
    std::lock_guard<std::mutex> lk(cache_mtx);
    cache.clear();
    frozen.clear();
  }
  if (!load_state(txn, why))
    fail(why);
  if (int rc = mdb_txn_commit(txn); rc != MDB_SUCCESS)
    fail_stop("mdb_txn_commit", rc);
  // Durable before the log moves past it (a cluster node's commits are
  // otherwise synced without their meta page, MDB_NOMETASYNC).
  if (int rc = mdb_env_sync(env, 1); rc != MDB_SUCCESS)
    fail_stop("mdb_env_sync", rc);
  last_committed_seq.store(next_seq - 1, std::memory_order_release);
  {
    std::lock_guard<std::mutex> lk(mtx);
    committed_digest = digest_record{next_seq - 1, digest};
  }
  // The filter holds the old contents' ids; the new ones hold more: checks
  // go to LMDB until a scan of them is done.
  if (txn_seen.enabled()) {
    txn_seen.unset_ready();
    filter_stop.store(true);
    if (filter_loader.joinable())
      filter_loader.join();
    filter_stop.store(false);
    filter_loader = std::thread([this] {
      name_this_thread("txn-filter");
      load_txn_filter();
    });
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  log(log_level::info, "ledger: installed a snapshot: %llu records, journal up to seq %llu, log index %llu, in %lld ms",
      static_cast<unsigned long long>(records), static_cast<unsigned long long>(next_seq - 1),
      static_cast<unsigned long long>(log_applied.load()), static_cast<long long>(ms.count()));
  {
    std::lock_guard<std::mutex> lk(listener_mtx);
    if (commit_listener)
      commit_listener(next_seq - 1);
  }
  policy_applied();  // the snapshot's last program version is the one in effect from here
}

void ledger::install_snapshot(const std::string& dir, bool wait) {
  impl::pending_command p;
  p.snapshot_dir = dir;
  std::uint64_t ticket = 0;
  impl_->queue_pending(std::move(p), ticket);
  if (!wait)
    return;
  std::unique_lock<std::mutex> lk(impl_->mtx);
  impl_->done.wait(lk, [&] { return impl_->commands_applied >= ticket; });
}

} // namespace loyalty::ledger

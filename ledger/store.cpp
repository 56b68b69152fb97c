// The ledger's LMDB environment, reads, and the group-commit writer thread.
#include "config/log.hpp"
#include "config/thread_name.hpp"
#include "ledger/detail/impl.hpp"
#include "ledger/detail/settle.hpp"

#include <algorithm>
#include <filesystem>
#include <limits>
#include <unordered_set>

namespace loyalty::ledger {

using detail::val;
using detail::val_of;

namespace {

std::atomic<commit_hook> installed_commit_hook{nullptr};

using detail::schema_key;
constexpr char accounts_seq_key[] = "accounts_seq";

// Journal value: header, postings, txn id bytes, details.
std::size_t journal_value_size(const journal_header& h) {
  return sizeof(journal_header) + h.posting_count * sizeof(posting) + h.txn_id_bytes +
         h.detail_count * sizeof(entry_detail);
}

std::uint64_t head_account(std::uint64_t member) { return account_id(account_kind::member_points, member); }

// Credit-normal balance of an account, as a signed number; false if it does
// not fit in int64.
bool signed_balance(const account_record& a, std::int64_t& out) {
  if (a.credit_total >= a.debit_total) {
    auto d = a.credit_total - a.debit_total;
    if (d > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      return false;
    out = static_cast<std::int64_t>(d);
    return true;
  }
  auto d = a.debit_total - a.credit_total;
  if (d > (std::uint64_t{1} << 63))
    return false;
  out = d == (std::uint64_t{1} << 63) ? std::numeric_limits<std::int64_t>::min() : -static_cast<std::int64_t>(d);
  return true;
}

std::int64_t lifetime_of(const account_record& a) {
  return a.credit_total > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())
           ? std::numeric_limits<std::int64_t>::max()
           : static_cast<std::int64_t>(a.credit_total);
}

// The counters table into `out`; false (error set) for a record that is not
// an int64.
bool load_counters(MDB_txn* txn, MDB_dbi dbi, std::unordered_map<std::uint64_t, std::int64_t>& out,
                   std::string& error) {
  detail::cursor cur(txn, dbi);
  if (cur.rc() != MDB_SUCCESS) {
    error = detail::mdb_error("opening a counters cursor", cur.rc());
    return false;
  }
  MDB_val k{}, v{};
  for (int rc = mdb_cursor_get(cur.get(), &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
       rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT)) {
    std::uint64_t id = 0;
    std::int64_t value = 0;
    if (k.mv_size != sizeof id || v.mv_size != sizeof value) {
      error = "the counters table holds a record of the wrong size";
      return false;
    }
    std::memcpy(&id, k.mv_data, sizeof id);
    std::memcpy(&value, v.mv_data, sizeof value);
    out[id] = value;
  }
  return true;
}

// A directory of an older readable schema becomes the current one inside
// the open transaction, so a failed open leaves it as it was. 3 -> 4 only
// adds accounts, records and a header field that a schema-3 ledger never
// wrote (its partner_id bytes were reserved zeroes), so nothing but the
// version changes.
// 8 -> 9: every aliases row moves from the alias's text to its hashed key
// (sealing.hpp alias_key_of), and member_aliases learns it. Rows already
// hashed (32 bytes that no text of that length produced... an alias of 32
// bytes is re-hashed like any other: a schema-8 table holds texts only).
bool hash_alias_rows(MDB_txn* txn, const dbs& db, std::string& error) {
  std::vector<std::pair<std::string, std::uint64_t>> rows;
  bool sized = true;
  detail::for_each_record(txn, db.aliases, [&](const MDB_val& k, const MDB_val& v) {
    std::uint64_t member = 0;
    sized = sized && v.mv_size == sizeof member;
    if (v.mv_size == sizeof member)
      std::memcpy(&member, v.mv_data, sizeof member);
    rows.emplace_back(std::string(static_cast<const char*>(k.mv_data), k.mv_size), member);
  });
  if (!sized) {
    error = "the aliases table holds a record of the wrong size; run verify with a schema-8 build";
    return false;
  }
  if (int r = mdb_drop(txn, db.aliases, 0); r != MDB_SUCCESS) {
    error = detail::mdb_error("emptying the aliases table to hash its keys", r);
    return false;
  }
  for (const auto& [text, member] : rows) {
    const auto key = alias_key_of(text);
    MDB_val k = val(key.data(), key.size()), v = val_of(member), mk = val_of(member), mv = val(key.data(), key.size());
    if (int r = mdb_put(txn, db.aliases, &k, &v, MDB_NOOVERWRITE); r != MDB_SUCCESS) {
      error = detail::mdb_error("rewriting an aliases row under its hashed key", r);
      return false;
    }
    if (int r = mdb_put(txn, db.member_aliases, &mk, &mv, MDB_NODUPDATA); r != MDB_SUCCESS && r != MDB_KEYEXIST) {
      error = detail::mdb_error("recording a member's alias", r);
      return false;
    }
  }
  log(log_level::info, "ledger: %zu aliases rows now keyed by their SHA-256 (schema 9)", rows.size());
  return true;
}

void upgrade_schema(MDB_txn* txn, const dbs& db, std::uint64_t from, const std::string& dir, std::string& error) {
  // 3 -> 4, 4 -> 5, 5 -> 6, 6 -> 7 and 7 -> 8 change no bytes (records.hpp;
  // the consents table of 6, the books table of 7 and the erasure and risk
  // tables of 9 are created empty when the environment opens): recording the version
  // is the whole upgrade but for 8 -> 9's aliases rows.
  static_assert(schema_version == 9 && schema_version_readable_min == 3,
                "a new schema version needs its upgrade step here");
  if (from < 9 && !hash_alias_rows(txn, db, error))
    return;
  MDB_val key = val(schema_key, sizeof schema_key - 1), v = val_of(schema_version);
  if (int r = mdb_put(txn, db.meta, &key, &v, 0); r != MDB_SUCCESS) {
    error = detail::mdb_error("recording the schema upgrade", r);
    return;
  }
  log(log_level::info, "ledger: upgrading data directory %s from schema version %llu to %llu", dir.c_str(),
      static_cast<unsigned long long>(from), static_cast<unsigned long long>(schema_version));
}

} // namespace

// -- free functions of the header ----------------------------------------------

void set_commit_hook(commit_hook hook) noexcept { installed_commit_hook.store(hook, std::memory_order_release); }

void op::set_txn(std::string_view id) noexcept {
  LEDGER_ASSERT(id.size() <= txn_id.size());
  std::memcpy(txn_id.data(), id.data(), id.size());
  txn_id_bytes = static_cast<std::uint8_t>(id.size());
}

std::uint64_t content_hash(std::string_view bytes, std::uint64_t from) noexcept {
  std::uint64_t h = from;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// -- open / close -------------------------------------------------------------------

bool ledger::impl::open(std::string& error) {
  std::error_code fec;
  std::filesystem::create_directories(opts.dir, fec);
  if (fec) {
    error = "cannot create data directory " + opts.dir + ": " + fec.message();
    return false;
  }
  // Before LMDB maps it: a truncated or damaged data file would otherwise
  // be a SIGBUS at the first page read, at start-up or in --verify.
  if (!detail::check_data_file((std::filesystem::path(opts.dir) / detail::data_file_name).string(), error))
    return false;
  int rc = mdb_env_create(&env);
  if (rc != MDB_SUCCESS) {
    error = detail::mdb_error("mdb_env_create", rc);
    return false;
  }
  mdb_env_set_maxdbs(env, 24);
  mdb_env_set_maxreaders(env, 256);
  rc = mdb_env_set_mapsize(env, opts.map_bytes);
  if (rc != MDB_SUCCESS) {
    error = detail::mdb_error("mdb_env_set_mapsize", rc);
    return false;
  }
  unsigned flags = MDB_NOTLS;
  if (opts.sync == durability::nosync_unsafe)
    flags |= MDB_NOSYNC;
  else if (opts.propose || opts.replicate)
    // A cluster node: what it commits is durable in the log first (fsynced
    // on a majority), so one fsync per commit is enough here. A power cut
    // may undo this ledger's last commits -- never tear one, LMDB keeps its
    // integrity -- and log_applied goes back with them: the node re-applies
    // those entries from its log (docs/ARCHITECTURE.md, "Replication").
    flags |= MDB_NOMETASYNC;
  rc = mdb_env_open(env, opts.dir.c_str(), flags, 0644);
  if (rc != MDB_SUCCESS) {
    error = "cannot open ledger in " + opts.dir + ": " + mdb_strerror(rc);
    return false;
  }
  MDB_txn* txn = nullptr;
  rc = mdb_txn_begin(env, nullptr, 0, &txn);
  if (rc != MDB_SUCCESS) {
    error = detail::mdb_error("mdb_txn_begin", rc);
    return false;
  }
  auto open_db = [&](const char* name, unsigned f, MDB_dbi& out) {
    int r = mdb_dbi_open(txn, name, f | MDB_CREATE, &out);
    if (r != MDB_SUCCESS && error.empty())
      error = std::string("cannot open database '") + name + "': " + mdb_strerror(r);
  };
  for (const auto& t : tables)
    open_db(t.name, t.flags, db.*t.dbi);
  if (error.empty()) {
    std::uint64_t version = 0;
    MDB_val key = val(schema_key, sizeof schema_key - 1);
    if (detail::get_record(txn, db.meta, key, version)) {
      if (version < schema_version_readable_min || version > schema_version)
        error = "data directory " + opts.dir + " has ledger schema version " + std::to_string(version) +
                ", this build reads version " + std::to_string(schema_version);
      else if (version < schema_version)
        upgrade_schema(txn, db, version, opts.dir, error);
    } else {
      MDB_val v = val_of(schema_version);
      if (int r = mdb_put(txn, db.meta, &key, &v, 0); r != MDB_SUCCESS)
        error = detail::mdb_error("writing the schema version", r);
    }
  }
  if (error.empty() && !load_state(txn, error) && error.empty())
    error = "cannot load the ledger's state";
  if (!error.empty()) {
    mdb_txn_abort(txn);
    return false;
  }
  rc = mdb_txn_commit(txn);
  if (rc != MDB_SUCCESS) {
    error = detail::mdb_error("mdb_txn_commit", rc);
    return false;
  }
  last_committed_seq.store(next_seq - 1);
  committed_digest = digest_record{next_seq - 1, digest};
  MDB_stat st{};
  mdb_env_stat(env, &st);
  reserve_bytes = storage_reserve(opts, st.ms_psize);
  if (const auto sp = space(); sp.full())
    log(log_level::error,
        "ledger: storage full at start: %llu of %llu map bytes in use, %llu needed free for a group commit; "
        "postings are refused with storage_full until the map is grown (docs/OPERATIONS.md, \"Storage full\")",
        static_cast<unsigned long long>(sp.used_bytes), static_cast<unsigned long long>(sp.map_bytes),
        static_cast<unsigned long long>(sp.reserve_bytes));
  return true;
}

bool ledger::impl::load_state(MDB_txn* txn, std::string& error) {
  next_seq = 1;
  last_committed_us = 0;
  counter_values.clear();
  accounts_seq = 0;
  digest = journal_digest_basis;
  {
    detail::cursor cur(txn, db.journal);
    MDB_val k{}, v{};
    if (cur.rc() == MDB_SUCCESS && mdb_cursor_get(cur.get(), &k, &v, MDB_LAST) == MDB_SUCCESS) {
      std::uint64_t last = 0;
      std::memcpy(&last, k.mv_data, sizeof last);
      next_seq = last + 1;
      journal_header h{};
      if (v.mv_size >= sizeof h) {
        std::memcpy(&h, v.mv_data, sizeof h);
        last_committed_us = h.committed_at_us;  // new entries never commit before it
      }
    }
  }
  if (error.empty())
    load_counters(txn, db.counters, counter_values, error);
  erased.clear();
  if (error.empty())
    detail::for_each_record(txn, db.erasures, [&](const MDB_val& k, const MDB_val&) {
      std::uint64_t member = 0;
      if (k.mv_size != sizeof member)
        error = "the erasures table holds a key of the wrong size";
      else
        erased.insert((std::memcpy(&member, k.mv_data, sizeof member), member));
    });
  if (error.empty()) {
    MDB_val key = val(accounts_seq_key, sizeof accounts_seq_key - 1);
    detail::get_record(txn, db.meta, key, accounts_seq);
    if (!replay_tail(txn, error) && error.empty())
      error = "cannot replay the journal after the last checkpoint";
  }
  if (error.empty() && !catch_up_digest(txn, error) && error.empty())
    error = "cannot fold the journal digest";
  if (error.empty()) {
    std::uint64_t applied = 0;
    detail::get_record(txn, db.meta, val(detail::log_applied_key, sizeof detail::log_applied_key - 1), applied);
    log_applied.store(applied);
  }
  return error.empty();
}

std::uint64_t ledger::impl::storage_reserve(const options& o, std::uint64_t page_bytes) {
  if (o.storage_reserve_bytes != 0)
    return o.storage_reserve_bytes;
  // Copy-on-write: an entry changes a journal page, a txn_index leaf, a
  // members leaf and a counters or aliases leaf; 4 pages an entry is above
  // what any entry needs (most share their pages with others). A checkpoint
  // rewrites at most a generation of account records (about 64 bytes each
  // with their node header) and the leaves over them: 2 x. One MiB for the
  // branch pages and the free list.
  return static_cast<std::uint64_t>(o.batch_entries_max) * 4 * page_bytes +
         static_cast<std::uint64_t>(o.checkpoint_accounts_max) * 2 * 64 + (1u << 20);
}

space_stats ledger::impl::space() const {
  MDB_envinfo info{};
  MDB_stat st{};
  space_stats out;
  if (mdb_env_info(env, &info) != MDB_SUCCESS || mdb_env_stat(env, &st) != MDB_SUCCESS)
    return out;  // only for an invalid environment, which an open ledger never has
  out.map_bytes = info.me_mapsize;
  out.page_bytes = st.ms_psize;
  out.used_bytes = (static_cast<std::uint64_t>(info.me_last_pgno) + 1) * st.ms_psize;
  out.reserve_bytes = reserve_bytes;
  return out;
}

commit_info ledger::impl::chunk_info(std::uint64_t entries, std::size_t chunk_from) const {
  commit_info info;
  info.entries = entries;
  info.checkpoint_records = flush_pos - chunk_from;
  if (info.checkpoint_records > 0) {
    info.generation_records = flush_order.size();
    info.generation_written = chunk_from;
  }
  return info;
}

void ledger::impl::at_commit_point(commit_info info, commit_point at) {
  info.at = at;
  if (const auto hook = installed_commit_hook.load(std::memory_order_acquire))
    hook(info);
}

ledger::impl::~impl() {
  filter_stop.store(true);
  if (filter_loader.joinable())
    filter_loader.join();
  if (writer.joinable()) {
    {
      std::lock_guard<std::mutex> lk(mtx);
      stopping = true;
    }
    wake.notify_all();
    writer.join();
  }
  if (filter_loader.joinable())  // one a snapshot's install started meanwhile
    filter_loader.join();
  if (sorting.valid())
    flush_order = sorting.get();
  if (env && (!cache.empty() || generation || !books_queued.empty()) && opts.checkpoint_on_close && !space().full()) {
    // A clean stop leaves nothing to replay at the next start.
    MDB_txn* txn = nullptr;
    if (mdb_txn_begin(env, nullptr, 0, &txn) == MDB_SUCCESS) {
      const auto t0 = std::chrono::steady_clock::now();
      commit_info info;
      info.checkpoint_records = (flush_order.size() - flush_pos) + cache.size();
      info.closing = true;
      write_checkpoint(txn);
      put_books(txn);
      at_commit_point(info, commit_point::before_commit);
      if (mdb_txn_commit(txn) != MDB_SUCCESS) {
        std::fprintf(stderr, "loyaltyd: final account checkpoint failed; the next start replays the journal tail\n");
      } else {
        at_commit_point(info, commit_point::after_commit);
        log(log_level::info, "ledger: closing checkpoint of %llu account records in %lld ms",
            static_cast<unsigned long long>(info.checkpoint_records),
            static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::steady_clock::now() - t0)
                                     .count()));
      }
    }
  }
  if (env && opts.checkpoint_on_close)
    save_txn_filter();
  if (env)
    mdb_env_close(env);
}

void ledger::impl::start_writer() {
  writer = std::thread([this] {
    name_this_thread("ledger-writer");
    run();
  });
  // The writer adds every id it indexes from its first batch on; the ids
  // committed before are added by a scan that begins after that, so
  // together they cover every id (docs/ARCHITECTURE.md, "Txn ids").
  if (txn_seen.enabled())
    filter_loader = std::thread([this] {
      name_this_thread("txn-filter");
      load_txn_filter();
    });
}

void ledger::impl::load_txn_filter() {
  const auto t0 = std::chrono::steady_clock::now();
  filter_from_saved.store(false);
  if (std::uint64_t tail = 0; load_saved_txn_filter(tail)) {
    filter_from_saved.store(true);
    txn_seen.set_ready();
    log(log_level::info, "ledger: txn filter loaded from the saved one and %llu txn ids committed after it in %lld ms",
        static_cast<unsigned long long>(tail),
        static_cast<long long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count()));
    return;
  }
  detail::read_txn txn(env);
  if (!txn.get())
    return;  // stays not ready: every check goes to LMDB
  detail::cursor cur(txn.get(), db.txn_index);
  if (cur.rc() != MDB_SUCCESS)
    return;
  MDB_val k{}, v{};
  std::uint64_t n = 0;
  for (int rc = mdb_cursor_get(cur.get(), &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
       rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT)) {
    txn_seen.add({static_cast<const char*>(k.mv_data), k.mv_size});
    if ((++n & 0xffff) == 0 && filter_stop.load(std::memory_order_relaxed))
      return;
  }
  txn_seen.set_ready();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  log(log_level::info, "ledger: %llu txn ids of earlier runs loaded into the txn filter in %lld ms",
      static_cast<unsigned long long>(n), static_cast<long long>(ms.count()));
}

// -- submission -----------------------------------------------------------------------

void ledger::impl::submit(op&& o) {
  // Drawn here, on the submitting thread, so that a cluster's command
  // carries it (command.hpp) and every node stores the same key.
  if (carries_personal(o.entry) && !o.fresh_key)
    o.fresh_key = new_member_key();
  if (o.owner)
    o.owner->inflight.fetch_add(1, std::memory_order_acq_rel);
  if (o.counterparty_owner)
    o.counterparty_owner->inflight.fetch_add(1, std::memory_order_acq_rel);
  bool notify = false;
  {
    std::lock_guard<std::mutex> lk(mtx);
    LEDGER_ASSERT(!stopping);
    if (queue.empty())
      first_arrival = std::chrono::steady_clock::now();
    queue.push_back(std::move(o));
    ++submitted;
    // Wake the writer only if it sleeps and has a reason to get up now:
    // no syscall per op while it is busy committing.
    notify = writer_sleeping && (queue.size() == 1 || queue.size() >= opts.batch_entries_max);
  }
  if (notify)
    wake.notify_one();
}

void ledger::impl::barrier() {
  std::unique_lock<std::mutex> lk(mtx);
  const auto ops = submitted;
  const auto cmds = commands_queued;
  if (ops != completed || cmds != commands_applied)
    wake.notify_one();
  done.wait(lk, [&] { return completed >= ops && commands_applied >= cmds; });
}

bool ledger::impl::queue_command(std::string_view bytes, std::uint64_t log_index, std::string& error,
                                 std::uint64_t& ticket) {
  pending_command p;
  if (!decode_command(bytes, p.cmd, error))
    return false;
  p.log_index = log_index;
  return queue_pending(std::move(p), ticket);
}

bool ledger::impl::queue_pending(pending_command&& p, std::uint64_t& ticket) {
  {
    std::unique_lock<std::mutex> lk(mtx);
    if (p.own == 0) {
      LEDGER_ASSERT(!stopping);
      // The answers to this writer's proposals never wait: the writer may
      // be waiting for them. What the log sends does, while the writer is
      // behind by log_commands_queued_max.
      room.wait(lk, [&] { return log_commands < limits::log_commands_queued_max; });
      ++log_commands;
    }
    commands.push_back(std::move(p));
    ticket = ++commands_queued;
  }
  wake.notify_one();
  return true;
}

void ledger::impl::own_answer(std::uint64_t id, std::uint64_t log_index, bool failed) {
  pending_command p;
  p.own = id;
  p.log_index = log_index;
  p.failed = failed;
  std::uint64_t ticket = 0;
  queue_pending(std::move(p), ticket);
}

// -- the writer -------------------------------------------------------------------------

void ledger::impl::run() {
  std::vector<op> batch;
  const auto window = std::chrono::microseconds(opts.commit_window_us);
  const std::size_t max = std::max<std::uint32_t>(1, opts.batch_entries_max);
  const std::size_t depth = std::max<std::uint32_t>(1, opts.pipeline_batches);
  for (;;) {
    bool from_log = false;
    {
      std::unique_lock<std::mutex> lk(mtx);
      // A batch can be taken when ops wait and the pipeline has room (a
      // single node has no pipeline: in_flight stays empty).
      auto can_take = [&] { return !queue.empty() && in_flight.size() < depth; };
      auto idle = [&] { return !can_take() && commands.empty() && !(stopping && in_flight.empty()); };
      while (idle()) {
        writer_sleeping = true;
        // A checkpoint in progress goes on while no ops come: a commit of
        // its next chunk every idle_flush, so it keeps to its deadline
        // instead of writing the rest at once when traffic returns.
        const bool flushing = generation && in_flight.empty();
        if (flushing)
          wake.wait_for(lk, idle_flush);
        else
          wake.wait(lk);
        writer_sleeping = false;
        if (flushing && idle() && in_flight.empty()) {
          lk.unlock();
          flush_idle();
          lk.lock();
        }
      }
      if (!commands.empty()) {
        from_log = true;  // the log's commands go first: the ops waiting are applied after them
      } else if (queue.empty()) {
        break;  // stopping, drained, nothing in flight
      } else if (window.count() > 0 && queue.size() < max && !stopping) {
        writer_sleeping = true;
        wake.wait_until(lk, first_arrival + window, [&] { return queue.size() >= max || stopping; });
        writer_sleeping = false;
      }
      if (!from_log && queue.size() <= max) {
        batch.swap(queue);
      } else if (!from_log) {
        batch.assign(std::make_move_iterator(queue.begin()), std::make_move_iterator(queue.begin() + max));
        queue.erase(queue.begin(), queue.begin() + max);
        first_arrival = std::chrono::steady_clock::now();
      }
    }
    if (from_log) {
      drain_commands();
      continue;
    }
    commit_batch(batch);
    batch.clear();
  }
}

void ledger::impl::commit_batch(std::vector<op>& batch) {
  if (space().full()) {
    // Answered now, so after what is in flight: a replay among them is
    // answered from the committed index.
    settle();
    refuse_full(batch);
    return;
  }
  // Never before the last commit, even if the clock steps back (NTP, a VM
  // restore): period reports find a period by binary search on this time.
  const auto now = std::max({opts.clock->now_us(), last_committed_us, last_proposed_us});
  const bool posts = std::any_of(batch.begin(), batch.end(), [](const op& o) { return o.kind != op_kind::barrier; });
  if (opts.propose && posts) {
    propose_batch(batch, now);
    return;
  }
  // A batch of barriers only (or the single node's batch): after what is
  // in flight, which it must see committed.
  settle();
  commit_ops(batch, now, 0);
}

void ledger::impl::propose_batch(std::vector<op>& batch, std::uint64_t now, bool checked) {
  // An op referring to one of an earlier batch by its cell carries that
  // op's seq, known once that batch is applied (command.hpp): the batches
  // in flight are applied first. (`checked`: the caller found none.)
  if (!checked && refers_back(batch.begin(), batch.end()))
    settle();
  proposal p;
  p.id = ++proposals;
  p.now_us = now;
  auto cmd = encode_command(batch, now);
  p.ops = std::move(batch);
  in_flight.push_back(std::move(p));
  if (!opts.propose(std::move(cmd), in_flight.back().id)) {
    auto refused = std::move(in_flight.back().ops);
    in_flight.pop_back();
    refuse_all(refused, errc::unavailable);
    return;
  }
  last_proposed_us = now;
}

bool ledger::impl::refers_back(std::vector<op>::const_iterator first, std::vector<op>::const_iterator last) {
  auto unset = [](const op& o) {
    return o.ref_seq == 0 && o.ref_seq_from && o.ref_seq_from->load(std::memory_order_relaxed) == 0;
  };
  if (std::none_of(first, last, unset))
    return false;  // the common case: one pass
  // The cells this batch's own ops set, once: linear, however many refer.
  std::unordered_set<const std::atomic<std::uint64_t>*> own;
  for (auto it = first; it != last; ++it)
    if (it->seq_to)
      own.insert(it->seq_to.get());
  return std::any_of(first, last, [&](const op& o) { return unset(o) && own.count(o.ref_seq_from.get()) == 0; });
}

void ledger::impl::propose_next() {
  const std::size_t max = std::max<std::uint32_t>(1, opts.batch_entries_max);
  std::vector<op> next;
  {
    std::lock_guard<std::mutex> lk(mtx);
    if (settling || queue.empty() || in_flight.size() >= std::max<std::uint32_t>(1, opts.pipeline_batches))
      return;
    const auto end = queue.begin() + static_cast<std::ptrdiff_t>(std::min(max, queue.size()));
    // One that refers to a batch not applied yet waits for the writer's
    // next turn (propose_batch then applies what is in flight first).
    if (refers_back(queue.begin(), end) ||
        std::none_of(queue.begin(), end, [](const op& o) { return o.kind != op_kind::barrier; }))
      return;
    next.assign(std::make_move_iterator(queue.begin()), std::make_move_iterator(end));
    queue.erase(queue.begin(), end);
    first_arrival = std::chrono::steady_clock::now();
  }
  if (space().full()) {
    // Back to the front of the queue: the writer's turn refuses it.
    std::lock_guard<std::mutex> lk(mtx);
    queue.insert(queue.begin(), std::make_move_iterator(next.begin()), std::make_move_iterator(next.end()));
    return;
  }
  propose_batch(next, std::max({opts.clock->now_us(), last_committed_us, last_proposed_us}), true);
}

void ledger::impl::settle() {
  // Nothing new is proposed meanwhile: under a steady load the pipeline
  // would never empty.
  settling = true;
  while (!in_flight.empty()) {
    {
      std::unique_lock<std::mutex> lk(mtx);
      wake.wait(lk, [&] { return !commands.empty(); });
    }
    drain_commands();
  }
  settling = false;
}

void ledger::impl::drain_commands() {
  for (;;) {
    pending_command cmd;
    {
      std::lock_guard<std::mutex> lk(mtx);
      if (commands.empty())
        return;
      cmd = std::move(commands.front());
      commands.pop_front();
      if (cmd.own == 0)
        --log_commands;
    }
    if (cmd.own == 0)
      room.notify_all();
    if (cmd.own != 0) {
      auto it = std::find_if(in_flight.begin(), in_flight.end(), [&](const proposal& p) { return p.id == cmd.own; });
      LEDGER_ASSERT(it != in_flight.end());
      auto ops = std::move(it->ops);
      const auto now = it->now_us;
      in_flight.erase(it);
      if (cmd.failed || cmd.log_index <= log_applied.load(std::memory_order_relaxed)) {
        refuse_all(ops, errc::unavailable);
      } else {
        // The next batch goes into the log before this one is applied:
        // its replication overlaps this commit (the pipeline's room is
        // what this one left).
        propose_next();
        commit_ops(ops, now, cmd.log_index);
      }
    } else if (!cmd.snapshot_dir.empty()) {
      install_snapshot(cmd.snapshot_dir);
    } else if (cmd.log_index == 0 || cmd.log_index > log_applied.load(std::memory_order_relaxed)) {
      if (cmd.cmd.policy)
        apply_policy(*cmd.cmd.policy, cmd.cmd.now_us, cmd.log_index);
      else
        commit_ops(cmd.cmd.ops, cmd.cmd.now_us, cmd.log_index);
    }
    {
      std::lock_guard<std::mutex> lk(mtx);
      ++commands_applied;
    }
    done.notify_all();
  }
}

void ledger::impl::refuse_all(std::vector<op>& batch, errc code) {
  std::vector<outcome> outcomes;
  outcomes.reserve(batch.size());
  for (auto& o : batch) {
    outcome out;
    out.tag = o.tag;
    out.brand_id = o.brand_id;
    out.code = code;
    if (o.kind != op_kind::barrier && o.precheck == errc::ok)
      reject(o, code);
    out.note = std::move(o.note);
    outcomes.push_back(std::move(out));
  }
  {
    std::lock_guard<std::mutex> lk(mtx);
    stats.entries += batch.size();
  }
  complete(batch, outcomes);
}

void ledger::impl::commit_ops(std::vector<op>& batch, std::uint64_t now, std::uint64_t log_index) {
  MDB_txn* txn = nullptr;
  if (int rc = mdb_txn_begin(env, nullptr, 0, &txn); rc != MDB_SUCCESS)
    fail_stop("mdb_txn_begin", rc);
  const auto seq_before = next_seq;
  std::vector<outcome> outcomes;
  outcomes.reserve(batch.size());
  for (auto& o : batch)
    outcomes.push_back(apply(txn, o, now));
  const auto t0 = std::chrono::steady_clock::now();
  if (freeze_due())
    freeze();
  const std::size_t chunk_from = flush_pos;
  const bool generation_done = chunk_ready() && write_chunk(txn, t0);
  const std::size_t checkpointed = flush_pos - chunk_from;
  const auto t1 = std::chrono::steady_clock::now();
  const bool wrote_entries = next_seq != seq_before;
  const digest_record digest_now{next_seq - 1, digest};
  if (wrote_entries)
    put_or_die(txn, db.meta, val(detail::journal_digest_key, sizeof detail::journal_digest_key - 1), val_of(digest_now),
               0, "recording the journal digest");
  if (log_index != 0)
    put_or_die(txn, db.meta, val(detail::log_applied_key, sizeof detail::log_applied_key - 1), val_of(log_index), 0,
               "recording the log index applied");
  put_books(txn);
  const commit_info info = chunk_info(next_seq - seq_before, chunk_from);
  at_commit_point(info, commit_point::before_commit);
  if (int rc = mdb_txn_commit(txn); rc != MDB_SUCCESS)
    fail_stop("mdb_txn_commit", rc);
  at_commit_point(info, commit_point::after_commit);
  if (log_index != 0)
    log_applied.store(log_index, std::memory_order_release);
  const auto t2 = std::chrono::steady_clock::now();
  // commit: mdb_txn_commit alone (its fsync); checkpoint: putting the
  // chunk of account records into the transaction.
  const auto commit_us = std::chrono::duration_cast<std::chrono::microseconds>(t2 - t1);
  const auto checkpoint_us = std::chrono::duration_cast<std::chrono::microseconds>(t1 - t0);
  last_committed_seq.store(next_seq - 1, std::memory_order_release);
  last_commit_at = t0;
  if (wrote_entries)
    last_committed_us = now;
  chunk_committed(generation_done, checkpointed, checkpoint_us);
  {
    std::lock_guard<std::mutex> lk(mtx);
    if (wrote_entries)
      committed_digest = digest_now;
    stats.commits++;
    stats.entries += batch.size();
    stats.batch_max = std::max<std::uint64_t>(stats.batch_max, batch.size());
    auto bucket = std::min<std::size_t>(stats.batch_hist.size() - 1, 63 - __builtin_clzll(batch.size()));
    stats.batch_hist[bucket]++;
    stats.commit_us_total += static_cast<std::uint64_t>(commit_us.count());
    const auto bound = std::lower_bound(commit_us_bounds.begin(), commit_us_bounds.end(),
                                        static_cast<std::uint64_t>(commit_us.count()));
    stats.commit_us_hist[static_cast<std::size_t>(bound - commit_us_bounds.begin())]++;
  }
  complete(batch, outcomes);
  if (wrote_entries) {
    std::lock_guard<std::mutex> lk(listener_mtx);
    if (commit_listener)
      commit_listener(next_seq - 1);
  }
}

void ledger::impl::refuse_full(std::vector<op>& batch) {
  if (!storage_full_logged) {
    const auto sp = space();
    log(log_level::error,
        "ledger: storage full: %llu of %llu map bytes in use, %llu needed free for a group commit; postings are "
        "refused with storage_full, reads and replays still answered (docs/OPERATIONS.md, \"Storage full\")",
        static_cast<unsigned long long>(sp.used_bytes), static_cast<unsigned long long>(sp.map_bytes),
        static_cast<unsigned long long>(sp.reserve_bytes));
    storage_full_logged = true;
  }
  detail::read_txn txn(env);
  if (txn.get() == nullptr)
    fail_stop("mdb_txn_begin (read-only)", txn.rc());
  std::vector<outcome> outcomes;
  outcomes.reserve(batch.size());
  std::uint64_t refused = 0;
  for (auto& o : batch) {
    outcome out;
    if (o.kind == op_kind::barrier) {
      out = apply_barrier(txn.get(), o);
    } else {
      out.tag = o.tag;
      out.brand_id = o.brand_id;
      // As apply_post: a txn id already committed is answered as the
      // replay it is (or txn_id_conflict); its owner hears it as a refusal.
      const bool answered = o.kind == op_kind::post && o.txn_id_bytes > 0 && maybe_indexed(o) &&
                            lookup_txn(txn.get(), o, out);
      if (!answered) {
        out.code = o.precheck != errc::ok ? o.precheck : errc::storage_full;
        refused += out.code == errc::storage_full ? 1 : 0;
      }
      if (o.precheck == errc::ok)
        reject(o, out.code);
    }
    out.note = std::move(o.note);
    outcomes.push_back(std::move(out));
  }
  {
    std::lock_guard<std::mutex> lk(mtx);
    stats.entries += batch.size();
    stats.storage_full_refusals += refused;
  }
  complete(batch, outcomes);
}

void ledger::impl::chunk_committed(bool generation_done, std::size_t written, std::chrono::microseconds took) {
  if (generation_done) {
    // Only now is the accounts table the truth for these balances.
    std::lock_guard<std::mutex> lk(cache_mtx);
    frozen.clear();
    accounts_seq = frozen_seq;
    flush_order.clear();
    flush_pos = 0;
    generation = false;
  }
  std::lock_guard<std::mutex> lk(mtx);
  if (written > 0) {
    stats.checkpoint_accounts += written;
    stats.checkpoint_us_total += static_cast<std::uint64_t>(took.count());
  }
  if (generation_done)
    stats.checkpoints++;
  stats.checkpoint_pending = !generation ? 0 : flush_order.empty() ? frozen.size() : flush_order.size() - flush_pos;
}

void ledger::impl::flush_idle() {
  if (!chunk_ready())
    return;  // still being sorted
  MDB_txn* txn = nullptr;
  if (space().full())
    return;  // the generation stays in memory: its balances are replayed from the journal at start
  if (int rc = mdb_txn_begin(env, nullptr, 0, &txn); rc != MDB_SUCCESS)
    fail_stop("mdb_txn_begin", rc);
  const auto t0 = std::chrono::steady_clock::now();
  const std::size_t from = flush_pos;
  const bool done = write_chunk(txn, t0);
  const auto t1 = std::chrono::steady_clock::now();
  const commit_info info = chunk_info(0, from);
  at_commit_point(info, commit_point::before_commit);
  if (int rc = mdb_txn_commit(txn); rc != MDB_SUCCESS)
    fail_stop("mdb_txn_commit", rc);
  at_commit_point(info, commit_point::after_commit);
  last_commit_at = t0;
  chunk_committed(done, flush_pos - from, std::chrono::duration_cast<std::chrono::microseconds>(t1 - t0));
}

void ledger::impl::complete(std::vector<op>& batch, std::vector<outcome>& outcomes) {
  // Group per target, preserving order, so each connection gets one call.
  completion_target* last = nullptr;
  std::vector<outcome>* last_vec = nullptr;
  std::vector<std::pair<completion_target*, std::shared_ptr<completion_target>>> order;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    auto* t = batch[i].target.get();
    if (t == nullptr)
      continue;
    if (t != last) {
      auto [it, fresh] = by_target.try_emplace(t);
      if (fresh || it->second.empty())
        order.emplace_back(t, batch[i].target);
      last = t;
      last_vec = &it->second;
    }
    last_vec->push_back(outcomes[i]);
  }
  for (auto& [raw, keep] : order) {
    auto it = by_target.find(raw);
    keep->complete(std::move(it->second));
    it->second = {};
  }
  if (by_target.size() > 4096)
    by_target.clear();  // do not keep buckets for every connection ever seen
  for (auto& o : batch) {
    if (o.owner && o.owner->inflight.fetch_sub(1, std::memory_order_acq_rel) == 1)
      o.owner->settled();
    if (o.counterparty_owner && o.counterparty_owner->inflight.fetch_sub(1, std::memory_order_acq_rel) == 1)
      o.counterparty_owner->settled();
  }
  {
    std::lock_guard<std::mutex> lk(mtx);
    completed += batch.size();
  }
  done.notify_all();
}

outcome ledger::impl::apply(MDB_txn* txn, op& o, std::uint64_t now_us) {
  LEDGER_ASSERT(o.kind == op_kind::enroll || o.kind == op_kind::post || o.kind == op_kind::barrier);
  outcome out;
  switch (o.kind) {
    case op_kind::enroll: out = apply_enroll(txn, o, now_us); break;
    case op_kind::post: out = apply_post(txn, o, now_us); break;
    case op_kind::barrier: out = apply_barrier(txn, o); break;
  }
  out.note = std::move(o.note);  // after rejected(), which may still read the op
  return out;
}

void ledger::impl::reject(const op& o, errc code) {
  if (o.owner)
    o.owner->rejected(o, code);
  if (o.counterparty_owner)
    o.counterparty_owner->rejected(o, code);
}

namespace {

// Why an op's money postings are not exactly what its settle records imply
// (per account, total debit and total credit), or nullptr.
[[nodiscard]] const char* money_defect(const op& o) {
  detail::money_totals implied, posted;
  for (const auto& d : o.details) {
    if (!detail::is_settle(d))
      continue;
    if (const char* why = detail::settle_defect(d))
      return why;
    if (!implied.add_settle(d))
      return "its settle records' amounts leave uint64";
  }
  for (const auto& p : o.postings)
    if (unit_of(kind_of(p.account)) == account_unit::money &&
        !posted.add(p.account, static_cast<posting_side>(p.side), p.amount))
      return "its money postings leave uint64";
  if (implied.empty() && !posted.empty())
    return "it has money postings but no settle records";
  if (!posted.same_as(implied))
    return "its money postings are not what its settle records imply";
  return nullptr;
}

// Why the writer must not post an op, which only a bug in the code that
// built it can cause, or nullptr. An op without settle records and without
// money postings (nearly all of them) costs one pass over its postings and
// details.
[[nodiscard]] const char* builder_defect(const op& o) {
  if ((o.entry == entry_kind::partner_earn || o.entry == entry_kind::partner_burn) && o.partner_id == 0)
    return "a partner entry names no partner";
  bool money = false;
  for (const auto& p : o.postings) {
    const auto k = static_cast<std::uint8_t>(kind_of(p.account));
    if (k == 0 || k > account_kind_max)
      return "a posting names an account of unknown kind";
    money = money || unit_of(kind_of(p.account)) == account_unit::money;
  }
  const bool settles = std::any_of(o.details.begin(), o.details.end(), detail::is_settle);
  if (!money && !settles)
    return nullptr;
  return money_defect(o);
}

} // namespace

void ledger::impl::fail_stop(const char* what, int rc) const {
  detail::fail_stop(std::string(what) + " in data directory " + opts.dir + ": " + detail::write_failure(opts.dir, rc));
}

void ledger::impl::put_or_die(MDB_txn* txn, MDB_dbi dbi, MDB_val key, MDB_val value, unsigned flags,
                              const char* what) const {
  if (int rc = mdb_put(txn, dbi, &key, &value, flags); rc != MDB_SUCCESS)
    fail_stop(what, rc);
}

account_record ledger::impl::load_account_or_zero(MDB_txn* txn, std::uint64_t id) const {
  account_record a{};
  int rc = 0;
  if (!detail::get_record(txn, db.accounts, val_of(id), a, &rc)) {
    if (rc != MDB_NOTFOUND && rc != MDB_SUCCESS)
      fail_stop("reading an account", rc);
    a = account_record{};
  }
  return a;
}

outcome ledger::impl::apply_enroll(MDB_txn* txn, op& o, std::uint64_t now_us) {
  outcome out;
  out.tag = o.tag;
  out.brand_id = o.brand_id;
  member_record existing{};
  if (detail::get_record(txn, db.members, val_of(o.member_id), existing)) {
    out.code = errc::member_exists;
    reject(o, out.code);
    return out;
  }
  const std::uint64_t seq = next_seq++;
  journal_header h{};
  h.seq = seq;
  h.occurred_at_us = now_us;
  h.committed_at_us = now_us;
  h.member_id = o.member_id;
  h.prev_member_seq = advance_head(txn, o.member_id, seq);
  h.brand_id = o.brand_id;
  h.kind = static_cast<std::uint16_t>(entry_kind::enroll);
  h.key_id = o.key_id;
  h.policy_version = o.policy_version;
  h.tier_after = opts.tier_of(0);
  put_or_die(txn, db.journal, val_of(seq), val_of(h), MDB_APPEND, "appending to the journal");
  digest = journal_digest_step(digest, &h, sizeof h);
  member_record m{o.member_id, now_us, seq, o.brand_id, 1};
  put_or_die(txn, db.members, val_of(o.member_id), val_of(m), MDB_NOOVERWRITE, "writing a member record");
  out.seq = seq;
  out.tier = h.tier_after;
  return out;
}

bool ledger::impl::lookup_txn(MDB_txn* txn, const op& o, outcome& out) {
  MDB_val k = val(o.txn_id.data(), o.txn_id_bytes), v{};
  int rc = mdb_get(txn, db.txn_index, &k, &v);
  if (rc == MDB_NOTFOUND)
    return false;
  if (rc != MDB_SUCCESS)
    fail_stop("reading the txn index", rc);
  LEDGER_ASSERT(v.mv_size == sizeof(std::uint64_t));
  std::uint64_t seq = 0;
  std::memcpy(&seq, v.mv_data, sizeof seq);
  MDB_val jk = val_of(seq), jv{};
  rc = mdb_get(txn, db.journal, &jk, &jv);
  if (rc != MDB_SUCCESS)
    fail_stop("reading the journal entry of an indexed txn id", rc);
  LEDGER_ASSERT(jv.mv_size >= sizeof(journal_header));
  journal_header h{};
  std::memcpy(&h, jv.mv_data, sizeof h);
  LEDGER_ASSERT(h.seq == seq);
  // An entry that carries a personal value stores its request hash keyed
  // with the member's key (seal_personal); one written before schema 9, plain.
  auto same_request = [&] {
    if (h.request_hash == o.request_hash)
      return true;
    if (!carries_personal(o.entry))
      return false;
    const auto key = stored_key(txn, o.member_id);
    return key && h.request_hash == keyed_request_hash(*key, o.request_hash);
  };
  if (h.kind != static_cast<std::uint16_t>(o.entry) || h.member_id != o.member_id || !same_request()) {
    out.code = errc::txn_id_conflict;
    return true;
  }
  out.code = errc::ok;
  out.replayed = true;
  out.seq = seq;
  out.points = h.points;
  out.balance = h.balance_after;
  out.lifetime = h.lifetime_after;
  out.tier = h.tier_after;
  out.brand_id = h.brand_id;
  return true;
}

outcome ledger::impl::apply_post(MDB_txn* txn, op& o, std::uint64_t now_us) {
  outcome out;
  out.tag = o.tag;
  out.brand_id = o.brand_id;
  auto refuse = [&](errc code) {
    out.code = code;
    if (o.precheck == errc::ok)
      reject(o, code);
    return out;
  };
  if (o.txn_id_bytes > 0 && maybe_indexed(o) && lookup_txn(txn, o, out)) {
    // A retried link_alias or consent of a member erased since cannot be
    // matched any more (its request hash was keyed with the erased key).
    if (out.code == errc::txn_id_conflict && !erased.empty() && erased.contains(o.member_id))
      out.code = errc::member_erased;
    return refuse(out.code);
  }
  if (o.precheck != errc::ok) {
    out.code = o.precheck;
    return out;
  }
  // After the replay lookup: a retried erase (or any retried request of a
  // member erased since) answers what it answered.
  if (!erased.empty() && (erased.contains(o.member_id) || (o.counterparty_id != 0 && erased.contains(o.counterparty_id))))
    return refuse(errc::member_erased);
  if (o.entry == entry_kind::link_alias && settle_alias(txn, o, out))
    return out;
  LEDGER_ASSERT(o.postings.size() <= postings_per_entry_max);
  LEDGER_ASSERT(o.details.size() <= details_per_entry_max);
  LEDGER_ASSERT(o.counterparty_id != o.member_id);
  if (const char* why = builder_defect(o)) {
    // The member actor built an entry the ledger cannot stand behind. Not
    // posted, and the engine goes on: only this request fails.
    log(log_level::error, "ledger: refused an entry of kind %u for member %llu: %s (a bug in the code that built it)",
        static_cast<unsigned>(o.entry), static_cast<unsigned long long>(o.member_id), why);
    return refuse(errc::internal_error);
  }
  // Load every touched account once (an account may appear twice).
  std::array<std::uint64_t, postings_per_entry_max> ids{};
  std::array<account_record, postings_per_entry_max> recs{};
  std::size_t n = 0;
  // Each unit balances on its own: points never pay for money.
  std::array<std::uint64_t, 2> debits{}, credits{};  // by account_unit
  for (const auto& p : o.postings) {
    LEDGER_ASSERT(p.amount > 0);
    std::size_t j = 0;
    while (j < n && ids[j] != p.account)
      ++j;
    if (j == n) {
      ids[n] = p.account;
      recs[n] = account(txn, p.account);
      ++n;
    }
    const bool debit = p.side == static_cast<std::uint32_t>(posting_side::debit);
    const auto unit = static_cast<std::size_t>(unit_of(kind_of(p.account)));
    auto& total = debit ? recs[j].debit_total : recs[j].credit_total;
    auto& sum = debit ? debits[unit] : credits[unit];
    LEDGER_ASSERT(p.side == static_cast<std::uint32_t>(posting_side::debit) ||
                  p.side == static_cast<std::uint32_t>(posting_side::credit));
    if (__builtin_add_overflow(total, p.amount, &total) || total > account_total_max ||
        __builtin_add_overflow(sum, p.amount, &sum))
      return refuse(errc::amount_overflow);
    recs[j].posting_count++;
  }
  LEDGER_ASSERT(debits[static_cast<std::size_t>(account_unit::points)] ==
                credits[static_cast<std::size_t>(account_unit::points)]);
  LEDGER_ASSERT(debits[static_cast<std::size_t>(account_unit::money)] ==
                credits[static_cast<std::size_t>(account_unit::money)]);
  // The member's points account after this entry.
  const std::uint64_t member_acct = account_id(account_kind::member_points, o.member_id);
  account_record member{};
  bool touched = false;
  for (std::size_t j = 0; j < n; ++j)
    if (ids[j] == member_acct) {
      member = recs[j];
      touched = true;
    }
  if (!touched)
    member = account(txn, member_acct);
  // Every touched account's totals are within account_total_max now, so
  // their balances fit int64; the member's account is checked again for an
  // untouched one a ledger written before that bound may hold.
  std::int64_t balance = 0;
  if (!signed_balance(member, balance) || member.credit_total > account_total_max)
    return refuse(errc::amount_overflow);
  if (o.require_nonnegative && balance < 0)
    return refuse(errc::insufficient_points);
  std::vector<std::pair<std::uint64_t, std::int64_t>> counted;  // stays unallocated for most entries
  if (!count_details(o, counted))
    return refuse(errc::amount_overflow);

  const std::uint64_t seq = next_seq++;
  if (o.entry == entry_kind::consent)
    record_consent(txn, o, seq, now_us);  // before the details are written: it fills one in
  if (carries_personal(o.entry))
    seal_personal(txn, o, seq);  // before the header takes the request hash and the detail count
  if (o.entry == entry_kind::limit_breach || o.entry == entry_kind::block || o.entry == entry_kind::unblock)
    record_risk(txn, o, seq, now_us);
  journal_header h{};
  {
    // Balances go to the write-back cache; the journal entry below is what
    // makes them durable, and a checkpoint later writes them to the table.
    // One hold of the lock for the whole entry, heads included: a reader
    // under the lock (load_accounts) sees all of it or none.
    std::lock_guard<std::mutex> lk(cache_mtx);
    for (std::size_t j = 0; j < n; ++j)
      cache[ids[j]] = recs[j];  // last_seq: the heads below, or here for the other accounts
    for (std::size_t j = 0; j < n; ++j)
      if (kind_of(ids[j]) != account_kind::member_points)
        cache[ids[j]].last_seq = seq;
    h.prev_member_seq = advance_head_locked(txn, o.member_id, seq);
    if (o.counterparty_id != 0) {
      h.counterparty_id = o.counterparty_id;
      h.counterparty_prev_seq = advance_head_locked(txn, o.counterparty_id, seq);
    }
  }
  h.ref_seq = o.ref_seq != 0 || !o.ref_seq_from ? o.ref_seq : o.ref_seq_from->load(std::memory_order_relaxed);
  if (o.seq_to)
    o.seq_to->store(seq, std::memory_order_relaxed);  // read by this thread only, for a later op
  h.seq = seq;
  h.occurred_at_us = o.occurred_at_us != 0 ? o.occurred_at_us : now_us;
  h.committed_at_us = now_us;
  h.member_id = o.member_id;
  h.request_hash = o.request_hash;
  h.amount_minor = o.amount_minor;
  h.points = o.points;
  h.balance_after = balance;
  h.lifetime_after = o.has_member_state ? o.lifetime_after : lifetime_of(member);
  h.brand_id = o.brand_id;
  h.tier_after = o.has_member_state ? o.tier_after : opts.tier_of(h.lifetime_after);
  h.kind = static_cast<std::uint16_t>(o.entry);
  h.key_id = o.key_id;
  h.policy_version = o.policy_version;
  h.partner_id = o.partner_id;
  h.posting_count = static_cast<std::uint8_t>(o.postings.size());
  h.txn_id_bytes = o.txn_id_bytes;
  h.detail_count = static_cast<std::uint16_t>(o.details.size());
  // Written straight into LMDB's page (MDB_RESERVE): no staging copy.
  const std::size_t size = journal_value_size(h);
  MDB_val jk = val_of(seq), jv{size, nullptr};
  if (int rc = mdb_put(txn, db.journal, &jk, &jv, MDB_APPEND | MDB_RESERVE); rc != MDB_SUCCESS)
    fail_stop("appending to the journal", rc);
  auto* w = static_cast<char*>(jv.mv_data);
  std::memcpy(w, &h, sizeof h);
  w += sizeof h;
  if (!o.postings.empty())  // as the details below: an empty vector's data() may be null
    std::memcpy(w, o.postings.data(), o.postings.size() * sizeof(posting));
  w += o.postings.size() * sizeof(posting);
  std::memcpy(w, o.txn_id.data(), o.txn_id_bytes);
  w += o.txn_id_bytes;
  if (!o.details.empty())
    std::memcpy(w, o.details.data(), o.details.size() * sizeof(entry_detail));
  digest = journal_digest_step(digest, jv.mv_data, size);
  if (o.txn_id_bytes > 0) {
    put_or_die(txn, db.txn_index, val(o.txn_id.data(), o.txn_id_bytes), val_of(seq), MDB_NOOVERWRITE,
               "indexing a txn id");
    txn_seen.add(o.txn());  // before the commit that makes it visible: the filter never lags the index
  }
  if (o.entry == entry_kind::link_alias) {
    const auto key = alias_key_of(o.alias);
    put_or_die(txn, db.aliases, val(key.data(), key.size()), val_of(o.member_id), MDB_NOOVERWRITE, "linking an alias");
    put_or_die(txn, db.member_aliases, val_of(o.member_id), val(key.data(), key.size()), MDB_NODUPDATA,
               "recording a member's alias");
  }
  if (o.entry == entry_kind::erase)
    erase_member(txn, o.member_id, seq);
  for (const auto& [id, value] : counted) {
    put_or_die(txn, db.counters, val_of(id), val_of(value), 0, "updating a counter");
    counter_values[id] = value;  // a failed commit stops the process: memory never runs ahead
  }
  out.seq = seq;
  out.points = o.points;
  out.balance = balance;
  out.lifetime = h.lifetime_after;
  out.tier = h.tier_after;
  out.details = std::move(o.details);
  return out;
}

void ledger::impl::record_consent(MDB_txn* txn, op& o, std::uint64_t seq, std::uint64_t now_us) {
  auto d = std::find_if(o.details.begin(), o.details.end(), [](const entry_detail& x) {
    return x.kind == static_cast<std::uint16_t>(detail_kind::consent);
  });
  LEDGER_ASSERT(d != o.details.end());
  auto rec = member_record_of<consent_record>(txn, db.consents, o.member_id, "reading the consents table");
  d->c = rec.seq;
  rec = consent_record{static_cast<std::uint32_t>(d->a), 0, seq, now_us};
  put_or_die(txn, db.consents, val_of(o.member_id), val_of(rec), 0, "recording a consent");
}

void ledger::impl::record_risk(MDB_txn* txn, const op& o, std::uint64_t seq, std::uint64_t now_us) {
  auto d = std::find_if(o.details.begin(), o.details.end(), [](const entry_detail& x) {
    return x.kind == static_cast<std::uint16_t>(detail_kind::risk);
  });
  LEDGER_ASSERT(d != o.details.end());
  auto rec = member_record_of<risk_record>(txn, db.risk, o.member_id, "reading the risk table");
  apply_risk(rec, *d, seq, o.occurred_at_us != 0 ? o.occurred_at_us : now_us);  // the header's occurred-at
  put_or_die(txn, db.risk, val_of(o.member_id), val_of(rec), 0, "recording a member's risk state");
}

bool ledger::impl::settle_alias(MDB_txn* txn, op& o, outcome& out) {
  LEDGER_ASSERT(!o.alias.empty());
  LEDGER_ASSERT(o.alias.size() <= limits::txn_id_bytes_max);
  const auto key = alias_key_of(o.alias);
  MDB_val k = val(key.data(), key.size()), v{};
  int rc = mdb_get(txn, db.aliases, &k, &v);
  if (rc == MDB_NOTFOUND)
    return false;
  if (rc != MDB_SUCCESS)
    fail_stop("reading the aliases table", rc);
  LEDGER_ASSERT(v.mv_size == sizeof(std::uint64_t));
  std::uint64_t owner = 0;
  std::memcpy(&owner, v.mv_data, sizeof owner);
  if (owner != o.member_id) {
    out.code = errc::alias_taken;
    reject(o, out.code);
    return true;
  }
  // Already this member's: the link holds, nothing to post. Like a txn id
  // replay, the owner hears that the op was not posted.
  out.code = errc::ok;
  out.replayed = true;
  out.seq = 0;
  member_now(txn, o.member_id, out);
  if (o.has_member_state) {
    out.lifetime = o.lifetime_after;
    out.tier = o.tier_after;
  }
  reject(o, out.code);
  return true;
}

member_key ledger::impl::key_for_write(MDB_txn* txn, const op& o) {
  if (auto key = stored_key(txn, o.member_id))
    return *key;
  const member_key key = o.fresh_key ? *o.fresh_key : new_member_key();
  put_or_die(txn, db.member_keys, val_of(o.member_id), val(key.data(), key.size()), MDB_NOOVERWRITE,
             "storing a member's key");
  return key;
}

void ledger::impl::seal_personal(MDB_txn* txn, op& o, std::uint64_t seq) {
  const member_key key = key_for_write(txn, o);
  seal_details(key, seq, o.alias, o.details);
  LEDGER_ASSERT(o.details.size() <= details_per_entry_max);
  o.request_hash = keyed_request_hash(key, o.request_hash);
}

void ledger::impl::erase_member(MDB_txn* txn, std::uint64_t member, std::uint64_t seq) {
  MDB_val mk = val_of(member);
  if (int rc = mdb_del(txn, db.member_keys, &mk, nullptr); rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
    fail_stop("deleting a member's key", rc);
  std::vector<alias_key> keys;
  {
    detail::cursor cur(txn, db.member_aliases);
    MDB_val k = val_of(member), v{};
    for (int rc = mdb_cursor_get(cur.get(), &k, &v, MDB_SET_KEY); rc == MDB_SUCCESS;
         rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT_DUP)) {
      LEDGER_ASSERT(v.mv_size == alias_key_bytes);
      auto& a = keys.emplace_back();
      std::memcpy(a.data(), v.mv_data, a.size());
    }
  }
  for (const auto& a : keys) {
    MDB_val k = val(a.data(), a.size());
    if (int rc = mdb_del(txn, db.aliases, &k, nullptr); rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
      fail_stop("deleting an erased member's alias", rc);
  }
  if (int rc = mdb_del(txn, db.member_aliases, &mk, nullptr); rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
    fail_stop("deleting an erased member's alias list", rc);
  put_or_die(txn, db.erasures, val_of(member), val_of(seq), MDB_NOOVERWRITE, "recording an erasure");
  erased.insert(member);  // a failed commit stops the process: memory never runs ahead
}

std::optional<member_key> ledger::impl::stored_key(MDB_txn* txn, std::uint64_t member) const {
  MDB_val k = val_of(member), v{};
  const int rc = mdb_get(txn, db.member_keys, &k, &v);
  if (rc != MDB_SUCCESS || v.mv_size != member_key_bytes)
    return std::nullopt;  // none (a wrong size: verify reports it)
  member_key key{};
  std::memcpy(key.data(), v.mv_data, key.size());
  return key;
}

bool ledger::impl::is_erased(MDB_txn* txn, std::uint64_t member) const {
  MDB_val k = val_of(member), v{};
  return mdb_get(txn, db.erasures, &k, &v) == MDB_SUCCESS;
}

void ledger::impl::unseal_for_read(MDB_txn* txn, ledger::entry& e) const {
  const auto kind = static_cast<entry_kind>(e.header.kind);
  if (!carries_personal(kind))
    return;
  if (is_erased(txn, e.header.member_id))
    redact_erased(kind, e.details);
  else if (has_sealed(e.details))
    unseal_details(stored_key(txn, e.header.member_id), e.header.seq, e.details);
}

bool ledger::impl::count_details(const op& o, std::vector<std::pair<std::uint64_t, std::int64_t>>& next) const {
  for (const auto& d : o.details) {
    const auto id = counter_of(d);
    if (id == 0)
      continue;
    auto it = std::find_if(next.begin(), next.end(), [id](const auto& c) { return c.first == id; });
    if (it == next.end()) {
      auto known = counter_values.find(id);
      next.emplace_back(id, known == counter_values.end() ? 0 : known->second);
      it = next.end() - 1;
    }
    if (__builtin_add_overflow(it->second, d.a, &it->second))
      return false;
  }
  return true;
}

void ledger::impl::member_now(MDB_txn* txn, std::uint64_t member, outcome& out) {
  auto a = account(txn, head_account(member));
  signed_balance(a, out.balance);
  out.lifetime = lifetime_of(a);
  out.tier = opts.tier_of(out.lifetime);
}

outcome ledger::impl::apply_barrier(MDB_txn* txn, const op& o) {
  outcome out;
  out.tag = o.tag;
  out.brand_id = o.brand_id;
  if (o.member_id == 0)
    return out;
  member_now(txn, o.member_id, out);
  return out;
}

// -- account cache and checkpoints ----------------------------------------------------------

account_record ledger::impl::account(MDB_txn* txn, std::uint64_t id) const {
  if (const account_record* cached = cache.find(id))
    return *cached;
  if (const account_record* f = frozen.find(id))
    return *f;  // the table may have it already too: the same record
  return load_account_or_zero(txn, id);
}

std::uint64_t ledger::impl::advance_head(MDB_txn* txn, std::uint64_t member, std::uint64_t seq) {
  std::lock_guard<std::mutex> lk(cache_mtx);
  return advance_head_locked(txn, member, seq);
}

std::uint64_t ledger::impl::advance_head_locked(MDB_txn* txn, std::uint64_t member, std::uint64_t seq) {
  const auto id = head_account(member);
  auto a = account(txn, id);
  const auto prev = a.last_seq;
  LEDGER_ASSERT(prev < seq);
  a.last_seq = seq;
  cache[id] = a;
  return prev;
}

bool ledger::impl::freeze_due() const {
  if (cache.empty() || generation)
    return false;  // nothing changed, or the last generation is still being written
  return cache.size() >= opts.checkpoint_accounts_max ||
         std::chrono::steady_clock::now() - last_checkpoint >= std::chrono::milliseconds(opts.checkpoint_interval_ms);
}

void ledger::impl::freeze() {
  {
    std::lock_guard<std::mutex> lk(cache_mtx);
    frozen.swap(cache);  // `frozen` was empty: the cache starts empty; lookups find these in `frozen`
  }
  generation = true;
  frozen_seq = next_seq - 1;
  flush_order.clear();
  flush_pos = 0;
  // Listing and sorting a generation took the writer 35-40 ms at 160,000
  // balances and 270 ms at 750,000 (after a bulk enrollment), a stall of
  // every commit: a thread of its own does it. It only reads `frozen`, which
  // nobody changes until the generation is written, and that waits for it.
  sorting = std::async(std::launch::async, [this] {
    std::vector<std::pair<std::uint64_t, account_record>> order;
    order.reserve(frozen.size());
    frozen.for_each([&](std::uint64_t id, const account_record& rec) { order.emplace_back(id, rec); });
    // Key order: a chunk's accounts share leaf pages, so the generation
    // dirties each page about once however it is split into chunks.
    std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    return order;
  });
  last_checkpoint = std::chrono::steady_clock::now();
  // Most of the interval: the writes spread thin, and the generation is done
  // before the next one is due.
  flush_deadline = last_checkpoint + std::chrono::milliseconds(opts.checkpoint_interval_ms) * 4 / 5;
}

bool ledger::impl::chunk_ready() {
  if (!generation)
    return false;
  if (flush_order.empty() && sorting.valid() &&
      sorting.wait_for(std::chrono::seconds(0)) == std::future_status::ready)
    flush_order = sorting.get();
  return !flush_order.empty();
}

bool ledger::impl::write_chunk(MDB_txn* txn, std::chrono::steady_clock::time_point now) {
  const std::size_t left = flush_order.size() - flush_pos;
  // At least the configured chunk; more if the rest would not be written by
  // the deadline at the rate commits come (all of it once it has passed).
  std::size_t n = std::max<std::size_t>(1, opts.checkpoint_chunk_accounts);
  if (now >= flush_deadline) {
    n = left;
  } else {
    // The time one group commit takes, start to start: `until` / `since` is
    // about the commits left before the deadline.
    const double since = std::chrono::duration<double>(now - last_commit_at).count();
    const double until = std::chrono::duration<double>(flush_deadline - now).count();
    n = std::max(n, static_cast<std::size_t>(static_cast<double>(left) * since / until) + 1);
  }
  n = std::min(n, left);
  for (std::size_t i = flush_pos; i < flush_pos + n; ++i)
    put_or_die(txn, db.accounts, val_of(flush_order[i].first), val_of(flush_order[i].second), 0,
               "writing an account checkpoint");
  flush_pos += n;
  if (flush_pos < flush_order.size())
    return false;
  put_or_die(txn, db.meta, val(accounts_seq_key, sizeof accounts_seq_key - 1), val_of(frozen_seq), 0,
             "recording the checkpoint");
  return true;
}

void ledger::impl::write_checkpoint(MDB_txn* txn) {
  // The rest of the frozen generation, then the newer balances over it; key
  // order within each.
  for (std::size_t i = flush_pos; i < flush_order.size(); ++i)
    put_or_die(txn, db.accounts, val_of(flush_order[i].first), val_of(flush_order[i].second), 0,
               "writing an account checkpoint");
  std::vector<std::pair<std::uint64_t, account_record>> recs;
  recs.reserve(cache.size());
  cache.for_each([&](std::uint64_t id, const account_record& rec) { recs.emplace_back(id, rec); });
  std::sort(recs.begin(), recs.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [id, rec] : recs)
    put_or_die(txn, db.accounts, val_of(id), val_of(rec), 0, "writing an account checkpoint");
  const std::uint64_t through = next_seq - 1;
  put_or_die(txn, db.meta, val(accounts_seq_key, sizeof accounts_seq_key - 1), val_of(through), 0,
             "recording the checkpoint");
}

bool ledger::impl::catch_up_digest(MDB_txn* txn, std::string& error) {
  const MDB_val key = val(detail::journal_digest_key, sizeof detail::journal_digest_key - 1);
  digest_record rec{0, journal_digest_basis};
  detail::get_record(txn, db.meta, key, rec);
  const std::uint64_t last = next_seq - 1;
  if (rec.seq > last) {
    error = "data directory " + opts.dir + ": the journal digest covers seq " + std::to_string(rec.seq) +
            " but the journal ends at " + std::to_string(last);
    return false;
  }
  if (rec.seq < last) {
    if (last - rec.seq > 1'000'000)
      log(log_level::info, "ledger: folding the journal digest over %llu entries (once)",
          static_cast<unsigned long long>(last - rec.seq));
    const int rc = for_each_journal_value(txn, rec.seq, [&](std::uint64_t seq, const MDB_val& v) {
      rec.digest = journal_digest_step(rec.digest, v.mv_data, v.mv_size);
      rec.seq = seq;
      return true;
    });
    if (rc != MDB_SUCCESS) {
      error = detail::mdb_error("opening a journal cursor", rc);
      return false;
    }
    MDB_val kv = key, vv = val_of(rec);
    if (int rc = mdb_put(txn, db.meta, &kv, &vv, 0); rc != MDB_SUCCESS) {
      error = detail::mdb_error("recording the journal digest", rc);
      return false;
    }
  }
  digest = rec.digest;
  return true;
}

bool ledger::impl::replay_tail(MDB_txn* txn, std::string& error) {
  detail::cursor cur(txn, db.journal);
  if (cur.rc() != MDB_SUCCESS) {
    error = detail::mdb_error("opening a journal cursor", cur.rc());
    return false;
  }
  std::uint64_t start = accounts_seq + 1;
  MDB_val k = val_of(start), v{};
  for (int rc = mdb_cursor_get(cur.get(), &k, &v, MDB_SET_RANGE); rc == MDB_SUCCESS;
       rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT)) {
    if (v.mv_size < sizeof(journal_header)) {
      error = "journal entry shorter than its header after the checkpoint";
      return false;
    }
    journal_header h{};
    std::memcpy(&h, v.mv_data, sizeof h);
    if (v.mv_size != journal_value_size(h)) {
      error = "journal entry " + std::to_string(h.seq) + " after the checkpoint does not match its header's size";
      return false;
    }
    if (h.posting_count > postings_per_entry_max) {
      error = "journal entry " + std::to_string(h.seq) + " after the checkpoint has more postings than an entry may";
      return false;
    }
    // An account whose stored record already reflects this entry (its
    // last_seq is at or after it: an incremental checkpoint wrote it before
    // accounts_seq could move) is left alone; the others take its postings.
    // Decided per account before the entry's first posting to it, since a
    // posting moves last_seq.
    auto* p = static_cast<const char*>(v.mv_data) + sizeof h;
    std::array<std::uint64_t, postings_per_entry_max> applied{};  // posting_count checked above
    std::size_t applied_n = 0;
    auto take = [&](std::uint64_t id, std::uint64_t last) {
      for (std::size_t j = 0; j < applied_n; ++j)
        if (applied[j] == id)
          return true;
      if (last >= h.seq)
        return false;
      applied[applied_n++] = id;
      return true;
    };
    for (std::size_t i = 0; i < h.posting_count; ++i) {
      posting q{};
      std::memcpy(&q, p + i * sizeof q, sizeof q);
      auto a = account(txn, q.account);
      if (!take(q.account, a.last_seq))
        continue;
      (q.side == static_cast<std::uint32_t>(posting_side::debit) ? a.debit_total : a.credit_total) += q.amount;
      a.posting_count++;
      if (kind_of(q.account) != account_kind::member_points)
        a.last_seq = h.seq;  // member heads move in advance_head
      cache[q.account] = a;
    }
    for (auto member : {h.member_id, h.counterparty_id})
      if (member != 0 && account(txn, head_account(member)).last_seq < h.seq)
        advance_head(txn, member, h.seq);
  }
  return true;
}

// -- reads -------------------------------------------------------------------------------

std::optional<ledger::entry> ledger::impl::read_entry(MDB_txn* txn, std::uint64_t seq) const {
  MDB_val k = val_of(seq), v{};
  if (mdb_get(txn, db.journal, &k, &v) != MDB_SUCCESS || v.mv_size < sizeof(journal_header))
    return std::nullopt;
  ledger::entry e;
  std::memcpy(&e.header, v.mv_data, sizeof e.header);
  if (v.mv_size != journal_value_size(e.header))
    return std::nullopt;
  auto* p = static_cast<const char*>(v.mv_data) + sizeof(journal_header);
  e.postings.resize(e.header.posting_count);
  if (!e.postings.empty())  // an entry without postings (enroll): data() may be null, which memcpy must not get
    std::memcpy(e.postings.data(), p, e.postings.size() * sizeof(posting));
  e.txn_id.assign(p + e.header.posting_count * sizeof(posting), e.header.txn_id_bytes);
  p += e.header.posting_count * sizeof(posting) + e.header.txn_id_bytes;
  e.details.resize(e.header.detail_count);
  if (!e.details.empty())
    std::memcpy(e.details.data(), p, e.details.size() * sizeof(entry_detail));
  unseal_for_read(txn, e);
  return e;
}

std::optional<account_record> ledger::impl::load_account(std::uint64_t id) const {
  std::lock_guard<std::mutex> lk(cache_mtx);
  if (const account_record* cached = cache.find(id))
    return *cached;
  if (const account_record* f = frozen.find(id))
    return *f;
  detail::read_txn txn(env);
  account_record a{};
  if (!txn.get() || !detail::get_record(txn.get(), db.accounts, val_of(id), a))
    return std::nullopt;
  return a;
}

std::optional<std::uint64_t> ledger::impl::head_for_read(std::uint64_t member) {
  auto a = load_account(head_account(member));
  if (!a)
    return std::nullopt;
  // The head may name an entry of the batch being committed right now.
  if (a->last_seq > last_committed_seq.load(std::memory_order_acquire))
    barrier();
  return a->last_seq;
}

chain_walk ledger::impl::walk_chain(MDB_txn* txn, std::uint64_t member, std::uint64_t from, std::size_t limit,
                                    std::vector<ledger::entry>& out, std::uint64_t after) const {
  chain_walk w{from, false};
  for (std::size_t n = 0; w.next > after && n < limit; ++n) {
    auto e = read_entry(txn, w.next);
    if (!e || (e->header.member_id != member && e->header.counterparty_id != member)) {
      w.broken = true;
      break;
    }
    const auto prev = e->header.member_id == member ? e->header.prev_member_seq : e->header.counterparty_prev_seq;
    if (prev >= w.next) {  // a chain runs strictly backwards; anything else would loop
      w.broken = true;
      break;
    }
    w.next = prev;
    out.push_back(std::move(*e));
  }
  return w;
}

// A stored book (books table): the seq it is the fold through, then the
// book's encoding (member_book.hpp encode_book).
bool ledger::impl::stored_book(MDB_txn* txn, std::uint64_t member, std::uint64_t& as_of, member_book& out) const {
  MDB_val k = val_of(member), v{};
  if (mdb_get(txn, db.books, &k, &v) != MDB_SUCCESS || v.mv_size < sizeof as_of)
    return false;
  std::memcpy(&as_of, v.mv_data, sizeof as_of);
  return decode_book(static_cast<const char*>(v.mv_data) + sizeof as_of, v.mv_size - sizeof as_of, out);
}

std::optional<member_book> ledger::impl::fold_book(MDB_txn* txn, std::uint64_t member, std::uint64_t head,
                                                   std::string& why, ledger::fold_info* info, bool from_stored) const {
  member_record rec{};
  if (!detail::get_record(txn, db.members, val_of(member), rec))
    return std::nullopt;
  member_book book;
  std::uint64_t stored = 0;
  std::vector<ledger::entry> entries;
  if (from_stored && stored_book(txn, member, stored, book) && stored != 0 && stored <= head) {
    // The entries since the stored book; the chain must pass through its
    // seq (an entry of this member), else the book is not this chain's and
    // the fold starts over from the enrollment.
    const auto w = walk_chain(txn, member, head, std::numeric_limits<std::size_t>::max(), entries, stored);
    if (w.broken || w.next != stored) {
      entries.clear();
      stored = 0;
    }
  } else {
    stored = 0;
  }
  const std::string who = "member " + std::to_string(member);
  if (stored == 0) {
    book = member_book{};
    const auto w = walk_chain(txn, member, head, std::numeric_limits<std::size_t>::max(), entries);
    if (w.broken) {
      why = who + ": history chain breaks at entry " + std::to_string(w.next);
      return std::nullopt;
    }
    if (entries.empty() || entries.back().header.seq != rec.enroll_seq) {
      why = who + ": history chain does not end at its enroll entry " + std::to_string(rec.enroll_seq);
      return std::nullopt;
    }
    book.enrolled_at_us = rec.enrolled_at_us;
  }
  for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
    const auto& h = it->header;
    std::string bad;
    if (!apply_details(book, it->details, h.member_id != member, h.seq, h.occurred_at_us, bad)) {
      why = who + ": entry " + std::to_string(h.seq) + " does not fit the book: " + bad;
      return std::nullopt;
    }
  }
  if (info != nullptr)
    *info = ledger::fold_info{head, stored, entries.size()};
  return book;
}

void ledger::impl::put_books(MDB_txn* txn) {
  std::vector<queued_book> books;
  {
    std::lock_guard<std::mutex> lk(mtx);
    books.swap(books_queued);
  }
  for (auto& b : books) {
    MDB_val k = val_of(b.member), v{};
    std::uint64_t there = 0;
    if (mdb_get(txn, db.books, &k, &v) == MDB_SUCCESS && v.mv_size >= sizeof there) {
      std::memcpy(&there, v.mv_data, sizeof there);
      if (there >= b.as_of)
        continue;  // a fold through a later entry got there first
    }
    put_or_die(txn, db.books, val_of(b.member), MDB_val{b.bytes.size(), b.bytes.data()}, 0, "storing a member's book");
  }
}

// -- ledger (public) -------------------------------------------------------------------------

ledger::ledger(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

ledger::~ledger() = default;

std::unique_ptr<ledger> ledger::open(const options& opts, std::string& error) {
  error.clear();  // open's steps go on while it is empty: a caller's old message is not a failure
  if (opts.clock == nullptr || !opts.tier_of) {
    error = "ledger options need a clock and a tier function";
    return nullptr;
  }
  auto p = std::make_unique<impl>(opts);
  if (!p->open(error))
    return nullptr;
  p->start_writer();
  return std::unique_ptr<ledger>(new ledger(std::move(p)));
}

void ledger::submit(op&& o) { impl_->submit(std::move(o)); }

void ledger::own_committed(std::uint64_t id, std::uint64_t log_index) { impl_->own_answer(id, log_index, false); }

void ledger::own_failed(std::uint64_t id) { impl_->own_answer(id, 0, true); }

void ledger::barrier() { impl_->barrier(); }

bool ledger::apply_command(std::string_view bytes, std::uint64_t log_index, std::string& error) {
  std::uint64_t ticket = 0;
  if (!impl_->queue_command(bytes, log_index, error, ticket))
    return false;
  std::unique_lock<std::mutex> lk(impl_->mtx);
  impl_->done.wait(lk, [&] { return impl_->commands_applied >= ticket; });
  return true;
}

bool ledger::enqueue_command(std::string_view bytes, std::uint64_t log_index, std::string& error) {
  std::uint64_t ticket = 0;
  return impl_->queue_command(bytes, log_index, error, ticket);
}

std::uint64_t ledger::applied_log_index() const noexcept {
  return impl_->log_applied.load(std::memory_order_acquire);
}

digest_record ledger::journal_digest() const {
  std::lock_guard<std::mutex> lk(impl_->mtx);
  return impl_->committed_digest;
}

std::optional<member_state> ledger::load_member(std::uint64_t member_id) const {
  // Under cache_mtx, so a checkpoint cannot move a balance from the cache to
  // the table between the two lookups.
  std::lock_guard<std::mutex> lk(impl_->cache_mtx);
  detail::read_txn txn(impl_->env);
  if (!txn.get())
    return std::nullopt;
  member_state s{};
  if (!detail::get_record(txn.get(), impl_->db.members, val_of(member_id), s.record))
    return std::nullopt;
  s.points = impl_->account(txn.get(), account_id(account_kind::member_points, member_id));
  return s;
}

std::optional<account_record> ledger::load_account(std::uint64_t account) const {
  return impl_->load_account(account);
}

std::vector<account_record> ledger::load_accounts(const std::vector<std::uint64_t>& accounts) const {
  // Why this never shows half an entry: the writer puts all balances of an
  // entry into the cache under one hold of cache_mtx (apply_post), so under
  // the lock the cache holds whole entries. A freeze moves the whole cache
  // to `frozen` under the lock, so cache and frozen together do too. An
  // account in neither has not moved since the last completed checkpoint,
  // so the table (read in a transaction begun under the lock) has its
  // balance. The commit that completes a generation commits the table first
  // and drops `frozen` afterwards, under the lock: a read before the drop
  // takes those balances from `frozen` (the table is not consulted for them);
  // a read after it begins its transaction after the commit, so the table
  // has them. Either way each account comes from a state that holds the same
  // whole entries.
  std::vector<account_record> out(accounts.size());
  std::lock_guard<std::mutex> lk(impl_->cache_mtx);
  detail::read_txn txn(impl_->env);
  if (!txn.get())
    return {};
  for (std::size_t i = 0; i < accounts.size(); ++i)
    out[i] = impl_->account(txn.get(), accounts[i]);
  return out;
}

void ledger::set_commit_listener(std::function<void(std::uint64_t)> f) {
  std::lock_guard<std::mutex> lk(impl_->listener_mtx);
  impl_->commit_listener = std::move(f);
}

std::uint64_t ledger::last_seq() const { return impl_->last_committed_seq.load(std::memory_order_acquire); }

std::optional<ledger::entry> ledger::read_entry(std::uint64_t seq) const {
  detail::read_txn txn(impl_->env);
  if (!txn.get())
    return std::nullopt;
  return impl_->read_entry(txn.get(), seq);
}

std::vector<ledger::entry> ledger::history(std::uint64_t member_id, std::uint64_t before_seq,
                                           std::size_t limit) const {
  std::uint64_t from = 0;
  if (before_seq == 0) {
    auto head = impl_->head_for_read(member_id);
    if (!head)
      return {};
    from = *head;
  }
  std::vector<entry> out;
  detail::read_txn txn(impl_->env);
  if (!txn.get())
    return out;
  if (before_seq != 0) {
    // The page goes on after `before_seq`, an entry of this member that an
    // earlier page returned: one read, however deep the paging.
    std::vector<entry> one;
    auto w = impl_->walk_chain(txn.get(), member_id, before_seq, 1, one);
    if (w.broken || one.empty())
      return out;
    from = w.next;
  }
  // A broken chain (verify reports it): show what is readable, never abort a read.
  (void)impl_->walk_chain(txn.get(), member_id, from, limit, out);
  return out;
}

bool ledger::maybe_committed(std::string_view txn_id) const noexcept {
  return !impl_->txn_seen.ready() || impl_->txn_seen.maybe(txn_id);
}

bool ledger::txn_filter_ready() const noexcept { return impl_->txn_seen.ready(); }

bool ledger::txn_filter_from_saved() const noexcept { return impl_->filter_from_saved.load(); }

std::optional<std::uint64_t> ledger::find_txn(std::string_view txn_id) const {
  if (txn_id.empty() || txn_id.size() > limits::txn_id_bytes_max)
    return std::nullopt;
  detail::read_txn txn(impl_->env);
  std::uint64_t seq = 0;
  if (!txn.get() || !detail::get_record(txn.get(), impl_->db.txn_index, val(txn_id.data(), txn_id.size()), seq))
    return std::nullopt;
  return seq;
}

std::optional<std::uint64_t> ledger::find_alias(std::string_view alias) const {
  if (alias.empty() || alias.size() > limits::txn_id_bytes_max)
    return std::nullopt;
  detail::read_txn txn(impl_->env);
  std::uint64_t member = 0;
  const auto key = alias_key_of(alias);
  if (!txn.get() || !detail::get_record(txn.get(), impl_->db.aliases, val(key.data(), key.size()), member))
    return std::nullopt;
  return member;
}

std::uint32_t ledger::impl::put_policy(MDB_txn* txn, const policy_change& p, std::uint64_t now_us,
                                      std::uint64_t first_seq, std::string& error) {
  std::uint64_t last = 0;
  {
    detail::cursor cur(txn, db.policies);
    MDB_val k{}, v{};
    policy_record rec{};
    if (cur.rc() == MDB_SUCCESS && mdb_cursor_get(cur.get(), &k, &v, MDB_LAST) == MDB_SUCCESS &&
        k.mv_size == sizeof last && v.mv_size == sizeof rec) {
      std::memcpy(&last, k.mv_data, sizeof last);
      std::memcpy(&rec, v.mv_data, sizeof rec);
      if (std::memcmp(rec.sha256, p.sha256.data(), p.sha256.size()) == 0)
        return static_cast<std::uint32_t>(last);  // the same text: no new version
    }
  }
  policy_record next{};
  std::memcpy(next.sha256, p.sha256.data(), p.sha256.size());
  next.recorded_at_us = now_us;
  next.first_seq = first_seq;
  const std::uint64_t version = last + 1;
  MDB_val k = val_of(version), v = val_of(next);
  if (int rc = mdb_put(txn, db.policies, &k, &v, MDB_APPEND); rc != MDB_SUCCESS) {
    error = detail::mdb_error("recording a program version", rc);
    return 0;
  }
  MDB_val tv{p.text.size(), const_cast<char*>(p.text.data())};
  if (int rc = mdb_put(txn, db.policy_texts, &k, &tv, MDB_APPEND); rc != MDB_SUCCESS) {
    error = detail::mdb_error("recording a program version's text", rc);
    return 0;
  }
  return static_cast<std::uint32_t>(version);
}

void ledger::impl::apply_policy(const policy_change& p, std::uint64_t now_us, std::uint64_t log_index) {
  MDB_txn* txn = nullptr;
  if (int rc = mdb_txn_begin(env, nullptr, 0, &txn); rc != MDB_SUCCESS)
    fail_stop("mdb_txn_begin", rc);
  std::string error;
  const auto version = put_policy(txn, p, now_us, next_seq, error);
  if (version == 0) {
    // Every node applies the same entry to the same state: one that cannot
    // would diverge from the others if it went on.
    log(log_level::error, "ledger: %s", error.c_str());
    fail_stop("recording a program version from the log", MDB_PANIC);
  }
  if (log_index != 0)
    put_or_die(txn, db.meta, val(detail::log_applied_key, sizeof detail::log_applied_key - 1), val_of(log_index), 0,
               "recording the log index applied");
  if (int rc = mdb_txn_commit(txn); rc != MDB_SUCCESS)
    fail_stop("mdb_txn_commit", rc);
  if (log_index != 0)
    log_applied.store(log_index, std::memory_order_release);
  log(log_level::info, "ledger: program version %u from the log (index %llu), from seq %llu", version,
      static_cast<unsigned long long>(log_index), static_cast<unsigned long long>(next_seq));
  policy_applied();
}

void ledger::impl::policy_applied() {
  if (!opts.on_policy)
    return;
  detail::read_txn txn(env);
  if (!txn.get())
    fail_stop("mdb_txn_begin (read-only)", txn.rc());
  detail::cursor cur(txn.get(), db.policies);
  MDB_val k{}, v{};
  if (cur.rc() != MDB_SUCCESS || mdb_cursor_get(cur.get(), &k, &v, MDB_LAST) != MDB_SUCCESS ||
      k.mv_size != sizeof(std::uint64_t))
    return;
  std::uint64_t version = 0;
  std::memcpy(&version, k.mv_data, sizeof version);
  MDB_val tv{};
  if (mdb_get(txn.get(), db.policy_texts, &k, &tv) != MDB_SUCCESS)
    return;
  opts.on_policy(static_cast<std::uint32_t>(version),
                 std::string_view(static_cast<const char*>(tv.mv_data), tv.mv_size));
}

std::uint32_t ledger::record_policy(const policy_change& p, std::uint64_t now_us, std::string& error) {
  // Its own write transaction: LMDB serializes it with the writer thread's,
  // and it touches only the policies tables.
  MDB_txn* txn = nullptr;
  if (int rc = mdb_txn_begin(impl_->env, nullptr, 0, &txn); rc != MDB_SUCCESS) {
    error = detail::mdb_error("beginning a write transaction for a program version", rc);
    return 0;
  }
  const auto version = impl_->put_policy(txn, p, now_us, last_seq() + 1, error);
  if (version == 0) {
    mdb_txn_abort(txn);
    return 0;
  }
  if (int rc = mdb_txn_commit(txn); rc != MDB_SUCCESS) {
    error = detail::mdb_error("committing a program version", rc);
    return 0;
  }
  return version;
}

std::optional<std::string> ledger::policy_text(std::uint32_t version) const {
  detail::read_txn txn(impl_->env);
  if (!txn.get())
    return std::nullopt;
  const std::uint64_t key = version;
  MDB_val k = val_of(key), v{};
  if (mdb_get(txn.get(), impl_->db.policy_texts, &k, &v) != MDB_SUCCESS)
    return std::nullopt;
  return std::string(static_cast<const char*>(v.mv_data), v.mv_size);
}

std::vector<std::pair<std::uint32_t, policy_record>> ledger::policies() const {
  std::vector<std::pair<std::uint32_t, policy_record>> out;
  detail::read_txn txn(impl_->env);
  if (!txn.get())
    return out;
  detail::cursor cur(txn.get(), impl_->db.policies);
  if (cur.rc() != MDB_SUCCESS)
    return out;
  MDB_val k{}, v{};
  for (int rc = mdb_cursor_get(cur.get(), &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
       rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT)) {
    std::uint64_t version = 0;
    policy_record rec{};
    if (k.mv_size != sizeof version || v.mv_size != sizeof rec)
      continue;  // verify reports it
    std::memcpy(&version, k.mv_data, sizeof version);
    std::memcpy(&rec, v.mv_data, sizeof rec);
    out.emplace_back(static_cast<std::uint32_t>(version), rec);
  }
  return out;
}

std::vector<std::pair<std::uint64_t, std::int64_t>> ledger::counters() const {
  std::vector<std::pair<std::uint64_t, std::int64_t>> out;
  detail::read_txn txn(impl_->env);
  if (!txn.get())
    return out;
  detail::cursor cur(txn.get(), impl_->db.counters);
  if (cur.rc() != MDB_SUCCESS)
    return out;
  MDB_val k{}, v{};
  for (int rc = mdb_cursor_get(cur.get(), &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
       rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT)) {
    std::uint64_t id = 0;
    std::int64_t value = 0;
    if (k.mv_size != sizeof id || v.mv_size != sizeof value)
      continue;  // verify reports it; open refuses it
    std::memcpy(&id, k.mv_data, sizeof id);
    std::memcpy(&value, v.mv_data, sizeof value);
    out.emplace_back(id, value);
  }
  return out;
}

std::optional<member_book> ledger::fold_book(std::uint64_t member_id, std::string& why, fold_info* info) const {
  why.clear();
  auto head = impl_->head_for_read(member_id);
  if (!head)
    return std::nullopt;
  detail::read_txn txn(impl_->env);
  if (!txn.get()) {
    why = detail::mdb_error("cannot begin a read transaction", txn.rc());
    return std::nullopt;
  }
  return impl_->fold_book(txn.get(), member_id, *head, why, info);
}

void ledger::store_book(std::uint64_t member_id, std::uint64_t as_of, const member_book& book) {
  impl::queued_book q{member_id, as_of, {}};
  q.bytes.resize(sizeof as_of);
  std::memcpy(q.bytes.data(), &as_of, sizeof as_of);
  std::vector<char> enc;
  encode_book(book, enc);
  q.bytes.insert(q.bytes.end(), enc.begin(), enc.end());
  std::lock_guard<std::mutex> lk(impl_->mtx);
  if (impl_->books_queued.size() < limits::books_queued_max)
    impl_->books_queued.push_back(std::move(q));
}

std::size_t ledger::checkpoint_book(std::uint64_t member_id, std::size_t min_entries) {
  std::string why;
  fold_info info;
  auto book = fold_book(member_id, why, &info);
  if (!book)
    return 0;
  if (info.entries >= min_entries && info.entries > 0)
    store_book(member_id, info.as_of, *book);
  return info.entries;
}

std::uint64_t ledger::for_each_member(std::uint64_t after, std::size_t limit,
                                      const std::function<void(std::uint64_t)>& f) const {
  // Collected first: f runs outside the read transaction, so a slow f does
  // not pin old pages.
  std::vector<std::uint64_t> ids;
  if (after != std::numeric_limits<std::uint64_t>::max() && limit > 0) {
    detail::read_txn txn(impl_->env);
    if (!txn.get())
      return 0;
    detail::cursor cur(txn.get(), impl_->db.members);
    if (cur.rc() != MDB_SUCCESS)
      return 0;
    std::uint64_t first = after + 1;
    MDB_val k = val_of(first), v{};
    for (int rc = mdb_cursor_get(cur.get(), &k, &v, MDB_SET_RANGE); rc == MDB_SUCCESS && ids.size() < limit;
         rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT)) {
      std::uint64_t id = 0;
      std::memcpy(&id, k.mv_data, sizeof id);
      ids.push_back(id);
    }
  }
  for (auto id : ids)
    f(id);
  return ids.empty() ? 0 : ids.back();
}

verify_report ledger::verify() const { return impl_->verify(); }

space_stats ledger::space() const { return impl_->space(); }

writer_stats ledger::stats() const {
  writer_stats st;
  {
    std::lock_guard<std::mutex> lk(impl_->mtx);
    st = impl_->stats;
  }
  std::lock_guard<std::mutex> lk(impl_->cache_mtx);
  st.accounts_cached = impl_->cache.size() + impl_->frozen.size();
  return st;
}

} // namespace loyalty::ledger

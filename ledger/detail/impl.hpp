// Private to ledger/: the state behind ledger::ledger.
#pragma once

#include "ledger/command.hpp"
#include "ledger/commit_hook.hpp"
#include "ledger/detail/account_cache.hpp"
#include "ledger/detail/lmdb.hpp"
#include "ledger/detail/txn_filter.hpp"
#include "ledger/ledger.hpp"
#include "ledger/sealing.hpp"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

namespace loyalty::ledger {

namespace detail {

// The data file of an environment directory: LMDB's name for it, which a
// backup gives its copy only once the copy is whole.
inline constexpr char data_file_name[] = "data.mdb";
// The meta key of the ledger's schema version (u64, records.hpp).
inline constexpr char schema_key[] = "schema_version";
// The meta key of the journal's digest_record (records.hpp).
inline constexpr char journal_digest_key[] = "journal_digest";
// The meta key of the highest log index applied (u64; a cluster node).
inline constexpr char log_applied_key[] = "log_applied";

// Checks the LMDB data file at `path` before anything maps a page of it:
// meta pages LMDB accepts, a page size LMDB could have written, and every
// page up to the last one in use inside the file (a copy cut short by a
// kill, a partial restore). True for a file that does not exist or is
// empty (LMDB makes a new one); false with `error` a sentence naming the
// file, what is wrong with it and what to do. Any thread; data_file.cpp.
[[nodiscard]] bool check_data_file(const std::string& path, std::string& error);

// What made a write into the data directory `dir` fail with `rc` (an LMDB
// or errno code), for the fail-stop line: "the disk is full (...)" for
// ENOSPC / EDQUOT, or for EIO with less than write_cut_short_bytes_max
// free on its filesystem; the process's file size limit for EFBIG, or EIO
// with the data file that close to it; else the error with the free space.
// data_file.cpp.
[[nodiscard]] std::string write_failure(const std::string& dir, int rc);

} // namespace detail

struct dbs {
  MDB_dbi journal = 0;
  MDB_dbi accounts = 0;
  MDB_dbi members = 0;
  MDB_dbi txn_index = 0;
  MDB_dbi meta = 0;
  MDB_dbi aliases = 0;
  MDB_dbi counters = 0;
  MDB_dbi policies = 0;
  MDB_dbi consents = 0;
  MDB_dbi policy_texts = 0;
  MDB_dbi books = 0;
  // schema 9, erasure (records.hpp)
  MDB_dbi member_keys = 0;
  MDB_dbi member_aliases = 0;
  MDB_dbi erasures = 0;
  MDB_dbi risk = 0;
};

// Every table of a ledger: its name, its flags, where its handle is kept.
struct table_def {
  const char* name;
  unsigned flags;
  MDB_dbi dbs::*dbi;
};
inline constexpr table_def tables[] = {
  {"journal", MDB_INTEGERKEY, &dbs::journal},   {"accounts", MDB_INTEGERKEY, &dbs::accounts},
  {"members", MDB_INTEGERKEY, &dbs::members},   {"txn_index", 0, &dbs::txn_index},
  {"meta", 0, &dbs::meta},                      {"aliases", 0, &dbs::aliases},
  {"counters", MDB_INTEGERKEY, &dbs::counters}, {"policies", MDB_INTEGERKEY, &dbs::policies},
  {"consents", MDB_INTEGERKEY, &dbs::consents}, {"policy_texts", MDB_INTEGERKEY, &dbs::policy_texts},
  {"books", MDB_INTEGERKEY, &dbs::books},
  {"member_keys", MDB_INTEGERKEY, &dbs::member_keys},
  {"member_aliases", MDB_INTEGERKEY | MDB_DUPSORT | MDB_DUPFIXED, &dbs::member_aliases},
  {"erasures", MDB_INTEGERKEY, &dbs::erasures},
  {"risk", MDB_INTEGERKEY, &dbs::risk},
};

// The counter (records.hpp counter_kind) a detail moves by its `a`, or 0 for
// a detail that moves none.
[[nodiscard]] inline std::uint64_t counter_of(const entry_detail& d) noexcept {
  if (d.kind == static_cast<std::uint16_t>(detail_kind::rule_line) &&
      d.aux == static_cast<std::uint32_t>(rule_line_kind::rule))
    return counter_id(counter_kind::rule_points, d.id);
  if (d.kind == static_cast<std::uint16_t>(detail_kind::reward))
    return counter_id(counter_kind::reward_units, d.id);
  if (d.kind == static_cast<std::uint16_t>(detail_kind::rule_budget))
    return counter_id(d.aux == static_cast<std::uint32_t>(rule_budget_period::day) ? counter_kind::rule_day_points
                                                                                   : counter_kind::rule_month_points,
                      d.id, static_cast<std::uint32_t>(d.b));
  if (d.kind == static_cast<std::uint16_t>(detail_kind::household))
    return household_counter(d.c);
  return 0;
}

// Where a walk along a member's history chain stopped.
struct chain_walk {
  std::uint64_t next = 0;  // the entry after the last one read (0: reached the first entry)
  bool broken = false;     // `next` is missing or not the member's
};

class ledger::impl {
public:
  explicit impl(const options& o) : opts(o), txn_seen(o.txn_filter_bytes) {
    if (!opts.propose && opts.replicate) {
      // A synchronous log: its answer is queued before propose returns.
      opts.propose = [this, rep = opts.replicate](std::string command, std::uint64_t id) {
        const auto index = rep(command);
        own_answer(id, index, index == 0);
        return true;
      };
    }
  }
  ~impl();

  [[nodiscard]] bool open(std::string& error);
  void start_writer();
  void submit(op&& o);
  void barrier();

  // -- writer thread ------------------------------------------------------------
  void run();
  void commit_batch(std::vector<op>& batch);
  // A cluster node's batch (options::propose): encoded and proposed, then
  // kept in `in_flight` until the log answers it (own_committed, applied
  // in log order by drain_commands; own_failed, answered unavailable).
  void propose_batch(std::vector<op>& batch, std::uint64_t now, bool checked = false);
  // Whether an op of [first, last) refers by its cell to an op of an
  // earlier batch not applied yet.
  static bool refers_back(std::vector<op>::const_iterator first, std::vector<op>::const_iterator last);
  // Proposes the ops waiting (up to a batch) if the pipeline has room and
  // none refers back: called as a proposal commits, before it is applied.
  void propose_next();
  // Waits until every proposed batch is answered, applying the commands
  // that come meanwhile.
  void settle();
  // Applies `batch` with commit time `now` in one write transaction and
  // completes its ops: the deterministic part of a group commit, which every
  // node of a cluster runs on the same command (command.hpp).
  void commit_ops(std::vector<op>& batch, std::uint64_t now, std::uint64_t log_index = 0);
  // Applies the queued commands (those from the log), in order, skipping
  // those whose log index the ledger holds already.
  void drain_commands();
  // Decodes a command and queues it for the writer; `ticket` is the count
  // of commands queued with it (commands_applied reaches it once applied).
  bool queue_command(std::string_view bytes, std::uint64_t log_index, std::string& error, std::uint64_t& ticket);
  // Answers every op of the batch with `code` without writing (the cluster
  // refused the command: this node is no longer the leader). Replays are
  // not looked up: nothing this node answers may differ from the leader's.
  void refuse_all(std::vector<op>& batch, errc code);
  // Storage full (space_stats::full): answers the batch without writing,
  // replays with their first outcome, barriers as usual, every other op
  // storage_full. Logs when an episode begins.
  void refuse_full(std::vector<op>& batch);
  [[nodiscard]] space_stats space() const;
  // space_stats::reserve_bytes for these options and page size.
  [[nodiscard]] static std::uint64_t storage_reserve(const options& o, std::uint64_t page_bytes);
  outcome apply(MDB_txn* txn, op& o, std::uint64_t now_us);
  outcome apply_enroll(MDB_txn* txn, op& o, std::uint64_t now_us);
  outcome apply_post(MDB_txn* txn, op& o, std::uint64_t now_us);
  outcome apply_barrier(MDB_txn* txn, const op& o);
  // link_alias before posting: true if the op is settled without an entry
  // (alias_taken, or already this member's: `out` filled).
  bool settle_alias(MDB_txn* txn, op& o, outcome& out);
  // A consent entry about to be appended as `seq`: links its consent record
  // to the member's previous consent entry (detail `c`) and makes it the
  // member's consent in the consents table.
  void record_consent(MDB_txn* txn, op& o, std::uint64_t seq, std::uint64_t now_us);
  // Erasure (sealing.hpp, docs/ARCHITECTURE.md "Erasure"). The member's key
  // for an entry that carries a personal value: the stored one, else the
  // op's fresh_key (or one drawn here), stored now. Writer thread.
  [[nodiscard]] member_key key_for_write(MDB_txn* txn, const op& o);
  // Seals the personal values of entry `seq` (o's details, request_hash).
  void seal_personal(MDB_txn* txn, op& o, std::uint64_t seq);
  // An erase entry `seq` of the member: deletes its key, its aliases rows
  // (so each alias may name a new member) and records the erasure.
  void erase_member(MDB_txn* txn, std::uint64_t member, std::uint64_t seq);
  // Reads: the member's key, if it has one; whether it was erased.
  [[nodiscard]] std::optional<member_key> stored_key(MDB_txn* txn, std::uint64_t member) const;
  [[nodiscard]] bool is_erased(MDB_txn* txn, std::uint64_t member) const;
  // What a reader may see of an entry's personal values (read_entry).
  void unseal_for_read(MDB_txn* txn, ledger::entry& e) const;
  // A member's record in a table keyed by member id (consents, risk); all
  // zero when it has none. A failed read stops the writer (fail_stop).
  template <class Rec>
  Rec member_record_of(MDB_txn* txn, MDB_dbi dbi, std::uint64_t member, const char* what) {
    Rec rec{};
    MDB_val k = detail::val_of(member), v{};
    if (int rc = mdb_get(txn, dbi, &k, &v); rc == MDB_SUCCESS && v.mv_size == sizeof rec)
      std::memcpy(&rec, v.mv_data, sizeof rec);
    else if (rc != MDB_NOTFOUND)
      fail_stop(what, rc == MDB_SUCCESS ? MDB_CORRUPTED : rc);
    return rec;
  }
  // A limit_breach, block or unblock entry about to be appended as `seq`:
  // the member's risk table record after it (records.hpp risk_record).
  void record_risk(MDB_txn* txn, const op& o, std::uint64_t seq, std::uint64_t now_us);
  // The counters after o's details, into `next` (changed ones only); false
  // if one would leave int64. Writer thread.
  [[nodiscard]] bool count_details(const op& o, std::vector<std::pair<std::uint64_t, std::int64_t>>& next) const;
  // Fills balance / lifetime / tier of `out` with the member's committed
  // account now (this batch included).
  void member_now(MDB_txn* txn, std::uint64_t member, outcome& out);
  // Tells the op's owner and counterparty owner that it was not posted.
  static void reject(const op& o, errc code);
  // A fatal LMDB error inside the writer (detail::fail_stop): `what` failed
  // with `rc` in this ledger's data directory, and why (write_failure).
  [[noreturn]] void fail_stop(const char* what, int rc) const;
  // mdb_put, or fail_stop naming `what`.
  void put_or_die(MDB_txn* txn, MDB_dbi dbi, MDB_val key, MDB_val value, unsigned flags, const char* what) const;
  // An account record of the table, zeroes if it has none (fail_stop if the
  // read fails).
  [[nodiscard]] account_record load_account_or_zero(MDB_txn* txn, std::uint64_t id) const;
  // Account balances: the write-back cache first, then the accounts table.
  // Writer thread (or under cache_mtx).
  account_record account(MDB_txn* txn, std::uint64_t id) const;
  // Makes `seq` the member's newest entry (its member_points account's
  // last_seq, in the cache) and returns the previous one (0 = none).
  std::uint64_t advance_head(MDB_txn* txn, std::uint64_t member, std::uint64_t seq);
  // The same, for a caller that holds cache_mtx.
  std::uint64_t advance_head_locked(MDB_txn* txn, std::uint64_t member, std::uint64_t seq);
  // Incremental checkpoints (records.hpp, schema 5). A due checkpoint
  // freezes the cache as a generation (`frozen`, as of `frozen_seq`; a new
  // cache takes the changes after it), which another thread sorts by account
  // id; once sorted, each group commit also writes a chunk of it, and the
  // commit that writes its last record records accounts_seq = frozen_seq,
  // after which the generation is dropped. Writer thread; cache and frozen
  // change under cache_mtx.
  [[nodiscard]] bool freeze_due() const;
  void freeze();
  // True if a generation is frozen and sorted (taking the sort's result).
  [[nodiscard]] bool chunk_ready();
  // Puts the next chunk of the frozen generation into `txn`; true if that
  // was its last record (accounts_seq recorded too).
  bool write_chunk(MDB_txn* txn, std::chrono::steady_clock::time_point now);
  // A clean close: the rest of the generation and every changed account.
  void write_checkpoint(MDB_txn* txn);
  // After the commit of a chunk: drops a finished generation (under
  // cache_mtx), counts (under mtx). And a commit of a chunk alone, while no
  // ops come.
  void chunk_committed(bool generation_done, std::size_t written, std::chrono::microseconds took);
  void flush_idle();
  static constexpr std::chrono::milliseconds idle_flush{20};
  // On open: rebuilds the cache from journal entries after accounts_seq.
  [[nodiscard]] bool replay_tail(MDB_txn* txn, std::string& error);
  // Replay lookup: true if o's txn id is already in the index; fills `out`.
  bool lookup_txn(MDB_txn* txn, const op& o, outcome& out);
  void complete(std::vector<op>& batch, std::vector<outcome>& outcomes);

  // -- shared helpers --------------------------------------------------------------
  [[nodiscard]] std::optional<ledger::entry> read_entry(MDB_txn* txn, std::uint64_t seq) const;
  // Appends the entries with seq >= from_seq (at most `limit`) that `txn`
  // sees, and sets last_seq to its newest entry (0: none). False with
  // `error` set if one of them does not read back (verify says more).
  bool read_range(MDB_txn* txn, std::uint64_t from_seq, std::size_t limit, std::vector<ledger::entry>& out,
                  std::uint64_t& last_seq, std::string& error) const;
  [[nodiscard]] verify_report verify() const;
  // Follows the member's history chain from entry `from`, newest first,
  // appending at most `limit` entries with a seq above `after` to `out`.
  chain_walk walk_chain(MDB_txn* txn, std::uint64_t member, std::uint64_t from, std::size_t limit,
                        std::vector<ledger::entry>& out, std::uint64_t after = 0) const;
  // The member's head (newest entry) for a read that must see everything
  // committed so far: waits for the batch in progress if it holds the head.
  // Empty for a member without entries. Not on the writer thread.
  [[nodiscard]] std::optional<std::uint64_t> head_for_read(std::uint64_t member);
  // A committed (or being committed) account: the cache, then the table.
  [[nodiscard]] std::optional<account_record> load_account(std::uint64_t id) const;
  // The fold of the member's entries through `head`, in `txn`: from its
  // stored book (books table) when one of a seq up to `head` is there and
  // `from_stored`, else from its enrollment. Empty with `why` empty for a
  // member without a record; empty with `why` set for a chain or record
  // that does not fit. `info` (optional) says where it started and how many
  // entries it read.
  [[nodiscard]] std::optional<member_book> fold_book(MDB_txn* txn, std::uint64_t member, std::uint64_t head,
                                                     std::string& why, ledger::fold_info* info = nullptr,
                                                     bool from_stored = true) const;
  // The member's stored book and the seq it is the fold through, if any.
  [[nodiscard]] bool stored_book(MDB_txn* txn, std::uint64_t member, std::uint64_t& as_of, member_book& out) const;
  // Writer thread: puts the books queued by store_book into `txn`, each
  // unless the table holds one of the same or a later seq.
  void put_books(MDB_txn* txn);

  options opts;
  std::uint64_t reserve_bytes = 0;  // set by open()
  bool storage_full_logged = false;  // writer thread: the current episode is logged

  // The crash-test seam (ledger/commit_hook.hpp). chunk_info: a commit of
  // `entries` journal entries whose checkpoint chunk began at flush_pos
  // `chunk_from` (write_chunk has run). at_commit_point: calls the hook, if
  // one is installed, at `at` of that commit.
  [[nodiscard]] commit_info chunk_info(std::uint64_t entries, std::size_t chunk_from) const;
  static void at_commit_point(commit_info info, commit_point at);

  MDB_env* env = nullptr;

  dbs db;
  std::uint64_t next_seq = 1;  // writer thread only (after open)
  // committed_at_us of the newest entry: the floor for the next batch's time,
  // so commit times never decrease along the journal. Writer thread only.
  std::uint64_t last_committed_us = 0;
  // A cluster node's proposals the log has not answered yet, in the order
  // proposed (writer thread). A proposal's ops are applied only once the
  // log commits it, in log order: a later batch may be proposed before an
  // earlier one is applied, since a command carries the decision's inputs,
  // not its result (command.hpp).
  struct proposal {
    std::uint64_t id = 0;
    std::uint64_t now_us = 0;
    std::vector<op> ops;
  };
  std::deque<proposal> in_flight;
  std::uint64_t proposals = 0;        // writer thread: the last proposal's id
  std::uint64_t last_proposed_us = 0; // writer thread: its commit time
  bool settling = false;              // writer thread: in settle()

  std::mutex mtx;
  std::condition_variable wake;        // writer waits for ops
  std::condition_variable done;        // barrier waits for completions
  std::vector<op> queue;               // guarded by mtx
  struct queued_book {
    std::uint64_t member;
    std::uint64_t as_of;
    std::vector<char> bytes;  // stored form: as_of, then encode_book
  };
  std::vector<queued_book> books_queued;  // guarded by mtx; written with the next commit
  bool writer_sleeping = false;        // guarded by mtx
  bool stopping = false;               // guarded by mtx
  std::uint64_t submitted = 0;         // guarded by mtx
  std::uint64_t completed = 0;         // guarded by mtx
  std::chrono::steady_clock::time_point first_arrival;  // guarded by mtx
  writer_stats stats;                  // guarded by mtx
  std::atomic<std::uint64_t> last_committed_seq{0};
  // Told the newest seq after each commit that wrote entries (writer
  // thread, after the batch's completions; ledger::set_commit_listener).
  std::mutex listener_mtx;
  std::function<void(std::uint64_t)> commit_listener;
  std::thread writer;

  // Write-back cache of account balances changed since the last freeze, and
  // the frozen generation being written to the table: an account is looked
  // up in the cache, then in `frozen`, then in the table. Mutated only by the
  // writer, under cache_mtx; read by others under it.
  mutable std::mutex cache_mtx;
  detail::account_cache cache;
  detail::account_cache frozen;
  // Writer thread: the frozen generation in key order, how much of it is in
  // the table, the seq it is as of, and when it must be done.
  bool generation = false;  // a generation is frozen and not yet all in the table
  std::future<std::vector<std::pair<std::uint64_t, account_record>>> sorting;  // its key order, being made
  std::vector<std::pair<std::uint64_t, account_record>> flush_order;
  std::size_t flush_pos = 0;
  std::uint64_t frozen_seq = 0;
  std::chrono::steady_clock::time_point flush_deadline;
  std::chrono::steady_clock::time_point last_commit_at = std::chrono::steady_clock::now();  // when the last batch began committing
  std::uint64_t accounts_seq = 0;  // writer thread: every entry up to it is in the table
  std::chrono::steady_clock::time_point last_checkpoint = std::chrono::steady_clock::now();  // the last freeze

  // Committed counters (the counters table), loaded at open. Writer thread.
  std::unordered_map<std::uint64_t, std::int64_t> counter_values;
  // Members erased (the erasures table), for the writer's refusal of their
  // entries; empty unless some member was erased, so an earn pays one
  // branch for it. Writer thread (and load_state).
  std::unordered_set<std::uint64_t> erased;

  // Committed txn ids (a Bloom filter): the writer adds each one it
  // indexes; `filter_loader` adds those of earlier runs, then marks it ready.
  detail::txn_filter txn_seen;
  std::thread filter_loader;
  std::atomic<bool> filter_stop{false};
  std::atomic<bool> filter_from_saved{false};  // the last load used the saved filter
  void load_txn_filter();
  // The filter saved at the last clean close (txn_filter_file.cpp): merged
  // into txn_seen with the ids of the journal entries committed after it,
  // if it is the filter of this journal's prefix. False (nothing merged):
  // none, damaged, of another size or another journal; the caller scans.
  bool load_saved_txn_filter(std::uint64_t& tail_ids);
  // Calls f(seq, value) for each journal entry after seq `after`, in seq
  // order, while f returns true. LMDB's code of a cursor that cannot open
  // (MDB_SUCCESS otherwise).
  template <class F>
  int for_each_journal_value(MDB_txn* txn, std::uint64_t after, F&& f) const {
    detail::cursor cur(txn, db.journal);
    if (cur.rc() != MDB_SUCCESS)
      return cur.rc();
    std::uint64_t from = after + 1, seq = 0;
    MDB_val k = detail::val_of(from), v{};
    for (int rc = mdb_cursor_get(cur.get(), &k, &v, MDB_SET_RANGE); rc == MDB_SUCCESS;
         rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT)) {
      std::memcpy(&seq, k.mv_data, sizeof seq);
      if (!f(seq, v))
        break;
    }
    return MDB_SUCCESS;
  }
  // At a clean close, after the writer stopped: saves txn_seen with the
  // journal's seq and digest, for the next start.
  void save_txn_filter() const;
  // True unless o's txn id is certainly not in the index (writer thread).
  [[nodiscard]] bool maybe_indexed(const op& o) const noexcept {
    return !txn_seen.ready() || txn_seen.maybe({o.txn_id.data(), o.txn_id_bytes});
  }

  // The journal's running digest (command.hpp) up to next_seq - 1: folded
  // by the writer as it appends, written to meta with each commit.
  std::uint64_t digest = journal_digest_basis;
  // The digest as of the last commit, for readers (guarded by mtx).
  digest_record committed_digest{0, journal_digest_basis};
  // On open: folds the entries after meta's digest_record into it and
  // writes it back (all of them for a directory without one).
  [[nodiscard]] bool catch_up_digest(MDB_txn* txn, std::string& error);

  // Commands from a cluster's log to apply (apply_command,
  // enqueue_command): the writer takes them before any submitted op, and
  // counts them applied (barrier and apply_command wait on `done` for it).
  struct pending_command {
    command cmd;
    std::uint64_t log_index = 0;
    // Non-zero: not a command but the answer to this writer's proposal
    // `own` (options::propose): committed at log_index, or `failed`.
    std::uint64_t own = 0;
    bool failed = false;
    // Non-empty: not a command but a snapshot to install (a directory
    // holding a ledger's data.mdb, ledger::enqueue_snapshot); cmd unused.
    std::string snapshot_dir;
  };
  bool queue_pending(pending_command&& p, std::uint64_t& ticket);
  // A program version in `txn` (ledger::record_policy): the version, the
  // last one if its text is `p`'s; 0 with `error` set if LMDB refused.
  std::uint32_t put_policy(MDB_txn* txn, const policy_change& p, std::uint64_t now_us, std::uint64_t first_seq,
                           std::string& error);
  // Writer thread: a program version from the log, in its own transaction
  // with the log index. Fail-stop if it cannot be written.
  void apply_policy(const policy_change& p, std::uint64_t now_us, std::uint64_t log_index);
  // Writer thread: options::on_policy with the last version and its text.
  void policy_applied();
  // own_committed / own_failed: queued in order with the log's commands.
  void own_answer(std::uint64_t id, std::uint64_t log_index, bool failed);
  // Writer thread: replaces every table with the snapshot's in one write
  // transaction, rebuilds what open() derives from them, and restarts the
  // txn filter's scan. Fail-stop if it cannot (the log says this state was
  // installed: going on without it would diverge). snapshot.cpp.
  void install_snapshot(const std::string& dir);
  // Open's derivations from the tables, in `txn`: next seq, commit time
  // floor, counters, the account cache from the journal after the last
  // checkpoint, the journal digest, the log index applied. Writer thread
  // (or open()).
  [[nodiscard]] bool load_state(MDB_txn* txn, std::string& error);
  std::deque<pending_command> commands;  // guarded by mtx
  // Commands from the log in `commands` (not the answers to proposals):
  // enqueue_command waits while there are limits::log_commands_queued_max.
  std::size_t log_commands = 0;  // guarded by mtx
  std::condition_variable room;  // signalled as the writer takes commands
  std::uint64_t commands_queued = 0;     // guarded by mtx
  std::uint64_t commands_applied = 0;    // guarded by mtx
  // The highest log index applied (meta log_applied_key): writer thread
  // writes, any thread reads.
  std::atomic<std::uint64_t> log_applied{0};

  // Reused by the writer to group outcomes per completion target.
  std::unordered_map<completion_target*, std::vector<outcome>> by_target;
};

} // namespace loyalty::ledger

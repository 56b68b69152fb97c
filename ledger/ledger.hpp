// The ledger: an LMDB environment holding an append-only double-entry journal,
// account balances, an index from client transaction id to journal entry, and
// member records; plus the single writer thread that group-commits the
// operations of all members.
//
// Thread affinity:
//  - submit(), barrier(), read functions and verify() may be called from any
//    thread.
//  - The one LMDB write transaction lives on the writer's own thread.
//  - completion_target::complete() and op_owner::rejected() are called on the
//    writer thread and must not block.
//
// Durability: by default (durability::fsync) an outcome is handed to its
// completion target only after mdb_txn_commit() returned, i.e. after fsync.
// A failed commit is fail-stop: the process logs one line and exits (status
// 70) without completing anything of that batch.
#pragma once

#include "config/clock.hpp"
#include "config/errc.hpp"
#include "config/program.hpp"
#include "ledger/member_book.hpp"
#include "ledger/records.hpp"

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace loyalty::ledger {

// What the writer reports for one op, after the batch holding it committed.
struct outcome {
  std::uint64_t tag = 0;         // the op's tag, opaque to the ledger
  errc code = errc::ok;
  bool replayed = false;         // txn id seen before: original result, nothing posted
  std::uint64_t seq = 0;         // journal seq of the (original) entry; 0 for barrier
  std::int64_t points = 0;       // points moved by the entry
  std::int64_t balance = 0;      // member balance after the entry (barrier: now)
  std::int64_t lifetime = 0;     // member lifetime earned points after the entry (barrier: now)
  std::uint32_t tier = 0;        // tier index after the entry (barrier: now)
  std::uint32_t brand_id = 0;    // the op's brand_id, echoed
  // The op's details, moved out of it once its entry committed (empty for a
  // replay, a refusal, a barrier): the server reads rule lines, hold ids,
  // ... from them.
  std::vector<entry_detail> details;
  // The op's note, moved through untouched (opaque to the ledger).
  std::shared_ptr<const void> note;
};

// Receives outcomes. Implemented by the io layer (a connection). Called on the
// writer thread with all outcomes of one batch for this target; must not block.
class completion_target {
public:
  virtual ~completion_target() = default;
  virtual void complete(std::vector<outcome>&& outcomes) noexcept = 0;
};

struct op;

// The member whose actor produced an op. `inflight` counts its submitted,
// not yet completed ops; the writer decrements it after completing each op.
// `rejected` is called (writer thread, before the batch commits) whenever an
// op the actor had already applied to its tentative state is not posted: a
// replay (code == ok), txn_id_conflict, insufficient_points or
// amount_overflow found at commit time, member_exists, alias_taken. The
// member actor reloads its book from the ledger (actors/directory.hpp).
class op_owner {
public:
  virtual ~op_owner() = default;
  std::atomic<std::int64_t> inflight{0};
  virtual void rejected(const op& o, errc code) noexcept = 0;
  // Called (writer thread) when a completion brought `inflight` to zero.
  virtual void settled() noexcept {}
};

enum class op_kind : std::uint8_t {
  enroll,   // create member record + enroll journal entry (no postings)
  post,     // a journal entry with postings
  barrier,  // posts nothing; completes after every earlier op committed, with
            // the member's committed balance / lifetime (used for `balance`)
};

struct op {
  op_kind kind = op_kind::post;
  entry_kind entry = entry_kind::earn;
  std::uint64_t member_id = 0;
  std::uint32_t brand_id = 0;
  std::uint8_t txn_id_bytes = 0;
  std::array<char, limits::txn_id_bytes_max> txn_id{};
  std::uint64_t request_hash = 0;
  std::uint64_t occurred_at_us = 0;
  std::int64_t amount_minor = 0;
  std::int64_t points = 0;
  // If set, the writer refuses the entry with insufficient_points when the
  // member's committed balance would go below zero.
  bool require_nonnegative = false;
  // If not ok, the actor already found the request invalid for the member's
  // current state (e.g. insufficient_points). The writer still looks the txn
  // id up first, so that a retry of an earlier, successful request returns
  // its original result (replay) or txn_id_conflict; otherwise it completes
  // with this code and posts nothing. rejected() is not called for such ops.
  errc precheck = errc::ok;
  // At most postings_per_entry_max; they balance in each unit (records.hpp).
  std::vector<posting> postings;
  // The decision the entry records (lots, holds, rule lines, ...), at most
  // details_per_entry_max. Heap-allocated: most ops carry a handful.
  std::vector<entry_detail> details;
  std::uint64_t ref_seq = 0;          // entry this one acts on, 0 = none
  // An entry whose seq a later entry of the same member needs before it
  // committed (a hold, for the capture or release that closes it): the
  // writer stores the seq here when it posts the entry. The later entry
  // names the same cell in `ref_seq_from`, and with ref_seq 0 the writer
  // takes its ref_seq from it: it posts a member's ops in the order they
  // were submitted, so the cell is set by then.
  std::shared_ptr<std::atomic<std::uint64_t>> seq_to;
  std::shared_ptr<const std::atomic<std::uint64_t>> ref_seq_from;
  std::uint64_t counterparty_id = 0;  // transfer receiver (an enrolled member), 0 = none
  // Where the outcome goes.
  std::shared_ptr<completion_target> target;
  std::uint64_t tag = 0;
  std::shared_ptr<op_owner> owner;  // may be null
  // A transfer's receiver, which applied the counterparty details tentatively
  // too: told the same as `owner` when the op is not posted. May be null.
  std::shared_ptr<op_owner> counterparty_owner;
  // link_alias: the alias (1..txn_id_bytes_max bytes). The writer inserts it
  // into the aliases table; one that names another member refuses the op
  // with alias_taken, one that already names this member completes ok with
  // replayed = true and posts nothing.
  std::string alias;
  // An op that carries a personal value (sealing.hpp carries_personal): a
  // key for the member, which the writer stores if the member has none yet.
  // submit() draws it (callers leave it unset), before the op reaches the
  // writer, and the replicated command carries it, so every node stores the
  // same key.
  std::optional<std::array<unsigned char, 32>> fresh_key;
  // If set, the journal header's lifetime_after / tier_after come from these
  // (the member actor's book) instead of the member_points account.
  bool has_member_state = false;
  std::int64_t lifetime_after = 0;
  std::uint32_t tier_after = 0;
  // Passed to the outcome untouched (e.g. the balance view of a barrier).
  std::shared_ptr<const void> note;
  // Journaled in the header: the API key that sent the request (0 = none, or
  // an entry the engine posts on its own).
  std::uint32_t key_id = 0;
  // Journaled in the header: the program version the op was evaluated under.
  std::uint32_t policy_version = 0;
  // Journaled in the header: the partner of a partner entry (0 = none).
  std::uint16_t partner_id = 0;

  [[nodiscard]] std::string_view txn() const noexcept { return {txn_id.data(), txn_id_bytes}; }
  void set_txn(std::string_view id) noexcept;  // precondition: id.size() <= txn_id_bytes_max
};

// Stable 64-bit hash (FNV-1a) over a canonical encoding of a request's
// content; stored in the journal so a reused txn id with different content
// is detected across restarts. Never change its definition. Streaming:
// content_hash(b, content_hash(a)) == content_hash(a + b).
inline constexpr std::uint64_t content_hash_basis = 14695981039346656037ull;
[[nodiscard]] std::uint64_t content_hash(std::string_view bytes, std::uint64_t from = content_hash_basis) noexcept;

struct member_state {
  member_record record;
  account_record points;  // member_points account (zeroes if never posted)
  [[nodiscard]] std::int64_t balance() const noexcept {
    return static_cast<std::int64_t>(points.credit_total - points.debit_total);
  }
  [[nodiscard]] std::int64_t lifetime() const noexcept {
    return static_cast<std::int64_t>(points.credit_total);
  }
};

// -- periods, liability and settlement (issue 4) -----------------------------------
// A period is an interval of commit time [from_us, to_us) (to_us 0 = up to
// the newest entry). The writer keeps committed_at_us non-decreasing along
// the journal, so a period is a contiguous range of seqs, found by binary
// search.
struct period_range {
  std::uint64_t from_us = 0, to_us = 0;  // as asked (to_us 0 resolved to the last entry's commit time + 1)
  std::uint64_t first_seq = 0;           // first entry of the period
  std::uint64_t last_seq = 0;            // last entry of the period; < first_seq if the period is empty
};

// An account's totals at the start of a period and its movement inside it.
struct account_flow {
  std::uint64_t account = 0;
  std::uint64_t opening_debit = 0, opening_credit = 0;  // totals over the entries before the period
  std::uint64_t debit = 0, credit = 0;                  // totals over the entries of the period
  std::uint64_t postings = 0;                           // postings in the period
};

struct flows {
  period_range period;
  std::vector<account_flow> accounts;  // one per account asked, in that order
};

// One settle record of a statement, with its entry.
struct statement_line {
  std::uint64_t seq = 0;
  std::uint64_t committed_at_us = 0;
  std::uint64_t member_id = 0;
  std::uint16_t entry_kind = 0;
  std::string txn_id;
  entry_detail settle{};   // the record (records.hpp, detail_kind::settle)
  std::int64_t due = 0;    // what it moves toward the party: + the program owes the party more
};

// Everything that moved money between a party (a brand or a partner) and
// the rest of the coalition in a period. due_total is the sum of `due` over
// every line of the period (not only the page returned), and equals
// (closing - opening), where opening / closing are credits - debits over
// the party's money accounts before / after the period: the statement
// reconciles with the accounts to the minor unit, which verify() also proves
// for the whole journal.
struct statement {
  period_range period;
  party_kind kind = party_kind::brand;
  std::uint32_t party = 0;
  std::int64_t opening = 0, closing = 0, due_total = 0;  // minor units
  std::int64_t points_total = 0;   // sum of the lines' points, signed like due
  std::uint64_t line_count = 0;    // lines in the whole period
  // At most `limit`, seq > after_seq, ascending. A page holds whole entries
  // (next_after is a seq), so a first entry with more lines than `limit`
  // comes whole; limit 0 gives the totals only.
  std::vector<statement_line> lines;
  std::uint64_t next_after = 0;    // pass as after_seq for the next page; 0 = no more
};

// -- KPI reports (ledger/reports.cpp) -------------------------------------------------
// A brand's four accounts, in the order brand_figures_of reads their flows.
[[nodiscard]] std::array<std::uint64_t, 4> brand_accounts(std::uint32_t brand) noexcept;

// What moved a brand's points and money in a period, from the flows of its
// four accounts: `activity` and `report` answer these same figures.
struct brand_figures {
  std::int64_t issued = 0;    // debits of brand_issued in the period
  std::int64_t refunded = 0;  // its credits: clawbacks, debit adjustments
  std::int64_t redeemed = 0;  // credits of brand_redeemed: the brand's points spent anywhere
  std::int64_t reversed = 0;  // its debits: redemptions reversed
  std::int64_t expired = 0;   // credits - debits of brand_expired: breakage
  // issued - redeemed - expired (as balances) before / after the period;
  // closing - opening == issued - refunded - redeemed + reversed - expired.
  std::int64_t opening_outstanding = 0, closing_outstanding = 0;
  // Money, minor units: the change of credits - debits of brand_settlement
  // in the period (a brand statement's net), and that balance after it (its
  // closing).
  std::int64_t settlement = 0, settlement_closing = 0;
};
// `four`: the flows of brand_accounts(brand), in that order. False if a
// figure leaves int64.
[[nodiscard]] bool brand_figures_of(const account_flow* four, brand_figures& out) noexcept;

// What `report` asks for.
struct report_request {
  std::vector<std::uint32_t> brands;  // brand ids, distinct; reported in this order
  std::uint64_t from_us = 0, to_us = 0;  // the period, as for account_flows
  // Active members: those with a member-initiated entry (active_kind)
  // committed in [to_us - active_us, to_us).
  std::uint64_t active_us = 0;
  std::size_t top = 0;  // top earners per brand
};

// A member with the points it earned for a brand in the period.
struct earner {
  std::uint64_t member = 0;
  std::int64_t points = 0;
};

struct brand_report {
  std::uint32_t brand = 0;
  brand_figures figures;
  // Members whose home brand (member_record.brand_id) it is, enrolled by an
  // entry of or before the period (enroll seq <= period.last_seq), and how
  // many of them were active in the window.
  std::uint64_t members = 0, active_members = 0;
  // Those members per tier index (tier_after of each one's newest own entry
  // of or before the period), ascending by index, zero counts left out.
  std::vector<std::pair<std::uint32_t, std::uint64_t>> tiers;
  // At most `top` members by points earned for the brand in the period
  // (earn, event and partner_earn debits of its brand_issued account, minus
  // refund credits of it, per entry member), only those above 0; most
  // first, ties by member id ascending.
  std::vector<earner> top;
};

struct kpi_report {
  period_range period;
  std::uint64_t active_from_us = 0;    // the activity window: [active_from_us, period.to_us)
  std::uint64_t active_first_seq = 0;  // its first entry
  std::vector<brand_report> brands;    // one per brand asked, in order
};

// The entry kinds that make a member active (report): what the member (or a
// partner or point of sale for it) asked for -- earn, event, redeem,
// redeem_reward, hold, capture, transfer (as its sender), partner_earn,
// partner_burn -- with a client txn id, so the welcome bonus an enrollment
// posts does not count. Never what the engine posts on its own (expire,
// release of an expired hold, tier_review), corrections (refund,
// reverse_redemption, adjust), release, link_alias, enroll.
[[nodiscard]] bool active_kind(const journal_header& h) noexcept;

struct verify_report {
  bool ok = true;
  std::uint64_t entries = 0;
  std::uint64_t postings = 0;
  std::uint64_t accounts = 0;
  std::uint64_t members = 0;
  std::uint64_t txn_ids = 0;
  std::uint64_t checkpoint_seq = 0;  // the accounts table reflects entries up to this seq (a record may reflect later ones: its last_seq)
  std::uint64_t settlements = 0;     // settle records checked
  std::uint64_t stored_books = 0;    // stored member books checked against the fold
  std::uint64_t journal_digest = 0;  // the journal's digest (command.hpp) over every entry checked
  std::vector<std::string> problems;  // first verify_problems_max problems
};
inline constexpr std::size_t verify_problems_max = 100;

// Upper bounds, in microseconds, of the buckets of the commit-time
// histogram (writer_stats::commit_us_hist): from 100 us (a commit without
// fsync) to 2 s (a stalled disk), in 1-2.5-5 steps, so that any commit time
// in that range is known within a factor of 2.5 with 14 counters.
inline constexpr std::array<std::uint32_t, 14> commit_us_bounds = {
  100, 250, 500, 1'000, 2'500, 5'000, 10'000, 25'000, 50'000, 100'000, 250'000, 500'000, 1'000'000, 2'000'000};

struct writer_stats {
  std::uint64_t commits = 0;
  std::uint64_t entries = 0;        // ops processed (all kinds)
  std::uint64_t batch_max = 0;      // largest batch seen
  // batch size histogram: bucket i counts batches with size in [2^i, 2^(i+1))
  // (the last bucket: every batch of 2^15 ops or more)
  std::array<std::uint64_t, 16> batch_hist{};
  std::uint64_t commit_us_total = 0;  // time spent in mdb_txn_commit
  // commit time histogram: bucket i counts commits whose mdb_txn_commit took
  // at most commit_us_bounds[i] us (and more than the bound before); the
  // last bucket counts the ones over the last bound.
  std::array<std::uint64_t, commit_us_bounds.size() + 1> commit_us_hist{};
  std::uint64_t checkpoints = 0;      // account checkpoints completed (generations written in full)
  std::uint64_t checkpoint_accounts = 0;  // account records written by them, in all
  std::uint64_t checkpoint_us_total = 0;  // time spent putting those records into commit transactions
  std::uint64_t accounts_cached = 0;  // account balances not yet in the table (now): changed, and frozen
  std::uint64_t checkpoint_pending = 0;  // records of the frozen generation still to write (now)
  // Ops refused with storage_full: the map's high-water mark was within the
  // storage reserve (space_stats) when their batch came up.
  std::uint64_t storage_full_refusals = 0;
};

// How much of its map the environment uses.
struct space_stats {
  std::uint64_t map_bytes = 0;   // the map size: the most the data file can grow to
  // Pages up to the highest one in use, times the page size: the data
  // file's high-water mark (free pages below it, reused by later commits,
  // included). When it nears map_bytes, commits fail (MDB_MAP_FULL).
  std::uint64_t used_bytes = 0;
  std::uint64_t page_bytes = 0;
  // The most one group commit (with a checkpoint chunk) can add to
  // used_bytes. A batch that comes up while used_bytes + reserve_bytes >
  // map_bytes is not written: its postings are refused with storage_full
  // (replays and reads are still answered), so a commit never meets
  // MDB_MAP_FULL and nothing half-written exists even for a moment.
  std::uint64_t reserve_bytes = 0;
  [[nodiscard]] bool full() const noexcept { return used_bytes + reserve_bytes > map_bytes; }
};

// A hot backup (ledger::backup): a compacted copy of the environment as of
// one committed transaction.
struct backup_info {
  std::string file;         // the copy's data file (DIR/data.mdb)
  std::uint64_t seq = 0;    // its newest journal entry: it holds every entry up to this one, none after
  std::uint64_t bytes = 0;  // the copy's size
  std::uint64_t micros = 0; // how long the copy took
  std::uint64_t log_index = 0; // a cluster node's: the log index it holds every entry up to (meta log_applied)
};

// A program version: the program's SHA-256 and text. Recorded, it becomes
// the next version (policy_record.first_seq: the next seq), unless it is
// the last version's text already.
struct policy_change {
  std::array<unsigned char, 32> sha256{};
  std::string text;
};

struct options {
  std::string dir;                    // created if missing
  std::uint64_t map_bytes = limits::map_bytes_default;
  durability sync = durability::fsync;
  std::uint32_t batch_entries_max = limits::batch_entries_max_default;
  std::uint32_t commit_window_us = limits::commit_window_us_default;
  std::uint32_t checkpoint_accounts_max = limits::checkpoint_accounts_max_default;
  std::uint32_t checkpoint_interval_ms = limits::checkpoint_interval_ms_default;
  // Filter of committed txn ids in memory (0: none, every replay check reads
  // LMDB). Rounded down to a power of two.
  std::uint64_t txn_filter_bytes = limits::txn_filter_bytes_default;
  // A clean close saves the filter (file txn_filter in dir) when the ledger
  // holds at least this many txn ids, and the next start loads it instead
  // of scanning them (ledger/txn_filter_file.cpp). 0: always.
  std::uint64_t txn_filter_save_min_ids = limits::txn_filter_save_min_ids_default;
  // Account records an incremental checkpoint writes with each group commit
  // at least (more when the generation would not be done by its deadline).
  std::uint32_t checkpoint_chunk_accounts = limits::checkpoint_chunk_accounts_default;
  // space_stats::reserve_bytes; 0 = worked out from the limits above
  // (ledger::impl::storage_reserve, docs/OPERATIONS.md "Storage full").
  std::uint64_t storage_reserve_bytes = 0;
  // Tests only: false skips the checkpoint a clean close writes, leaving the
  // ledger as a crash would (the next open replays the journal tail).
  bool checkpoint_on_close = true;
  // A cluster's log (docs/ARCHITECTURE.md, "Replication"), asynchronous:
  // called on the writer thread with each batch's command (command.hpp) and
  // an id. True: the log took it, and answers it exactly once, later, with
  // own_committed(id, index) -- called in log order, as the log applies its
  // entries, with any enqueue_command -- or own_failed(id). The writer
  // applies the batch when own_committed comes, recording the index with
  // it; own_failed answers every op of it `unavailable`, nothing written.
  // False: not taken (not the leader, stopping), the batch answered
  // `unavailable`. Up to pipeline_batches are proposed and not yet
  // answered at once.
  std::function<bool(std::string command, std::uint64_t id)> propose;
  std::uint32_t pipeline_batches = limits::pipeline_batches_default;
  // The same, synchronous (a test's log): returns the command's log index
  // once it is committed there, 0 if it never will be. Used when `propose`
  // is empty. Both empty (the single node): batches are applied directly,
  // and LMDB's commit is what makes them durable.
  std::function<std::uint64_t(std::string_view command)> replicate;
  const loyalty::clock* clock = nullptr;              // required
  std::function<std::uint32_t(std::int64_t)> tier_of; // lifetime -> tier index; required
  // A cluster node's: called on the writer thread once a program version
  // from the log (or a snapshot holding one) is applied, with the last
  // version and its text, before anything after it is applied. tier_of
  // must answer by that version from then on: the tier it gives ops that
  // do not carry the actor's is in the journal, which every node must
  // write alike.
  std::function<void(std::uint32_t version, std::string_view text)> on_policy;
};

class ledger {
public:
  // Opens (creating if needed) the environment and starts the writer thread.
  // On failure returns null and sets `error` to a sentence naming the cause.
  [[nodiscard]] static std::unique_ptr<ledger> open(const options& opts, std::string& error);

  ~ledger();  // stops the writer after draining what was submitted
  ledger(const ledger&) = delete;
  ledger& operator=(const ledger&) = delete;

  // Hands an op to the writer. Never blocks on I/O; the queue is bounded by
  // the engine's admission control (inflight_total_max), not here.
  // Increments o.owner->inflight if owner is set.
  void submit(op&& o);

  // Blocks until every op submitted, and every command queued
  // (apply_command, enqueue_command), before this call has been committed
  // and completed. For rare paths (reactivation after a crash, shutdown, a
  // node becoming leader, tests).
  void barrier();

  // A follower's write path: applies a command another ledger's writer
  // encoded (options::replicate) in one write transaction, as that writer
  // applied it, and returns once it is committed. `log_index` is its index
  // in the log (0: none): it is recorded with it, and a command whose index
  // is not above the last one applied is skipped (the log replaying what
  // this ledger already holds). False with `error` set for bytes that are
  // not a command (nothing written). Any thread; ops submitted meanwhile are
  // applied after it.
  [[nodiscard]] bool apply_command(std::string_view bytes, std::uint64_t log_index, std::string& error);
  // The same without waiting: the writer applies it after the commands
  // queued before it. Waits only while limits::log_commands_queued_max
  // commands from the log are queued unapplied (backpressure on the log).
  [[nodiscard]] bool enqueue_command(std::string_view bytes, std::uint64_t log_index, std::string& error);
  // The log's answer to the proposal `id` (options::propose): committed
  // at `log_index` (call it where the log applies that entry, in order
  // with enqueue_command), or failed. Any thread; never blocks.
  void own_committed(std::uint64_t id, std::uint64_t log_index);
  void own_failed(std::uint64_t id);
  // A follower's snapshot install (a cluster's log compaction): replaces
  // this ledger's contents with the ledger in `dir` -- a data directory
  // whose data.mdb is another node's backup(), holding every log entry up
  // to its log index -- once the commands queued before it are applied;
  // commands queued after it apply to the new contents (those whose index
  // it holds are skipped). Removes `dir` once installed. `wait`: returns
  // then, else at once. A snapshot that cannot be read stops the process
  // (fail-stop, naming it): the log counts it installed, and a node going
  // on without it would diverge; at its next start the node installs it
  // again from its Raft directory.
  void install_snapshot(const std::string& dir, bool wait);
  // The highest log index applied (meta "log_applied"; 0: none).
  [[nodiscard]] std::uint64_t applied_log_index() const noexcept;

  // The journal's digest (command.hpp) as of the last commit, and the seq
  // it covers: equal on two nodes at equal seqs means equal journals.
  [[nodiscard]] digest_record journal_digest() const;

  // Committed state, read in a fresh read transaction.
  [[nodiscard]] std::optional<member_state> load_member(std::uint64_t member_id) const;
  [[nodiscard]] std::optional<account_record> load_account(std::uint64_t account) const;
  // Several accounts at one instant (whole entries only: never half of one),
  // zeroes for an account never posted to. Includes the batch the writer is
  // committing at that moment (a failed commit stops the engine).
  [[nodiscard]] std::vector<account_record> load_accounts(const std::vector<std::uint64_t>& accounts) const;
  [[nodiscard]] std::uint64_t last_seq() const;

  // The journal seq of a committed client txn id, or empty.
  [[nodiscard]] std::optional<std::uint64_t> find_txn(std::string_view txn_id) const;
  // False only if txn_id was certainly never committed (nor is in the batch
  // being committed): answered from an in-memory filter, without LMDB. True
  // means "ask find_txn" (it was, or the filter cannot tell: a false
  // positive, or the filter is still loading the ids of earlier runs). Any
  // thread, lock-free.
  [[nodiscard]] bool maybe_committed(std::string_view txn_id) const noexcept;
  // The filter has every txn id committed before this run (tests, stats).
  [[nodiscard]] bool txn_filter_ready() const noexcept;
  // It was made ready from the filter saved at the last clean close (and
  // the ids committed after it), not by a scan of every txn id.
  [[nodiscard]] bool txn_filter_from_saved() const noexcept;
  // The member an alias names, or empty.
  [[nodiscard]] std::optional<std::uint64_t> find_alias(std::string_view alias) const;
  // Every committed counter (records.hpp counter_kind), as (counter_id, value).
  [[nodiscard]] std::vector<std::pair<std::uint64_t, std::int64_t>> counters() const;
  // A member's committed book: the fold (apply_details) of all its entries,
  // oldest first, the ones where it is the counterparty included. Empty for
  // an unknown member; `why` is set and the result empty if a record does not
  // fit (a corrupt journal). It starts from the member's stored book (the
  // books table: the fold through an earlier entry, see store_book) and
  // reads the entries since, so its cost is one book plus the entries since
  // the book was stored; without one it reads every entry of the member.
  struct fold_info {
    std::uint64_t as_of = 0;        // the member's newest entry: the book is the fold through it
    std::uint64_t stored_seq = 0;   // the stored book it started from (0: the enrollment)
    std::size_t entries = 0;        // entries it read (and folded)
  };
  [[nodiscard]] std::optional<member_book> fold_book(std::uint64_t member_id, std::string& why,
                                                     fold_info* info = nullptr) const;
  // Stores `book`, the fold of the member's entries through seq `as_of`, in
  // the books table with the writer's next commit, unless a book of the same
  // or a later seq is there by then; later folds start from it. The table is
  // a cache of the journal: verify checks every stored book against the
  // fold, and a book queued past books_queued_max is dropped. Any thread.
  void store_book(std::uint64_t member_id, std::uint64_t as_of, const member_book& book);
  // Folds the member's book and stores it if the fold read at least
  // `min_entries` entries; the entries it read (0 for an unknown member).
  std::size_t checkpoint_book(std::uint64_t member_id, std::size_t min_entries);
  // Program versions. record_policy makes `p` the current version: if the
  // last recorded version has the same hash, that version is returned
  // unchanged; otherwise version last + 1 is written with its text (in its
  // own durable write transaction) and returned. 0 with `error` set on
  // failure. Any thread; rare (start-up and reloads). A single node's: a
  // cluster node's versions come from its log (a policy_change command,
  // command.hpp, which the writer applies the same way in log order).
  [[nodiscard]] std::uint32_t record_policy(const policy_change& p, std::uint64_t now_us, std::string& error);
  [[nodiscard]] std::vector<std::pair<std::uint32_t, policy_record>> policies() const;
  // The program text of a version (empty: unknown, or recorded before the
  // ledger kept texts).
  [[nodiscard]] std::optional<std::string> policy_text(std::uint32_t version) const;

  // Calls f(member_id) for each enrolled member with id > after, ascending,
  // at most `limit` members; returns the last id visited (0 if none).
  std::uint64_t for_each_member(std::uint64_t after, std::size_t limit,
                                const std::function<void(std::uint64_t)>& f) const;

  // Reads one journal entry (header, postings, txn id). Empty if absent.
  struct entry {
    journal_header header;
    std::vector<posting> postings;
    std::string txn_id;
    std::vector<entry_detail> details;
  };
  [[nodiscard]] std::optional<entry> read_entry(std::uint64_t seq) const;

  // A page of the journal for an export (io `journal`): the committed
  // entries with seq >= from_seq, ascending, at most `limit`, all read in
  // one read transaction, and the newest entry that transaction sees
  // (last_seq; 0 for an empty journal). A from_seq past it gives no
  // entries. Empty with `error` set if the transaction cannot begin or an
  // entry cannot be read (verify says more). Any thread; ledger/journal_read.cpp.
  struct journal_page {
    std::vector<entry> entries;
    std::uint64_t last_seq = 0;
  };
  [[nodiscard]] std::optional<journal_page> read_journal(std::uint64_t from_seq, std::size_t limit,
                                                         std::string& error) const;

  // A member's committed entries, newest first, following its history chain
  // (the entries where it is the counterparty included): at most `limit`
  // entries, from the newest (before_seq == 0; may wait for the commit in
  // progress) or after `before_seq`, the oldest entry an earlier page
  // returned. Empty for an unknown member or a before_seq that is not one of
  // the member's entries. Any thread.
  [[nodiscard]] std::vector<entry> history(std::uint64_t member_id, std::uint64_t before_seq,
                                           std::size_t limit) const;

  // Checks the invariants (docs/ARCHITECTURE.md): every entry balances in
  // each unit, and its money postings are what its settle records imply;
  // each party's settle records sum to its money accounts; no account's
  // debit or credit total passes account_total_max; the sum
  // over all accounts of (debits - credits) is zero; every stored account
  // equals the sum of its postings up to the last checkpoint (balances newer
  // than that live in the writer's memory and are rebuilt from the journal on
  // open); every txn id maps to exactly one entry and back; every member
  // account belongs to an enrolled member; every alias names an enrolled
  // member; every counter equals the sum of its details over the journal;
  // and each member's book (the fold of its entries) fits its entries and
  // its points: sum of lots + sum of holds - debt == the balance of its
  // member_points account (at the journal's end).
  // Runs in its own read transaction; safe while the writer runs.
  [[nodiscard]] verify_report verify() const;

  // Period reports (any thread, one read transaction each, committed entries
  // only). Both return empty with `error` set for from_us >= to_us (to_us !=
  // 0) or a read failure. Cost: a binary search for the period, then every
  // entry from the period's start or the last account checkpoint, whichever
  // is older, to the period's end or that checkpoint, whichever is newer.
  [[nodiscard]] std::optional<flows> account_flows(const std::vector<std::uint64_t>& accounts, std::uint64_t from_us,
                                                   std::uint64_t to_us, std::string& error) const;
  // The settle records naming the party in the period: totals over all of
  // them, and the lines of one page (at most `limit`, seq > after_seq).
  [[nodiscard]] std::optional<statement> settlement(party_kind kind, std::uint32_t party, std::uint64_t from_us,
                                                    std::uint64_t to_us, std::uint64_t after_seq, std::size_t limit,
                                                    std::string& error) const;
  // A KPI report of the brands asked over a period (ledger/reports.cpp):
  // their figures (exactly account_flows' over their four accounts), and
  // their members, active members, tiers and top earners as of the period's
  // end. One read transaction, committed entries only: every figure is of
  // one snapshot. Empty with `error` set and `code` invalid_argument for
  // from_us >= to_us (to_us != 0), amount_overflow for a total that leaves
  // int64, internal_error for a failed read or a journal verify would
  // refuse (a broken history chain).
  // Cost: account_flows' walk; the entries after the last account
  // checkpoint (the member heads the table does not have yet); a scan of
  // the members table; and for each member of a brand asked one account
  // read and its history chain from its newest entry back to the later of
  // the window's start and its newest entry of the period -- together
  // O(entries in the period + members + entries since to_us - active_us).
  // Memory: one counter per member who earned for a brand asked in the
  // period.
  [[nodiscard]] std::optional<kpi_report> report(const report_request& req, errc& code, std::string& error) const;

  // -- fraud and velocity limits (issue 19 item 2) -----------------------------------
  // A member flagged or blocked, as the risk table has it (records.hpp
  // risk_record), with the reason of its block (the block entry's note).
  struct risk_row {
    std::uint64_t member = 0;
    risk_record risk{};
    std::string reason;
  };
  // The flagged or blocked members with ids above `after`, ascending, at
  // most `limit` (any thread, one read transaction). Cost: the risk table
  // from `after` (members with a breach, block or unblock ever journaled)
  // plus one journal read per blocked member listed; never a member's
  // history.
  [[nodiscard]] std::vector<risk_row> risk_members(std::uint64_t after, std::size_t limit) const;

  // -- the event stream (issue 7) -------------------------------------------------
  // A committed entry as the event stream reads it: with the entry's member's
  // consent as of the entry (its consent entries up to and including it) and
  // the member's tier before it (the tier_after of its previous own entry).
  struct stream_entry {
    entry e;
    std::uint32_t consents = 0;
    std::uint32_t tier_before = 0;
    bool has_tier_before = false;  // false: the member's first entry (or a history too long to follow)
  };
  // Committed entries with seq >= from, ascending, at most `limit`, in one
  // read transaction (empty when from is past the newest entry). Any thread;
  // reads only: a slow reader never holds up the writer, and a reader behind
  // by millions of entries costs nothing but the pages it reads. Returns
  // false with `error` set on a read failure.
  bool read_stream(std::uint64_t from, std::size_t limit, std::vector<stream_entry>& out, std::string& error) const;
  // `f` is called on the writer thread with the newest seq after each
  // commit that wrote entries, after the batch's completions; it must not
  // block. Replaces the one before; an empty function removes it. Any thread.
  void set_commit_listener(std::function<void(std::uint64_t)> f);

  [[nodiscard]] writer_stats stats() const;
  // The environment's map size and the part of it in use, as of the last
  // commit. Any thread; two cheap LMDB calls, no transaction.
  [[nodiscard]] space_stats space() const;

  // Writes a consistent, compacted copy of the environment (LMDB's copy
  // with MDB_CP_COMPACT, inside one read transaction) as
  // DIR/data.mdb.partial, fsyncs it, checks it and reads back its newest
  // journal entry, then renames it to DIR/data.mdb and fsyncs DIR: a
  // backup that is interrupted never leaves a data.mdb. DIR must not exist
  // or be empty, but for a data.mdb.partial an interrupted backup left,
  // which is removed. Safe while the writer
  // runs: it keeps committing, and the pages the copy's read transaction
  // still sees are not reused until it ends, so the data file may grow by
  // what is written meanwhile. The copy is a data directory: an engine
  // started on it replays from its own checkpoint (docs/OPERATIONS.md,
  // "Backup and restore"). Empty with `error` set on failure (no
  // partial data.mdb is left).
  [[nodiscard]] std::optional<backup_info> backup(const std::string& dir, std::string& error) const;

  class impl;

private:
  explicit ledger(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

} // namespace loyalty::ledger

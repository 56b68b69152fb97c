#include "crash_harness.hpp"

#include "crash_load.hpp"
#include "engine_process.hpp"

#include "config/program.hpp"

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <map>
#include <ostream>
#include <random>
#include <set>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

namespace loyalty::test {

namespace {

struct crash_mode_name {
  crash_mode mode;
  const char* name;
};
constexpr crash_mode_name crash_mode_names[] = {
  {crash_mode::kill9, "kill9"},
  {crash_mode::before_commit, "before_commit"},
  {crash_mode::after_commit, "after_commit"},
  {crash_mode::in_checkpoint, "in_checkpoint"},
  {crash_mode::mixed, "mixed"},
};
// mixed takes these in turn.
constexpr crash_mode mixed_turns[] = {crash_mode::kill9, crash_mode::before_commit, crash_mode::after_commit,
                                      crash_mode::in_checkpoint};

} // namespace

bool parse_crash_mode(const std::string& text, crash_mode& out) {
  for (const auto& m : crash_mode_names)
    if (text == m.name) {
      out = m.mode;
      return true;
    }
  return false;
}

const char* to_string(crash_mode m) {
  for (const auto& n : crash_mode_names)
    if (n.mode == m)
      return n.name;
  return "mixed";
}

namespace {

using namespace crash;


// Where a kill -9 cycle aims its kill, after the load has run a while: at
// once, while a backup is being written (its directory holds a file and
// no answer came yet), or while a checkpoint is in progress (the engine's
// stats say records of a generation are still to be written). Cycle seed
// s aims at kill_aims[s % 3].
enum class kill_aim : std::uint8_t { any_moment, backup, checkpoint };
constexpr kill_aim kill_aims[] = {kill_aim::any_moment, kill_aim::backup, kill_aim::checkpoint};

// The stats counter `name`, or 0.
std::uint64_t stat(const response& stats, const std::string& name) {
  for (const auto& [n, v] : stats.stats)
    if (n == name)
      return v;
  return 0;
}

// An entry of the journal, as the checks need it.
struct journal_row {
  std::string kind, txn;
  std::uint64_t member = 0, counterparty = 0;
};


// Runs `loyaltyd --verify` on a data directory; the wait status, and its
// output in `output`.
int verify_offline(const std::string& loyaltyd, const std::filesystem::path& settings,
                   const std::filesystem::path& dir, const std::filesystem::path& output_file, std::string& output) {
  const std::string s = settings.string(), d = dir.string(), o = output_file.string();
  const char* argv[] = {loyaltyd.c_str(), "--verify", "--config", s.c_str(), "--data-dir", d.c_str(), nullptr};
  const pid_t pid = fork();
  if (pid < 0)
    fail("fork failed");
  if (pid == 0) {
    const int fd = ::open(o.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    execv(argv[0], const_cast<char* const*>(argv));
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  std::ifstream in(output_file);
  output.assign(std::istreambuf_iterator<char>(in), {});
  return status;
}

std::string describe_status(int status) {
  if (WIFSIGNALED(status))
    return "killed by signal " + std::to_string(WTERMSIG(status));
  return "exit status " + std::to_string(WEXITSTATUS(status));
}

struct harness {
  const crash_config& cfg;
  crash_result result;
  std::vector<driver_state> drivers;
  std::set<std::uint64_t> members;          // every member enrolled, as far as the checks found
  std::vector<txn_record> txns;             // the requests of the current cycle
  // What the journal holds, read up to journal_end: every txn id with its
  // seq, each member's balance, enroll entries and expired points, and the
  // entries from stream_from on (for the stream's check).
  std::uint64_t journal_end = 0;
  std::unordered_map<std::string, std::uint64_t> seq_of_txn;
  std::map<std::uint64_t, std::int64_t> balance_of;
  std::map<std::uint64_t, int> enrolls_of;
  std::map<std::uint64_t, std::int64_t> expired_of, expired_acked;
  std::map<std::uint64_t, journal_row> recent;  // seq -> entry, from stream_from on
  std::uint64_t stream_from = 1;                // where the subscriber resumes: every entry before it was streamed
  // (member, hold id) -> points, of the holds posted and not captured or
  // released: what each member's `held` must be.
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::int64_t> open_holds;

  explicit harness(const crash_config& c) : cfg(c), drivers(static_cast<std::size_t>(c.connections)) {}

  std::string key_settings() const {
    std::string hex;
    static const char* digits = "0123456789abcdef";
    for (unsigned char b : key_sha256(admin_secret)) {
      hex += digits[b >> 4];
      hex += digits[b & 15];
    }
    return "[[keys]]\nid = 1\nname = \"crash-harness\"\nsha256 = \"" + hex + "\"\nscope = \"admin\"\n";
  }

  engine_process_options options(std::vector<std::string> env = {}) const {
    engine_process_options o;
    o.binary = env.empty() ? cfg.loyaltyd : cfg.loyaltyd_faults;
    o.dir = cfg.work;
    o.program = cfg.program;
    o.env = std::move(env);
    o.extra_settings = "checkpoint_interval_ms = " + std::to_string(cfg.checkpoint_interval_ms) +
                       "\ncheckpoint_accounts_max = " + std::to_string(cfg.checkpoint_accounts_max) +
                       "\ncheckpoint_chunk_accounts = " + std::to_string(cfg.checkpoint_chunk_accounts) + "\n" +
                       key_settings();
    return o;
  }

  void enroll() {
    engine_process eng(options());
    auto c = connect(eng.port());
    for (int m = 1; m <= cfg.members; ++m) {
      const auto r = c->enroll(static_cast<std::uint64_t>(m), m % 2 == 0 ? "acme" : "globex");
      if (!r.ok())
        fail("enroll of member " + std::to_string(m) + ": " + code_name(r.code));
      members.insert(static_cast<std::uint64_t>(m));
    }
    read_journal(*c, "(enrolling)");
    c.reset();
    eng.stop();
  }

  // How the cycle's engine crashes: the LOYALTY_FAULT setting ("" for kill9).
  std::string fault_setting(crash_mode mode, std::mt19937_64& rng) const {
    const auto pick = [&](std::uint64_t most) { return cfg.fault_nth != 0 ? cfg.fault_nth : 1 + rng() % most; };
    switch (mode) {
      case crash_mode::kill9:
      case crash_mode::mixed: return "";
      // Early enough that the load reaches it: a commit holds tens of entries.
      case crash_mode::before_commit: return "crash_before_commit:" + std::to_string(pick(40));
      case crash_mode::after_commit: return "crash_after_commit:" + std::to_string(pick(40));
      // A generation is a few chunks: most of these land inside one.
      case crash_mode::in_checkpoint: return "crash_in_checkpoint:" + std::to_string(pick(12));
    }
    return "";
  }

  void cycle(int i) {
    const std::uint64_t seed = cfg.seed + static_cast<std::uint64_t>(i);
    std::mt19937_64 rng(seed);
    crash_mode mode = cfg.mode;
    if (mode == crash_mode::mixed)
      mode = mixed_turns[static_cast<std::size_t>(i) % std::size(mixed_turns)];
    const std::string fault = fault_setting(mode, rng);
    const std::string how = fault.empty() ? "kill9" : fault;
    const std::string where = " (" + how + ", seed " + std::to_string(seed) + ")";
    txns.clear();
    const auto backups = cfg.work / "backups" / ("c" + std::to_string(i));
    std::vector<event_rec> streamed;
    backup_log blog;
    try {
      crash(seed, rng, fault, backups, streamed, blog);
    } catch (const failure& f) {
      fail(f.what() + where);
    }
    engine_process eng(options());
    auto c = connect(eng.port());
    try {
      check(*c, streamed);
      check_backups(blog);
    } catch (const failure& f) {
      fail(f.what() + where);
    }
    c.reset();
    const int status = eng.stop();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      fail("the restarted engine did not stop cleanly (" + describe_status(status) + ")" + where);
    std::filesystem::remove_all(backups);
    if (cfg.progress != nullptr)
      *cfg.progress << "crash harness: cycle " << (i + 1) << "/" << cfg.cycles << " seed " << seed << " " << how
                    << ": " << txns.size() << " sent; " << result.posted << " txn ids and " << result.entries
                    << " entries in the ledger, " << result.events << " streamed, " << result.backups
                    << " backups so far; verify valid" << std::endl;
  }

  // Starts the engine, loads it, crashes it; the load's records into
  // `txns`, the stream's events into `streamed`.
  void crash(std::uint64_t seed, std::mt19937_64& rng, const std::string& fault,
             const std::filesystem::path& backups, std::vector<event_rec>& streamed, backup_log& blog) {
    std::vector<std::string> env;
    if (!fault.empty())
      env.push_back("LOYALTY_FAULT=" + fault);
    std::error_code ec;
    const auto stderr_before = std::filesystem::file_size(cfg.work / "stderr.txt", ec);  // the crashed engine's lines follow
    engine_process eng(options(env));
    std::atomic<bool> stop{false};
    std::vector<driver_log> logs(static_cast<std::size_t>(cfg.connections));
    follower_log flog;
    std::vector<std::thread> threads;
    for (int t = 0; t < cfg.connections; ++t)
      threads.emplace_back(drive, eng.port(), cfg.members, cfg.window, t, seed * 131 + static_cast<std::uint64_t>(t),
                           "s" + std::to_string(seed) + "-t" + std::to_string(t) + "-",
                           std::ref(drivers[static_cast<std::size_t>(t)]), std::cref(stop),
                           std::ref(logs[static_cast<std::size_t>(t)]));
    if (cfg.subscribe)
      threads.emplace_back(follow, eng.port(), stream_from, std::cref(stop), std::ref(flog));
    if (cfg.backups) {
      std::filesystem::create_directories(backups);
      threads.emplace_back(back_up, eng.port(), backups, seed, std::cref(stop), std::ref(blog));
    }
    int status = -1;
    try {
      if (fault.empty()) {
        auto watcher = connect(eng.port());
        std::this_thread::sleep_for(std::chrono::milliseconds(100 + rng() % 800));
        wait_for(kill_aims[seed % std::size(kill_aims)], *watcher, backups, blog);
        status = eng.kill9();
      } else {
        status = eng.wait_exit(std::chrono::seconds(20));
        if (status == -1)
          fail("the engine armed with LOYALTY_FAULT=" + fault + " did not crash within 20 s");
      }
    } catch (...) {
      eng.kill9();  // the load threads end with it
      stop.store(true);
      for (auto& th : threads)
        th.join();
      throw;
    }
    stop.store(true);
    for (auto& th : threads)
      th.join();
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
      fail("the engine ended with " + describe_status(status) + ", not by SIGKILL");
    if (!fault.empty())
      note_fault(fault, eng.stderr_file(), ec ? 0 : stderr_before);
    for (auto& log : logs) {
      if (!log.failure.empty())
        fail(log.failure);
      for (auto& t : log.txns)
        txns.push_back(std::move(t));
    }
    if (!flog.failure.empty())
      fail(flog.failure);
    if (!blog.failure.empty())
      fail(blog.failure);
    streamed = std::move(flog.events);
    result.backups += blog.done;
    for (const auto& t : txns) {
      ++result.sent;
      ++result.sent_by_op[to_string(t.req.op)];
      result.acked += t.acked ? 1 : 0;
    }
  }

  // Returns when the kill may come: the aim reached, or 2 s passed (10 s
  // for a backup: a small ledger's copy lasts about a millisecond, and on a
  // machine busy with other tests the watcher can miss that window for a
  // while; with 2 s it sometimes missed every one).
  void wait_for(kill_aim aim, client& watcher, const std::filesystem::path& backups, const backup_log& blog) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    if (aim == kill_aim::backup && cfg.backups) {
      const auto backup_until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      for (; std::chrono::steady_clock::now() < backup_until;
           std::this_thread::sleep_for(std::chrono::microseconds(100))) {
        const int k = blog.in_flight.load();
        std::error_code ec;
        if (k >= 0 && !std::filesystem::is_empty(backup_dir(backups, k), ec) && !ec)
          return;  // mid-copy: no stats call to slow the kill down
      }
    }
    for (;;) {
      response s;
      try {
        s = watcher.stats();
      } catch (const std::exception&) {
        return;  // no stats: the kill goes ahead
      }
      const bool in_checkpoint = stat(s, "ledger_checkpoint_pending") > 0;
      if (in_checkpoint || aim != kill_aim::checkpoint || std::chrono::steady_clock::now() >= until) {
        result.kills_in_checkpoint += in_checkpoint ? 1 : 0;
        result.checkpoints += stat(s, "ledger_checkpoints");
        return;
      }
    }
  }

  void note_fault(const std::string& fault, const std::filesystem::path& stderr_file, std::uint64_t from) {
    const auto f = last_fault(stderr_file, from);
    if (!f.found)
      fail("the engine armed with LOYALTY_FAULT=" + fault + " died without the injector saying it fired");
    if (f.records == 0)
      return;
    ++result.checkpoint_crashes;
    if (f.written > 0 && f.written + f.records < f.generation)
      ++result.checkpoint_crashes_mid_generation;
  }

  // -- the checks after the restart --

  void check(client& c, std::vector<event_rec>& streamed) {
    check_answers(c);
    const auto before = journal_end;
    read_journal(c, "");
    check_posted(before);
    check_members(c);
    check_verify(c);
    if (cfg.subscribe)
      check_stream(c, streamed);
    recent.clear();
  }

  // The answers before the crash, and the retries of the unanswered.
  void check_answers(client& c) {
    std::vector<std::size_t> replay, unknown;
    for (std::size_t k = 0; k < txns.size(); ++k) {
      auto& t = txns[k];
      const auto& a = t.acked;
      if (!a || a->code == errc::unavailable) {
        unknown.push_back(k);
      } else if (a->ok()) {
        if (!t.req.txn.empty())
          replay.push_back(k);
        else
          posted_without_txn(t, *a);
      } else if (!expected_refusal(t.req.op, a->code)) {
        fail(describe(t) + " was refused with " + code_name(a->code) + ": " + a->message);
      }
    }
    check_replays(c, replay);
    retry_unanswered(c, unknown);
  }

  static std::string describe(const txn_record& t) {
    return std::string(to_string(t.req.op)) + " " + (t.req.txn.empty() ? "of member " + std::to_string(t.member)
                                                                        : t.req.txn);
  }

  // An enroll or expire answered ok (before the crash or on a retry).
  void posted_without_txn(txn_record& t, const response& a) {
    t.posted = true;
    ++result.posted_by_op[to_string(t.req.op)];
    if (t.req.op == opcode::enroll) {
      t.seq = a.seq;
      members.insert(t.member);
    } else {
      expired_acked[t.member] += a.expired;
    }
  }

  void mark_posted(txn_record& t, const response& r) {
    t.posted = true;
    t.seq = r.seq;
    ++result.posted_by_op[to_string(t.req.op)];
    if (t.req.op == opcode::hold)
      open_holds[{t.member, r.hold}] = t.req.points;
    if (t.req.op == opcode::capture || t.req.op == opcode::release)
      open_holds.erase({t.member, t.req.hold});
  }

  // Acknowledged postings: each retry a replay of the same entry.
  void check_replays(client& c, const std::vector<std::size_t>& replay) {
    std::vector<request> reqs;
    for (auto k : replay)
      reqs.push_back(txns[k].req);
    const auto answers = call_all(c, reqs);
    for (std::size_t j = 0; j < replay.size(); ++j) {
      auto& t = txns[replay[j]];
      const auto& a = *t.acked;
      const auto& r = answers[j];
      if (!r.ok() || !r.replayed || r.seq != a.seq)
        fail("acknowledged " + describe(t) + " (seq " + std::to_string(a.seq) + ") retried after the crash: " +
             code_name(r.code) + " " + r.message + ", replayed " + (r.replayed ? "yes" : "no") + ", seq " +
             std::to_string(r.seq));
      if (r.points != a.points)
        fail("acknowledged " + describe(t) + " moved " + std::to_string(a.points) + " points, its replay says " +
             std::to_string(r.points));
      if (t.req.op == opcode::hold && r.hold != a.hold)
        fail("acknowledged " + describe(t) + " opened hold " + std::to_string(a.hold) + ", its replay says " +
             std::to_string(r.hold));
      mark_posted(t, r);
    }
  }

  // Unanswered: a first retry posts it or finds it, a second is a replay.
  void retry_unanswered(client& c, const std::vector<std::size_t>& unknown) {
    std::vector<request> reqs;
    for (auto k : unknown)
      reqs.push_back(txns[k].req);
    const auto answers = call_all(c, reqs);
    // The second retry only of txns the first posted (or found posted): a
    // refused one retried again is a new request, which may now pass.
    std::vector<request> again;
    for (std::size_t j = 0; j < unknown.size(); ++j)
      if (answers[j].ok() && !reqs[j].txn.empty())
        again.push_back(reqs[j]);
    const auto seconds = call_all(c, again);
    for (std::size_t j = 0, k = 0; j < unknown.size(); ++j) {
      auto& t = txns[unknown[j]];
      const auto& r1 = answers[j];
      if (t.req.op == opcode::enroll && r1.code == errc::member_exists) {
        t.posted = true;  // enrolled before the crash; its entry is found in the journal
        ++result.posted_by_op[to_string(t.req.op)];
        members.insert(t.member);
      } else if (r1.ok() && t.req.txn.empty()) {
        posted_without_txn(t, r1);
      } else if (r1.ok()) {
        const auto& r2 = seconds[k++];
        if (!r2.ok() || !r2.replayed || r2.seq != r1.seq)
          fail(describe(t) + " retried twice: seq " + std::to_string(r1.seq) + ", then " + code_name(r2.code) +
               " seq " + std::to_string(r2.seq));
        mark_posted(t, r1);
        ++result.retried_posted;
        result.retried_replayed += r1.replayed ? 1 : 0;
      } else if (!expected_refusal(t.req.op, r1.code)) {
        fail("unanswered " + describe(t) + " retried: " + code_name(r1.code) + ": " + r1.message);
      }
    }
  }

  // Reads the journal's new entries: every txn id in it is one the clients
  // posted, once, for the member they posted it for.
  void read_journal(client& c, const std::string& when) {
    std::unordered_map<std::string, const txn_record*> by_txn;
    for (const auto& t : txns)
      if (!t.req.txn.empty())
        by_txn[t.req.txn] = &t;
    for (std::uint64_t from = journal_end + 1;;) {
      const auto page = c.journal(from, 1000);
      if (!page.ok())
        fail("journal from " + std::to_string(from) + ": " + code_name(page.code) + ": " + page.message);
      for (const auto& je : page.journal) {
        const auto& e = je.entry;
        if (e.seq != journal_end + 1)
          fail("the journal jumps from seq " + std::to_string(journal_end) + " to " + std::to_string(e.seq));
        journal_end = e.seq;
        take_entry(e.seq, {e.kind, e.txn, je.member, e.counterparty}, e.points, by_txn, when);
      }
      if (page.next == 0)
        break;
      from = page.next;
    }
    result.entries = journal_end;
    result.posted = seq_of_txn.size();
  }

  void take_entry(std::uint64_t seq, journal_row row, std::int64_t points,
                  const std::unordered_map<std::string, const txn_record*>& by_txn, const std::string& when) {
    balance_of[row.member] += points;
    if (row.kind == "transfer")
      balance_of[row.counterparty] -= points;
    if (row.kind == "enroll")
      ++enrolls_of[row.member];
    if (row.kind == "expire")
      expired_of[row.member] -= points;
    if (!row.txn.empty()) {
      const auto it = by_txn.find(row.txn);
      if (seq_of_txn.count(row.txn) != 0)
        fail("txn " + row.txn + " is in the journal twice: seq " + std::to_string(seq_of_txn[row.txn]) + " and " +
             std::to_string(seq) + when);
      if (it == by_txn.end() || !it->second->posted)
        fail("the journal holds txn " + row.txn + " (" + row.kind + ", seq " + std::to_string(seq) +
             "), which no client knows as posted" + when);
      if (it->second->member != row.member || it->second->seq != seq)
        fail("the journal holds " + describe(*it->second) + " at seq " + std::to_string(seq) + " for member " +
             std::to_string(row.member) + "; its answer said seq " + std::to_string(it->second->seq) +
             " for member " + std::to_string(it->second->member));
      seq_of_txn[row.txn] = seq;
    }
    if (seq >= stream_from)
      recent[seq] = std::move(row);
  }

  // Every posted txn of the cycle was found; every enroll is one entry.
  void check_posted(std::uint64_t journal_before) {
    for (const auto& t : txns) {
      if (!t.posted)
        continue;
      if (!t.req.txn.empty() && seq_of_txn.count(t.req.txn) == 0)
        fail(describe(t) + " was posted (seq " + std::to_string(t.seq) + ") but is not in the journal");
      if (t.req.op == opcode::enroll && t.seq != 0 && (t.seq <= journal_before || recent_kind(t.seq) != "enroll"))
        fail("enroll of member " + std::to_string(t.member) + " answered seq " + std::to_string(t.seq) +
             ", which is not its enroll entry");
    }
  }

  std::string recent_kind(std::uint64_t seq) const {
    const auto it = recent.find(seq);
    return it == recent.end() ? "" : it->second.kind;
  }

  // Each member enrolled once, its balance the sum of its entries, its held
  // points those of its open holds, what an acknowledged expire took in its
  // expire entries.
  void check_members(client& c) {
    for (const auto& [m, n] : enrolls_of)
      if (n != 1 || members.count(m) == 0)
        fail("member " + std::to_string(m) + " has " + std::to_string(n) + " enroll entries" +
             (members.count(m) == 0 ? ", and no client enrolled it" : ""));
    std::vector<request> reqs;
    for (auto m : members) {
      if (enrolls_of.count(m) == 0)
        fail("member " + std::to_string(m) + " was enrolled but has no enroll entry");
      request r;
      r.op = opcode::balance;
      r.member = m;
      reqs.push_back(r);
    }
    const auto answers = call_all(c, reqs);
    // A member's first operation after its lots expired posts their expiry
    // first (a balance too): the journal read before lacks those entries.
    read_journal(c, " (after the balances)");
    std::map<std::uint64_t, std::int64_t> held;
    for (const auto& [hold, points] : open_holds)
      held[hold.first] += points;
    for (std::size_t j = 0; j < reqs.size(); ++j) {
      const auto m = reqs[j].member;
      if (!answers[j].ok() || answers[j].balance != balance_of[m])
        fail("member " + std::to_string(m) + " has balance " + std::to_string(answers[j].balance) + " (" +
             code_name(answers[j].code) + "), its journal entries add up to " + std::to_string(balance_of[m]));
      if (answers[j].held != held[m])
        fail("member " + std::to_string(m) + " holds " + std::to_string(answers[j].held) + " points, its open "
             "holds " + std::to_string(held[m]));
    }
    for (const auto& [m, pts] : expired_acked)
      if (expired_of[m] < pts)
        fail("acknowledged expires of member " + std::to_string(m) + " took " + std::to_string(pts) +
             " points, its expire entries " + std::to_string(expired_of[m]));
  }

  void check_verify(client& c) {
    const auto v = c.verify();
    if (!v.ok() || !v.verify.valid) {
      std::string why;
      for (const auto& p : v.verify.problems)
        why += "\n  " + p;
      fail("verify after the crash: " + code_name(v.code) + why);
    }
    if (v.verify.txn_ids != seq_of_txn.size())
      fail("verify counts " + std::to_string(v.verify.txn_ids) + " txn ids, the journal " +
           std::to_string(seq_of_txn.size()));
    if (v.verify.entries != journal_end)
      fail("verify counts " + std::to_string(v.verify.entries) + " entries, the journal " +
           std::to_string(journal_end));
  }

  // The subscriber resumes on the restarted engine from its last seq + 1;
  // with what it had before the crash, it has every entry up to the
  // journal's end exactly once, as the journal has it.
  void check_stream(client& c, std::vector<event_rec>& events) {
    const std::size_t before = events.size();
    const std::uint64_t resume = events.empty() ? stream_from : events.back().seq + 1;
    const auto a = c.subscribe(resume);
    if (!a.ok())
      fail("resubscribing from " + std::to_string(resume) + ": " + code_name(a.code) + ": " + a.message);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    const bool caught_up = read_stream(c, a.id, events, std::chrono::milliseconds(500), [&](const response* f) {
      if (f == nullptr && std::chrono::steady_clock::now() > until)
        fail("the resumed stream did not reach seq " + std::to_string(journal_end) + " within 30 s");
      return f != nullptr && f->next > journal_end;
    });
    if (!caught_up)
      fail("the engine closed the resumed stream");
    result.events_after_resume += events.size() - before;
    std::uint64_t expect = stream_from;  // the next entry not yet seen
    std::set<std::string> types;         // of the entry being read
    for (std::size_t n = 0; n < events.size(); ++n) {
      const auto& e = events[n];
      if (e.seq > journal_end && n < before)
        fail("the stream gave seq " + std::to_string(e.seq) + " (" + e.entry + " " + e.txn +
             ") before the crash, which the journal after it does not have");
      if (e.seq > journal_end)
        break;  // posted by the engine after the journal was read: the next cycle's
      if (e.seq + 1 == expect) {
        if (!types.insert(e.type).second)
          fail("the stream gave event " + e.type + " of seq " + std::to_string(e.seq) + " twice");
        continue;
      }
      for (; expect < e.seq; ++expect)
        if (recent_kind(expect) != "tier_review")  // a review that changed no tier has no event
          fail("the stream skipped seq " + std::to_string(expect) + " (" + recent_kind(expect) + ")" +
               (expect < resume ? "" : ", after the resume from " + std::to_string(resume)));
      if (e.seq != expect)
        fail("the stream went back to seq " + std::to_string(e.seq) + " after " + std::to_string(expect - 1));
      const auto& row = recent.at(e.seq);
      if (e.entry != row.kind || e.txn != row.txn || e.member != row.member)
        fail("the stream's seq " + std::to_string(e.seq) + " is " + e.entry + " " + e.txn + " of member " +
             std::to_string(e.member) + ", the journal's " + row.kind + " " + row.txn + " of member " +
             std::to_string(row.member));
      types = {e.type};
      ++expect;
      ++result.events;
    }
    for (; expect <= journal_end; ++expect)
      if (recent_kind(expect) != "tier_review")
        fail("the stream never gave seq " + std::to_string(expect) + " (" + recent_kind(expect) + ")");
    stream_from = journal_end + 1;
    recent.clear();
  }

  // A backup the crash interrupted left no data.mdb or a sound one; the
  // last completed one is sound.
  void check_backups(const backup_log& blog) {
    if (!blog.interrupted.empty() && std::filesystem::exists(blog.interrupted)) {
      ++result.backups_interrupted;
      if (std::filesystem::exists(blog.interrupted / "data.mdb")) {
        ++result.backups_left_data;
        verify_copy(blog.interrupted, "the backup the crash interrupted left a data.mdb");
      }
    }
    if (!blog.last_done.empty())
      verify_copy(blog.last_done, "the last completed backup");
  }

  void verify_copy(const std::filesystem::path& dir, const std::string& what) {
    std::string out;
    const int status =
      verify_offline(cfg.loyaltyd, cfg.work / "loyaltyd.toml", dir, cfg.work / "verify-backup.txt", out);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      fail(what + " (" + dir.string() + ") that loyaltyd --verify does not pass: " + describe_status(status) +
           "\n" + out.substr(0, 2000));
  }
};

} // namespace

fault_report last_fault(const std::filesystem::path& stderr_file, std::uint64_t from) {
  std::ifstream in(stderr_file);
  in.seekg(static_cast<std::streamoff>(from));
  std::string line;
  fault_report out;
  while (std::getline(in, line)) {
    fault_report r;
    char at[8] = {};
    if (std::sscanf(line.c_str(),
                    "loyaltyd-faults: LOYALTY_FAULT fired: SIGKILL %7s mdb_txn_commit of a commit of %" SCNu64
                    " entries and %" SCNu64 " checkpoint records (generation of %" SCNu64 ", %" SCNu64,
                    at, &r.entries, &r.records, &r.generation, &r.written) == 5) {
      r.found = true;
      r.before_commit = std::string_view(at) == "before";
      out = r;
    }
  }
  return out;
}

void print_summary(std::ostream& out, const crash_result& r) {
  out << "crash harness: " << r.cycles_done << " cycles passed" << (r.ok ? "" : " before a failure") << ": " << r.sent << " requests sent, " << r.acked
            << " answered before their crash, " << r.retried_posted << " unanswered ones posted by a retry ("
            << r.retried_replayed << " of them found committed); " << r.posted << " txn ids and " << r.entries
            << " entries in the ledger\n"
            << "  kills with a checkpoint in progress: " << r.kills_in_checkpoint << " (checkpoints the killed engines completed: "
            << r.checkpoints << "); injected checkpoint crashes: " << r.checkpoint_crashes << ", "
            << r.checkpoint_crashes_mid_generation << " of them halfway through a generation\n"
            << "  backups completed: " << r.backups << ", interrupted: " << r.backups_interrupted << " ("
            << r.backups_left_data << " left a data.mdb, verified)\n"
            << "  events checked against the journal: " << r.events << " (" << r.events_after_resume
            << " after resuming)\n  sent / in the ledger per operation:";
  for (const auto& [op, n] : r.sent_by_op) {
    const auto p = r.posted_by_op.find(op);
    out << " " << op << " " << n << "/" << (p == r.posted_by_op.end() ? 0 : p->second);
  }
  out << "\n";
}

crash_result run_crash_harness(const crash_config& cfg) {
  harness h(cfg);
  try {
    h.enroll();
    for (int i = 0; i < cfg.cycles; ++i) {
      h.cycle(i);
      h.result.cycles_done = i + 1;
    }
  } catch (const std::exception& e) {
    h.result.ok = false;
    h.result.failure = std::string("cycle ") + std::to_string(h.result.cycles_done + 1) + ": " + e.what();
  }
  return h.result;
}

} // namespace loyalty::test
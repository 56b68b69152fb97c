#include "crash_harness.hpp"

#include "engine_process.hpp"

#include "io/client/client.hpp"

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <ostream>
#include <random>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <vector>

namespace loyalty::test {

bool parse_crash_mode(const std::string& text, crash_mode& out) {
  for (auto m : {crash_mode::kill9, crash_mode::before_commit, crash_mode::after_commit, crash_mode::mixed})
    if (text == to_string(m)) {
      out = m;
      return true;
    }
  return false;
}

const char* to_string(crash_mode m) {
  switch (m) {
    case crash_mode::kill9: return "kill9";
    case crash_mode::before_commit: return "before_commit";
    case crash_mode::after_commit: return "after_commit";
    case crash_mode::mixed: return "mixed";
  }
  return "mixed";
}

namespace {

using io::client;
using io::opcode;
using io::request;
using io::response;

// One posting request of the load and what became of it.
struct txn_record {
  request req;
  std::optional<response> acked;  // the answer before the crash, if one came
  bool posted = false;            // in the ledger, as far as the checks found
  std::uint64_t seq = 0;          // its entry, when posted
  std::int64_t points = 0;        // what it moved (earn: the points credited)
};

// Refusals that post nothing and that this load provokes on purpose (or
// that a busy engine gives). Any other error is a failure of the harness.
bool expected_refusal(errc code) {
  return code == errc::insufficient_points || code == errc::negative_balance_limit || code == errc::overloaded;
}

class failure : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void fail(const std::string& what) { throw failure(what); }

std::unique_ptr<client> connect(std::uint16_t port) {
  std::string error;
  auto c = client::connect("127.0.0.1", port, error);
  if (!c)
    fail("cannot connect to loyaltyd: " + error);
  if (!c->hello("crash-harness").ok())
    fail("hello refused");
  return c;
}

// Sends every request pipelined (at most `window` in flight) and returns
// the answers in the requests' order.
std::vector<response> call_all(client& c, std::vector<request> reqs, std::size_t window = 256) {
  std::vector<response> out(reqs.size());
  std::unordered_map<std::uint64_t, std::size_t> slot;
  std::size_t next = 0, done = 0;
  while (done < reqs.size()) {
    while (next < reqs.size() && slot.size() < window) {
      reqs[next].id = 0;
      slot[c.send(reqs[next])] = next;
      ++next;
    }
    response r;
    std::string error;
    if (!c.receive(r, error, std::chrono::seconds(30)))
      fail("no answer from the restarted engine: " + error);
    auto it = slot.find(r.id);
    if (it == slot.end())
      fail("an answer with an id nobody asked for: " + std::to_string(r.id));
    out[it->second] = std::move(r);
    slot.erase(it);
    ++done;
  }
  return out;
}

// The load of one connection until the engine dies or `stop` is set.
void drive(std::uint16_t port, int members, int window, std::uint64_t seed, const std::string& prefix,
           const std::atomic<bool>& stop, std::vector<txn_record>& out) {
  std::mt19937_64 rng(seed);
  std::string error;
  auto c = client::connect("127.0.0.1", port, error);
  if (!c)
    return;  // already dead: nothing sent
  try {
    if (!c->hello("crash-load").ok())
      return;
  } catch (const std::exception&) {
    return;
  }
  const auto now_us = static_cast<std::uint64_t>(
    std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count());
  std::unordered_map<std::uint64_t, std::size_t> inflight;
  std::uniform_int_distribution<std::uint64_t> member(1, static_cast<std::uint64_t>(members));
  std::uint64_t n = 0;
  for (;;) {
    try {
      while (!stop.load() && inflight.size() < static_cast<std::size_t>(window)) {
        request r;
        r.txn = prefix + std::to_string(n++);
        r.member = member(rng);
        const auto pick = rng() % 10;
        if (pick < 6) {
          r.op = opcode::earn;
          r.brand = "acme";
          r.amount = static_cast<std::int64_t>(100 + rng() % 10000);
          r.currency = "EUR";
          r.occurred_at_us = now_us;
        } else if (pick < 8) {
          r.op = opcode::redeem;
          r.points = static_cast<std::int64_t>(1 + rng() % 150);
        } else {
          r.op = opcode::transfer;
          do
            r.to = member(rng);
          while (r.to == r.member);
          r.points = static_cast<std::int64_t>(1 + rng() % 80);
        }
        out.push_back({r, std::nullopt});
        inflight[c->send(r)] = out.size() - 1;
      }
      if (inflight.empty())
        return;  // stopped, everything answered
      response resp;
      if (!c->receive(resp, error, std::chrono::seconds(10)))
        return;  // the engine died: what is in flight stays unanswered
      if (auto it = inflight.find(resp.id); it != inflight.end()) {
        out[it->second].acked = std::move(resp);
        inflight.erase(it);
      }
    } catch (const std::exception&) {
      return;  // the connection broke while sending
    }
  }
}

struct harness {
  const crash_config& cfg;
  crash_result result;
  std::vector<txn_record> txns;            // every posting request of every cycle
  std::map<std::uint64_t, std::int64_t> expected;  // member -> balance implied by the posted txns

  engine_process_options options(std::vector<std::string> env = {}) const {
    engine_process_options o;
    o.binary = env.empty() ? cfg.loyaltyd : cfg.loyaltyd_faults;
    o.dir = cfg.work;
    o.program = cfg.program;
    o.env = std::move(env);
    return o;
  }

  void apply(const txn_record& t) {
    switch (t.req.op) {
      case opcode::earn: expected[t.req.member] += t.points; break;
      case opcode::redeem: expected[t.req.member] -= t.req.points; break;
      case opcode::transfer:
        expected[t.req.member] -= t.req.points;
        expected[t.req.to] += t.req.points;
        break;
      default: break;
    }
  }

  void enroll() {
    engine_process eng(options());
    auto c = connect(eng.port());
    for (int m = 1; m <= cfg.members; ++m) {
      const auto r = c->enroll(static_cast<std::uint64_t>(m), "acme");
      if (!r.ok())
        fail("enroll of member " + std::to_string(m) + ": " + std::string(to_string(r.code)));
      expected[static_cast<std::uint64_t>(m)] = r.balance;  // a welcome bonus, if the program has one
    }
    c.reset();
    eng.stop();
  }

  void cycle(int i) {
    const std::uint64_t seed = cfg.seed + static_cast<std::uint64_t>(i);
    std::mt19937_64 rng(seed);
    crash_mode mode = cfg.mode;
    if (mode == crash_mode::mixed)
      mode = static_cast<crash_mode>(i % 3);
    std::vector<std::string> env;
    std::string how = to_string(mode);
    if (mode != crash_mode::kill9) {
      // Early enough that the load reaches it: a commit holds tens of entries.
      const auto nth = 1 + rng() % 40;
      how = std::string(mode == crash_mode::before_commit ? "crash_before_commit:" : "crash_after_commit:") +
            std::to_string(nth);
      env.push_back("LOYALTY_FAULT=" + how);
    }
    const std::size_t first = txns.size();
    std::uint64_t sent = 0, acked = 0;
    {
      engine_process eng(options(env));
      std::atomic<bool> stop{false};
      std::vector<std::vector<txn_record>> logs(static_cast<std::size_t>(cfg.connections));
      std::vector<std::thread> threads;
      for (int t = 0; t < cfg.connections; ++t)
        threads.emplace_back(drive, eng.port(), cfg.members, cfg.window, seed * 131 + static_cast<std::uint64_t>(t),
                             "s" + std::to_string(seed) + "-t" + std::to_string(t) + "-", std::cref(stop),
                             std::ref(logs[static_cast<std::size_t>(t)]));
      int status = -1;
      if (mode == crash_mode::kill9) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50 + rng() % 600));
        status = eng.kill9();
      } else {
        status = eng.wait_exit(std::chrono::seconds(20));
        if (status == -1)
          fail("the engine armed with LOYALTY_FAULT=" + how + " did not crash within 20 s");
      }
      if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        fail("the engine (" + how + ") ended with wait status " + std::to_string(status) + ", not by SIGKILL");
      stop.store(true);
      for (auto& th : threads)
        th.join();
      for (auto& log : logs)
        for (auto& t : log) {
          ++sent;
          acked += t.acked ? 1 : 0;
          txns.push_back(std::move(t));
        }
    }
    engine_process eng(options());
    auto c = connect(eng.port());
    check(*c, first, how, seed);
    c.reset();
    const int status = eng.stop();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      fail("the restarted engine did not stop cleanly (wait status " + std::to_string(status) + ")");
    result.sent += sent;
    result.acked += acked;
    if (cfg.progress != nullptr)
      *cfg.progress << "crash harness: cycle " << (i + 1) << "/" << cfg.cycles << " seed " << seed << " " << how
                    << ": " << sent << " sent, " << acked << " answered before the crash; " << result.posted
                    << " txn ids in the ledger, verify valid" << std::endl;
  }

  // For a failure: the member's posted txns the journal lacks, and its
  // entries the harness does not know as posted.
  std::string difference(client& c, std::uint64_t m) {
    std::map<std::string, std::int64_t> journal;  // txn -> points moved for m
    std::uint64_t before = 0;
    for (int page = 0; page < 1000; ++page) {
      const auto h = c.history(m, before, 100);
      if (!h.ok())
        return "; history: " + std::string(to_string(h.code));
      for (const auto& e : h.entries)
        journal[e.txn] += e.points;
      if (h.next_before == 0)
        break;
      before = h.next_before;
    }
    std::ostringstream out;
    int shown = 0;
    for (const auto& t : txns) {
      if (!t.posted || (t.req.member != m && !(t.req.op == opcode::transfer && t.req.to == m)))
        continue;
      auto it = journal.find(t.req.txn);
      if (it == journal.end()) {
        if (shown++ < 10)
          out << "\n  posted but not in the member's history: " << t.req.txn << " " << to_string(t.req.op) << " seq "
              << t.seq << (t.acked ? " (answered)" : " (retried)");
      } else {
        journal.erase(it);
      }
    }
    for (const auto& [txn, pts] : journal)
      if (!txn.empty() && shown++ < 20)
        out << "\n  in the history, not known as posted: " << txn << " " << pts << " points";
    return out.str();
  }

  // The checks of one cycle, over the txns from `first` on.
  void check(client& c, std::size_t first, const std::string& how, std::uint64_t seed) {
    const std::string where = " (" + how + ", seed " + std::to_string(seed) + ")";
    std::vector<std::size_t> replay, absent, unknown;
    for (std::size_t k = first; k < txns.size(); ++k) {
      const auto& a = txns[k].acked;
      if (!a || a->code == errc::unavailable)
        unknown.push_back(k);
      else if (a->ok())
        replay.push_back(k);
      else if (expected_refusal(a->code))
        absent.push_back(k);
      else
        fail("txn " + txns[k].req.txn + " was refused with " + std::string(to_string(a->code)) + ": " +
             a->message + where);
    }
    // Acknowledged postings: each a replay of the same entry.
    std::vector<request> reqs;
    for (auto k : replay)
      reqs.push_back(txns[k].req);
    auto answers = call_all(c, reqs);
    for (std::size_t j = 0; j < replay.size(); ++j) {
      auto& t = txns[replay[j]];
      const auto& r = answers[j];
      if (!r.ok() || !r.replayed || r.seq != t.acked->seq)
        fail("acknowledged txn " + t.req.txn + " (seq " + std::to_string(t.acked->seq) + ") retried after the " +
             "crash: " + std::string(to_string(r.code)) + ", replayed " + (r.replayed ? "yes" : "no") + ", seq " +
             std::to_string(r.seq) + where);
      if (t.req.op == opcode::earn && r.points != t.acked->points)
        fail("acknowledged earn " + t.req.txn + " credited " + std::to_string(t.acked->points) +
             " points, its replay says " + std::to_string(r.points) + where);
      t.posted = true;
      t.seq = r.seq;
      t.points = t.acked->points;
    }
    // Acknowledged refusals: no entry.
    reqs.clear();
    for (auto k : absent) {
      request r;
      r.op = opcode::explain;
      r.txn = txns[k].req.txn;
      reqs.push_back(r);
    }
    answers = call_all(c, reqs);
    for (std::size_t j = 0; j < absent.size(); ++j)
      if (answers[j].code != errc::unknown_txn)
        fail("txn " + txns[absent[j]].req.txn + " was refused with " +
             std::string(to_string(txns[absent[j]].acked->code)) + " but explain finds it: " +
             std::string(to_string(answers[j].code)) + where);
    // Unanswered: a first retry posts it or finds it, a second is a replay.
    reqs.clear();
    for (auto k : unknown)
      reqs.push_back(txns[k].req);
    answers = call_all(c, reqs);
    // The second retry only of those the first posted (or found posted): a
    // refused one retried again is a new request, which may now pass.
    std::vector<request> again;
    for (std::size_t j = 0; j < unknown.size(); ++j)
      if (answers[j].ok())
        again.push_back(reqs[j]);
    const auto seconds = call_all(c, again);
    for (std::size_t j = 0, k = 0; j < unknown.size(); ++j) {
      auto& t = txns[unknown[j]];
      const auto& r1 = answers[j];
      if (r1.ok()) {
        const auto& r2 = seconds[k++];
        if (!r2.ok() || !r2.replayed || r2.seq != r1.seq)
          fail("txn " + t.req.txn + " retried twice: seq " + std::to_string(r1.seq) + ", then " +
               std::string(to_string(r2.code)) + " seq " + std::to_string(r2.seq) + where);
        t.posted = true;
        t.seq = r1.seq;
        t.points = r1.points;
        ++result.retried_posted;
        result.retried_replayed += r1.replayed ? 1 : 0;
      } else if (!expected_refusal(r1.code)) {
        fail("unanswered txn " + t.req.txn + " retried: " + std::string(to_string(r1.code)) + ": " + r1.message +
             where);
      }
    }
    std::uint64_t posted_now = 0;
    for (std::size_t k = first; k < txns.size(); ++k)
      if (txns[k].posted) {
        apply(txns[k]);
        ++posted_now;
      }
    result.posted += posted_now;
    // Nothing twice: balances and the count of txn ids.
    for (const auto& [m, want] : expected) {
      const auto b = c.balance(m);
      if (!b.ok() || b.balance != want)
        fail("member " + std::to_string(m) + " has balance " + std::to_string(b.balance) + ", its posted txns add "
             "up to " + std::to_string(want) + where + difference(c, m));
    }
    const auto v = c.verify();
    if (!v.ok() || !v.verify.valid) {
      std::string why;
      for (const auto& p : v.verify.problems)
        why += "\n  " + p;
      fail("verify after the crash: " + std::string(to_string(v.code)) + why + where);
    }
    if (v.verify.txn_ids != result.posted)
      fail("verify counts " + std::to_string(v.verify.txn_ids) + " txn ids, the clients posted " +
           std::to_string(result.posted) + where);
  }
};

} // namespace

crash_result run_crash_harness(const crash_config& cfg) {
  harness h{cfg, {}, {}, {}};
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

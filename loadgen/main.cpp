// loyalty-loadgen: capacity testing for loyaltyd over its wire protocol.
// Enrolls members in bulk, then drives a mix of operations (earns with line
// items, redeems, events, holds followed by a capture or release, refunds of
// earlier earns, reward redemptions, transfers, balances, history pages)
// closed-loop (as fast as acknowledged, with a pipeline depth per connection)
// or open-loop (a fixed rate; latency counts from each request's intended
// send time, so a stalled engine cannot hide its latency). Uses only the
// client library.
#include "io/cli_connection.hpp"
#include "io/client.hpp"
#include "loadgen/histogram.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <sstream>

using namespace loyalty;
using namespace loyalty::io;
using loyalty::loadgen::histogram;
using steady = std::chrono::steady_clock;

namespace {

struct options {
  std::string host = "127.0.0.1";
  int port = 7411;
  std::uint64_t members = 1'000'000;
  std::string brand = "acme";
  std::string currency = "EUR";
  bool skip_enroll = false;
  std::uint32_t enroll_batch = 1000;
  std::uint32_t connections = 4;
  std::uint32_t depth = 256;
  double duration_s = 10;
  std::string mode = "closed";
  double rate = 0;
  std::string mix = "earn=90,redeem=10";
  std::uint32_t items = 0;            // line items per earn basket (0: none)
  std::string categories = "grocery,coffee,electronics,home";
  std::string channel;                // earn channel ("" = none)
  std::string event = "survey";
  std::string reward = "coffee";
  std::uint64_t seed = 0;
  std::string json;
  connection_options conn;           // API key and TLS
};

std::uint64_t now_us() {
  return static_cast<std::uint64_t>(
    std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

double secs(steady::duration d) { return std::chrono::duration<double>(d).count(); }

// Time-ordered 16-byte txn id: timestamp (µs, big-endian), connection, counter.
std::string make_txn(std::uint32_t conn, std::uint32_t counter) {
  std::string id(16, '\0');
  auto t = now_us();
  for (int i = 0; i < 8; ++i)
    id[i] = static_cast<char>(t >> (56 - 8 * i));
  for (int i = 0; i < 4; ++i) {
    id[8 + i] = static_cast<char>(conn >> (24 - 8 * i));
    id[12 + i] = static_cast<char>(counter >> (24 - 8 * i));
  }
  return id;
}

struct tally {
  std::uint64_t ok = 0;
  std::uint64_t errors = 0;
  std::map<std::string, std::uint64_t> by_code;
  histogram latency_us;
  void add(const response& r, std::uint64_t lat_us) {
    latency_us.record(lat_us);
    if (r.ok()) {
      ++ok;
    } else {
      ++errors;
      ++by_code[std::string(to_string(r.code))];
    }
  }
};

class run {
public:
  explicit run(options o) : o_(std::move(o)), rng_(o_.seed) {
    if (!parse_mix())
      throw std::runtime_error(
        "--mix must look like earn=90,redeem=10: percentages adding up to 100, of earn, redeem, event, hold, "
        "refund, reward, transfer, balance, history");
  }

  int execute() {
    if (!connect_all())
      return 2;
    if (!o_.skip_enroll && !enroll())
      return 2;
    drive();
    report();
    return failures_ > 0 ? 1 : 0;
  }

private:
  // The operations a mix may name, in the order of the weights table.
  enum class kind : int { earn, redeem, event, hold, refund, reward, transfer, balance, history, count };
  static constexpr std::array<const char*, static_cast<int>(kind::count)> kind_names{
    "earn", "redeem", "event", "hold", "refund", "reward", "transfer", "balance", "history"};

  bool parse_mix() {
    std::stringstream ss(o_.mix);
    std::string part;
    int sum = 0;
    weights_.fill(0);
    while (std::getline(ss, part, ',')) {
      auto eq = part.find('=');
      if (eq == std::string::npos)
        return false;
      auto key = part.substr(0, eq);
      int v = std::atoi(part.substr(eq + 1).c_str());
      auto it = std::find(kind_names.begin(), kind_names.end(), key);
      if (it == kind_names.end() || v < 0)
        return false;
      weights_[static_cast<std::size_t>(it - kind_names.begin())] = v;
      sum += v;
    }
    std::stringstream cs(o_.categories);
    for (std::string c; std::getline(cs, c, ',');)
      if (!c.empty())
        categories_.push_back(c);
    if (categories_.empty())
      categories_.push_back("grocery");
    return sum == 100;
  }

  bool connect_all() {
    int pending = static_cast<int>(o_.connections);
    bool ok = true;
    for (std::uint32_t i = 0; i < o_.connections; ++i) {
      auto c = std::make_shared<async_connection>(ctx_);
      c->on_error = [this, i](const std::string& why) {
        ++failures_;
        std::fprintf(stderr, "loadgen: connection %u failed: %s\n", i, why.c_str());
      };
      c->connect(o_.host, static_cast<std::uint16_t>(o_.port), o_.conn.tls, [this, c, &pending, &ok](std::error_code ec) {
        if (ec) {
          std::fprintf(stderr, "loadgen: %s\n", c->connect_error().c_str());
          ok = false;
          --pending;
          return;
        }
        request h;
        h.op = opcode::hello;
        h.version = 1;
        h.client_name = "loyalty-loadgen";
        h.key = o_.conn.key;
        c->submit(h, [&pending, &ok](const response& r) {
          if (!r.ok()) {
            std::fprintf(stderr, "loadgen: hello refused: %s\n", r.message.c_str());
            ok = false;
          }
          --pending;
        });
      });
      conns_.push_back(c);
    }
    while (pending > 0 && ctx_.run_one_for(std::chrono::seconds(10)) > 0) {
    }
    return ok && pending == 0;
  }

  bool enroll() {
    auto t0 = steady::now();
    std::uint64_t next = 1, done = 0, exists = 0;
    tally t;
    auto last_print = t0;
    // Up to 4 batch frames in flight per connection.
    std::uint32_t inflight = 0;
    std::function<bool(std::size_t)> issue = [&](std::size_t ci) {
      if (next > o_.members || !conns_[ci]->open())
        return false;
      request b;
      b.op = opcode::batch;
      for (std::uint32_t i = 0; i < o_.enroll_batch && next <= o_.members; ++i, ++next) {
        request e;
        e.op = opcode::enroll;
        e.id = i + 1;
        e.member = next;
        e.brand = o_.brand;
        b.ops.push_back(std::move(e));
      }
      ++inflight;
      auto sent = steady::now();
      conns_[ci]->submit(std::move(b), [&, ci, sent](const response& r) {
        --inflight;
        auto lat = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(steady::now() - sent).count());
        if (!r.ok()) {
          t.add(r, lat);
        } else {
          for (auto& s : r.results) {
            if (s.ok() || s.code == errc::member_exists) {
              ++done;
              exists += s.code == errc::member_exists;
            } else {
              t.add(s, lat);
            }
          }
        }
        issue(ci);
      });
      return true;
    };
    for (std::size_t ci = 0; ci < conns_.size(); ++ci)
      for (int k = 0; k < 4; ++k)
        issue(ci);
    while (inflight > 0 && failures_ == 0) {
      ctx_.run_one_for(std::chrono::milliseconds(200));
      auto now = steady::now();
      if (now - last_print >= std::chrono::seconds(1)) {
        last_print = now;
        std::printf("enroll %6.1fs  %llu / %llu members  %.0f/s\n", secs(now - t0),
                    static_cast<unsigned long long>(done), static_cast<unsigned long long>(o_.members),
                    static_cast<double>(done) / secs(now - t0));
        std::fflush(stdout);
      }
    }
    enroll_s_ = secs(steady::now() - t0);
    enrolled_ = done;
    std::printf("enrolled %llu members (%llu already existed) in %.2f s: %.0f/s; errors %llu\n",
                static_cast<unsigned long long>(done), static_cast<unsigned long long>(exists), enroll_s_,
                static_cast<double>(done) / std::max(enroll_s_, 1e-9), static_cast<unsigned long long>(t.errors));
    return failures_ == 0;
  }

  kind pick() {
    int x = static_cast<int>(rng_() % 100);
    for (std::size_t i = 0; i < weights_.size(); ++i) {
      if (x < weights_[i])
        return static_cast<kind>(i);
      x -= weights_[i];
    }
    return kind::earn;
  }

  request earn_request(std::uint64_t member, std::uint32_t conn) {
    request r;
    r.op = opcode::earn;
    r.member = member;
    r.txn = make_txn(conn, ++counters_[conn]);
    r.brand = o_.brand;
    r.currency = o_.currency;
    r.channel = o_.channel;
    r.occurred_at_us = now_us();
    if (o_.items == 0) {
      r.amount = static_cast<std::int64_t>(100 + rng_() % 19901);
      return r;
    }
    for (std::uint32_t i = 0; i < o_.items; ++i) {
      item it;
      it.sku = "sku-" + std::to_string(rng_() % 5000);
      it.category = categories_[rng_() % categories_.size()];
      it.qty = 1 + static_cast<std::int64_t>(rng_() % 3);
      it.amount = static_cast<std::int64_t>(50 + rng_() % 4951);
      r.amount += it.amount;
      r.items.push_back(std::move(it));
    }
    return r;
  }

  // The next request of a connection: a follow-up (capture or release of a
  // hold it opened) first, else one drawn from the mix.
  request next_request(std::uint32_t conn) {
    auto& follow = followups_[conn];
    if (!follow.empty()) {
      request r = std::move(follow.front());
      follow.pop_front();
      r.txn = make_txn(conn, ++counters_[conn]);
      return r;
    }
    std::uniform_int_distribution<std::uint64_t> member(1, o_.members);
    const std::uint64_t m = member(rng_);
    kind k = pick();
    if (k == kind::refund && earned_.empty())
      k = kind::earn;
    if (k == kind::earn)
      return earn_request(m, conn);
    request r;
    r.member = m;
    r.txn = make_txn(conn, ++counters_[conn]);
    switch (k) {
      case kind::redeem:
        r.op = opcode::redeem;
        r.points = static_cast<std::int64_t>(1 + rng_() % 50);
        break;
      case kind::event:
        r.op = opcode::event;
        r.event = o_.event;
        break;
      case kind::hold:
        r.op = opcode::hold;
        r.points = static_cast<std::int64_t>(1 + rng_() % 50);
        break;
      case kind::refund: {
        const auto& e = earned_[rng_() % earned_.size()];
        r.op = opcode::refund;
        r.member = e.member;
        r.ref = e.txn;
        r.amount = std::max<std::int64_t>(1, e.amount / 2);  // a second refund of it takes the rest
        break;
      }
      case kind::reward:
        r.op = opcode::redeem_reward;
        r.reward = o_.reward;
        break;
      case kind::transfer:
        r.op = opcode::transfer;
        r.to = m % o_.members + 1;
        r.points = static_cast<std::int64_t>(1 + rng_() % 20);
        if (r.to == m)
          r.op = opcode::balance;  // one member: nobody to transfer to
        break;
      case kind::balance:
        r.op = opcode::balance;
        r.txn.clear();
        break;
      case kind::history:
        r.op = opcode::history;
        r.txn.clear();
        r.limit = 10;
        break;
      default:
        break;
    }
    return r;
  }

  // What an answer adds to the workload: a hold gets a capture or a release,
  // an earn can be refunded later.
  void learn(std::uint32_t conn, const request& q, const response& r) {
    if (!r.ok())
      return;
    if (q.op == opcode::hold) {
      request f;
      f.op = rng_() % 2 == 0 ? opcode::capture : opcode::release;
      f.member = q.member;
      f.hold = r.hold;
      followups_[conn].push_back(std::move(f));
    } else if (q.op == opcode::earn && weights_[static_cast<int>(kind::refund)] > 0) {
      constexpr std::size_t keep = 4096;
      earned_record e{q.member, q.txn, q.amount};
      if (earned_.size() < keep)
        earned_.push_back(std::move(e));
      else
        earned_[rng_() % keep] = std::move(e);
    }
  }

  // Sends one request whose latency counts from `intended`.
  void send(std::uint32_t ci, steady::time_point intended) {
    ++sent_;
    auto q = std::make_shared<request>(next_request(ci));
    conns_[ci]->submit(*q, [this, ci, intended, q](const response& r) {
      auto lat = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(steady::now() - intended).count());
      total_.add(r, lat);
      second_.add(r, lat);
      by_op_[to_string(q->op)].add(r, lat);
      learn(ci, *q, r);
      on_done(ci);
    });
  }

  void on_done(std::uint32_t ci) {
    if (stopping_)
      return;
    if (o_.mode == "closed") {
      send(ci, steady::now());
      return;
    }
    auto& q = backlog_[ci];
    if (!q.empty()) {
      auto t = q.front();
      q.pop_front();
      send(ci, t);
    }
  }

  void drive() {
    counters_.assign(conns_.size(), 0);
    backlog_.assign(conns_.size(), {});
    followups_.assign(conns_.size(), {});
    const bool open = o_.mode == "open";
    std::printf("run: mode %s%s, %u connections, depth %u, %.0f s, mix %s, members %llu, seed %llu\n",
                o_.mode.c_str(), open ? (", rate " + std::to_string(static_cast<long long>(o_.rate)) + "/s").c_str() : "",
                o_.connections, o_.depth, o_.duration_s, o_.mix.c_str(),
                static_cast<unsigned long long>(o_.members), static_cast<unsigned long long>(o_.seed));
    start_ = steady::now();
    const auto end = start_ + std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(o_.duration_s));
    if (!open)
      for (std::uint32_t ci = 0; ci < conns_.size(); ++ci)
        for (std::uint32_t d = 0; d < o_.depth; ++d)
          send(ci, steady::now());
    std::uint64_t scheduled = 0;
    auto last_print = start_;
    std::uint64_t last_ok = 0;
    while (failures_ == 0) {
      auto now = steady::now();
      if (now >= end)
        break;
      if (open) {
        // Every request due by now, on its intended schedule.
        auto due = static_cast<std::uint64_t>(secs(now - start_) * o_.rate);
        for (; scheduled < due; ++scheduled) {
          auto intended = start_ + std::chrono::duration_cast<steady::duration>(
                                     std::chrono::duration<double>(static_cast<double>(scheduled) / o_.rate));
          auto ci = static_cast<std::uint32_t>(scheduled % conns_.size());
          if (conns_[ci]->inflight() < o_.depth)
            send(ci, intended);
          else
            backlog_[ci].push_back(intended);
        }
      }
      ctx_.run_for(std::chrono::microseconds(open ? 500 : 20000));
      now = steady::now();
      if (now - last_print >= std::chrono::seconds(1)) {
        double dt = secs(now - last_print);
        std::uint64_t inflight = 0, backlog = 0;
        for (std::size_t i = 0; i < conns_.size(); ++i) {
          inflight += conns_[i]->inflight();
          backlog += backlog_[i].size();
        }
        std::printf("%6.1fs  %8.0f ok/s  total %10llu  errors %8llu  in flight %6llu  backlog %8llu  p99 %8.3f ms\n",
                    secs(now - start_), static_cast<double>(total_.ok - last_ok) / dt,
                    static_cast<unsigned long long>(total_.ok), static_cast<unsigned long long>(total_.errors),
                    static_cast<unsigned long long>(inflight), static_cast<unsigned long long>(backlog),
                    static_cast<double>(second_.latency_us.percentile(0.99)) / 1000.0);
        std::fflush(stdout);
        last_ok = total_.ok;
        last_print = now;
        second_ = tally{};
      }
    }
    measured_s_ = secs(steady::now() - start_);
    offered_ = open ? scheduled : sent_;
    // Drain what is in flight (bounded), so every request sent is accounted for.
    stopping_ = true;
    auto drain_end = steady::now() + std::chrono::seconds(10);
    auto inflight = [&] {
      std::uint64_t n = 0;
      for (auto& c : conns_)
        n += c->open() ? c->inflight() : 0;
      return n;
    };
    while (inflight() > 0 && steady::now() < drain_end)
      ctx_.run_for(std::chrono::milliseconds(10));
    for (auto& q : backlog_)
      unsent_ += q.size();
    for (auto& c : conns_)
      c->close();
  }

  void report() {
    auto& h = total_.latency_us;
    double thr = static_cast<double>(total_.ok) / std::max(measured_s_, 1e-9);
    auto ms = [](std::uint64_t us) { return static_cast<double>(us) / 1000.0; };
    std::printf("\nsummary (seed %llu)\n", static_cast<unsigned long long>(o_.seed));
    std::printf("  duration       %.2f s\n", measured_s_);
    if (o_.mode == "open")
      std::printf("  offered        %.0f req/s (%llu scheduled, %llu never sent: engine fell behind)\n",
                  static_cast<double>(offered_) / std::max(measured_s_, 1e-9), static_cast<unsigned long long>(offered_),
                  static_cast<unsigned long long>(unsent_));
    std::printf("  achieved       %.0f ok/s (%llu ok, %llu errors)\n", thr, static_cast<unsigned long long>(total_.ok),
                static_cast<unsigned long long>(total_.errors));
    for (auto& [code, n] : total_.by_code)
      std::printf("  error %-22s %llu\n", code.c_str(), static_cast<unsigned long long>(n));
    for (auto& [op, t] : by_op_)
      std::printf("  op %-20s %10llu ok %8llu errors  p99 %.3f ms\n", op.c_str(),
                  static_cast<unsigned long long>(t.ok), static_cast<unsigned long long>(t.errors),
                  ms(t.latency_us.percentile(0.99)));
    std::printf("  latency ms     p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n", ms(h.percentile(0.5)),
                ms(h.percentile(0.9)), ms(h.percentile(0.99)), ms(h.percentile(0.999)), ms(h.max()));
    if (!o_.json.empty()) {
      std::ofstream f(o_.json);
      f << "{\n  \"seed\": " << o_.seed << ",\n  \"mode\": \"" << o_.mode << "\",\n  \"connections\": " << o_.connections
        << ",\n  \"depth\": " << o_.depth << ",\n  \"members\": " << o_.members << ",\n  \"mix\": \"" << o_.mix
        << "\",\n  \"enroll_seconds\": " << enroll_s_ << ",\n  \"enrolled\": " << enrolled_
        << ",\n  \"duration_seconds\": " << measured_s_ << ",\n  \"offered_per_second\": "
        << static_cast<double>(offered_) / std::max(measured_s_, 1e-9) << ",\n  \"achieved_ok_per_second\": " << thr
        << ",\n  \"ok\": " << total_.ok << ",\n  \"errors\": " << total_.errors << ",\n  \"unsent\": " << unsent_
        << ",\n  \"errors_by_code\": {";
      bool first = true;
      for (auto& [code, n] : total_.by_code) {
        f << (first ? "" : ", ") << "\"" << code << "\": " << n;
        first = false;
      }
      f << "},\n  \"by_op\": {";
      first = true;
      for (auto& [op, t] : by_op_) {
        f << (first ? "" : ", ") << "\"" << op << "\": {\"ok\": " << t.ok << ", \"errors\": " << t.errors
          << ", \"p99_us\": " << t.latency_us.percentile(0.99) << "}";
        first = false;
      }
      f << "},\n  \"latency_us\": {\"p50\": " << h.percentile(0.5) << ", \"p90\": " << h.percentile(0.9)
        << ", \"p99\": " << h.percentile(0.99) << ", \"p999\": " << h.percentile(0.999) << ", \"max\": " << h.max()
        << "}\n}\n";
      if (!f)
        std::fprintf(stderr, "loadgen: cannot write %s\n", o_.json.c_str());
    }
  }

  struct earned_record {
    std::uint64_t member;
    std::string txn;
    std::int64_t amount;
  };

  options o_;
  std::mt19937_64 rng_;
  std::array<int, static_cast<std::size_t>(kind::count)> weights_{};
  std::vector<std::string> categories_;
  std::vector<std::deque<request>> followups_;
  std::vector<earned_record> earned_;
  std::map<std::string, tally> by_op_;
  asio::io_context ctx_{1};
  std::vector<std::shared_ptr<async_connection>> conns_;
  std::vector<std::uint32_t> counters_;
  std::vector<std::deque<steady::time_point>> backlog_;
  tally total_, second_;
  steady::time_point start_;
  double measured_s_ = 0, enroll_s_ = 0;
  std::uint64_t enrolled_ = 0, sent_ = 0, offered_ = 0, unsent_ = 0;
  int failures_ = 0;
  bool stopping_ = false;
};

} // namespace

int main(int argc, char** argv) {
  options o;
  CLI::App app{"loyalty-loadgen: capacity testing for loyaltyd.\n"
               "Enrolls members 1..N (batched; already enrolled members count as done), then sends the\n"
               "--mix of operations for uniformly random members. closed mode keeps --depth requests in flight per\n"
               "connection; open mode sends --rate requests/s on a fixed schedule and measures latency from\n"
               "each request's intended send time. Txn ids are 16 time-ordered bytes: send time in µs,\n"
               "connection index, counter (big-endian). Prints a progress line each second and a summary."};
  app.add_option("--host", o.host, "engine address")->capture_default_str();
  app.add_option("--port", o.port, "engine port")->capture_default_str()->check(CLI::Range(1, 65535));
  app.add_option("--members", o.members, "member ids 1..N")->capture_default_str()->check(CLI::Range(1ull, (1ull << 56) - 1));
  app.add_option("--brand", o.brand, "brand code for enrolls and earns")->capture_default_str();
  app.add_option("--currency", o.currency, "currency of earns")->capture_default_str();
  app.add_flag("--skip-enroll", o.skip_enroll, "do not enroll first (members already exist)");
  app.add_option("--enroll-batch", o.enroll_batch, "enrolls per batch frame (<= 1000)")
    ->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("--connections", o.connections, "TCP connections")->capture_default_str()->check(CLI::Range(1, 1024));
  app.add_option("--depth", o.depth, "requests in flight per connection")->capture_default_str()->check(CLI::Range(1, 100000));
  app.add_option("--duration", o.duration_s, "seconds of load after enrolling")->capture_default_str()->check(CLI::Range(0.1, 86400.0));
  app.add_option("--mode", o.mode, "closed or open")->capture_default_str()->check(CLI::IsMember({"closed", "open"}));
  app.add_option("--rate", o.rate, "open mode: requests per second")->check(CLI::Range(1.0, 1e8));
  app.add_option("--mix", o.mix,
                 "operation mix in percent: earn, redeem, event, hold (each answered hold is then captured or "
                 "released, half each), refund (half of an earlier earn of this run), reward (redeem_reward of "
                 "--reward), transfer, balance, history")
    ->capture_default_str();
  app.add_option("--items", o.items, "line items per earn basket (0: an amount only)")
    ->capture_default_str()->check(CLI::Range(0, 256));
  app.add_option("--categories", o.categories, "categories the items are drawn from, comma-separated")
    ->capture_default_str();
  app.add_option("--channel", o.channel, "channel of earns (empty: none)");
  app.add_option("--event", o.event, "event kind of `event` operations")->capture_default_str();
  app.add_option("--reward", o.reward, "reward code of `reward` operations")->capture_default_str();
  app.add_option("--seed", o.seed, "random seed (default: from the clock; printed)");
  app.add_option("--json", o.json, "write the summary as JSON to this file");
  o.conn.add_to(app);
  CLI11_PARSE(app, argc, argv);
  o.conn.resolve();
  if (o.mode == "open" && o.rate <= 0) {
    std::fprintf(stderr, "loadgen: --mode open needs --rate\n");
    return 2;
  }
  if (o.seed == 0)
    o.seed = now_us();
  std::printf("loyalty-loadgen seed %llu\n", static_cast<unsigned long long>(o.seed));
  try {
    run r(o);
    return r.execute();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "loadgen: %s (seed %llu)\n", e.what(), static_cast<unsigned long long>(o.seed));
    return 2;
  }
}

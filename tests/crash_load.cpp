#include "crash_load.hpp"

#include "config/consent.hpp"

#include <algorithm>
#include <initializer_list>
#include <random>
#include <thread>
#include <unordered_map>

namespace loyalty::test::crash {

namespace {

constexpr std::uint64_t years_us(std::uint64_t n) { return n * 365 * 24 * 3600 * 1'000'000ull; }

std::uint64_t now_us() {
  return static_cast<std::uint64_t>(
    std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count());
}

[[nodiscard]] bool one_of(opcode op, std::initializer_list<opcode> ops) {
  return std::find(ops.begin(), ops.end(), op) != ops.end();
}

// One of the pool, at random, out of it.
template <typename T>
T take(std::vector<T>& pool, std::mt19937_64& rng) {
  const auto i = static_cast<std::size_t>(rng() % pool.size());
  std::swap(pool[i], pool.back());
  T out = std::move(pool.back());
  pool.pop_back();
  return out;
}

// The operations of the load, and how often each is drawn.
enum class load_op : std::uint8_t {
  earn, redeem, redeem_reward, hold, capture, release, refund, reverse_redemption, adjust, transfer, link_alias,
  consent, event, partner_earn, partner_burn, expire, enroll,
};
struct load_op_weight {
  load_op op;
  opcode wire;
  int weight;
};
constexpr load_op_weight load_ops[] = {
  {load_op::earn, opcode::earn, 22},
  {load_op::redeem, opcode::redeem, 7},
  {load_op::redeem_reward, opcode::redeem_reward, 3},
  {load_op::hold, opcode::hold, 6},
  {load_op::capture, opcode::capture, 4},
  {load_op::release, opcode::release, 3},
  {load_op::refund, opcode::refund, 5},
  {load_op::reverse_redemption, opcode::reverse_redemption, 4},
  {load_op::adjust, opcode::adjust, 5},
  {load_op::transfer, opcode::transfer, 6},
  {load_op::link_alias, opcode::link_alias, 3},
  {load_op::consent, opcode::consent, 4},
  {load_op::event, opcode::event, 4},
  {load_op::partner_earn, opcode::partner_earn, 5},
  {load_op::partner_burn, opcode::partner_burn, 4},
  {load_op::expire, opcode::expire, 2},
  {load_op::enroll, opcode::enroll, 2},
};

// The mix of one load connection: every posting operation, by weight.
class load_mix {
public:
  load_mix(std::mt19937_64& rng, driver_state& st, int members, int thread, std::string prefix)
    : rng_(rng), st_(st), members_(static_cast<std::uint64_t>(members)), thread_(thread), prefix_(std::move(prefix)),
      now_(now_us()) {}

  txn_record next() {
    txn_record t;
    auto& r = t.req;
    r.txn = prefix_ + std::to_string(st_.counter++);
    const auto m = member();
    int total = 0;
    for (const auto& w : load_ops)
      total += w.weight;
    int pick = static_cast<int>(rng_() % static_cast<std::uint64_t>(total));
    const load_op_weight* op = &load_ops[0];
    for (const auto& w : load_ops) {
      if (pick < w.weight) {
        op = &w;
        break;
      }
      pick -= w.weight;
    }
    r.op = op->wire;
    if (!make(op->op, t, m)) {
      r.op = opcode::earn;  // nothing of the kind to act on yet
      make(load_op::earn, t, m);
    }
    return t;
  }

private:
  std::uint64_t member() { return 1 + rng_() % members_; }
  std::int64_t upto(std::int64_t n) { return 1 + static_cast<std::int64_t>(rng_() % static_cast<std::uint64_t>(n)); }
  const char* brand() { return rng_() % 2 == 0 ? "acme" : "globex"; }

  // By id, or by a linked alias now and then (the alias path of every
  // member operation).
  void address(txn_record& t, std::uint64_t m) {
    t.member = m;
    const auto a = st_.alias_of.find(m);
    if (a != st_.alias_of.end() && rng_() % 4 == 0)
      t.req.alias = a->second;
    else
      t.req.member = m;
  }

  // A basket whose lines add up to `amount`: coffee (a rule at acme in the
  // morning), the reusable bag (a fixed bonus), electronics, plain lines.
  std::vector<item> basket(std::int64_t amount) {
    static const std::pair<const char*, const char*> lines[] = {
      {"", "coffee"}, {"ACME-BAG-01", "bags"}, {"TV-55", "electronics"}, {"", "grocery"}};
    const auto n = 1 + rng_() % 3;
    std::vector<item> out;
    std::int64_t left = amount;
    for (std::uint64_t i = 0; i < n; ++i) {
      const auto& l = lines[rng_() % 4];
      const std::int64_t a = i + 1 == n ? left : static_cast<std::int64_t>(rng_() % static_cast<std::uint64_t>(left + 1));
      out.push_back({l.first, l.second, 1 + static_cast<std::int64_t>(rng_() % 3), a});
      left -= a;
    }
    return out;
  }

  bool make(load_op op, txn_record& t, std::uint64_t m) {
    auto& r = t.req;
    switch (op) {
      case load_op::earn:
        address(t, m);
        r.brand = brand();
        r.amount = 100 + upto(10000);
        r.currency = "EUR";
        // One in eight years back: its lots have expired, which the member's
        // next operation or an expire posts.
        r.occurred_at_us = rng_() % 8 == 0 ? now_ - years_us(4) : now_;
        if (rng_() % 2 == 0)
          r.items = basket(r.amount);
        if (rng_() % 3 == 0)
          r.channel = "app";
        return true;
      case load_op::redeem:
        address(t, m);
        r.points = upto(150);
        if (rng_() % 2 == 0)
          r.brand = brand();
        return true;
      case load_op::redeem_reward:
        address(t, m);
        r.reward = rng_() % 4 == 0 ? "voucher-10" : "coffee";
        return true;
      case load_op::hold:
        address(t, m);
        r.points = upto(100);
        r.ttl_s = 86400;  // retail.toml's longest: no hold expires under a long run
        return true;
      case load_op::capture:
      case load_op::release: {
        if (st_.holds.empty())
          return false;
        const auto h = take(st_.holds, rng_);
        t.member = r.member = h.member;
        r.hold = h.hold;
        if (op == load_op::capture && rng_() % 2 == 0)
          r.points = upto(h.points);
        return true;
      }
      case load_op::refund: {
        if (st_.earns.empty())
          return false;
        const auto e = take(st_.earns, rng_);
        t.member = r.member = e.member;
        r.ref = e.txn;
        const auto how = rng_() % 3;
        // By one item of the basket: one that cost something (a line of 0
        // refunds nothing, which the engine refuses with invalid_amount).
        const auto paid = std::find_if(e.items.begin(), e.items.end(), [](const item& i) { return i.amount > 0; });
        if (how == 0 && paid != e.items.end())
          r.items = {*paid};
        else if (how == 1)
          r.amount = upto(e.amount);
        return true;  // else whatever is left of the purchase
      }
      case load_op::reverse_redemption: {
        if (st_.redemptions.empty())
          return false;
        const auto s = take(st_.redemptions, rng_);
        t.member = r.member = s.member;
        r.ref = s.txn;
        return true;
      }
      case load_op::adjust:
        address(t, m);
        r.points = rng_() % 3 == 0 ? -upto(100) : upto(200);
        r.reason = "crash harness correction";
        r.brand = brand();
        return true;
      case load_op::transfer:
        t.member = r.member = m;
        do
          r.to = member();
        while (r.to == m);
        r.points = upto(80);
        return true;
      case load_op::link_alias:
        t.member = r.member = m;
        r.alias = "alias-" + r.txn;
        return true;
      case load_op::consent:
        address(t, m);
        r.consent_mask = 1 + static_cast<std::uint32_t>(rng_() % consent_channels_all);
        r.consent_values = static_cast<std::uint32_t>(rng_()) & r.consent_mask;
        r.source = "crash-harness";
        return true;
      case load_op::event:
        address(t, m);
        r.event = "survey";
        if (rng_() % 2 == 0)
          r.brand = brand();
        return true;
      case load_op::partner_earn:
        address(t, m);
        r.partner = "skyair";
        r.points = upto(300);
        r.amount = static_cast<std::int64_t>(rng_() % 50000);
        return true;
      case load_op::partner_burn:
        address(t, m);
        r.partner = "skyair";
        r.points = upto(100);
        return true;
      case load_op::expire:
        r.txn.clear();  // expire takes none: the engine posts its entries
        address(t, m);
        return true;
      case load_op::enroll:
        r.txn.clear();
        // Ids of their own per connection, above the members enrolled first.
        t.member = r.member = (static_cast<std::uint64_t>(thread_) + 1) * 1'000'000'000ull + st_.counter;
        r.brand = brand();
        return true;
    }
    return false;
  }

  std::mt19937_64& rng_;
  driver_state& st_;
  std::uint64_t members_;
  int thread_;
  std::string prefix_;
  std::uint64_t now_;
};

} // namespace

std::unique_ptr<client> connect(std::uint16_t port) {
  std::string error;
  auto c = client::connect("127.0.0.1", port, error);
  if (!c)
    fail("cannot connect to loyaltyd: " + error);
  if (!c->hello("crash-harness", admin_secret).ok())
    fail("hello refused");
  return c;
}

std::unique_ptr<client> try_connect(std::uint16_t port, const char* name) {
  std::string error;
  auto c = client::connect("127.0.0.1", port, error);
  if (!c)
    return nullptr;
  try {
    if (!c->hello(name, admin_secret).ok())
      return nullptr;
  } catch (const std::exception&) {
    return nullptr;
  }
  return c;
}

std::vector<response> call_all(client& c, std::vector<request> reqs, std::size_t window) {
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
      fail("an answer with an id nobody asked for (or answered twice): " + std::to_string(r.id) + ", op " +
           to_string(r.op));
    out[it->second] = std::move(r);
    slot.erase(it);
    ++done;
  }
  return out;
}

// -- the load ------------------------------------------------------------------

bool expected_refusal(opcode op, errc code) {
  if (code == errc::overloaded)
    return true;
  if (code == errc::insufficient_points)
    return one_of(op, {opcode::redeem, opcode::redeem_reward, opcode::hold, opcode::transfer, opcode::partner_burn});
  if (code == errc::out_of_stock)
    return op == opcode::redeem_reward;
  if (code == errc::negative_balance_limit)
    return one_of(op, {opcode::refund, opcode::adjust});
  return false;
}

void driver_state::learn(const txn_record& t) {
  const auto& r = t.req;
  if (r.op == opcode::earn)
    earns.push_back({r.txn, t.member, r.amount, r.items});
  else if (one_of(r.op, {opcode::redeem, opcode::redeem_reward, opcode::partner_burn}))
    redemptions.push_back({r.txn, t.member});
  else if (r.op == opcode::hold)
    holds.push_back({t.member, t.acked->hold, r.points});
  else if (r.op == opcode::link_alias)
    alias_of[t.member] = r.alias;
}

void drive(std::uint16_t port, int members, int window, int thread, std::uint64_t seed, const std::string& prefix,
           driver_state& st, const std::atomic<bool>& stop, driver_log& log) {
  std::mt19937_64 rng(seed);
  auto c = try_connect(port, "crash-load");
  if (!c)
    return;  // already dead: nothing sent
  load_mix mix(rng, st, members, thread, prefix);
  std::unordered_map<std::uint64_t, std::size_t> inflight;
  std::string error;
  for (;;) {
    try {
      while (!stop.load() && inflight.size() < static_cast<std::size_t>(window)) {
        log.txns.push_back(mix.next());
        inflight[c->send(log.txns.back().req)] = log.txns.size() - 1;
      }
      if (inflight.empty())
        return;  // stopped, everything answered
      response resp;
      if (!c->receive(resp, error, std::chrono::seconds(10)))
        return;  // the engine died: what is in flight stays unanswered
      const auto it = inflight.find(resp.id);
      if (it == inflight.end()) {
        log.failure = "an answer (op " + std::string(to_string(resp.op)) + ", " + code_name(resp.code) +
                      ") with id " + std::to_string(resp.id) + ", which the connection has no request in flight for";
        return;
      }
      auto& t = log.txns[it->second];
      inflight.erase(it);
      if (resp.op != t.req.op) {
        log.failure = "the answer to " + t.req.txn + " (" + to_string(t.req.op) + ") says op " + to_string(resp.op);
        return;
      }
      t.acked = std::move(resp);
      if (t.acked->ok())
        st.learn(t);
    } catch (const std::exception&) {
      return;  // the connection broke while sending
    }
  }
}

// -- the subscriber and the backups -----------------------------------------------

bool read_stream(client& c, std::uint64_t id, std::vector<event_rec>& out, std::chrono::milliseconds wait,
                 const std::function<bool(const response*)>& done) {
  for (;;) {
    response f;
    std::string error;
    if (!c.receive(f, error, wait)) {
      if (error.find("timed out") == std::string::npos)
        return false;
      if (done(nullptr))
        return true;
      continue;
    }
    if (f.id != id || f.op != opcode::subscribe)
      fail("the subscriber got an answer with id " + std::to_string(f.id) + " (op " + to_string(f.op) +
           "), not its subscription's " + std::to_string(id));
    if (!f.ok())
      fail("the stream ended with " + code_name(f.code) + ": " + f.message);
    for (auto& e : f.events)
      out.push_back({e.seq, e.member, std::move(e.type), std::move(e.entry), std::move(e.txn)});
    if (done(&f))
      return true;
  }
}

void follow(std::uint16_t port, std::uint64_t from, const std::atomic<bool>& stop, follower_log& log) {
  auto c = try_connect(port, "crash-subscriber");
  if (!c)
    return;
  try {
    const auto a = c->subscribe(from);
    if (!a.ok()) {
      log.failure = "subscribe from " + std::to_string(from) + ": " + code_name(a.code) + ": " + a.message;
      return;
    }
    read_stream(*c, a.id, log.events, std::chrono::milliseconds(200),
                [&](const response*) { return stop.load(); });
  } catch (const failure& f) {
    log.failure = f.what();
  } catch (const std::exception&) {
    // the engine died
  }
}

void back_up(std::uint16_t port, const std::filesystem::path& base, std::uint64_t seed, const std::atomic<bool>& stop,
             backup_log& log) {
  std::mt19937_64 rng(seed);
  auto c = try_connect(port, "crash-backup");
  if (!c)
    return;
  for (int k = 0; !stop.load(); ++k) {
    request r;
    r.op = opcode::backup;
    r.path = backup_dir(base, k).string();
    log.interrupted = r.path;
    log.in_flight.store(k);
    response a;
    std::string error;
    try {
      const auto id = c->send(r);
      if (!c->receive(a, error, std::chrono::seconds(60)))
        return;  // the engine died during it (or before it began)
      if (a.id != id || a.op != opcode::backup) {
        log.failure = "the backup connection got an answer with id " + std::to_string(a.id) + " (op " +
                      to_string(a.op) + "), not its request's " + std::to_string(id);
        return;
      }
    } catch (const std::exception&) {
      return;
    }
    if (!a.ok()) {
      log.failure = "backup into " + r.path + ": " + code_name(a.code) + ": " + a.message;
      return;
    }
    log.in_flight.store(-1);
    log.interrupted.clear();
    if (!log.last_done.empty())
      std::filesystem::remove_all(log.last_done);
    log.last_done = r.path;
    ++log.done;
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 20));
  }
}

} // namespace loyalty::test::crash

#include "io/engine.hpp"

#include "config/log.hpp"

#include <caf/send.hpp>
#include <caf/exit_reason.hpp>

#include <thread>

namespace loyalty::io {

engine::engine(engine_options opts) : opts_(std::move(opts)) {}

std::unique_ptr<engine> engine::start(engine_options opts, std::string& error) {
  std::unique_ptr<engine> e(new engine(std::move(opts)));
  const auto& s = e->opts_.settings;
  const loyalty::clock* clk = e->opts_.clock ? e->opts_.clock : &e->sys_clock_;

  for (const auto& k : s.keys) {
    if (k.scope == key_scope::brand && e->opts_.prog.find_brand(k.scope_code) == nullptr) {
      error = "API key " + std::to_string(k.id) + " (" + k.name + "): scope brand:" + k.scope_code +
              " names no brand of the program";
      return nullptr;
    }
    if (k.scope == key_scope::partner) {
      error = "API key " + std::to_string(k.id) + " (" + k.name + "): scope partner:" + k.scope_code +
              " names no partner of the program (partners are not configured in this version)";
      return nullptr;
    }
  }
  if (s.keys.empty())
    log(log_level::warn, "no API keys configured: any client may post and read without a key; "
                         "admin operations are refused");

  ledger::options lo;
  lo.dir = s.data_dir;
  lo.map_bytes = s.map_bytes;
  lo.sync = s.sync;
  lo.batch_entries_max = s.batch_entries_max;
  lo.commit_window_us = s.commit_window_us;
  lo.checkpoint_accounts_max = s.checkpoint_accounts_max;
  lo.checkpoint_interval_ms = s.checkpoint_interval_ms;
  lo.clock = clk;
  const program* prog = &e->opts_.prog;
  lo.tier_of = [prog](std::int64_t lifetime) { return prog->tier_for(lifetime); };
  e->ledger_ = ledger::ledger::open(lo, error);
  if (!e->ledger_)
    return nullptr;

  e->cfg_ = std::make_unique<caf::actor_system_config>();
  auto threads = s.actor_threads != 0 ? s.actor_threads : std::max(1u, std::thread::hardware_concurrency());
  e->cfg_->set("scheduler.max-threads", static_cast<std::size_t>(threads));
  e->system_ = std::make_unique<caf::actor_system>(*e->cfg_);

  auto interval_ms = std::max<std::int64_t>(1, e->opts_.sweep_interval.count());
  auto idle_ticks = static_cast<std::uint32_t>(
    std::max<std::int64_t>(1, static_cast<std::int64_t>(s.member_idle_s) * 1000 / interval_ms));
  e->counters_.load(*prog, e->ledger_->counters());
  e->ctx_.counters = &e->counters_;
  e->ctx_.prog = prog;
  e->ctx_.ledger = e->ledger_.get();
  e->ctx_.clock = clk;
  e->dir_ = std::make_unique<actors::directory>(*e->system_, e->ctx_, s.active_members_max, idle_ticks);
  e->ctx_.dir = e->dir_.get();
  actors::start_program(*e->system_, e->ctx_, e->sup_, e->opts_.sweep_interval);
  e->sweeper_ = std::make_unique<actors::expiry_sweeper>(*e->dir_, *e->ledger_);

  server_deps deps;
  deps.prog = prog;
  deps.dir = e->dir_.get();
  deps.ledger = e->ledger_.get();
  deps.sweeper = e->sweeper_.get();
  deps.clock = clk;
  auto* sup = &e->sup_;
  deps.extra_stats = [sup] {
    return std::vector<std::pair<std::string, std::uint64_t>>{
      {"members_monitored", sup->monitored.load()},
      {"members_failures", sup->member_failures.load()},
    };
  };
  e->server_ = std::make_unique<server>(s, std::move(deps));
  if (!e->server_->start(error)) {
    e->stop();
    return nullptr;
  }
  if (s.expiry_sweep_interval_s != 0) {
    auto* raw = e.get();
    e->sweep_thread_ = std::thread([raw, clk, interval = std::chrono::seconds(s.expiry_sweep_interval_s),
                                    rate = s.expiry_sweep_members_per_s] {
      std::unique_lock<std::mutex> lk(raw->sweep_mtx_);
      while (!raw->sweep_cv_.wait_for(lk, interval, [raw] { return raw->stopping_.load(); })) {
        lk.unlock();
        auto res = raw->sweeper_->run(clk->now_us(), rate, raw->stopping_);
        if (res.code == errc::ok)
          log(log_level::info, "expiry sweep: %llu members, %lld points expired",
              static_cast<unsigned long long>(res.members), static_cast<long long>(res.expired));
        lk.lock();
      }
    });
  }
  return e;
}

void engine::stop() {
  if (stopped_)
    return;
  stopped_ = true;
  {
    std::lock_guard<std::mutex> lk(sweep_mtx_);
    stopping_.store(true);
  }
  sweep_cv_.notify_all();
  if (sweep_thread_.joinable())
    sweep_thread_.join();
  if (server_)
    server_->stop();  // no new requests
  if (dir_)
    dir_->shutdown();  // member actors stop; queued requests answer `unavailable`
  if (system_) {
    for (auto& b : ctx_.brand_actors)
      caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
    if (ctx_.root)
      caf::anon_send_exit(ctx_.root, caf::exit_reason::user_shutdown);
    ctx_.brand_actors.clear();
    ctx_.root = nullptr;
    system_->await_all_actors_done();
  }
  if (ledger_)
    ledger_->barrier();  // everything handed to the writer is committed
}

engine::~engine() {
  stop();
  dir_.reset();
  system_.reset();
  ledger_.reset();
}

} // namespace loyalty::io

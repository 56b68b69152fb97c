#include "io/server/engine.hpp"

#include "config/log.hpp"
#include "config/thread_name.hpp"

#include <caf/send.hpp>
#include <caf/exit_reason.hpp>

#include "ledger/command.hpp"

#include <cstring>
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
    // A partner removed from the program (rather than suspended) leaves its
    // keys behind; they stay valid and their requests get unknown_partner.
    if (k.scope == key_scope::partner && e->opts_.prog.find_partner(k.scope_code) == nullptr)
      log(log_level::warn, "API key %u (%s): scope partner:%s names no partner of the program; its partner "
                           "operations are refused with unknown_partner", k.id, k.name.c_str(), k.scope_code.c_str());
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
  lo.txn_filter_bytes = s.txn_filter_bytes;
  lo.checkpoint_interval_ms = s.checkpoint_interval_ms;
  lo.checkpoint_chunk_accounts = s.checkpoint_chunk_accounts;
  lo.clock = clk;
  lo.replicate = e->opts_.replicate;
  if (s.cluster.enabled() && !lo.replicate) {
    // The node needs the ledger, so it starts after it; the writer calls
    // this only for ops, which come once the server runs, and the node
    // outlives the ledger (~engine): a stopped node takes nothing.
    auto* raw = e.get();
    lo.propose = [raw](std::string command, std::uint64_t id) { return raw->node_->propose(command, id); };
    lo.pipeline_batches = s.cluster.pipeline_batches;
  }
  // Version 0 of the policy until the ledger has recorded it.
  auto first = std::make_unique<actors::policy_state>();
  first->prog = e->opts_.prog;
  e->ctx_.policy.store(first.get());
  e->policies_.push_back(std::move(first));
  auto* ctx = &e->ctx_;
  if (s.cluster.enabled()) {
    // Tiers by the program version the log has reached on this node, not
    // by the one this node runs (a follower runs none until it leads).
    auto* raw = e.get();
    e->log_program_.store(&e->opts_.prog);
    lo.tier_of = [raw](std::int64_t lifetime) {
      return raw->log_program_.load(std::memory_order_acquire)->tier_for(lifetime);
    };
    lo.on_policy = [raw](std::uint32_t version, std::string_view text) { raw->log_policy(version, text); };
  } else {
    lo.tier_of = [ctx](std::int64_t lifetime) { return ctx->now().prog.tier_for(lifetime); };
  }
  e->ledger_ = ledger::ledger::open(lo, error);
  if (!e->ledger_)
    return nullptr;
  if (!s.cluster.enabled()) {
    auto& p = *e->policies_.back();
    p.version = e->ledger_->record_policy({p.prog.sha256, p.prog.text}, clk->now_us(), error);
    if (p.version == 0)
      return nullptr;
    p.counters.load(p.prog, e->ledger_->counters());
    log(log_level::info, "program '%s' is version %u", p.prog.name.c_str(), p.version);
  } else {
    // A cluster's program versions are in its log: the last one the ledger
    // applied is the program here until this node leads (become_leader).
    auto& p = *e->policies_.back();
    std::string why;
    if (auto last = e->cluster_program(why)) {
      p.prog = std::move(last->first);
      p.version = last->second;
      e->log_program_.store(&p.prog, std::memory_order_release);
    }
    log(log_level::info, "program '%s' is version %u of the cluster%s", p.prog.name.c_str(), p.version,
        p.version == 0 ? " (0: none recorded yet; the first leader records its program file)" : "");
    if (!why.empty())
      log(log_level::warn, "cluster: %s", why.c_str());
  }
  if (s.cluster.enabled()) {
    cluster::node_options no;
    no.id = s.cluster.node_id;
    no.dir = s.cluster.dir;
    no.election_timeout_ms = s.cluster.election_timeout_ms;
    no.snapshot_entries = s.cluster.snapshot_entries;
    no.snapshot_trailing = s.cluster.snapshot_trailing;
    no.install_snapshot_timeout_ms = s.cluster.install_snapshot_timeout_ms;
    no.heartbeat_ms = s.cluster.heartbeat_ms;
    no.join = s.cluster.join;
    for (const auto& p : s.cluster.peers)
      no.peers.push_back({p.id, p.raft, p.client});
    e->node_ = cluster::node::start(no, *e->ledger_, error);
    if (!e->node_)
      return nullptr;
    log(log_level::info, "cluster node %llu of %zu: Raft log in %s", static_cast<unsigned long long>(no.id),
        no.peers.size(), no.dir.c_str());
  }

  e->cfg_ = std::make_unique<caf::actor_system_config>();
  auto threads = s.actor_threads != 0 ? s.actor_threads : std::max(1u, std::thread::hardware_concurrency());
  e->cfg_->set("scheduler.max-threads", static_cast<std::size_t>(threads));
  e->cfg_->set("scheduler.policy", s.actor_scheduler == actor_scheduling::stealing ? caf::atom("stealing")
                                                                                   : caf::atom("sharing"));
  e->system_ = std::make_unique<caf::actor_system>(*e->cfg_);

  auto interval_ms = std::max<std::int64_t>(1, e->opts_.sweep_interval.count());
  auto idle_ticks = static_cast<std::uint32_t>(
    std::max<std::int64_t>(1, static_cast<std::int64_t>(s.member_idle_s) * 1000 / interval_ms));
  e->ctx_.ledger = e->ledger_.get();
  e->ctx_.clock = clk;
  e->dir_ = std::make_unique<actors::directory>(*e->system_, e->ctx_, s.active_members_max, idle_ticks);
  e->ctx_.dir = e->dir_.get();
  actors::start_program(*e->system_, e->ctx_, e->sup_, e->opts_.sweep_interval);
  e->partners_ = std::make_unique<actors::partner_registry>(*e->system_, e->ctx_);
  e->ctx_.partners = e->partners_.get();
  e->partners_->prepare(e->ctx_.now().prog);
  e->households_ = std::make_unique<actors::household_registry>();
  e->households_->load(e->ledger_->counters());
  e->ctx_.households = e->households_.get();
  e->ctx_.household_coordinator = e->system_->spawn(actors::household_actor, &e->ctx_);
  e->sweeper_ = std::make_unique<actors::expiry_sweeper>(*e->dir_, *e->ledger_);

  server_deps deps;
  deps.ctx = &e->ctx_;
  deps.dir = e->dir_.get();
  deps.ledger = e->ledger_.get();
  deps.sweeper = e->sweeper_.get();
  deps.clock = clk;
  auto* raw = e.get();
  deps.reload = [raw](std::string& err, errc& code) { return raw->reload_from_file(err, &code); };
  if (s.cluster.enabled()) {
    deps.leads = [raw](std::string& leader) { return raw->serving(leader); };
    deps.cluster_status = [raw](response& r) { raw->cluster_status(r); };
    deps.cluster_change = [raw](const request& q) { return raw->cluster_change(q); };
  }
  auto* sup = &e->sup_;
  auto* partners = e->partners_.get();
  deps.extra_stats = [sup, partners] {
    std::vector<std::pair<std::string, std::uint64_t>> out{
      {"members_monitored", sup->monitored.load()},
      {"members_failures", sup->member_failures.load()},
    };
    for (auto& kv : partners->stats())
      out.push_back(std::move(kv));
    return out;
  };
  e->server_ = std::make_unique<server>(s, std::move(deps));
  // The metrics endpoint binds first: an engine that cannot serve the
  // metrics it was asked for does not start taking requests.
  if (s.metrics_port != 0 || e->opts_.metrics_on_free_port) {
    metrics_options mo;
    mo.host = s.metrics_host;
    mo.port = s.metrics_port;
    mo.read_timeout_ms = s.metrics_read_timeout_ms;
    metrics_sources src;
    src.srv = e->server_.get();
    src.ledger = e->ledger_.get();
    src.dir = e->dir_.get();
    src.partners = e->partners_.get();
    src.supervision = &e->sup_;
    src.node = e->node_.get();
    e->metrics_ = std::make_unique<metrics_server>(std::move(mo), src);
    if (!e->metrics_->start(error)) {
      e->stop();
      return nullptr;
    }
  }
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
        std::string leader;
        if (!raw->serving(leader))
          continue;  // a cluster's leader sweeps, for every node
        lk.unlock();
        auto res = raw->sweeper_->run(clk->now_us(), rate, raw->stopping_);
        if (res.code == errc::ok)
          log(log_level::info, "expiry sweep: %llu members, %lld points expired",
              static_cast<unsigned long long>(res.members), static_cast<long long>(res.expired));
        lk.lock();
      }
    });
  }
  if (e->node_)
    e->cluster_thread_ = std::thread([raw = e.get()] {
      name_this_thread("cluster-watch");
      raw->watch_cluster();
    });
  return e;
}

bool engine::serving(std::string& leader) const {
  if (!node_)
    return true;
  const auto lead = node_->lead();
  if (lead.ready && open_term_.load(std::memory_order_acquire) == lead.term)
    return true;
  // Not this node even when it leads: it is not serving yet.
  leader.clear();
  if (lead.leader_id == 0 || lead.leader_id == opts_.settings.cluster.node_id)
    return false;
  leader = node_->client_of(lead.leader_id);  // the configuration's (a node added at runtime too)
  if (leader.empty())
    for (const auto& p : opts_.settings.cluster.peers)
      if (p.id == lead.leader_id)
        leader = p.client;
  return false;
}

response engine::cluster_change(const request& q) {
  // Long enough for a new node to receive a snapshot of a large ledger.
  constexpr std::chrono::milliseconds patience{120'000};
  const auto res = q.op == opcode::cluster_add ? node_->add(q.node_id, q.raft_address, q.client_address, patience)
                                               : node_->remove(q.node_id, patience);
  response r;
  if (res.code != errc::ok) {
    r.code = res.code;
    r.message = res.message;
    if (res.code == errc::not_leader) {
      std::string leader;
      if (!serving(leader))  // it lost its leadership meanwhile: the leader it knows of, if any
        r.leader = leader;
    }
    log(log_level::warn, "cluster: %s of node %llu: %s", std::string(to_string(q.op)).c_str(),
        static_cast<unsigned long long>(q.node_id), res.message.c_str());
    return r;
  }
  log(log_level::info, "cluster: node %llu %s", static_cast<unsigned long long>(q.node_id),
      q.op == opcode::cluster_add ? "added as a voter" : "removed");
  cluster_status(r);
  return r;
}

void engine::cluster_status(response& r) const {
  const auto st = node_->status();
  r.role = st.role;
  r.leader = st.leader_client;
  const auto d = ledger_->journal_digest();
  r.stats = {
    {"id", st.id},
    {"term", st.term},
    {"leader_id", st.leader_id},
    {"serving", open_term_.load() != 0 && open_term_.load() == st.term && st.leader_ready ? 1u : 0u},
    {"commit_index", st.commit_index},
    {"applied_index", st.applied_index},
    {"ledger_applied_index", ledger_->applied_log_index()},
    {"last_index", st.last_index},
    {"snapshot_index", st.snapshot_index},
    {"elections", st.elections},
    {"snapshots_taken", st.snapshots_taken},
    {"snapshots_installed", st.snapshots_installed},
    {"journal_seq", d.seq},
    {"journal_digest", d.digest},
  };
  for (const auto& s : st.servers)
    r.nodes.push_back({s.id, s.raft, s.client, s.role, s.match_index, s.lag});
}

void engine::watch_cluster() {
  const auto tick = std::chrono::milliseconds(std::max<std::uint32_t>(10, opts_.settings.cluster.heartbeat_ms / 2));
  std::unique_lock<std::mutex> lk(sweep_mtx_);
  while (!sweep_cv_.wait_for(lk, tick, [this] { return stopping_.load(); })) {
    const auto st = node_->status();
    if (!st.leader_ready) {
      if (open_term_.exchange(0) != 0)
        log(log_level::info, "cluster: no longer the leader; requests are answered not_leader");
      continue;
    }
    if (open_term_.load() == st.term)
      continue;
    lk.unlock();
    const bool opened = become_leader(st.term);
    lk.lock();
    if (!opened)
      sweep_cv_.wait_for(lk, std::chrono::milliseconds(opts_.settings.cluster.heartbeat_ms));
  }
}

std::optional<std::pair<program, std::uint32_t>> engine::cluster_program(std::string& why) const {
  const auto versions = ledger_->policies();
  if (versions.empty())
    return std::nullopt;
  const auto& [version, rec] = versions.back();
  const auto& cur = ctx_.now();
  if (std::memcmp(rec.sha256, cur.prog.sha256.data(), cur.prog.sha256.size()) == 0)
    return std::make_pair(cur.prog, version);
  const auto text = ledger_->policy_text(version);
  if (!text || text->empty()) {
    why = "program version " + std::to_string(version) +
          " has no text in the ledger (recorded before versions kept theirs): this node runs its program file";
    return std::nullopt;
  }
  std::vector<config_error> errors;
  auto prog = parse_program(*text, "program version " + std::to_string(version), errors);
  if (!prog) {
    why = "program version " + std::to_string(version) + " does not load here (" +
          (errors.empty() ? std::string("?") : errors.front().message) + "): this node runs its program file";
    return std::nullopt;
  }
  if (opts_.prog.sha256 != prog->sha256)
    why = "this node's program file differs from the cluster's program (version " + std::to_string(version) +
          "), which it runs; `loyaltyctl reload` on the leader makes the leader's file the next version";
  return std::make_pair(std::move(*prog), version);
}

void engine::log_policy(std::uint32_t version, std::string_view text) {
  const program* cur = log_program_.load(std::memory_order_acquire);
  if (key_sha256(text) == cur->sha256)
    return;
  std::vector<config_error> errors;
  auto prog = parse_program(text, "program version " + std::to_string(version), errors);
  if (!prog) {
    // The leader loaded this text; the same build loads it alike. Only a
    // different build could get here: its tiers would differ.
    log(log_level::error, "cluster: program version %u from the log does not load here (%s): tiers stay those of "
                          "'%s'", version, errors.empty() ? "?" : errors.front().message.c_str(), cur->name.c_str());
    return;
  }
  log_programs_.push_back(std::make_unique<program>(std::move(*prog)));
  log_program_.store(log_programs_.back().get(), std::memory_order_release);
}

void engine::install_policy(program prog, std::uint32_t version) {
  const bool changed = prog.sha256 != ctx_.now().prog.sha256;
  auto st = std::make_unique<actors::policy_state>();
  st->prog = std::move(prog);
  st->version = version;
  st->counters.load(st->prog, ledger_->counters());
  if (changed && partners_)
    partners_->prepare(st->prog);  // an actor for every partner before anyone can name it
  ctx_.policy.store(st.get(), std::memory_order_release);
  policies_.push_back(std::move(st));
  if (changed && partners_)
    partners_->notify();  // every partner actor logs a change of its status
}

std::uint32_t engine::append_program(const program& prog, std::string& error) {
  const loyalty::clock* clk = opts_.clock ? opts_.clock : &sys_clock_;
  const auto index = node_->append(ledger::encode_policy_command({prog.sha256, prog.text}, clk->now_us()));
  if (index == 0) {
    error = "this node lost its leadership before the program version was committed: nothing changed; ask the "
            "leader again";
    return 0;
  }
  // The entry is queued to the writer by now (the node applies before it
  // answers); the ledger's barrier waits until it is applied.
  ledger_->barrier();
  const auto versions = ledger_->policies();
  if (versions.empty() ||
      std::memcmp(versions.back().second.sha256, prog.sha256.data(), prog.sha256.size()) != 0) {
    error = "the program version committed in the log is not the last one applied here";
    return 0;
  }
  return versions.back().first;
}

bool engine::become_leader(std::uint64_t term) {
  // The node's barrier went through the log: every entry of earlier terms
  // is committed and queued to the writer; the ledger's barrier waits until
  // the writer applied that queue.
  ledger_->barrier();
  // Actors activated while another node led hold books the ledger has moved
  // past; the program-wide counters and the households too.
  dir_->mark_all_stale();
  if (households_)
    households_->load(ledger_->counters());
  {
    std::lock_guard<std::mutex> lk(reload_mtx_);
    // The program is the last version the log recorded; none yet (a new
    // cluster), or one this node cannot run: its program file becomes the
    // next version, through the log like any.
    std::string why;
    auto last = cluster_program(why);
    if (!why.empty())
      log(log_level::warn, "cluster: %s", why.c_str());
    if (!last) {
      std::string error;
      const auto version = append_program(opts_.prog, error);
      if (version == 0) {
        log(log_level::warn, "cluster: the program file was not recorded as a version: %s", error.c_str());
        return false;  // not serving: the next leader tries
      }
      last = std::make_pair(opts_.prog, version);
    }
    install_policy(std::move(last->first), last->second);
    log(log_level::info, "cluster: program '%s' version %u", ctx_.now().prog.name.c_str(), ctx_.now().version);
  }
  open_term_.store(term, std::memory_order_release);
  log(log_level::info, "cluster: leader of term %llu, journal at seq %llu; serving",
      static_cast<unsigned long long>(term), static_cast<unsigned long long>(ledger_->last_seq()));
  return true;
}

std::uint32_t engine::reload(program next, std::string& error, errc* code) {
  std::lock_guard<std::mutex> lk(reload_mtx_);
  if (code != nullptr)
    *code = errc::invalid_program;
  if (node_) {
    std::string leader;
    if (!serving(leader)) {
      // A cluster's program versions go through its log, from the leader.
      error = "this node does not lead the cluster: reload on the leader" +
              (leader.empty() ? std::string(" (none known now)") : " (" + leader + ")");
      if (code != nullptr)
        *code = errc::not_leader;
      return 0;
    }
  }
  for (const auto& k : opts_.settings.keys)
    if (k.scope == key_scope::brand && next.find_brand(k.scope_code) == nullptr) {
      error = "API key " + std::to_string(k.id) + " (" + k.name + ") is for brand " + k.scope_code +
              ", which the new program does not have";
      return 0;
    }
  const auto& cur = ctx_.now();
  if (next.sha256 == cur.prog.sha256)
    return cur.version;  // the same text: nothing changes
  // Let what was evaluated under the old version commit, so that the new
  // version's caps and stock start from the committed counters.
  ledger_->barrier();
  std::uint32_t version = 0;
  if (node_) {
    version = append_program(next, error);
    if (version == 0 && code != nullptr)
      *code = errc::unavailable;
  } else {
    const loyalty::clock* clk = opts_.clock ? opts_.clock : &sys_clock_;
    version = ledger_->record_policy({next.sha256, next.text}, clk->now_us(), error);
  }
  if (version == 0)
    return 0;
  log(log_level::info, "program '%s' is now version %u", next.name.c_str(), version);
  install_policy(std::move(next), version);
  return version;
}

std::uint32_t engine::reload_from_file(std::string& error, errc* code) {
  if (opts_.settings.program_path.empty()) {
    error = "this engine was started without a program file";
    return 0;
  }
  std::vector<config_error> errors;
  auto next = load_program(opts_.settings.program_path, errors);
  if (!next) {
    for (const auto& e : errors)
      error += (error.empty() ? "" : "\n") + e.message;
    log(log_level::warn, "program reload refused: %zu errors; the running version stays", errors.size());
    return 0;
  }
  return reload(std::move(*next), error, code);
}

void engine::stop() { stop_impl(false); }

void engine::stop_for_exit() {
  stop_impl(true);
  // The rest of ~engine but the actor system and the directory, whose
  // idle member actors stay (inert) until the process exits.
  metrics_.reset();
  partners_.reset();
  ledger_.reset();  // the closing checkpoint, fsynced
  node_.reset();
}

void engine::stop_impl(bool keep_idle) {
  if (stopped_)
    return;
  stopped_ = true;
  if (metrics_)
    metrics_->stop();  // no scrape reads what is stopped below
  {
    std::lock_guard<std::mutex> lk(sweep_mtx_);
    stopping_.store(true);
  }
  sweep_cv_.notify_all();
  if (sweep_thread_.joinable())
    sweep_thread_.join();
  if (cluster_thread_.joinable())
    cluster_thread_.join();
  open_term_.store(0);
  // A clean stop (docs/OPERATIONS.md, "Starting and stopping"): no new
  // connections or requests; what the member actors have not handed to the
  // writer is answered `unavailable`; what the writer has is committed and
  // answered; then the connections close (shutdown_drain_ms at most).
  if (server_)
    server_->begin_drain();
  const auto t_actors = std::chrono::steady_clock::now();
  const std::uint64_t members = dir_ ? static_cast<std::uint64_t>(dir_->active()) : 0;
  if (system_) {
    // The supervisors first: a member's end then sends its brand a down
    // message that a closed mailbox drops, instead of one that the brand
    // handles, a million times in one actor.
    for (auto& [id, b] : ctx_.brand_actors)
      caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
    if (partners_)
      partners_->stop();
    if (ctx_.household_coordinator)
      caf::anon_send_exit(ctx_.household_coordinator, caf::exit_reason::user_shutdown);
    if (ctx_.root)
      caf::anon_send_exit(ctx_.root, caf::exit_reason::user_shutdown);
  }
  if (dir_)
    dir_->shutdown(keep_idle);  // member actors stop; queued requests answer `unavailable`
  if (system_) {
    ctx_.brand_actors.clear();
    ctx_.root = nullptr;
    ctx_.household_coordinator = nullptr;
    system_->await_all_actors_done();
    log(log_level::info, "stop: %llu member actors and the program's actors stopped in %lld ms",
        static_cast<unsigned long long>(members),
        static_cast<long long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t_actors).count()));
  }
  if (node_)
    node_->stop();  // the writer's batch in flight is answered unavailable; nothing more is replicated
  if (ledger_)
    ledger_->barrier();  // everything handed to the writer is committed, its outcomes on their way
  if (server_) {
    const auto limit = std::chrono::milliseconds(opts_.settings.shutdown_drain_ms);
    if (!server_->finish_drain(limit))
      log(log_level::warn, "stop: requests still unanswered after shutdown_drain_ms (%u ms) were answered unavailable",
          opts_.settings.shutdown_drain_ms);
    server_->stop();
  }
}

engine::~engine() {
  stop();
  metrics_.reset();
  dir_.reset();
  partners_.reset();
  system_.reset();
  ledger_.reset();  // before the node: its writer may call propose() until it stops
  node_.reset();
}

} // namespace loyalty::io

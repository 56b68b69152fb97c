#include "ledger/cluster/node.hpp"

#include "config/log.hpp"
#include "config/thread_name.hpp"

extern "C" {
#include <raft/uv.h>
}
#include <uv.h>

#include <atomic>
#include <csignal>
#include <cstring>
#include <functional>
#include <deque>
#include <filesystem>
#include <future>
#include <mutex>
#include <thread>
#include <algorithm>
#include <unordered_map>

namespace loyalty::cluster {

std::string scratch_dir_of(const std::string& raft_dir) {
  std::string d = raft_dir;
  while (d.size() > 1 && d.back() == '/')
    d.pop_back();
  return d + "-scratch";
}

unsigned install_snapshot_timeout_auto(unsigned election_timeout_ms, std::uint64_t ledger_bytes) {
  const std::uint64_t base = std::max<std::uint64_t>(2'000, 4ull * election_timeout_ms);
  const std::uint64_t ms = base + (ledger_bytes >> 25) * 1'000;  // 1 s per 32 MiB
  return static_cast<unsigned>(std::min<std::uint64_t>(ms, 86'400'000));
}

namespace {

// A server's address in the cluster's configuration: its Raft transport and
// its clients' address, "raft|client" (the configuration, replicated by the
// log, then says where every node serves clients: a node added at runtime
// included). The transport below connects to the part before '|'.
std::string config_address(const std::string& raft, const std::string& client) {
  return client.empty() ? raft : raft + "|" + client;
}
std::string raft_part(const char* a) {
  const char* bar = std::strchr(a, '|');
  return bar == nullptr ? std::string(a) : std::string(a, static_cast<std::size_t>(bar - a));
}
std::string client_part(const char* a) {
  const char* bar = a == nullptr ? nullptr : std::strchr(a, '|');
  return bar == nullptr ? std::string() : std::string(bar + 1);
}

// libraft's TCP transport behind configuration addresses: hands it the Raft
// part of each, and passes its callbacks through.
struct address_transport {
  raft_uv_transport outer{};  // given to raft_uv_init (which sets its data)
  raft_uv_transport tcp{};
  raft_uv_accept_cb accept = nullptr;
  raft_uv_transport_close_cb closed = nullptr;
  std::string own;  // this node's Raft address: the TCP transport keeps the pointer

  static address_transport* of(raft_uv_transport* t) { return static_cast<address_transport*>(t->impl); }

  int init(uv_loop_t* loop) {
    if (int rv = raft_uv_tcp_init(&tcp, loop); rv != 0)
      return rv;
    tcp.data = this;
    outer.impl = this;
    outer.init = [](raft_uv_transport* t, raft_id id, const char* address) {
      auto* self = of(t);
      self->own = raft_part(address);
      const int rv = self->tcp.init(&self->tcp, id, self->own.c_str());
      if (rv != 0)
        std::memcpy(t->errmsg, self->tcp.errmsg, sizeof t->errmsg);
      return rv;
    };
    outer.listen = [](raft_uv_transport* t, raft_uv_accept_cb cb) {
      auto* self = of(t);
      self->accept = cb;
      return self->tcp.listen(&self->tcp, [](raft_uv_transport* inner, raft_id id, const char* address,
                                             uv_stream_t* stream) {
        auto* me = static_cast<address_transport*>(inner->data);
        me->accept(&me->outer, id, address, stream);
      });
    };
    outer.connect = [](raft_uv_transport* t, raft_uv_connect* req, raft_id id, const char* address,
                       raft_uv_connect_cb cb) {
      auto* self = of(t);
      return self->tcp.connect(&self->tcp, req, id, raft_part(address).c_str(), cb);
    };
    outer.close = [](raft_uv_transport* t, raft_uv_transport_close_cb cb) {
      auto* self = of(t);
      self->closed = cb;
      self->tcp.close(&self->tcp, [](raft_uv_transport* inner) {
        auto* me = static_cast<address_transport*>(inner->data);
        if (me->closed != nullptr)
          me->closed(&me->outer);
      });
    };
    return 0;
  }
  void close() { raft_uv_tcp_close(&tcp); }
};

const char* role_name(int role) {
  switch (role) {
    case RAFT_VOTER: return "voter";
    case RAFT_STANDBY: return "standby";
    default: return "spare";
  }
}

const char* state_name(int state) {
  switch (state) {
    case RAFT_LEADER: return "leader";
    case RAFT_FOLLOWER: return "follower";
    case RAFT_CANDIDATE: return "candidate";
    default: return "unavailable";
  }
}

// A membership change on its way (raft_add, then raft_assign; or
// raft_remove): the caller waits on `done`.
struct change {
  struct raft_change req {};  // req.data: this change
  void* owner = nullptr;      // the node::impl
  std::uint64_t id = 0;
  std::shared_ptr<std::promise<change_result>> done = std::make_shared<std::promise<change_result>>();
};

change_result change_error(int rv, std::uint64_t id) {
  switch (rv) {
    case RAFT_NOTLEADER:
      return {errc::not_leader, "this node does not lead the cluster"};
    case RAFT_LEADERSHIPLOST:
      return {errc::unavailable, "leadership was lost during the change: ask the new leader"};
    case RAFT_CANTCHANGE:
      return {errc::busy, "another membership change is in progress: try again once it is done"};
    case RAFT_DUPLICATEID:
      return {errc::invalid_argument, "node " + std::to_string(id) + " is already in the cluster"};
    case RAFT_DUPLICATEADDRESS:
      return {errc::invalid_argument, "that address is already a node's"};
    case RAFT_NOTFOUND:
    case RAFT_BADID:
      return {errc::invalid_argument, "node " + std::to_string(id) + " is not in the cluster"};
    default:
      return {errc::unavailable, std::string("the membership change failed: ") + raft_strerror(rv)};
  }
}

} // namespace

class node::impl {
public:
  // An entry on its way into the log: a batch of the writer's (`id`, the
  // ledger's proposal id: answered with own_committed / own_failed), or a
  // command appended by append() (id 0: its caller waits on `done`).
  // `entry` (raft_malloc'd, state_machine::entry_of) goes to libraft with
  // raft_apply, or is freed here if it never does.
  struct proposal {
    struct raft_apply req {};
    impl* owner = nullptr;
    raft_buffer entry{};
    std::uint64_t id = 0;
    std::promise<std::uint64_t> done;
    ~proposal() { raft_free(entry.base); }
  };

  impl(const node_options& o, ledger::ledger& l)
      : opts(o), led(l), sm(l, scratch_dir_of(o.dir), state_machine::mode::queue) {}

  node_options opts;
  ledger::ledger& led;
  state_machine sm;
  uv_loop_t loop{};
  uv_async_t wake{};
  uv_timer_t tick{};  // refreshes `last` every heartbeat
  address_transport transport;
  raft_io io{};
  struct raft raft {};
  std::thread thread;

  std::mutex mtx;
  std::deque<std::unique_ptr<proposal>> queue;  // guarded by mtx
  std::deque<std::function<void()>> tasks;      // guarded by mtx: run on the loop thread
  bool stopping = false;                        // guarded by mtx
  // Loop thread: the writer's batches in the log and not applied yet, by
  // log index (the ledger's proposal id of each). Applying one of them
  // hands it back to the writer (own_committed), which holds its ops.
  std::unordered_map<std::uint64_t, std::uint64_t> own;
  // Loop thread: the term whose barrier was applied (leader_ready), and the
  // term a barrier is in flight for.
  std::uint64_t ready_term = 0;
  std::uint64_t barrier_term = 0;
  bool closing = false;  // loop thread: raft_close was called
  struct raft_barrier barrier_req {};

  mutable std::mutex status_mtx;
  node_status last;  // refreshed on the loop thread
  std::atomic<bool> ready_now{false};
  std::atomic<std::uint64_t> term_now{0};
  std::atomic<std::uint64_t> leader_now{0};
  std::uint64_t seen_term = 0;  // loop thread
  std::uint64_t elections = 0;  // loop thread: terms begun since start

  // Runs `f` on the loop thread (false: stopping, not run).
  bool post(std::function<void()> f);
  void start_add(std::unique_ptr<change> c, std::string address);
  void start_remove(std::unique_ptr<change> c);

  bool init(std::string& error);
  void run() { uv_run(&loop, UV_RUN_DEFAULT); }
  void on_wake();
  void refresh();
  void close_all();
  static void applied(struct raft_apply* req, int status, void* result);
  // A proposal that will not be in the log: its waiter is told.
  void refuse(proposal& p);
};

bool node::impl::init(std::string& error) {
  std::error_code ec;
  std::filesystem::create_directories(opts.dir, ec);
  if (ec) {
    error = "cannot create the Raft directory " + opts.dir + ": " + ec.message();
    return false;
  }
  const peer* self = nullptr;
  for (const auto& p : opts.peers)
    if (p.id == opts.id)
      self = &p;
  if (self == nullptr) {
    error = "node " + std::to_string(opts.id) + " is not one of the cluster's peers";
    return false;
  }
  if (int rv = uv_loop_init(&loop); rv != 0) {
    error = std::string("uv_loop_init: ") + uv_strerror(rv);
    return false;
  }
  uv_async_init(&loop, &wake, [](uv_async_t* a) { static_cast<impl*>(a->data)->on_wake(); });
  wake.data = this;
  auto fail = [&](const char* what, int rv) {
    error = std::string(what) + ": " + raft_strerror(rv);
    return false;
  };
  if (int rv = transport.init(&loop); rv != 0)
    return fail("raft_uv_tcp_init", rv);
  if (int rv = raft_uv_init(&io, &loop, opts.dir.c_str(), &transport.outer); rv != 0) {
    error = std::string("raft_uv_init in ") + opts.dir + ": " + raft_strerror(rv) + " (" + io.errmsg + ")";
    return false;
  }
  // libraft 0.15's libuv io implements async_work (snapshots taken on
  // libuv's thread pool) but says io version 1, and raft_init then refuses
  // a state machine with async snapshots; upstream's fix (canonical/raft
  // 269e541, in 0.16) is this version number.
  if (io.version < 2 && io.async_work != nullptr)
    io.version = 2;
  const std::string own_address = config_address(self->address, self->client);
  if (int rv = raft_init(&raft, &io, sm.fsm(), opts.id, own_address.c_str()); rv != 0) {
    error = std::string("raft_init: ") + raft_strerror(rv) + " (" + raft_errmsg(&raft) + ")";
    return false;
  }
  raft.data = this;
  sm.attach(&raft);
  sm.set_own([this](std::uint64_t index) {
    const auto it = own.find(index);
    if (it == own.end())
      return false;
    led.own_committed(it->second, index);
    own.erase(it);
    return true;
  });
  raft_set_election_timeout(&raft, opts.election_timeout_ms);
  raft_set_heartbeat_timeout(&raft, opts.heartbeat_ms);
  // A node that cannot reach a majority (partitioned, or removed and not
  // told yet) asks before it starts an election, instead of raising the
  // term and deposing a leader that is fine (Raft thesis 9.6).
  raft_set_pre_vote(&raft, true);
  raft_set_snapshot_threshold(&raft, opts.snapshot_entries);
  raft_set_snapshot_trailing(&raft, opts.snapshot_trailing);
  uv_timer_init(&loop, &tick);
  tick.data = this;
  if (!opts.join) {
    raft_configuration conf;
    raft_configuration_init(&conf);
    for (const auto& p : opts.peers)
      if (int rv = raft_configuration_add(&conf, p.id, config_address(p.address, p.client).c_str(), RAFT_VOTER);
          rv != 0) {
        raft_configuration_close(&conf);
        return fail("raft_configuration_add", rv);
      }
    const int boot = raft_bootstrap(&raft, &conf);
    raft_configuration_close(&conf);
    if (boot != 0 && boot != RAFT_CANTBOOTSTRAP)  // CANTBOOTSTRAP: the directory holds a log already
      return fail("raft_bootstrap", boot);
  }
  if (int rv = raft_start(&raft); rv != 0)
    return fail("raft_start", rv);
  uv_timer_start(&tick, [](uv_timer_t* t) { static_cast<impl*>(t->data)->refresh(); }, 0, opts.heartbeat_ms);
  return true;
}

void node::impl::refresh() {
  if (closing)
    return;
  node_status s;
  s.leader = raft_state(&raft) == RAFT_LEADER;
  if (s.leader && ready_term != raft.current_term && barrier_term == 0) {
    // Newly elected: a barrier commits every entry of earlier terms.
    barrier_term = raft.current_term;
    barrier_req.data = this;
    const int rv = raft_barrier(&raft, &barrier_req, [](struct raft_barrier* req, int status) {
      auto* self = static_cast<impl*>(req->data);
      const std::uint64_t issued = self->barrier_term;
      self->barrier_term = 0;
      if (self->closing)
        return;
      // Applied in the term it was issued in: every entry before it is too.
      if (status == 0 && issued == self->raft.current_term)
        self->ready_term = issued;
      self->refresh();
    });
    if (rv != 0)
      barrier_term = 0;  // tried again at the next tick
  }
  s.leader_ready = s.leader && ready_term == raft.current_term;
  if (s.leader)  // what it waits for a snapshot it sends to be answered
    raft_set_install_snapshot_timeout(
      &raft, opts.install_snapshot_timeout_ms != 0
               ? opts.install_snapshot_timeout_ms
               : install_snapshot_timeout_auto(opts.election_timeout_ms, led.space().used_bytes));
  raft_id id = 0;
  const char* address = nullptr;
  raft_leader(&raft, &id, &address);
  s.leader_id = id;
  s.leader_client = client_part(address);
  s.term = raft.current_term;
  if (s.term > seen_term) {
    if (seen_term != 0)
      elections += s.term - seen_term;  // every term begins with an election
    seen_term = s.term;
  }
  s.id = opts.id;
  s.role = state_name(raft_state(&raft));
  s.commit_index = raft.commit_index;
  s.applied_index = raft.last_applied;
  s.last_index = raft_last_index(&raft);
  s.snapshot_index = raft.log.snapshot.last_index;
  s.elections = elections;
  s.snapshots_taken = sm.snapshots_taken();
  s.snapshots_installed = sm.snapshots_installed();
  for (unsigned i = 0; i < raft.configuration.n; ++i) {
    const auto& srv = raft.configuration.servers[i];
    server_status ss;
    ss.id = srv.id;
    ss.raft = raft_part(srv.address);
    ss.client = client_part(srv.address);
    ss.role = role_name(srv.role);
    if (s.leader && raft.leader_state.progress != nullptr) {
      ss.match_index = srv.id == opts.id ? s.last_index : raft.leader_state.progress[i].match_index;
      ss.lag = s.last_index > ss.match_index ? s.last_index - ss.match_index : 0;
    }
    if (ss.id == s.leader_id && s.leader_client.empty())
      s.leader_client = ss.client;  // a follower learns the leader's id, not always its address
    s.servers.push_back(std::move(ss));
  }
  ready_now.store(s.leader_ready, std::memory_order_release);
  term_now.store(s.term, std::memory_order_release);
  leader_now.store(s.leader_id, std::memory_order_release);
  std::lock_guard<std::mutex> lk(status_mtx);
  last = std::move(s);
}

void node::impl::on_wake() {
  std::deque<std::unique_ptr<proposal>> take;
  std::deque<std::function<void()>> run_now;
  bool stop = false;
  {
    std::lock_guard<std::mutex> lk(mtx);
    take.swap(queue);
    run_now.swap(tasks);
    stop = stopping;
  }
  refresh();
  if (stop)
    closing = true;  // a membership change asked now is answered unavailable
  for (auto& t : run_now)
    t();
  for (auto& p : take) {
    if (stop || raft_state(&raft) != RAFT_LEADER) {
      refuse(*p);
      continue;
    }
    p->req.data = p.get();
    p->owner = this;
    if (int rv = raft_apply(&raft, &p->req, &p->entry, 1, &impl::applied); rv != 0) {
      log(log_level::warn, "cluster: raft_apply: %s", raft_strerror(rv));
      refuse(*p);
      continue;
    }
    p->entry = {};  // libraft's now
    if (p->id != 0)
      own[p->req.index] = p->id;
    p.release();  // owned by the request until applied() runs
  }
  if (stop)
    close_all();
}

void node::impl::refuse(proposal& p) {
  if (p.id != 0)
    led.own_failed(p.id);
  else
    p.done.set_value(0);
}

void node::impl::applied(struct raft_apply* req, int status, void*) {
  std::unique_ptr<proposal> p(static_cast<proposal*>(req->data));
  auto* self = p->owner;
  if (p->id == 0) {
    p->done.set_value(status == 0 ? req->index : 0);
    return;
  }
  // Committed: handed to the writer as the state machine applied it.
  // Failed (leadership lost, shut down): the writer answers it unavailable;
  // if a later leader commits the entry after all, it is applied as any
  // other (the state machine no longer finds it here).
  if (const auto it = self->own.find(req->index); it != self->own.end() && it->second == p->id) {
    self->own.erase(it);
    self->led.own_failed(p->id);
  }
}

void node::impl::close_all() {
  closing = true;  // (already, from on_wake)
  uv_timer_stop(&tick);
  raft_close(&raft, [](struct raft* r) {
    auto* self = static_cast<impl*>(r->data);
    raft_uv_close(&self->io);
    self->transport.close();
    uv_close(reinterpret_cast<uv_handle_t*>(&self->wake), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&self->tick), nullptr);
  });
}

bool node::impl::post(std::function<void()> f) {
  {
    std::lock_guard<std::mutex> lk(mtx);
    if (stopping)
      return false;
    tasks.push_back(std::move(f));
  }
  uv_async_send(&wake);
  return true;
}

void node::impl::start_add(std::unique_ptr<change> c, std::string address) {
  if (closing) {
    c->done->set_value({errc::unavailable, "the node is stopping"});
    return;
  }
  if (raft_state(&raft) != RAFT_LEADER) {
    c->done->set_value(change_error(RAFT_NOTLEADER, c->id));
    return;
  }
  // libraft compares whole addresses; either of the two being a node's
  // already is a mistake (two nodes on one port).
  for (unsigned i = 0; i < raft.configuration.n; ++i) {
    const auto& srv = raft.configuration.servers[i];
    for (const auto& [mine, theirs] : {std::pair{raft_part(address.c_str()), raft_part(srv.address)},
                                       std::pair{client_part(address.c_str()), client_part(srv.address)}})
      if (!mine.empty() && mine == theirs) {
        c->done->set_value({errc::invalid_argument,
                            "the address " + mine + " is node " + std::to_string(srv.id) + "'s already"});
        return;
      }
  }
  c->req.data = c.get();
  c->owner = this;
  auto* raw = c.get();
  // Joins as a spare (it gets the log, it does not vote), then is made a
  // voter: libraft sends it the log (or the snapshot) and promotes it once
  // it has caught up.
  const int rv = raft_add(&raft, &raw->req, raw->id, address.c_str(), [](struct raft_change* req, int status) {
    std::unique_ptr<change> ch(static_cast<change*>(req->data));
    auto* self = static_cast<impl*>(ch->owner);
    if (status != 0 || self->closing) {
      ch->done->set_value(status != 0 ? change_error(status, ch->id)
                                      : change_result{errc::unavailable, "the node is stopping"});
      return;
    }
    auto* again = ch.get();
    again->req = {};
    again->req.data = again;
    const int r2 = raft_assign(&self->raft, &again->req, again->id, RAFT_VOTER, [](struct raft_change* r, int st) {
      std::unique_ptr<change> done(static_cast<change*>(r->data));
      static_cast<impl*>(done->owner)->refresh();  // the new configuration, before the caller reads it
      done->done->set_value(st == 0 ? change_result{} : change_error(st, done->id));
    });
    if (r2 != 0) {
      ch->done->set_value(change_error(r2, ch->id));
      return;
    }
    ch.release();
    self->refresh();
  });
  if (rv != 0) {
    c->done->set_value(change_error(rv, c->id));
    return;
  }
  c.release();
}

void node::impl::start_remove(std::unique_ptr<change> c) {
  if (closing) {
    c->done->set_value({errc::unavailable, "the node is stopping"});
    return;
  }
  if (c->id == opts.id) {
    c->done->set_value({errc::invalid_argument, "the leader cannot remove itself: stop its process (another node is "
                                                "elected), then remove it on the new leader"});
    return;
  }
  c->req.data = c.get();
  c->owner = this;
  auto* raw = c.get();
  const int rv = raft_remove(&raft, &raw->req, raw->id, [](struct raft_change* req, int status) {
    std::unique_ptr<change> ch(static_cast<change*>(req->data));
    static_cast<impl*>(ch->owner)->refresh();
    ch->done->set_value(status == 0 ? change_result{} : change_error(status, ch->id));
  });
  if (rv != 0) {
    c->done->set_value(change_error(rv, c->id));
    return;
  }
  c.release();
}

std::unique_ptr<node> node::start(const node_options& opts, ledger::ledger& led, std::string& error) {
  // libuv writes to peers' sockets with write(2): a peer that went away must
  // be an EPIPE the transport handles, not a signal that ends the process.
  std::signal(SIGPIPE, SIG_IGN);
  auto p = std::make_unique<impl>(opts, led);
  if (!p->init(error))
    return nullptr;
  p->refresh();
  p->thread = std::thread([raw = p.get()] {
    name_this_thread("raft-node");
    raw->run();
  });
  return std::unique_ptr<node>(new node(std::move(p)));
}

node::node(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

node::~node() {
  stop();
  uv_loop_close(&impl_->loop);
}

void node::stop() {
  {
    std::lock_guard<std::mutex> lk(impl_->mtx);
    if (impl_->stopping)
      return;
    impl_->stopping = true;
  }
  impl_->sm.stop();  // a snapshot waiting for the ledger gives up
  uv_async_send(&impl_->wake);
  if (impl_->thread.joinable())
    impl_->thread.join();
  // Batches libraft did not answer as it closed: the writer is told.
  for (const auto& [index, id] : impl_->own)
    impl_->led.own_failed(id);
  impl_->own.clear();
}

bool node::propose(std::string_view command, std::uint64_t id) {
  auto p = std::make_unique<impl::proposal>();
  p->entry = state_machine::entry_of(command);
  p->id = id;
  if (p->entry.base == nullptr)
    return false;  // out of memory: not appended
  {
    std::lock_guard<std::mutex> lk(impl_->mtx);
    if (impl_->stopping)
      return false;
    impl_->queue.push_back(std::move(p));
  }
  uv_async_send(&impl_->wake);
  return true;
}

std::uint64_t node::append(std::string_view command) {
  auto p = std::make_unique<impl::proposal>();
  p->entry = state_machine::entry_of(command);
  if (p->entry.base == nullptr)
    return 0;  // out of memory: not appended
  auto done = p->done.get_future();
  {
    std::lock_guard<std::mutex> lk(impl_->mtx);
    if (impl_->stopping)
      return 0;
    impl_->queue.push_back(std::move(p));
  }
  uv_async_send(&impl_->wake);
  return done.get();
}

namespace {

change_result wait_for(std::future<change_result>& f, std::chrono::milliseconds patience) {
  if (f.wait_for(patience) != std::future_status::ready)
    return {errc::timed_out, "the change was not committed within " + std::to_string(patience.count()) +
                               " ms (a node being added must be running with join = true, and catch up first); it "
                               "may still complete: see the cluster's status"};
  return f.get();
}

} // namespace

change_result node::add(std::uint64_t id, const std::string& raft, const std::string& client,
                        std::chrono::milliseconds patience) {
  if (id == 0 || raft.empty() || raft.find('|') != std::string::npos || client.find('|') != std::string::npos)
    return {errc::invalid_argument, "a node needs an id above 0 and host:port addresses"};
  auto c = std::make_unique<change>();
  c->id = id;
  auto f = c->done->get_future();
  auto* p = impl_.get();
  auto shared = std::make_shared<std::unique_ptr<change>>(std::move(c));
  if (!p->post([p, shared, address = config_address(raft, client)] { p->start_add(std::move(*shared), address); }))
    return {errc::unavailable, "the node is stopping"};
  return wait_for(f, patience);
}

change_result node::remove(std::uint64_t id, std::chrono::milliseconds patience) {
  auto c = std::make_unique<change>();
  c->id = id;
  auto f = c->done->get_future();
  auto* p = impl_.get();
  auto shared = std::make_shared<std::unique_ptr<change>>(std::move(c));
  if (!p->post([p, shared] { p->start_remove(std::move(*shared)); }))
    return {errc::unavailable, "the node is stopping"};
  return wait_for(f, patience);
}

node::leadership node::lead() const noexcept {
  return {impl_->ready_now.load(std::memory_order_acquire), impl_->term_now.load(std::memory_order_acquire),
          impl_->leader_now.load(std::memory_order_acquire)};
}

std::string node::client_of(std::uint64_t id) const {
  std::lock_guard<std::mutex> lk(impl_->status_mtx);
  for (const auto& s : impl_->last.servers)
    if (s.id == id)
      return s.client;
  return {};
}

node_status node::status() const {
  std::lock_guard<std::mutex> lk(impl_->status_mtx);
  return impl_->last;
}

} // namespace loyalty::cluster

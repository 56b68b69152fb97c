#include "ledger/cluster/node.hpp"

#include "config/log.hpp"

extern "C" {
#include <raft/uv.h>
}
#include <uv.h>

#include <csignal>
#include <deque>
#include <filesystem>
#include <future>
#include <mutex>
#include <thread>

namespace loyalty::cluster {

std::string scratch_dir_of(const std::string& raft_dir) {
  std::string d = raft_dir;
  while (d.size() > 1 && d.back() == '/')
    d.pop_back();
  return d + "-scratch";
}

class node::impl {
public:
  // A batch on its way into the log: the writer waits on `done`. `entry`
  // (raft_malloc'd, state_machine::entry_of) goes to libraft with
  // raft_apply, or is freed here if it never does.
  struct proposal {
    struct raft_apply req {};
    impl* owner = nullptr;
    raft_buffer entry{};
    std::promise<std::uint64_t> done;
    ~proposal() { raft_free(entry.base); }
  };

  impl(const node_options& o, ledger::ledger& led)
      : opts(o), sm(led, scratch_dir_of(o.dir), state_machine::mode::queue) {}

  node_options opts;
  state_machine sm;
  uv_loop_t loop{};
  uv_async_t wake{};
  uv_timer_t tick{};  // refreshes `last` every heartbeat
  raft_uv_transport transport{};
  raft_io io{};
  struct raft raft {};
  std::thread thread;

  std::mutex mtx;
  std::deque<std::unique_ptr<proposal>> queue;  // guarded by mtx
  bool stopping = false;                        // guarded by mtx
  // Loop thread: the index of this node's batch in flight (0: none).
  std::uint64_t own_index = 0;
  // Loop thread: the term whose barrier was applied (leader_ready), and the
  // term a barrier is in flight for.
  std::uint64_t ready_term = 0;
  std::uint64_t barrier_term = 0;
  bool closing = false;  // loop thread: raft_close was called
  struct raft_barrier barrier_req {};

  mutable std::mutex status_mtx;
  node_status last;  // refreshed on the loop thread

  bool init(std::string& error);
  void run() { uv_run(&loop, UV_RUN_DEFAULT); }
  void on_wake();
  void refresh();
  void close_all();
  static void applied(struct raft_apply* req, int status, void* result);
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
  if (int rv = raft_uv_tcp_init(&transport, &loop); rv != 0)
    return fail("raft_uv_tcp_init", rv);
  if (int rv = raft_uv_init(&io, &loop, opts.dir.c_str(), &transport); rv != 0) {
    error = std::string("raft_uv_init in ") + opts.dir + ": " + raft_strerror(rv) + " (" + io.errmsg + ")";
    return false;
  }
  // libraft 0.15's libuv io implements async_work (snapshots taken on
  // libuv's thread pool) but says io version 1, and raft_init then refuses
  // a state machine with async snapshots; upstream's fix (canonical/raft
  // 269e541, in 0.16) is this version number.
  if (io.version < 2 && io.async_work != nullptr)
    io.version = 2;
  if (int rv = raft_init(&raft, &io, sm.fsm(), opts.id, self->address.c_str()); rv != 0) {
    error = std::string("raft_init: ") + raft_strerror(rv) + " (" + raft_errmsg(&raft) + ")";
    return false;
  }
  raft.data = this;
  sm.attach(&raft);
  sm.set_own([this](std::uint64_t index) { return index != 0 && index == own_index; });
  raft_set_election_timeout(&raft, opts.election_timeout_ms);
  raft_set_heartbeat_timeout(&raft, opts.heartbeat_ms);
  raft_set_snapshot_threshold(&raft, opts.snapshot_entries);
  raft_set_snapshot_trailing(&raft, opts.snapshot_trailing);
  uv_timer_init(&loop, &tick);
  tick.data = this;
  raft_configuration conf;
  raft_configuration_init(&conf);
  for (const auto& p : opts.peers)
    if (int rv = raft_configuration_add(&conf, p.id, p.address.c_str(), RAFT_VOTER); rv != 0) {
      raft_configuration_close(&conf);
      return fail("raft_configuration_add", rv);
    }
  const int boot = raft_bootstrap(&raft, &conf);
  raft_configuration_close(&conf);
  if (boot != 0 && boot != RAFT_CANTBOOTSTRAP)  // CANTBOOTSTRAP: the directory holds a log already
    return fail("raft_bootstrap", boot);
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
  raft_id id = 0;
  const char* address = nullptr;
  raft_leader(&raft, &id, &address);
  s.leader_id = id;
  s.term = raft.current_term;
  std::lock_guard<std::mutex> lk(status_mtx);
  last = std::move(s);
}

void node::impl::on_wake() {
  std::deque<std::unique_ptr<proposal>> take;
  bool stop = false;
  {
    std::lock_guard<std::mutex> lk(mtx);
    take.swap(queue);
    stop = stopping;
  }
  refresh();
  for (auto& p : take) {
    if (stop || raft_state(&raft) != RAFT_LEADER) {
      p->done.set_value(0);
      continue;
    }
    p->req.data = p.get();
    p->owner = this;
    if (int rv = raft_apply(&raft, &p->req, &p->entry, 1, &impl::applied); rv != 0) {
      log(log_level::warn, "cluster: raft_apply: %s", raft_strerror(rv));
      p->done.set_value(0);
      continue;
    }
    p->entry = {};  // libraft's now
    own_index = p->req.index;
    p.release();  // owned by the request until applied() runs
  }
  if (stop)
    close_all();
}

void node::impl::applied(struct raft_apply* req, int status, void*) {
  std::unique_ptr<proposal> p(static_cast<proposal*>(req->data));
  // Committed, or not by this node: either way no longer its own in flight
  // (an entry it proposed that a later leader commits is applied as any).
  if (p->owner->own_index == req->index)
    p->owner->own_index = 0;
  p->done.set_value(status == 0 ? req->index : 0);
}

void node::impl::close_all() {
  closing = true;
  uv_timer_stop(&tick);
  raft_close(&raft, [](struct raft* r) {
    auto* self = static_cast<impl*>(r->data);
    raft_uv_close(&self->io);
    raft_uv_tcp_close(&self->transport);
    uv_close(reinterpret_cast<uv_handle_t*>(&self->wake), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&self->tick), nullptr);
  });
}

std::unique_ptr<node> node::start(const node_options& opts, ledger::ledger& led, std::string& error) {
  // libuv writes to peers' sockets with write(2): a peer that went away must
  // be an EPIPE the transport handles, not a signal that ends the process.
  std::signal(SIGPIPE, SIG_IGN);
  auto p = std::make_unique<impl>(opts, led);
  if (!p->init(error))
    return nullptr;
  p->refresh();
  p->thread = std::thread([raw = p.get()] { raw->run(); });
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
}

std::uint64_t node::replicate(std::string_view command) {
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

node_status node::status() const {
  std::lock_guard<std::mutex> lk(impl_->status_mtx);
  return impl_->last;
}

} // namespace loyalty::cluster

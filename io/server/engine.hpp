// The engine assembled: ledger (LMDB + writer), CAF actor system with the
// program root, brand and member actors, and the TCP server. loyaltyd's main
// and the integration tests both run exactly this.
#pragma once

#include "actors/directory.hpp"
#include "actors/household.hpp"
#include "actors/member.hpp"
#include "actors/partner.hpp"
#include "actors/program_root.hpp"
#include "actors/sweeper.hpp"
#include "config/clock.hpp"
#include "config/program.hpp"
#include "io/server/metrics.hpp"
#include "io/server/server.hpp"
#include "ledger/cluster/node.hpp"
#include "ledger/ledger.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace loyalty::io {

struct engine_options {
  engine_settings settings;
  program prog;
  const loyalty::clock* clock = nullptr;  // null: the system clock
  // How often idle member actors are looked for (member_idle_s is converted
  // to these ticks). Short, so that each sweep's passivate requests are few.
  // Tests shorten it.
  std::chrono::milliseconds sweep_interval{100};
  // Serve metrics even when settings.metrics_port is 0 (which means off),
  // on a free port the system picks; metrics_port() tells which. Tests.
  bool metrics_on_free_port = false;
  // The cluster's log (ledger::options::replicate): each group-commit batch
  // is applied only once it returns the batch's log index (0: refused).
  // Empty: the single node.
  std::function<std::uint64_t(std::string_view command)> replicate;
};

class engine {
public:
  // Opens the ledger, starts the actors and the server. Null with `error`
  // set (a sentence) on failure.
  [[nodiscard]] static std::unique_ptr<engine> start(engine_options opts, std::string& error);
  ~engine();  // stop()
  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  // Stops serving, lets the ledger writer commit what it was given, stops
  // every actor. Idempotent.
  void stop();
  // The stop of a process that exits right after it (loyaltyd): as stop(),
  // but member actors with nothing to do are left inert instead of torn
  // down one by one (actors::directory::shutdown keep_idle), and the ledger
  // is closed (its closing checkpoint written) here. The engine must then
  // never be destroyed: the caller leaks it and exits (std::_Exit).
  void stop_for_exit();

  [[nodiscard]] std::uint16_t port() const noexcept { return server_->port(); }
  // The metrics endpoint's bound port; 0 when it is off.
  [[nodiscard]] std::uint16_t metrics_port() const noexcept { return metrics_ ? metrics_->port() : 0; }
  // The program version in effect now.
  [[nodiscard]] const program& prog() const noexcept { return ctx_.now().prog; }
  [[nodiscard]] std::uint32_t policy_version() const noexcept { return ctx_.now().version; }

  // Makes `next` the program in effect: it is recorded in the ledger as a
  // new version (unless its text is the running one's) and every operation
  // handled from then on is evaluated under it and names it. Refused, with
  // `error` set and the running version kept, if it does not fit the
  // engine's settings (a key's brand; a partner key's partner may go: its
  // requests are then refused). Returns the version in effect, 0 on
  // refusal. Any thread.
  // On a cluster the version goes through the log first (from the leader
  // only: elsewhere refused, `code` not_leader); every node then holds it,
  // with its text, and a later leader runs it. `code` (if given) says why
  // a refusal: invalid_program, not_leader, unavailable (leadership lost
  // before the log committed it).
  std::uint32_t reload(program next, std::string& error, errc* code = nullptr);
  // The same with the program file named in the settings (SIGHUP, the
  // `reload` operation); its validation errors refuse it.
  std::uint32_t reload_from_file(std::string& error, errc* code = nullptr);
  [[nodiscard]] ledger::ledger& ledger() noexcept { return *ledger_; }
  [[nodiscard]] actors::directory& directory() noexcept { return *dir_; }
  [[nodiscard]] caf::actor_system& system() noexcept { return *system_; }
  [[nodiscard]] const actors::supervision_stats& supervision() const noexcept { return sup_; }
  [[nodiscard]] actors::expiry_sweeper& sweeper() noexcept { return *sweeper_; }
  // A cluster node ([cluster] in the settings): whether it serves now (the
  // ready leader, opened for this term), else the leader's client address
  // ("" if none is known). A single node always serves.
  [[nodiscard]] bool serving(std::string& leader) const;
  // A cluster node's cluster_status answer (docs/PROTOCOL.md).
  void cluster_status(response& r) const;
  // A cluster node's cluster_add / cluster_remove (blocks: a job thread).
  [[nodiscard]] response cluster_change(const request& q);
  // The cluster node, or null for a single node.
  [[nodiscard]] const cluster::node* node() const noexcept { return node_.get(); }

private:
  explicit engine(engine_options opts);
  engine_options opts_;
  loyalty::system_clock sys_clock_;
  // Declaration order is destruction order reversed: the server (and the
  // io_contexts that queued outcomes refer to) goes last.
  std::unique_ptr<server> server_;
  std::unique_ptr<ledger::ledger> ledger_;
  actors::engine_context ctx_;
  std::vector<std::unique_ptr<actors::policy_state>> policies_;  // every version run; the last is current
  std::mutex reload_mtx_;
  actors::supervision_stats sup_;
  std::unique_ptr<caf::actor_system_config> cfg_;
  std::unique_ptr<caf::actor_system> system_;
  std::unique_ptr<actors::directory> dir_;
  std::unique_ptr<actors::partner_registry> partners_;
  std::unique_ptr<actors::household_registry> households_;
  std::unique_ptr<actors::expiry_sweeper> sweeper_;
  // The periodic expiry sweep (settings.expiry_sweep_interval_s).
  std::thread sweep_thread_;
  std::mutex sweep_mtx_;
  std::condition_variable sweep_cv_;
  std::atomic<bool> stopping_{false};
  void stop_impl(bool keep_idle);
  bool stopped_ = false;
  // A cluster node: its Raft server, whose replicate() the ledger's writer
  // calls. The watcher opens the engine for requests in a term once the
  // node is its ready leader (the ledger applied every earlier entry;
  // docs/ARCHITECTURE.md, "Replication").
  std::unique_ptr<cluster::node> node_;
  std::atomic<std::uint64_t> open_term_{0};  // 0: not serving
  std::thread cluster_thread_;
  void watch_cluster();
  // Opens the engine for requests in `term` (false: it could not record
  // its program as the cluster's first version; tried again).
  bool become_leader(std::uint64_t term);
  // The last program version the ledger applied, parsed from its text
  // (empty if none, or if it cannot be run here: `why` says so; also set
  // when this node's program file differs from it).
  std::optional<std::pair<program, std::uint32_t>> cluster_program(std::string& why) const;
  // Records `prog` as the next version through the log and waits until the
  // ledger applied it: the version, 0 with `error` set. Leader; reload_mtx_.
  std::uint32_t append_program(const program& prog, std::string& error);
  // Makes `prog`, recorded as `version`, the program in effect. reload_mtx_.
  void install_policy(program prog, std::uint32_t version);
  // A cluster node: the program version the log has reached here, whose
  // tiers the ledger's tier_of answers by (ledger::options::on_policy, on
  // the writer thread). Programs are kept for the engine's life.
  std::atomic<const program*> log_program_{nullptr};
  std::vector<std::unique_ptr<program>> log_programs_;  // writer thread
  void log_policy(std::uint32_t version, std::string_view text);
  // The metrics endpoint (null: off). Last, so destroyed first: it reads
  // the server, the ledger, the directory and the partner registry.
  std::unique_ptr<metrics_server> metrics_;
};

} // namespace loyalty::io

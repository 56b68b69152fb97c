// loyaltyd: the engine. Loads the settings and the program, opens the ledger,
// starts the actors and the server, and serves until SIGINT or SIGTERM.
#include "config/log.hpp"
#include "io/server/engine.hpp"

#include <CLI/CLI.hpp>
#include <malloc.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>

namespace {

int load_failed(const std::vector<loyalty::config_error>& errors) {
  for (auto& e : errors)
    std::fprintf(stderr, "loyaltyd: %s\n", e.message.c_str());
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  // Buffers of a few hundred KB come and go with every batch (a group
  // commit's ops, a Raft message, a decoded command). glibc's defaults hand
  // such blocks back to the kernel as they are freed (heap trimming above
  // 128 KB, mmap for large ones), and every next batch then page-faults
  // its memory in again, zeroed: measured 8 % of a follower's Raft thread
  // (docs/PERFORMANCE.md, "Issue 17"). Keep freed memory for reuse instead:
  // the process's footprint stays at its peak, which the engine bounds.
  // Set before any allocation of size; a MALLOC_*_ variable set in the
  // environment is left to win.
  // LOYALTYD_MALLOC_DEFAULTS=1 keeps glibc's defaults (for comparison).
  if (std::getenv("LOYALTYD_MALLOC_DEFAULTS") == nullptr) {
    if (std::getenv("MALLOC_TRIM_THRESHOLD_") == nullptr)
      mallopt(M_TRIM_THRESHOLD, 256 << 20);
    if (std::getenv("MALLOC_MMAP_THRESHOLD_") == nullptr)
      mallopt(M_MMAP_THRESHOLD, 32 << 20);
    if (std::getenv("MALLOC_TOP_PAD_") == nullptr)
      mallopt(M_TOP_PAD, 16 << 20);
  }
  CLI::App app{"loyaltyd: actor-based loyalty transaction engine with a durable double-entry ledger.\n"
               "Serves the binary wire protocol (docs/PROTOCOL.md) until SIGINT or SIGTERM."};
  std::string config_path = "config/loyaltyd.toml";
  std::string data_dir, host, durability;
  int port = -1;
  int metrics_port = -1;
  bool verify_only = false;
  app.add_option("-c,--config", config_path, "engine settings file (TOML); names the program file")
    ->capture_default_str();
  app.add_option("-d,--data-dir", data_dir, "LMDB data directory (overrides the settings file)");
  app.add_option("--host", host, "address to listen on (overrides the settings file)");
  app.add_option("-p,--port", port, "TCP port to listen on; 0 picks a free one (overrides the settings file)")
    ->check(CLI::Range(0, 65535));
  app.add_option("--metrics-port", metrics_port,
                 "serve Prometheus metrics over HTTP on this port at the settings' metrics_host; 0 = off "
                 "(overrides the settings file)")
    ->check(CLI::Range(0, 65535));
  app.add_option("--durability", durability,
                 "fsync (default) or nosync_unsafe: acknowledged commits may be lost on power cut; benchmarks only")
    ->check(CLI::IsMember({"fsync", "nosync_unsafe"}));
  app.add_flag("--verify", verify_only,
               "check the ledger invariants of the data directory, print the report and exit (0 valid, 1 not)");
  CLI11_PARSE(app, argc, argv);

  std::vector<loyalty::config_error> errors;
  auto settings = loyalty::load_settings(config_path, errors);
  if (!settings)
    return load_failed(errors);
  if (!data_dir.empty())
    settings->data_dir = data_dir;
  if (!host.empty())
    settings->listen_host = host;
  if (port >= 0)
    settings->listen_port = static_cast<std::uint16_t>(port);
  if (metrics_port >= 0)
    settings->metrics_port = static_cast<std::uint16_t>(metrics_port);
  if (durability == "nosync_unsafe")
    settings->sync = loyalty::durability::nosync_unsafe;
  else if (durability == "fsync")
    settings->sync = loyalty::durability::fsync;
  auto prog = loyalty::load_program(settings->program_path, errors);
  if (!prog)
    return load_failed(errors);

  if (verify_only) {
    loyalty::system_clock clk;
    loyalty::ledger::options lo;
    lo.dir = settings->data_dir;
    lo.map_bytes = settings->map_bytes;
    lo.clock = &clk;
    lo.tier_of = [&](std::int64_t l) { return prog->tier_for(l); };
    std::string error;
    auto led = loyalty::ledger::ledger::open(lo, error);
    if (!led) {
      std::fprintf(stderr, "loyaltyd: %s\n", error.c_str());
      return 2;
    }
    auto rep = led->verify();
    std::printf("%s: %llu entries, %llu postings, %llu accounts, %llu members, %llu txn ids\n",
                rep.ok ? "valid" : "INVALID", static_cast<unsigned long long>(rep.entries),
                static_cast<unsigned long long>(rep.postings), static_cast<unsigned long long>(rep.accounts),
                static_cast<unsigned long long>(rep.members), static_cast<unsigned long long>(rep.txn_ids));
    for (auto& p : rep.problems)
      std::printf("problem: %s\n", p.c_str());
    return rep.ok ? 0 : 1;
  }

  // Block the stop and reload signals in every thread; main waits for them below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  loyalty::io::engine_options opts;
  opts.settings = *settings;
  opts.prog = std::move(*prog);
  std::string error;
  auto eng = loyalty::io::engine::start(std::move(opts), error);
  if (!eng) {
    std::fprintf(stderr, "loyaltyd: %s\n", error.c_str());
    return 1;
  }
  loyalty::log(loyalty::log_level::info, "program '%s' (%zu brands, %zu tiers), data in %s, durability %s",
               eng->prog().name.c_str(), eng->prog().brands.size(), eng->prog().tiers.size(),
               settings->data_dir.c_str(),
               settings->sync == loyalty::durability::fsync ? "fsync" : "nosync_unsafe (NOT durable)");
  std::printf("loyaltyd listening on %s:%u\n", settings->listen_host.c_str(), eng->port());
  std::fflush(stdout);

  int sig = 0;
  for (;;) {
    sigwait(&stop_signals, &sig);
    if (sig != SIGHUP)
      break;
    // SIGHUP: reload the program file; an invalid one is refused and logged.
    std::string why;
    if (eng->reload_from_file(why) == 0)
      loyalty::log(loyalty::log_level::warn, "SIGHUP: program not reloaded: %s", why.c_str());
  }
  loyalty::log(loyalty::log_level::info, "signal %d: stopping: new requests are answered unavailable, those in flight are committed and answered (shutdown_drain_ms)", sig);
  // Stopped as a process that exits now: idle member actors are not torn
  // down one by one (up to a million: seconds), the ledger is closed, and
  // the process ends without running destructors (engine::stop_for_exit).
  eng->stop_for_exit();
  (void)eng.release();
  loyalty::log(loyalty::log_level::info, "stopped");
  std::fflush(nullptr);
  std::_Exit(0);
}

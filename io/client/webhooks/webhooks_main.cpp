// loyalty-webhooks: follows the engine's event stream and POSTs each
// endpoint's events to it, signed, at least once, resuming after a restart
// from what each endpoint acknowledged (docs/OPERATIONS.md, "Webhooks").
#include "config/log.hpp"
#include "io/client/webhooks/delivery.hpp"
#include "io/client/webhooks/settings.hpp"
#include "io/client/webhooks/worker.hpp"

#include <CLI/CLI.hpp>
#include <curl/curl.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <thread>

#include <signal.h>

namespace {

// Exit statuses (docs/OPERATIONS.md, "Webhooks").
constexpr int exit_clean = 0;         // a clean stop (SIGINT, SIGTERM); --check and --status done
constexpr int exit_usage = 2;         // a bad command line or settings file
constexpr int exit_state = 3;         // the state directory cannot be made or read
constexpr int exit_endpoint = 4;      // an endpoint stopped by itself (see the log)

int print_status(const loyalty::webhooks::settings& s) {
  int status = exit_clean;
  for (const auto& ep : s.endpoints) {
    std::string error;
    const auto next = loyalty::webhooks::load_next(s.state_dir, ep.name, error);
    if (!error.empty()) {
      std::cerr << "loyalty-webhooks: " << error << "\n";
      status = exit_state;
    } else if (next) {
      std::cout << ep.name << " next=" << *next << " acknowledged=" << (*next - 1) << " " << ep.url << "\n";
    } else {
      std::cout << ep.name << " no state yet " << ep.url << "\n";
    }
  }
  return status;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{
    "loyalty-webhooks: follows the loyaltyd event stream (subscribe) and POSTs each event, as JSON signed\n"
    "with HMAC-SHA256 (X-Loyalty-Signature), to the endpoints of the settings file. Each endpoint has its own\n"
    "subscription, filters and position: delivery is at least once per endpoint, retried with capped\n"
    "exponential backoff until a 2xx, and resumes after a restart from the position stored in the state\n"
    "directory. Runs until SIGINT or SIGTERM. docs/OPERATIONS.md, \"Webhooks\".\n"
    "Exit status: 0 clean stop (or --check / --status done); 2 bad command line or settings;\n"
    "3 state directory unusable; 4 an endpoint stopped by itself (attempts_max, or the engine refused it)."};
  std::string config_path;
  bool check_only = false, status_only = false, verbose = false;
  app.add_option("-c,--config", config_path, "settings file (TOML; config/webhooks.toml is an example)")->required();
  app.add_flag("--check", check_only, "check the settings file, print nothing, exit 0 if it is valid");
  app.add_flag("--status", status_only,
               "print each endpoint's stored position (next seq to deliver; every seq before it acknowledged) "
               "and exit");
  app.add_flag("-v,--verbose", verbose, "also log every failed attempt, not only the first of a series");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? exit_clean : exit_usage;
  }
  loyalty::log_program() = "loyalty-webhooks";
  if (verbose)
    loyalty::log_threshold() = loyalty::log_level::debug;

  std::vector<std::string> errors;
  const auto s = loyalty::webhooks::load_settings(config_path, errors);
  if (!s) {
    for (const auto& e : errors)
      std::fprintf(stderr, "loyalty-webhooks: %s\n", e.c_str());
    return exit_usage;
  }
  if (check_only)
    return exit_clean;
  if (status_only)
    return print_status(*s);
  std::error_code ec;
  std::filesystem::create_directories(s->state_dir, ec);
  if (ec || !std::filesystem::is_directory(s->state_dir)) {
    std::fprintf(stderr, "loyalty-webhooks: state directory %s: %s\n", s->state_dir.c_str(),
                 ec ? ec.message().c_str() : "not a directory");
    return exit_state;
  }

  // Before any thread: curl_global_init is not thread-safe, and the signals
  // go to the sigwait below, never to a worker.
  std::signal(SIGPIPE, SIG_IGN);
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    std::fprintf(stderr, "loyalty-webhooks: libcurl could not start\n");
    return exit_usage;
  }
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  std::atomic<bool> stop{false};
  std::atomic<std::size_t> gave_up{0}, finished{0};
  std::vector<std::thread> workers;
  for (const auto& ep : s->endpoints)
    workers.emplace_back([&, &ep = ep] {
      loyalty::webhooks::endpoint_worker w(*s, ep, stop);
      if (w.run() == loyalty::webhooks::worker_outcome::gave_up)
        ++gave_up;
      ++finished;
    });
  loyalty::log(loyalty::log_level::info, "following %s:%u for %zu endpoints; state in %s", s->host.c_str(),
               static_cast<unsigned>(s->port), s->endpoints.size(), s->state_dir.c_str());
  const timespec tick{0, 200'000'000};
  while (finished.load() < workers.size()) {
    const int sig = sigtimedwait(&stop_signals, nullptr, &tick);
    if (sig == SIGINT || sig == SIGTERM) {
      loyalty::log(loyalty::log_level::info, "stopping (signal %d)", sig);
      stop = true;
      break;
    }
  }
  for (auto& t : workers)
    t.join();
  curl_global_cleanup();
  if (gave_up.load() != 0) {
    loyalty::log(loyalty::log_level::error, "%zu of %zu endpoints stopped by themselves", gave_up.load(),
                 workers.size());
    return exit_endpoint;
  }
  return exit_clean;
}

// loyalty-crashtest: the crash harness from the command line (the long mode
// of issue 6; the suite runs a few cycles in tests/crash_test.cpp).
//
//   loyalty-crashtest --cycles 100 --seed 1 --mode mixed
#include "crash_harness.hpp"

#include <CLI/CLI.hpp>

#include <cstdlib>
#include <iostream>
#include <stdlib.h>

int main(int argc, char** argv) {
  CLI::App app{"loyalty-crashtest: start loyaltyd, drive every posting operation with a subscriber and hot backups\n"
               "running, crash it (kill -9, or inside a group commit or a checkpoint's commit), restart it and\n"
               "check every answer, the journal, the stream and the backups; repeat. Prints one line per cycle\n"
               "with its seed; exit 0 when every cycle passed, 1 at the first failure (what failed and how to\n"
               "rerun that cycle alone: --seed S --cycles 1 --mode M with the cycle's seed and mode)."};
  loyalty::test::crash_config cfg;
  cfg.loyaltyd = LOYALTYD_BIN;
  cfg.loyaltyd_faults = LOYALTYD_FAULTS_BIN;
  cfg.program = LOYALTY_SOURCE_DIR "/config/examples/retail.toml";
  cfg.cycles = 100;
  std::string mode = "mixed", work;
  bool keep = false, no_backups = false, no_subscribe = false;
  app.add_option("--cycles", cfg.cycles, "crash-restart-check cycles")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--seed", cfg.seed, "seed of the first cycle; cycle i uses seed + i")->capture_default_str();
  app.add_option("--mode", mode,
                 "kill9 (SIGKILL from outside at a random moment), before_commit / after_commit (the engine kills "
                 "itself inside the N-th group commit that writes entries), in_checkpoint (inside the N-th commit "
                 "that writes checkpoint records), or mixed (the four in turn)")
    ->capture_default_str();
  app.add_option("--fault-nth", cfg.fault_nth,
                 "the N of the injected modes (0: drawn per cycle, 1..40, 1..12 for in_checkpoint)")
    ->capture_default_str();
  app.add_option("--members", cfg.members, "members enrolled before the first cycle")->capture_default_str()
    ->check(CLI::Range(2, 1000000));
  app.add_option("--connections", cfg.connections, "load connections, one thread each")->capture_default_str()
    ->check(CLI::Range(1, 64));
  app.add_option("--window", cfg.window, "requests in flight per connection")->capture_default_str()
    ->check(CLI::Range(1, 4096));
  app.add_option("--checkpoint-interval-ms", cfg.checkpoint_interval_ms, "the engine's checkpoint_interval_ms")
    ->capture_default_str()->check(CLI::Range(1, 3'600'000));
  app.add_option("--checkpoint-accounts-max", cfg.checkpoint_accounts_max, "the engine's checkpoint_accounts_max")
    ->capture_default_str()->check(CLI::Range(1, 100'000'000));
  app.add_option("--checkpoint-chunk-accounts", cfg.checkpoint_chunk_accounts,
                 "the engine's checkpoint_chunk_accounts")
    ->capture_default_str()->check(CLI::Range(1, 100'000'000));
  app.add_flag("--no-backups", no_backups, "no hot backups during the load");
  app.add_flag("--no-subscribe", no_subscribe, "no subscriber during the load");
  app.add_option("--loyaltyd", cfg.loyaltyd, "the engine binary: killed by kill9 cycles, restarted after every crash")
    ->capture_default_str();
  app.add_option("--loyaltyd-faults", cfg.loyaltyd_faults,
                 "the engine built with the fault injector (LOYALTY_FAULT): crashes itself in injected cycles")
    ->capture_default_str();
  app.add_option("--program", cfg.program, "the program file (the codes of config/examples/retail.toml: brands "
                                           "acme and globex, rewards coffee and voucher-10, partner skyair, event "
                                           "survey)")
    ->capture_default_str();
  app.add_option("--work", work, "directory for the data and logs (default: a new one under /tmp, removed on "
                                 "success)");
  app.add_flag("--keep", keep, "keep the work directory after success too");
  CLI11_PARSE(app, argc, argv);
  if (!loyalty::test::parse_crash_mode(mode, cfg.mode)) {
    std::cerr << "loyalty-crashtest: --mode must be kill9, before_commit, after_commit, in_checkpoint or mixed\n";
    return 2;
  }
  cfg.backups = !no_backups;
  cfg.subscribe = !no_subscribe;
  const bool made = work.empty();
  if (made) {
    std::string tmpl = "/tmp/loyalty-crashtest-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) {
      std::cerr << "loyalty-crashtest: cannot make a directory under /tmp\n";
      return 2;
    }
    work = tmpl;
  }
  cfg.work = work;
  cfg.progress = &std::cout;
  std::cout << "crash harness: " << cfg.cycles << " cycles, mode " << mode << ", seeds " << cfg.seed << ".."
            << cfg.seed + static_cast<std::uint64_t>(cfg.cycles) - 1 << ", work directory " << work << std::endl;
  const auto r = loyalty::test::run_crash_harness(cfg);
  using loyalty::test::print_summary;
  if (!r.ok) {
    std::cout << "crash harness: FAILED in " << r.failure << "\n(work directory kept: " << work << ")\n";
    return 1;
  }
  print_summary(std::cout, r);
  if (made && !keep)
    std::filesystem::remove_all(work);
  return 0;
}

// loyaltyctl's bulk commands (docs/OPERATIONS.md, "Bulk import and export"):
//   export journal  every journal entry from a seq on, as JSON lines or CSV,
//                   through the `journal` operation, page by page;
//   import          members with their aliases and opening balances from a
//                   CSV or JSON-lines file, through pipelined batches,
//                   idempotent (a rerun posts nothing twice).
// Single-threaded, blocking client; progress on stderr.
#pragma once

#include "io/client/cli_connection.hpp"

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>

namespace loyalty::io::ctl {

// Where the engine is, as loyaltyctl's global options say.
struct endpoint {
  std::string host;
  std::uint16_t port = 0;
  connection_options conn;  // resolved
};

class bulk_commands {
public:
  // Adds `export journal` and `import` to loyaltyctl's command line.
  explicit bulk_commands(CLI::App& app);

  // After parsing: one of them was given.
  [[nodiscard]] bool chosen() const;
  // Runs the one given; its exit status (docs/OPERATIONS.md): export 0 /
  // 1 engine refusal or unwritable output / 2 connection failure; import 0
  // every row in / 2 some rows failed / 1 bad input file or connection failure.
  [[nodiscard]] int run(const endpoint& where) const;

  struct export_options {
    std::uint64_t from = 1;     // first seq
    std::uint64_t to = 0;       // last seq (0 = the newest)
    std::string format;         // csv | jsonl ("" = by --out's extension, else jsonl)
    std::string out;            // file ("" = stdout)
    std::uint32_t limit = 0;    // entries per page (0 = the server's default)
    std::uint64_t progress_pages = 100;  // progress line every this many pages when stderr is not a terminal
  };
  struct import_options {
    std::string file;
    std::string format;         // csv | jsonl ("" = by the file's extension)
    std::string errors;         // error report ("" = FILE.errors.csv)
    std::string txn_prefix;     // before every txn id the import makes (<= 24 bytes)
    std::uint32_t batch = 0;    // operations per batch (0 = the server's batch_ops_max)
    std::uint32_t inflight = 4; // batches in flight
    std::uint64_t progress_rows = 10000;  // progress line every this many rows when stderr is not a terminal
  };

private:
  CLI::App* export_ = nullptr;
  CLI::App* export_journal_ = nullptr;
  CLI::App* import_ = nullptr;
  export_options ex_;
  import_options im_;
};

} // namespace loyalty::io::ctl

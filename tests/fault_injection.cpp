// The fault injector of loyaltyd-faults, the crash harness's engine: the
// sources of loyaltyd plus this file, which installs the ledger's commit
// hook (ledger/commit_hook.hpp) before main runs. The loyaltyd an operator
// runs is built without it and never reads LOYALTY_FAULT.
//
//   LOYALTY_FAULT=crash_before_commit:N   the N-th commit that appends journal entries, after its
//                                         puts, before mdb_txn_commit
//   LOYALTY_FAULT=crash_after_commit:N    the same commit after mdb_txn_commit, before any answer
//   LOYALTY_FAULT=crash_in_checkpoint:N   the N-th commit that writes account records of a
//                                         checkpoint (a chunk with entries, a chunk alone while
//                                         idle, or the checkpoint of a clean close), before
//                                         mdb_txn_commit
//
// The process kills itself with SIGKILL there, as kill -9 would, after one
// line on stderr saying where (tests/crash_test.cpp reads it).
#include "ledger/commit_hook.hpp"

#include <atomic>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace {

using loyalty::ledger::commit_info;
using loyalty::ledger::commit_point;

enum class fault_kind : std::uint8_t { before_commit, after_commit, in_checkpoint };

struct fault_kind_name {
  fault_kind kind;
  std::string_view name;
};
constexpr fault_kind_name fault_kinds[] = {
  {fault_kind::before_commit, "crash_before_commit"},
  {fault_kind::after_commit, "crash_after_commit"},
  {fault_kind::in_checkpoint, "crash_in_checkpoint"},
};

fault_kind armed_kind = fault_kind::before_commit;
std::uint64_t armed_nth = 0;  // 0: not armed
// Commits of the kind seen so far. The hook never runs concurrently with
// itself, but the closing checkpoint runs on another thread than the writer.
std::atomic<std::uint64_t> seen{0};

bool counts(fault_kind kind, const commit_info& c) {
  switch (kind) {
    case fault_kind::before_commit: return c.at == commit_point::before_commit && c.entries > 0;
    case fault_kind::after_commit: return c.at == commit_point::after_commit && c.entries > 0;
    case fault_kind::in_checkpoint: return c.at == commit_point::before_commit && c.checkpoint_records > 0;
  }
  return false;
}

void on_commit(const commit_info& c) {
  if (!counts(armed_kind, c) || seen.fetch_add(1) + 1 != armed_nth)
    return;
  // The format is read by tests/crash_test.cpp.
  std::fprintf(stderr,
               "loyaltyd-faults: LOYALTY_FAULT fired: SIGKILL %s mdb_txn_commit of a commit of %" PRIu64
               " entries and %" PRIu64 " checkpoint records (generation of %" PRIu64 ", %" PRIu64
               " already in the table%s)\n",
               c.at == commit_point::before_commit ? "before" : "after", c.entries, c.checkpoint_records,
               c.generation_records, c.generation_written, c.closing ? ", closing checkpoint" : "");
  std::fflush(nullptr);
  std::raise(SIGKILL);
}

// Reads LOYALTY_FAULT; a value it cannot read stops the process, so a
// harness never runs a cycle it believes armed and is not.
bool arm() {
  const char* spec = std::getenv("LOYALTY_FAULT");
  if (spec == nullptr || *spec == 0)
    return false;
  const std::string_view v(spec);
  const auto colon = v.find(':');
  const auto point = v.substr(0, colon);
  bool known = false;
  for (const auto& k : fault_kinds)
    if (k.name == point) {
      armed_kind = k.kind;
      known = true;
    }
  char* end = nullptr;
  const auto nth = colon == std::string_view::npos ? 0 : std::strtoull(spec + colon + 1, &end, 10);
  if (!known || nth == 0 || end == nullptr || *end != 0) {
    std::fprintf(stderr,
                 "loyaltyd-faults: LOYALTY_FAULT=%s is not crash_before_commit:N, crash_after_commit:N or "
                 "crash_in_checkpoint:N (N >= 1)\n",
                 spec);
    std::exit(2);
  }
  armed_nth = nth;
  loyalty::ledger::set_commit_hook(on_commit);
  std::fprintf(stderr, "loyaltyd-faults: fault injection armed (LOYALTY_FAULT=%s): this process kills itself there\n",
               spec);
  return true;
}

// Before main: the engine's main (io/server/loyaltyd_main.cpp) stays the
// operator's, unchanged.
[[maybe_unused]] const bool armed = arm();

} // namespace

#include "ledger/cluster/state_machine.hpp"

#include "config/log.hpp"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <thread>

namespace loyalty::cluster {

state_machine::state_machine(ledger::ledger& led, std::string scratch_dir, mode m)
    : led_(led), scratch_(std::move(scratch_dir)), mode_(m) {
  fsm_.version = 3;
  fsm_.data = this;
  fsm_.apply = &state_machine::apply;
  fsm_.snapshot = &state_machine::snapshot;
  // Async snapshots need libuv's thread pool (raft_io version 2); the
  // fixture's io has none, and there the ledger applies as the log does.
  fsm_.snapshot_async = m == mode::queue ? &state_machine::snapshot_async : nullptr;
  fsm_.snapshot_finalize = &state_machine::snapshot_finalize;
  fsm_.restore = &state_machine::restore;
  // Copies a killed process left half made or not yet installed: the log's
  // own snapshot files are the durable ones.
  std::error_code ec;
  std::filesystem::remove_all(scratch_, ec);
}

int state_machine::apply(raft_fsm* fsm, const raft_buffer* buf, void** result) {
  auto* self = static_cast<state_machine*>(fsm->data);
  *result = nullptr;
  std::string error;
  const std::uint64_t index = self->raft_ != nullptr ? self->raft_->last_applied + 1 : 0;
  if (self->own_ && self->own_(index)) {
    ++self->applied_;
    return 0;
  }
  std::string_view bytes;
  if (!unwrap(*buf, bytes, error)) {
    ++self->refused_;
    log(log_level::error, "cluster: log entry %llu is not a ledger entry, skipped on every node: %s",
        static_cast<unsigned long long>(index), error.c_str());
    return 0;
  }
  const bool ok = self->mode_ == mode::queue ? self->led_.enqueue_command(bytes, index, error)
                                              : self->led_.apply_command(bytes, index, error);
  if (ok) {
    ++self->applied_;
  } else {
    ++self->refused_;
    log(log_level::error, "cluster: a log entry of %zu bytes is not a ledger command, skipped on every node: %s",
        buf->len, error.c_str());
  }
  return 0;
}

raft_buffer state_machine::entry_of(std::string_view command) {
  const std::uint64_t n = command.size();
  raft_buffer out{};
  out.len = 8 + (n + 7) / 8 * 8;
  out.base = raft_malloc(out.len);
  if (out.base == nullptr)
    return raft_buffer{};
  auto* p = static_cast<char*>(out.base);
  std::memcpy(p, &n, 8);
  std::memcpy(p + 8, command.data(), n);
  std::memset(p + 8 + n, 0, out.len - 8 - n);
  return out;
}

bool state_machine::unwrap(const raft_buffer& buf, std::string_view& command, std::string& error) {
  std::uint64_t n = 0;
  if (buf.len < 8 || buf.len % 8 != 0) {
    error = "an entry of " + std::to_string(buf.len) + " bytes (a multiple of 8, at least 8, expected)";
    return false;
  }
  std::memcpy(&n, buf.base, 8);
  if (n > buf.len - 8 || buf.len - 8 - n >= 8) {
    error = "an entry of " + std::to_string(buf.len) + " bytes says its command has " + std::to_string(n);
    return false;
  }
  command = std::string_view(static_cast<const char*>(buf.base) + 8, n);
  return true;
}

int state_machine::snapshot(raft_fsm* fsm, raft_buffer* bufs[], unsigned* n) {
  auto* self = static_cast<state_machine*>(fsm->data);
  if (self->raft_ == nullptr)
    return RAFT_BUSY;
  self->taking_ = self->raft_->last_applied;
  *bufs = nullptr;
  *n = 0;
  return self->mode_ == mode::wait ? self->copy_out(bufs, n) : 0;
}

int state_machine::snapshot_async(raft_fsm* fsm, raft_buffer* bufs[], unsigned* n) {
  return static_cast<state_machine*>(fsm->data)->copy_out(bufs, n);
}

int state_machine::copy_out(raft_buffer* bufs[], unsigned* n) {
  namespace fs = std::filesystem;
  // The writer applies what the log committed in order, soon after (its
  // own batch once the log says it is committed): a copy from then on
  // holds every entry up to the snapshot's index.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (led_.applied_log_index() < taking_) {
    if (stopping_.load() || std::chrono::steady_clock::now() > deadline)
      return RAFT_BUSY;  // not taken: libraft tries again later
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const fs::path dir = fs::path(scratch_) / "take";
  std::error_code ec;
  fs::remove_all(dir, ec);
  std::string error;
  const auto copy = led_.backup(dir.string(), error);
  if (!copy) {
    log(log_level::error, "cluster: cannot take a snapshot: %s", error.c_str());
    fs::remove_all(dir, ec);
    return RAFT_IOERR;
  }
  const std::uint64_t len = copy->bytes;
  raft_buffer out{};
  out.len = snapshot_header_bytes + (len + 7) / 8 * 8;
  out.base = raft_malloc(out.len);
  auto* arr = static_cast<raft_buffer*>(raft_malloc(sizeof(raft_buffer)));
  bool ok = out.base != nullptr && arr != nullptr;
  if (ok) {
    auto* p = static_cast<char*>(out.base);
    std::memcpy(p, snapshot_magic, 8);
    std::memcpy(p + 8, &copy->log_index, 8);
    std::memcpy(p + 16, &len, 8);
    std::memset(p + snapshot_header_bytes + len, 0, out.len - snapshot_header_bytes - len);
    std::FILE* f = std::fopen(copy->file.c_str(), "rb");
    ok = f != nullptr && std::fread(p + snapshot_header_bytes, 1, len, f) == len;
    if (f != nullptr)
      std::fclose(f);
    if (!ok)
      log(log_level::error, "cluster: cannot read back the snapshot copy %s", copy->file.c_str());
  }
  fs::remove_all(dir, ec);
  if (!ok) {
    raft_free(out.base);
    raft_free(arr);
    return RAFT_NOMEM;
  }
  arr[0] = out;
  *bufs = arr;
  *n = 1;
  taken_.fetch_add(1);
  log(log_level::info, "cluster: snapshot at log index %llu taken: %llu bytes, the ledger at index %llu, seq %llu",
      static_cast<unsigned long long>(taking_), static_cast<unsigned long long>(len),
      static_cast<unsigned long long>(copy->log_index), static_cast<unsigned long long>(copy->seq));
  return 0;
}

int state_machine::snapshot_finalize(raft_fsm*, raft_buffer* bufs[], unsigned* n) {
  if (*bufs != nullptr) {
    for (unsigned i = 0; i < *n; ++i)
      raft_free((*bufs)[i].base);
    raft_free(*bufs);
  }
  *bufs = nullptr;
  *n = 0;
  return 0;
}

int state_machine::restore(raft_fsm* fsm, raft_buffer* buf) {
  namespace fs = std::filesystem;
  auto* self = static_cast<state_machine*>(fsm->data);
  const auto* p = static_cast<const char*>(buf->base);
  std::uint64_t index = 0;
  std::uint64_t len = 0;
  if (buf->len < snapshot_header_bytes || std::memcmp(p, snapshot_magic, 8) != 0) {
    log(log_level::error, "cluster: a snapshot of %zu bytes is not a ledger snapshot", buf->len);
    return RAFT_MALFORMED;
  }
  std::memcpy(&index, p + 8, 8);
  std::memcpy(&len, p + 16, 8);
  if (len > buf->len - snapshot_header_bytes) {
    log(log_level::error, "cluster: a snapshot of %zu bytes says its ledger copy has %llu", buf->len,
        static_cast<unsigned long long>(len));
    return RAFT_MALFORMED;
  }
  if (self->led_.applied_log_index() >= index) {
    // The ledger holds it already (a start after a clean stop): the log's
    // entries after it are skipped up to what the ledger holds.
    raft_free(buf->base);
    return 0;
  }
  const fs::path dir = fs::path(self->scratch_) / ("install-" + std::to_string(++self->installs_));
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir, ec);
  const fs::path file = dir / "data.mdb";
  std::FILE* f = ec ? nullptr : std::fopen(file.c_str(), "wb");
  const bool ok = f != nullptr && std::fwrite(p + snapshot_header_bytes, 1, len, f) == len;
  const bool closed = f != nullptr && std::fclose(f) == 0;
  if (!ok || !closed) {
    log(log_level::error, "cluster: cannot write the snapshot to %s", file.c_str());
    fs::remove_all(dir, ec);
    return RAFT_IOERR;
  }
  raft_free(buf->base);
  log(log_level::info, "cluster: installing a snapshot of %llu bytes holding the log up to index %llu",
      static_cast<unsigned long long>(len), static_cast<unsigned long long>(index));
  self->led_.install_snapshot(dir.string(), self->mode_ == mode::wait);
  self->installed_.fetch_add(1);
  return 0;
}

} // namespace loyalty::cluster

#include "ledger/cluster/state_machine.hpp"

#include "config/log.hpp"

#include <cstring>
#include <string_view>

namespace loyalty::cluster {

state_machine::state_machine(ledger::ledger& led, mode m) : led_(led), mode_(m) {
  fsm_.version = 1;
  fsm_.data = this;
  fsm_.apply = &state_machine::apply;
  fsm_.snapshot = &state_machine::snapshot;
  fsm_.restore = &state_machine::restore;
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

int state_machine::snapshot(raft_fsm*, raft_buffer*[], unsigned*) { return RAFT_NOTFOUND; }

int state_machine::restore(raft_fsm*, raft_buffer*) { return RAFT_NOTFOUND; }

} // namespace loyalty::cluster

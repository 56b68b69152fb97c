#include "ledger/cluster/state_machine.hpp"

#include "config/log.hpp"

#include <string_view>

namespace loyalty::cluster {

state_machine::state_machine(ledger::ledger& led) : led_(led) {
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
  if (self->led_.apply_command(std::string_view(static_cast<const char*>(buf->base), buf->len), index, error)) {
    ++self->applied_;
  } else {
    ++self->refused_;
    log(log_level::error, "cluster: a log entry of %zu bytes is not a ledger command, skipped on every node: %s",
        buf->len, error.c_str());
  }
  return 0;
}

int state_machine::snapshot(raft_fsm*, raft_buffer*[], unsigned*) { return RAFT_NOTFOUND; }

int state_machine::restore(raft_fsm*, raft_buffer*) { return RAFT_NOTFOUND; }

} // namespace loyalty::cluster

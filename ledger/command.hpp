// A group-commit batch as a replicated log carries it (docs/ARCHITECTURE.md,
// "Replication"): the writer's decision inputs for every op of the batch that
// may post, and the batch's commit time. Applying the same commands in the
// same order to ledgers that start equal gives byte-identical journals: the
// writer's checks (txn ids, balances, overflow, aliases, counters) read only
// the ledger and the command, never the clock or the node.
//
// Barriers are not in a command (they post nothing and are answered by the
// node that took them). A reference to an earlier op of the same batch (a
// capture of a hold submitted with it: op::ref_seq_from with its cell not
// yet set) is carried as that op's position, and decoding wires the cells
// again; a reference to an op of an earlier batch is carried as its seq,
// which is known because that batch was applied first.
//
// Format (little-endian, x86-64; docs/ARCHITECTURE.md): magic "LLC1", the
// commit time, the op count, then each op's fields in a fixed order, the
// postings and details as their on-disk records (records.hpp).
#pragma once

#include "ledger/ledger.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace loyalty::ledger {

struct command {
  std::uint64_t now_us = 0;  // the batch's commit time (journal_header::committed_at_us)
  std::vector<op> ops;       // no targets, owners or notes: nobody waits on a decoded op
  // Set: a program version (magic "LLP1", ledger.hpp policy_change) with the
  // time the leader recorded it in now_us, and no ops.
  std::optional<policy_change> policy;
};

// The command of a batch about to be applied with commit time `now_us`.
// Call before the batch is applied: it reads the ref cells as they are.
[[nodiscard]] std::string encode_command(const std::vector<op>& batch, std::uint64_t now_us);

// The command recording a program version.
[[nodiscard]] std::string encode_policy_command(const policy_change& p, std::uint64_t now_us);

// False with `error` set for bytes that are not a command of this format
// (truncated, a count past its limit, an unknown op kind, a reference to
// an op that does not come before).
[[nodiscard]] bool decode_command(std::string_view bytes, command& out, std::string& error);

// The running digest of the journal: folded over every journal value (the
// bytes LMDB stores for an entry, header first) in seq order, from
// journal_digest_basis. Two nodes whose digests at the same seq are equal
// hold the same journal up to it, but for an accidental collision (64 bits,
// not cryptographic: it detects divergence, it does not stand up to an
// adversary).
inline constexpr std::uint64_t journal_digest_basis = 0x6a09e667f3bcc908ull;
[[nodiscard]] std::uint64_t journal_digest_step(std::uint64_t digest, const void* value, std::size_t bytes) noexcept;

} // namespace loyalty::ledger

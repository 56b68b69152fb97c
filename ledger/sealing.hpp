// Crypto-shredding of a member's personal values (docs/ARCHITECTURE.md,
// "Erasure"). Aliases and consent sources are personal data; the journal is
// append-only, so they are written to it sealed with a key of the member's
// own (the member_keys table), and erasing the member deletes the key: the
// sealed bytes stay, balanced and digested like every entry, and nobody can
// read them again. The aliases table is keyed by a hash of the alias, so an
// alias's text never reaches the data file at all.
//
// OpenSSL (libcrypto) is used here only; every function is pure and
// thread-safe.
#pragma once

#include "ledger/records.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace loyalty::ledger {

inline constexpr std::size_t member_key_bytes = 32;
using member_key = std::array<unsigned char, member_key_bytes>;

// 32 bytes from OpenSSL's CSPRNG. Aborts if the CSPRNG fails (a process that
// cannot draw random bytes must not seal with a weak key).
[[nodiscard]] member_key new_member_key();

// The aliases table's key for an alias: SHA-256 over a domain tag and the
// alias (32 bytes). Unkeyed, so any node and any later version finds the
// same row; a dictionary can still test a guess against a live row, which is
// what a lookup does, but the text itself is never stored.
inline constexpr std::size_t alias_key_bytes = 32;
using alias_key = std::array<unsigned char, alias_key_bytes>;
[[nodiscard]] alias_key alias_key_of(std::string_view alias);

// The first 8 bytes of HMAC-SHA256(key, domain || bytes): a keyed hash that
// cannot be reversed by a dictionary once the key is gone. Used for a
// link_alias entry's sealed_alias record and for the request_hash of the
// entries that carry personal values.
[[nodiscard]] std::uint64_t keyed_hash(const member_key& key, std::string_view domain, std::string_view bytes);
[[nodiscard]] std::uint64_t keyed_request_hash(const member_key& key, std::uint64_t request_hash);

// Entry kinds whose requests carry a personal value (an alias, a consent
// source): their notes are sealed and their request_hash keyed.
[[nodiscard]] constexpr bool carries_personal(entry_kind k) noexcept {
  return k == entry_kind::link_alias || k == entry_kind::consent;
}

// Seals the entry `seq` of a member in place: its note records (the
// consent's source) become sealed_note records holding AES-256-GCM of the
// text with its 16-byte tag (nonce: the seq, unique per key because a seq
// is written once), and its alias record becomes a sealed_alias record
// whose `a` is keyed_hash(key, "alias", alias). Deterministic: the same
// key, seq, details and alias give the same bytes on every node.
void seal_details(const member_key& key, std::uint64_t seq, std::string_view alias, std::vector<entry_detail>& details);

// The reverse for a reader: sealed_note records become the note records
// they were (kind note), with the key; without one (the member was erased),
// or with bytes that do not authenticate, they are dropped. sealed_alias
// records are left as they are (a keyed hash, nothing to show). False if
// the details hold nothing sealed (the caller need not look a key up).
[[nodiscard]] bool has_sealed(std::span<const entry_detail> details) noexcept;
void unseal_details(const std::optional<member_key>& key, std::uint64_t seq, std::vector<entry_detail>& details);

// What an erased member's entries show of their personal values, whatever
// schema wrote them: note records (pre-schema-9 consent sources) are
// dropped from consent and link_alias entries and alias records' hashes are
// zeroed. Entries of other kinds keep their notes (an adjustment's reason
// is the operator's text, not the member's: docs/OPERATIONS.md "Erasure").
void redact_erased(entry_kind kind, std::vector<entry_detail>& details);

} // namespace loyalty::ledger

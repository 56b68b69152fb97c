// Journal entries as the wire protocol shows them: the ledger's records
// (read through ledger/record_views.hpp) turned into protocol types, with
// brands, partners and rules named by the program in effect. Shared by the
// session's answers and every handler that shows entries.
//
// Thread affinity: none; `prog` must outlive the call.
#pragma once

#include "config/program.hpp"
#include "io/wire/protocol.hpp"
#include "ledger/ledger.hpp"
#include "ledger/record_views.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace loyalty::io::views {

// A brand's / partner's code, or its id as text once it is no longer in the program.
[[nodiscard]] std::string brand_code(const program& prog, std::uint32_t id);
[[nodiscard]] std::string partner_code(const program& prog, std::uint32_t id);
// "brand:CODE" / "partner:CODE" (docs/PROTOCOL.md section 2.3).
[[nodiscard]] std::string party_name(const program& prog, ledger::party_kind kind, std::uint32_t id);
// "member:42", "brand_issued:acme", ... as explain and journal name accounts.
[[nodiscard]] std::string account_name(const program& prog, std::uint64_t account);
// "num/den", as answers show rates and ratios.
[[nodiscard]] std::string ratio_text(std::uint64_t num, std::uint64_t den);

[[nodiscard]] line line_of(const program& prog, const ledger::rule_line_view& l);
[[nodiscard]] settlement_move settlement_of(const program& prog, const ledger::settle_view& s);
// The signed change of `member`'s points account an entry made.
[[nodiscard]] std::int64_t points_of(const ledger::ledger::entry& e, std::uint64_t member);
// The entry as `history` shows it to `member` (its own member, or a transfer's receiver).
[[nodiscard]] history_entry entry_view(const program& prog, const ledger::ledger::entry& e, std::uint64_t member);
[[nodiscard]] std::vector<move> moves_of(const program& prog, const ledger::ledger::entry& e);
// The entry's rule lines and settle records, in the order it holds them.
void lines_and_settlements(const program& prog, const ledger::ledger::entry& e, std::vector<line>& lines,
                           std::vector<settlement_move>& settlements);
// The entry as `journal` shows it.
[[nodiscard]] journal_entry journal_entry_of(const program& prog, const ledger::ledger::entry& e);

} // namespace loyalty::io::views

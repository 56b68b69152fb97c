// Ledger ops as a member actor builds them, for tests that drive a ledger
// (or a cluster of them) without the actors: an enrollment, and an earn of
// a fresh lot.
#pragma once

#include "ledger/ledger.hpp"

#include <string>

namespace loyalty::test {

inline ledger::op enroll_op(std::uint64_t member, std::uint32_t brand = 1) {
  ledger::op o;
  o.kind = ledger::op_kind::enroll;
  o.entry = ledger::entry_kind::enroll;
  o.member_id = member;
  o.brand_id = brand;
  return o;
}

// `points` from brand 1's issued account to the member, as lot `lot`.
inline ledger::op earn_op(std::uint64_t member, std::int64_t points, const std::string& txn, std::uint32_t lot) {
  using namespace ledger;
  op o;
  o.kind = op_kind::post;
  o.entry = entry_kind::earn;
  o.member_id = member;
  o.brand_id = 1;
  o.set_txn(txn);
  o.request_hash = content_hash(txn);
  o.points = points;
  o.postings = {{account_id(account_kind::brand_issued, 1), static_cast<std::uint64_t>(points),
                 static_cast<std::uint32_t>(posting_side::debit), 0},
                {account_id(account_kind::member_points, member), static_cast<std::uint64_t>(points),
                 static_cast<std::uint32_t>(posting_side::credit), 0}};
  o.details = {entry_detail{static_cast<std::uint16_t>(detail_kind::lot_add), 0, lot, 1, 0, points, 0, 0}};
  return o;
}

} // namespace loyalty::test

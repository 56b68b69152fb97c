// The earns the group-commit benchmarks submit: for random members among
// 1M, time-ordered 16-byte txn ids, two postings; a batch of them, then a
// barrier (the batch committed and answered).
#pragma once

#include "ledger/ledger.hpp"

#include <cstring>
#include <memory>
#include <random>

namespace loyalty::bench {

struct sink final : ledger::completion_target {
  void complete(std::vector<ledger::outcome>&&) noexcept override {}
};

inline void submit_earns(ledger::ledger& led, std::int64_t n, std::mt19937_64& rng, std::uint64_t& counter,
                         const std::shared_ptr<sink>& target) {
  namespace L = loyalty::ledger;
  for (std::int64_t i = 0; i < n; ++i) {
    L::op op;
    op.kind = L::op_kind::post;
    op.entry = L::entry_kind::earn;
    op.member_id = 1 + rng() % 1'000'000;
    op.brand_id = 1;
    ++counter;
    char txn[16];
    for (int b = 0; b < 8; ++b)
      txn[b] = static_cast<char>(counter >> (56 - 8 * b));
    std::memset(txn + 8, 0, 8);
    op.set_txn({txn, sizeof txn});
    op.points = 10;
    op.postings = {{L::account_id(L::account_kind::brand_issued, 1), 10,
                    static_cast<std::uint32_t>(L::posting_side::debit), 0},
                   {L::account_id(L::account_kind::member_points, op.member_id), 10,
                    static_cast<std::uint32_t>(L::posting_side::credit), 0}};
    op.target = target;
    led.submit(std::move(op));
  }
  led.barrier();
}

} // namespace loyalty::bench

// Two ledgers hold the same journal: every entry's header, postings, txn id
// and details, byte for byte (the replication tests).
#pragma once

#include "ledger/ledger.hpp"

#include <catch2/catch.hpp>

#include <cstring>

namespace loyalty::test {

inline void same_journals(const ledger::ledger& a, const ledger::ledger& b) {
  std::string err;
  auto ja = a.read_journal(1, 10'000'000, err);
  INFO(err);
  REQUIRE(ja);
  auto jb = b.read_journal(1, 10'000'000, err);
  INFO(err);
  REQUIRE(jb);
  REQUIRE(ja->entries.size() == jb->entries.size());
  for (std::size_t i = 0; i < ja->entries.size(); ++i) {
    const auto& x = ja->entries[i];
    const auto& y = jb->entries[i];
    INFO("entry " << x.header.seq);
    CHECK(std::memcmp(&x.header, &y.header, sizeof x.header) == 0);
    REQUIRE(x.postings.size() == y.postings.size());
    CHECK(std::memcmp(x.postings.data(), y.postings.data(), x.postings.size() * sizeof(ledger::posting)) == 0);
    CHECK(x.txn_id == y.txn_id);
    REQUIRE(x.details.size() == y.details.size());
    CHECK(std::memcmp(x.details.data(), y.details.data(), x.details.size() * sizeof(ledger::entry_detail)) == 0);
  }
}

} // namespace loyalty::test

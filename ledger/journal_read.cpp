// Pages of the journal in seq order, for exports (the wire's `journal`).
// One read transaction a page: the page is one consistent instant, and the
// writer is never waited for (LMDB readers do not block it).
#include "ledger/detail/impl.hpp"

#include <algorithm>

namespace loyalty::ledger {

std::optional<ledger::journal_page> ledger::read_journal(std::uint64_t from_seq, std::size_t limit,
                                                         std::string& error) const {
  detail::read_txn txn(impl_->env);
  if (!txn.get()) {
    error = detail::mdb_error("cannot begin a read transaction", txn.rc());
    return std::nullopt;
  }
  journal_page page;
  // The newest entry this transaction sees: the journal's last key. Keys
  // run 1, 2, ... without gaps, so the page is from_seq .. that, bounded.
  detail::cursor cur(txn.get(), impl_->db.journal);
  if (cur.rc() != MDB_SUCCESS) {
    error = detail::mdb_error("cannot open a journal cursor", cur.rc());
    return std::nullopt;
  }
  MDB_val k{}, v{};
  const int rc = mdb_cursor_get(cur.get(), &k, &v, MDB_LAST);
  if (rc == MDB_NOTFOUND)
    return page;
  if (rc != MDB_SUCCESS || k.mv_size != sizeof(std::uint64_t)) {
    error = detail::mdb_error("cannot read the journal's newest entry", rc);
    return std::nullopt;
  }
  std::memcpy(&page.last_seq, k.mv_data, sizeof page.last_seq);
  from_seq = std::max<std::uint64_t>(from_seq, 1);
  for (std::uint64_t seq = from_seq; seq <= page.last_seq && page.entries.size() < limit; ++seq) {
    auto e = impl_->read_entry(txn.get(), seq);
    if (!e || e->header.seq != seq) {
      error = "journal entry " + std::to_string(seq) + " cannot be read; run verify";
      return std::nullopt;
    }
    page.entries.push_back(std::move(*e));
  }
  return page;
}

} // namespace loyalty::ledger

// Pages of the journal in seq order, for exports (the wire's `journal`).
// One read transaction a page: the page is one consistent instant, and the
// writer is never waited for (LMDB readers do not block it).
#include "ledger/detail/impl.hpp"

#include <algorithm>

namespace loyalty::ledger {

bool ledger::impl::read_range(MDB_txn* txn, std::uint64_t from_seq, std::size_t limit,
                              std::vector<ledger::entry>& out, std::uint64_t& last_seq, std::string& error) const {
  // The newest entry this transaction sees: the journal's last key. Keys
  // run 1, 2, ... without gaps, so the range is from_seq .. that, bounded.
  detail::cursor cur(txn, db.journal);
  if (cur.rc() != MDB_SUCCESS) {
    error = detail::mdb_error("cannot open a journal cursor", cur.rc());
    return false;
  }
  MDB_val k{}, v{};
  const int rc = mdb_cursor_get(cur.get(), &k, &v, MDB_LAST);
  last_seq = 0;
  if (rc == MDB_NOTFOUND)
    return true;
  if (rc != MDB_SUCCESS || k.mv_size != sizeof(std::uint64_t)) {
    error = detail::mdb_error("cannot read the journal's newest entry", rc);
    return false;
  }
  std::memcpy(&last_seq, k.mv_data, sizeof last_seq);
  for (std::uint64_t seq = std::max<std::uint64_t>(from_seq, 1); seq <= last_seq && out.size() < limit; ++seq) {
    auto e = read_entry(txn, seq);
    if (!e || e->header.seq != seq) {
      error = "journal entry " + std::to_string(seq) + " cannot be read; run verify";
      return false;
    }
    out.push_back(std::move(*e));
  }
  return true;
}

std::optional<ledger::journal_page> ledger::read_journal(std::uint64_t from_seq, std::size_t limit,
                                                         std::string& error) const {
  detail::read_txn txn(impl_->env);
  if (!txn.get()) {
    error = detail::mdb_error("cannot begin a read transaction", txn.rc());
    return std::nullopt;
  }
  journal_page page;
  if (!impl_->read_range(txn.get(), from_seq, limit, page.entries, page.last_seq, error))
    return std::nullopt;
  return page;
}

} // namespace loyalty::ledger

// The ledger side of the event stream (docs/PROTOCOL.md, "subscribe"):
// committed entries read in seq order, each with what an event needs that
// the entry alone does not say.
#include "ledger/detail/impl.hpp"
#include "ledger/detail/periods.hpp"

namespace loyalty::ledger {

namespace {

// Steps along a member's history chain a tier lookup may take before it
// gives up: the previous own entry is one step away, or a few when the
// member received transfers in between.
constexpr int tier_walk_max = 64;

// The consent record of an entry (the member's consent after it).
const entry_detail* consent_detail(const ledger::entry& e) {
  for (const auto& d : e.details)
    if (d.kind == static_cast<std::uint16_t>(detail_kind::consent))
      return &d;
  return nullptr;
}

// Entry `seq` read in place, without copying its postings and records
// (the walks below look at a header or one record of older entries).
bool view_of(const ledger::impl& im, MDB_txn* txn, std::uint64_t seq, detail::entry_view& out) {
  MDB_val k = detail::val_of(seq), v{};
  std::string ignored;
  return mdb_get(txn, im.db.journal, &k, &v) == MDB_SUCCESS && detail::parse(seq, v, out, ignored);
}

} // namespace

bool ledger::read_stream(std::uint64_t from, std::size_t limit, std::vector<stream_entry>& out,
                         std::string& error) const {
  const impl& im = *impl_;
  detail::read_txn txn(im.env);
  if (!txn.get()) {
    error = detail::mdb_error("cannot begin a read transaction", txn.rc());
    return false;
  }
  // The consent of `member` as of entry `seq`: the consents table holds the
  // newest; each consent record names the member's consent before it and
  // its previous consent entry, so walk back to the last one at or before seq.
  auto consent_at = [&](std::uint64_t member, std::uint64_t seq) -> std::uint32_t {
    consent_record rec{};
    if (!detail::get_record(txn.get(), im.db.consents, detail::val_of(member), rec))
      return 0;
    std::uint32_t flags = rec.flags;
    for (std::uint64_t at = rec.seq; at > seq;) {
      detail::entry_view c;
      if (!view_of(im, txn.get(), at, c) || c.h.kind != static_cast<std::uint16_t>(entry_kind::consent))
        return 0;  // not a consent entry: verify reports it
      std::uint64_t before = at;
      for (std::size_t i = 0; i < c.h.detail_count; ++i)
        if (const auto d = c.detail_at(i); d.kind == static_cast<std::uint16_t>(detail_kind::consent)) {
          flags = static_cast<std::uint32_t>(d.b);
          before = d.c;
        }
      if (before == at)
        return 0;  // a consent entry without its record: verify reports it
      at = before;
    }
    return flags;
  };
  std::vector<entry> entries;
  std::uint64_t newest = 0;
  if (!im.read_range(txn.get(), from, limit, entries, newest, error))
    return false;
  for (auto& e : entries) {
    const std::uint64_t seq = e.header.seq;
    stream_entry se;
    const std::uint64_t member = e.header.member_id;
    if (e.header.kind == static_cast<std::uint16_t>(entry_kind::consent)) {
      const entry_detail* d = consent_detail(e);
      se.consents = d != nullptr ? static_cast<std::uint32_t>(d->a) : 0;
    } else {
      se.consents = consent_at(member, seq);
    }
    // The previous entry of the member that is its own (not one where it
    // was a transfer's receiver, whose tier_after is the sender's).
    std::uint64_t prev = e.header.prev_member_seq;
    for (int step = 0; prev != 0 && step < tier_walk_max; ++step) {
      detail::entry_view p;
      if (!view_of(im, txn.get(), prev, p))
        break;
      if (p.h.member_id == member) {
        se.tier_before = p.h.tier_after;
        se.has_tier_before = true;
        break;
      }
      prev = p.h.counterparty_id == member ? p.h.counterparty_prev_seq : 0;
    }
    se.e = std::move(e);
    out.push_back(std::move(se));
  }
  return true;
}

} // namespace loyalty::ledger

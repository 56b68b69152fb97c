// verify(): recomputes everything the ledger stores from the journal, in one
// read transaction, and reports every disagreement.
#include "ledger/detail/impl.hpp"
#include "ledger/sealing.hpp"
#include "ledger/detail/settle.hpp"
#include "ledger/record_views.hpp"

#include <algorithm>
#include <array>
#include <iterator>
#include <unordered_map>
#include <set>
#include <unordered_set>

namespace loyalty::ledger {

namespace {

__extension__ typedef __int128 i128;  // sums of int64 / uint64 values that cannot overflow

std::string to_string(i128 v) {
  if (v >= INT64_MIN && v <= INT64_MAX)
    return std::to_string(static_cast<std::int64_t>(v));
  std::string out;
  const bool negative = v < 0;
  do {
    auto digit = static_cast<int>(v % 10);
    out.insert(out.begin(), static_cast<char>('0' + (negative ? -digit : digit)));
    v /= 10;
  } while (v != 0);
  return negative ? "-" + out : out;
}

struct sums {
  std::uint64_t debit = 0;
  std::uint64_t credit = 0;
  std::uint64_t postings = 0;
};

std::string printable(std::string_view id) {
  bool text = !id.empty();
  for (unsigned char c : id)
    text = text && c >= 0x20 && c < 0x7f;
  if (text)
    return "'" + std::string(id) + "'";
  static const char* hex = "0123456789abcdef";
  std::string out = "0x";
  for (unsigned char c : id) {
    out += hex[c >> 4];
    out += hex[c & 15];
  }
  return out;
}

class auditor {
public:
  auditor(MDB_txn* txn, const ledger::impl& led, verify_report& rep)
      : txn_(txn), led_(led), db_(led.db), rep_(rep) {}

  void problem(std::string s) {
    rep_.ok = false;
    if (rep_.problems.size() < verify_problems_max)
      rep_.problems.push_back(std::move(s));
  }

  // Program versions must be 1, 2, ... without gaps; entries may name only those.
  void policies() {
    detail::cursor cur(txn_, db_.policies);
    MDB_val k{}, v{};
    for (int rc = mdb_cursor_get(cur.get(), &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
         rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT)) {
      std::uint64_t version = 0;
      if (k.mv_size != sizeof version || v.mv_size != sizeof(policy_record)) {
        problem("policies: a record of the wrong size");
        continue;
      }
      std::memcpy(&version, k.mv_data, sizeof version);
      if (version != policy_versions_ + 1)
        problem("policies: expected version " + std::to_string(policy_versions_ + 1) + ", found " +
                std::to_string(version));
      policy_versions_ = version;
    }
  }

  void journal() {
    detail::cursor cur(txn_, db_.journal);
    MDB_val k{}, v{};
    std::uint64_t expect = 1;
    for (int rc = mdb_cursor_get(cur.get(), &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
         rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT)) {
      std::uint64_t seq = 0;
      std::memcpy(&seq, k.mv_data, sizeof seq);
      rep_.entries++;
      if (seq != expect)
        problem("journal: expected seq " + std::to_string(expect) + ", found " + std::to_string(seq));
      expect = seq + 1;
      digest_ = journal_digest_step(digest_, v.mv_data, v.mv_size);
      last_seq_ = seq;
      entry(seq, v);
    }
    rep_.journal_digest = digest_;
  }

  // The digest the writer recorded must be the one the journal folds to.
  void digest() {
    digest_record rec{};
    if (!detail::get_record(txn_, db_.meta,
                            detail::val(detail::journal_digest_key, sizeof detail::journal_digest_key - 1), rec)) {
      if (last_seq_ != 0)  // an empty journal has none until its first commit
        problem("meta: no journal digest recorded");
      return;
    }
    if (rec.seq != last_seq_)
      problem("meta: the journal digest covers seq " + std::to_string(rec.seq) + ", the journal ends at " +
              std::to_string(last_seq_));
    else if (rec.digest != digest_)
      problem("meta: the recorded journal digest " + std::to_string(rec.digest) + " is not the journal's (" +
              std::to_string(digest_) + ")");
  }

  void entry(std::uint64_t seq, const MDB_val& v) {
    const auto where = "entry " + std::to_string(seq);
    if (v.mv_size < sizeof(journal_header)) {
      problem(where + ": shorter than its header");
      return;
    }
    journal_header h{};
    std::memcpy(&h, v.mv_data, sizeof h);
    if (h.seq != seq)
      problem(where + ": header says seq " + std::to_string(h.seq));
    if (h.kind < static_cast<std::uint16_t>(entry_kind::enroll) || h.kind > entry_kind_max)
      problem(where + ": unknown kind " + std::to_string(h.kind));
    if ((h.kind == static_cast<std::uint16_t>(entry_kind::partner_earn) ||
         h.kind == static_cast<std::uint16_t>(entry_kind::partner_burn)) &&
        h.partner_id == 0)
      problem(where + ": a partner entry names no partner");
    if (h.policy_version > policy_versions_)
      problem(where + ": names program version " + std::to_string(h.policy_version) + ", but only " +
              std::to_string(policy_versions_) + " are recorded");
    if (h.posting_count > postings_per_entry_max || h.txn_id_bytes > limits::txn_id_bytes_max ||
        h.detail_count > details_per_entry_max ||
        v.mv_size != sizeof h + h.posting_count * sizeof(posting) + h.txn_id_bytes +
                        h.detail_count * sizeof(entry_detail)) {
      problem(where + ": size does not match its header");
      return;
    }
    chain(where, seq, h.member_id, h.prev_member_seq);
    if (h.counterparty_id != 0)
      chain(where, seq, h.counterparty_id, h.counterparty_prev_seq);
    detail::money_totals implied, posted;
    const bool settles_ok = details(where, h,
                                    static_cast<const char*>(v.mv_data) + sizeof h +
                                      h.posting_count * sizeof(posting) + h.txn_id_bytes,
                                    implied);
    auto* p = static_cast<const char*>(v.mv_data) + sizeof h;
    std::array<i128, 2> debits{}, credits{};  // by account_unit: each balances on its own
    // The accounts table holds each balance as of the checkpoint, or of its
    // record's last_seq if later (cutoff); later entries are checked for
    // balance but summed separately (they live in memory).
    for (std::size_t i = 0; i < h.posting_count; ++i) {
      posting q{};
      std::memcpy(&q, p + i * sizeof q, sizeof q);
      auto& sums_map = seq <= cutoff(q.account) ? computed_ : tail_;
      rep_.postings++;
      if (q.amount == 0)
        problem(where + ": posting of zero");
      if (!known_kind(q.account))
        problem(where + ": posting to account " + describe(q.account) + " of unknown kind");
      const auto unit = static_cast<std::size_t>(unit_of(kind_of(q.account)));
      auto& s = sums_map[q.account];
      const sums* earlier = &sums_map == &tail_ ? find(computed_, q.account) : nullptr;
      s.postings++;
      if (q.side == static_cast<std::uint32_t>(posting_side::debit)) {
        total_bound(where, q.account, "debit", s.debit, earlier ? earlier->debit : 0, q.amount);
        debits[unit] += q.amount;
        s.debit += q.amount;
      } else if (q.side == static_cast<std::uint32_t>(posting_side::credit)) {
        total_bound(where, q.account, "credit", s.credit, earlier ? earlier->credit : 0, q.amount);
        credits[unit] += q.amount;
        s.credit += q.amount;
      } else {
        problem(where + ": posting with side " + std::to_string(q.side));
        continue;
      }
      if (unit == static_cast<std::size_t>(account_unit::money) &&
          !posted.add(q.account, static_cast<posting_side>(q.side), q.amount))
        problem(where + ": money postings to account " + describe(q.account) + " leave uint64");
    }
    for (auto unit : {account_unit::points, account_unit::money}) {
      const auto u = static_cast<std::size_t>(unit);
      if (debits[u] != credits[u])
        problem(where + ": " + (unit == account_unit::points ? "points" : "money") + " debits " +
                to_string(debits[u]) + " != credits " + to_string(credits[u]));
    }
    if (settles_ok && !posted.same_as(implied))
      problem(where + (implied.empty() ? ": has money postings but no settle records"
                                       : ": its money postings are not what its settle records imply"));
    if (h.kind == static_cast<std::uint16_t>(entry_kind::enroll))
      enrolled_.insert(h.member_id);
    if (h.txn_id_bytes > 0) {
      std::string id(p + h.posting_count * sizeof(posting), h.txn_id_bytes);
      auto [it, fresh] = txn_of_entry_.emplace(std::move(id), seq);
      if (!fresh)
        problem("txn id " + printable(it->first) + " is in entries " + std::to_string(it->second) + " and " +
                std::to_string(seq));
    }
  }

  // Invariant: neither total of an account, over the whole journal, passes
  // account_total_max (records.hpp). `sum` and `earlier` are the account's
  // totals of that side so far (entries after its cutoff and up to it: the
  // journal is read in seq order, so every entry up to the cutoff comes
  // first); checked before `amount` is added, so the total reported has
  // not wrapped. Once per account.
  void total_bound(const std::string& where, std::uint64_t account, const char* side, std::uint64_t sum,
                   std::uint64_t earlier, std::uint64_t amount) {
    const i128 total = i128{sum} + earlier + amount;
    if (total > account_total_max && over_bound_.insert(account).second)
      problem("account " + describe(account) + ": its " + side + " total " + to_string(total) +
              " is past 2^63-1 at " + where);
  }

  // Invariant: each entry names the member's previous entry, so the history
  // chain from a member's head visits exactly its entries, newest first.
  void chain(const std::string& where, std::uint64_t seq, std::uint64_t member, std::uint64_t prev) {
    auto& last = last_entry_[member];
    if (prev != last)
      problem(where + ": previous entry of member " + std::to_string(member) + " is " + std::to_string(last) +
              ", the entry says " + std::to_string(prev));
    last = seq;
    if (seq <= cutoff(account_id(account_kind::member_points, member)))
      last_at_checkpoint_[member] = seq;
  }

  // Before the journal: each stored account's last_seq. An incremental
  // checkpoint (schema 5) writes records before it moves accounts_seq, so a
  // record may reflect entries after it -- exactly those up to its own
  // last_seq that touched the account.
  void table_heads() {
    detail::cursor cur(txn_, db_.accounts);
    MDB_val k{}, v{};
    for (int rc = mdb_cursor_get(cur.get(), &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
         rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT)) {
      account_record a{};
      if (k.mv_size != sizeof(std::uint64_t) || v.mv_size != sizeof a)
        continue;  // accounts() reports it
      std::uint64_t id = 0;
      std::memcpy(&id, k.mv_data, sizeof id);
      std::memcpy(&a, v.mv_data, sizeof a);
      if (a.last_seq > rep_.checkpoint_seq)
        table_last_.emplace(id, a.last_seq);
    }
  }

  // The newest entry whose postings to `account` its stored record holds.
  [[nodiscard]] std::uint64_t cutoff(std::uint64_t account) const {
    auto it = table_last_.find(account);
    return it == table_last_.end() ? rep_.checkpoint_seq : it->second;
  }

  // The member's stored book (books table), if any: the fold of its entries
  // through the seq it names, byte for byte (`book` is the fold through
  // `head`, the member's newest entry).
  void check_stored_book(std::uint64_t id, std::uint64_t head, const member_book& book) {
    MDB_val k{sizeof id, &id}, v{};
    if (mdb_get(txn_, led_.db.books, &k, &v) != MDB_SUCCESS)
      return;
    rep_.stored_books++;
    const std::string who = "member " + std::to_string(id) + ": its stored book";
    std::uint64_t as_of = 0;
    member_book stored;
    if (v.mv_size < sizeof as_of) {
      problem(who + " is too short");
      return;
    }
    std::memcpy(&as_of, v.mv_data, sizeof as_of);
    const char* bytes = static_cast<const char*>(v.mv_data) + sizeof as_of;
    const std::size_t size = v.mv_size - sizeof as_of;
    if (!decode_book(bytes, size, stored)) {
      problem(who + " does not decode");
      return;
    }
    if (as_of == 0 || as_of > head) {
      problem(who + " is of entry " + std::to_string(as_of) + ", past the member's newest " + std::to_string(head));
      return;
    }
    std::string why;
    auto through = as_of == head ? std::optional<member_book>(book) : led_.fold_book(txn_, id, as_of, why, nullptr, false);
    std::vector<char> want;
    if (through)
      encode_book(*through, want);
    if (!through || want.size() != size || std::memcmp(want.data(), bytes, size) != 0)
      problem(who + " of entry " + std::to_string(as_of) + " is not the fold of its entries through it" +
              (why.empty() ? "" : ": " + why));
  }

  // Checks the entry's details and adds the postings its settle records
  // imply to `implied`; false if a settle record is malformed (the money
  // postings then cannot be compared).
  [[nodiscard]] bool details(const std::string& where, const journal_header& h, const char* p,
                             detail::money_totals& implied) {
    bool ok = true;
    for (std::size_t i = 0; i < h.detail_count; ++i) {
      entry_detail d{};
      std::memcpy(&d, p + i * sizeof d, sizeof d);
      const auto at = where + ": detail " + std::to_string(i);
      if (d.kind < static_cast<std::uint16_t>(detail_kind::lot_add) || d.kind > detail_kind_max)
        problem(at + " has unknown kind " + std::to_string(d.kind));
      if ((d.flags & detail_counterparty) != 0 && h.counterparty_id == 0)
        problem(at + " is for a counterparty the entry does not have");
      if (auto id = counter_of(d); id != 0)
        counted_[id] += d.a;
      if (detail::is_settle(d))
        ok = settle(at, d, implied) && ok;
    }
    return ok;
  }

  // A settle record: well-formed, its postings implied, its due counted
  // toward both parties.
  [[nodiscard]] bool settle(const std::string& at, const entry_detail& d, detail::money_totals& implied) {
    rep_.settlements++;
    if (const char* why = detail::settle_defect(d)) {
      problem(at + ": " + why);
      return false;
    }
    if (!implied.add_settle(d)) {
      problem(at + ": the settle records' amounts leave uint64");
      return false;
    }
    for (auto [kind, id] : {std::pair{settle_payer_kind(d.aux), d.brand}, std::pair{settle_payee_kind(d.aux), d.id}}) {
      std::int64_t due = 0, points = 0;
      if (detail::settle_due(d, kind, id, due, points))
        due_[party_key(kind, id)] += due;
    }
    return true;
  }

  // Invariant: what a party's settle records say it is owed, summed over the
  // journal, is what its money accounts hold (credits - debits).
  void settlements() {
    std::unordered_map<std::uint64_t, i128> held;
    for (const auto* m : {&computed_, &tail_})
      for (auto& [account, s] : *m)
        if (auto party = party_of(account); party != 0)
          held[party] += i128{s.credit} - i128{s.debit};
    std::vector<std::uint64_t> parties;
    for (const auto* m : {&held, &due_})
      for (auto& [party, sum] : *m)
        parties.push_back(party);
    std::sort(parties.begin(), parties.end());  // problems in a stable order
    parties.erase(std::unique(parties.begin(), parties.end()), parties.end());
    for (auto party : parties) {
      const i128 records = due_.count(party) != 0 ? due_.at(party) : 0;
      const i128 accounts = held.count(party) != 0 ? held.at(party) : 0;
      if (records != accounts)
        problem("settlement of " + describe_party(party) + ": its records sum to " + to_string(records) +
                " but its accounts to " + to_string(accounts));
    }
  }

  void accounts() {
    detail::cursor cur(txn_, db_.accounts);
    MDB_val k{}, v{};
    __extension__ typedef unsigned __int128 u128;  // sums of up to 2^64 u64 totals
    u128 total_debit = 0, total_credit = 0;
    std::unordered_set<std::uint64_t> stored;
    for (int rc = mdb_cursor_get(cur.get(), &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
         rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT)) {
      std::uint64_t id = 0;
      std::memcpy(&id, k.mv_data, sizeof id);
      rep_.accounts++;
      stored.insert(id);
      const auto where = "account " + describe(id);
      if (v.mv_size != sizeof(account_record)) {
        problem(where + ": record has the wrong size");
        continue;
      }
      if (!known_kind(id))
        problem(where + ": unknown account kind");
      account_record a{};
      std::memcpy(&a, v.mv_data, sizeof a);
      total_debit += a.debit_total;
      total_credit += a.credit_total;
      if ((a.debit_total > account_total_max || a.credit_total > account_total_max) && over_bound_.count(id) == 0)
        problem(where + ": stored debit/credit totals " + std::to_string(a.debit_total) + "/" +
                std::to_string(a.credit_total) + " are past 2^63-1");
      auto it = computed_.find(id);
      sums s = it == computed_.end() ? sums{} : it->second;
      if (a.debit_total != s.debit || a.credit_total != s.credit || a.posting_count != s.postings)
        problem(where + ": stored debits/credits/postings " + std::to_string(a.debit_total) + "/" +
                std::to_string(a.credit_total) + "/" + std::to_string(a.posting_count) + " but the journal sums to " +
                std::to_string(s.debit) + "/" + std::to_string(s.credit) + "/" + std::to_string(s.postings));
      if (kind_of(id) == account_kind::member_points) {
        if (members_.count(entity_of(id)) == 0)
          problem(where + ": belongs to no enrolled member");
        auto last = last_at_checkpoint_.find(entity_of(id));
        auto expect = last == last_at_checkpoint_.end() ? 0 : last->second;
        if (a.last_seq != expect)
          problem(where + ": member head is entry " + std::to_string(a.last_seq) +
                  " but the member's last entry up to the checkpoint is " + std::to_string(expect));
      }
    }
    for (auto& [id, s] : computed_)
      if (stored.count(id) == 0)
        problem("account " + describe(id) + ": has postings up to the checkpoint but no stored record");
    for (auto& [id, s] : tail_)
      if (kind_of(id) == account_kind::member_points && members_.count(entity_of(id)) == 0)
        problem("account " + describe(id) + ": belongs to no enrolled member");
    // Only a table of one moment balances as a whole: while a checkpoint is
    // half written (records past accounts_seq) each record was checked
    // against the journal instead, and every entry balances.
    if (table_last_.empty() && total_debit != total_credit)
      problem("the sum over all accounts of (debits - credits) is not zero");
  }

  void members() {
    detail::cursor cur(txn_, db_.members);
    MDB_val k{}, v{};
    for (int rc = mdb_cursor_get(cur.get(), &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
         rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT)) {
      std::uint64_t id = 0;
      std::memcpy(&id, k.mv_data, sizeof id);
      rep_.members++;
      members_.insert(id);
      if (enrolled_.count(id) == 0)
        problem("member " + std::to_string(id) + ": has a record but no enroll entry");
    }
    for (auto id : enrolled_)
      if (members_.count(id) == 0)
        problem("member " + std::to_string(id) + ": enrolled in the journal but has no record");
  }

  void txn_index() {
    detail::cursor cur(txn_, db_.txn_index);
    MDB_val k{}, v{};
    std::size_t matched = 0;
    for (int rc = mdb_cursor_get(cur.get(), &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
         rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT)) {
      rep_.txn_ids++;
      std::string id(static_cast<const char*>(k.mv_data), k.mv_size);
      std::uint64_t seq = 0;
      if (v.mv_size == sizeof seq)
        std::memcpy(&seq, v.mv_data, sizeof seq);
      auto it = txn_of_entry_.find(id);
      if (it == txn_of_entry_.end())
        problem("txn id " + printable(id) + ": indexed to entry " + std::to_string(seq) + " which does not carry it");
      else if (it->second != seq)
        problem("txn id " + printable(id) + ": indexed to entry " + std::to_string(seq) + " but carried by entry " +
                std::to_string(it->second));
      else
        ++matched;
    }
    if (matched != txn_of_entry_.size())
      problem(std::to_string(txn_of_entry_.size() - matched) + " entries carry a txn id missing from the index");
  }

  // Invariant: an alias names an enrolled member who was not erased, under
  // its hashed key (schema 9), and its member lists it (member_aliases) and
  // the reverse. An erased member has no key and no alias.
  void aliases() {
    auto u64 = [](const MDB_val& x) {
      std::uint64_t n = 0;
      std::memcpy(&n, x.mv_data, sizeof n);
      return n;
    };
    std::unordered_set<std::uint64_t> erased;
    detail::for_each_record(txn_, db_.erasures, [&](const MDB_val& k, const MDB_val& v) {
      if (k.mv_size != sizeof(std::uint64_t) || v.mv_size != sizeof(std::uint64_t))
        return problem("erasures: a record of the wrong size");
      const auto member = u64(k), seq = u64(v);
      erased.insert(member);
      auto e = led_.read_entry(txn_, seq);
      if (!e || e->header.kind != static_cast<std::uint16_t>(entry_kind::erase) || e->header.member_id != member)
        problem("member " + std::to_string(member) + ": erased by entry " + std::to_string(seq) +
                ", which is not its erase entry");
    });
    detail::for_each_record(txn_, db_.member_keys, [&](const MDB_val& k, const MDB_val& v) {
      if (k.mv_size != sizeof(std::uint64_t) || v.mv_size != member_key_bytes)
        return problem("member_keys: a record of the wrong size");
      if (erased.count(u64(k)) != 0)
        problem("member " + std::to_string(u64(k)) + ": erased, but its key is still stored");
    });
    std::set<std::pair<std::uint64_t, std::string>> listed;  // (member, alias key) of member_aliases
    detail::for_each_record(txn_, db_.member_aliases, [&](const MDB_val& k, const MDB_val& v) {
      if (k.mv_size != sizeof(std::uint64_t))
        return problem("member_aliases: a key of the wrong size");
      listed.emplace(u64(k), std::string(static_cast<const char*>(v.mv_data), v.mv_size));
    });
    std::size_t matched = 0;
    detail::for_each_record(txn_, db_.aliases, [&](const MDB_val& k, const MDB_val& v) {
      const std::string key(static_cast<const char*>(k.mv_data), k.mv_size);
      const auto where = "alias " + printable(key);
      if (k.mv_size != alias_key_bytes)
        problem(where + ": not a hashed alias key of " + std::to_string(alias_key_bytes) + " bytes");
      if (v.mv_size != sizeof(std::uint64_t))
        return problem(where + ": record has the wrong size");
      const auto member = u64(v);
      if (members_.count(member) == 0)
        problem(where + ": names member " + std::to_string(member) + ", who is not enrolled");
      if (erased.count(member) != 0)
        problem(where + ": names member " + std::to_string(member) + ", who was erased");
      if (listed.count({member, key}) == 0)
        problem(where + ": names member " + std::to_string(member) + ", whose member_aliases lacks it");
      else
        ++matched;
    });
    if (matched != listed.size())
      problem(std::to_string(listed.size() - matched) + " member_aliases values name no aliases row of their member");
  }

  // Invariant: a counter is the sum of its details over the journal.
  void counters() {
    detail::cursor cur(txn_, db_.counters);
    MDB_val k{}, v{};
    std::unordered_set<std::uint64_t> stored;
    for (int rc = mdb_cursor_get(cur.get(), &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
         rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT)) {
      std::uint64_t id = 0;
      std::int64_t value = 0;
      if (k.mv_size != sizeof id || v.mv_size != sizeof value) {
        problem("counters: a record of the wrong size");
        continue;
      }
      std::memcpy(&id, k.mv_data, sizeof id);
      std::memcpy(&value, v.mv_data, sizeof value);
      stored.insert(id);
      auto it = counted_.find(id);
      const i128 sum = it == counted_.end() ? 0 : it->second;
      if (value != sum)
        problem("counter " + describe_counter(id) + ": stored " + std::to_string(value) +
                " but its details sum to " + to_string(sum));
    }
    for (auto& [id, sum] : counted_)
      if (sum != 0 && stored.count(id) == 0)
        problem("counter " + describe_counter(id) + ": its details sum to " + to_string(sum) + " but it has no record");
  }

  // Invariant: each member's book is the fold of its entries, its points
  // (lots + holds - debt) are its member_points balance, and its consent is
  // the consents table's record (none: no channel), set by its newest
  // consent entry; its risk state (breaches, flagged, blocked) is the risk
  // table's record (none: all zero), set by its newest limit_breach, block
  // or unblock entry.
  void books() {
    const auto consents = by_member<consent_record>(db_.consents, "consents");
    const auto risks = by_member<risk_record>(db_.risk, "risk");
    std::vector<std::uint64_t> ids(members_.begin(), members_.end());
    std::sort(ids.begin(), ids.end());  // problems in a stable order
    for (auto id : ids) {
      auto head = last_entry_.find(id);
      std::string why;
      const std::uint64_t head_seq = head == last_entry_.end() ? 0 : head->second;
      auto book = led_.fold_book(txn_, id, head_seq, why, nullptr, false);
      if (!book) {
        problem(why.empty() ? "member " + std::to_string(id) + ": no book" : why);
        continue;
      }
      check_stored_book(id, head_seq, *book);
      std::int64_t lots = 0, holds = 0;
      if (!sum_lots(*book, lots) || !sum_holds(*book, holds)) {
        problem("member " + std::to_string(id) + ": the points of its lots or holds leave int64");
        continue;
      }
      const i128 points = i128{lots} + holds - book->debt;
      const i128 balance = balance_of(account_id(account_kind::member_points, id));
      if (points != balance)
        problem("member " + std::to_string(id) + ": lots + holds - debt = " + std::to_string(lots) + " + " +
                std::to_string(holds) + " - " + std::to_string(book->debt) + " = " + to_string(points) +
                " but its member_points balance is " + to_string(balance));
      const auto c = consents.find(id);
      const std::uint32_t stored = c == consents.end() ? 0 : c->second.flags;
      if (stored != book->consents)
        problem("member " + std::to_string(id) + ": consents table says " + std::to_string(stored) +
                ", its consent entries " + std::to_string(book->consents));
      if (c != consents.end()) {
        auto e = led_.read_entry(txn_, c->second.seq);
        if (!e || e->header.member_id != id || e->header.kind != static_cast<std::uint16_t>(entry_kind::consent))
          problem("member " + std::to_string(id) + ": its consent record names entry " +
                  std::to_string(c->second.seq) + ", not one of its consent entries");
      }
      const auto r = risks.find(id);
      const risk_record risk = r == risks.end() ? risk_record{} : r->second;
      if (std::memcmp(&risk, &book->risk, sizeof risk) != 0)
        problem("member " + std::to_string(id) + ": risk table says " + std::to_string(risk.breaches) +
                " breaches, flags " + std::to_string(risk.flags) + " (entry " + std::to_string(risk.seq) +
                "), its limit_breach / block / unblock entries " + std::to_string(book->risk.breaches) + ", " +
                std::to_string(book->risk.flags) + " (entry " + std::to_string(book->risk.seq) + ")");
    }
    if (MDB_stat st{}; mdb_stat(txn_, led_.db.books, &st) == MDB_SUCCESS && st.ms_entries != rep_.stored_books)
      problem("books: " + std::to_string(st.ms_entries - rep_.stored_books) + " stored books of members not enrolled");
  }

private:
  // A table keyed by member id with fixed-size records (consents, risk),
  // each of an enrolled member.
  template <class Rec>
  std::unordered_map<std::uint64_t, Rec> by_member(MDB_dbi dbi, const char* name) {
    std::unordered_map<std::uint64_t, Rec> out;
    detail::cursor cur(txn_, dbi);
    MDB_val k{}, v{};
    for (int rc = cur.rc() == MDB_SUCCESS ? mdb_cursor_get(cur.get(), &k, &v, MDB_FIRST) : cur.rc();
         rc == MDB_SUCCESS; rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT)) {
      std::uint64_t id = 0;
      Rec rec{};
      if (k.mv_size != sizeof id || v.mv_size != sizeof rec) {
        problem(std::string(name) + ": a record of the wrong size");
        continue;
      }
      std::memcpy(&id, k.mv_data, sizeof id);
      std::memcpy(&rec, v.mv_data, sizeof rec);
      if (members_.count(id) == 0)
        problem(std::string(name) + ": member " + std::to_string(id) + " is not enrolled");
      out[id] = rec;
    }
    return out;
  }

  static bool known_kind(std::uint64_t account) {
    const auto k = static_cast<unsigned>(kind_of(account));
    return k >= 1 && k <= account_kind_max;
  }

  static std::string describe(std::uint64_t id) {
    auto k = static_cast<unsigned>(kind_of(id));
    return (known_kind(id) ? std::string(to_string(kind_of(id))) : "kind " + std::to_string(k)) + "(" +
           std::to_string(entity_of(id)) + ")";
  }

  // A party as one key: its kind above its 32-bit id.
  static std::uint64_t party_key(party_kind kind, std::uint32_t id) {
    return static_cast<std::uint64_t>(kind) << 32 | id;
  }
  // The party whose money account this is, or 0 for a points account.
  static std::uint64_t party_of(std::uint64_t account) {
    const auto id = static_cast<std::uint32_t>(entity_of(account));
    switch (kind_of(account)) {
      case account_kind::brand_settlement: return party_key(party_kind::brand, id);
      case account_kind::partner_receivable:
      case account_kind::partner_payable: return party_key(party_kind::partner, id);
      default: return 0;
    }
  }
  static std::string describe_party(std::uint64_t key) {
    const bool brand = (key >> 32) == static_cast<std::uint64_t>(party_kind::brand);
    return (brand ? "brand " : "partner ") + std::to_string(key & 0xffffffffu);
  }

  static std::string describe_counter(std::uint64_t id) {
    static const char* names[] = {"?", "rule_points", "reward_units", "rule_day_points", "rule_month_points", "household_member"};
    auto k = static_cast<unsigned>(id >> 56);
    std::string s = std::string(k < std::size(names) ? names[k] : "?") + "(" + std::to_string(id & 0xffffffffu);
    if (const auto period = counter_period(id); period != 0)
      s += ", period " + std::to_string(period);
    return s + ")";
  }

  static const sums* find(const std::unordered_map<std::uint64_t, sums>& m, std::uint64_t account) {
    auto it = m.find(account);
    return it == m.end() ? nullptr : &it->second;
  }

  // Credit-normal balance of an account over the whole journal.
  i128 balance_of(std::uint64_t account) const {
    i128 b = 0;
    for (const auto* m : {&computed_, &tail_})
      if (auto it = m->find(account); it != m->end())
        b += i128{it->second.credit} - i128{it->second.debit};
    return b;
  }

  MDB_txn* txn_;
  const ledger::impl& led_;
  const dbs& db_;
  verify_report& rep_;
  std::uint64_t policy_versions_ = 0;
  std::unordered_map<std::uint64_t, std::uint64_t> table_last_;  // account -> last_seq past the checkpoint
  std::unordered_map<std::uint64_t, sums> computed_;  // entries up to the checkpoint (or the record's cutoff)
  std::unordered_map<std::uint64_t, sums> tail_;      // entries after it
  std::unordered_set<std::uint64_t> over_bound_;     // accounts with a total past account_total_max (reported)
  std::unordered_map<std::string, std::uint64_t> txn_of_entry_;
  std::unordered_set<std::uint64_t> enrolled_;
  std::unordered_set<std::uint64_t> members_;
  std::unordered_map<std::uint64_t, std::uint64_t> last_entry_;          // member -> newest entry
  std::unordered_map<std::uint64_t, std::uint64_t> last_at_checkpoint_;  // member -> newest entry <= checkpoint
  std::uint64_t digest_ = journal_digest_basis;  // folded over the journal so far
  std::uint64_t last_seq_ = 0;                   // the newest entry read
  std::unordered_map<std::uint64_t, i128> counted_;  // counter -> sum of its details
  std::unordered_map<std::uint64_t, i128> due_;      // party_key -> sum of due over its settle records
};

} // namespace

verify_report ledger::impl::verify() const {
  verify_report rep;
  detail::read_txn txn(env);
  if (!txn.get()) {
    rep.ok = false;
    rep.problems.push_back(detail::mdb_error("cannot begin a read transaction", txn.rc()));
    return rep;
  }
  constexpr char key[] = "accounts_seq";
  detail::get_record(txn.get(), db.meta, detail::val(key, sizeof key - 1), rep.checkpoint_seq);
  auditor a(txn.get(), *this, rep);
  a.policies();
  a.table_heads();
  a.journal();
  a.digest();
  a.members();
  a.accounts();
  a.settlements();
  a.txn_index();
  a.aliases();
  a.counters();
  a.books();
  return rep;
}

} // namespace loyalty::ledger

// On-disk record layouts of the ledger. Every struct here is written to LMDB
// byte for byte (little-endian, x86-64), so each has a fixed size checked at
// compile time and only explicit-width integers. Changing a layout changes
// the file format: bump schema_version and write a migration.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace loyalty::ledger {

// 2: account balances are checkpointed; meta "accounts_seq" names the last
//    journal seq the accounts table reflects.
// 3: journal header of 128 bytes with the member's history chain, the
//    referenced entry and a counterparty; entry detail records.
// 4: coalition money: settlement accounts (brand_settlement, partner_receivable,
//    partner_payable), settle detail records, partner entries and the header's
//    partner_id. A schema-3 directory holds none of these and opens as it is;
//    opening it records version 4 (docs/OPERATIONS.md, "Upgrades").
// 5: account checkpoints are incremental: the writer freezes the changed
//    balances as a generation and writes it to the table a chunk per group
//    commit, so the table may hold a record newer than "accounts_seq". Each
//    record reflects exactly the entries up to its own last_seq that touched
//    the account (entries up to accounts_seq are always reflected). The
//    bytes do not change: a schema-4 directory satisfies this already and
//    opening it records version 5; a schema-4 build cannot read a version-5
//    directory, whose records it would take for corrupt.
// 6: member consent and expiry notices: consent entries (kind 18) with
//    consent detail records and the consents table; expiry_notice entries
//    (kind 19) with expiry_notice records. A schema-5 directory holds none
//    of these and opens as it is; opening it records version 6 (and creates
//    the empty consents table). A schema-5 build refuses a version-6
//    directory.
// 7: lot top-up (lot_top_up detail records, kind 17) and the books table
//    of stored member books (a cache of the fold, ledger.hpp store_book).
//    A schema-6 directory holds neither and opens as it is; opening it
//    records version 7 (and creates the empty books table). A schema-6
//    build refuses a version-7 directory (its verify would take the new
//    records for unknown kinds).
// 8: tier notices: tier_notice entries (kind 20) with tier_notice records
//    (kind 18). A schema-7 directory holds none and opens as it is;
//    opening it records version 8. A schema-7 build refuses a version-8
//    directory.
// 9: issue 19. Pending points released on an action: release_pending
//    entries (kind 21) with lot_release records (kind 19). Rule budgets per
//    period: rule_budget records (kind 27) and the counters they move
//    (counter kinds rule_day_points and rule_month_points). Households:
//    household_join / household_leave / household_dissolve entries (kinds
//    26-28) with household records (kind 24), household_move entries (kind
//    29), and household counters (counter kind household_member). Erasure
//    (ledger/sealing.hpp): the aliases table is keyed by alias_key_of(alias)
//    (SHA-256) instead of the alias's text; new tables member_keys (member
//    -> its 32-byte key), member_aliases (member -> the aliases-table keys
//    of its aliases, duplicates sorted) and erasures (member -> the seq of
//    its erase entry); erase entries (kind 25) and sealed_alias /
//    sealed_note records (kinds 22, 23). A schema-8 directory holds none of
//    the new records and opens as it is; opening it records version 9,
//    creates the empty tables and rewrites each aliases row under its hashed
//    key (filling member_aliases), so its alias texts leave the live tables
//    (the freed pages keep them until LMDB reuses them: docs/OPERATIONS.md
//    "Erasure"). Its entries keep what they hold (plain consent sources,
//    plain alias hashes). Fraud and velocity limits: limit_breach, block
//    and unblock entries (kinds 22-24) with velocity and risk records
//    (kinds 20, 21), and the risk table of members with breaches or a
//    block (created empty). A schema-8 build refuses a version-9 directory
//    (its verify would take the new records for unknown kinds).
inline constexpr std::uint64_t schema_version = 9;
inline constexpr std::uint64_t schema_version_readable_min = 3;

// -- account ids ---------------------------------------------------------------
// An account id is 64 bits: the kind in the top 8 bits, the owning entity
// (member id, brand id or partner id) in the low 56 bits. Member ids are
// therefore limited to 1 .. 2^56-1.
//
// Two units live in the ledger: points (kinds 1-4) and money in the
// program currency's minor units (kinds 5-7). Every entry balances in each
// unit on its own. Points accounts of a brand are keyed by the brand that
// ISSUED the points (the lot's brand), so a brand's points outstanding is
//   issued - redeemed - expired
// (balances as below). Money accounts hold what the coalition's parties owe
// each other for points that crossed between them (docs/ARCHITECTURE.md,
// "Coalition money").
enum class account_kind : std::uint8_t {
  member_points = 1,   // points, credit-normal: points the member holds
  brand_issued = 2,    // points, debit-normal: points the brand issued, net of clawbacks
  brand_redeemed = 3,  // points, credit-normal: the brand's points that were spent (anywhere), net of reversals
  brand_expired = 4,   // points, credit-normal: breakage, points of the brand's lots that expired
  brand_settlement = 5,    // money, credit - debit = what the coalition owes the brand (negative: the brand owes)
  partner_receivable = 6,  // money, debit-normal: what the partner owes the program for points it issued
  partner_payable = 7,     // money, credit-normal: what the program owes the partner for points burned there
};
inline constexpr std::uint8_t account_kind_max = 7;

enum class account_unit : std::uint8_t { points, money };
[[nodiscard]] constexpr account_unit unit_of(account_kind k) noexcept {
  return static_cast<std::uint8_t>(k) >= static_cast<std::uint8_t>(account_kind::brand_settlement)
           ? account_unit::money
           : account_unit::points;
}

inline constexpr std::uint64_t entity_id_max = (std::uint64_t{1} << 56) - 1;

[[nodiscard]] constexpr std::uint64_t account_id(account_kind kind, std::uint64_t entity) noexcept {
  return (static_cast<std::uint64_t>(kind) << 56) | (entity & entity_id_max);
}
[[nodiscard]] constexpr account_kind kind_of(std::uint64_t account) noexcept {
  return static_cast<account_kind>(account >> 56);
}
[[nodiscard]] constexpr std::uint64_t entity_of(std::uint64_t account) noexcept {
  return account & entity_id_max;
}

// -- journal ---------------------------------------------------------------------
enum class entry_kind : std::uint16_t {
  enroll = 1,  // no postings; creates the member record
  earn = 2,    // debit brand_issued(brand), credit member_points(member)
  redeem = 3,  // debit member_points(member), credit brand_redeemed(member's brand)
  // issue 3 (docs/ARCHITECTURE.md lists the postings and details of each)
  event = 4,               // like earn, for a non-purchase event
  hold = 5,                // no postings: lots -> hold
  capture = 6,             // debit member_points, credit brand_redeemed(hold's brand)
  release = 7,             // no postings: hold -> lots (by request or on expiry)
  refund = 8,              // debit member_points, credit brand_issued(earn's brand): clawback
  reverse_redemption = 9,  // debit brand_redeemed, credit member_points: lots restored
  adjust = 10,             // +: debit brand_issued, credit member_points; -: the reverse
  transfer = 11,           // debit member_points(member), credit member_points(counterparty)
  expire = 12,             // debit member_points, credit brand_expired(lot's brand)
  link_alias = 13,         // no postings: an alias now names the member
  redeem_reward = 14,      // as redeem, for a catalog reward (reward detail)
  tier_review = 15,        // no postings: a tier review the sweep journaled
  // issue 4 (partner_id in the header names the partner)
  partner_earn = 16,       // debit brand_issued(partner's brand), credit member; settle partner -> brand
  partner_burn = 17,       // debit member, credit brand_redeemed(each lot's brand); settle each brand -> partner
  // issue 7
  consent = 18,            // no postings: the member's consent changed (consent detail, note: its source)
  expiry_notice = 19,      // no postings: the expiry sweep told the member's lots expire soon (expiry_notice details)
  // issue 19
  tier_notice = 20,        // no postings: the expiry sweep told the member its tier drops soon (a tier_notice detail)
  release_pending = 21,    // no postings: a purchase's pending points made spendable now (lot_release details)
  // issue 19 item 2: fraud and velocity limits
  limit_breach = 22,       // no postings: a request was refused for crossing a limit (a risk detail)
  block = 23,              // no postings: an admin blocked the member (a risk detail; note: the reason)
  unblock = 24,            // no postings: an admin unblocked the member (a risk detail; note: the reason)
  erase = 25,              // no postings: the member's personal values were destroyed (key, aliases; note: the reason)
  // issue 19 item 1: households (a household detail each, no postings)
  household_join = 26,      // the member joined a household
  household_leave = 27,     // the member left its household (on its own, or one by one as it was dissolved)
  household_dissolve = 28,  // the last member's leave of a dissolved household (it carries the txn id)
  household_move = 29,      // as transfer, between members of one household: a pooled spend or a leave moved points
};
inline constexpr std::uint16_t entry_kind_max = 29;

enum class posting_side : std::uint32_t { debit = 1, credit = 2 };

// Journal value layout: journal_header, then posting_count postings, then
// txn_id_bytes bytes of the client transaction id, then detail_count
// entry_detail records. Key: seq (uint64, native byte order,
// MDB_INTEGERKEY), strictly increasing, appended only.
//
// History chain: prev_member_seq is the previous entry of member_id, and
// counterparty_prev_seq the previous entry of counterparty_id, so a member's
// entries are read newest first by following the chain from its head (the
// last_seq of its member_points account) without any per-member index.
struct journal_header {
  std::uint64_t seq;             // journal sequence number, == the key
  std::uint64_t occurred_at_us;  // client's time of the business event, else commit time
  std::uint64_t committed_at_us; // engine clock when the batch was written
  std::uint64_t member_id;
  std::uint64_t request_hash;    // hash of the request content, for txn_id_conflict
  std::uint64_t prev_member_seq; // previous entry of member_id; 0 = none
  std::uint64_t ref_seq;         // entry this one acts on (refund -> earn, capture -> hold, ...); 0 = none
  std::uint64_t counterparty_id; // the other member of a transfer; 0 = none
  std::uint64_t counterparty_prev_seq;  // previous entry of counterparty_id; 0 = none
  std::int64_t amount_minor;     // earn / refund: amount in minor units; else 0
  std::int64_t points;           // points moved for the member (>= 0)
  std::int64_t balance_after;    // member's points balance after this entry
  std::int64_t lifetime_after;   // member's lifetime earned points after this entry
  std::uint32_t brand_id;
  std::uint32_t tier_after;      // tier index after this entry
  std::uint16_t kind;            // entry_kind
  std::uint8_t posting_count;
  std::uint8_t txn_id_bytes;     // 0: no client txn id (enroll)
  std::uint16_t detail_count;
  std::uint16_t partner_id;      // partner_earn / partner_burn (and their reversal): the partner; else 0
  std::uint32_t key_id;          // API key that posted it (docs/OPERATIONS.md); 0 = the engine itself or no keys
  std::uint32_t policy_version;  // program version it was evaluated under; 0 = before versions were recorded
};
static_assert(sizeof(journal_header) == 128);
static_assert(std::is_trivially_copyable_v<journal_header>);

struct posting {
  std::uint64_t account;
  std::uint64_t amount;    // > 0
  std::uint32_t side;      // posting_side
  std::uint32_t reserved;  // zero
};
static_assert(sizeof(posting) == 24);
static_assert(std::is_trivially_copyable_v<posting>);

// Postings in one entry. The most an entry needs is a reversal of a spend
// that drew on spend_brands_max issuing brands: per brand one redeemed
// debit, one breakage credit and one settlement posting, plus the member and
// the beneficiary (3 x 8 + 2 = 26).
inline constexpr std::size_t postings_per_entry_max = 32;
// Issuing brands one spend (redemption, capture, burn, clawback) may draw
// on: each needs its own postings (above). A member holding points of more
// brands spends them in two steps.
inline constexpr std::size_t spend_brands_max = 8;
static_assert(3 * spend_brands_max + 2 <= postings_per_entry_max);

// -- entry details ---------------------------------------------------------------
// A journal entry states the policy decision it carries, not only the money
// it moves: which lots it created or drew from, which holds it opened or
// closed, which rules gave how many points, how the member's tier track
// moved. A member's book (member_book.hpp) is the fold of these records over
// the member's entries, so it can always be rebuilt from the journal, and
// "which rule made these points" is answered by the ledger alone.
// Details follow the txn id bytes in the journal value.
enum class detail_kind : std::uint16_t {
  lot_add = 1,      // id: lot id, brand, a: points, b: available_at_us, c: expires_at_us
  lot_take = 2,     // id: lot id, brand, a: points (> 0), b: expires_at_us, c: earned_at_us;
                    //   aux != 0: the points go into hold `aux` (opened earlier in the entry)
  lot_restore = 3,  // id: lot id, brand, a: points (> 0), b: expires_at_us, c: earned_at_us;
                    //   recreates the lot if it was used up
  hold_open = 4,    // id: hold id, brand, a: points, b: expires_at_us
  hold_close = 5,   // id: hold id, a: points captured (0: released), aux: hold_close_reason
  qualify = 6,      // id: local day, a: metric delta (may be negative)
  rule_line = 7,    // id: rule id (0 for base / tier), aux: rule_line_kind, a: points
                    //   (negative: clawback), b: matched amount (minor units)
  reward = 8,       // id: reward id, a: units (+1 redeemed, -1 reversed)
  debt = 9,         // a: change of the member's debt (points owed after refunds)
  tier_state = 10,  // id: secured tier, aux: pending tier, a: prune buckets before this day,
                    //   b: pending_at_us, c: reviewed_through_us
  activity = 11,    // b: the member's last activity instant (inactivity expiry counts from it)
  alias = 12,       // a: content_hash of the alias linked by a link_alias entry (schema 8 and
                    //   before; the writer of schema 9 turns it into sealed_alias)
  note = 13,        // free text of the entry (an adjustment's reason), 28 bytes per record:
                    //   id: byte offset, aux: total length, bytes in brand, a, b, c
  settle = 14,      // money between two parties for points of this entry (see below)
  consent = 15,     // id: channels the request set (mask), aux: their new values (bits), a: every
                    //   channel's consent after the entry (mask, config/consent.hpp), b: before it,
                    //   c: the member's previous consent entry (seq, 0 = none; filled by the writer)
  expiry_notice = 16,  // id: lot id, brand, a: the lot's points, b: its expires_at_us (the member's
                       //   book remembers the latest expiry noticed, so a lot is noticed once)
  lot_top_up = 17,  // id: the member's newest lot, brand, a: points (> 0), b: available_at_us,
                    //   c: expires_at_us; the points join that lot (member_book.hpp top_up_target:
                    //   same brand and expiry, available alike), so a member who earns often
                    //   keeps a bounded book
  tier_notice = 18,  // id: the tier now, aux: the tier it drops to, a: the tier metric missing to keep
                     //   it, b: the instant it drops (actors/policy.hpp tier_outlook; the member's
                     //   book remembers the day of the latest drop noticed, so each is noticed once)
  lot_release = 19,  // id: a pending lot, brand: its brand, a: points (> 0) made available at b (the entry's
                     //   instant); c = 0: the whole lot, in place; c != 0: the points leave the lot for a new
                     //   lot c (the member's next lot id) with the same brand, expiry and earned-at
  // issue 19 item 2
  velocity = 20,  // id: local hour (hours since the local epoch) the entry counts in, aux: velocity_metric,
                  //   a: points (>= 0); carried by the entries a [limits] table counts, only while one is
                  //   configured (member_book.hpp velocity_windows)
  risk = 21,      // aux: risk_change | velocity_metric << 8 | velocity_window << 16 (the last two of a
                  //   breach only), id: a breach's local hour; a: the value the refused request would have
                  //   reached, b: the limit, c: 1 if this breach flags the member (member_book.hpp apply_risk)
  // issue 19 item 3: sealed with the member's key (ledger/sealing.hpp); unreadable once it is erased
  sealed_alias = 22,  // a: keyed_hash(member key, "alias", alias) of a link_alias entry's alias
  sealed_note = 23,   // a note (a consent's source) as AES-256-GCM ciphertext and its 16-byte tag,
                      //   in the note's layout (id: byte offset, aux: total length, bytes in brand, a, b, c)
  // issue 19 item 1
  household = 24,  // a: the member's household counter change (+household id on a join, -household id on a
                   //   leave), b: the household id, c: the member, aux: household_reason; the
                   //   counter (counter_kind::household_member) holds the member's household (0 = none)
  rule_budget = 27,  // id: rule id, aux: rule_budget_period, a: points the rule_line of the same rule
                     //   in this entry counts against the rule's budget of that period (negative:
                     //   a refund's clawback gives them back), b: the period (rule_budget_period)
};
inline constexpr std::uint16_t detail_kind_max = 27;

// What a velocity record counts: the six metrics of a [limits] table
// (docs/PROGRAM.md). One entry counts once in one of the four counts; earns
// and redemptions also add their points.
enum class velocity_metric : std::uint32_t {
  earns = 0, points_earned = 1, redemptions = 2, points_redeemed = 3, transfers_out = 4, aliases_linked = 5,
};
inline constexpr std::size_t velocity_metrics = 6;
enum class velocity_window : std::uint32_t { hour = 0, day = 1 };
enum class risk_change : std::uint32_t { breach = 1, block = 2, unblock = 3 };

enum class household_reason : std::uint32_t { join = 1, leave = 2, dissolve = 3 };

// rule_budget: which budget a record counts against; b is the program-local
// day (days since 1970-01-01) or month (year x 12 + month - 1) of the
// engine's clock when the earn was handled, below 2^24 (counter_id).
enum class rule_budget_period : std::uint32_t { day = 1, month = 2 };

// settle: `brand` = the payer's id, `id` = the payee's id, aux = payer party
// kind | payee party kind << 8, a = points (> 0), b = amount in minor units,
// c = rate (num << 32 | den, minor units per point; 1 <= den, num < 2^32).
// b == floor(a * num / den) always. The payer owes the payee b. Postings:
// debit party_account(payer, as payer), credit party_account(payee, as
// payee). With flags & detail_reversal the record undoes an earlier one
// (same parties, points, amount and rate): the postings are mirrored (credit
// the payer's account, debit the payee's), and the amount goes back.
enum class party_kind : std::uint8_t { brand = 1, partner = 2 };
inline constexpr std::uint16_t detail_reversal = 0x4000;

[[nodiscard]] constexpr std::uint32_t settle_parties(party_kind payer, party_kind payee) noexcept {
  return static_cast<std::uint32_t>(payer) | static_cast<std::uint32_t>(payee) << 8;
}
[[nodiscard]] constexpr party_kind settle_payer_kind(std::uint32_t aux) noexcept {
  return static_cast<party_kind>(aux & 0xff);
}
[[nodiscard]] constexpr party_kind settle_payee_kind(std::uint32_t aux) noexcept {
  return static_cast<party_kind>((aux >> 8) & 0xff);
}
// The money account a party's side of a settle record posts to: a brand's
// brand_settlement either way; a partner's receivable when it pays, its
// payable when it is paid.
[[nodiscard]] constexpr std::uint64_t party_account(party_kind kind, std::uint32_t id, bool payer) noexcept {
  if (kind == party_kind::brand)
    return account_id(account_kind::brand_settlement, id);
  return account_id(payer ? account_kind::partner_receivable : account_kind::partner_payable, id);
}
[[nodiscard]] constexpr std::uint64_t settle_rate(std::uint32_t num, std::uint32_t den) noexcept {
  return static_cast<std::uint64_t>(num) << 32 | den;
}

enum class hold_close_reason : std::uint32_t { captured = 1, released = 2, expired = 3 };
// partner: points a partner gave (partner_earn); id = partner id, b = the
// amount the member spent there (minor units, informational).
enum class rule_line_kind : std::uint32_t { base = 1, tier = 2, rule = 3, partner = 4 };

// flags: the record applies to the entry's counterparty member (a transfer's
// receiver), not to member_id.
inline constexpr std::uint16_t detail_counterparty = 0x8000;
// (detail_reversal = 0x4000 is a settle record's flag, above.)

struct entry_detail {
  std::uint16_t kind;   // detail_kind
  std::uint16_t flags;
  std::uint32_t id;
  std::uint32_t brand;
  std::uint32_t aux;
  std::int64_t a;
  std::uint64_t b;
  std::uint64_t c;
};
static_assert(sizeof(entry_detail) == 40);
static_assert(std::is_trivially_copyable_v<entry_detail>);

// Records in one entry: an earn with every rule firing, or a redemption drawing
// on many lots, stays far below this; a spend that would need more lots than
// this is refused (the member can spend in two steps).
inline constexpr std::size_t details_per_entry_max = 128;

// Accounts: key = account id (uint64, MDB_INTEGERKEY). Written at
// checkpoints: the table reflects the journal up to meta "accounts_seq" and,
// for each record, up to its last_seq (schema 5: an incremental checkpoint
// writes some records before it can move accounts_seq); later entries are
// replayed from the journal when the ledger opens.
// balance of a credit-normal account = credit_total - debit_total.
// last_seq of a member_points account is the member's head: its last entry,
// whether or not that entry posted to the account (enroll, holds, ...).
struct account_record {
  std::uint64_t debit_total;
  std::uint64_t credit_total;
  std::uint64_t posting_count;
  std::uint64_t last_seq;  // seq of the last entry that touched it
};
static_assert(sizeof(account_record) == 32);
static_assert(std::is_trivially_copyable_v<account_record>);

// The most either total of an account may reach: 2^63-1. The writer refuses
// an entry that would take a debit or credit total past it
// (amount_overflow, nothing of the entry posted) and verify checks it, so a
// balance, a total and the difference of two totals always fit int64: the
// reports (liability, activity, report) and the journal header's balances
// never meet a number they cannot state. The totals are uint64 only because
// they never go down.
inline constexpr std::uint64_t account_total_max = static_cast<std::uint64_t>(INT64_MAX);

// Meta "journal_digest": the journal's running digest (command.hpp,
// journal_digest_step) over every entry up to `seq`, written with each
// commit that appends entries. A directory without it (written before it
// existed) gets it at open, folded over its whole journal; one whose `seq`
// is behind the journal (an older build wrote after it) gets the rest
// folded in. verify recomputes it.
struct digest_record {
  std::uint64_t seq;
  std::uint64_t digest;
};
static_assert(sizeof(digest_record) == 16);
static_assert(std::is_trivially_copyable_v<digest_record>);

// Members: key = member id (uint64, MDB_INTEGERKEY).
struct member_record {
  std::uint64_t member_id;
  std::uint64_t enrolled_at_us;
  std::uint64_t enroll_seq;  // journal seq of the enroll entry
  std::uint32_t brand_id;    // home brand
  std::uint32_t status;      // 1 = active
};
static_assert(sizeof(member_record) == 32);
static_assert(std::is_trivially_copyable_v<member_record>);

// Txn index: key = client txn id bytes (1..64), value = journal seq (uint64).

// Aliases: key = alias_key_of(alias) (32 bytes, sealing.hpp; schema 8 and
// before: the alias bytes), value = member id (uint64). Written by the
// link_alias entry in the same transaction; never overwritten; deleted by
// the member's erase entry, after which the alias may name a new member.
//
// Member aliases (schema 9): key = member id (uint64, MDB_INTEGERKEY,
// MDB_DUPSORT), one value per alias of the member: its 32-byte aliases-table
// key. Written with the aliases row, deleted with it.
//
// Member keys (schema 9): key = member id (uint64, MDB_INTEGERKEY), value =
// the member's 32-byte key (sealing.hpp). Written by the member's first
// entry that carries a personal value; deleted by its erase entry, never
// written again for that member.
//
// Erasures (schema 9): key = member id (uint64, MDB_INTEGERKEY), value = the
// seq of its erase entry (uint64). The writer refuses every later entry of
// the member (member_erased).

// Policies: key = program version (uint64, MDB_INTEGERKEY, 1, 2, ...), one
// record per program version the engine has run: the SHA-256 of the program
// file's text, when it took effect, and the first journal seq that can have
// been evaluated under it. Entries name their version in the header.
struct policy_record {
  unsigned char sha256[32];
  std::uint64_t recorded_at_us;
  std::uint64_t first_seq;
};
static_assert(sizeof(policy_record) == 48);
static_assert(std::is_trivially_copyable_v<policy_record>);

// Consents: key = member id (uint64, MDB_INTEGERKEY), one record per member
// whose consent was ever set: its consent now and the entry that set it.
// Written by the consent entry in the same transaction. The consent of a
// member as of an older entry is found by following the consent details'
// `c` (previous consent entry) back from `seq`.
struct consent_record {
  std::uint32_t flags;          // consent_channel bits (config/consent.hpp)
  std::uint32_t reserved;       // zero
  std::uint64_t seq;            // the consent entry that set them
  std::uint64_t changed_at_us;  // its committed_at_us
};
static_assert(sizeof(consent_record) == 24);
static_assert(std::is_trivially_copyable_v<consent_record>);

// Risk: key = member id (uint64, MDB_INTEGERKEY), one record per member
// with a limit breach, a block or an unblock ever journaled: its state after
// its newest such entry (the same as its book's, member_book.hpp risk_fold).
// Written by those entries in the same transaction; the flagged-and-blocked
// report reads this table, never the journal of every member.
inline constexpr std::uint32_t risk_flagged = 1;
inline constexpr std::uint32_t risk_blocked = 2;
struct risk_record {
  std::uint32_t breaches;       // limit breaches since the member was last unblocked
  std::uint32_t flags;          // risk_flagged | risk_blocked
  std::uint64_t blocked_at_us;  // when the block entry occurred; 0 = not blocked
  std::uint64_t block_seq;      // the block entry (its note is the reason); 0 = not blocked
  std::uint64_t seq;            // the member's newest limit_breach / block / unblock entry
};
static_assert(sizeof(risk_record) == 32);
static_assert(std::is_trivially_copyable_v<risk_record>);

// Counters: program-wide totals that caps and stock are checked against,
// updated in the same write transaction as the entries that move them.
// key = counter_id(kind, id) (uint64, MDB_INTEGERKEY), value = int64.
enum class counter_kind : std::uint8_t {
  rule_points = 1,   // id = earn rule id: sum of its rule_line details (net of clawbacks)
  reward_units = 2,  // id = reward id: sum of its reward details (redeemed - reversed)
  // id = earn rule id, period = day / month: sum of its rule_budget details of
  // that period (net of clawbacks). One counter per rule and period used.
  rule_day_points = 3,
  rule_month_points = 4,
  household_member = 5,  // id = member id (56 bits): sum of its household details = its household (0 = none)
};
[[nodiscard]] constexpr std::uint64_t household_counter(std::uint64_t member) noexcept {
  return (static_cast<std::uint64_t>(counter_kind::household_member) << 56) | (member & entity_id_max);
}
[[nodiscard]] constexpr std::uint64_t counter_id(counter_kind kind, std::uint32_t id) noexcept {
  return (static_cast<std::uint64_t>(kind) << 56) | id;
}
// A per-period counter: the period (< 2^24) in bits 32..55.
inline constexpr std::uint32_t counter_period_max = (1u << 24) - 1;
[[nodiscard]] constexpr std::uint64_t counter_id(counter_kind kind, std::uint32_t id, std::uint32_t period) noexcept {
  return counter_id(kind, id) | (static_cast<std::uint64_t>(period & counter_period_max) << 32);
}
[[nodiscard]] constexpr std::uint32_t counter_period(std::uint64_t counter) noexcept {
  return static_cast<std::uint32_t>(counter >> 32) & counter_period_max;
}

} // namespace loyalty::ledger

// The loyaltyd wire protocol, version 1: C++ view of requests and responses.
// docs/PROTOCOL.md is the contract; this header mirrors it. Both the server
// and the client library encode and decode through io/codec.hpp.
//
// Frame: 4-byte big-endian unsigned payload length N (1 <= N <=
// limits::frame_bytes_max), then N bytes holding exactly one msgpack map.
#pragma once

#include "config/errc.hpp"
#include "config/limits.hpp"
#include "io/wire/operations.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace loyalty::io {

// opcode and the facts of each operation: io/wire/operations.hpp.

// Bounds of request fields added in issue 3, checked by the decoder
// (docs/PROTOCOL.md section 7).
// Line items per earn / refund: a large basket; a frame of 256 items with
// 64-byte sku and category stays far below frame_bytes_max.
inline constexpr std::size_t items_max = 256;
// Codes and names: alias, event, reward, brand, sku, category, channel,
// store; the same bound as txn ids so an alias can be a txn-like identifier.
inline constexpr std::size_t code_bytes_max = 64;
// hello's admin key: room for a 512-bit key in hex, or a base64 token.
inline constexpr std::size_t admin_key_bytes_max = 128;
// adjust's reason: one sentence for the audit trail.
inline constexpr std::size_t reason_bytes_max = 200;
// history page size: a page of 100 entries is about 20 KiB on the wire.
inline constexpr std::uint32_t history_limit_max = 100;
inline constexpr std::uint32_t history_limit_default = 20;
// settlement page size: a line is about 150 bytes on the wire, so a page of
// 1,000 stays near 150 KiB, far below frame_bytes_max.
inline constexpr std::uint32_t statement_limit_max = 1000;
inline constexpr std::uint32_t statement_limit_default = 100;
// risk_report: members per page (the same bounds as a statement's lines).
inline constexpr std::uint32_t risk_report_limit_max = 1000;
inline constexpr std::uint32_t risk_report_limit_default = 100;
// backup's directory: a Linux PATH_MAX.
inline constexpr std::size_t path_bytes_max = 4096;
// cluster_add / cluster_remove: a node's id, and its addresses' length.
inline constexpr std::uint64_t cluster_node_id_max = 1'000'000;
inline constexpr std::size_t address_bytes_max = 255;
// "host:port": a host without '|', whitespace or controls, a port 1 ... 65535.
[[nodiscard]] inline bool is_host_port(std::string_view a) {
  const auto colon = a.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == a.size() || a.size() - colon - 1 > 5)
    return false;
  for (char ch : a.substr(0, colon))
    if (ch == '|' || static_cast<unsigned char>(ch) <= ' ')
      return false;
  unsigned port = 0;
  for (char ch : a.substr(colon + 1)) {
    if (ch < '0' || ch > '9')
      return false;
    port = port * 10 + static_cast<unsigned>(ch - '0');
  }
  return port >= 1 && port <= 65535;
}
// report: the activity window (days before the period's end) and the top
// earners per brand. Ten years covers any reporting habit; 100 earners of
// a brand are about 2 KiB on the wire, so every brand's list fits a frame.
inline constexpr std::uint32_t report_active_days_max = 3650;
inline constexpr std::uint32_t report_active_days_default = 90;
inline constexpr std::uint32_t report_top_max = 100;
inline constexpr std::uint32_t report_top_default = 10;

// The event stream (docs/PROTOCOL.md, "subscribe"). Event types: a
// subscriber's `types` filter is a set of these names; bit i of
// request::event_types is event_type_names[i]. Appended only.
inline constexpr std::array<std::string_view, 25> event_type_names = {
  "member_enrolled",      // enroll
  "points_earned",        // earn, event (a welcome bonus too), partner_earn
  "points_redeemed",      // redeem, redeem_reward, capture, partner_burn
  "points_refunded",      // refund: points of a purchase taken back
  "redemption_reversed",  // reverse_redemption: spent points given back
  "points_adjusted",      // adjust (either sign)
  "points_transferred",   // transfer (member: the sender; counterparty: the receiver)
  "points_expired",       // expire: lots past their expiry, into breakage
  "points_held",          // hold
  "hold_released",        // release by request
  "hold_expired",         // release by the engine: the hold's TTL ran out
  "tier_changed",         // the member's tier after an entry differs from before it
  "consent_changed",      // consent
  "points_expiring",      // expiry_notice: lots that expire within the program's expiry_notice_days
  "alias_linked",         // link_alias
  "tier_downgrade_warning",  // tier_notice: the tier drops within the program's tier_policy.warning_days
  "points_released",      // release_pending: a purchase's pending points became spendable
  // issue 19 item 1
  "household_joined",        // household_join
  "household_left",          // household_leave
  "household_dissolved",     // household_dissolve: one per member of the dissolved household
  "household_points_moved",  // household_move (member: the giver; counterparty: the receiver)
  "member_erased",        // erase: the member's personal values were destroyed (the event carries none)
  "limit_exceeded",       // limit_breach: a request was refused for going past a [limits] bound
  "member_blocked",       // block
  "member_unblocked",     // unblock
};
inline constexpr std::uint32_t event_types_all = (1u << event_type_names.size()) - 1;
// The bit of an event type name, or 0 for a name that is not one.
[[nodiscard]] constexpr std::uint32_t event_type_bit(std::string_view name) noexcept {
  for (std::size_t i = 0; i < event_type_names.size(); ++i)
    if (event_type_names[i] == name)
      return 1u << i;
  return 0;
}
// Entries read from the journal per events frame at most; a frame holds the
// events of whole entries only.
inline constexpr std::size_t stream_entries_per_frame_max = 256;
// journal page size in entries: an exporter's round trip per 1,000 entries.
inline constexpr std::uint32_t journal_limit_max = 1000;
inline constexpr std::uint32_t journal_limit_default = 100;
// journal page size in encoded bytes: a page is cut before the entry that
// would take its entries past this, so the answer (with its few other
// fields) stays below frame_bytes_max whatever the entries hold. A typical
// entry is 300-600 bytes; the largest possible (32 postings, 128 details
// with 64-byte codes) under 64 KiB, so a page always holds at least one.
inline constexpr std::size_t journal_page_bytes_max = 768u << 10;

// One line of a purchase (earn) or of a return (refund).
struct item {
  std::string sku;                 // 0..64 bytes
  std::string category;            // 0..64 bytes
  std::int64_t qty = 1;            // >= 1, informational
  std::int64_t amount = 0;         // minor units, >= 0
};

struct request {
  opcode op = opcode::none;
  std::uint64_t id = 0;            // client correlation id, echoed in the response
  // Set by the decoder when this request (or batch element) is invalid; the
  // server answers it with this error without executing anything.
  errc error = errc::ok;
  std::string error_message;

  // hello
  std::uint32_t version = 0;
  std::string client_name;
  // enroll / earn / redeem / balance
  std::uint64_t member = 0;        // 1 .. 2^56-1
  std::string brand;               // brand code (enroll, earn)
  std::string txn;                 // client txn id, 1..64 bytes (earn, redeem)
  std::int64_t amount = 0;         // earn: minor currency units, > 0
  std::string currency;            // earn: ISO 4217 code
  std::uint64_t occurred_at_us = 0;// earn: microseconds since Unix epoch
  std::int64_t points = 0;         // redeem, hold, transfer: > 0; adjust: != 0; capture: 0 = all
  // issue 3
  std::string key;                 // hello: admin key (optional)
  std::string alias;               // any member op: instead of `member`; link_alias: the alias
  std::vector<item> items;         // earn / refund line items (optional)
  std::string channel, store;      // earn / event: where (optional, <= 64 bytes)
  std::string event;               // event: the event kind (<= 64 bytes)
  std::uint64_t ttl_s = 0;         // hold: lifetime in seconds, 0 = program default
  std::uint64_t hold = 0;          // capture / release: the hold id
  std::string reward;              // redeem_reward: reward code
  std::string ref;                 // refund: txn id of the earn; reverse_redemption: of the redemption
  std::string reason;              // adjust, block, unblock: why (required, 1..200 bytes)
  std::uint64_t to = 0;            // transfer: receiving member
  std::uint64_t before = 0;        // history: page below this seq (0 = newest)
  std::uint32_t limit = 0;         // history: entries per page (0 = 20, max 100)
  std::uint64_t as_of_us = 0;      // expire: as-of instant (0 = now)
  bool has_member = false;         // decoder: `member` was given (expire without one sweeps all)
  // issue 4
  std::string partner;             // partner_earn / partner_burn / settlement: partner code
  std::uint64_t from_us = 0;       // activity / settlement: period start (commit time, inclusive; 0 = the beginning)
  std::uint64_t to_us = 0;         // activity / settlement: period end (exclusive; 0 = now)
  // issue 19 item 1
  std::uint64_t household = 0;     // household_join / household_dissolve / household: the household (1 .. 2^56-1)
  std::uint64_t after = 0;         // settlement: page after this seq (0 = from the period's start)
  // issue 6
  std::string path;                // backup: absolute directory on the engine's host (absent or empty)
  // issue 17: cluster_add / cluster_remove
  std::uint64_t node_id = 0;       // the node added or removed (1 ...)
  std::string raft_address;        // cluster_add: its Raft transport, host:port
  std::string client_address;      // cluster_add: where its clients connect, host:port
  // issue 7
  std::uint32_t consent_mask = 0;  // consent: the channels it sets (bits of config/consent.hpp)
  std::uint32_t consent_values = 0;// consent: their new values (bits within consent_mask)
  std::string source;              // consent: where the member gave it (1..64 bytes)
  std::uint64_t from_seq = 0;      // subscribe: first seq to stream (0 = the next entry committed);
                                   // journal: first seq of the page (0 = 1); on the wire `from`
  std::uint32_t event_types = 0;   // subscribe: types to stream (bits of event_type_names; 0 = every type)
  std::uint32_t consent_filter = 0;// subscribe: only members who consented to this channel (one bit; 0 = any)
  // report (brand, from_us, to_us as for activity; brand optional)
  std::uint32_t active_days = 0;   // activity window in days, 1..3650 (0 = absent = 90)
  std::uint32_t top = 0;           // top earners per brand, 1..100 (0 = absent = 10)
  // bulk export
  // batch
  std::vector<request> ops;
};

struct verify_result {
  bool valid = false;
  std::uint64_t entries = 0, postings = 0, accounts = 0, members = 0, txn_ids = 0;
  std::vector<std::string> problems;
};

// One earn rule line of an earn / event / refund / enroll answer.
struct line {
  std::string kind;                // "base", "tier" or "rule"
  std::string rule;                // rule code ("" for base and tier)
  std::int64_t points = 0;         // negative in a refund (clawback)
  std::int64_t amount = 0;         // matched amount (minor units); negative in a refund
};

// What became of one purchase rule in an earn or a quote (issue 19 item 6;
// docs/PROTOCOL.md, earn: `rules`).
struct rule_outcome {
  std::string rule;                // rule code
  bool won = false;                // it gave the earn's points of its line
  std::int64_t points = 0;         // given (won) or offered (outscored); 0 otherwise
  std::string why;                 // counted, best, outscored, not_matched, no_points, uses_max,
                                   // member_cap, budget_total, budget_day, budget_month
  std::string by;                  // outscored: the winning rule's code; "" otherwise
};

// One journal entry as `history` shows it.
struct history_entry {
  std::uint64_t seq = 0;
  std::string kind;                // entry kind name (docs/PROTOCOL.md)
  std::string txn;                 // client txn id ("" for enroll)
  std::uint64_t occurred_at_us = 0, committed_at_us = 0;
  std::int64_t points = 0;         // signed change of this member's account
  std::int64_t balance = 0;        // the entry's member's account after it (0 for a counterparty view)
  std::int64_t amount = 0;
  std::string brand;
  std::uint64_t ref = 0;           // referenced entry seq
  std::uint64_t counterparty = 0;  // the other member of a transfer
  std::string partner;             // partner entries: the partner code ("" for others)
};

// One settle record as responses show it: for points that crossed between
// two parties of the coalition, the payer owes the payee `amount`.
// Parties are named "brand:CODE" or "partner:CODE" ("brand:ID" /
// "partner:ID" once no longer in the program).
struct settlement_move {
  std::string payer, payee;
  std::int64_t points = 0;         // > 0
  std::int64_t amount = 0;         // minor units, > 0: floor(points x rate)
  std::string rate;                // "num/den" minor units per point
  bool reversal = false;           // undoes an earlier record: the amount goes back to the payer
};

// liability: one brand now.
struct liability_row {
  std::string brand;
  std::int64_t issued = 0;         // points issued, net of clawbacks (all time)
  std::int64_t redeemed = 0;       // points of the brand spent anywhere, net of reversals
  std::int64_t expired = 0;        // breakage
  std::int64_t outstanding = 0;    // issued - redeemed - expired
  std::string cost_per_point;      // "num/den" minor units
  std::int64_t liability = 0;      // minor units: floor(outstanding x cost_per_point)
  std::int64_t settlement = 0;     // minor units the coalition owes the brand (negative: the brand owes)
};

// activity: one brand over a period.
struct activity_result {
  std::string brand;
  std::uint64_t from_us = 0, to_us = 0, first_seq = 0, last_seq = 0;
  std::int64_t issued = 0, refunded = 0, redeemed = 0, reversed = 0, expired = 0;  // points moved in the period
  std::int64_t opening_outstanding = 0, closing_outstanding = 0;  // points, before / after the period
  std::int64_t closing_liability = 0;  // minor units, at the current cost per point
  std::int64_t settlement = 0;     // minor units: change of what the coalition owes the brand
};

// settlement: one party over a period.
struct statement_row {
  std::uint64_t seq = 0, committed_at_us = 0, member = 0;
  std::string kind;                // entry kind
  std::string txn;
  std::string counterparty;        // the other party
  std::int64_t points = 0;         // signed like due
  std::int64_t due = 0;            // minor units: + the program owes the party more, - the party owes more
  std::string rate;
  bool reversal = false;
};

struct statement_result {
  std::string party;               // "brand:CODE" or "partner:CODE"
  std::uint64_t from_us = 0, to_us = 0, first_seq = 0, last_seq = 0;
  std::int64_t opening = 0, closing = 0;  // minor units owed to the party before / after the period
  std::int64_t net = 0;            // sum of due over the period's lines == closing - opening
  std::int64_t points = 0;         // sum of the lines' points
  std::uint64_t line_count = 0;    // lines in the whole period
  std::vector<statement_row> lines;  // this page
  std::uint64_t next_after = 0;    // pass as `after` for the next page; 0 = no more
};

// One lot of a points_expiring event.
struct expiring_lot {
  std::string brand;               // the brand that issued the points
  std::int64_t points = 0;
  std::uint64_t expires_at_us = 0;
};

// One event of the stream (docs/PROTOCOL.md, "subscribe"). An entry of the
// journal gives one event, or two when it also changed the member's tier.
struct stream_event {
  std::uint64_t seq = 0;           // the journal entry's seq: resume with from = seq + 1
  std::string type;                // event_type_names
  std::string entry;               // the entry's kind
  std::uint64_t member = 0;
  std::string brand;               // the entry's brand
  std::string txn;                 // client txn id ("" for entries the engine posted)
  std::int64_t points = 0;         // signed change of the member's points (points_expiring: the points)
  std::int64_t balance = 0;        // the member's balance after the entry
  std::uint64_t occurred_at_us = 0, committed_at_us = 0;
  std::uint32_t consents = 0;      // the member's consent as of the entry (bits; names on the wire)
  std::string tier;                // the member's tier after the entry
  std::string previous_tier;       // tier_changed: the tier before
  std::uint64_t counterparty = 0;  // points_transferred: the receiver
  std::string partner;             // partner entries
  std::int64_t amount = 0;         // earn / refund: minor units
  std::uint64_t ref = 0;           // the entry it acts on (refund -> earn, ...)
  std::uint64_t hold = 0;          // points_held / hold_released / hold_expired / a capture: the hold id
  std::uint32_t changed = 0;       // consent_changed: the channels the request set (bits)
  std::string source;              // consent_changed: where the member gave it
  std::vector<expiring_lot> expiring;  // points_expiring
  // tier_downgrade_warning: the tier (`tier`, the member's now) drops to
  // drops_to at drops_at_us unless `missing` more of the tier metric
  // qualifies before then
  std::string drops_to;
  std::uint64_t drops_at_us = 0;
  std::int64_t missing = 0;
  std::uint64_t household = 0;     // household_joined / household_left / household_dissolved
  // limit_exceeded: the limit (`limit`: earns, points_earned, ...; `window`:
  // hour or day, its bound) the refused request would have taken to
  // `reached`; `flagged`: this breach flagged the member
  std::string limit, window;
  std::int64_t reached = 0, bound = 0;
  bool flagged = false;
  std::string reason;              // member_blocked / member_unblocked: the admin's reason
};

// risk_report: one flagged or blocked member (docs/PROTOCOL.md, "risk_report").
struct risk_member {
  std::uint64_t member = 0;
  bool flagged = false, blocked = false;
  std::uint32_t breaches = 0;      // limit breaches since the member was last unblocked
  std::uint64_t blocked_at_us = 0; // 0: not blocked
  std::string reason;              // the block's reason ("" when not blocked)
};

// report: one brand over a period (docs/PROTOCOL.md, "report").
struct tier_count {
  std::string tier;                // tier name ("#N" for an index the program no longer has)
  std::uint64_t members = 0;
};

struct top_earner {
  std::uint64_t member = 0;
  std::int64_t points = 0;         // earned for the brand in the period, net of refunds
};

struct report_row {
  std::string brand;
  // as activity_result: points moved in the period, outstanding before / after
  std::int64_t issued = 0, refunded = 0, redeemed = 0, reversed = 0, expired = 0;
  std::int64_t opening_outstanding = 0, closing_outstanding = 0;
  std::string cost_per_point;      // "num/den" minor units, as in the program now
  std::int64_t closing_liability = 0;   // minor units: floor(closing_outstanding x cost_per_point)
  std::int64_t settlement = 0;          // minor units: change of what the coalition owes the brand
  std::int64_t settlement_closing = 0;  // minor units: what it owes the brand after the period
  std::string redemption_rate;     // "redeemed/issued", exact
  std::int64_t redemption_rate_bp = 0;  // floor(redeemed x 10000 / issued); 0 when issued is 0
  std::uint64_t members = 0, active_members = 0;
  std::int64_t active_rate_bp = 0;      // floor(active_members x 10000 / members); 0 without members
  std::vector<tier_count> tiers;   // every tier of the program, in order
  std::vector<top_earner> top;     // most points first, ties by member id
};

struct report_result {
  std::uint64_t from_us = 0, to_us = 0, first_seq = 0, last_seq = 0;  // the period, as for activity
  std::uint32_t active_days = 0;
  std::uint64_t active_from_us = 0;  // the activity window: [active_from_us, to_us)
  std::vector<report_row> brands;
};

// One posting of an entry as `explain` shows it.
struct move {
  std::string account;             // "member:42", "brand_issued:acme", ...
  std::string side;                // "debit" or "credit"
  std::int64_t amount = 0;         // points, > 0
};

// One journal entry as `journal` shows it (a finance export): the entry as
// `history` shows it for its own member, who posted it, and everything it
// moved. entry.points and entry.balance are the member's; entry.counterparty
// the transfer's receiver.
struct journal_entry {
  history_entry entry;
  std::uint64_t member = 0;
  std::uint32_t key_id = 0;        // API key that posted it (0 = the engine / no keys)
  std::uint32_t policy_version = 0;
  std::vector<move> moves;         // its postings
  std::vector<settlement_move> settlements;
  std::vector<line> lines;         // its rule lines
};

// A server of a cluster's configuration (cluster_status).
struct cluster_server {
  std::uint64_t id = 0;
  std::string raft;    // its Raft transport, host:port
  std::string client;  // where its clients connect, host:port ("" unknown)
  std::string role;    // voter, standby or spare
  std::uint64_t match_index = 0;  // the leader's view: the highest log index it holds (0 elsewhere)
  std::uint64_t lag = 0;          // the leader's view: entries behind the leader's log
};

// One member of a household as `household` shows it.
struct household_member {
  std::uint64_t member = 0;
  std::int64_t available = 0;  // its available points
};

struct response {
  opcode op = opcode::none;        // which operation this answers (selects fields)
  std::uint64_t id = 0;
  errc code = errc::ok;
  std::string message;             // error only
  std::string leader;              // not_leader: the leader's client address, host:port ("" = none known)
  // hello
  std::uint32_t version = 0;
  std::string server;
  std::uint32_t frame_bytes_max = 0, inflight_max = 0, batch_ops_max = 0;
  // enroll / earn / redeem / balance
  std::uint64_t seq = 0;
  std::uint64_t member = 0;
  std::int64_t points = 0, balance = 0, lifetime = 0;
  std::string tier;
  std::string brand;
  bool replayed = false;
  // issue 3
  std::vector<line> lines;         // earn / event / refund / enroll
  std::vector<rule_outcome> rules; // earn (when the program explains earns) / quote
  std::int64_t available = 0, pending = 0, held = 0, debt = 0;   // balance
  std::string next_tier;           // balance: "" at the top tier
  std::int64_t qualifying = 0;     // balance: tier metric over the window now
  std::int64_t to_next_tier = 0;   // balance: metric still missing for next_tier
  std::int64_t next_expiry_points = 0;
  std::uint64_t next_expiry_at_us = 0;
  // balance: the first instant the tier drops if nothing else happens (0 =
  // it does not drop without a change), the tier then, and the metric the
  // current tier lacks at that instant (actors/policy.hpp tier_outlook)
  std::uint64_t tier_holds_until_us = 0;
  std::string tier_drops_to;
  std::int64_t tier_keep_missing = 0;
  std::uint64_t hold = 0;          // hold: the new hold id
  std::uint64_t expires_at_us = 0; // hold
  std::string reward;              // redeem_reward
  std::vector<history_entry> entries;  // history
  std::uint64_t next_before = 0;   // history: pass as `before` for the next page; 0 = no more
  std::int64_t expired = 0;        // expire: points expired
  std::uint64_t members = 0;       // expire: members looked at
  // explain (also entries[0] and lines)
  std::uint32_t key_id = 0;        // API key that posted the entry (0 = the engine / no keys)
  std::string key_name;            // its name in the engine's settings, if still configured
  std::uint32_t policy_version = 0;
  std::vector<move> moves;
  // issue 4: partner entries, money between parties, reports
  std::string partner;             // partner_earn / partner_burn / explain of a partner entry
  std::vector<settlement_move> settlements;  // any posting op / explain: settle records of the entry
  std::vector<liability_row> liabilities;    // liability
  activity_result activity;                  // activity
  statement_result statement;                // settlement
  report_result report;                      // report
  // issue 19 item 2
  bool blocked = false, flagged = false;     // balance: the member's risk state
  std::uint32_t breaches = 0;                // balance: limit breaches since last unblocked
  std::vector<risk_member> risk;             // risk_report (next: pass as `after` for the next page; 0 = no more)
  // backup (also seq: the newest entry in the copy)
  std::string file;                // the copy's data file, on the engine's host
  std::uint64_t bytes = 0;         // its size
  // issue 7
  std::uint32_t consents = 0;      // balance / consent: the channels the member consents to (bits; names on the wire)
  std::vector<stream_event> events;  // subscribe
  std::uint64_t next = 0;          // subscribe: the seq to resume from after this frame;
                                   // journal: pass as `from` for the next page (0 = the page reached the newest entry)
  // quote (also points, balance and tier: the member's now; lines; next_tier,
  // qualifying and to_next_tier: after the earn)
  std::int64_t balance_after = 0;  // balance the earn would leave
  std::string tier_after;          // tier the earn would leave
  bool quoted = false;             // true: a quote, nothing was posted
  // A sandbox key's answer (docs/PROTOCOL.md, "Sandbox keys"): every answer
  // to a posting operation or a batch, ok or error, and hello; nothing was
  // posted.
  bool dry_run = false;
  // journal
  std::vector<journal_entry> journal;  // this page, seq ascending
  std::uint64_t last_seq = 0;      // the newest committed entry when the page was read
  // verify
  verify_result verify;
  // stats: name -> value, in the order the server lists them (also
  // cluster_status's numbers)
  std::vector<std::pair<std::string, std::uint64_t>> stats;
  // cluster_status (docs/PROTOCOL.md): this node's role, and the servers
  // of the cluster's configuration as it sees them (the leader's address
  // in `leader`)
  std::string role;
  std::vector<cluster_server> nodes;
  // issue 19 item 1: household operations; balance of a household member
  std::uint64_t household = 0;
  std::int64_t household_available = 0;   // the members' available points together
  std::vector<household_member> household_members;  // household: in the order they joined
  // batch
  std::vector<response> results;

  [[nodiscard]] bool ok() const noexcept { return code == errc::ok; }
};

} // namespace loyalty::io

// msgpack encoding and decoding of protocol frames (docs/PROTOCOL.md).
#include "io/wire/codec.hpp"

#include "config/consent.hpp"

#include <msgpack.hpp>

#include <algorithm>
#include <array>
#include <cassert>
#include <cstring>
#include <limits>

namespace loyalty::io {

namespace {

constexpr std::uint64_t member_id_max = (std::uint64_t{1} << 56) - 1;
constexpr std::uint64_t u64_max = std::numeric_limits<std::uint64_t>::max();


// Bounds applied while unpacking, before any field is looked at: a frame
// cannot make the decoder allocate much more than its own size.
const msgpack::unpack_limit& unpack_limits() {
  static const msgpack::unpack_limit lim(
    /*array*/ 100000, /*map*/ 256, /*str*/ limits::frame_bytes_max, /*bin*/ limits::frame_bytes_max,
    /*ext*/ 0, /*depth*/ 8);
  return lim;
}

bool is_str(const msgpack::object& o, std::string_view s) {
  return o.type == msgpack::type::STR && std::string_view(o.via.str.ptr, o.via.str.size) == s;
}

// Reads and validates the fields of one request map.
class reader {
public:
  explicit reader(request& r) : r_(r) {}

  bool failed() const { return r_.error != errc::ok; }

  void fail(errc code, std::string msg) {
    if (failed())
      return;
    r_.error = code;
    r_.error_message = std::move(msg);
  }

  void index(const msgpack::object& map) {
    const auto& m = map.via.map;
    for (std::uint32_t i = 0; i < m.size; ++i) {
      const auto& k = m.ptr[i].key;
      if (k.type != msgpack::type::STR)
        continue;  // unknown keys are ignored
      std::string_view name(k.via.str.ptr, k.via.str.size);
      if (name.size() >= by_length.size())
        continue;
      for (const field* f = by_length[name.size()]; *f != f_count; ++f)
        if (name == field_names[*f]) {
          fields_[*f] = &m.ptr[i].val;
          break;
        }
    }
  }

  enum field : std::size_t { f_op, f_id, f_version, f_client, f_member, f_brand, f_txn, f_amount,
                             f_currency, f_occurred_at, f_points, f_ops,
                             f_key, f_alias, f_items, f_channel, f_store, f_event, f_ttl_s, f_hold,
                             f_reward, f_ref, f_reason, f_to, f_before, f_limit, f_as_of,
                             f_partner, f_from_us, f_to_us, f_after, f_path,
                             f_consents, f_source, f_from, f_types, f_consent, f_active_days, f_top,
                             f_node, f_raft, f_address, f_household, f_count };
  static constexpr std::array<std::string_view, f_count> field_names{
    "op", "id", "version", "client", "member", "brand", "txn", "amount", "currency", "occurred_at", "points", "ops",
    "key", "alias", "items", "channel", "store", "event", "ttl_s", "hold",
    "reward", "ref", "reason", "to", "before", "limit", "as_of_us",
    "partner", "from_us", "to_us", "after", "path",
    "consents", "source", "from", "types", "consent", "active_days", "top",
    "node", "raft", "address", "household"};

  // Field ids by the length of their name (each list ends with f_count), so
  // a key is compared only with names of its own length.
  static constexpr std::size_t name_bytes_max = 11;
  using length_list = std::array<field, 12>;
  static constexpr std::array<length_list, name_bytes_max + 1> by_length_lists = [] {
    std::array<length_list, name_bytes_max + 1> t{};
    for (auto& l : t)
      l.fill(f_count);
    for (std::size_t f = 0; f < f_count; ++f) {
      auto& l = t[field_names[f].size()];
      std::size_t n = 0;
      while (l[n] != f_count)
        ++n;
      l[n] = static_cast<field>(f);  // a list overflowing its 11 slots fails to compile
    }
    return t;
  }();
  static constexpr std::array<const field*, name_bytes_max + 1> by_length = [] {
    std::array<const field*, name_bytes_max + 1> p{};
    for (std::size_t i = 0; i < p.size(); ++i)
      p[i] = by_length_lists[i].data();
    return p;
  }();

  bool has(field f) const { return fields_[f] != nullptr; }

  // "field 'name'", for error messages: built only when one is reported.
  static std::string label(field f) { return "field '" + std::string(field_names[f]) + "'"; }

  const msgpack::object* get(field f, bool required) {
    auto* o = fields_[f];
    if (o == nullptr && required)
      fail(errc::missing_field, std::string("field '") + std::string(field_names[f]) + "' is missing");
    return o;
  }

  bool u64(field f, std::uint64_t& out, bool required = true) {
    auto* o = get(f, required);
    if (o == nullptr)
      return false;
    if (o->type == msgpack::type::POSITIVE_INTEGER) {
      out = o->via.u64;
      return true;
    }
    if (o->type == msgpack::type::NEGATIVE_INTEGER)
      fail(errc::invalid_argument, std::string("field '") + std::string(field_names[f]) + "' must not be negative");
    else
      fail(errc::wrong_type, std::string("field '") + std::string(field_names[f]) + "' must be an unsigned integer");
    return false;
  }

  // Amounts and points: msgpack integers, > 0, <= INT64_MAX.
  bool amount(field f, std::int64_t& out, bool required = true) {
    auto* o = get(f, required);
    if (o == nullptr)
      return false;
    if (o->type == msgpack::type::NEGATIVE_INTEGER) {
      fail(errc::invalid_amount, label(f) + " must be positive");
      return false;
    }
    if (o->type != msgpack::type::POSITIVE_INTEGER) {
      fail(errc::wrong_type, label(f) + " must be an integer");
      return false;
    }
    if (o->via.u64 > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      fail(errc::amount_overflow, label(f) + " is above 2^63-1");
      return false;
    }
    if (o->via.u64 == 0) {
      fail(errc::invalid_amount, label(f) + " must be positive");
      return false;
    }
    out = static_cast<std::int64_t>(o->via.u64);
    return true;
  }

  // An optional amount that may be 0 (partner_earn's spend): 0 .. INT64_MAX.
  void amount_or_zero(field f, std::int64_t& out) {
    auto* o = get(f, false);
    if (o == nullptr)
      return;
    if (o->type == msgpack::type::NEGATIVE_INTEGER)
      fail(errc::invalid_amount, label(f) + " must not be negative");
    else if (o->type != msgpack::type::POSITIVE_INTEGER)
      fail(errc::wrong_type, label(f) + " must be an integer");
    else if (o->via.u64 > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      fail(errc::amount_overflow, label(f) + " is above 2^63-1");
    else
      out = static_cast<std::int64_t>(o->via.u64);
  }

  // activity / settlement: from_us and to_us, both optional; a period that
  // ends (to_us != 0) where or before it starts is invalid_argument.
  void period() {
    u64(f_from_us, r_.from_us, false);
    u64(f_to_us, r_.to_us, false);
    if (!failed() && r_.to_us != 0 && r_.from_us >= r_.to_us)
      fail(errc::invalid_argument, "field 'from_us' must be below 'to_us' (or 'to_us' 0 = now)");
  }

  bool str(field f, std::string& out, std::size_t max_bytes, bool required = true, bool allow_bin = false) {
    auto* o = get(f, required);
    if (o == nullptr)
      return false;
    if (o->type == msgpack::type::STR)
      out.assign(o->via.str.ptr, o->via.str.size);
    else if (allow_bin && o->type == msgpack::type::BIN)
      out.assign(o->via.bin.ptr, o->via.bin.size);
    else {
      fail(errc::wrong_type, label(f) + (allow_bin ? " must be a string or binary" : " must be a string"));
      return false;
    }
    if (out.empty() || out.size() > max_bytes) {
      fail(errc::invalid_argument, label(f) + " must be 1 to " + std::to_string(max_bytes) + " bytes");
      return false;
    }
    return true;
  }

  void member() {
    if (!u64(f_member, r_.member))
      return;
    r_.has_member = true;
    if (r_.member == 0 || r_.member > member_id_max)
      fail(errc::invalid_argument, "field 'member' must be between 1 and 2^56-1");
  }

  // A member op addresses its member by id or by alias, never both. Neither
  // is missing_field 'member' unless the member is optional (expire).
  void member_or_alias(bool required = true) {
    if (has(f_member) && has(f_alias)) {
      fail(errc::invalid_argument, "give either 'member' or 'alias', not both");
      return;
    }
    if (has(f_alias))
      str(f_alias, r_.alias, code_bytes_max);
    else if (required || has(f_member))
      member();
  }

  void txn() { str(f_txn, r_.txn, limits::txn_id_bytes_max, true, true); }

  // An optional string that may be empty (empty = not given).
  void opt_str(field f, std::string& out, std::size_t max_bytes) {
    auto* o = get(f, false);
    if (o == nullptr)
      return;
    if (o->type != msgpack::type::STR) {
      fail(errc::wrong_type, std::string("field '") + std::string(field_names[f]) + "' must be a string");
      return;
    }
    if (o->via.str.size > max_bytes) {
      fail(errc::invalid_argument,
           std::string("field '") + std::string(field_names[f]) + "' must be at most " + std::to_string(max_bytes) + " bytes");
      return;
    }
    out.assign(o->via.str.ptr, o->via.str.size);
  }

  // An unsigned integer in [lo, hi].
  void u64_in(field f, std::uint64_t& out, std::uint64_t lo, std::uint64_t hi, bool required,
              const char* range) {
    if (!u64(f, out, required))
      return;
    if (out < lo || out > hi)
      fail(errc::invalid_argument, std::string("field '") + std::string(field_names[f]) + "' must be " + range);
  }

  // adjust's points: any int64 but 0 and INT64_MIN (whose negation does not fit).
  void signed_points(field f, std::int64_t& out) {
    auto* o = get(f, true);
    if (o == nullptr)
      return;
    if (o->type == msgpack::type::POSITIVE_INTEGER) {
      if (o->via.u64 > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        fail(errc::amount_overflow, label(f) + " is above 2^63-1");
        return;
      }
      out = static_cast<std::int64_t>(o->via.u64);
    } else if (o->type == msgpack::type::NEGATIVE_INTEGER) {
      out = o->via.i64;
    } else {
      fail(errc::wrong_type, label(f) + " must be an integer");
      return;
    }
    if (out == 0 || out == std::numeric_limits<std::int64_t>::min())
      fail(errc::invalid_amount, label(f) + " must be non-zero and above -2^63");
  }

  // Line items: an array of 1..items_max maps {sku, category, qty, amount}.
  // Returns false if absent or invalid.
  bool items(std::vector<item>& out) {
    auto* o = get(f_items, false);
    if (o == nullptr)
      return false;
    if (o->type != msgpack::type::ARRAY) {
      fail(errc::wrong_type, "field 'items' must be an array");
      return false;
    }
    const auto& a = o->via.array;
    if (a.size == 0 || a.size > items_max) {
      fail(errc::invalid_argument, "field 'items' must hold 1 to " + std::to_string(items_max) + " items");
      return false;
    }
    out.resize(a.size);
    for (std::uint32_t i = 0; i < a.size && !failed(); ++i)
      one_item(a.ptr[i], out[i], i);
    return !failed();
  }

  // Checks that item amounts sum to `amount` exactly (amounts are >= 0, so
  // stopping once the sum passes `amount` avoids any overflow).
  void items_sum_to(const std::vector<item>& items, std::int64_t amount) {
    std::int64_t sum = 0;
    for (const auto& it : items) {
      if (it.amount > amount - sum) {
        fail(errc::invalid_argument, "the item amounts add up to more than 'amount'");
        return;
      }
      sum += it.amount;
    }
    if (sum != amount)
      fail(errc::invalid_argument, "the item amounts add up to less than 'amount'");
  }

  // consent's `consents`: a map of 1..7 channel names to booleans.
  void consents() {
    auto* o = get(f_consents, true);
    if (o == nullptr)
      return;
    if (o->type != msgpack::type::MAP) {
      fail(errc::wrong_type, "field 'consents' must be a map of channel names to booleans");
      return;
    }
    if (o->via.map.size == 0) {
      fail(errc::invalid_argument, "field 'consents' must name at least one channel");
      return;
    }
    for (std::uint32_t i = 0; i < o->via.map.size && !failed(); ++i) {
      const auto& k = o->via.map.ptr[i].key;
      const auto& v = o->via.map.ptr[i].val;
      const std::uint32_t bit =
        k.type == msgpack::type::STR ? consent_bit(std::string_view(k.via.str.ptr, k.via.str.size)) : 0;
      if (bit == 0)
        fail(errc::invalid_argument, "field 'consents' names an unknown channel" + channel_list());
      else if ((r_.consent_mask & bit) != 0)
        fail(errc::invalid_argument, "field 'consents' names a channel twice");
      else if (v.type != msgpack::type::BOOLEAN)
        fail(errc::wrong_type, "the values of field 'consents' must be booleans");
      else {
        r_.consent_mask |= bit;
        if (v.via.boolean)
          r_.consent_values |= bit;
      }
    }
  }

  // subscribe's `consent`: one channel name.
  void consent_filter() {
    std::string name;
    if (!get(f_consent, false) || !str(f_consent, name, code_bytes_max))
      return;
    r_.consent_filter = consent_bit(name);
    if (r_.consent_filter == 0)
      fail(errc::invalid_argument, "field 'consent' names an unknown channel" + channel_list());
  }

  // subscribe's `types`: an array of 1..15 event type names.
  void event_types() {
    auto* o = get(f_types, false);
    if (o == nullptr)
      return;
    if (o->type != msgpack::type::ARRAY) {
      fail(errc::wrong_type, "field 'types' must be an array of event type names");
      return;
    }
    if (o->via.array.size == 0 || o->via.array.size > event_type_names.size()) {
      fail(errc::invalid_argument, "field 'types' must hold 1 to " + std::to_string(event_type_names.size()) +
                                     " event type names");
      return;
    }
    for (std::uint32_t i = 0; i < o->via.array.size && !failed(); ++i) {
      const auto& v = o->via.array.ptr[i];
      if (v.type != msgpack::type::STR) {
        fail(errc::wrong_type, "field 'types' must be an array of strings");
        return;
      }
      const std::string_view name(v.via.str.ptr, v.via.str.size);
      std::uint32_t bit = 0;
      for (std::size_t t = 0; t < event_type_names.size(); ++t)
        if (event_type_names[t] == name)
          bit = 1u << t;
      if (bit == 0)
        fail(errc::invalid_argument, "field 'types' names an unknown event type '" +
                                       std::string(name.substr(0, code_bytes_max)) + "'");
      r_.event_types |= bit;
    }
  }

  void currency() {
    if (!str(f_currency, r_.currency, 3))
      return;
    bool ok = r_.currency.size() == 3;
    for (char c : r_.currency)
      ok = ok && c >= 'A' && c <= 'Z';
    if (!ok)
      fail(errc::invalid_argument, "field 'currency' must be a 3-letter ISO 4217 code in capitals");
  }

private:
  static std::string channel_list() {
    std::string s = " (channels:";
    for (auto c : consent_channel_names)
      s.append(" ").append(c);
    return s + ")";
  }

  // Messages name the item as items[i] (built only on failure).
  void one_item(const msgpack::object& o, item& it, std::uint32_t index) {
    const auto where = [index] { return "items[" + std::to_string(index) + "]"; };
    if (o.type != msgpack::type::MAP) {
      fail(errc::wrong_type, where() + " must be a map");
      return;
    }
    bool have_amount = false;
    for (std::uint32_t j = 0; j < o.via.map.size && !failed(); ++j) {
      const auto& k = o.via.map.ptr[j].key;
      const auto& v = o.via.map.ptr[j].val;
      if (is_str(k, "sku") || is_str(k, "category")) {
        std::string& s = is_str(k, "sku") ? it.sku : it.category;
        const char* name = is_str(k, "sku") ? "sku" : "category";
        if (v.type != msgpack::type::STR)
          fail(errc::wrong_type, where() + "." + name + " must be a string");
        else if (v.via.str.size > code_bytes_max)
          fail(errc::invalid_argument, where() + "." + name + " must be at most " + std::to_string(code_bytes_max) + " bytes");
        else
          s.assign(v.via.str.ptr, v.via.str.size);
      } else if (is_str(k, "qty")) {
        if (v.type == msgpack::type::NEGATIVE_INTEGER)
          fail(errc::invalid_argument, where() + ".qty must be at least 1");
        else if (v.type != msgpack::type::POSITIVE_INTEGER)
          fail(errc::wrong_type, where() + ".qty must be an integer");
        else if (v.via.u64 == 0 || v.via.u64 > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
          fail(errc::invalid_argument, where() + ".qty must be between 1 and 2^63-1");
        else
          it.qty = static_cast<std::int64_t>(v.via.u64);
      } else if (is_str(k, "amount")) {
        have_amount = true;
        if (v.type == msgpack::type::NEGATIVE_INTEGER)
          fail(errc::invalid_amount, where() + ".amount must not be negative");
        else if (v.type != msgpack::type::POSITIVE_INTEGER)
          fail(errc::wrong_type, where() + ".amount must be an integer");
        else if (v.via.u64 > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
          fail(errc::amount_overflow, where() + ".amount is above 2^63-1");
        else
          it.amount = static_cast<std::int64_t>(v.via.u64);
      }
    }
    if (!have_amount)
      fail(errc::missing_field, where() + ".amount is missing");
  }

  request& r_;
  std::array<const msgpack::object*, f_count> fields_{};
};

void decode_map(const msgpack::object& o, request& r, bool in_batch);

// The purchase of an earn or a quote: everything but the txn id.
void purchase_fields(reader& rd, request& r) {
  using f = reader::field;
  rd.member_or_alias();
  rd.str(f::f_brand, r.brand, 64);
  rd.amount(f::f_amount, r.amount);
  rd.currency();
  rd.u64(f::f_occurred_at, r.occurred_at_us, false);  // absent = the engine's clock when it gets the request
  if (rd.items(r.items))
    rd.items_sum_to(r.items, r.amount);
  rd.opt_str(f::f_channel, r.channel, code_bytes_max);
  rd.opt_str(f::f_store, r.store, code_bytes_max);
}

void decode_fields(reader& rd, request& r) {
  using f = reader::field;
  switch (r.op) {
    case opcode::hello: {
      std::uint64_t v = 0;
      if (rd.u64(f::f_version, v))
        r.version = v > 0xFFFFFFFFu ? 0xFFFFFFFFu : static_cast<std::uint32_t>(v);
      if (rd.get(f::f_client, false))
        rd.str(f::f_client, r.client_name, 64);
      rd.opt_str(f::f_key, r.key, admin_key_bytes_max);
      break;
    }
    case opcode::enroll:
      // Before `member`: an alias alone is the mistake, not a missing member.
      if (rd.has(f::f_alias)) {
        rd.fail(errc::invalid_argument, "enroll takes 'member', not 'alias' (link an alias after enrolling)");
        break;
      }
      rd.member();
      rd.str(f::f_brand, r.brand, 64);
      break;
    case opcode::earn:
      rd.txn();
      purchase_fields(rd, r);
      break;
    case opcode::quote:
      // Nothing is posted, so there is nothing a txn id could make idempotent.
      if (rd.has(f::f_txn))
        rd.fail(errc::invalid_argument, "a quote posts nothing and takes no 'txn'");
      purchase_fields(rd, r);
      break;
    case opcode::redeem:
      rd.txn();
      rd.member_or_alias();
      rd.amount(f::f_points, r.points);
      if (rd.has(f::f_brand))
        rd.str(f::f_brand, r.brand, code_bytes_max);
      break;
    case opcode::balance:
      rd.member_or_alias();
      break;
    case opcode::event:
      rd.txn();
      rd.member_or_alias();
      rd.str(f::f_event, r.event, code_bytes_max);
      if (rd.has(f::f_brand))
        rd.str(f::f_brand, r.brand, code_bytes_max);
      rd.opt_str(f::f_channel, r.channel, code_bytes_max);
      rd.opt_str(f::f_store, r.store, code_bytes_max);
      rd.u64(f::f_occurred_at, r.occurred_at_us, false);
      break;
    case opcode::hold:
      rd.txn();
      rd.member_or_alias();
      rd.amount(f::f_points, r.points);
      if (rd.has(f::f_brand))
        rd.str(f::f_brand, r.brand, code_bytes_max);
      rd.u64_in(f::f_ttl_s, r.ttl_s, 1, u64_max, false, "at least 1");
      break;
    case opcode::capture:
    case opcode::release:
      rd.txn();
      rd.member_or_alias();
      rd.u64_in(f::f_hold, r.hold, 1, u64_max, true, "at least 1");
      if (r.op == opcode::capture)
        rd.amount(f::f_points, r.points, false);
      break;
    case opcode::redeem_reward:
      rd.txn();
      rd.member_or_alias();
      rd.str(f::f_reward, r.reward, code_bytes_max);
      break;
    case opcode::refund:
      rd.txn();
      rd.member_or_alias();
      rd.str(f::f_ref, r.ref, limits::txn_id_bytes_max, true, true);
      if (rd.has(f::f_amount) && rd.has(f::f_items)) {
        rd.fail(errc::invalid_argument, "a refund gives 'amount' or 'items', not both");
        break;
      }
      rd.amount(f::f_amount, r.amount, false);
      rd.items(r.items);
      rd.u64(f::f_occurred_at, r.occurred_at_us, false);
      break;
    case opcode::reverse_redemption:
    case opcode::release_pending:
      rd.txn();
      rd.member_or_alias();
      rd.str(f::f_ref, r.ref, limits::txn_id_bytes_max, true, true);
      break;
    case opcode::adjust:
      rd.txn();
      rd.member_or_alias();
      rd.signed_points(f::f_points, r.points);
      rd.str(f::f_reason, r.reason, reason_bytes_max);
      rd.str(f::f_brand, r.brand, code_bytes_max);
      break;
    case opcode::transfer:
      rd.txn();
      rd.member_or_alias();
      rd.u64_in(f::f_to, r.to, 1, member_id_max, true, "between 1 and 2^56-1");
      rd.amount(f::f_points, r.points);
      break;
    case opcode::link_alias:
      rd.txn();
      rd.member();
      rd.str(f::f_alias, r.alias, code_bytes_max);
      break;
    case opcode::household_join:
      rd.txn();
      rd.member_or_alias();
      rd.u64_in(f::f_household, r.household, 1, member_id_max, true, "between 1 and 2^56-1");
      break;
    case opcode::household_leave:
      rd.txn();
      rd.member_or_alias();
      break;
    case opcode::household_dissolve:
      rd.txn();
      rd.u64_in(f::f_household, r.household, 1, member_id_max, true, "between 1 and 2^56-1");
      break;
    case opcode::household:
      rd.u64_in(f::f_household, r.household, 1, member_id_max, true, "between 1 and 2^56-1");
      break;
    case opcode::erase:
      rd.txn();
      rd.member();
      rd.str(f::f_reason, r.reason, reason_bytes_max);
      break;
    case opcode::lookup:
      rd.str(f::f_alias, r.alias, code_bytes_max);
      break;
    case opcode::history: {
      rd.member_or_alias();
      rd.u64(f::f_before, r.before, false);
      std::uint64_t limit = 0;
      rd.u64_in(f::f_limit, limit, 1, history_limit_max, false, "between 1 and 100");
      r.limit = static_cast<std::uint32_t>(limit);
      break;
    }
    case opcode::expire:
      rd.member_or_alias(false);
      rd.u64(f::f_as_of, r.as_of_us, false);
      break;
    case opcode::explain:
      rd.txn();
      break;
    case opcode::reload:
      break;
    case opcode::partner_earn:
    case opcode::partner_burn:
      rd.txn();
      rd.member_or_alias();
      rd.str(f::f_partner, r.partner, code_bytes_max);
      rd.amount(f::f_points, r.points);
      if (r.op == opcode::partner_earn) {
        rd.amount_or_zero(f::f_amount, r.amount);
        rd.u64(f::f_occurred_at, r.occurred_at_us, false);
      }
      break;
    case opcode::liability:
      if (rd.has(f::f_brand))
        rd.str(f::f_brand, r.brand, code_bytes_max);
      break;
    case opcode::activity:
      rd.str(f::f_brand, r.brand, code_bytes_max);
      rd.period();
      break;
    case opcode::settlement: {
      // Exactly one party: a brand or a partner.
      if (rd.has(f::f_brand) && rd.has(f::f_partner)) {
        rd.fail(errc::invalid_argument, "give either 'brand' or 'partner', not both");
        break;
      }
      if (!rd.has(f::f_brand) && !rd.has(f::f_partner)) {
        rd.fail(errc::missing_field, "field 'brand' or 'partner' is missing");
        break;
      }
      if (rd.has(f::f_brand))
        rd.str(f::f_brand, r.brand, code_bytes_max);
      else
        rd.str(f::f_partner, r.partner, code_bytes_max);
      rd.period();
      rd.u64(f::f_after, r.after, false);
      std::uint64_t limit = 0;  // 0 (or absent) = statement_limit_default
      rd.u64_in(f::f_limit, limit, 0, statement_limit_max, false, "between 1 and 1000 (0 = 100)");
      r.limit = static_cast<std::uint32_t>(limit);
      break;
    }
    case opcode::block:
    case opcode::unblock:
      rd.txn();
      rd.member_or_alias();
      rd.str(f::f_reason, r.reason, reason_bytes_max);
      break;
    case opcode::risk_report: {
      rd.u64(f::f_after, r.after, false);
      std::uint64_t limit = 0;  // absent = risk_report_limit_default
      rd.u64_in(f::f_limit, limit, 1, risk_report_limit_max, false, "between 1 and 1000");
      r.limit = static_cast<std::uint32_t>(limit);
      break;
    }
    case opcode::consent:
      rd.txn();
      rd.member_or_alias();
      rd.consents();
      rd.str(f::f_source, r.source, code_bytes_max);
      rd.u64(f::f_occurred_at, r.occurred_at_us, false);
      break;
    case opcode::subscribe:
      rd.u64(f::f_from, r.from_seq, false);
      rd.event_types();
      rd.consent_filter();
      if (rd.has(f::f_brand))
        rd.str(f::f_brand, r.brand, code_bytes_max);
      break;
    case opcode::report: {
      if (rd.has(f::f_brand))
        rd.str(f::f_brand, r.brand, code_bytes_max);
      rd.period();
      std::uint64_t days = 0, top = 0;  // absent = the defaults
      rd.u64_in(f::f_active_days, days, 1, report_active_days_max, false, "between 1 and 3650");
      rd.u64_in(f::f_top, top, 1, report_top_max, false, "between 1 and 100");
      r.active_days = static_cast<std::uint32_t>(days);
      r.top = static_cast<std::uint32_t>(top);
      break;
    }
    case opcode::verify:
    case opcode::stats:
    case opcode::cluster_status:
      break;
    case opcode::cluster_add:
    case opcode::cluster_remove:
      rd.u64_in(f::f_node, r.node_id, 1, cluster_node_id_max, true, "between 1 and 1000000");
      if (r.op == opcode::cluster_remove)
        break;
      for (auto [f, out] : {std::pair{f::f_raft, &r.raft_address}, std::pair{f::f_address, &r.client_address}})
        if (rd.str(f, *out, address_bytes_max) && !is_host_port(*out))
          rd.fail(errc::invalid_argument, "field '" + std::string(f == f::f_raft ? "raft" : "address") +
                                            "' must be host:port with a port from 1 to 65535, not \"" + *out + "\"");
      break;
    case opcode::backup:
      // A directory on the engine's host: absolute, so it never depends on
      // where the engine happened to be started.
      if (rd.str(f::f_path, r.path, path_bytes_max) && (r.path.empty() || r.path.front() != '/'))
        rd.fail(errc::invalid_argument, "field 'path' must be an absolute directory path on the engine's host");
      break;
    case opcode::journal: {
      rd.u64_in(f::f_from, r.from_seq, 1, u64_max, false, "at least 1");
      std::uint64_t limit = 0;  // absent = journal_limit_default
      rd.u64_in(f::f_limit, limit, 1, journal_limit_max, false, "between 1 and 1000");
      r.limit = static_cast<std::uint32_t>(limit);
      break;
    }
    case opcode::batch: {
      auto* ops = rd.get(f::f_ops, true);
      if (ops == nullptr)
        break;
      if (ops->type != msgpack::type::ARRAY) {
        rd.fail(errc::wrong_type, "field 'ops' must be an array");
        break;
      }
      if (ops->via.array.size == 0) {
        rd.fail(errc::invalid_argument, "field 'ops' must not be empty");
        break;
      }
      if (ops->via.array.size > limits::batch_ops_max) {
        rd.fail(errc::batch_too_large, "a batch holds at most " + std::to_string(limits::batch_ops_max) + " operations");
        break;
      }
      r.ops.resize(ops->via.array.size);
      for (std::uint32_t i = 0; i < ops->via.array.size; ++i)
        decode_map(ops->via.array.ptr[i], r.ops[i], true);
      break;
    }
    case opcode::none:
      break;
  }
}

void decode_map(const msgpack::object& o, request& r, bool in_batch) {
  reader rd(r);
  if (o.type != msgpack::type::MAP) {
    rd.fail(errc::wrong_type, "a request must be a msgpack map");
    return;
  }
  rd.index(o);
  rd.u64(reader::f_id, r.id);
  std::string op;
  auto* opv = rd.get(reader::f_op, true);
  if (opv != nullptr) {
    if (opv->type != msgpack::type::STR) {
      rd.fail(errc::wrong_type, "field 'op' must be a string");
    } else {
      op.assign(opv->via.str.ptr, opv->via.str.size);
      r.op = opcode_from(op);
      if (r.op == opcode::none)
        rd.fail(errc::unknown_operation, "unknown operation '" + op.substr(0, 64) + "'");
    }
  }
  if (rd.failed())
    return;
  // Only member operations (and the member reads) may be batched
  // (io/wire/operations.hpp); connection, engine-wide and report operations
  // stay out, and so does a batch itself.
  if (in_batch && !info(r.op).batchable) {
    rd.fail(errc::invalid_argument, r.op == opcode::batch ? std::string("a batch cannot contain a batch")
                                                          : "operation '" + op + "' cannot be part of a batch");
    return;
  }
  decode_fields(rd, r);
}

// Writes msgpack straight into the output vector, choosing the same
// encodings as msgpack-c's packer (smallest width; signed values >= 0 as
// unsigned; str8 for 32..255 bytes), so the bytes are those documented in
// docs/PROTOCOL.md section 8. Why not msgpack::packer: it hands every token
// to its stream as a separate small write, and a map's size must be known
// before its body, which made every map run its body twice (once to count);
// answers are encoded once per request on the io thread, so that was a
// measurable share of it (docs/PERFORMANCE.md, issue 5).
class packer {
public:
  // Writes at the end of `out`, which is left holding exactly what was
  // written once finish() ran. Meanwhile `out` is sized ahead of the
  // writes (a reused vector has the room already), so a token is a few
  // stores through a pointer, not a vector call.
  explicit packer(std::vector<char>& out) : out_(out), base_(out.size()) { grow(0); }
  packer(const packer&) = delete;
  packer& operator=(const packer&) = delete;
  void finish() { out_.resize(static_cast<std::size_t>(p_ - out_.data())); }

  void pack_uint64(std::uint64_t v) {
    room(9);
    if (v < 128) {
      *p_++ = static_cast<char>(v);
    } else if (v < 256) {
      *p_++ = static_cast<char>(0xcc), *p_++ = static_cast<char>(v);
    } else if (v < 65536) {
      *p_++ = static_cast<char>(0xcd), be(v, 2);
    } else if (v <= 0xffffffffull) {
      *p_++ = static_cast<char>(0xce), be(v, 4);
    } else {
      *p_++ = static_cast<char>(0xcf), be(v, 8);
    }
  }
  void pack_int64(std::int64_t v) {
    if (v >= 0) {
      pack_uint64(static_cast<std::uint64_t>(v));
      return;
    }
    room(9);
    if (v >= -32) {
      *p_++ = static_cast<char>(v);
    } else if (v >= -128) {
      *p_++ = static_cast<char>(0xd0), *p_++ = static_cast<char>(v);
    } else if (v >= -32768) {
      *p_++ = static_cast<char>(0xd1), be(static_cast<std::uint64_t>(v), 2);
    } else if (v >= INT32_MIN) {
      *p_++ = static_cast<char>(0xd2), be(static_cast<std::uint64_t>(v), 4);
    } else {
      *p_++ = static_cast<char>(0xd3), be(static_cast<std::uint64_t>(v), 8);
    }
  }
  void pack_str(std::uint32_t n) { header(n, 0xa0, 32, 0xd9, 0xda, 0xdb); }
  void pack_str_body(const char* p, std::uint32_t n) { raw(p, n); }
  void pack_bin(std::uint32_t n) { header(n, 0, 0, 0xc4, 0xc5, 0xc6); }
  void pack_bin_body(const char* p, std::uint32_t n) { raw(p, n); }
  void pack_true() { room(1), *p_++ = static_cast<char>(0xc3); }
  void pack_false() { room(1), *p_++ = static_cast<char>(0xc2); }
  void pack_array(std::uint32_t n) { header16(n, 0x90, 0xdc, 0xdd); }
  void pack_map(std::uint32_t n) { header16(n, 0x80, 0xde, 0xdf); }

  // A map whose size is known only after its body: a one-byte fixmap header
  // now, widened (the body moved up) in the rare case it holds 16 or more
  // pairs. Positions are offsets: the buffer may move meanwhile.
  [[nodiscard]] std::size_t begin_map() {
    room(1);
    *p_++ = static_cast<char>(0x80);
    return static_cast<std::size_t>(p_ - out_.data()) - 1;
  }
  void end_map(std::size_t at, std::uint32_t n) {
    if (n < 16) {
      out_[at] = static_cast<char>(0x80 | n);
      return;
    }
    const std::size_t extra = n < 65536 ? 2 : 4;
    room(extra);
    char* head = out_.data() + at;
    std::memmove(head + 1 + extra, head + 1, static_cast<std::size_t>(p_ - (head + 1)));
    p_ += extra;
    head[0] = static_cast<char>(n < 65536 ? 0xde : 0xdf);
    for (std::size_t i = 0; i < extra; ++i)
      head[1 + i] = static_cast<char>(n >> (8 * (extra - 1 - i)));
  }

private:
  void room(std::size_t n) {
    if (static_cast<std::size_t>(end_ - p_) < n)
      grow(n);
  }
  void grow(std::size_t n) {
    const auto used = p_ == nullptr ? base_ : static_cast<std::size_t>(p_ - out_.data());
    // 512 bytes ahead: a typical answer needs one resize (zeroing those
    // bytes only; the vector itself grows geometrically past its capacity).
    out_.resize(used + n + 512);
    p_ = out_.data() + used;
    end_ = out_.data() + out_.size();
  }
  void be(std::uint64_t v, std::size_t n) {  // room checked by the caller
    for (std::size_t i = 0; i < n; ++i)
      *p_++ = static_cast<char>(v >> (8 * (n - 1 - i)));
  }
  void raw(const char* p, std::size_t n) {
    room(n);
    if (n != 0)
      std::memcpy(p_, p, n);
    p_ += n;
  }
  // str / bin: a fix form below `fix_max` (none when it is 0), else 8, 16 or 32 bits.
  void header(std::uint32_t n, unsigned char fix, std::uint32_t fix_max, unsigned char b8, unsigned char b16,
              unsigned char b32) {
    room(5);
    if (n < fix_max)
      *p_++ = static_cast<char>(fix | n);
    else if (n < 256)
      *p_++ = static_cast<char>(b8), *p_++ = static_cast<char>(n);
    else if (n < 65536)
      *p_++ = static_cast<char>(b16), be(n, 2);
    else
      *p_++ = static_cast<char>(b32), be(n, 4);
  }
  // array / map: a fix form below 16, else 16 or 32 bits.
  void header16(std::uint32_t n, unsigned char fix, unsigned char b16, unsigned char b32) {
    room(5);
    if (n < 16)
      *p_++ = static_cast<char>(fix | n);
    else if (n < 65536)
      *p_++ = static_cast<char>(b16), be(n, 2);
    else
      *p_++ = static_cast<char>(b32), be(n, 4);
  }

  std::vector<char>& out_;
  std::size_t base_;
  char* p_ = nullptr;
  char* end_ = nullptr;
};

void pack_str(packer& pk, std::string_view s) {
  pk.pack_str(static_cast<std::uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

void kv(packer& pk, std::string_view key) { pack_str(pk, key); }

// The key / value pairs of one map, written in one pass; the header is
// patched with the count at the end (packer::end_map).
class map_out {
public:
  explicit map_out(packer& pk) : pk_(pk) {}

  void u64(std::string_view k, std::uint64_t v) { key(k), pk_.pack_uint64(v); }
  void i64(std::string_view k, std::int64_t v) { key(k), pk_.pack_int64(v); }
  void str(std::string_view k, std::string_view v) { key(k), pack_str(pk_, v); }
  void bin(std::string_view k, std::string_view v) {
    key(k);
    pk_.pack_bin(static_cast<std::uint32_t>(v.size()));
    pk_.pack_bin_body(v.data(), static_cast<std::uint32_t>(v.size()));
  }
  void boolean(std::string_view k, bool v) { key(k), v ? pk_.pack_true() : pk_.pack_false(); }
  // A value the caller packs itself (array, nested map).
  template <class F>
  void value(std::string_view k, F pack_value) { key(k), pack_value(pk_); }

  [[nodiscard]] std::uint32_t count() const noexcept { return count_; }

private:
  void key(std::string_view k) {
    ++count_;
    pack_str(pk_, k);
  }

  packer& pk_;
  std::uint32_t count_ = 0;
};

template <class Body>
void pack_map(packer& pk, Body&& body) {
  const auto at = pk.begin_map();
  map_out m(pk);
  body(m);
  pk.end_map(at, m.count());
}

void pack_items(packer& pk, const std::vector<item>& items) {
  pk.pack_array(static_cast<std::uint32_t>(items.size()));
  for (const auto& it : items)
    pack_map(pk, [&](map_out& m) {
      m.str("sku", it.sku);
      m.str("category", it.category);
      m.i64("qty", it.qty);
      m.i64("amount", it.amount);
    });
}

void pack_lines(packer& pk, const std::vector<line>& lines) {
  pk.pack_array(static_cast<std::uint32_t>(lines.size()));
  for (const auto& l : lines)
    pack_map(pk, [&](map_out& m) {
      m.str("kind", l.kind);
      m.str("rule", l.rule);
      m.i64("points", l.points);
      m.i64("amount", l.amount);
    });
}

void pack_rules(packer& pk, const std::vector<rule_outcome>& rules) {
  pk.pack_array(static_cast<std::uint32_t>(rules.size()));
  for (const auto& x : rules)
    pack_map(pk, [&](map_out& m) {
      m.str("rule", x.rule);
      m.boolean("won", x.won);
      m.i64("points", x.points);
      m.str("why", x.why);
      if (!x.by.empty())
        m.str("by", x.by);
    });
}

// The fields of one entry as history shows it (journal entries add theirs).
void pack_entry_fields(map_out& m, const history_entry& e) {
  m.u64("seq", e.seq);
  m.str("kind", e.kind);
  m.bin("txn", e.txn);  // txn ids are bytes
  m.u64("occurred_at_us", e.occurred_at_us);
  m.u64("committed_at_us", e.committed_at_us);
  m.i64("points", e.points);
  m.i64("balance", e.balance);
  m.i64("amount", e.amount);
  m.str("brand", e.brand);
  m.u64("ref", e.ref);
  m.u64("counterparty", e.counterparty);
  if (!e.partner.empty()) m.str("partner", e.partner);  // issue 4: partner entries only
}

void pack_entries(packer& pk, const std::vector<history_entry>& entries) {
  pk.pack_array(static_cast<std::uint32_t>(entries.size()));
  for (const auto& e : entries)
    pack_map(pk, [&](map_out& m) { pack_entry_fields(m, e); });
}

// Postings: {account, side, amount}.
void pack_moves(packer& pk, const std::vector<move>& moves) {
  pk.pack_array(static_cast<std::uint32_t>(moves.size()));
  for (const auto& mv : moves)
    pack_map(pk, [&](map_out& x) {
      x.str("account", mv.account);
      x.str("side", mv.side);
      x.i64("amount", mv.amount);
    });
}

// Settle records: {payer, payee, points, amount, rate[, reversal: true]}.
void pack_settlements(packer& pk, const std::vector<settlement_move>& moves) {
  pk.pack_array(static_cast<std::uint32_t>(moves.size()));
  for (const auto& s : moves)
    pack_map(pk, [&](map_out& m) {
      m.str("payer", s.payer);
      m.str("payee", s.payee);
      m.i64("points", s.points);
      m.i64("amount", s.amount);
      m.str("rate", s.rate);
      if (s.reversal) m.boolean("reversal", true);
    });
}

void pack_liabilities(packer& pk, const std::vector<liability_row>& rows) {
  pk.pack_array(static_cast<std::uint32_t>(rows.size()));
  for (const auto& b : rows)
    pack_map(pk, [&](map_out& m) {
      m.str("brand", b.brand);
      m.i64("issued", b.issued);
      m.i64("redeemed", b.redeemed);
      m.i64("expired", b.expired);
      m.i64("outstanding", b.outstanding);
      m.str("cost_per_point", b.cost_per_point);
      m.i64("liability", b.liability);
      m.i64("settlement", b.settlement);
    });
}

void pack_activity(packer& pk, const activity_result& a) {
  pack_map(pk, [&](map_out& m) {
    m.str("brand", a.brand);
    m.u64("from_us", a.from_us);
    m.u64("to_us", a.to_us);
    m.u64("first_seq", a.first_seq);
    m.u64("last_seq", a.last_seq);
    m.i64("issued", a.issued);
    m.i64("refunded", a.refunded);
    m.i64("redeemed", a.redeemed);
    m.i64("reversed", a.reversed);
    m.i64("expired", a.expired);
    m.i64("opening_outstanding", a.opening_outstanding);
    m.i64("closing_outstanding", a.closing_outstanding);
    m.i64("closing_liability", a.closing_liability);
    m.i64("settlement", a.settlement);
  });
}

void pack_statement(packer& pk, const statement_result& st) {
  pack_map(pk, [&](map_out& m) {
    m.str("party", st.party);
    m.u64("from_us", st.from_us);
    m.u64("to_us", st.to_us);
    m.u64("first_seq", st.first_seq);
    m.u64("last_seq", st.last_seq);
    m.i64("opening", st.opening);
    m.i64("closing", st.closing);
    m.i64("net", st.net);
    m.i64("points", st.points);
    m.u64("line_count", st.line_count);
    m.value("lines", [&](packer& p) {
      p.pack_array(static_cast<std::uint32_t>(st.lines.size()));
      for (const auto& l : st.lines)
        pack_map(p, [&](map_out& x) {
          x.u64("seq", l.seq);
          x.u64("committed_at_us", l.committed_at_us);
          x.u64("member", l.member);
          x.str("kind", l.kind);
          x.bin("txn", l.txn);  // txn ids are bytes
          x.str("counterparty", l.counterparty);
          x.i64("points", l.points);
          x.i64("due", l.due);
          x.str("rate", l.rate);
          if (l.reversal) x.boolean("reversal", true);
        });
    });
    m.u64("next_after", st.next_after);
  });
}

// Consent bits as an array of channel names, in bit order.
void pack_consents(packer& pk, std::uint32_t bits) {
  pk.pack_array(static_cast<std::uint32_t>(__builtin_popcount(bits & consent_channels_all)));
  for (std::size_t i = 0; i < consent_channel_names.size(); ++i)
    if ((bits & (1u << i)) != 0)
      pack_str(pk, consent_channel_names[i]);
}

void pack_event(packer& pk, const stream_event& e) {
  pack_map(pk, [&](map_out& m) {
    m.u64("seq", e.seq);
    m.str("type", e.type);
    m.str("entry", e.entry);
    m.u64("member", e.member);
    m.str("brand", e.brand);
    m.bin("txn", e.txn);  // txn ids are bytes
    m.i64("points", e.points);
    m.i64("balance", e.balance);
    m.u64("occurred_at_us", e.occurred_at_us);
    m.u64("committed_at_us", e.committed_at_us);
    m.value("consents", [&](packer& p) { pack_consents(p, e.consents); });
    m.str("tier", e.tier);
    if (!e.previous_tier.empty()) m.str("previous_tier", e.previous_tier);
    if (e.counterparty != 0) m.u64("counterparty", e.counterparty);
    if (!e.partner.empty()) m.str("partner", e.partner);
    if (e.amount != 0) m.i64("amount", e.amount);
    if (e.ref != 0) m.u64("ref", e.ref);
    if (e.hold != 0) m.u64("hold", e.hold);
    if (e.changed != 0) m.value("changed", [&](packer& p) { pack_consents(p, e.changed); });
    if (!e.source.empty()) m.str("source", e.source);
    if (e.household != 0) m.u64("household", e.household);
    if (e.drops_at_us != 0) {
      m.str("drops_to", e.drops_to);
      m.u64("drops_at_us", e.drops_at_us);
      m.i64("missing", e.missing);
    }
    if (!e.limit.empty()) {
      m.str("limit", e.limit);
      m.str("window", e.window);
      m.i64("reached", e.reached);
      m.i64("bound", e.bound);
      m.boolean("flagged", e.flagged);
    }
    if (!e.reason.empty()) m.str("reason", e.reason);
    if (!e.expiring.empty())
      m.value("expiring", [&](packer& p) {
        p.pack_array(static_cast<std::uint32_t>(e.expiring.size()));
        for (const auto& l : e.expiring)
          pack_map(p, [&](map_out& x) {
            x.str("brand", l.brand);
            x.i64("points", l.points);
            x.u64("expires_at_us", l.expires_at_us);
          });
      });
  });
}

void pack_events(packer& pk, const std::vector<stream_event>& events) {
  pk.pack_array(static_cast<std::uint32_t>(events.size()));
  for (const auto& e : events)
    pack_event(pk, e);
}

void pack_report(packer& pk, const report_result& rep) {
  pack_map(pk, [&](map_out& m) {
    m.u64("from_us", rep.from_us);
    m.u64("to_us", rep.to_us);
    m.u64("first_seq", rep.first_seq);
    m.u64("last_seq", rep.last_seq);
    m.u64("active_days", rep.active_days);
    m.u64("active_from_us", rep.active_from_us);
    m.value("brands", [&](packer& p) {
      p.pack_array(static_cast<std::uint32_t>(rep.brands.size()));
      for (const auto& b : rep.brands)
        pack_map(p, [&](map_out& x) {
          x.str("brand", b.brand);
          x.i64("issued", b.issued);
          x.i64("refunded", b.refunded);
          x.i64("redeemed", b.redeemed);
          x.i64("reversed", b.reversed);
          x.i64("expired", b.expired);
          x.i64("opening_outstanding", b.opening_outstanding);
          x.i64("closing_outstanding", b.closing_outstanding);
          x.str("cost_per_point", b.cost_per_point);
          x.i64("closing_liability", b.closing_liability);
          x.i64("settlement", b.settlement);
          x.i64("settlement_closing", b.settlement_closing);
          x.str("redemption_rate", b.redemption_rate);
          x.i64("redemption_rate_bp", b.redemption_rate_bp);
          x.u64("members", b.members);
          x.u64("active_members", b.active_members);
          x.i64("active_rate_bp", b.active_rate_bp);
          x.value("tiers", [&](packer& q) {
            q.pack_array(static_cast<std::uint32_t>(b.tiers.size()));
            for (const auto& t : b.tiers)
              pack_map(q, [&](map_out& y) {
                y.str("tier", t.tier);
                y.u64("members", t.members);
              });
          });
          x.value("top", [&](packer& q) {
            q.pack_array(static_cast<std::uint32_t>(b.top.size()));
            for (const auto& e : b.top)
              pack_map(q, [&](map_out& y) {
                y.u64("member", e.member);
                y.i64("points", e.points);
              });
          });
        });
    });
  });
}

void pack_response(packer& pk, const response& r);

// A journal entry: the history fields, then member, key_id,
// policy_version, moves, settlements (always, possibly empty) and lines.
void pack_journal_entry(packer& pk, const journal_entry& j) {
  pack_map(pk, [&](map_out& m) {
    pack_entry_fields(m, j.entry);
    m.u64("member", j.member);
    m.u64("key_id", j.key_id);
    m.u64("policy_version", j.policy_version);
    m.value("moves", [&](packer& p) { pack_moves(p, j.moves); });
    m.value("settlements", [&](packer& p) { pack_settlements(p, j.settlements); });
    m.value("lines", [&](packer& p) { pack_lines(p, j.lines); });
  });
}

// The result fields of a successful response, by operation. Issue-1 ops
// (enroll, earn, redeem, balance) keep their original fields in their
// original order; what issue 3 added to them is written only when it is not
// zero / empty, so an answer without it is byte-identical to before.
void response_fields(map_out& m, const response& r) {
  // stats and cluster_status: name -> uint, in the server's order.
  const auto pack_stats = [&](packer& p) {
    p.pack_map(static_cast<std::uint32_t>(r.stats.size()));
    for (auto& [name, value] : r.stats)
      kv(p, name), p.pack_uint64(value);
  };
  auto posting = [&](bool with_tier) {
    m.u64("seq", r.seq);
    m.u64("member", r.member);
    m.i64("points", r.points);
    m.i64("balance", r.balance);
    if (with_tier) {
      m.i64("lifetime", r.lifetime);
      m.str("tier", r.tier);
    }
    m.boolean("replayed", r.replayed);
  };
  auto lines = [&] { m.value("lines", [&](packer& p) { pack_lines(p, r.lines); }); };
  // Issue 4: the settle records of a posting, written only when there are
  // any, so answers that moved no money stay byte-identical to before.
  auto settlements = [&] {
    if (!r.settlements.empty())
      m.value("settlements", [&](packer& p) { pack_settlements(p, r.settlements); });
  };
  switch (r.op) {
    case opcode::hello:
      m.u64("version", r.version);
      m.str("server", r.server);
      m.value("limits", [&](packer& p) {
        pack_map(p, [&](map_out& l) {
          l.u64("frame_bytes_max", r.frame_bytes_max);
          l.u64("inflight_max", r.inflight_max);
          l.u64("batch_ops_max", r.batch_ops_max);
        });
      });
      break;
    case opcode::enroll:
      m.u64("seq", r.seq);
      m.u64("member", r.member);
      if (r.points != 0) m.i64("points", r.points);
      if (r.balance != 0) m.i64("balance", r.balance);
      if (r.lifetime != 0) m.i64("lifetime", r.lifetime);
      if (!r.tier.empty()) m.str("tier", r.tier);
      if (r.replayed) m.boolean("replayed", r.replayed);
      if (!r.lines.empty()) lines();
      break;
    case opcode::earn:
      posting(true);
      if (!r.lines.empty()) lines();
      // Issue 19 item 6: only where the program explains earns, so other
      // programs' answers stay byte-identical to before.
      if (!r.rules.empty()) m.value("rules", [&](packer& p) { pack_rules(p, r.rules); });
      settlements();
      break;
    case opcode::redeem:
      posting(true);
      settlements();
      break;
    case opcode::event:
    case opcode::refund:
      posting(true);
      lines();
      settlements();
      break;
    case opcode::hold:
      posting(false);
      m.u64("hold", r.hold);
      m.u64("expires_at_us", r.expires_at_us);
      break;
    case opcode::redeem_reward:
      posting(false);
      m.str("reward", r.reward);
      settlements();
      break;
    case opcode::capture:
    case opcode::release:
    case opcode::reverse_redemption:
    case opcode::release_pending:
    case opcode::adjust:
    case opcode::transfer:
      posting(false);
      settlements();
      break;
    case opcode::block:
    case opcode::unblock:
      posting(false);
      break;
    case opcode::risk_report:
      m.value("members", [&](packer& p) {
        p.pack_array(static_cast<std::uint32_t>(r.risk.size()));
        for (const auto& x : r.risk)
          pack_map(p, [&](map_out& y) {
            y.u64("member", x.member);
            y.boolean("flagged", x.flagged);
            y.boolean("blocked", x.blocked);
            y.u64("breaches", x.breaches);
            y.u64("blocked_at_us", x.blocked_at_us);
            y.str("reason", x.reason);
          });
      });
      m.u64("next", r.next);
      break;
    case opcode::partner_earn:
      posting(true);
      m.str("partner", r.partner);
      lines();
      settlements();
      break;
    case opcode::partner_burn:
      posting(true);
      m.str("partner", r.partner);
      settlements();
      break;
    case opcode::liability:
      m.value("brands", [&](packer& p) { pack_liabilities(p, r.liabilities); });
      break;
    case opcode::activity:
      m.value("activity", [&](packer& p) { pack_activity(p, r.activity); });
      break;
    case opcode::settlement:
      m.value("statement", [&](packer& p) { pack_statement(p, r.statement); });
      break;
    case opcode::report:
      m.value("report", [&](packer& p) { pack_report(p, r.report); });
      break;
    case opcode::balance:
      m.u64("member", r.member);
      m.str("brand", r.brand);
      m.i64("balance", r.balance);
      m.i64("lifetime", r.lifetime);
      m.str("tier", r.tier);
      if (r.available != 0) m.i64("available", r.available);
      if (r.pending != 0) m.i64("pending", r.pending);
      if (r.held != 0) m.i64("held", r.held);
      if (r.debt != 0) m.i64("debt", r.debt);
      if (!r.next_tier.empty()) m.str("next_tier", r.next_tier);
      if (r.qualifying != 0) m.i64("qualifying", r.qualifying);
      if (r.to_next_tier != 0) m.i64("to_next_tier", r.to_next_tier);
      if (r.next_expiry_points != 0) m.i64("next_expiry_points", r.next_expiry_points);
      if (r.next_expiry_at_us != 0) m.u64("next_expiry_at_us", r.next_expiry_at_us);
      if (r.tier_holds_until_us != 0) {
        m.u64("tier_holds_until_us", r.tier_holds_until_us);
        m.str("tier_drops_to", r.tier_drops_to);
        m.i64("tier_keep_missing", r.tier_keep_missing);
      }
      if (r.consents != 0) m.value("consents", [&](packer& p) { pack_consents(p, r.consents); });
      if (r.blocked) m.boolean("blocked", true);
      if (r.flagged) m.boolean("flagged", true);
      if (r.breaches != 0) m.u64("breaches", r.breaches);
      if (r.household != 0) {  // issue 19: only for a household member, so other answers stay as they were
        m.u64("household", r.household);
        m.i64("household_available", r.household_available);
      }
      break;
    case opcode::household_join:
    case opcode::household_leave:
    case opcode::household_dissolve:
      m.u64("seq", r.seq);
      m.u64("member", r.member);
      m.u64("household", r.household);
      m.boolean("replayed", r.replayed);
      break;
    case opcode::household:
      m.u64("household", r.household);
      m.i64("household_available", r.household_available);
      m.value("household_members", [&](packer& p) {
        p.pack_array(static_cast<std::uint32_t>(r.household_members.size()));
        for (const auto& hm : r.household_members)
          pack_map(p, [&](map_out& mm) {
            mm.u64("member", hm.member);
            mm.i64("available", hm.available);
          });
      });
      break;
    case opcode::consent:
      m.u64("seq", r.seq);
      m.u64("member", r.member);
      m.value("consents", [&](packer& p) { pack_consents(p, r.consents); });
      m.boolean("replayed", r.replayed);
      break;
    case opcode::subscribe:
      m.u64("seq", r.seq);
      m.u64("next", r.next);
      m.value("events", [&](packer& p) { pack_events(p, r.events); });
      break;
    case opcode::link_alias:
    case opcode::erase:
      m.u64("seq", r.seq);
      m.u64("member", r.member);
      m.boolean("replayed", r.replayed);
      break;
    case opcode::lookup:
      m.u64("member", r.member);
      break;
    case opcode::history:
      m.u64("member", r.member);
      m.value("entries", [&](packer& p) { pack_entries(p, r.entries); });
      m.u64("next_before", r.next_before);
      break;
    case opcode::expire:
      m.i64("expired", r.expired);
      m.u64("members", r.members);
      m.u64("seq", r.seq);
      break;
    case opcode::reload:
      m.u64("policy_version", r.policy_version);
      break;
    case opcode::explain:
      m.u64("seq", r.seq);
      m.u64("member", r.member);
      m.value("entries", [&](packer& p) { pack_entries(p, r.entries); });
      lines();
      m.u64("key_id", r.key_id);
      m.str("key_name", r.key_name);
      m.u64("policy_version", r.policy_version);
      m.value("moves", [&](packer& p) { pack_moves(p, r.moves); });
      if (!r.partner.empty()) m.str("partner", r.partner);
      settlements();
      break;
    case opcode::verify:
      m.boolean("valid", r.verify.valid);
      m.u64("entries", r.verify.entries);
      m.u64("postings", r.verify.postings);
      m.u64("accounts", r.verify.accounts);
      m.u64("members", r.verify.members);
      m.u64("txn_ids", r.verify.txn_ids);
      m.value("problems", [&](packer& p) {
        p.pack_array(static_cast<std::uint32_t>(r.verify.problems.size()));
        for (auto& s : r.verify.problems)
          pack_str(p, s);
      });
      break;
    case opcode::backup:
      m.u64("seq", r.seq);
      m.str("file", r.file);
      m.u64("bytes", r.bytes);
      break;
    case opcode::quote:
      m.u64("member", r.member);
      m.i64("points", r.points);
      m.i64("balance", r.balance);
      m.i64("balance_after", r.balance_after);
      m.str("tier", r.tier);
      m.str("tier_after", r.tier_after);
      m.str("next_tier", r.next_tier);
      m.i64("qualifying", r.qualifying);
      m.i64("to_next_tier", r.to_next_tier);
      lines();
      m.value("rules", [&](packer& p) { pack_rules(p, r.rules); });
      m.boolean("quoted", r.quoted);
      break;
    case opcode::journal:
      m.value("entries", [&](packer& p) {
        p.pack_array(static_cast<std::uint32_t>(r.journal.size()));
        for (const auto& j : r.journal)
          pack_journal_entry(p, j);
      });
      m.u64("next", r.next);
      m.u64("last_seq", r.last_seq);
      break;
    case opcode::stats:
      m.value("stats", pack_stats);
      break;
    case opcode::cluster_status:
    case opcode::cluster_add:
    case opcode::cluster_remove:
      m.str("role", r.role);
      m.str("leader", r.leader);
      m.value("stats", pack_stats);
      m.value("nodes", [&](packer& p) {
        p.pack_array(static_cast<std::uint32_t>(r.nodes.size()));
        for (const auto& n : r.nodes)
          pack_map(p, [&](map_out& nm) {
            nm.u64("id", n.id);
            nm.str("raft", n.raft);
            nm.str("client", n.client);
            nm.str("role", n.role);
            nm.u64("match_index", n.match_index);
            nm.u64("lag", n.lag);
          });
      });
      break;
    case opcode::batch:
      m.value("results", [&](packer& p) {
        p.pack_array(static_cast<std::uint32_t>(r.results.size()));
        for (auto& sub : r.results)
          pack_response(p, sub);
      });
      break;
    case opcode::none:
      break;
  }
}

void pack_response(packer& pk, const response& r) {
  pack_map(pk, [&](map_out& m) {
    const bool ok = r.code == errc::ok;
    m.u64("id", r.id);
    m.str("op", to_string(r.op));
    m.boolean("ok", ok);
    if (r.dry_run)  // only when set: every other answer stays byte-identical to before
      m.boolean("dry_run", true);
    if (!ok) {
      m.str("error", to_string(r.code));
      m.u64("code", static_cast<std::uint16_t>(r.code));
      m.str("message", r.message);
      if (r.code == errc::not_leader)
        m.str("leader", r.leader);
      return;
    }
    response_fields(m, r);
  });
}

void pack_request(packer& pk, const request& r);

// The fields of a request. Optional fields are written only when set (not
// zero / empty), so decode_request(encode_request(r)) == r.
void request_fields(map_out& m, const request& r) {
  // The member: by alias if one is set (with `member` too if that is set:
  // the server refuses both), else by id; `optional` leaves out member 0.
  auto who = [&](bool optional) {
    if (!r.alias.empty())
      m.str("alias", r.alias);
    if (r.alias.empty() ? !(optional && r.member == 0) : r.member != 0)
      m.u64("member", r.member);
  };
  auto txn = [&] { m.bin("txn", r.txn); };
  auto purchase = [&] {
    who(false);
    m.str("brand", r.brand);
    m.i64("amount", r.amount);
    m.str("currency", r.currency);
    if (r.occurred_at_us != 0) m.u64("occurred_at", r.occurred_at_us);
    if (!r.items.empty()) m.value("items", [&](packer& p) { pack_items(p, r.items); });
    if (!r.channel.empty()) m.str("channel", r.channel);
    if (!r.store.empty()) m.str("store", r.store);
  };
  switch (r.op) {
    case opcode::hello:
      m.u64("version", r.version);
      if (!r.client_name.empty()) m.str("client", r.client_name);
      if (!r.key.empty()) m.str("key", r.key);
      break;
    case opcode::enroll:
      m.u64("member", r.member);
      m.str("brand", r.brand);
      if (!r.alias.empty()) m.str("alias", r.alias);  // refused by the server: enroll is by id
      break;
    case opcode::earn:
      txn();
      purchase();
      break;
    case opcode::quote:
      if (!r.txn.empty()) txn();  // refused by the server: a quote takes none
      purchase();
      break;
    case opcode::redeem:
      txn();
      who(false);
      m.i64("points", r.points);
      if (!r.brand.empty()) m.str("brand", r.brand);
      break;
    case opcode::balance:
      who(false);
      break;
    case opcode::event:
      txn();
      who(false);
      m.str("event", r.event);
      if (!r.brand.empty()) m.str("brand", r.brand);
      if (!r.channel.empty()) m.str("channel", r.channel);
      if (!r.store.empty()) m.str("store", r.store);
      if (r.occurred_at_us != 0) m.u64("occurred_at", r.occurred_at_us);
      break;
    case opcode::hold:
      txn();
      who(false);
      m.i64("points", r.points);
      if (!r.brand.empty()) m.str("brand", r.brand);
      if (r.ttl_s != 0) m.u64("ttl_s", r.ttl_s);
      break;
    case opcode::capture:
    case opcode::release:
      txn();
      who(false);
      m.u64("hold", r.hold);
      if (r.op == opcode::capture && r.points != 0) m.i64("points", r.points);
      break;
    case opcode::redeem_reward:
      txn();
      who(false);
      m.str("reward", r.reward);
      break;
    case opcode::refund:
      txn();
      who(false);
      m.bin("ref", r.ref);
      if (r.amount != 0) m.i64("amount", r.amount);
      if (!r.items.empty()) m.value("items", [&](packer& p) { pack_items(p, r.items); });
      if (r.occurred_at_us != 0) m.u64("occurred_at", r.occurred_at_us);
      break;
    case opcode::reverse_redemption:
    case opcode::release_pending:
      txn();
      who(false);
      m.bin("ref", r.ref);
      break;
    case opcode::adjust:
      txn();
      who(false);
      m.i64("points", r.points);
      m.str("reason", r.reason);
      m.str("brand", r.brand);
      break;
    case opcode::block:
    case opcode::unblock:
      txn();
      who(false);
      m.str("reason", r.reason);
      break;
    case opcode::risk_report:
      if (r.after != 0) m.u64("after", r.after);
      if (r.limit != 0) m.u64("limit", r.limit);
      break;
    case opcode::transfer:
      txn();
      who(false);
      m.u64("to", r.to);
      m.i64("points", r.points);
      break;
    case opcode::link_alias:
      txn();
      m.u64("member", r.member);
      m.str("alias", r.alias);
      break;
    case opcode::household_join:
      txn();
      who(false);
      m.u64("household", r.household);
      break;
    case opcode::household_leave:
      txn();
      who(false);
      break;
    case opcode::household_dissolve:
      txn();
      m.u64("household", r.household);
      break;
    case opcode::household:
      m.u64("household", r.household);
      break;
    case opcode::erase:
      txn();
      m.u64("member", r.member);
      m.str("reason", r.reason);
      break;
    case opcode::lookup:
      m.str("alias", r.alias);
      break;
    case opcode::history:
      who(false);
      if (r.before != 0) m.u64("before", r.before);
      if (r.limit != 0) m.u64("limit", r.limit);
      break;
    case opcode::expire:
      who(true);
      if (r.as_of_us != 0) m.u64("as_of_us", r.as_of_us);
      break;
    case opcode::explain:
      txn();
      break;
    case opcode::reload:
      break;
    case opcode::partner_earn:
    case opcode::partner_burn:
      txn();
      who(false);
      m.str("partner", r.partner);
      m.i64("points", r.points);
      if (r.op == opcode::partner_earn && r.amount != 0) m.i64("amount", r.amount);
      if (r.op == opcode::partner_earn && r.occurred_at_us != 0) m.u64("occurred_at", r.occurred_at_us);
      break;
    case opcode::liability:
      if (!r.brand.empty()) m.str("brand", r.brand);
      break;
    case opcode::activity:
    case opcode::settlement:
      // settlement: both or neither party is written as given (the server
      // refuses it), so the client library never hides a caller's mistake.
      if (r.op == opcode::activity || !r.brand.empty()) m.str("brand", r.brand);
      if (r.op == opcode::settlement && !r.partner.empty()) m.str("partner", r.partner);
      if (r.from_us != 0) m.u64("from_us", r.from_us);
      if (r.to_us != 0) m.u64("to_us", r.to_us);
      if (r.op == opcode::settlement && r.after != 0) m.u64("after", r.after);
      if (r.op == opcode::settlement && r.limit != 0) m.u64("limit", r.limit);
      break;
    case opcode::batch:
      m.value("ops", [&](packer& p) {
        p.pack_array(static_cast<std::uint32_t>(r.ops.size()));
        for (auto& sub : r.ops)
          pack_request(p, sub);
      });
      break;
    case opcode::backup:
      m.str("path", r.path);
      break;
    case opcode::consent:
      txn();
      who(false);
      m.value("consents", [&](packer& p) {
        p.pack_map(static_cast<std::uint32_t>(__builtin_popcount(r.consent_mask & consent_channels_all)));
        for (std::size_t i = 0; i < consent_channel_names.size(); ++i)
          if ((r.consent_mask & (1u << i)) != 0) {
            pack_str(p, consent_channel_names[i]);
            (r.consent_values & (1u << i)) != 0 ? p.pack_true() : p.pack_false();
          }
      });
      m.str("source", r.source);
      if (r.occurred_at_us != 0) m.u64("occurred_at", r.occurred_at_us);
      break;
    case opcode::subscribe:
      if (r.from_seq != 0) m.u64("from", r.from_seq);
      if (r.event_types != 0)
        m.value("types", [&](packer& p) {
          p.pack_array(static_cast<std::uint32_t>(__builtin_popcount(r.event_types & event_types_all)));
          for (std::size_t i = 0; i < event_type_names.size(); ++i)
            if ((r.event_types & (1u << i)) != 0)
              pack_str(p, event_type_names[i]);
        });
      if (r.consent_filter != 0)
        for (std::size_t i = 0; i < consent_channel_names.size(); ++i)
          if (r.consent_filter == (1u << i))
            m.str("consent", consent_channel_names[i]);
      if (!r.brand.empty()) m.str("brand", r.brand);
      break;
    case opcode::report:
      if (!r.brand.empty()) m.str("brand", r.brand);
      if (r.from_us != 0) m.u64("from_us", r.from_us);
      if (r.to_us != 0) m.u64("to_us", r.to_us);
      if (r.active_days != 0) m.u64("active_days", r.active_days);
      if (r.top != 0) m.u64("top", r.top);
      break;
    case opcode::journal:
      if (r.from_seq != 0) m.u64("from", r.from_seq);
      if (r.limit != 0) m.u64("limit", r.limit);
      break;
    case opcode::cluster_add:
      m.u64("node", r.node_id);
      m.str("raft", r.raft_address);
      m.str("address", r.client_address);
      break;
    case opcode::cluster_remove:
      m.u64("node", r.node_id);
      break;
    case opcode::verify:
    case opcode::stats:
    case opcode::cluster_status:
    case opcode::none:
      break;
  }
}

void pack_request(packer& pk, const request& r) {
  pack_map(pk, [&](map_out& m) {
    m.str("op", to_string(r.op));
    m.u64("id", r.id);
    request_fields(m, r);
  });
}

template <class F>
void framed(std::vector<char>& out, F body) {
  const auto start = out.size();
  out.resize(start + frame_header_bytes);
  packer pk(out);
  body(pk);
  pk.finish();
  write_be32(reinterpret_cast<unsigned char*>(out.data() + start),
             static_cast<std::uint32_t>(out.size() - start - frame_header_bytes));
}

// -- response decoding (client side) ---------------------------------------------

std::int64_t as_i64(const msgpack::object& o) {
  if (o.type == msgpack::type::POSITIVE_INTEGER)
    return static_cast<std::int64_t>(o.via.u64);
  if (o.type == msgpack::type::NEGATIVE_INTEGER)
    return o.via.i64;
  throw std::runtime_error("expected an integer");
}
std::uint64_t as_u64(const msgpack::object& o) {
  if (o.type != msgpack::type::POSITIVE_INTEGER)
    throw std::runtime_error("expected an unsigned integer");
  return o.via.u64;
}
std::string as_str(const msgpack::object& o) {
  if (o.type != msgpack::type::STR)
    throw std::runtime_error("expected a string");
  return {o.via.str.ptr, o.via.str.size};
}
// Txn ids: bin (as the server writes them) or str.
std::string as_bytes(const msgpack::object& o) {
  if (o.type == msgpack::type::BIN)
    return {o.via.bin.ptr, o.via.bin.size};
  return as_str(o);
}
bool as_bool(const msgpack::object& o) {
  if (o.type != msgpack::type::BOOLEAN)
    throw std::runtime_error("expected a boolean");
  return o.via.boolean;
}
const msgpack::object_array& as_array(const msgpack::object& o) {
  if (o.type != msgpack::type::ARRAY)
    throw std::runtime_error("expected an array");
  return o.via.array;
}
// Calls f(key, value) for each string key of a map; other keys are skipped.
template <class F>
void each_field(const msgpack::object& o, F f) {
  if (o.type != msgpack::type::MAP)
    throw std::runtime_error("expected a map");
  for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
    const auto& k = o.via.map.ptr[i].key;
    if (k.type == msgpack::type::STR)
      f(std::string_view(k.via.str.ptr, k.via.str.size), o.via.map.ptr[i].val);
  }
}

household_member unpack_household_member(const msgpack::object& o) {
  household_member hm;
  each_field(o, [&](std::string_view key, const msgpack::object& v) {
    if (key == "member") hm.member = as_u64(v);
    else if (key == "available") hm.available = as_i64(v);
  });
  return hm;
}

line unpack_line(const msgpack::object& o) {
  line l;
  each_field(o, [&](std::string_view key, const msgpack::object& v) {
    if (key == "kind") l.kind = as_str(v);
    else if (key == "rule") l.rule = as_str(v);
    else if (key == "points") l.points = as_i64(v);
    else if (key == "amount") l.amount = as_i64(v);
  });
  return l;
}

rule_outcome unpack_rule_outcome(const msgpack::object& o) {
  rule_outcome x;
  each_field(o, [&](std::string_view key, const msgpack::object& v) {
    if (key == "rule") x.rule = as_str(v);
    else if (key == "won") x.won = as_bool(v);
    else if (key == "points") x.points = as_i64(v);
    else if (key == "why") x.why = as_str(v);
    else if (key == "by") x.by = as_str(v);
  });
  return x;
}

// One field of an entry as history shows it; false if `key` is not one.
bool unpack_entry_field(history_entry& e, std::string_view key, const msgpack::object& v) {
  if (key == "seq") e.seq = as_u64(v);
  else if (key == "kind") e.kind = as_str(v);
  else if (key == "txn") e.txn = as_bytes(v);
  else if (key == "occurred_at_us") e.occurred_at_us = as_u64(v);
  else if (key == "committed_at_us") e.committed_at_us = as_u64(v);
  else if (key == "points") e.points = as_i64(v);
  else if (key == "balance") e.balance = as_i64(v);
  else if (key == "amount") e.amount = as_i64(v);
  else if (key == "brand") e.brand = as_str(v);
  else if (key == "ref") e.ref = as_u64(v);
  else if (key == "counterparty") e.counterparty = as_u64(v);
  else if (key == "partner") e.partner = as_str(v);
  else return false;
  return true;
}

history_entry unpack_entry(const msgpack::object& o) {
  history_entry e;
  each_field(o, [&](std::string_view key, const msgpack::object& v) { unpack_entry_field(e, key, v); });
  return e;
}

// Each element of an array through `one`.
template <class T>
std::vector<T> unpack_list(const msgpack::object& v, T (*one)(const msgpack::object&)) {
  const auto& a = as_array(v);
  std::vector<T> out;
  out.reserve(a.size);
  for (std::uint32_t j = 0; j < a.size; ++j)
    out.push_back(one(a.ptr[j]));
  return out;
}

move unpack_move(const msgpack::object& o) {
  move mv;
  each_field(o, [&](std::string_view key, const msgpack::object& v) {
    if (key == "account") mv.account = as_str(v);
    else if (key == "side") mv.side = as_str(v);
    else if (key == "amount") mv.amount = as_i64(v);
  });
  return mv;
}

settlement_move unpack_settlement(const msgpack::object& o) {
  settlement_move s;
  each_field(o, [&](std::string_view key, const msgpack::object& v) {
    if (key == "payer") s.payer = as_str(v);
    else if (key == "payee") s.payee = as_str(v);
    else if (key == "points") s.points = as_i64(v);
    else if (key == "amount") s.amount = as_i64(v);
    else if (key == "rate") s.rate = as_str(v);
    else if (key == "reversal") s.reversal = as_bool(v);
  });
  return s;
}

journal_entry unpack_journal_entry(const msgpack::object& o) {
  journal_entry j;
  each_field(o, [&](std::string_view key, const msgpack::object& v) {
    if (unpack_entry_field(j.entry, key, v)) return;
    if (key == "member") j.member = as_u64(v);
    else if (key == "key_id") j.key_id = static_cast<std::uint32_t>(as_u64(v));
    else if (key == "policy_version") j.policy_version = static_cast<std::uint32_t>(as_u64(v));
    else if (key == "moves") j.moves = unpack_list(v, unpack_move);
    else if (key == "settlements") j.settlements = unpack_list(v, unpack_settlement);
    else if (key == "lines") j.lines = unpack_list(v, unpack_line);
  });
  return j;
}

liability_row unpack_liability(const msgpack::object& o) {
  liability_row b;
  each_field(o, [&](std::string_view key, const msgpack::object& v) {
    if (key == "brand") b.brand = as_str(v);
    else if (key == "issued") b.issued = as_i64(v);
    else if (key == "redeemed") b.redeemed = as_i64(v);
    else if (key == "expired") b.expired = as_i64(v);
    else if (key == "outstanding") b.outstanding = as_i64(v);
    else if (key == "cost_per_point") b.cost_per_point = as_str(v);
    else if (key == "liability") b.liability = as_i64(v);
    else if (key == "settlement") b.settlement = as_i64(v);
  });
  return b;
}

activity_result unpack_activity(const msgpack::object& o) {
  activity_result a;
  each_field(o, [&](std::string_view key, const msgpack::object& v) {
    if (key == "brand") a.brand = as_str(v);
    else if (key == "from_us") a.from_us = as_u64(v);
    else if (key == "to_us") a.to_us = as_u64(v);
    else if (key == "first_seq") a.first_seq = as_u64(v);
    else if (key == "last_seq") a.last_seq = as_u64(v);
    else if (key == "issued") a.issued = as_i64(v);
    else if (key == "refunded") a.refunded = as_i64(v);
    else if (key == "redeemed") a.redeemed = as_i64(v);
    else if (key == "reversed") a.reversed = as_i64(v);
    else if (key == "expired") a.expired = as_i64(v);
    else if (key == "opening_outstanding") a.opening_outstanding = as_i64(v);
    else if (key == "closing_outstanding") a.closing_outstanding = as_i64(v);
    else if (key == "closing_liability") a.closing_liability = as_i64(v);
    else if (key == "settlement") a.settlement = as_i64(v);
  });
  return a;
}

statement_row unpack_statement_row(const msgpack::object& o) {
  statement_row l;
  each_field(o, [&](std::string_view key, const msgpack::object& v) {
    if (key == "seq") l.seq = as_u64(v);
    else if (key == "committed_at_us") l.committed_at_us = as_u64(v);
    else if (key == "member") l.member = as_u64(v);
    else if (key == "kind") l.kind = as_str(v);
    else if (key == "txn") l.txn = as_bytes(v);
    else if (key == "counterparty") l.counterparty = as_str(v);
    else if (key == "points") l.points = as_i64(v);
    else if (key == "due") l.due = as_i64(v);
    else if (key == "rate") l.rate = as_str(v);
    else if (key == "reversal") l.reversal = as_bool(v);
  });
  return l;
}

statement_result unpack_statement(const msgpack::object& o) {
  statement_result st;
  each_field(o, [&](std::string_view key, const msgpack::object& v) {
    if (key == "party") st.party = as_str(v);
    else if (key == "from_us") st.from_us = as_u64(v);
    else if (key == "to_us") st.to_us = as_u64(v);
    else if (key == "first_seq") st.first_seq = as_u64(v);
    else if (key == "last_seq") st.last_seq = as_u64(v);
    else if (key == "opening") st.opening = as_i64(v);
    else if (key == "closing") st.closing = as_i64(v);
    else if (key == "net") st.net = as_i64(v);
    else if (key == "points") st.points = as_i64(v);
    else if (key == "line_count") st.line_count = as_u64(v);
    else if (key == "lines") {
      const auto& a = as_array(v);
      for (std::uint32_t j = 0; j < a.size; ++j)
        st.lines.push_back(unpack_statement_row(a.ptr[j]));
    }
    else if (key == "next_after") st.next_after = as_u64(v);
  });
  return st;
}

// An array of channel names as bits; names this build does not know are skipped.
std::uint32_t unpack_consents(const msgpack::object& o) {
  std::uint32_t bits = 0;
  const auto& a = as_array(o);
  for (std::uint32_t j = 0; j < a.size; ++j)
    bits |= consent_bit(as_str(a.ptr[j]));
  return bits;
}

stream_event unpack_event(const msgpack::object& o) {
  stream_event e;
  each_field(o, [&](std::string_view key, const msgpack::object& v) {
    if (key == "seq") e.seq = as_u64(v);
    else if (key == "type") e.type = as_str(v);
    else if (key == "entry") e.entry = as_str(v);
    else if (key == "member") e.member = as_u64(v);
    else if (key == "brand") e.brand = as_str(v);
    else if (key == "txn") e.txn = as_bytes(v);
    else if (key == "points") e.points = as_i64(v);
    else if (key == "balance") e.balance = as_i64(v);
    else if (key == "occurred_at_us") e.occurred_at_us = as_u64(v);
    else if (key == "committed_at_us") e.committed_at_us = as_u64(v);
    else if (key == "consents") e.consents = unpack_consents(v);
    else if (key == "tier") e.tier = as_str(v);
    else if (key == "previous_tier") e.previous_tier = as_str(v);
    else if (key == "counterparty") e.counterparty = as_u64(v);
    else if (key == "partner") e.partner = as_str(v);
    else if (key == "amount") e.amount = as_i64(v);
    else if (key == "ref") e.ref = as_u64(v);
    else if (key == "hold") e.hold = as_u64(v);
    else if (key == "changed") e.changed = unpack_consents(v);
    else if (key == "source") e.source = as_str(v);
    else if (key == "drops_to") e.drops_to = as_str(v);
    else if (key == "drops_at_us") e.drops_at_us = as_u64(v);
    else if (key == "household") e.household = as_u64(v);
    else if (key == "missing") e.missing = as_i64(v);
    else if (key == "limit") e.limit = as_str(v);
    else if (key == "window") e.window = as_str(v);
    else if (key == "reached") e.reached = as_i64(v);
    else if (key == "bound") e.bound = as_i64(v);
    else if (key == "flagged") e.flagged = as_bool(v);
    else if (key == "reason") e.reason = as_str(v);
    else if (key == "expiring") {
      const auto& a = as_array(v);
      for (std::uint32_t j = 0; j < a.size; ++j) {
        expiring_lot l;
        each_field(a.ptr[j], [&](std::string_view lk, const msgpack::object& lv) {
          if (lk == "brand") l.brand = as_str(lv);
          else if (lk == "points") l.points = as_i64(lv);
          else if (lk == "expires_at_us") l.expires_at_us = as_u64(lv);
        });
        e.expiring.push_back(std::move(l));
      }
    }
  });
  return e;
}

report_row unpack_report_row(const msgpack::object& o) {
  report_row b;
  each_field(o, [&](std::string_view key, const msgpack::object& v) {
    if (key == "brand") b.brand = as_str(v);
    else if (key == "issued") b.issued = as_i64(v);
    else if (key == "refunded") b.refunded = as_i64(v);
    else if (key == "redeemed") b.redeemed = as_i64(v);
    else if (key == "reversed") b.reversed = as_i64(v);
    else if (key == "expired") b.expired = as_i64(v);
    else if (key == "opening_outstanding") b.opening_outstanding = as_i64(v);
    else if (key == "closing_outstanding") b.closing_outstanding = as_i64(v);
    else if (key == "cost_per_point") b.cost_per_point = as_str(v);
    else if (key == "closing_liability") b.closing_liability = as_i64(v);
    else if (key == "settlement") b.settlement = as_i64(v);
    else if (key == "settlement_closing") b.settlement_closing = as_i64(v);
    else if (key == "redemption_rate") b.redemption_rate = as_str(v);
    else if (key == "redemption_rate_bp") b.redemption_rate_bp = as_i64(v);
    else if (key == "members") b.members = as_u64(v);
    else if (key == "active_members") b.active_members = as_u64(v);
    else if (key == "active_rate_bp") b.active_rate_bp = as_i64(v);
    else if (key == "tiers") {
      const auto& a = as_array(v);
      for (std::uint32_t j = 0; j < a.size; ++j) {
        tier_count t;
        each_field(a.ptr[j], [&](std::string_view tk, const msgpack::object& tv) {
          if (tk == "tier") t.tier = as_str(tv);
          else if (tk == "members") t.members = as_u64(tv);
        });
        b.tiers.push_back(std::move(t));
      }
    } else if (key == "top") {
      const auto& a = as_array(v);
      for (std::uint32_t j = 0; j < a.size; ++j) {
        top_earner e;
        each_field(a.ptr[j], [&](std::string_view ek, const msgpack::object& ev) {
          if (ek == "member") e.member = as_u64(ev);
          else if (ek == "points") e.points = as_i64(ev);
        });
        b.top.push_back(e);
      }
    }
  });
  return b;
}

risk_member unpack_risk_member(const msgpack::object& o) {
  risk_member x;
  each_field(o, [&](std::string_view key, const msgpack::object& v) {
    if (key == "member") x.member = as_u64(v);
    else if (key == "flagged") x.flagged = as_bool(v);
    else if (key == "blocked") x.blocked = as_bool(v);
    else if (key == "breaches") x.breaches = static_cast<std::uint32_t>(as_u64(v));
    else if (key == "blocked_at_us") x.blocked_at_us = as_u64(v);
    else if (key == "reason") x.reason = as_str(v);
  });
  return x;
}

report_result unpack_report(const msgpack::object& o) {
  report_result rep;
  each_field(o, [&](std::string_view key, const msgpack::object& v) {
    if (key == "from_us") rep.from_us = as_u64(v);
    else if (key == "to_us") rep.to_us = as_u64(v);
    else if (key == "first_seq") rep.first_seq = as_u64(v);
    else if (key == "last_seq") rep.last_seq = as_u64(v);
    else if (key == "active_days") rep.active_days = static_cast<std::uint32_t>(as_u64(v));
    else if (key == "active_from_us") rep.active_from_us = as_u64(v);
    else if (key == "brands") {
      const auto& a = as_array(v);
      for (std::uint32_t j = 0; j < a.size; ++j)
        rep.brands.push_back(unpack_report_row(a.ptr[j]));
    }
  });
  return rep;
}

void unpack_response(const msgpack::object& o, response& r) {
  if (o.type != msgpack::type::MAP)
    throw std::runtime_error("a response must be a map");
  // The op first: `entries` and `members` mean different things in the
  // answers of verify and of history / expire.
  each_field(o, [&](std::string_view key, const msgpack::object& v) {
    if (key == "op") r.op = opcode_from(as_str(v));
  });
  const bool is_verify = r.op == opcode::verify;
  bool ok = true;
  std::string error_name;
  bool have_code = false;
  each_field(o, [&](std::string_view key, const msgpack::object& v) {
    if (key == "id") r.id = as_u64(v);
    else if (key == "ok") ok = as_bool(v);
    else if (key == "error") error_name = as_str(v);
    else if (key == "code") { r.code = static_cast<errc>(as_u64(v)); have_code = true; }
    else if (key == "message") r.message = as_str(v);
    else if (key == "leader") r.leader = as_str(v);
    else if (key == "version") r.version = static_cast<std::uint32_t>(as_u64(v));
    else if (key == "server") r.server = as_str(v);
    else if (key == "limits" && v.type == msgpack::type::MAP) {
      each_field(v, [&](std::string_view lk, const msgpack::object& lv) {
        if (lk == "frame_bytes_max") r.frame_bytes_max = static_cast<std::uint32_t>(as_u64(lv));
        else if (lk == "inflight_max") r.inflight_max = static_cast<std::uint32_t>(as_u64(lv));
        else if (lk == "batch_ops_max") r.batch_ops_max = static_cast<std::uint32_t>(as_u64(lv));
      });
    }
    else if (key == "seq") r.seq = as_u64(v);
    else if (key == "member") r.member = as_u64(v);
    else if (key == "points") r.points = as_i64(v);
    else if (key == "balance") r.balance = as_i64(v);
    else if (key == "lifetime") r.lifetime = as_i64(v);
    else if (key == "tier") r.tier = as_str(v);
    else if (key == "brand") r.brand = as_str(v);
    else if (key == "replayed") r.replayed = as_bool(v);
    else if (key == "balance_after") r.balance_after = as_i64(v);
    else if (key == "tier_after") r.tier_after = as_str(v);
    else if (key == "quoted") r.quoted = as_bool(v);
    else if (key == "dry_run") r.dry_run = as_bool(v);
    else if (key == "lines") {
      const auto& a = as_array(v);
      for (std::uint32_t j = 0; j < a.size; ++j)
        r.lines.push_back(unpack_line(a.ptr[j]));
    }
    else if (key == "rules") r.rules = unpack_list(v, unpack_rule_outcome);
    else if (key == "available") r.available = as_i64(v);
    else if (key == "household") r.household = as_u64(v);
    else if (key == "household_available") r.household_available = as_i64(v);
    else if (key == "household_members") r.household_members = unpack_list(v, unpack_household_member);
    else if (key == "pending") r.pending = as_i64(v);
    else if (key == "held") r.held = as_i64(v);
    else if (key == "debt") r.debt = as_i64(v);
    else if (key == "next_tier") r.next_tier = as_str(v);
    else if (key == "qualifying") r.qualifying = as_i64(v);
    else if (key == "to_next_tier") r.to_next_tier = as_i64(v);
    else if (key == "next_expiry_points") r.next_expiry_points = as_i64(v);
    else if (key == "next_expiry_at_us") r.next_expiry_at_us = as_u64(v);
    else if (key == "tier_holds_until_us") r.tier_holds_until_us = as_u64(v);
    else if (key == "tier_drops_to") r.tier_drops_to = as_str(v);
    else if (key == "tier_keep_missing") r.tier_keep_missing = as_i64(v);
    else if (key == "hold") r.hold = as_u64(v);
    else if (key == "expires_at_us") r.expires_at_us = as_u64(v);
    else if (key == "reward") r.reward = as_str(v);
    else if (key == "next_before") r.next_before = as_u64(v);
    else if (key == "expired") r.expired = as_i64(v);
    else if (key == "key_id") r.key_id = static_cast<std::uint32_t>(as_u64(v));
    else if (key == "key_name") r.key_name = as_str(v);
    else if (key == "policy_version") r.policy_version = static_cast<std::uint32_t>(as_u64(v));
    else if (key == "moves") r.moves = unpack_list(v, unpack_move);
    else if (key == "entries" && r.op == opcode::journal) r.journal = unpack_list(v, unpack_journal_entry);
    else if (key == "next") r.next = as_u64(v);
    else if (key == "last_seq") r.last_seq = as_u64(v);
    else if (key == "entries" && v.type == msgpack::type::ARRAY) {
      const auto& a = v.via.array;
      for (std::uint32_t j = 0; j < a.size; ++j)
        r.entries.push_back(unpack_entry(a.ptr[j]));
    }
    else if (key == "entries") r.verify.entries = as_u64(v);
    else if (key == "partner") r.partner = as_str(v);
    else if (key == "file") r.file = as_str(v);
    else if (key == "bytes") r.bytes = as_u64(v);
    else if (key == "settlements") {
      const auto& a = as_array(v);
      for (std::uint32_t j = 0; j < a.size; ++j)
        r.settlements.push_back(unpack_settlement(a.ptr[j]));
    }
    else if (key == "brands") {
      const auto& a = as_array(v);
      for (std::uint32_t j = 0; j < a.size; ++j)
        r.liabilities.push_back(unpack_liability(a.ptr[j]));
    }
    else if (key == "activity") r.activity = unpack_activity(v);
    else if (key == "consents") r.consents = unpack_consents(v);
    else if (key == "events") {
      const auto& a = as_array(v);
      for (std::uint32_t j = 0; j < a.size; ++j)
        r.events.push_back(unpack_event(a.ptr[j]));
    }
    else if (key == "statement") r.statement = unpack_statement(v);
    else if (key == "report") r.report = unpack_report(v);
    else if (key == "members" && v.type == msgpack::type::ARRAY) r.risk = unpack_list(v, unpack_risk_member);
    else if (key == "members") (is_verify ? r.verify.members : r.members) = as_u64(v);
    else if (key == "blocked") r.blocked = as_bool(v);
    else if (key == "flagged") r.flagged = as_bool(v);
    else if (key == "breaches") r.breaches = static_cast<std::uint32_t>(as_u64(v));
    else if (key == "valid") r.verify.valid = as_bool(v);
    else if (key == "postings") r.verify.postings = as_u64(v);
    else if (key == "accounts") r.verify.accounts = as_u64(v);
    else if (key == "txn_ids") r.verify.txn_ids = as_u64(v);
    else if (key == "problems" && v.type == msgpack::type::ARRAY) {
      for (std::uint32_t j = 0; j < v.via.array.size; ++j)
        r.verify.problems.push_back(as_str(v.via.array.ptr[j]));
    }
    else if (key == "stats" && v.type == msgpack::type::MAP) {
      for (std::uint32_t j = 0; j < v.via.map.size; ++j)
        r.stats.emplace_back(as_str(v.via.map.ptr[j].key), as_u64(v.via.map.ptr[j].val));
    }
    else if (key == "role") r.role = as_str(v);
    else if (key == "nodes" && v.type == msgpack::type::ARRAY) {
      for (std::uint32_t j = 0; j < v.via.array.size; ++j) {
        cluster_server n;
        each_field(v.via.array.ptr[j], [&](std::string_view k, const msgpack::object& x) {
          if (k == "id") n.id = as_u64(x);
          else if (k == "raft") n.raft = as_str(x);
          else if (k == "client") n.client = as_str(x);
          else if (k == "role") n.role = as_str(x);
          else if (k == "match_index") n.match_index = as_u64(x);
          else if (k == "lag") n.lag = as_u64(x);
        });
        r.nodes.push_back(std::move(n));
      }
    }
    else if (key == "results" && v.type == msgpack::type::ARRAY) {
      r.results.resize(v.via.array.size);
      for (std::uint32_t j = 0; j < v.via.array.size; ++j)
        unpack_response(v.via.array.ptr[j], r.results[j]);
    }
  });
  if (ok)
    r.code = errc::ok;
  else if (!have_code)
    r.code = errc_from_string(error_name);
  else if (r.code == errc::ok)
    r.code = errc::internal_error;  // "ok": false with code 0 is not a valid response
}

} // namespace

std::uint32_t read_be32(const unsigned char* p) noexcept {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}

void write_be32(unsigned char* p, std::uint32_t v) noexcept {
  p[0] = static_cast<unsigned char>(v >> 24);
  p[1] = static_cast<unsigned char>(v >> 16);
  p[2] = static_cast<unsigned char>(v >> 8);
  p[3] = static_cast<unsigned char>(v);
}

// Strings and binaries of a frame are referenced where they lie, not copied
// into the zone: the decoder copies what it keeps before the frame goes.
bool reference_in_place(msgpack::type::object_type, std::size_t, void*) { return true; }

request decode_request(const char* data, std::size_t size) {
  request r;
  // One zone per thread, emptied for each frame (it keeps its first chunk):
  // unpacking a request allocates nothing in the common case.
  thread_local msgpack::zone zone;
  zone.clear();
  msgpack::object obj;
  try {
    std::size_t off = 0;
    obj = msgpack::unpack(zone, data, size, off, reference_in_place, nullptr, unpack_limits());
    if (off != size) {
      r.error = errc::malformed_frame;
      r.error_message = "the frame holds bytes after its msgpack value";
      return r;
    }
  } catch (const std::exception& e) {
    r.error = errc::malformed_frame;
    r.error_message = std::string("the frame is not valid msgpack: ") + e.what();
    return r;
  }
  decode_map(obj, r, false);
  return r;
}

std::size_t journal_entry_bytes(const journal_entry& e) {
  thread_local std::vector<char> scratch;
  scratch.clear();
  packer pk(scratch);
  pack_journal_entry(pk, e);
  pk.finish();
  return scratch.size();
}

void encode_event(std::vector<char>& out, const stream_event& e) {
  packer pk(out);
  pack_event(pk, e);
  pk.finish();
}

void encode_response(std::vector<char>& out, const response& r) {
  framed(out, [&](packer& pk) { pack_response(pk, r); });
}

void encode_request(std::vector<char>& out, const request& r) {
  framed(out, [&](packer& pk) { pack_request(pk, r); });
}

bool decode_response(const char* data, std::size_t size, response& out, std::string& error) {
  try {
    std::size_t off = 0;
    auto oh = msgpack::unpack(data, size, off, nullptr, nullptr, unpack_limits());
    if (off != size) {
      error = "trailing bytes after the response";
      return false;
    }
    out = response{};
    unpack_response(oh.get(), out);
    return true;
  } catch (const std::exception& e) {
    error = std::string("invalid response: ") + e.what();
    return false;
  }
}

} // namespace loyalty::io

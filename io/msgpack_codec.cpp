// msgpack encoding and decoding of protocol frames (docs/PROTOCOL.md).
#include "io/codec.hpp"

#include <msgpack.hpp>

#include <array>
#include <cstring>
#include <limits>

namespace loyalty::io {

namespace {

constexpr std::array<const char*, 9> op_names{"none", "hello", "enroll", "earn", "redeem",
                                              "balance", "verify", "stats", "batch"};

opcode opcode_from(std::string_view s) {
  for (std::size_t i = 1; i < op_names.size(); ++i)
    if (s == op_names[i])
      return static_cast<opcode>(i);
  return opcode::none;
}

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
      for (std::size_t f = 0; f < field_names.size(); ++f)
        if (name == field_names[f])
          fields_[f] = &m.ptr[i].val;
    }
  }

  enum field : std::size_t { f_op, f_id, f_version, f_client, f_member, f_brand, f_txn, f_amount,
                             f_currency, f_occurred_at, f_points, f_ops, f_count };
  static constexpr std::array<const char*, f_count> field_names{
    "op", "id", "version", "client", "member", "brand", "txn", "amount", "currency", "occurred_at", "points", "ops"};

  const msgpack::object* get(field f, bool required) {
    auto* o = fields_[f];
    if (o == nullptr && required)
      fail(errc::missing_field, std::string("field '") + field_names[f] + "' is missing");
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
      fail(errc::invalid_argument, std::string("field '") + field_names[f] + "' must not be negative");
    else
      fail(errc::wrong_type, std::string("field '") + field_names[f] + "' must be an unsigned integer");
    return false;
  }

  // Amounts and points: msgpack integers, > 0, <= INT64_MAX.
  bool amount(field f, std::int64_t& out) {
    auto* o = get(f, true);
    if (o == nullptr)
      return false;
    std::string name = std::string("field '") + field_names[f] + "'";
    if (o->type == msgpack::type::NEGATIVE_INTEGER) {
      fail(errc::invalid_amount, name + " must be positive");
      return false;
    }
    if (o->type != msgpack::type::POSITIVE_INTEGER) {
      fail(errc::wrong_type, name + " must be an integer");
      return false;
    }
    if (o->via.u64 > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      fail(errc::amount_overflow, name + " is above 2^63-1");
      return false;
    }
    if (o->via.u64 == 0) {
      fail(errc::invalid_amount, name + " must be positive");
      return false;
    }
    out = static_cast<std::int64_t>(o->via.u64);
    return true;
  }

  bool str(field f, std::string& out, std::size_t max_bytes, bool required = true, bool allow_bin = false) {
    auto* o = get(f, required);
    if (o == nullptr)
      return false;
    std::string name = std::string("field '") + field_names[f] + "'";
    if (o->type == msgpack::type::STR)
      out.assign(o->via.str.ptr, o->via.str.size);
    else if (allow_bin && o->type == msgpack::type::BIN)
      out.assign(o->via.bin.ptr, o->via.bin.size);
    else {
      fail(errc::wrong_type, name + (allow_bin ? " must be a string or binary" : " must be a string"));
      return false;
    }
    if (out.empty() || out.size() > max_bytes) {
      fail(errc::invalid_argument, name + " must be 1 to " + std::to_string(max_bytes) + " bytes");
      return false;
    }
    return true;
  }

  void member() {
    if (!u64(f_member, r_.member))
      return;
    if (r_.member == 0 || r_.member > (std::uint64_t{1} << 56) - 1)
      fail(errc::invalid_argument, "field 'member' must be between 1 and 2^56-1");
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
  request& r_;
  std::array<const msgpack::object*, f_count> fields_{};
};

void decode_map(const msgpack::object& o, request& r, bool in_batch);

void decode_fields(reader& rd, request& r, bool in_batch) {
  using f = reader::field;
  switch (r.op) {
    case opcode::hello: {
      std::uint64_t v = 0;
      if (rd.u64(f::f_version, v))
        r.version = v > 0xFFFFFFFFu ? 0xFFFFFFFFu : static_cast<std::uint32_t>(v);
      if (rd.get(f::f_client, false))
        rd.str(f::f_client, r.client_name, 64);
      break;
    }
    case opcode::enroll:
      rd.member();
      rd.str(f::f_brand, r.brand, 64);
      break;
    case opcode::earn:
      rd.str(f::f_txn, r.txn, limits::txn_id_bytes_max, true, true);
      rd.member();
      rd.str(f::f_brand, r.brand, 64);
      rd.amount(f::f_amount, r.amount);
      rd.currency();
      rd.u64(f::f_occurred_at, r.occurred_at_us);
      break;
    case opcode::redeem:
      rd.str(f::f_txn, r.txn, limits::txn_id_bytes_max, true, true);
      rd.member();
      rd.amount(f::f_points, r.points);
      break;
    case opcode::balance:
      rd.member();
      break;
    case opcode::verify:
    case opcode::stats:
      break;
    case opcode::batch: {
      if (in_batch) {
        rd.fail(errc::invalid_argument, "a batch cannot contain a batch");
        break;
      }
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
  if (in_batch && r.op != opcode::enroll && r.op != opcode::earn && r.op != opcode::redeem &&
      r.op != opcode::balance && r.op != opcode::batch) {
    rd.fail(errc::invalid_argument, "operation '" + op + "' cannot be part of a batch");
    return;
  }
  decode_fields(rd, r, in_batch);
}

// Appends msgpack output to a std::vector<char>.
struct vec_writer {
  std::vector<char>& out;
  void write(const char* p, std::size_t n) { out.insert(out.end(), p, p + n); }
};
using packer = msgpack::packer<vec_writer>;

void pack_str(packer& pk, std::string_view s) {
  pk.pack_str(static_cast<std::uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

void kv(packer& pk, std::string_view key) { pack_str(pk, key); }

void pack_response(packer& pk, const response& r) {
  const bool ok = r.code == errc::ok;
  std::uint32_t n = 3;
  if (!ok)
    n += 3;
  else
    switch (r.op) {
      case opcode::hello: n += 3; break;
      case opcode::enroll: n += 2; break;
      case opcode::earn:
      case opcode::redeem: n += 7; break;
      case opcode::balance: n += 5; break;
      case opcode::verify: n += 7; break;
      case opcode::stats:
      case opcode::batch: n += 1; break;
      case opcode::none: break;
    }
  pk.pack_map(n);
  kv(pk, "id"), pk.pack_uint64(r.id);
  kv(pk, "op"), pack_str(pk, op_names[static_cast<std::size_t>(r.op)]);
  kv(pk, "ok"), ok ? pk.pack_true() : pk.pack_false();
  if (!ok) {
    kv(pk, "error"), pack_str(pk, to_string(r.code));
    kv(pk, "code"), pk.pack_uint16(static_cast<std::uint16_t>(r.code));
    kv(pk, "message"), pack_str(pk, r.message);
    return;
  }
  switch (r.op) {
    case opcode::hello:
      kv(pk, "version"), pk.pack_uint32(r.version);
      kv(pk, "server"), pack_str(pk, r.server);
      kv(pk, "limits"), pk.pack_map(3);
      kv(pk, "frame_bytes_max"), pk.pack_uint32(r.frame_bytes_max);
      kv(pk, "inflight_max"), pk.pack_uint32(r.inflight_max);
      kv(pk, "batch_ops_max"), pk.pack_uint32(r.batch_ops_max);
      break;
    case opcode::enroll:
      kv(pk, "seq"), pk.pack_uint64(r.seq);
      kv(pk, "member"), pk.pack_uint64(r.member);
      break;
    case opcode::earn:
    case opcode::redeem:
      kv(pk, "seq"), pk.pack_uint64(r.seq);
      kv(pk, "member"), pk.pack_uint64(r.member);
      kv(pk, "points"), pk.pack_int64(r.points);
      kv(pk, "balance"), pk.pack_int64(r.balance);
      kv(pk, "lifetime"), pk.pack_int64(r.lifetime);
      kv(pk, "tier"), pack_str(pk, r.tier);
      kv(pk, "replayed"), r.replayed ? pk.pack_true() : pk.pack_false();
      break;
    case opcode::balance:
      kv(pk, "member"), pk.pack_uint64(r.member);
      kv(pk, "brand"), pack_str(pk, r.brand);
      kv(pk, "balance"), pk.pack_int64(r.balance);
      kv(pk, "lifetime"), pk.pack_int64(r.lifetime);
      kv(pk, "tier"), pack_str(pk, r.tier);
      break;
    case opcode::verify:
      kv(pk, "valid"), r.verify.valid ? pk.pack_true() : pk.pack_false();
      kv(pk, "entries"), pk.pack_uint64(r.verify.entries);
      kv(pk, "postings"), pk.pack_uint64(r.verify.postings);
      kv(pk, "accounts"), pk.pack_uint64(r.verify.accounts);
      kv(pk, "members"), pk.pack_uint64(r.verify.members);
      kv(pk, "txn_ids"), pk.pack_uint64(r.verify.txn_ids);
      kv(pk, "problems"), pk.pack_array(static_cast<std::uint32_t>(r.verify.problems.size()));
      for (auto& p : r.verify.problems)
        pack_str(pk, p);
      break;
    case opcode::stats:
      kv(pk, "stats"), pk.pack_map(static_cast<std::uint32_t>(r.stats.size()));
      for (auto& [name, value] : r.stats)
        kv(pk, name), pk.pack_uint64(value);
      break;
    case opcode::batch:
      kv(pk, "results"), pk.pack_array(static_cast<std::uint32_t>(r.results.size()));
      for (auto& sub : r.results)
        pack_response(pk, sub);
      break;
    case opcode::none:
      break;
  }
}

void pack_request(packer& pk, const request& r) {
  std::uint32_t n = 2;
  switch (r.op) {
    case opcode::hello: n += r.client_name.empty() ? 1 : 2; break;
    case opcode::enroll: n += 2; break;
    case opcode::earn: n += 6; break;
    case opcode::redeem: n += 3; break;
    case opcode::balance: n += 1; break;
    case opcode::batch: n += 1; break;
    default: break;
  }
  pk.pack_map(n);
  kv(pk, "op"), pack_str(pk, op_names[static_cast<std::size_t>(r.op)]);
  kv(pk, "id"), pk.pack_uint64(r.id);
  auto txn = [&] {
    kv(pk, "txn");
    pk.pack_bin(static_cast<std::uint32_t>(r.txn.size()));
    pk.pack_bin_body(r.txn.data(), static_cast<std::uint32_t>(r.txn.size()));
  };
  switch (r.op) {
    case opcode::hello:
      kv(pk, "version"), pk.pack_uint32(r.version);
      if (!r.client_name.empty())
        kv(pk, "client"), pack_str(pk, r.client_name);
      break;
    case opcode::enroll:
      kv(pk, "member"), pk.pack_uint64(r.member);
      kv(pk, "brand"), pack_str(pk, r.brand);
      break;
    case opcode::earn:
      txn();
      kv(pk, "member"), pk.pack_uint64(r.member);
      kv(pk, "brand"), pack_str(pk, r.brand);
      kv(pk, "amount"), pk.pack_int64(r.amount);
      kv(pk, "currency"), pack_str(pk, r.currency);
      kv(pk, "occurred_at"), pk.pack_uint64(r.occurred_at_us);
      break;
    case opcode::redeem:
      txn();
      kv(pk, "member"), pk.pack_uint64(r.member);
      kv(pk, "points"), pk.pack_int64(r.points);
      break;
    case opcode::balance:
      kv(pk, "member"), pk.pack_uint64(r.member);
      break;
    case opcode::batch:
      kv(pk, "ops"), pk.pack_array(static_cast<std::uint32_t>(r.ops.size()));
      for (auto& sub : r.ops)
        pack_request(pk, sub);
      break;
    default:
      break;
  }
}

template <class F>
void framed(std::vector<char>& out, F body) {
  const auto start = out.size();
  out.resize(start + frame_header_bytes);
  vec_writer w{out};
  packer pk(w);
  body(pk);
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
bool as_bool(const msgpack::object& o) {
  if (o.type != msgpack::type::BOOLEAN)
    throw std::runtime_error("expected a boolean");
  return o.via.boolean;
}

void unpack_response(const msgpack::object& o, response& r) {
  if (o.type != msgpack::type::MAP)
    throw std::runtime_error("a response must be a map");
  bool ok = true;
  std::string error_name;
  bool have_code = false;
  for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
    const auto& k = o.via.map.ptr[i].key;
    const auto& v = o.via.map.ptr[i].val;
    if (k.type != msgpack::type::STR)
      continue;
    std::string_view key(k.via.str.ptr, k.via.str.size);
    if (key == "id") r.id = as_u64(v);
    else if (key == "op") r.op = opcode_from(as_str(v));
    else if (key == "ok") ok = as_bool(v);
    else if (key == "error") error_name = as_str(v);
    else if (key == "code") { r.code = static_cast<errc>(as_u64(v)); have_code = true; }
    else if (key == "message") r.message = as_str(v);
    else if (key == "version") r.version = static_cast<std::uint32_t>(as_u64(v));
    else if (key == "server") r.server = as_str(v);
    else if (key == "limits" && v.type == msgpack::type::MAP) {
      for (std::uint32_t j = 0; j < v.via.map.size; ++j) {
        if (is_str(v.via.map.ptr[j].key, "frame_bytes_max")) r.frame_bytes_max = static_cast<std::uint32_t>(as_u64(v.via.map.ptr[j].val));
        if (is_str(v.via.map.ptr[j].key, "inflight_max")) r.inflight_max = static_cast<std::uint32_t>(as_u64(v.via.map.ptr[j].val));
        if (is_str(v.via.map.ptr[j].key, "batch_ops_max")) r.batch_ops_max = static_cast<std::uint32_t>(as_u64(v.via.map.ptr[j].val));
      }
    }
    else if (key == "seq") r.seq = as_u64(v);
    else if (key == "member") r.member = as_u64(v);
    else if (key == "points") r.points = as_i64(v);
    else if (key == "balance") r.balance = as_i64(v);
    else if (key == "lifetime") r.lifetime = as_i64(v);
    else if (key == "tier") r.tier = as_str(v);
    else if (key == "brand") r.brand = as_str(v);
    else if (key == "replayed") r.replayed = as_bool(v);
    else if (key == "valid") r.verify.valid = as_bool(v);
    else if (key == "entries") r.verify.entries = as_u64(v);
    else if (key == "postings") r.verify.postings = as_u64(v);
    else if (key == "accounts") r.verify.accounts = as_u64(v);
    else if (key == "members") r.verify.members = as_u64(v);
    else if (key == "txn_ids") r.verify.txn_ids = as_u64(v);
    else if (key == "problems" && v.type == msgpack::type::ARRAY) {
      for (std::uint32_t j = 0; j < v.via.array.size; ++j)
        r.verify.problems.push_back(as_str(v.via.array.ptr[j]));
    }
    else if (key == "stats" && v.type == msgpack::type::MAP) {
      for (std::uint32_t j = 0; j < v.via.map.size; ++j)
        r.stats.emplace_back(as_str(v.via.map.ptr[j].key), as_u64(v.via.map.ptr[j].val));
    }
    else if (key == "results" && v.type == msgpack::type::ARRAY) {
      r.results.resize(v.via.array.size);
      for (std::uint32_t j = 0; j < v.via.array.size; ++j)
        unpack_response(v.via.array.ptr[j], r.results[j]);
    }
  }
  if (ok)
    r.code = errc::ok;
  else if (!have_code)
    r.code = errc_from_string(error_name);
  else if (r.code == errc::ok)
    r.code = errc::internal_error;  // "ok": false with code 0 is not a valid response
}

} // namespace

const char* to_string(opcode op) noexcept {
  auto i = static_cast<std::size_t>(op);
  return i < op_names.size() ? op_names[i] : "none";
}

std::uint32_t read_be32(const unsigned char* p) noexcept {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}

void write_be32(unsigned char* p, std::uint32_t v) noexcept {
  p[0] = static_cast<unsigned char>(v >> 24);
  p[1] = static_cast<unsigned char>(v >> 16);
  p[2] = static_cast<unsigned char>(v >> 8);
  p[3] = static_cast<unsigned char>(v);
}

request decode_request(const char* data, std::size_t size) {
  request r;
  msgpack::object_handle oh;
  try {
    std::size_t off = 0;
    oh = msgpack::unpack(data, size, off, nullptr, nullptr, unpack_limits());
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
  decode_map(oh.get(), r, false);
  return r;
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

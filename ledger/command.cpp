// Encoding of a group-commit batch for the replicated log (command.hpp).
#include "ledger/command.hpp"

#include <cstring>
#include <memory>
#include <type_traits>
#include <unordered_map>

namespace loyalty::ledger {

namespace {

// LLC2 (schema 9) adds each op's fresh member key; LLC1 commands, which a
// node's log may still hold from before the upgrade, decode without it.
constexpr char magic[4] = {'L', 'L', 'C', '2'};
constexpr char magic_v1[4] = {'L', 'L', 'C', '1'};
constexpr char policy_magic[4] = {'L', 'L', 'P', '1'};
// A program file is a few kilobytes; this bounds what a decoder allocates.
constexpr std::uint32_t policy_text_bytes_max = 16u << 20;

// How an op's ref_seq travels.
enum class ref_mode : std::uint8_t {
  seq = 0,    // `ref` is the seq itself (0: none)
  local = 1,  // `ref` is the position of an earlier op of this command, whose seq it takes
};

class writer {
public:
  explicit writer(std::string& out) : out_(out) {}
  template <class T>
  void put(T v) {
    static_assert(std::is_trivially_copyable_v<T>);
    out_.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void bytes(const void* p, std::size_t n) {
    if (n > 0)
      out_.append(static_cast<const char*>(p), n);
  }

private:
  std::string& out_;
};

class reader {
public:
  explicit reader(std::string_view in) : in_(in) {}
  template <class T>
  bool get(T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    if (in_.size() - pos_ < sizeof v)
      return false;
    std::memcpy(&v, in_.data() + pos_, sizeof v);
    pos_ += sizeof v;
    return true;
  }
  bool bytes(void* p, std::size_t n) {
    if (in_.size() - pos_ < n)
      return false;
    if (n > 0)
      std::memcpy(p, in_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  [[nodiscard]] bool done() const noexcept { return pos_ == in_.size(); }

private:
  std::string_view in_;
  std::size_t pos_ = 0;
};

} // namespace

std::string encode_command(const std::vector<op>& batch, std::uint64_t now_us) {
  std::string out;
  out.reserve(16 + batch.size() * 256);
  writer w(out);
  w.bytes(magic, sizeof magic);
  w.put(now_us);
  std::uint32_t count = 0;
  for (const auto& o : batch)
    count += o.kind != op_kind::barrier ? 1 : 0;
  w.put(count);
  // The ops of this command that a later one refers to by its cell.
  std::unordered_map<const std::atomic<std::uint64_t>*, std::uint32_t> cells;
  std::uint32_t pos = 0;
  for (const auto& o : batch) {
    if (o.kind == op_kind::barrier)
      continue;
    w.put(static_cast<std::uint8_t>(o.kind));
    w.put(static_cast<std::uint16_t>(o.entry));
    w.put(o.member_id);
    w.put(o.brand_id);
    w.put(o.txn_id_bytes);
    w.bytes(o.txn_id.data(), o.txn_id_bytes);
    w.put(o.request_hash);
    w.put(o.occurred_at_us);
    w.put(o.amount_minor);
    w.put(o.points);
    w.put(static_cast<std::uint8_t>(o.require_nonnegative));
    w.put(static_cast<std::uint16_t>(o.precheck));
    w.put(static_cast<std::uint8_t>(o.postings.size()));
    w.bytes(o.postings.data(), o.postings.size() * sizeof(posting));
    w.put(static_cast<std::uint16_t>(o.details.size()));
    w.bytes(o.details.data(), o.details.size() * sizeof(entry_detail));
    // As apply_post reads it: ref_seq, else the cell's value, else (a cell
    // not set yet) the op of this batch that will set it.
    ref_mode mode = ref_mode::seq;
    std::uint64_t ref = o.ref_seq;
    if (ref == 0 && o.ref_seq_from) {
      ref = o.ref_seq_from->load(std::memory_order_relaxed);
      if (ref == 0) {
        if (auto it = cells.find(o.ref_seq_from.get()); it != cells.end()) {
          mode = ref_mode::local;
          ref = it->second;
        }
      }
    }
    w.put(static_cast<std::uint8_t>(mode));
    w.put(ref);
    w.put(o.counterparty_id);
    w.put(static_cast<std::uint8_t>(o.alias.size()));
    w.bytes(o.alias.data(), o.alias.size());
    w.put(static_cast<std::uint8_t>(o.has_member_state));
    w.put(o.lifetime_after);
    w.put(o.tier_after);
    w.put(o.key_id);
    w.put(o.policy_version);
    w.put(o.partner_id);
    w.put(static_cast<std::uint8_t>(o.fresh_key ? o.fresh_key->size() : 0));
    if (o.fresh_key)
      w.bytes(o.fresh_key->data(), o.fresh_key->size());
    if (o.seq_to)
      cells[o.seq_to.get()] = pos;
    ++pos;
  }
  return out;
}

std::string encode_policy_command(const policy_change& p, std::uint64_t now_us) {
  std::string out;
  writer w(out);
  w.bytes(policy_magic, sizeof policy_magic);
  w.put(now_us);
  w.bytes(p.sha256.data(), p.sha256.size());
  w.put(static_cast<std::uint32_t>(p.text.size()));
  w.bytes(p.text.data(), p.text.size());
  return out;
}

namespace {

bool decode_policy(std::string_view bytes, command& out, std::string& error) {
  reader r(bytes);
  char m[sizeof policy_magic] = {};
  policy_change p;
  std::uint32_t n = 0;
  if (!r.bytes(m, sizeof m) || !r.get(out.now_us) || !r.bytes(p.sha256.data(), p.sha256.size()) || !r.get(n)) {
    error = "a program version command cut short in its header";
    return false;
  }
  if (n > policy_text_bytes_max || n > bytes.size()) {
    error = "a program version command claims a text of " + std::to_string(n) + " bytes in " +
            std::to_string(bytes.size());
    return false;
  }
  p.text.resize(n);
  if (!r.bytes(p.text.data(), n) || !r.done()) {
    error = "a program version command whose text does not fill it";
    return false;
  }
  out.ops.clear();
  out.policy = std::move(p);
  return true;
}

} // namespace

bool decode_command(std::string_view bytes, command& out, std::string& error) {
  if (bytes.size() >= sizeof policy_magic && std::memcmp(bytes.data(), policy_magic, sizeof policy_magic) == 0)
    return decode_policy(bytes, out, error);
  out.policy.reset();
  reader r(bytes);
  char m[sizeof magic] = {};
  std::uint32_t count = 0;
  if (!r.bytes(m, sizeof m) || (std::memcmp(m, magic, sizeof magic) != 0 && std::memcmp(m, magic_v1, sizeof magic_v1) != 0)) {
    error = "not a ledger command (no LLC2, LLC1 or LLP1 magic)";
    return false;
  }
  const bool with_keys = std::memcmp(m, magic, sizeof magic) == 0;
  if (!r.get(out.now_us) || !r.get(count)) {
    error = "a ledger command cut short in its header";
    return false;
  }
  // Every op takes at least its fixed fields: a count the bytes cannot hold
  // is refused before anything is allocated for it.
  constexpr std::size_t op_bytes_min = 90;
  if (count > bytes.size() / op_bytes_min) {
    error = "a ledger command claims " + std::to_string(count) + " ops in " + std::to_string(bytes.size()) + " bytes";
    return false;
  }
  out.ops.clear();
  out.ops.resize(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    op& o = out.ops[i];
    auto fail = [&](const std::string& why) {
      error = "ledger command op " + std::to_string(i) + ": " + why;
      return false;
    };
    std::uint8_t kind = 0, nonneg = 0, npost = 0, mode = 0, alias_bytes = 0, has_state = 0;
    std::uint16_t entry = 0, precheck = 0, ndet = 0;
    std::uint64_t ref = 0;
    if (!r.get(kind) || !r.get(entry) || !r.get(o.member_id) || !r.get(o.brand_id) || !r.get(o.txn_id_bytes))
      return fail("cut short");
    if (kind != static_cast<std::uint8_t>(op_kind::enroll) && kind != static_cast<std::uint8_t>(op_kind::post))
      return fail("unknown op kind " + std::to_string(kind));
    o.kind = static_cast<op_kind>(kind);
    o.entry = static_cast<entry_kind>(entry);
    if (o.txn_id_bytes > o.txn_id.size())
      return fail("a txn id of " + std::to_string(o.txn_id_bytes) + " bytes");
    if (!r.bytes(o.txn_id.data(), o.txn_id_bytes) || !r.get(o.request_hash) || !r.get(o.occurred_at_us) ||
        !r.get(o.amount_minor) || !r.get(o.points) || !r.get(nonneg) || !r.get(precheck) || !r.get(npost))
      return fail("cut short");
    o.require_nonnegative = nonneg != 0;
    o.precheck = static_cast<errc>(precheck);
    if (npost > postings_per_entry_max)
      return fail(std::to_string(npost) + " postings");
    o.postings.resize(npost);
    if (!r.bytes(o.postings.data(), npost * sizeof(posting)) || !r.get(ndet))
      return fail("cut short");
    if (ndet > details_per_entry_max)
      return fail(std::to_string(ndet) + " details");
    o.details.resize(ndet);
    if (!r.bytes(o.details.data(), ndet * sizeof(entry_detail)) || !r.get(mode) || !r.get(ref) ||
        !r.get(o.counterparty_id) || !r.get(alias_bytes))
      return fail("cut short");
    if (mode == static_cast<std::uint8_t>(ref_mode::seq)) {
      o.ref_seq = ref;
    } else if (mode == static_cast<std::uint8_t>(ref_mode::local)) {
      if (ref >= i)
        return fail("refers to op " + std::to_string(ref) + ", which does not come before it");
      auto& earlier = out.ops[ref];
      if (!earlier.seq_to)
        earlier.seq_to = std::make_shared<std::atomic<std::uint64_t>>(0);
      o.ref_seq_from = earlier.seq_to;
    } else {
      return fail("unknown reference mode " + std::to_string(mode));
    }
    if (alias_bytes > limits::txn_id_bytes_max)
      return fail("an alias of " + std::to_string(alias_bytes) + " bytes");
    o.alias.resize(alias_bytes);
    if (!r.bytes(o.alias.data(), alias_bytes) || !r.get(has_state) || !r.get(o.lifetime_after) ||
        !r.get(o.tier_after) || !r.get(o.key_id) || !r.get(o.policy_version) || !r.get(o.partner_id))
      return fail("cut short");
    o.has_member_state = has_state != 0;
    if (with_keys) {
      std::uint8_t key_bytes = 0;
      if (!r.get(key_bytes))
        return fail("cut short");
      if (key_bytes != 0) {
        if (key_bytes != 32)
          return fail("a member key of " + std::to_string(key_bytes) + " bytes");
        o.fresh_key.emplace();
        if (!r.bytes(o.fresh_key->data(), key_bytes))
          return fail("cut short");
      }
    }
  }
  if (!r.done()) {
    error = "a ledger command with bytes after its last op";
    return false;
  }
  return true;
}

std::uint64_t journal_digest_step(std::uint64_t digest, const void* value, std::size_t bytes) noexcept {
  constexpr std::uint64_t k = 0x9e3779b97f4a7c15ull;
  const auto* p = static_cast<const unsigned char*>(value);
  std::uint64_t d = digest;
  std::size_t i = 0;
  for (; i + 8 <= bytes; i += 8) {
    std::uint64_t w = 0;
    std::memcpy(&w, p + i, 8);
    d = ((d << 23 | d >> 41) ^ w) * k;
  }
  if (i < bytes) {
    std::uint64_t w = 0;
    std::memcpy(&w, p + i, bytes - i);
    d = ((d << 23 | d >> 41) ^ w) * k;
  }
  // The length, so that values differing only in trailing zero bytes differ.
  d = ((d << 23 | d >> 41) ^ static_cast<std::uint64_t>(bytes)) * k;
  return d ^ (d >> 29);
}

} // namespace loyalty::ledger

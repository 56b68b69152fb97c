// libFuzzer target: the frame layer and the request decoder, as the server
// runs them on a connection's bytes (docs/PROTOCOL.md sections 1 and 8).
// The input is a byte stream of length-prefixed frames; each whole frame is
// decoded with decode_request, until the first one that would close the
// connection. Checked for every frame:
//  - decode_request does not throw (codec.hpp: errors are values);
//  - a request it accepts (error == ok) has an operation, and every bound the
//    engine relies on holds (ids, amounts, string sizes, batch size and
//    contents), so no engine code sees a value outside the protocol;
//  - the client encoder and the decoder agree: an accepted request encodes
//    to a frame that decodes to a request accepted again and encoding to the
//    same bytes (codec.hpp: decode_request(encode_request(r)) == r);
//  - the answer the server would give (the decoder's error, or an ok answer
//    to the op) encodes without throwing, and the client decodes it back to
//    the same id, op and code.
#include "frames.hpp"

#include "config/consent.hpp"
#include "io/wire/codec.hpp"
#include "io/wire/protocol.hpp"

#include <cstring>
#include <limits>
#include <string>
#include <vector>

using namespace loyalty;
using namespace loyalty::io;

namespace {

constexpr std::uint64_t member_id_max = (std::uint64_t{1} << 56) - 1;
// A frame limit well above what the server could buffer anyway: the input
// size bounds the work.
constexpr std::size_t frames_max = 4096;

bool is_posting(opcode op) {
  switch (op) {
    case opcode::earn: case opcode::redeem: case opcode::event: case opcode::hold: case opcode::capture:
    case opcode::release: case opcode::redeem_reward: case opcode::refund: case opcode::reverse_redemption:
    case opcode::adjust: case opcode::transfer: case opcode::link_alias: case opcode::partner_earn:
    case opcode::partner_burn:
      return true;
    default:
      return false;
  }
}

// The operations that address one member by id or alias, never both
// (link_alias has both: the member and the alias it gets).
bool addresses_member(opcode op) {
  return (is_posting(op) && op != opcode::link_alias) || op == opcode::balance || op == opcode::history;
}

void check_items(const request& r) {
  FUZZ_CHECK(r.items.size() <= items_max);
  std::int64_t left = r.amount;  // an earn's items add up to its amount, without overflow
  for (const auto& it : r.items) {
    FUZZ_CHECK(it.sku.size() <= code_bytes_max);
    FUZZ_CHECK(it.category.size() <= code_bytes_max);
    FUZZ_CHECK(it.qty >= 1);
    FUZZ_CHECK(it.amount >= 0);
    if (r.op == opcode::earn) {
      FUZZ_CHECK(it.amount <= left);
      left -= it.amount;
    }
  }
  if (r.op == opcode::earn && !r.items.empty())
    FUZZ_CHECK(left == 0);
}

// What the decoder promises about a request it accepted.
void check_accepted(const request& r, bool in_batch) {
  FUZZ_CHECK(r.error == errc::ok);
  FUZZ_CHECK(r.error_message.empty());
  FUZZ_CHECK(r.op != opcode::none);
  FUZZ_CHECK(static_cast<std::size_t>(r.op) <= static_cast<std::size_t>(opcode::journal));
  FUZZ_CHECK(std::strcmp(to_string(r.op), "none") != 0);
  if (r.has_member)
    FUZZ_CHECK(r.member >= 1 && r.member <= member_id_max);
  if (addresses_member(r.op)) {
    FUZZ_CHECK(r.has_member != !r.alias.empty());
    FUZZ_CHECK(r.alias.size() <= code_bytes_max);
  }
  if (is_posting(r.op) || r.op == opcode::explain) {
    FUZZ_CHECK(!r.txn.empty());
    FUZZ_CHECK(r.txn.size() <= limits::txn_id_bytes_max);
  }
  FUZZ_CHECK(r.brand.size() <= 64);
  FUZZ_CHECK(r.partner.size() <= code_bytes_max);
  FUZZ_CHECK(r.key.size() <= admin_key_bytes_max);
  FUZZ_CHECK(r.reason.size() <= reason_bytes_max);
  FUZZ_CHECK(r.amount >= 0);
  check_items(r);
  switch (r.op) {
    case opcode::enroll:
      FUZZ_CHECK(r.has_member);
      FUZZ_CHECK(!r.brand.empty());
      break;
    case opcode::earn:
      FUZZ_CHECK(r.amount > 0);
      FUZZ_CHECK(r.currency.size() == 3);
      break;
    case opcode::redeem: case opcode::hold: case opcode::transfer: case opcode::partner_earn:
    case opcode::partner_burn:
      FUZZ_CHECK(r.points > 0);
      break;
    case opcode::capture:
      FUZZ_CHECK(r.points >= 0);
      FUZZ_CHECK(r.hold >= 1);
      break;
    case opcode::release:
      FUZZ_CHECK(r.hold >= 1);
      break;
    case opcode::adjust:
      FUZZ_CHECK(r.points != 0);
      FUZZ_CHECK(r.points != std::numeric_limits<std::int64_t>::min());
      FUZZ_CHECK(!r.reason.empty());
      break;
    case opcode::history:
      FUZZ_CHECK(r.limit <= history_limit_max);
      break;
    case opcode::settlement:
      FUZZ_CHECK(r.brand.empty() != r.partner.empty());
      FUZZ_CHECK(r.limit <= statement_limit_max);
      [[fallthrough]];
    case opcode::activity:
      FUZZ_CHECK(r.to_us == 0 || r.from_us < r.to_us);
      break;
    case opcode::report:
      FUZZ_CHECK(r.to_us == 0 || r.from_us < r.to_us);
      FUZZ_CHECK(r.active_days <= report_active_days_max);
      FUZZ_CHECK(r.top <= report_top_max);
      break;
    case opcode::consent:
      FUZZ_CHECK(r.consent_mask != 0 && (r.consent_mask & ~consent_channels_all) == 0);
      FUZZ_CHECK((r.consent_values & ~r.consent_mask) == 0);
      FUZZ_CHECK(!r.source.empty() && !r.txn.empty());
      break;
    case opcode::subscribe:
      FUZZ_CHECK((r.event_types & ~event_types_all) == 0);
      FUZZ_CHECK(__builtin_popcount(r.consent_filter) <= 1 && (r.consent_filter & ~consent_channels_all) == 0);
    case opcode::journal:
      FUZZ_CHECK(r.limit <= journal_limit_max);
      break;
    case opcode::batch:
      FUZZ_CHECK(!in_batch);
      FUZZ_CHECK(!r.ops.empty());
      FUZZ_CHECK(r.ops.size() <= limits::batch_ops_max);
      break;
    default:
      break;
  }
  if (r.op != opcode::batch)
    FUZZ_CHECK(r.ops.empty());
  if (in_batch)
    FUZZ_CHECK(r.op != opcode::hello && r.op != opcode::verify && r.op != opcode::stats &&
               r.op != opcode::reload && r.op != opcode::liability && r.op != opcode::activity &&
               r.op != opcode::settlement && r.op != opcode::backup && r.op != opcode::report &&
               r.op != opcode::subscribe && r.op != opcode::journal);
}

// The payload of a frame encode_request / encode_response appended.
std::pair<const char*, std::size_t> payload_of(const std::vector<char>& frame) {
  FUZZ_CHECK(frame.size() > frame_header_bytes);
  const auto len = read_be32(reinterpret_cast<const unsigned char*>(frame.data()));
  FUZZ_CHECK(len == frame.size() - frame_header_bytes);
  FUZZ_CHECK(len <= limits::frame_bytes_max);
  return {frame.data() + frame_header_bytes, len};
}

void check_round_trip(const request& r) {
  std::vector<char> first;
  encode_request(first, r);
  const auto [p, n] = payload_of(first);
  const request again = decode_request(p, n);
  FUZZ_CHECK(again.error == errc::ok);
  FUZZ_CHECK(again.op == r.op);
  FUZZ_CHECK(again.id == r.id);
  FUZZ_CHECK(again.ops.size() == r.ops.size());
  std::vector<char> second;
  encode_request(second, again);
  FUZZ_CHECK(second == first);
}

// The server's answer to a request the decoder refused, or an empty ok
// answer to one it accepted, through the encoder and the client's decoder.
void check_answer(const request& r) {
  response a;
  a.op = r.op;
  a.id = r.id;
  a.code = r.error;
  a.message = r.error_message;
  if (r.op == opcode::batch && r.error == errc::ok)
    for (const auto& e : r.ops) {
      response& x = a.results.emplace_back();
      x.op = e.op;
      x.id = e.id;
      x.code = e.error;
      x.message = e.error_message;
    }
  std::vector<char> frame;
  encode_response(frame, a);
  const auto [p, n] = payload_of(frame);
  response back;
  std::string why;
  FUZZ_CHECK(decode_response(p, n, back, why));
  FUZZ_CHECK(back.id == a.id);
  FUZZ_CHECK(back.op == a.op);
  FUZZ_CHECK(back.code == a.code);
  FUZZ_CHECK(back.results.size() == a.results.size());
}

// Returns false where the server would close the connection.
bool on_frame(const char* data, std::size_t size) {
  const request r = decode_request(data, size);
  if (r.error == errc::malformed_frame) {
    // Nothing was read: the server answers with a bare error and closes.
    FUZZ_CHECK(r.op == opcode::none);
    FUZZ_CHECK(r.ops.empty());
    return false;
  }
  check_answer(r);
  if (r.error != errc::ok)
    return true;
  check_accepted(r, false);
  bool whole = true;
  for (const auto& e : r.ops) {
    if (e.error == errc::ok)
      check_accepted(e, true);
    whole = whole && e.error == errc::ok;
  }
  // A refused batch element holds only the fields read before the refusal,
  // so only requests without one encode back to themselves.
  if (whole)
    check_round_trip(r);
  return true;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  bool open = true;
  fuzz::for_each_frame(data, size, frames_max, [&](const char* p, std::size_t n) {
    if (open)  // the server reads nothing after a malformed frame
      open = on_frame(p, n);
  });
  return 0;
}

#include "config/errc.hpp"

#include <array>

namespace loyalty {

std::string_view default_message(errc e) noexcept {
  switch (e) {
    case errc::ok: return "ok";
    case errc::malformed_frame: return "the frame is not one valid msgpack value; closing the connection";
    case errc::frame_too_large: return "the frame length is over the limit; closing the connection";
    case errc::hello_required: return "send hello before any other operation";
    case errc::unsupported_version: return "this server does not speak the requested protocol version";
    case errc::unknown_operation: return "unknown operation";
    case errc::missing_field: return "a required field is missing";
    case errc::wrong_type: return "a field has the wrong type";
    case errc::invalid_argument: return "a field has an invalid value";
    case errc::batch_too_large: return "the batch holds more operations than allowed";
    case errc::duplicate_id: return "a request with this id is still in flight on this connection; this one was not executed";
    case errc::invalid_amount: return "amounts and points must be positive";
    case errc::amount_overflow: return "the amount or the resulting balance does not fit in 64 bits";
    case errc::currency_mismatch: return "the currency is not the program currency";
    case errc::unknown_member: return "no member with this id is enrolled";
    case errc::member_exists: return "a member with this id is already enrolled";
    case errc::unknown_brand: return "no brand with this code in the program";
    case errc::insufficient_points: return "the member does not have enough points";
    case errc::unknown_reward: return "no reward with this code in the catalog";
    case errc::out_of_stock: return "the reward is out of stock";
    case errc::unknown_hold: return "no open hold with this id for this member";
    case errc::unknown_txn: return "the referenced txn id is not a transaction of this member that this operation applies to";
    case errc::already_reversed: return "the referenced transaction is already fully refunded or reversed";
    case errc::negative_balance_limit: return "the refund or debit would leave a debt above the program's negative balance limit";
    case errc::alias_taken: return "the alias belongs to another member";
    case errc::unknown_alias: return "no member has this alias";
    case errc::unknown_event: return "no event rule answers this event kind";
    case errc::same_member: return "a transfer needs two different members";
    case errc::invalid_program: return "the program file has errors; the running version stays";
    case errc::unknown_partner: return "no partner with this code in the program";
    case errc::partner_suspended: return "the partner is suspended: no new partner operations";
    case errc::member_erased: return "the member was erased: nothing more is posted for it";
    case errc::limit_exceeded: return "the request would go past one of the program's limits; nothing was posted";
    case errc::member_blocked: return "the member is blocked: it cannot earn or spend until an admin unblocks it";
    case errc::txn_id_conflict: return "this txn id was already used for a different request";
    case errc::overloaded: return "too many requests in flight; nothing was posted, retry later";
    case errc::too_many_connections: return "connection limit reached; closing the connection";
    case errc::unavailable: return "the member actor stopped before answering; retry with the same txn id";
    case errc::busy: return "an operation of this kind is already running";
    case errc::rate_limited: return "this key's request rate limit is reached; nothing was posted, retry later";
    case errc::storage_full:
      return "the ledger's storage is full: nothing was posted; reads are still served (the operator must "
             "grow map_gib, see docs/OPERATIONS.md)";
    case errc::timed_out: return "the connection was idle or a frame stalled for too long; closing the connection";
    case errc::not_leader: return "this node does not lead the cluster: send the request to the leader; nothing was posted";
    case errc::internal_error: return "internal error; nothing was posted";
    case errc::not_authorized: return "the key given in hello does not allow this operation";
    case errc::nothing_pending:
      return "none of the purchase's points are still pending (already available, released, clawed back or expired)";
    case errc::household_full: return "the household has the program's largest number of members";
    case errc::already_in_household: return "the member is already in a household";
    case errc::not_in_household: return "the member is in no household";
    case errc::unknown_household: return "no household with this id has members";
  }
  return "internal error";
}

errc errc_from_string(std::string_view name) noexcept {
  static constexpr std::array all{
    errc::ok, errc::malformed_frame, errc::frame_too_large, errc::hello_required,
    errc::unsupported_version, errc::unknown_operation, errc::missing_field, errc::wrong_type,
    errc::invalid_argument, errc::batch_too_large, errc::duplicate_id, errc::invalid_amount, errc::amount_overflow,
    errc::currency_mismatch, errc::unknown_member, errc::member_exists, errc::unknown_brand,
    errc::insufficient_points, errc::txn_id_conflict, errc::overloaded,
    errc::too_many_connections, errc::unavailable, errc::busy, errc::internal_error,
    errc::unknown_reward, errc::out_of_stock, errc::unknown_hold, errc::unknown_txn,
    errc::already_reversed, errc::negative_balance_limit, errc::alias_taken, errc::unknown_alias,
    errc::unknown_event, errc::same_member, errc::not_authorized, errc::rate_limited, errc::invalid_program,
    errc::unknown_partner, errc::partner_suspended, errc::member_erased, errc::storage_full, errc::timed_out,
    errc::not_leader, errc::nothing_pending, errc::household_full, errc::already_in_household,
    errc::not_in_household, errc::unknown_household, errc::limit_exceeded, errc::member_blocked};
  for (auto e : all)
    if (to_string(e) == name)
      return e;
  return errc::internal_error;
}

} // namespace loyalty

// What a member actor is asked to do (actors/member.hpp, member_request::kind).
// Shared vocabulary of io/ (the operation table, io/wire/operations.hpp,
// names the kind each operation becomes) and actors/ (which carries it out).
// The numbers are persisted: a request's content hash starts with its kind
// (actors/policy.hpp, content_hasher), so they never change; new kinds are
// appended.
#pragma once

#include <cstdint>

namespace loyalty {

enum class request_kind : std::uint8_t {
  enroll = 1, earn = 2, redeem = 3, balance = 4,
  // issue 3
  event = 5, hold = 6, capture = 7, release = 8, redeem_reward = 9, refund = 10,
  reverse_redemption = 11, adjust = 12, transfer = 13, link_alias = 14, expire = 15,
  // issue 4
  partner_earn = 16, partner_burn = 17,
  // issue 7
  consent = 18,
  // a dry-run earn: evaluated, never posted (actors/member.hpp, quote_earn)
  quote = 19,
  // issue 19
  release_pending = 20,
  // item 2: an admin blocks / unblocks the member
  block = 21, unblock = 22,
  // item 3: erasure
  erase = 23,
  // item 1: households (actors/household.hpp carries them out; a
  // member actor posts the entries of its member)
  household_join = 24, household_leave = 25, household_dissolve = 26, household = 27,
};

} // namespace loyalty

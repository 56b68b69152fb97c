// Consent channels (docs/PROTOCOL.md, "consent"): what a member agreed to be
// contacted through, or to have done with its data. Part of the wire
// contract and of the ledger's records: a channel's bit never changes, new
// channels are appended.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace loyalty {

inline constexpr std::array<std::string_view, 7> consent_channel_names = {
  "email",         // bit 0: marketing e-mail
  "sms",           // bit 1: text messages
  "push",          // bit 2: app push notifications
  "mail",          // bit 3: postal mail
  "phone",         // bit 4: phone calls
  "data_sharing",  // bit 5: sharing the member's data with partners
  "profiling",     // bit 6: personalised offers from the member's activity
};
inline constexpr std::uint32_t consent_channels_all = (1u << consent_channel_names.size()) - 1;

// The bit of a channel name, or 0 for a name that is not a channel.
[[nodiscard]] constexpr std::uint32_t consent_bit(std::string_view name) noexcept {
  for (std::size_t i = 0; i < consent_channel_names.size(); ++i)
    if (consent_channel_names[i] == name)
      return 1u << i;
  return 0;
}

} // namespace loyalty

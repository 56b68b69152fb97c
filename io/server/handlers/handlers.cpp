#include "io/server/handlers/handlers.hpp"

#include "config/log.hpp"

namespace loyalty::io::handlers {

response refusal(errc code, std::string message) {
  response r;
  r.code = code;
  r.message = std::move(message);
  return r;
}

response deny(const caller& who, opcode op, std::string why) {
  log(log_level::warn, "key %u (%s): %s refused%s%s", who.key_id(), who.key != nullptr ? who.key->name.c_str() : "no key",
      to_string(op), why.empty() ? "" : ": ", why.c_str());
  return refusal(errc::not_authorized, std::move(why));
}

} // namespace loyalty::io::handlers

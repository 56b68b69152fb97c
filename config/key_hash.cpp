// SHA-256 of API keys (OpenSSL's EVP interface).
#include "config/program.hpp"

#include <openssl/evp.h>

namespace loyalty {

std::array<unsigned char, 32> key_sha256(std::string_view key) noexcept {
  std::array<unsigned char, 32> out{};
  unsigned int n = 0;
  // EVP_Digest fails only on allocation failure; the zero digest matches no key.
  if (EVP_Digest(key.data(), key.size(), out.data(), &n, EVP_sha256(), nullptr) != 1 || n != out.size())
    out.fill(0);
  return out;
}

} // namespace loyalty

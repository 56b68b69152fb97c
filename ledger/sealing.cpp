// Sealing a member's personal values (sealing.hpp) with OpenSSL.
#include "ledger/sealing.hpp"

#include "config/log.hpp"
#include "ledger/record_views.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace loyalty::ledger {

namespace {

constexpr std::size_t tag_bytes = 16;
constexpr std::size_t nonce_bytes = 12;
// A sealed note is the note's text plus its tag.
constexpr std::size_t sealed_note_bytes_max = note_bytes_max + tag_bytes;

[[noreturn]] void crypto_failed(const char* what) {
  log(log_level::error, "ledger: %s failed in OpenSSL; stopping rather than write personal data unsealed", what);
  std::abort();
}

// The nonce of entry `seq`: its seq, then zeroes. A member's key seals at
// most one note per entry, and a seq is written once, so a nonce never
// repeats under a key.
std::array<unsigned char, nonce_bytes> nonce_of(std::uint64_t seq) {
  std::array<unsigned char, nonce_bytes> n{};
  std::memcpy(n.data(), &seq, sizeof seq);
  return n;
}

struct ctx_free {
  void operator()(EVP_CIPHER_CTX* c) const noexcept { EVP_CIPHER_CTX_free(c); }
};
using cipher_ctx = std::unique_ptr<EVP_CIPHER_CTX, ctx_free>;

std::string seal_text(const member_key& key, std::uint64_t seq, std::string_view text) {
  cipher_ctx ctx(EVP_CIPHER_CTX_new());
  const auto nonce = nonce_of(seq);
  std::string out(text.size() + tag_bytes, '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  int n = 0, fin = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), nonce.data()) != 1 ||
      EVP_EncryptUpdate(ctx.get(), o, &n, reinterpret_cast<const unsigned char*>(text.data()),
                        static_cast<int>(text.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), o + n, &fin) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, tag_bytes, o + text.size()) != 1)
    crypto_failed("sealing a note");
  return out;
}

std::optional<std::string> open_text(const member_key& key, std::uint64_t seq, std::string_view sealed) {
  if (sealed.size() < tag_bytes)
    return std::nullopt;
  const std::size_t len = sealed.size() - tag_bytes;
  cipher_ctx ctx(EVP_CIPHER_CTX_new());
  const auto nonce = nonce_of(seq);
  std::string out(len, '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  const auto* in = reinterpret_cast<const unsigned char*>(sealed.data());
  unsigned char tag[tag_bytes];
  std::memcpy(tag, in + len, tag_bytes);
  int n = 0, fin = 0;
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), nonce.data()) != 1 ||
      EVP_DecryptUpdate(ctx.get(), o, &n, in, static_cast<int>(len)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, tag_bytes, tag) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), o + n, &fin) != 1)
    return std::nullopt;  // not this key's, or altered
  return out;
}

bool is_kind(const entry_detail& d, detail_kind k) noexcept { return d.kind == static_cast<std::uint16_t>(k); }

} // namespace

member_key new_member_key() {
  member_key k{};
  if (RAND_bytes(k.data(), static_cast<int>(k.size())) != 1)
    crypto_failed("drawing a member key (RAND_bytes)");
  return k;
}

alias_key alias_key_of(std::string_view alias) {
  static constexpr char domain[] = "loyaltyd alias v1";
  std::string msg(domain, sizeof domain);  // the tag's NUL included: it ends the domain
  msg.append(alias);
  alias_key out{};
  unsigned int len = 0;
  if (EVP_Digest(msg.data(), msg.size(), out.data(), &len, EVP_sha256(), nullptr) != 1 || len != out.size())
    crypto_failed("hashing an alias");
  return out;
}

std::uint64_t keyed_hash(const member_key& key, std::string_view domain, std::string_view bytes) {
  std::string msg;
  msg.reserve(domain.size() + 1 + bytes.size());
  msg.append(domain).push_back('\0');
  msg.append(bytes);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(msg.data()),
           msg.size(), mac, &len) == nullptr ||
      len < sizeof(std::uint64_t))
    crypto_failed("a keyed hash (HMAC-SHA256)");
  std::uint64_t h = 0;
  std::memcpy(&h, mac, sizeof h);
  return h;
}

std::uint64_t keyed_request_hash(const member_key& key, std::uint64_t request_hash) {
  return keyed_hash(key, "request", {reinterpret_cast<const char*>(&request_hash), sizeof request_hash});
}

void seal_details(const member_key& key, std::uint64_t seq, std::string_view alias, std::vector<entry_detail>& details) {
  const std::string text = note_text(details);
  const bool had_note = std::any_of(details.begin(), details.end(), [](const auto& d) { return is_kind(d, detail_kind::note); });
  std::erase_if(details, [](const entry_detail& d) { return is_kind(d, detail_kind::note); });
  for (auto& d : details)
    if (is_kind(d, detail_kind::alias)) {
      d.kind = static_cast<std::uint16_t>(detail_kind::sealed_alias);
      d.a = static_cast<std::int64_t>(keyed_hash(key, "alias", alias));
    }
  if (had_note)
    append_chunks(details, detail_kind::sealed_note, seal_text(key, seq, text), sealed_note_bytes_max);
}

bool has_sealed(std::span<const entry_detail> details) noexcept {
  return std::any_of(details.begin(), details.end(), [](const auto& d) { return is_kind(d, detail_kind::sealed_note); });
}

void unseal_details(const std::optional<member_key>& key, std::uint64_t seq, std::vector<entry_detail>& details) {
  std::optional<std::string> text;
  if (key)
    text = open_text(*key, seq, chunks_text(details, detail_kind::sealed_note, sealed_note_bytes_max));
  std::erase_if(details, [](const entry_detail& d) { return is_kind(d, detail_kind::sealed_note); });
  if (text)
    append_note(details, *text);
}

void redact_erased(entry_kind kind, std::vector<entry_detail>& details) {
  if (!carries_personal(kind))
    return;
  std::erase_if(details, [](const entry_detail& d) {
    return is_kind(d, detail_kind::note) || is_kind(d, detail_kind::sealed_note);
  });
  for (auto& d : details)
    if (is_kind(d, detail_kind::alias) || is_kind(d, detail_kind::sealed_alias))
      d.a = 0;
}

} // namespace loyalty::ledger

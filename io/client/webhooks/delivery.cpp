#include "io/client/webhooks/delivery.hpp"

#include "io/wire/json.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fcntl.h>
#include <unistd.h>

namespace loyalty::webhooks {

std::string delivery_body(const std::string& endpoint, std::uint64_t seq,
                          const std::vector<io::stream_event>& events) {
  std::string body = "{\"endpoint\":" + io::quoted(endpoint) + ",\"seq\":" + std::to_string(seq) + ",\"events\":[";
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (i != 0)
      body += ',';
    body += io::event_json(events[i]);
  }
  body += "]}";
  return body;
}

std::string delivery_id(const std::string& endpoint, std::uint64_t seq) {
  return endpoint + "-" + std::to_string(seq);
}

std::string signature(const std::string& secret, const std::string& body) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &len);
  static constexpr char digits[] = "0123456789abcdef";
  std::string out = "sha256=";
  for (unsigned int i = 0; i < len; ++i) {
    out += digits[mac[i] >> 4];
    out += digits[mac[i] & 15];
  }
  return out;
}

std::chrono::milliseconds backoff(std::uint32_t failures, std::uint32_t initial_ms, std::uint32_t max_ms) noexcept {
  std::uint64_t wait = initial_ms;
  for (std::uint32_t i = 1; i < failures && wait < max_ms; ++i)
    wait *= 2;
  return std::chrono::milliseconds(std::min<std::uint64_t>(wait, max_ms));
}

std::string state_path(const std::string& dir, const std::string& endpoint) { return dir + "/" + endpoint + ".next"; }

std::optional<std::uint64_t> load_next(const std::string& dir, const std::string& endpoint, std::string& error) {
  const std::string path = state_path(dir, endpoint);
  std::error_code ec;
  if (!std::filesystem::exists(path, ec) && !ec)
    return std::nullopt;
  std::ifstream in(path);
  if (!in) {
    error = path + ": cannot be read";
    return std::nullopt;
  }
  std::string line;
  std::getline(in, line);
  constexpr std::string_view prefix = "next=";
  std::uint64_t next = 0;
  bool digits = line.size() > prefix.size() && line.size() <= prefix.size() + 19 && line.rfind(prefix, 0) == 0;
  for (std::size_t i = prefix.size(); digits && i < line.size(); ++i) {
    digits = line[i] >= '0' && line[i] <= '9';
    next = next * 10 + static_cast<std::uint64_t>(line[i] - '0');
  }
  if (!digits || next == 0) {
    error = path + ": not a state file (expected one line next=N, N >= 1)";
    return std::nullopt;
  }
  return next;
}

bool store_next(const std::string& dir, const std::string& endpoint, std::uint64_t next, std::string& error) {
  const std::string path = state_path(dir, endpoint);
  const std::string tmp = path + ".tmp";
  const std::string text = "next=" + std::to_string(next) + "\n";
  auto fail = [&](const std::string& what) {
    error = what + ": " + std::strerror(errno);
    return false;
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return fail(tmp);
  const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  const int saved = errno;
  ::close(fd);
  errno = saved;
  if (!written)
    return fail(tmp);
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return fail(path);
  // The rename is durable only once the directory is.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return fail(dir);
  const bool synced = ::fsync(dfd) == 0;
  ::close(dfd);
  return synced || fail(dir);
}

} // namespace loyalty::webhooks

// A plain TCP client of the metrics endpoint for tests: an HTTP/1.1
// exchange on loopback, read until the server closes.
#pragma once

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdint>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>

namespace loyalty::test {

struct socket_fd {
  int fd = -1;
  socket_fd() = default;
  explicit socket_fd(int f) : fd(f) {}
  socket_fd(socket_fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
  ~socket_fd() { reset(); }
  void reset() {
    if (fd >= 0)
      ::close(fd);
    fd = -1;
  }
};

inline socket_fd tcp_socket() {
  socket_fd s(::socket(AF_INET, SOCK_STREAM, 0));
  REQUIRE(s.fd >= 0);
  return s;
}

inline sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

inline socket_fd connect_to(std::uint16_t port) {
  auto s = tcp_socket();
  const auto a = loopback(port);
  REQUIRE(::connect(s.fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0);
  // A guard so that a server that never answers fails the test instead of
  // hanging it; nothing is measured.
  timeval guard{60, 0};
  ::setsockopt(s.fd, SOL_SOCKET, SO_RCVTIMEO, &guard, sizeof guard);
  return s;
}

inline void send_all(const socket_fd& s, std::string_view bytes) {
  while (!bytes.empty()) {
    const auto n = ::send(s.fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    REQUIRE(n > 0);
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

// The header lines of an HTTP head from `lines` (past its start line) up to
// the empty line or the end: names in lower case, values without the
// leading blanks and the \r.
inline std::map<std::string, std::string> header_lines(std::istream& lines) {
  std::map<std::string, std::string> out;
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    if (line.empty())
      break;
    const auto colon = line.find(':');
    if (colon == std::string::npos)
      continue;
    std::string name = line.substr(0, colon);
    for (auto& c : name)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const auto value = line.find_first_not_of(' ', colon + 1);
    out[name] = value == std::string::npos ? std::string() : line.substr(value);
  }
  return out;
}

struct http_answer {
  bool closed = false;  // the server closed the connection (rather than the guard expiring)
  std::string status;   // "200 OK"
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
};

// Reads until the server closes the connection.
inline http_answer read_answer(const socket_fd& s) {
  std::string raw;
  char buf[16384];
  http_answer a;
  for (;;) {
    const auto n = ::recv(s.fd, buf, sizeof buf, 0);
    if (n > 0) {
      raw.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    a.closed = n == 0 || errno == ECONNRESET;
    break;
  }
  const auto end = raw.find("\r\n\r\n");
  if (end == std::string::npos)
    return a;
  std::istringstream head(raw.substr(0, end));
  std::string line;
  std::getline(head, line);
  if (line.rfind("HTTP/1.1 ", 0) == 0)
    a.status = line.substr(9, line.size() - 10);  // without the \r
  a.headers = header_lines(head);
  a.body = raw.substr(end + 4);
  return a;
}

inline http_answer http_exchange(std::uint16_t port, std::string_view request) {
  auto s = connect_to(port);
  send_all(s, request);
  return read_answer(s);
}

inline http_answer scrape(std::uint16_t port) { return http_exchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"); }

} // namespace loyalty::test

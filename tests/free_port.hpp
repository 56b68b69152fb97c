// A loopback TCP port nobody listens on now (bound and closed): for settings
// that must name a port before the listener exists, as a cluster's peers do.
//
// Chosen below the kernel's ephemeral range (net.ipv4.ip_local_port_range):
// a port there is never handed to an outgoing connection, so it stays free
// until the test's listener binds it. A port from the ephemeral range (what
// binding port 0 gives) can be taken meanwhile by any connection on the
// machine -- another test's, running beside this one -- and the listener
// then fails with "Address already in use" (seen in cluster_engine_test).
// Each call of a process takes the next port of a walk that starts at a
// random place, so the ports of one test differ, and two tests running at
// once rarely meet (and a port found taken is skipped).
#pragma once

#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <fstream>
#include <random>

namespace loyalty::test {

// The lowest port of the kernel's ephemeral range (32768 if unreadable).
inline std::uint32_t ephemeral_low() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  std::uint32_t lo = 0, hi = 0;
  if (in >> lo >> hi && lo > 1024)
    return lo;
  return 32768;
}

inline bool port_is_free(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

inline std::uint16_t free_port() {
  constexpr std::uint32_t first = 10000;
  static const std::uint32_t last = std::max<std::uint32_t>(first + 1000, ephemeral_low()) - 1;
  static std::atomic<std::uint32_t> step{std::random_device{}()};
  const std::uint32_t span = last - first + 1;
  for (int attempt = 0; attempt < 1000; ++attempt) {
    // A prime step: successive calls land on ports far apart.
    const auto port = static_cast<std::uint16_t>(first + (step.fetch_add(1) * 7919u) % span);
    if (port_is_free(port))
      return port;
  }
  FAIL("no free loopback port below the ephemeral range");
  return 0;
}

} // namespace loyalty::test

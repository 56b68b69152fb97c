// Running the real command-line tools (loyaltyctl, loyalty-loadgen) from a
// test, as an operator would.
#pragma once

#include <catch2/catch.hpp>

#include <array>
#include <cstdio>
#include <string>
#include <sys/wait.h>

namespace loyalty::test {

// Runs `cmd` through the shell and returns what it wrote on stdout (end the
// command with "2>&1" to get stderr too); `exit_status` is its exit status,
// -1 if it did not exit (a signal).
inline std::string run_command(const std::string& cmd, int& exit_status) {
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  std::array<char, 4096> buf{};
  while (auto n = std::fread(buf.data(), 1, buf.size(), p))
    out.append(buf.data(), n);
  const int raw = ::pclose(p);
  exit_status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return out;
}

} // namespace loyalty::test

// Polls a condition that other threads make true (the engine, a cluster
// node): true once it holds, false if it still does not after `patience`,
// a liveness bound far above what any test needs (never a duration a test
// asserts).
#pragma once

#include <chrono>
#include <thread>

namespace loyalty::test {

template <class Pred>
bool eventually(Pred done, std::chrono::milliseconds patience = std::chrono::seconds(20)) {
  const auto until = std::chrono::steady_clock::now() + patience;
  while (!done()) {
    if (std::chrono::steady_clock::now() > until)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

} // namespace loyalty::test

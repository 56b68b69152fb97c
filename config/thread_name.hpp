// Names the calling thread for top -H, perf and /proc/PID/task/*/comm
// (docs/OPERATIONS.md, "Threads"): at most 15 characters, longer ones cut.
#pragma once

#include <pthread.h>

#include <string>

namespace loyalty {

inline void name_this_thread(const std::string& name) {
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
}

} // namespace loyalty

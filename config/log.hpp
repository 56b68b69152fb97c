// Minimal line logger: one line per event on stderr, with a UTC timestamp and
// a level. Thread-safe (one fprintf per line). Never logs secrets.
#pragma once

#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <ctime>

namespace loyalty {

enum class log_level { debug = 0, info = 1, warn = 2, error = 3 };

inline log_level& log_threshold() noexcept {
  static log_level lvl = log_level::info;
  return lvl;
}

// The program named in every line; a tool other than loyaltyd sets it
// once in main, before its threads start.
inline const char*& log_program() noexcept {
  static const char* name = "loyaltyd";
  return name;
}

[[gnu::format(printf, 2, 3)]] inline void log(log_level lvl, const char* fmt, ...) noexcept {
  if (lvl < log_threshold())
    return;
  static constexpr const char* names[] = {"debug", "info", "warn", "error"};
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  auto now = std::chrono::system_clock::now();
  auto t = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char ts[32];
  std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  std::fprintf(stderr, "%s.%03dZ %s %s: %s\n", ts, static_cast<int>(ms), log_program(),
               names[static_cast<int>(lvl)], msg);
}

} // namespace loyalty

// Facts about the engine's own process, for the `stats` operation and the
// metrics endpoint alike (neither depends on the other for them).
#pragma once

#include <cstdint>
#include <optional>

namespace loyalty::io {

// RssAnon of /proc/self/status in bytes: the anonymous memory the process
// holds (heap, stacks; not the LMDB map, which is file-backed and which the
// kernel may drop). Empty where the kernel does not report it (before 4.5).
// For the metrics endpoint and the `stats` operation.
[[nodiscard]] std::optional<std::uint64_t> resident_anon_bytes();

} // namespace loyalty::io

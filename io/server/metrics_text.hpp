// The text parts of the metrics endpoint (io/metrics.hpp), as plain
// functions: the HTTP request it reads and the exposition format it writes.
// No I/O; tested directly (tests/metrics_test.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace loyalty::io::detail {

// -- reading a request --------------------------------------------------------------
enum class http_parse : std::uint8_t {
  incomplete,   // no end of the header section yet: read more
  complete,     // a well-formed request line and header section
  bad_request,  // the request line or a header line is malformed (400)
  too_large,    // no end of the header section within the limit (431)
};

struct http_request {
  std::string_view method;  // as sent: methods are case-sensitive
  std::string_view path;    // the target's path: no query, no scheme and host
};

// Looks at the bytes received so far (at most `bytes_max`). A malformed
// request line is reported as soon as its line ends, before the headers.
// Accepts CRLF and bare LF line ends. `out` points into `in`.
[[nodiscard]] http_parse parse_http_request(std::string_view in, std::size_t bytes_max, http_request& out);

// -- writing the exposition format 0.0.4 --------------------------------------------
// A label value with backslash, double quote and line feed escaped.
[[nodiscard]] std::string escape_label_value(std::string_view v);
// A # HELP text with backslash and line feed escaped.
[[nodiscard]] std::string escape_help(std::string_view v);
// A sample value: an integer exactly, a fraction in its shortest form that
// reads back to the same double.
[[nodiscard]] std::string format_value(std::uint64_t v);
[[nodiscard]] std::string format_value(double v);

} // namespace loyalty::io::detail

// What a run reports: the console summary, the JSON summary (--json) and the
// self-contained HTML page (--report: inline CSS and SVG drawn here, no
// script, no network reference).
#pragma once

#include "loadgen/driver.hpp"

#include <string>

namespace loyalty::loadgen {

// Everything about the run that is not a measurement.
struct run_context {
  const workload& w;
  const target& where;
  std::string command_line;
};

void print_summary(const run_result& r, const run_context& c);

// Both return false (and say why on stderr) when the file cannot be written.
[[nodiscard]] bool write_json(const std::string& path, const run_result& r, const run_context& c);
[[nodiscard]] bool write_html(const std::string& path, const run_result& r, const run_context& c);

// The pieces, for tests and for the writers above.
[[nodiscard]] std::string json_summary(const run_result& r, const run_context& c);
[[nodiscard]] std::string html_report(const run_result& r, const run_context& c);

} // namespace loyalty::loadgen

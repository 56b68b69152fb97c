// `loyaltyctl report`: a KPI report over the wire (docs/PROTOCOL.md,
// "report"), printed as CSV tables a spreadsheet loads, or as one JSON
// object. The period options (--from, --to) are loyaltyctl's own, shared
// with activity and settlement; this adds the rest.
#pragma once

#include "io/wire/protocol.hpp"

#include <CLI/CLI.hpp>

#include <ostream>
#include <string>

namespace loyalty::io::ctl {

struct report_options {
  std::string format = "csv";      // csv | json
  std::string section = "brands";  // csv: brands | tiers | top
};

// Adds --brand, --active-days, --top, --format and --section to `sub`,
// filling `req` and `opts`.
void add_report_options(CLI::App& sub, request& req, report_options& opts);

// The CSV table `opts.section` of a report: a header line, then one row per
// brand (brands), per brand and tier (tiers) or per brand and earner (top).
void print_report_csv(const report_result& rep, const report_options& opts, std::ostream& os);


} // namespace loyalty::io::ctl

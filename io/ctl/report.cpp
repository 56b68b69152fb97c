// `loyaltyctl report` (io/ctl/report.hpp).
//
// CSV shape: three rectangular tables, one per --section, so that each
// loads into a spreadsheet (or a database) as it is, rather than one file
// with sections a spreadsheet cannot tell apart. Every row starts with the
// brand; tiers and top are in long form (one row per brand and tier, per
// brand and earner), ready for a pivot. Rates are whole basis points and
// cost_per_point is two integer columns: a cell "1/2" would be read as a
// date by common spreadsheets. Fields are quoted (RFC 4180) only when they
// hold a comma, a quote or a line break.
#include "io/ctl/report.hpp"

#include "io/wire/json.hpp"

#include <string>

namespace loyalty::io::ctl {

namespace {


std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos)
    return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"')
      out += '"';
    out += c;
  }
  return out + "\"";
}

// "num/den" of the wire as two columns: num,den ("" for a malformed text).
std::string ratio_columns(const std::string& ratio) {
  const auto slash = ratio.find('/');
  if (slash == std::string::npos)
    return ",";
  return ratio.substr(0, slash) + "," + ratio.substr(slash + 1);
}

void brands_csv(const report_result& rep, std::ostream& os) {
  os << "brand,from_us,to_us,first_seq,last_seq,issued,refunded,redeemed,reversed,expired,"
        "opening_outstanding,closing_outstanding,cost_per_point_num,cost_per_point_den,closing_liability,"
        "settlement,settlement_closing,redemption_rate_bp,members,active_members,active_rate_bp,active_days,"
        "active_from_us\n";
  for (const auto& b : rep.brands)
    os << csv_field(b.brand) << ',' << rep.from_us << ',' << rep.to_us << ',' << rep.first_seq << ','
       << rep.last_seq << ',' << b.issued << ',' << b.refunded << ',' << b.redeemed << ',' << b.reversed << ','
       << b.expired << ',' << b.opening_outstanding << ',' << b.closing_outstanding << ','
       << ratio_columns(b.cost_per_point) << ',' << b.closing_liability << ',' << b.settlement << ','
       << b.settlement_closing << ',' << b.redemption_rate_bp << ',' << b.members << ',' << b.active_members
       << ',' << b.active_rate_bp << ',' << rep.active_days << ',' << rep.active_from_us << '\n';
}

void tiers_csv(const report_result& rep, std::ostream& os) {
  os << "brand,tier,members\n";
  for (const auto& b : rep.brands)
    for (const auto& t : b.tiers)
      os << csv_field(b.brand) << ',' << csv_field(t.tier) << ',' << t.members << '\n';
}

void top_csv(const report_result& rep, std::ostream& os) {
  os << "brand,rank,member,points\n";
  for (const auto& b : rep.brands)
    for (std::size_t i = 0; i < b.top.size(); ++i)
      os << csv_field(b.brand) << ',' << i + 1 << ',' << b.top[i].member << ',' << b.top[i].points << '\n';
}

} // namespace

void add_report_options(CLI::App& sub, request& req, report_options& opts) {
  sub.add_option("--brand", req.brand, "only this brand (default: every brand the key may read)");
  sub.add_option("--active-days", req.active_days,
                 "a member is active with an entry of its own (earn, event, redeem, reward, hold, capture, "
                 "transfer sent, partner earn / burn) in the N days before the period's end, 1..3650 (default 90)")
    ->check(CLI::Range(1u, report_active_days_max));
  sub.add_option("--top", req.top, "top earners listed per brand, 1..100 (default 10)")
    ->check(CLI::Range(1u, report_top_max));
  sub.add_option("--format", opts.format, "csv (tables for a spreadsheet) or json (one object, as --json)")
    ->check(CLI::IsMember({"csv", "json"}))
    ->capture_default_str();
  sub.add_option("--section", opts.section,
                 "which CSV table: brands (one row per brand: every figure), tiers (brand,tier,members) or top "
                 "(brand,rank,member,points); json always holds all three")
    ->check(CLI::IsMember({"brands", "tiers", "top"}))
    ->capture_default_str();
}

void print_report_csv(const report_result& rep, const report_options& opts, std::ostream& os) {
  if (opts.section == "tiers")
    tiers_csv(rep, os);
  else if (opts.section == "top")
    top_csv(rep, os);
  else
    brands_csv(rep, os);
}

} // namespace loyalty::io::ctl

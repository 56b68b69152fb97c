// loyaltyctl export journal / import (io/ctl/bulk.hpp; docs/OPERATIONS.md,
// "Bulk import and export").
#include "io/ctl/bulk.hpp"

#include "config/consent.hpp"
#include "io/client/client.hpp"
#include "io/ctl/stream.hpp"
#include "io/ctl/detail/csv.hpp"
#include "io/ctl/detail/json.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <vector>

namespace loyalty::io::ctl {

namespace {

using steady = std::chrono::steady_clock;
using detail::csv_field;
using detail::json_string;

constexpr std::uint64_t member_id_max = (std::uint64_t{1} << 56) - 1;
// Longest txn id the import makes, past its prefix: "alias:" + 17 digits +
// ":" + 16 hex digits. The prefix gets the rest of limits::txn_id_bytes_max.
constexpr std::size_t txn_prefix_bytes_max = 24;
// A response of the engine that takes longer than this means the
// connection is gone (the engine answers overload at once).
constexpr std::chrono::seconds answer_timeout{120};
// Retries of an operation answered overloaded / rate_limited / unavailable:
// back-off doubling from 50 ms up to 5 s, at most 30 tries (about 2 min).
constexpr std::uint32_t retries_max = 30;
constexpr std::chrono::milliseconds retry_first{50}, retry_longest{5000};
// A terminal's progress line is redrawn at most this often.
constexpr std::chrono::milliseconds redraw_every{200};

bool stderr_is_terminal() { return ::isatty(STDERR_FILENO) == 1; }

// Connects and says hello; null (the reason on stderr) when either fails.
std::unique_ptr<client> open_session(const endpoint& where, response& hello) {
  std::string error;
  auto c = client::connect(where.host, where.port, where.conn.tls, error);
  if (!c) {
    std::cerr << "loyaltyctl: " << error << "\n";
    return nullptr;
  }
  hello = c->hello("loyaltyctl", where.conn.key);
  if (!hello.ok()) {
    std::cerr << "loyaltyctl: hello refused: " << to_string(hello.code) << ": " << hello.message << "\n";
    return nullptr;
  }
  return c;
}

// A progress line on stderr: redrawn in place on a terminal, else written
// as a line when the caller says so.
class progress_line {
public:
  // `quiet`: never redraw (the data goes to the same terminal).
  explicit progress_line(bool quiet = false) : tty_(stderr_is_terminal() && !quiet) {}
  [[nodiscard]] bool tty() const { return tty_; }
  void draw(const std::string& text, bool force = false) {
    const auto now = steady::now();
    if (!force && drawn_ && now - last_ < redraw_every)
      return;
    last_ = now;
    drawn_ = true;
    std::cerr << "\r" << text << "\x1b[K" << std::flush;
  }
  void end() {
    if (tty_ && drawn_)
      std::cerr << "\n";
    drawn_ = false;
  }

private:
  bool tty_;
  bool drawn_ = false;
  steady::time_point last_{};
};

// ---- export journal ------------------------------------------------------------------

// True for UTF-8 text without control characters.
bool printable_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    if (c < 0x20 || c == 0x7f) return false;
    if (c < 0x80) n = 1;
    else if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) n = 3;
    else if (c >= 0xF0 && c <= 0xF4) n = 4;
    else return false;
    if (i + n > s.size()) return false;
    for (std::size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += n;
  }
  return true;
}

// A txn id (opaque bytes) as text: itself when it is printable UTF-8 and
// does not start with "hex:", else "hex:" and its bytes in hex.
std::string txn_text(std::string_view t) {
  if (printable_utf8(t) && t.substr(0, 4) != "hex:")
    return std::string(t);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out = "hex:";
  for (char ch : t) {
    const auto b = static_cast<unsigned char>(ch);
    out += hex[b >> 4];
    out += hex[b & 15];
  }
  return out;
}

void write_jsonl(std::ostream& os, const journal_entry& j) {
  const auto& e = j.entry;
  os << "{\"seq\":" << e.seq << ",\"kind\":" << json_string(e.kind) << ",\"member\":" << j.member
     << ",\"counterparty\":" << e.counterparty << ",\"brand\":" << json_string(e.brand)
     << ",\"partner\":" << json_string(e.partner) << ",\"txn\":" << json_string(txn_text(e.txn))
     << ",\"occurred_at_us\":" << e.occurred_at_us << ",\"committed_at_us\":" << e.committed_at_us
     << ",\"amount\":" << e.amount << ",\"points\":" << e.points << ",\"balance_after\":" << e.balance
     << ",\"ref_seq\":" << e.ref << ",\"key_id\":" << j.key_id << ",\"policy_version\":" << j.policy_version
     << ",\"moves\":[";
  for (std::size_t i = 0; i < j.moves.size(); ++i)
    os << (i ? "," : "") << "{\"account\":" << json_string(j.moves[i].account) << ",\"side\":"
       << json_string(j.moves[i].side) << ",\"amount\":" << j.moves[i].amount << "}";
  os << "],\"settlements\":[";
  for (std::size_t i = 0; i < j.settlements.size(); ++i) {
    const auto& s = j.settlements[i];
    os << (i ? "," : "") << "{\"payer\":" << json_string(s.payer) << ",\"payee\":" << json_string(s.payee)
       << ",\"points\":" << s.points << ",\"amount\":" << s.amount << ",\"rate\":" << json_string(s.rate)
       << ",\"reversal\":" << (s.reversal ? "true" : "false") << "}";
  }
  os << "],\"lines\":[";
  for (std::size_t i = 0; i < j.lines.size(); ++i)
    os << (i ? "," : "") << "{\"kind\":" << json_string(j.lines[i].kind) << ",\"rule\":"
       << json_string(j.lines[i].rule) << ",\"points\":" << j.lines[i].points << ",\"amount\":"
       << j.lines[i].amount << "}";
  os << "]}\n";
}

constexpr const char* csv_header =
  "seq,kind,member,counterparty,brand,partner,txn,occurred_at_us,committed_at_us,amount,points,balance_after,"
  "ref_seq,key_id,policy_version,posting,account,side,posting_amount\n";

// One row per posting (posting = its 1-based place in the entry), the
// entry's columns repeated; an entry without postings gets one row with
// posting 0 and the last three columns empty.
void write_csv(std::ostream& os, const journal_entry& j) {
  const auto& e = j.entry;
  std::ostringstream head;
  head << e.seq << "," << csv_field(e.kind) << "," << j.member << "," << e.counterparty << ","
       << csv_field(e.brand) << "," << csv_field(e.partner) << "," << csv_field(txn_text(e.txn)) << ","
       << e.occurred_at_us << "," << e.committed_at_us << "," << e.amount << "," << e.points << "," << e.balance
       << "," << e.ref << "," << j.key_id << "," << j.policy_version << ",";
  const std::string h = head.str();
  if (j.moves.empty()) {
    os << h << "0,,,\n";
    return;
  }
  for (std::size_t i = 0; i < j.moves.size(); ++i)
    os << h << (i + 1) << "," << csv_field(j.moves[i].account) << "," << j.moves[i].side << ","
       << j.moves[i].amount << "\n";
}

int run_export(const endpoint& where, const bulk_commands::export_options& o) {
  std::string format = o.format;
  if (format.empty())
    format = o.out.size() >= 4 && o.out.substr(o.out.size() - 4) == ".csv" ? "csv" : "jsonl";
  if (o.to != 0 && o.to < o.from) {
    std::cerr << "loyaltyctl: export journal: --to " << o.to << " is below --from " << o.from << "\n";
    return 1;
  }
  std::ofstream file;
  if (!o.out.empty()) {
    file.open(o.out, std::ios::binary | std::ios::trunc);
    if (!file) {
      std::cerr << "loyaltyctl: cannot write " << o.out << ": " << std::strerror(errno) << "\n";
      return 1;
    }
  }
  std::ostream& os = o.out.empty() ? std::cout : file;
  const std::string dest = o.out.empty() ? std::string("stdout") : o.out;
  response hello;
  try {
    auto c = open_session(where, hello);
    if (!c)
      return 2;
    if (format == "csv")
      os << csv_header;
    progress_line bar(o.out.empty() && ::isatty(STDOUT_FILENO) == 1);
    std::uint64_t from = o.from, written = 0, pages = 0, first = 0, last = 0, newest = 0;
    for (;;) {
      std::uint32_t limit = o.limit;
      if (o.to != 0) {  // never ask for entries past --to
        const std::uint64_t left = o.to - from + 1;
        const std::uint32_t page = limit == 0 ? journal_limit_default : limit;
        limit = static_cast<std::uint32_t>(std::min<std::uint64_t>(page, left));
      }
      response r = c->journal(from, limit);
      if (!r.ok()) {
        bar.end();
        std::cerr << "loyaltyctl: journal from seq " << from << ": " << to_string(r.code) << ": " << r.message
                  << "\n";
        return 1;
      }
      newest = r.last_seq;
      bool reached_to = false;
      for (const auto& j : r.journal) {
        if (o.to != 0 && j.entry.seq > o.to) {
          reached_to = true;
          break;
        }
        if (format == "csv")
          write_csv(os, j);
        else
          write_jsonl(os, j);
        if (first == 0)
          first = j.entry.seq;
        last = j.entry.seq;
        ++written;
      }
      if (!os) {
        bar.end();
        std::cerr << "loyaltyctl: cannot write " << dest << "\n";
        return 1;
      }
      ++pages;
      const std::string text = "exported " + std::to_string(written) + " entries, up to seq " +
                               std::to_string(last) + " of " + std::to_string(newest);
      if (bar.tty())
        bar.draw(text);
      else if (o.progress_pages != 0 && pages % o.progress_pages == 0)
        std::cerr << text << "\n";
      if (r.next == 0 || reached_to || (o.to != 0 && last >= o.to))
        break;
      if (r.next <= from)
        throw std::runtime_error("the journal page from seq " + std::to_string(from) + " does not move forward");
      from = r.next;
    }
    os.flush();
    if (!os) {
      bar.end();
      std::cerr << "loyaltyctl: cannot write " << dest << "\n";
      return 1;
    }
    bar.end();
    std::cerr << "exported " << written << " entries";
    if (written != 0)
      std::cerr << " (seq " << first << " to " << last << ")";
    std::cerr << " as " << format << " to " << dest << "; newest entry seq " << newest << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "loyaltyctl: " << e.what() << "\n";
    return 2;
  }
}

// ---- import: rows ----------------------------------------------------------------------

// One row as the file has it.
struct raw_row {
  std::uint64_t line = 0;
  std::string member, brand, opening_balance;  // as written ("" = absent)
  std::vector<std::string> aliases;
  // The consents column / key: channel names separated by ';' (or a JSON
  // array), "none" for no channel, "" = leave the member's consent alone.
  std::string consents;
  errc code = errc::ok;  // a problem found while reading the row
  std::string message;
};

// One row checked: what the engine is asked.
struct import_row {
  std::uint64_t line = 0;
  std::string member_text;
  std::uint64_t member = 0;
  std::string brand;
  std::vector<std::string> aliases;
  std::int64_t opening_balance = 0;  // 0 = none
  // The member's consent as the row states it: every channel is set, to
  // granted for these bits and to withdrawn for the others.
  bool has_consents = false;
  std::uint32_t consents = 0;
};

// "a;b;;c" -> a, b, c (empty parts dropped).
void split_aliases(std::string_view text, std::vector<std::string>& out) {
  std::size_t start = 0;
  while (start <= text.size()) {
    auto end = text.find(';', start);
    if (end == std::string_view::npos)
      end = text.size();
    if (end > start)
      out.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
}

constexpr const char* known_columns = "member, brand, aliases, opening_balance, consents";

class row_source {
public:
  virtual ~row_source() = default;
  // The next row; false at the end of the file.
  virtual bool next(raw_row& row) = 0;
};

// CSV with a header line naming the columns, in any order: member and
// brand required; aliases, opening_balance and consents optional.
class csv_rows final : public row_source {
public:
  explicit csv_rows(std::istream& in) : reader_(in) {}

  // Reads the header; a sentence on failure (unknown, repeated or missing columns).
  std::string header() {
    std::vector<std::string> names;
    std::uint64_t line = 0;
    std::string error;
    if (!reader_.next(names, line, error))
      return "the file is empty: a header line naming the columns (" + std::string(known_columns) + ") comes first";
    if (!error.empty())
      return "line 1: " + error;
    if (!names.empty() && names[0].rfind("\xEF\xBB\xBF", 0) == 0)
      names[0].erase(0, 3);  // a UTF-8 byte order mark
    for (std::size_t i = 0; i < names.size(); ++i) {
      std::string n = names[i];
      while (!n.empty() && n.back() == ' ') n.pop_back();
      while (!n.empty() && n.front() == ' ') n.erase(0, 1);
      int* slot = n == "member" ? &member_ : n == "brand" ? &brand_ : n == "aliases" ? &aliases_
                : n == "opening_balance" ? &opening_ : n == "consents" ? &consents_ : nullptr;
      if (slot == nullptr)
        return "line 1: unknown column '" + n + "' (the columns are " + known_columns + ")";
      if (*slot >= 0)
        return "line 1: column '" + n + "' appears twice";
      *slot = static_cast<int>(i);
    }
    if (member_ < 0 || brand_ < 0)
      return std::string("line 1: the header must name the columns member and brand");
    columns_ = names.size();
    return {};
  }

  bool next(raw_row& row) override {
    std::vector<std::string> f;
    std::string error;
    row = raw_row{};
    for (;;) {
      if (!reader_.next(f, row.line, error))
        return false;
      if (!(error.empty() && f.size() == 1 && f[0].empty()))
        break;  // skip blank lines
    }
    if (!error.empty()) {
      row.code = errc::invalid_argument;
      row.message = "malformed CSV: " + error;
      return true;
    }
    if (f.size() != columns_) {
      row.code = errc::invalid_argument;
      row.message = "the row has " + std::to_string(f.size()) + " fields, the header " + std::to_string(columns_);
      if (member_ < static_cast<int>(f.size()))
        row.member = f[static_cast<std::size_t>(member_)];
      return true;
    }
    row.member = f[static_cast<std::size_t>(member_)];
    row.brand = f[static_cast<std::size_t>(brand_)];
    if (aliases_ >= 0)
      split_aliases(f[static_cast<std::size_t>(aliases_)], row.aliases);
    if (opening_ >= 0)
      row.opening_balance = f[static_cast<std::size_t>(opening_)];
    if (consents_ >= 0)
      row.consents = f[static_cast<std::size_t>(consents_)];
    return true;
  }

private:
  detail::csv_reader reader_;
  int member_ = -1, brand_ = -1, aliases_ = -1, opening_ = -1, consents_ = -1;
  std::size_t columns_ = 0;
};

// JSON lines: one object per line with the keys member (number, or a string
// of digits), brand (string), aliases (array of strings, or one string
// split at ';'), opening_balance (integer or null), consents (array of
// channel names, or one string split at ';'; null / [] / "" = not given).
class jsonl_rows final : public row_source {
public:
  explicit jsonl_rows(std::istream& in) : in_(in) {}

  bool next(raw_row& row) override {
    std::string text;
    row = raw_row{};
    for (;;) {
      if (!std::getline(in_, text))
        return false;
      ++line_;
      if (text.find_first_not_of(" \t\r") != std::string::npos)
        break;
    }
    row.line = line_;
    detail::json_value v;
    std::string error;
    if (!detail::json_parser::parse(text, v, error))
      return bad(row, errc::invalid_argument, "not JSON: " + error);
    if (v.type != detail::json_value::kind::object)
      return bad(row, errc::wrong_type, "a line must hold one JSON object");
    using kind = detail::json_value::kind;
    for (const auto& [key, x] : v.members) {
      if (key == "member") {
        if (x.type == kind::number || x.type == kind::string)
          row.member = x.text;
        else
          return bad(row, errc::wrong_type, "member must be a number");
      } else if (key == "brand") {
        if (x.type != kind::string)
          return bad(row, errc::wrong_type, "brand must be a string");
        row.brand = x.text;
      } else if (key == "aliases") {
        if (x.type == kind::string) {
          split_aliases(x.text, row.aliases);
        } else if (x.type == kind::array) {
          for (const auto& a : x.items) {
            if (a.type != kind::string)
              return bad(row, errc::wrong_type, "aliases must be an array of strings");
            if (!a.text.empty())
              row.aliases.push_back(a.text);
          }
        } else if (x.type != kind::null) {
          return bad(row, errc::wrong_type, "aliases must be an array of strings");
        }
      } else if (key == "opening_balance") {
        if (x.type == kind::number && !x.integer)
          return bad(row, errc::invalid_amount, "opening_balance must be a whole number of points");
        if (x.type == kind::number)
          row.opening_balance = x.text;
        else if (x.type != kind::null)
          return bad(row, errc::wrong_type, "opening_balance must be a number");
      } else if (key == "consents") {
        if (x.type == kind::string) {
          row.consents = x.text;
        } else if (x.type == kind::array) {
          for (const auto& a : x.items) {
            if (a.type != kind::string)
              return bad(row, errc::wrong_type, "consents must be an array of channel names");
            row.consents += (row.consents.empty() ? "" : ";") + a.text;
          }
          if (x.items.empty())
            row.consents = "none";  // an empty array states: no channel
        } else if (x.type != kind::null) {
          return bad(row, errc::wrong_type, "consents must be an array of channel names");
        }
      } else {
        return bad(row, errc::invalid_argument,
                   "unknown key '" + key + "' (the keys are " + std::string(known_columns) + ")");
      }
    }
    return true;
  }

private:
  static bool bad(raw_row& row, errc code, std::string message) {
    row.code = code;
    row.message = std::move(message);
    return true;
  }

  std::istream& in_;
  std::uint64_t line_ = 0;
};

// The checks the engine would make, made before anything is sent, so a bad
// row is refused whole. errc::ok, or the code and `message`.
errc validate(const raw_row& raw, import_row& out, std::string& message) {
  out = import_row{};
  out.line = raw.line;
  out.member_text = raw.member;
  if (raw.code != errc::ok) {
    message = raw.message;
    return raw.code;
  }
  if (raw.member.empty()) {
    message = "member is missing";
    return errc::missing_field;
  }
  const bool digits = raw.member.find_first_not_of("0123456789") == std::string::npos;
  std::uint64_t id = 0;
  auto [p, ec] = std::from_chars(raw.member.data(), raw.member.data() + raw.member.size(), id);
  if (!digits || ec != std::errc() || id == 0 || id > member_id_max) {
    message = "member '" + raw.member + "' is not an id between 1 and 2^56-1";
    return errc::invalid_argument;
  }
  out.member = id;
  if (raw.brand.empty()) {
    message = "brand is missing";
    return errc::missing_field;
  }
  if (raw.brand.size() > code_bytes_max) {
    message = "brand must be at most 64 bytes";
    return errc::invalid_argument;
  }
  out.brand = raw.brand;
  for (const auto& a : raw.aliases) {
    if (a.size() > code_bytes_max) {
      message = "alias '" + a.substr(0, 16) + "...' is longer than 64 bytes";
      return errc::invalid_argument;
    }
    if (std::find(out.aliases.begin(), out.aliases.end(), a) == out.aliases.end())
      out.aliases.push_back(a);
  }
  if (!raw.opening_balance.empty()) {
    const std::string& t = raw.opening_balance;
    const bool negative = t[0] == '-';
    const std::string_view mag = std::string_view(t).substr(negative ? 1 : 0);
    if (mag.empty() || mag.find_first_not_of("0123456789") != std::string_view::npos) {
      message = "opening_balance '" + t + "' is not a whole number of points";
      return errc::invalid_argument;
    }
    std::uint64_t v = 0;
    auto [q, ec2] = std::from_chars(mag.data(), mag.data() + mag.size(), v);
    if (ec2 != std::errc() || v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      message = "opening_balance " + t + " does not fit in 64 bits";
      return errc::amount_overflow;
    }
    if (negative && v != 0) {
      message = "opening_balance " + t + " is negative";
      return errc::invalid_amount;
    }
    out.opening_balance = static_cast<std::int64_t>(v);
  }
  if (!raw.consents.empty()) {
    out.has_consents = true;
    std::vector<std::string> names;
    split_aliases(raw.consents, names);
    for (const auto& n : names) {
      const std::uint32_t bit = consent_bit(n);
      if (bit == 0 && !(n == "none" && names.size() == 1)) {
        message = "consents: '" + n.substr(0, 32) + "' is not a consent channel (" + channels_text(consent_channels_all) +
                  ", or none)";
        return errc::invalid_argument;
      }
      out.consents |= bit;
    }
  }
  return errc::ok;
}

// ---- import: the error report ------------------------------------------------------------

class error_report {
public:
  bool open(const std::string& path) {
    path_ = path;
    out_.open(path, std::ios::binary | std::ios::trunc);
    out_ << "line,member,op,error,message\n";
    return static_cast<bool>(out_);
  }
  void add(std::uint64_t line, const std::string& member, std::string_view op, errc code, const std::string& msg) {
    out_ << line << "," << csv_field(member) << "," << op << "," << to_string(code) << "," << csv_field(msg) << "\n";
    ++lines_;
  }
  // Closes it; removes it when it lists nothing. False if it could not be written.
  bool close() {
    out_.flush();
    const bool ok = static_cast<bool>(out_);
    out_.close();
    std::error_code ec;
    if (lines_ == 0)
      std::filesystem::remove(path_, ec);
    return ok;
  }
  [[nodiscard]] std::uint64_t lines() const { return lines_; }
  [[nodiscard]] const std::string& path() const { return path_; }

private:
  std::string path_;
  std::ofstream out_;
  std::uint64_t lines_ = 0;
};

// ---- import: the engine side ----------------------------------------------------------------

bool retryable(errc code) {
  return code == errc::overloaded || code == errc::rate_limited || code == errc::unavailable;
}

// 64-bit FNV-1a: an alias in a txn id of bounded length.
std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 14695981039346656037ull;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

struct import_counts {
  std::uint64_t read = 0, imported = 0, present = 0, failed = 0;
  [[nodiscard]] std::uint64_t done() const { return imported + present + failed; }
};

// Sends the rows' operations in pipelined batches. Per row: `enroll` first;
// once it is answered, its follow-ups (link_alias per alias, the opening
// balance's adjust) -- after a `balance` that checks the home brand when the
// member was enrolled before. Operations of one batch are routed
// concurrently, so a follow-up is never sent before its enroll's answer.
class importer {
public:
  importer(client& c, row_source& rows, error_report& report, const bulk_commands::import_options& o,
           std::uint32_t batch, std::uint32_t inflight, std::uint64_t total)
    : c_(c), rows_(rows), report_(report), o_(o), batch_(batch), inflight_(inflight), total_(total) {}

  // False on a connection failure (`error` says it); the counts say how far it got.
  bool run(std::string& error) {
    for (;;) {
      fill();
      while (batches_.size() < inflight_ && ready())
        send_batch();
      if (batches_.empty()) {
        if (!retry_.empty()) {
          std::this_thread::sleep_until(earliest_retry());
          continue;
        }
        if (eof_ && enrolls_.empty() && follow_.empty())
          return true;
        continue;
      }
      response r;
      if (!c_.receive(r, error, answer_timeout))
        return false;
      if (!on_answer(r, error))
        return false;
      show();
    }
  }

  [[nodiscard]] const import_counts& counts() const { return n_; }
  void end_progress() {
    if (bar_.tty())
      bar_.draw(progress_text(), true);
    bar_.end();
  }

private:
  struct row_state {
    import_row row;
    std::uint32_t outstanding = 0;  // operations queued or in flight
    bool failed = false, posted = false;
  };
  struct pending_op {
    std::uint64_t row = 0;  // key in rows_
    request req;
    std::uint32_t attempts = 0;
    steady::time_point not_before{};
  };

  // Reads rows while fewer enrolls wait than the batches in flight can take.
  void fill() {
    while (!eof_ && enrolls_.size() < static_cast<std::size_t>(batch_) * inflight_) {
      raw_row raw;
      if (!rows_.next(raw)) {
        eof_ = true;
        return;
      }
      ++n_.read;
      import_row row;
      std::string message;
      if (const errc code = validate(raw, row, message); code != errc::ok) {
        report_.add(row.line, row.member_text, "validate", code, message);
        ++n_.failed;
        continue;
      }
      const std::uint64_t key = next_row_++;
      pending_op op;
      op.row = key;
      op.req.op = opcode::enroll;
      op.req.member = row.member;
      op.req.brand = row.brand;
      auto& st = rows_state_[key];
      st.row = std::move(row);
      st.outstanding = 1;
      enrolls_.push_back(std::move(op));
    }
  }

  [[nodiscard]] bool ready() const {
    if (!follow_.empty() || !enrolls_.empty())
      return true;
    const auto now = steady::now();
    return std::any_of(retry_.begin(), retry_.end(), [&](const pending_op& p) { return p.not_before <= now; });
  }

  [[nodiscard]] steady::time_point earliest_retry() const {
    auto t = steady::time_point::max();
    for (const auto& p : retry_)
      t = std::min(t, p.not_before);
    return t;
  }

  // One batch: follow-ups first (their rows are furthest along), then the
  // retries that are due, then new enrolls.
  void send_batch() {
    std::vector<pending_op> ops;
    auto take = [&](std::deque<pending_op>& q) {
      while (ops.size() < batch_ && !q.empty()) {
        ops.push_back(std::move(q.front()));
        q.pop_front();
      }
    };
    take(follow_);
    const auto now = steady::now();
    for (auto it = retry_.begin(); it != retry_.end() && ops.size() < batch_;) {
      if (it->not_before <= now) {
        ops.push_back(std::move(*it));
        it = retry_.erase(it);
      } else {
        ++it;
      }
    }
    take(enrolls_);
    request b;
    b.op = opcode::batch;
    for (auto& p : ops) {
      p.req.id = ++next_op_id_;
      b.ops.push_back(p.req);
    }
    const auto id = c_.send(std::move(b));
    batches_.emplace(id, std::move(ops));
  }

  bool on_answer(const response& r, std::string& error) {
    auto it = batches_.find(r.id);
    if (it == batches_.end()) {
      error = r.ok() ? "the engine answered a request it was not sent"
                     : "the engine ended the session: " + std::string(to_string(r.code)) + ": " + r.message;
      return false;
    }
    auto ops = std::move(it->second);
    batches_.erase(it);
    if (!r.ok()) {  // the whole batch: overloaded, rate_limited, ...
      if (r.code == errc::rate_limited && batch_ > 1)
        batch_ = std::max<std::uint32_t>(1, batch_ / 2);  // a key's rate below the batch never passes
      for (auto& op : ops)
        on_result(std::move(op), r);
      return true;
    }
    if (r.results.size() != ops.size()) {
      error = "a batch of " + std::to_string(ops.size()) + " operations was answered with " +
              std::to_string(r.results.size()) + " results";
      return false;
    }
    for (std::size_t i = 0; i < ops.size(); ++i)
      on_result(std::move(ops[i]), r.results[i]);
    return true;
  }

  void on_result(pending_op&& op, const response& r) {
    auto& st = rows_state_.at(op.row);
    if (!r.ok() && retryable(r.code)) {
      if (++op.attempts < retries_max) {
        const auto wait = std::min<std::chrono::milliseconds>(retry_longest, retry_first * (1u << std::min(op.attempts, 10u)));
        op.not_before = steady::now() + wait;
        retry_.push_back(std::move(op));
        return;
      }
      fail(st, op.req.op, r.code, r.message + " (gave up after " + std::to_string(retries_max) + " tries)");
    } else {
      switch (op.req.op) {
        case opcode::enroll:
          if (r.ok()) {
            st.posted = true;
            follow_ups(op.row, st);
          } else if (r.code == errc::member_exists) {
            check_brand(op.row, st);  // enrolled before: by an earlier run, or at another brand?
          } else {
            fail(st, op.req.op, r.code, r.message);
          }
          break;
        case opcode::balance:
          if (!r.ok())
            fail(st, op.req.op, r.code, r.message);
          else if (r.brand != st.row.brand)
            fail(st, opcode::enroll, errc::member_exists,
                 "member " + std::to_string(st.row.member) + " is already enrolled at brand " + r.brand + ", not " +
                   st.row.brand + "; nothing else of the row was sent");
          else
            follow_ups(op.row, st);
          break;
        default:  // link_alias, adjust
          if (!r.ok())
            fail(st, op.req.op, r.code, r.message);
          else if (!r.replayed)
            st.posted = true;
          break;
      }
    }
    if (--st.outstanding == 0)
      finish(op.row);
  }

  void fail(row_state& st, opcode op, errc code, const std::string& message) {
    report_.add(st.row.line, st.row.member_text, to_string(op), code,
                message.empty() ? std::string(default_message(code)) : message);
    st.failed = true;
  }

  void finish(std::uint64_t key) {
    auto it = rows_state_.find(key);
    const auto& st = it->second;
    if (st.failed)
      ++n_.failed;
    else if (st.posted)
      ++n_.imported;
    else
      ++n_.present;
    rows_state_.erase(it);
  }

  void queue_follow(std::uint64_t key, row_state& st, request req) {
    pending_op op;
    op.row = key;
    op.req = std::move(req);
    ++st.outstanding;
    follow_.push_back(std::move(op));
  }

  void check_brand(std::uint64_t key, row_state& st) {
    request q;
    q.op = opcode::balance;
    q.member = st.row.member;
    queue_follow(key, st, std::move(q));
  }

  // What follows a row's answered enroll. Txn ids are the row's own
  // (docs/OPERATIONS.md): a rerun sends the same ones and is answered as a
  // replay.
  void follow_ups(std::uint64_t key, row_state& st) {
    const std::string member = std::to_string(st.row.member);
    for (const auto& alias : st.row.aliases) {
      request q;
      q.op = opcode::link_alias;
      q.member = st.row.member;
      q.alias = alias;
      char hash[17];
      std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(fnv1a(alias)));
      q.txn = o_.txn_prefix + "alias:" + member + ":" + hash;
      queue_follow(key, st, std::move(q));
    }
    if (st.row.opening_balance > 0) {
      request q;
      q.op = opcode::adjust;
      q.member = st.row.member;
      q.points = st.row.opening_balance;
      q.brand = st.row.brand;
      q.reason = "opening balance";
      q.txn = o_.txn_prefix + "open:" + member;
      queue_follow(key, st, std::move(q));
    }
    if (st.row.has_consents) {
      request q;
      q.op = opcode::consent;
      q.member = st.row.member;
      q.consent_mask = consent_channels_all;
      q.consent_values = st.row.consents;
      q.source = "import";
      q.txn = o_.txn_prefix + "consent:" + member;
      queue_follow(key, st, std::move(q));
    }
  }

  [[nodiscard]] std::string progress_text() const {
    const double secs = std::chrono::duration<double>(steady::now() - started_).count();
    const auto done = n_.done();
    const auto total = std::max(total_, done);
    constexpr int width = 30;
    const int filled = total == 0 ? width : static_cast<int>(width * static_cast<double>(done) / static_cast<double>(total));
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.resize(width, '.');
    char rate[32];
    std::snprintf(rate, sizeof rate, "%.0f", secs > 0 ? static_cast<double>(done) / secs : 0.0);
    return "[" + bar + "] " + std::to_string(done) + "/" + std::to_string(total) + " rows, " + rate + " rows/s, " +
           std::to_string(n_.failed) + " failed";
  }

  void show() {
    if (bar_.tty()) {
      bar_.draw(progress_text());
      return;
    }
    if (o_.progress_rows == 0)
      return;
    const auto done = n_.done();
    if (done / o_.progress_rows != shown_ / o_.progress_rows)
      std::cerr << progress_text() << "\n";
    shown_ = done;
  }

  client& c_;
  row_source& rows_;
  error_report& report_;
  const bulk_commands::import_options& o_;
  std::uint32_t batch_, inflight_;
  std::uint64_t total_;
  bool eof_ = false;
  std::uint64_t next_row_ = 1, next_op_id_ = 0, shown_ = 0;
  std::unordered_map<std::uint64_t, row_state> rows_state_;
  std::deque<pending_op> enrolls_, follow_;
  std::vector<pending_op> retry_;
  std::unordered_map<std::uint64_t, std::vector<pending_op>> batches_;
  import_counts n_;
  progress_line bar_;
  steady::time_point started_ = steady::now();
};

// Lines in the file (for the progress bar's total).
std::uint64_t count_lines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::uint64_t n = 0;
  char buf[1 << 16];
  char last = '\n';
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    const auto got = static_cast<std::size_t>(in.gcount());
    n += static_cast<std::uint64_t>(std::count(buf, buf + got, '\n'));
    last = buf[got - 1];
  }
  return n + (last != '\n' ? 1 : 0);
}

bool ends_with(const std::string& s, std::string_view tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

int run_import(const endpoint& where, bulk_commands::import_options o) {
  std::string format = o.format;
  if (format.empty()) {
    if (ends_with(o.file, ".csv"))
      format = "csv";
    else if (ends_with(o.file, ".jsonl") || ends_with(o.file, ".ndjson") || ends_with(o.file, ".json"))
      format = "jsonl";
    else {
      std::cerr << "loyaltyctl: import: cannot tell the format of " << o.file
                << " from its name (.csv, .jsonl): give --format\n";
      return 1;
    }
  }
  if (o.txn_prefix.size() > txn_prefix_bytes_max) {
    std::cerr << "loyaltyctl: import: --txn-prefix is longer than " << txn_prefix_bytes_max << " bytes\n";
    return 1;
  }
  std::ifstream in(o.file, std::ios::binary);
  if (!in) {
    std::cerr << "loyaltyctl: cannot read " << o.file << ": " << std::strerror(errno) << "\n";
    return 1;
  }
  std::unique_ptr<row_source> rows;
  std::uint64_t total = count_lines(o.file);
  if (format == "csv") {
    auto csv = std::make_unique<csv_rows>(in);
    if (auto err = csv->header(); !err.empty()) {
      std::cerr << "loyaltyctl: import: " << o.file << ": " << err << "\n";
      return 1;
    }
    total = total > 0 ? total - 1 : 0;
    rows = std::move(csv);
  } else {
    rows = std::make_unique<jsonl_rows>(in);
  }
  error_report report;
  const std::string report_path = o.errors.empty() ? o.file + ".errors.csv" : o.errors;
  if (!report.open(report_path)) {
    std::cerr << "loyaltyctl: cannot write the error report " << report_path << "\n";
    return 1;
  }
  response hello;
  std::unique_ptr<client> c;
  try {
    c = open_session(where, hello);
  } catch (const std::exception& e) {
    std::cerr << "loyaltyctl: " << e.what() << "\n";
  }
  if (!c) {
    (void)report.close();
    return 1;
  }
  const std::uint32_t server_batch = hello.batch_ops_max == 0 ? static_cast<std::uint32_t>(limits::batch_ops_max)
                                                              : hello.batch_ops_max;
  std::uint32_t batch = o.batch == 0 ? server_batch : std::min(o.batch, server_batch);
  std::uint32_t inflight = std::max<std::uint32_t>(1, o.inflight);
  if (hello.inflight_max != 0) {  // every operation of a batch counts against it
    batch = std::min(batch, hello.inflight_max);
    inflight = std::max<std::uint32_t>(1, std::min(inflight, hello.inflight_max / batch));
  }
  importer imp(*c, *rows, report, o, batch, inflight, total);
  std::string error;
  bool whole = false;
  try {
    whole = imp.run(error);
  } catch (const std::exception& e) {
    error = e.what();
  }
  imp.end_progress();
  const auto& n = imp.counts();
  const bool report_ok = report.close();
  std::cout << "import " << o.file << ": " << n.read << " rows read, " << n.imported << " imported, " << n.present
            << " already present, " << n.failed << " failed";
  if (report.lines() != 0)
    std::cout << "; errors in " << report.path();
  std::cout << "\n";
  if (!whole) {
    std::cerr << "loyaltyctl: import stopped: " << error
              << "; run the same import again to finish it (nothing is posted twice)\n";
    return 1;
  }
  if (!report_ok) {
    std::cerr << "loyaltyctl: cannot write the error report " << report.path() << "\n";
    return 1;
  }
  return n.failed == 0 ? 0 : 2;
}

} // namespace

bulk_commands::bulk_commands(CLI::App& app) {
  export_ = app.add_subcommand("export", "bulk export of the ledger (export journal)");
  export_->require_subcommand(1);
  export_journal_ = export_->add_subcommand(
    "journal", "every journal entry from a seq on, with its postings, as JSON lines or CSV, for finance "
               "(admin or read key); a summary on stderr. Exit 0 done, 1 the engine refused or the output "
               "cannot be written, 2 connection failure");
  export_journal_->add_option("--from", ex_.from, "first seq (1 = the beginning)")
    ->capture_default_str()
    ->check(CLI::Range(std::uint64_t{1}, std::numeric_limits<std::uint64_t>::max()));
  export_journal_->add_option("--to", ex_.to, "last seq (default: the newest entry)");
  export_journal_->add_option("--format", ex_.format,
                              "jsonl (one entry a line, with its moves) or csv (one row a posting); default: csv "
                              "if --out ends in .csv, else jsonl")
    ->check(CLI::IsMember({"csv", "jsonl"}));
  export_journal_->add_option("--out", ex_.out, "output file (default: stdout)");
  export_journal_->add_option("--limit", ex_.limit, "entries per page, 1..1000 (default 100)")
    ->check(CLI::Range(1u, journal_limit_max));
  export_journal_->add_option("--progress-every", ex_.progress_pages,
                              "when stderr is not a terminal, a progress line every this many pages (0 = none)")
    ->capture_default_str();

  import_ = app.add_subcommand(
    "import", "enroll members with their aliases, consents and opening balances from a CSV or JSON-lines file, in "
              "batches; a rerun after a failure posts nothing twice (docs/OPERATIONS.md). Opening balances "
              "need an admin key. Exit 0 every row imported or already present, 2 some rows failed (see "
              "the error report), 1 bad file or connection failure");
  import_->add_option("file", im_.file,
                      "CSV with a header line (columns member, brand, aliases as a;b;c, opening_balance, "
                      "consents as email;sms or none) or JSON lines with the same keys")
    ->required();
  import_->add_option("--format", im_.format, "csv or jsonl (default: by the file's extension)")
    ->check(CLI::IsMember({"csv", "jsonl"}));
  import_->add_option("--errors", im_.errors,
                      "error report, CSV: line, member, op, error, message (default: FILE.errors.csv; removed "
                      "when no row failed)");
  import_->add_option("--txn-prefix", im_.txn_prefix,
                      "put before the txn ids the import makes (open:MEMBER, alias:MEMBER:HASH), 0..24 bytes; "
                      "keep it the same for a rerun");
  import_->add_option("--batch", im_.batch, "operations per batch (default: the engine's batch_ops_max)")
    ->check(CLI::Range(1u, static_cast<std::uint32_t>(limits::batch_ops_max)));
  import_->add_option("--inflight", im_.inflight, "batches in flight at once")
    ->capture_default_str()
    ->check(CLI::Range(1u, 64u));
  import_->add_option("--progress-every", im_.progress_rows,
                      "when stderr is not a terminal, a progress line every this many rows (0 = none)")
    ->capture_default_str();
}

bool bulk_commands::chosen() const { return *export_journal_ || *import_; }

int bulk_commands::run(const endpoint& where) const {
  if (*export_journal_)
    return run_export(where, ex_);
  return run_import(where, im_);
}

} // namespace loyalty::io::ctl

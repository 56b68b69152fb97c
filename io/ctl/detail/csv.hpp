// CSV as RFC 4180 writes it: fields separated by commas, a field with a
// comma, a quote or a line break enclosed in double quotes, a quote inside
// one doubled. Used by loyaltyctl's bulk import and export (io/ctl/bulk.cpp)
// and by the tests that read what it writes. Header-only, no state shared.
#pragma once

#include <cstdint>
#include <istream>
#include <string>
#include <string_view>
#include <vector>

namespace loyalty::io::detail {

// One field as it goes into a CSV file: quoted when it holds a comma, a
// quote, a line break or a leading / trailing space, as is otherwise.
[[nodiscard]] inline std::string csv_field(std::string_view s) {
  const bool quote = s.find_first_of(",\"\r\n") != std::string_view::npos ||
                     (!s.empty() && (s.front() == ' ' || s.back() == ' '));
  if (!quote)
    return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    if (c == '"')
      out += '"';
    out += c;
  }
  out += '"';
  return out;
}

// Reads records one at a time. A quoted field may span lines; a record ends
// at a line break (LF or CRLF) outside quotes or at the end of the input.
class csv_reader {
public:
  explicit csv_reader(std::istream& in) : in_(*in.rdbuf()) {}

  // The next record into `fields`; false at the end of the input. `line` is
  // the 1-based line the record starts on. A malformed record (text after a
  // closing quote, a quote left open at the end of the input) sets `error`
  // to a sentence; reading goes on after it. A blank line is a record of one
  // empty field.
  bool next(std::vector<std::string>& fields, std::uint64_t& line, std::string& error) {
    fields.clear();
    error.clear();
    line = line_;
    if (in_.sgetc() == std::char_traits<char>::eof())
      return false;
    std::string field;
    for (;;) {
      const int c = in_.sbumpc();
      if (c == std::char_traits<char>::eof() || c == '\n') {
        end_field(fields, field);
        if (c == '\n')
          ++line_;
        return true;
      }
      if (c == ',') {
        end_field(fields, field);
        continue;
      }
      if (c == '"' && field.empty()) {
        if (!quoted(field, error)) {
          skip_line();
          fields.push_back(std::move(field));
          return true;
        }
        continue;
      }
      field += static_cast<char>(c);
    }
  }

private:
  static void end_field(std::vector<std::string>& fields, std::string& field) {
    if (!field.empty() && field.back() == '\r')
      field.pop_back();  // CRLF
    fields.push_back(std::move(field));
    field.clear();
  }

  // After an opening quote: the field up to its closing quote, which must be
  // followed by a comma, a line break or the end (left unread).
  bool quoted(std::string& field, std::string& error) {
    for (;;) {
      const int c = in_.sbumpc();
      if (c == std::char_traits<char>::eof()) {
        error = "a quoted field is not closed before the end of the input";
        return false;
      }
      if (c == '\n')
        ++line_;
      if (c != '"') {
        field += static_cast<char>(c);
        continue;
      }
      if (in_.sgetc() == '"') {
        in_.sbumpc();
        field += '"';
        continue;
      }
      const int after = in_.sgetc();
      if (after == '\r')
        in_.sbumpc();
      const int end = in_.sgetc();
      if (end == ',' || end == '\n' || end == std::char_traits<char>::eof())
        return true;
      error = "text after the closing quote of a field";
      return false;
    }
  }

  void skip_line() {
    for (int c = in_.sbumpc(); c != std::char_traits<char>::eof(); c = in_.sbumpc())
      if (c == '\n') {
        ++line_;
        return;
      }
  }

  std::streambuf& in_;
  std::uint64_t line_ = 1;
};

} // namespace loyalty::io::detail

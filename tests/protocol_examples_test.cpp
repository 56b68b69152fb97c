// docs/PROTOCOL.md section 8 against a live engine, byte for byte. The
// examples went stale once because only the codec checked them: here every
// ```hex NAME-request block is sent as it stands, over real TCP, to a real
// engine (LMDB in a temporary directory, CAF member actors) running
// config/examples/retail.toml, and the answer must be exactly the bytes of
// the NAME-response block; the JSON line above each block must be what its
// bytes say. A failure prints the engine's answer as a block ready to paste.
#include "engine_rig.hpp"
#include "raw_wire.hpp"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

using namespace loyalty;
using namespace loyalty::io;
using test::hex_lines;
using test::json_of;
using test::raw_socket;

namespace {

// One ```hex block of section 8 and the JSON its paragraph shows for it.
struct example {
  std::string bytes;  // the frame, length prefix included
  std::string json;   // the last `{...}` span before the block
};

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  REQUIRE(f);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string bytes_of_hex(const std::string& hex_text) {
  std::string digits;
  for (char c : hex_text)
    if (std::isxdigit(static_cast<unsigned char>(c)))
      digits += c;
  REQUIRE(digits.size() % 2 == 0);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); i += 2)
    out += static_cast<char>(std::stoi(digits.substr(i, 2), nullptr, 16));
  return out;
}

// Section 8's blocks by name. The JSON of a block is the last inline code
// span starting with `{` between the previous block and this one.
std::map<std::string, example> section8_examples() {
  std::istringstream doc(read_file(LOYALTY_SOURCE_DIR "/docs/PROTOCOL.md"));
  std::map<std::string, example> out;
  std::string line, prose, name, block;
  bool in_section = false, in_block = false;
  while (std::getline(doc, line)) {
    if (line.rfind("## ", 0) == 0) {
      in_section = line.rfind("## 8.", 0) == 0;
      continue;
    }
    if (!in_section)
      continue;
    if (in_block) {
      if (line.rfind("```", 0) == 0) {
        in_block = false;
        example e;
        e.bytes = bytes_of_hex(block);
        const auto open = prose.rfind("`{");
        const auto close = open == std::string::npos ? open : prose.find("}`", open);
        if (close != std::string::npos)
          e.json = prose.substr(open + 1, close - open);
        INFO("block " << name);
        REQUIRE(out.emplace(name, std::move(e)).second);  // a name used twice
        prose.clear();
      } else {
        block += line + "\n";
      }
      continue;
    }
    if (line.rfind("```hex ", 0) == 0) {
      in_block = true;
      name = line.substr(7);
      block.clear();
      continue;
    }
    prose += line + "\n";
  }
  return out;
}

std::uint64_t at(const char* iso) {
  std::tm tm{};
  REQUIRE(::strptime(iso, "%Y-%m-%dT%H:%M:%SZ", &tm) != nullptr);
  return static_cast<std::uint64_t>(::timegm(&tm)) * 1'000'000ull;
}

// Sends the NAME-request block and requires the NAME-response block back,
// byte for byte; the JSON above each block must say what its bytes say.
void exchange(raw_socket& s, const std::map<std::string, example>& docs, const std::string& name) {
  INFO("example " << name);
  const auto req = docs.find(name + "-request");
  const auto want = docs.find(name + "-response");
  REQUIRE(req != docs.end());
  REQUIRE(want != docs.end());
  CHECK(req->second.json == json_of(req->second.bytes));
  // The client library writes exactly the documented bytes for these fields.
  request decoded = decode_request(req->second.bytes.data() + frame_header_bytes,
                                   req->second.bytes.size() - frame_header_bytes);
  REQUIRE(decoded.error == errc::ok);
  std::vector<char> again;
  encode_request(again, decoded);
  CHECK(std::string(again.begin(), again.end()) == req->second.bytes);

  s.send(req->second.bytes);
  const std::string got = s.frame();
  // On a difference: the answer as JSON and as a block ready to paste into
  // the document, and both frames in the document's layout.
  INFO("the engine answered " << json_of(got) << "\n```hex " << name << "-response\n" << hex_lines(got) << "```");
  CHECK(hex_lines(got) == hex_lines(want->second.bytes));
  CHECK(want->second.json == json_of(want->second.bytes));
  // And the client library reads it without losing a field.
  response r;
  std::string error;
  REQUIRE(decode_response(got.data() + frame_header_bytes, got.size() - frame_header_bytes, r, error));
  std::vector<char> back;
  encode_response(back, r);
  CHECK(std::string(back.begin(), back.end()) == got);
}

} // namespace

TEST_CASE("every hex example of PROTOCOL.md section 8 is what a live engine answers, byte for byte",
          "[io][docs]") {
  const auto docs = section8_examples();
  REQUIRE_FALSE(docs.empty());
  // The scenario below sends these, in this order; section 8 must hold
  // exactly their request and response blocks, so that no block goes
  // unchecked and none is missing.
  const std::vector<std::string> sent{"hello", "earn", "error", "hold", "redeem-brand"};
  std::vector<std::string> expected_names, names;
  for (const auto& n : sent)
    expected_names.push_back(n + "-request"), expected_names.push_back(n + "-response");
  std::sort(expected_names.begin(), expected_names.end());
  for (const auto& [n, e] : docs)
    names.push_back(n);
  CHECK(names == expected_names);

  // Section 8's story: member 1001 of acme, in the example program, on an
  // engine without API keys (so hello takes none). Its points, soonest to
  // expire first: 400 acme of December 2023 (they expire at the end of
  // 2025), 200 globex of September 2024 (end of 2026), 1000 acme of May 2025
  // (end of 2027), which made it silver.
  test::engine_rig g("examples", read_file(LOYALTY_SOURCE_DIR "/config/examples/retail.toml"),
                     at("2023-12-01T10:00:00Z"), [](engine_options& o) { o.settings.keys.clear(); });
  REQUIRE(g.c->enroll(1001, "acme").ok());
  REQUIRE(g.c->earn("till-2023-0412", 1001, "acme", 40000, "EUR", g.clock.now_us()).points == 400);
  g.clock.set(at("2024-09-02T10:00:00Z"));
  REQUIRE(g.c->earn("web-2024-0977", 1001, "globex", 10000, "EUR", g.clock.now_us()).points == 200);
  g.clock.set(at("2025-05-15T10:00:00Z"));
  auto silver = g.c->earn("till-2025-1540", 1001, "acme", 100000, "EUR", g.clock.now_us());
  REQUIRE(silver.points == 1000);
  REQUIRE(silver.tier == "silver");
  g.clock.set(at("2025-11-22T12:00:00Z"));

  raw_socket s(g.eng->port());
  for (const auto& n : sent)
    exchange(s, docs, n);
  g.check_verify();
}

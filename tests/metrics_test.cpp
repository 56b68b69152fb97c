// The Prometheus metrics endpoint over real HTTP: a real engine (ledger in a
// temporary directory, CAF actors, the wire server) with its metrics on a
// free loopback port, requests sent over the wire protocol, and scrapes made
// with a plain TCP socket, read until the server closes. The exposition text
// is parsed line by line as a scraper would. The real loyaltyd binary, with
// --metrics-port on its command line, is scraped the same way.
#include "engine_process.hpp"
#include "engine_rig.hpp"
#include "free_port.hpp"
#include "http_scrape.hpp"

#include "io/server/metrics_text.hpp"
#include "io/server/metrics.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

using namespace loyalty;
using namespace loyalty::io;
using namespace loyalty::test;

namespace {

constexpr std::uint64_t t0 = 1'772'452'800'000'000ull;  // 2026-03-02T12:00:00Z

// skyair takes points for shop; hotel is suspended, so its requests are refused.
constexpr const char* program_toml = R"(
[program]
name = "metrics"
currency = "EUR"

[[brands]]
id = 1
code = "shop"
earn_rate = { num = 1, den = 100 }
cost_per_point = { num = 1, den = 2 }

[[tiers]]
name = "member"
threshold = 0
multiplier = { num = 1, den = 1 }

[[partners]]
id = 7
code = "skyair"
brand = "shop"
earn_cost = { num = 3, den = 2 }
burn_reimbursement = { num = 4, den = 5 }

[[partners]]
id = 8
code = "hotel"
brand = "shop"
earn_cost = { num = 1, den = 1 }
burn_reimbursement = { num = 1, den = 1 }
status = "suspended"
)";

// An engine with its metrics on a free port; `more` adjusts other options.
struct metrics_rig : test::engine_rig {
  explicit metrics_rig(std::function<void(engine_options&)> more = {})
    : test::engine_rig("metrics", program_toml, t0, [more](engine_options& o) {
        o.metrics_on_free_port = true;
        if (more)
          more(o);
      }) {
    REQUIRE(eng->metrics_port() != 0);
  }
};


// -- the exposition format, read as a scraper reads it ---------------------------------

struct sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct exposition {
  std::map<std::string, std::string> help, type;
  std::vector<std::string> type_order;  // families in the order of their TYPE lines
  std::vector<sample> samples;
  std::vector<std::string> bad;  // lines that do not parse
};

bool name_char(char c, bool first) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':' ||
         (!first && std::isdigit(static_cast<unsigned char>(c)));
}

// name{label="value",...} value
std::optional<sample> parse_sample(std::string_view line) {
  sample s;
  std::size_t i = 0;
  while (i < line.size() && name_char(line[i], i == 0))
    ++i;
  if (i == 0)
    return std::nullopt;
  s.name = std::string(line.substr(0, i));
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (i < line.size() && line[i] != '}') {
      const auto start = i;
      while (i < line.size() && name_char(line[i], i == start))
        ++i;
      if (i == start || i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"')
        return std::nullopt;
      std::string label(line.substr(start, i - start)), value;
      for (i += 2; i < line.size() && line[i] != '"'; ++i) {
        if (line[i] != '\\') {
          value += line[i];
          continue;
        }
        if (++i == line.size())
          return std::nullopt;
        if (line[i] == 'n')
          value += '\n';
        else if (line[i] == '\\' || line[i] == '"')
          value += line[i];
        else
          return std::nullopt;
      }
      if (i == line.size())
        return std::nullopt;
      ++i;  // the closing quote
      s.labels[label] = value;
      if (i < line.size() && line[i] == ',')
        ++i;
    }
    if (i == line.size())
      return std::nullopt;
    ++i;  // }
  }
  if (i >= line.size() || line[i] != ' ')
    return std::nullopt;
  const std::string value(line.substr(i + 1));
  if (value == "+Inf") {
    s.value = HUGE_VAL;
    return s;
  }
  char* end = nullptr;
  s.value = std::strtod(value.c_str(), &end);
  if (value.empty() || end != value.c_str() + value.size())
    return std::nullopt;
  return s;
}

exposition parse_exposition(const std::string& body) {
  exposition x;
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
      const auto rest = line.substr(7);
      const auto sp = rest.find(' ');
      if (sp == std::string::npos) {
        x.bad.push_back(line);
        continue;
      }
      const auto name = rest.substr(0, sp);
      if (line[2] == 'H') {
        x.help[name] = rest.substr(sp + 1);
      } else {
        x.type[name] = rest.substr(sp + 1);
        x.type_order.push_back(name);
      }
      continue;
    }
    if (line.empty() || line[0] == '#')
      continue;
    if (auto s = parse_sample(line))
      x.samples.push_back(std::move(*s));
    else
      x.bad.push_back(line);
  }
  return x;
}

// The family a sample belongs to: a histogram's _bucket, _sum and _count
// are its own.
std::string family_of(const exposition& x, const std::string& name) {
  for (std::string_view suffix : {"_bucket", "_sum", "_count"})
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      const auto base = name.substr(0, name.size() - suffix.size());
      if (auto it = x.type.find(base); it != x.type.end() && it->second == "histogram")
        return base;
    }
  return name;
}

std::optional<double> value_of(const exposition& x, const std::string& name,
                               const std::map<std::string, std::string>& labels = {}) {
  for (const auto& s : x.samples)
    if (s.name == name && s.labels == labels)
      return s.value;
  return std::nullopt;
}

// Checks a histogram: buckets in increasing le, cumulative counts, the last
// one +Inf and equal to _count. Returns _count.
double check_histogram(const exposition& x, const std::string& name) {
  INFO(name);
  std::vector<std::pair<double, double>> buckets;  // le, count
  for (const auto& s : x.samples)
    if (s.name == name + "_bucket") {
      REQUIRE(s.labels.count("le") == 1);
      const auto& le = s.labels.at("le");
      buckets.emplace_back(le == "+Inf" ? HUGE_VAL : std::stod(le), s.value);
    }
  REQUIRE(buckets.size() >= 2);
  for (std::size_t i = 1; i < buckets.size(); ++i) {
    CHECK(buckets[i].first > buckets[i - 1].first);
    CHECK(buckets[i].second >= buckets[i - 1].second);
  }
  CHECK(buckets.back().first == HUGE_VAL);
  const auto count = value_of(x, name + "_count");
  REQUIRE(count);
  CHECK(buckets.back().second == *count);
  CHECK(value_of(x, name + "_sum"));
  return *count;
}

} // namespace

TEST_CASE("a scrape reports requests by operation, errors by operation and code, and the group commit as histograms",
          "[io][metrics]") {
  metrics_rig g;
  REQUIRE(g.c->enroll(1, "shop").ok());
  constexpr int earns = 3;
  for (int i = 0; i < earns; ++i)
    REQUIRE(g.c->earn("e-" + std::to_string(i), 1, "shop", 10000, "EUR", t0).ok());
  const auto refused = g.c->redeem("r-1", 1, 1'000'000);
  REQUIRE(refused.code == errc::insufficient_points);
  REQUIRE(g.c->partner_earn("p-1", 1, "skyair", 50).ok());
  REQUIRE(g.c->partner_earn("p-2", 1, "hotel", 50).code == errc::partner_suspended);

  const auto a = scrape(g.eng->metrics_port());
  REQUIRE(a.closed);
  REQUIRE(a.status == "200 OK");
  CHECK(a.headers.at("content-type") == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(a.headers.at("content-length") == std::to_string(a.body.size()));
  CHECK(a.headers.at("connection") == "close");

  const auto x = parse_exposition(a.body);
  INFO(a.body);
  CHECK(x.bad.empty());
  CHECK(value_of(x, "loyaltyd_requests_total", {{"op", "earn"}}) == earns);
  CHECK(value_of(x, "loyaltyd_requests_total", {{"op", "redeem"}}) == 1);
  CHECK(value_of(x, "loyaltyd_errors_total", {{"op", "redeem"}, {"code", "insufficient_points"}}) == 1);
  CHECK(value_of(x, "loyaltyd_errors_total", {{"op", "partner_earn"}, {"code", "partner_suspended"}}) == 1);
  CHECK(value_of(x, "loyaltyd_partner_requests_total", {{"partner", "skyair"}, {"result", "forwarded"}}) == 1);
  CHECK(value_of(x, "loyaltyd_partner_requests_total", {{"partner", "hotel"}, {"result", "refused"}}) == 1);
  CHECK(value_of(x, "loyaltyd_connections") == 2);  // the rig's two clients
  CHECK(value_of(x, "loyaltyd_inflight_requests") == 0);
  CHECK(value_of(x, "loyaltyd_members_active") >= 1);
  CHECK(value_of(x, "loyaltyd_member_activations_total") >= 1);
  CHECK(value_of(x, "loyaltyd_member_failures_total") == 0);
  CHECK(value_of(x, "loyaltyd_ledger_last_seq") >= 1 + earns);
  CHECK(value_of(x, "loyaltyd_lmdb_map_bytes") == static_cast<double>(1ull << 30));
  const auto used = value_of(x, "loyaltyd_lmdb_used_bytes");
  REQUIRE(used);
  CHECK(*used > 0);
  CHECK(*used < static_cast<double>(1ull << 30));
  CHECK(value_of(x, "loyaltyd_process_resident_anon_bytes") > 0);

  CHECK(check_histogram(x, "loyaltyd_commit_batch_entries") > 0);
  CHECK(check_histogram(x, "loyaltyd_commit_seconds") == value_of(x, "loyaltyd_commit_batch_entries_count"));
  // Every earn and the redeem went to a member actor and came back.
  const auto answers = check_histogram(x, "loyaltyd_member_answer_seconds");
  CHECK(answers >= earns + 1);

  // Every sample belongs to a family with HELP and TYPE; every counter ends in _total.
  for (const auto& s : x.samples) {
    const auto family = family_of(x, s.name);
    INFO(s.name);
    CHECK(x.help.count(family) == 1);
    CHECK(x.type.count(family) == 1);
  }
  for (const auto& [name, type] : x.type) {
    INFO(name);
    CHECK(x.help.count(name) == 1);
    CHECK(name.rfind("loyaltyd_", 0) == 0);
    if (type == "counter")
      CHECK(name.compare(name.size() - 6, 6, "_total") == 0);
  }
  for (const auto* name : {"loyaltyd_requests_total", "loyaltyd_errors_total", "loyaltyd_inflight_requests",
                           "loyaltyd_connections", "loyaltyd_connections_total", "loyaltyd_members_active",
                           "loyaltyd_member_activations_total", "loyaltyd_member_passivations_total",
                           "loyaltyd_member_failures_total", "loyaltyd_commit_batch_entries", "loyaltyd_commit_seconds",
                           "loyaltyd_member_answer_seconds", "loyaltyd_checkpoints_total", "loyaltyd_checkpoint_seconds_total",
                           "loyaltyd_checkpoint_pending_accounts",
                           "loyaltyd_lmdb_map_bytes", "loyaltyd_lmdb_used_bytes", "loyaltyd_ledger_last_seq",
                           "loyaltyd_partner_requests_total", "loyaltyd_process_resident_anon_bytes",
                           "loyaltyd_accept_errors_total", "loyaltyd_connections_closed_total",
                           "loyaltyd_subscriptions", "loyaltyd_stream_events_total"}) {
    INFO(name);
    CHECK(x.type.count(name) == 1);
  }
  // Every opcode the server knows has its requests line, zero or not.
  CHECK(value_of(x, "loyaltyd_requests_total", {{"op", "settlement"}}) == 0);
  CHECK(value_of(x, "loyaltyd_requests_total", {{"op", "hello"}}) == 2);
  // Every close reason has its line, zero or not.
  CHECK(value_of(x, "loyaltyd_connections_closed_total", {{"reason", "write_stall"}}) == 0);

  // The `stats` operation keeps its names, counted from the same counters.
  const auto st = g.c->stats();
  REQUIRE(st.ok());
  std::map<std::string, std::uint64_t> stats(st.stats.begin(), st.stats.end());
  CHECK(stats["requests_earn"] == earns);
  CHECK(stats["errors_insufficient_points"] == 1);
  CHECK(stats["errors_partner_suspended"] == 1);
}

TEST_CASE("HEAD gets the headers of GET without a body; other paths are 404, other methods 405", "[io][metrics]") {
  metrics_rig g;
  const auto port = g.eng->metrics_port();
  const auto head = http_exchange(port, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  REQUIRE(head.closed);
  CHECK(head.status == "200 OK");
  CHECK(head.headers.at("content-type") == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(std::stoul(head.headers.at("content-length")) > 0);
  CHECK(head.body.empty());

  CHECK(http_exchange(port, "GET /metrics?name=x HTTP/1.0\r\n\r\n").status == "200 OK");
  CHECK(http_exchange(port, "GET http://x:1/metrics HTTP/1.1\r\n\r\n").status == "200 OK");
  CHECK(http_exchange(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").status == "404 Not Found");
  CHECK(http_exchange(port, "GET /metrics/x HTTP/1.1\r\nHost: x\r\n\r\n").status == "404 Not Found");
  const auto post = http_exchange(port, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
  CHECK(post.status == "405 Method Not Allowed");
  CHECK(post.headers.at("allow") == "GET, HEAD");
  CHECK(http_exchange(port, "DELETE /metrics HTTP/1.1\r\n\r\n").status == "405 Method Not Allowed");
}

TEST_CASE("a malformed request line is answered 400 and headers over the limit 431", "[io][metrics]") {
  metrics_rig g;
  const auto port = g.eng->metrics_port();
  for (const char* bad : {"GARBAGE\r\n\r\n", "GET /metrics\r\n\r\n", "GET  /metrics HTTP/1.1\r\n\r\n",
                          "GET /metrics HTTP/1.1 extra\r\n\r\n", "GET metrics HTTP/1.1\r\n\r\n",
                          "GET /metrics HTTP/2.0\r\n\r\n", "G(T /metrics HTTP/1.1\r\n\r\n",
                          "GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n"}) {
    INFO(bad);
    const auto a = http_exchange(port, bad);
    CHECK(a.closed);
    CHECK(a.status == "400 Bad Request");
  }
  // The request line alone is enough to refuse: no need to wait for headers.
  {
    auto s = connect_to(port);
    send_all(s, "BREW /pot HTCPCP/1.0\r\n");
    CHECK(read_answer(s).status == "400 Bad Request");
  }
  std::string big = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Padding: ";
  big.append(limits::metrics_request_bytes_max, 'a');
  big += "\r\n\r\n";
  const auto a = http_exchange(port, big);
  CHECK(a.closed);
  CHECK(a.status == "431 Request Header Fields Too Large");
  CHECK(scrape(port).status == "200 OK");
}

TEST_CASE("a request that stalls half-way is answered 408 and closed after the read timeout, and others are served "
          "meanwhile",
          "[io][metrics]") {
  metrics_rig g([](engine_options& o) { o.settings.metrics_read_timeout_ms = 1000; });
  const auto port = g.eng->metrics_port();
  auto stalled = connect_to(port);
  send_all(stalled, "GET /metrics HTTP/1.1\r\nHost: x\r\n");  // no blank line: the request never ends
  CHECK(scrape(port).status == "200 OK");
  const auto a = read_answer(stalled);
  CHECK(a.closed);  // by the server: the test's guard did not expire
  CHECK(a.status == "408 Request Timeout");
  CHECK(scrape(port).status == "200 OK");
}

TEST_CASE("connections over the limit are answered 503 until one of the others ends", "[io][metrics]") {
  // A read timeout long enough that the stalled connections hold their slots.
  metrics_rig g([](engine_options& o) { o.settings.metrics_read_timeout_ms = 600'000; });
  const auto port = g.eng->metrics_port();
  std::vector<socket_fd> held;
  for (std::uint32_t i = 0; i < limits::metrics_connections_max; ++i) {
    held.push_back(connect_to(port));
    send_all(held.back(), "GET /metrics HTTP/1.1\r\n");
  }
  // Accepted after every held one (one acceptor, in order): over the limit.
  const auto over = scrape(port);
  CHECK(over.closed);
  CHECK(over.status == "503 Service Unavailable");
  CHECK(over.headers.count("retry-after") == 1);

  held.front().reset();  // the server sees the close and frees its slot
  std::string status;
  for (int attempt = 0; attempt < 1000 && status != "200 OK"; ++attempt) {
    status = scrape(port).status;
    if (status != "200 OK")
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(status == "200 OK");
}

namespace {

// The TCP ports this process listens on: its sockets (/proc/self/fd) found
// in the kernel's tables in state LISTEN.
std::set<std::uint16_t> listening_ports() {
  std::set<std::string> inodes;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const auto target = std::filesystem::read_symlink(e.path(), ec).string();
    if (!ec && target.rfind("socket:[", 0) == 0)
      inodes.insert(target.substr(8, target.size() - 9));
  }
  std::set<std::uint16_t> ports;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // the header
    while (std::getline(in, line)) {
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      std::istringstream f(line);
      std::string sl, local, remote, st, queues, timer, retransmits, uid, timeout, inode;
      f >> sl >> local >> remote >> st >> queues >> timer >> retransmits >> uid >> timeout >> inode;
      if (st == "0A" && inodes.count(inode) != 0)
        ports.insert(static_cast<std::uint16_t>(std::stoul(local.substr(local.find(':') + 1), nullptr, 16)));
    }
  }
  return ports;
}

// Whether a TCP connection to the loopback port is refused.
bool connection_refused(std::uint16_t port) {
  auto s = tcp_socket();
  const auto a = loopback(port);
  return ::connect(s.fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0 && errno == ECONNREFUSED;
}

// The real loyaltyd, started with the settings file and program of `dir`
// and `args` on its command line after them (an executable script in
// front of it, which engine_process runs in its place).
test::engine_process_options loyaltyd_with(const test::temp_dir& dir, const std::string& args,
                                           const std::string& settings) {
  std::ofstream(dir.path / "program.toml") << program_toml;
  const auto script = dir.path / "loyaltyd.sh";
  std::ofstream(script) << "#!/bin/sh\nexec " << LOYALTYD_BIN << " \"$@\" " << args << "\n";
  std::filesystem::permissions(script, std::filesystem::perms::owner_all);
  test::engine_process_options o;
  o.binary = script.string();
  o.dir = dir.path;
  o.program = (dir.path / "program.toml").string();
  o.extra_settings = settings;
  return o;
}

std::string file_text(const std::filesystem::path& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

} // namespace

TEST_CASE("without a metrics port the endpoint is off: the engine listens on its wire port only", "[io][metrics]") {
  const auto before = listening_ports();
  {
    metrics_rig on;  // the control: the same check sees an endpoint that is on
    auto now = listening_ports();
    CHECK(now.count(on.eng->port()) == 1);
    CHECK(now.count(on.eng->metrics_port()) == 1);
  }
  test::engine_rig g("metrics-off", program_toml, t0);
  CHECK(g.eng->metrics_port() == 0);
  auto added = listening_ports();
  for (auto p : before)
    added.erase(p);
  CHECK(added == std::set<std::uint16_t>{g.eng->port()});
}

TEST_CASE("loyaltyd --metrics-port 0 turns off the endpoint its settings name", "[io][metrics]") {
  test::temp_dir dir("metrics-cli-off");
  const auto port = test::free_port();
  test::engine_process eng(loyaltyd_with(dir, "--metrics-port 0", "metrics_port = " + std::to_string(port)));
  std::string err;
  auto c = client::connect("127.0.0.1", eng.port(), err);
  INFO(err);
  REQUIRE(c);
  REQUIRE(c->hello().ok());  // serving
  CHECK(connection_refused(port));
  CHECK(file_text(eng.stderr_file()).find("metrics on ") == std::string::npos);
}

TEST_CASE("a real loyaltyd --metrics-port serves /metrics over HTTP, and a request moves its counter",
          "[io][metrics]") {
  test::temp_dir dir("metrics-cli");
  const auto port = test::free_port();
  test::engine_process eng(loyaltyd_with(dir, "--metrics-port " + std::to_string(port), ""));
  CHECK(file_text(eng.stderr_file()).find("metrics on http://127.0.0.1:" + std::to_string(port) + "/metrics") !=
        std::string::npos);
  const auto first = scrape(port);
  REQUIRE(first.status == "200 OK");
  CHECK(first.headers.at("content-type") == "text/plain; version=0.0.4; charset=utf-8");
  const auto x = parse_exposition(first.body);
  INFO(first.body);
  CHECK(x.bad.empty());
  for (const auto* name : {"loyaltyd_requests_total", "loyaltyd_errors_total", "loyaltyd_connections",
                           "loyaltyd_commit_batch_entries", "loyaltyd_commit_seconds", "loyaltyd_ledger_last_seq",
                           "loyaltyd_lmdb_map_bytes", "loyaltyd_members_active", "loyaltyd_process_resident_anon_bytes",
                           "loyaltyd_connections_closed_total"}) {
    INFO(name);
    CHECK(x.type.count(name) == 1);
  }
  CHECK(value_of(x, "loyaltyd_requests_total", {{"op", "enroll"}}) == 0);
  CHECK(value_of(x, "loyaltyd_lmdb_map_bytes") == static_cast<double>(1ull << 30));  // map_gib = 1

  std::string err;
  auto c = client::connect("127.0.0.1", eng.port(), err);
  INFO(err);
  REQUIRE(c);
  REQUIRE(c->hello().ok());
  REQUIRE(c->enroll(1, "shop").ok());
  const auto y = parse_exposition(scrape(port).body);
  CHECK(value_of(y, "loyaltyd_requests_total", {{"op", "enroll"}}) == 1);
  CHECK(value_of(y, "loyaltyd_requests_total", {{"op", "hello"}}) == 1);
  CHECK(value_of(y, "loyaltyd_connections") == 1);
  CHECK(value_of(y, "loyaltyd_ledger_last_seq") == 1);
}

TEST_CASE("loyaltyd --metrics-port on a port in use does not start and names the address", "[io][metrics]") {
  test::temp_dir dir("metrics-cli");
  // Hold a port: the engine's bind on it must fail.
  auto holder = tcp_socket();
  auto a = loopback(0);
  REQUIRE(::bind(holder.fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(holder.fd, 1) == 0);
  socklen_t len = sizeof a;
  REQUIRE(::getsockname(holder.fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  const auto port = ntohs(a.sin_port);

  std::ofstream(dir.path / "program.toml") << program_toml;
  std::ofstream(dir.path / "loyaltyd.toml") << "[engine]\nprogram = \"program.toml\"\nlisten_port = 0\n"
                                               "data_dir = \"data\"\nmap_gib = 1\nmetrics_port = 0\n";
  const auto err = dir.path / "stderr.txt";
  const std::string cmd = std::string(LOYALTYD_BIN) + " --config " + (dir.path / "loyaltyd.toml").string() +
                          " --metrics-port " + std::to_string(port) + " > /dev/null 2> " + err.string();
  const int status = std::system(cmd.c_str());
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 1);
  std::ifstream in(err);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  INFO(text);
  CHECK(text.find("loyaltyd: cannot serve metrics on 127.0.0.1:" + std::to_string(port) + ": ") != std::string::npos);
}

TEST_CASE("label values and help texts are escaped, and request lines are read, as the formats say",
          "[io][metrics]") {
  using namespace loyalty::io::detail;
  CHECK(escape_label_value("plain") == "plain");
  CHECK(escape_label_value("a\\b\"c\nd") == "a\\\\b\\\"c\\nd");
  CHECK(escape_help("50% \"of\" a\\b\nc") == "50% \"of\" a\\\\b\\nc");
  CHECK(format_value(std::uint64_t{18446744073709551615ull}) == "18446744073709551615");
  CHECK(format_value(0.00025) == "0.00025");
  CHECK(format_value(0.0001) == "0.0001");
  CHECK(format_value(1234.5) == "1234.5");
  CHECK(format_value(1e-9) == "1e-09");
  CHECK(format_value(2.0) == "2");
  CHECK(format_value(HUGE_VAL) == "+Inf");

  http_request r;
  CHECK(parse_http_request("GET /metrics HTTP/1.1\r\nHost: x\r\n", 100, r) == http_parse::incomplete);
  CHECK(parse_http_request("GET /metr", 100, r) == http_parse::incomplete);
  CHECK(parse_http_request("GET /metr", 9, r) == http_parse::too_large);
  const std::string_view unfinished = "GET /metrics HTTP/1.1\r\nHost: x\r\nA: b";
  CHECK(parse_http_request(unfinished, unfinished.size() + 1, r) == http_parse::incomplete);
  CHECK(parse_http_request(unfinished, unfinished.size(), r) == http_parse::too_large);
  REQUIRE(parse_http_request("HEAD /metrics?x=1 HTTP/1.1\nHost: x\n\n", 100, r) == http_parse::complete);
  CHECK(r.method == "HEAD");
  CHECK(r.path == "/metrics");
  CHECK(parse_http_request("GET /metrics HTTP/1.1\r\n folded\r\n\r\n", 100, r) == http_parse::bad_request);
  CHECK(parse_http_request("GET /a\x01 HTTP/1.1\r\n\r\n", 100, r) == http_parse::bad_request);
}

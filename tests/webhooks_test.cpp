// Issue 19 item 8: loyalty-webhooks, as an operator runs it. A real loyaltyd
// (tests/engine_process.hpp), the real loyalty-webhooks binary, and HTTP
// receivers written here with Asio on loopback: events arrive in seq order,
// signed, filtered per endpoint; a receiver that fails and recovers gets
// everything while a healthy one is not held up; a restart resumes from
// the stored position without loss.
#include "command.hpp"
#include "engine_process.hpp"
#include "http_scrape.hpp"
#include "eventually.hpp"
#include "key_lines.hpp"
#include "one_brand_program.hpp"
#include "temp_dir.hpp"

#include "config/consent.hpp"
#include "config/program.hpp"
#include "io/client/client.hpp"
#include "io/client/webhooks/delivery.hpp"
#include "io/wire/json.hpp"

#include <catch2/catch.hpp>

#include <asio.hpp>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

using namespace loyalty;
using namespace loyalty::io;
using loyalty::test::engine_process;
using loyalty::test::engine_process_options;
using loyalty::test::eventually;

namespace {

// The shared one-brand program with a second tier, so that an earn can
// also change the member's tier (two events of one entry).
const std::string program_toml = std::string(test::one_brand_program) + R"(
[[tiers]]
name = "silver"
threshold = 300
multiplier = { num = 1, den = 1 }
)";

constexpr const char* admin_secret = "webhooks-admin-key-0123456789";
constexpr const char* read_secret = "webhooks-read-key-0123456789";

void write_file(const std::filesystem::path& p, const std::string& text) {
  std::ofstream f(p);
  f << text;
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), {}};
}

// The real loyaltyd on the program above, with an admin and a read key.
engine_process_options engine_options(const std::filesystem::path& dir) {
  write_file(dir / "program.toml", program_toml);
  engine_process_options o;
  o.binary = LOYALTYD_BIN;
  o.dir = dir;
  o.program = (dir / "program.toml").string();
  o.extra_settings = test::key_lines(1, admin_secret, "admin") + test::key_lines(2, read_secret, "read");
  return o;
}

std::unique_ptr<client> connect_admin(std::uint16_t port) {
  std::string err;
  auto c = client::connect("127.0.0.1", port, err);
  INFO(err);
  REQUIRE(c);
  REQUIRE(c->hello("webhooks-test", admin_secret).ok());
  return c;
}

std::string hmac_hex(const std::string& secret, const std::string& body) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &len);
  std::ostringstream os;
  for (unsigned int i = 0; i < len; ++i)
    os << "0123456789abcdef"[mac[i] >> 4] << "0123456789abcdef"[mac[i] & 15];
  return os.str();
}

// One POST as the receiver read it.
struct post {
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
  [[nodiscard]] std::uint64_t seq() const { return std::stoull(headers.at("x-loyalty-seq")); }
};

// An HTTP/1.1 receiver on loopback (keep-alive, Content-Length bodies), in
// one of three moods: answers 200, answers 500, or closes the connection
// without an answer. Keeps every POST it read, and apart the ones it
// acknowledged with a 200.
class receiver {
public:
  enum class mood { ok, fail, hang_up };

  receiver() : acceptor_(ctx_, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    accept();
    thread_ = std::thread([this] { ctx_.run(); });
  }
  ~receiver() {
    ctx_.stop();
    thread_.join();
  }
  receiver(const receiver&) = delete;
  receiver& operator=(const receiver&) = delete;

  [[nodiscard]] std::string url() const {
    return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) + "/hook";
  }
  void set_mood(mood m) { mood_ = m; }
  [[nodiscard]] std::vector<post> acknowledged() const {
    std::lock_guard lock(mutex_);
    return acknowledged_;
  }
  [[nodiscard]] std::size_t acknowledged_count() const {
    std::lock_guard lock(mutex_);
    return acknowledged_.size();
  }
  // Entries acknowledged at least once (a redelivery counts once).
  [[nodiscard]] std::size_t distinct_seqs() const {
    std::lock_guard lock(mutex_);
    std::set<std::uint64_t> seqs;
    for (const auto& p : acknowledged_)
      seqs.insert(p.seq());
    return seqs.size();
  }
  [[nodiscard]] std::size_t refused_count() const {
    std::lock_guard lock(mutex_);
    return refused_;
  }

private:
  struct connection : std::enable_shared_from_this<connection> {
    connection(asio::ip::tcp::socket s, receiver& r) : sock(std::move(s)), owner(r) {}
    asio::ip::tcp::socket sock;
    receiver& owner;
    asio::streambuf buf;
    post current;

    void read_head() {
      asio::async_read_until(sock, buf, "\r\n\r\n", [self = shared_from_this()](asio::error_code ec, std::size_t n) {
        if (!ec)
          self->parse_head(n);
      });
    }
    void parse_head(std::size_t n) {
      std::string head(asio::buffers_begin(buf.data()), asio::buffers_begin(buf.data()) + static_cast<long>(n));
      buf.consume(n);
      current = post{};
      std::istringstream lines(head);
      std::string line;
      std::getline(lines, line);  // the request line
      current.headers = test::header_lines(lines);
      const std::size_t length = std::stoull(current.headers.count("content-length") ? current.headers["content-length"] : "0");
      const std::size_t have = buf.size();
      if (have >= length) {
        body(length);
        return;
      }
      asio::async_read(sock, buf, asio::transfer_exactly(length - have),
                       [self = shared_from_this(), length](asio::error_code ec, std::size_t) {
                         if (!ec)
                           self->body(length);
                       });
    }
    void body(std::size_t length) {
      current.body.assign(asio::buffers_begin(buf.data()), asio::buffers_begin(buf.data()) + static_cast<long>(length));
      buf.consume(length);
      const mood m = owner.mood_.load();
      {
        std::lock_guard lock(owner.mutex_);
        if (m == mood::ok)
          owner.acknowledged_.push_back(current);
        else
          ++owner.refused_;
      }
      if (m == mood::hang_up) {
        asio::error_code ignored;
        sock.close(ignored);
        return;
      }
      auto answer = std::make_shared<std::string>(
        m == mood::ok ? "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                      : "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nfail");
      asio::async_write(sock, asio::buffer(*answer), [self = shared_from_this(), answer](asio::error_code ec, std::size_t) {
        if (!ec)
          self->read_head();
      });
    }
  };

  void accept() {
    acceptor_.async_accept([this](asio::error_code ec, asio::ip::tcp::socket s) {
      if (ec)
        return;
      std::make_shared<connection>(std::move(s), *this)->read_head();
      accept();
    });
  }

  asio::io_context ctx_;
  asio::ip::tcp::acceptor acceptor_;
  std::thread thread_;
  std::atomic<mood> mood_{mood::ok};
  mutable std::mutex mutex_;
  std::vector<post> acknowledged_;
  std::size_t refused_ = 0;
};

// The real loyalty-webhooks, its output in `dir`/webhooks.log.
class webhooks_process {
public:
  webhooks_process(std::filesystem::path settings, std::filesystem::path log) : settings_(std::move(settings)), log_(std::move(log)) {
    const std::string bin = LOYALTY_WEBHOOKS_BIN, cfg = settings_.string(), out = log_.string();
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      execl(bin.c_str(), bin.c_str(), "--config", cfg.c_str(), "--verbose", static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  ~webhooks_process() { end(SIGKILL); }
  webhooks_process(const webhooks_process&) = delete;
  webhooks_process& operator=(const webhooks_process&) = delete;

  // Signals and reaps; the exit status (-1: killed by a signal).
  int end(int sig) {
    if (pid_ <= 0)
      return -1;
    ::kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

private:
  std::filesystem::path settings_, log_;
  pid_t pid_ = -1;
};

struct endpoint_spec {
  std::string name, url, secret, extra;  // extra: more lines of the table (filters)
};

std::string settings_text(std::uint16_t engine_port, const std::filesystem::path& state,
                          const std::vector<endpoint_spec>& endpoints) {
  std::string s = "[engine]\naddress = \"127.0.0.1:" + std::to_string(engine_port) + "\"\nkey = \"" + read_secret +
                  "\"\n[state]\ndir = \"" + state.string() + "\"\nstart = \"beginning\"\n";
  for (const auto& e : endpoints)
    // Small backoff keeps the failing receiver's test short.
    s += "[[endpoints]]\nname = \"" + e.name + "\"\nurl = \"" + e.url + "\"\nsecret = \"" + e.secret +
         "\"\ntimeout_ms = 5000\nbackoff_initial_ms = 20\nbackoff_max_ms = 200\n" + e.extra + "\n";
  return s;
}

// What the engine's own stream holds with these filters, from seq 1 to the
// newest entry now: the entries (their events) an endpoint must receive.
std::map<std::uint64_t, std::vector<stream_event>> engine_stream(std::uint16_t port, std::uint32_t types,
                                                                 std::uint32_t consent) {
  auto c = connect_admin(port);
  response r = c->subscribe(1, types, consent);
  REQUIRE(r.ok());
  const std::uint64_t target = r.seq + 1;
  std::map<std::uint64_t, std::vector<stream_event>> out;
  for (;;) {
    for (const auto& e : r.events)
      out[e.seq].push_back(e);
    if (r.next >= target)
      return out;
    std::string error;
    r = response{};
    REQUIRE(c->receive(r, error));
    REQUIRE(r.ok());
  }
}

// The body the doc promises for one entry at one endpoint
// (docs/OPERATIONS.md, "Webhooks": the POST body).
std::string expected_body(const std::string& endpoint, std::uint64_t seq, const std::vector<stream_event>& events) {
  std::string s = "{\"endpoint\":\"" + endpoint + "\",\"seq\":" + std::to_string(seq) + ",\"events\":[";
  for (std::size_t i = 0; i < events.size(); ++i)
    s += (i ? "," : "") + event_json(events[i]);
  return s + "]}";
}

// Every POST an endpoint acknowledged is one entry of `want`, in seq order,
// signed with `secret`, with its seq and delivery id; and every entry of
// `want` came (each once unless `duplicates_max` allows more).
void check_deliveries(const std::vector<post>& got, const std::string& endpoint, const std::string& secret,
                      const std::map<std::uint64_t, std::vector<stream_event>>& want) {
  std::uint64_t last = 0;
  std::set<std::uint64_t> seen;
  for (const auto& p : got) {
    const std::uint64_t seq = p.seq();
    INFO("endpoint " << endpoint << " seq " << seq);
    CHECK(seq > last);
    last = seq;
    seen.insert(seq);
    REQUIRE(want.count(seq) == 1);
    CHECK(p.body == expected_body(endpoint, seq, want.at(seq)));
    CHECK(p.headers.at("x-loyalty-signature") == "sha256=" + hmac_hex(secret, p.body));
    CHECK(p.headers.at("x-loyalty-delivery") == endpoint + "-" + std::to_string(seq));
    CHECK(p.headers.at("content-type") == "application/json");
  }
  CHECK(seen.size() == want.size());
}

const std::uint32_t email = consent_bit("email");
const std::uint32_t enrolled = event_type_bit("member_enrolled");

// Members 1..n enroll; odd members consent to e-mail; each earns twice
// (the second earn takes it to silver: a tier_changed event too).
void business(client& c, std::uint64_t first, std::uint64_t n, const std::string& tag) {
  for (std::uint64_t m = first; m < first + n; ++m) {
    REQUIRE(c.enroll(m, "shop").ok());
    if (m % 2 == 1)
      REQUIRE(c.consent(tag + "-c-" + std::to_string(m), m, email, email, "web-form").ok());
    REQUIRE(c.earn(tag + "-a-" + std::to_string(m), m, "shop", 10'000, "EUR", 0).ok());
    REQUIRE(c.earn(tag + "-b-" + std::to_string(m), m, "shop", 25'000, "EUR", 0).ok());
  }
}

std::uint64_t newest_seq(std::uint16_t port) {
  auto c = connect_admin(port);
  const response r = c->subscribe(0);
  REQUIRE(r.ok());
  return r.seq;
}

} // namespace

TEST_CASE("every endpoint receives its own events in seq order, signed, with its type and consent filters",
          "[webhooks]") {
  test::temp_dir tmp("webhooks");
  engine_process eng(engine_options(tmp.path));
  receiver all, enrolments, mailing;
  const std::vector<endpoint_spec> endpoints = {
    {"all", all.url(), "secret-of-all-0123456789", ""},
    {"enrolments", enrolments.url(), "secret-of-enrolments-0123", "types = [\"member_enrolled\"]\n"},
    {"mailing", mailing.url(), "secret-of-mailing-0123456", "consent = \"email\"\n"},
  };
  write_file(tmp.path / "webhooks.toml", settings_text(eng.port(), tmp.path / "state", endpoints));
  webhooks_process hooks(tmp.path / "webhooks.toml", tmp.path / "webhooks.log");

  auto c = connect_admin(eng.port());
  business(*c, 1, 6, "t1");

  const auto want_all = engine_stream(eng.port(), 0, 0);
  const auto want_enrolled = engine_stream(eng.port(), enrolled, 0);
  const auto want_mailing = engine_stream(eng.port(), 0, email);
  // The filters do filter: fewer entries than everything, and some.
  REQUIRE(want_enrolled.size() == 6);
  REQUIRE(!want_mailing.empty());
  REQUIRE(want_mailing.size() < want_all.size());
  INFO(read_file(tmp.path / "webhooks.log"));
  REQUIRE(eventually([&] { return all.acknowledged_count() >= want_all.size(); }));
  REQUIRE(eventually([&] { return enrolments.acknowledged_count() >= want_enrolled.size(); }));
  REQUIRE(eventually([&] { return mailing.acknowledged_count() >= want_mailing.size(); }));
  check_deliveries(all.acknowledged(), "all", "secret-of-all-0123456789", want_all);
  check_deliveries(enrolments.acknowledged(), "enrolments", "secret-of-enrolments-0123", want_enrolled);
  check_deliveries(mailing.acknowledged(), "mailing", "secret-of-mailing-0123456", want_mailing);
  for (const auto& p : enrolments.acknowledged())
    CHECK(p.body.find("\"type\":\"points_earned\"") == std::string::npos);
  // A tier change travels in the same POST as the earn that caused it.
  bool tier_with_earn = false;
  for (const auto& p : all.acknowledged())
    tier_with_earn = tier_with_earn || (p.body.find("\"type\":\"points_earned\"") != std::string::npos &&
                                        p.body.find("\"type\":\"tier_changed\"") != std::string::npos);
  CHECK(tier_with_earn);
  CHECK(hooks.end(SIGTERM) == 0);
}

TEST_CASE("a receiver that fails and recovers gets every event, and a healthy one is not held up meanwhile",
          "[webhooks]") {
  test::temp_dir tmp("webhooks");
  engine_process eng(engine_options(tmp.path));
  receiver healthy, flaky;
  flaky.set_mood(receiver::mood::fail);
  write_file(tmp.path / "webhooks.toml",
             settings_text(eng.port(), tmp.path / "state",
                           {{"healthy", healthy.url(), "secret-of-healthy-0123456", ""},
                            {"flaky", flaky.url(), "secret-of-flaky-012345678", ""}}));
  webhooks_process hooks(tmp.path / "webhooks.toml", tmp.path / "webhooks.log");

  auto c = connect_admin(eng.port());
  business(*c, 1, 5, "t2");
  const auto want = engine_stream(eng.port(), 0, 0);
  INFO(read_file(tmp.path / "webhooks.log"));
  // The healthy endpoint gets everything while the flaky one is still
  // refusing its first entry, answering 500 and then hanging up.
  REQUIRE(eventually([&] { return healthy.acknowledged_count() >= want.size(); }));
  REQUIRE(eventually([&] { return flaky.refused_count() >= 3; }));
  flaky.set_mood(receiver::mood::hang_up);
  const std::size_t refused = flaky.refused_count();
  REQUIRE(eventually([&] { return flaky.refused_count() >= refused + 3; }));
  CHECK(flaky.acknowledged_count() == 0);
  check_deliveries(healthy.acknowledged(), "healthy", "secret-of-healthy-0123456", want);

  flaky.set_mood(receiver::mood::ok);
  REQUIRE(eventually([&] { return flaky.acknowledged_count() >= want.size(); }));
  check_deliveries(flaky.acknowledged(), "flaky", "secret-of-flaky-012345678", want);
  CHECK(hooks.end(SIGTERM) == 0);
  const std::string log = read_file(tmp.path / "webhooks.log");
  const std::string first = std::to_string(want.begin()->first);
  CHECK(log.find("endpoint flaky failing: seq " + first + ": HTTP 500") != std::string::npos);
  CHECK(log.find("endpoint flaky recovered: seq " + first + " acknowledged") != std::string::npos);
  CHECK(log.find("endpoint healthy failing") == std::string::npos);
}

TEST_CASE("after a crash, loyalty-webhooks resumes from each endpoint's stored position and loses nothing",
          "[webhooks]") {
  test::temp_dir tmp("webhooks");
  engine_process eng(engine_options(tmp.path));
  receiver hook;
  write_file(tmp.path / "webhooks.toml",
             settings_text(eng.port(), tmp.path / "state", {{"crm", hook.url(), "secret-of-crm-0123456789", ""}}));
  auto c = connect_admin(eng.port());
  const std::string status_cmd =
    std::string(LOYALTY_WEBHOOKS_BIN) + " --config " + (tmp.path / "webhooks.toml").string() + " --status 2>&1";
  int rc = -1;
  CHECK(test::run_command(status_cmd, rc).find("crm no state yet") != std::string::npos);
  CHECK(rc == 0);

  std::size_t before = 0;
  {
    webhooks_process hooks(tmp.path / "webhooks.toml", tmp.path / "webhooks.log");
    business(*c, 1, 4, "t3a");
    before = engine_stream(eng.port(), 0, 0).size();
    INFO(read_file(tmp.path / "webhooks.log"));
    REQUIRE(eventually([&] { return hook.acknowledged_count() >= before; }));
    CHECK(hooks.end(SIGKILL) == -1);
  }
  // Committed while nobody follows the stream.
  business(*c, 5, 4, "t3b");
  const auto want = engine_stream(eng.port(), 0, 0);
  REQUIRE(want.size() > before);

  webhooks_process hooks(tmp.path / "webhooks.toml", tmp.path / "webhooks.log");
  INFO(read_file(tmp.path / "webhooks.log"));
  const std::size_t in_flight_max = 1;
  REQUIRE(eventually([&] { return hook.distinct_seqs() >= want.size(); }));
  // The position passes the newest entry, and --status says so.
  const std::string caught_up = "crm next=" + std::to_string(newest_seq(eng.port()) + 1);
  CHECK(eventually([&] { return test::run_command(status_cmd, rc).find(caught_up) != std::string::npos; }));
  CHECK(hooks.end(SIGTERM) == 0);
  const auto got = hook.acknowledged();
  // Every entry arrived; at most the one in flight at the kill came twice.
  std::map<std::uint64_t, int> times;
  for (const auto& p : got)
    ++times[p.seq()];
  CHECK(times.size() == want.size());
  CHECK(got.size() <= want.size() + in_flight_max);
  for (const auto& [seq, n] : times) {
    INFO("seq " << seq);
    CHECK(want.count(seq) == 1);
    CHECK(n <= 2);
  }
  CHECK(test::run_command(status_cmd, rc).find(caught_up) != std::string::npos);
  CHECK(rc == 0);
}

TEST_CASE("a bad settings file is refused with its file and line, and exit status 2", "[webhooks]") {
  test::temp_dir tmp("webhooks");
  write_file(tmp.path / "bad.toml", "[engine]\naddress = \"127.0.0.1:7411\"\n[state]\ndir = \"s\"\n"
                                    "[[endpoints]]\nname = \"x\"\nurl = \"https://example.com\"\n"
                                    "secret = \"0123456789abcdef\"\ntypes = [\"points_earnt\"]\n");
  int rc = -1;
  const std::string out = test::run_command(
    std::string(LOYALTY_WEBHOOKS_BIN) + " --config " + (tmp.path / "bad.toml").string() + " --check 2>&1", rc);
  CHECK(rc == 2);
  CHECK(out.find("bad.toml:9: 'types' in endpoint 'x': \"points_earnt\" is not an event type") != std::string::npos);
  test::run_command(std::string(LOYALTY_WEBHOOKS_BIN) + " --config " + std::string(LOYALTY_SOURCE_DIR) +
                      "/config/webhooks.toml --check 2>&1",
                    rc);
  CHECK(rc == 0);
}

TEST_CASE("the signature is the RFC 4231 HMAC-SHA256 of the body, hex, after sha256=", "[webhooks]") {
  // RFC 4231 test case 2.
  CHECK(webhooks::signature("Jefe", "what do ya want for nothing?") ==
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST_CASE("the backoff doubles from its first wait and stops at its cap, however many failures", "[webhooks]") {
  using std::chrono::milliseconds;
  CHECK(webhooks::backoff(1, 100, 1000) == milliseconds(100));
  CHECK(webhooks::backoff(2, 100, 1000) == milliseconds(200));
  CHECK(webhooks::backoff(4, 100, 1000) == milliseconds(800));
  CHECK(webhooks::backoff(5, 100, 1000) == milliseconds(1000));
  CHECK(webhooks::backoff(4'000'000'000u, 3'600'000, 86'400'000) == milliseconds(86'400'000));
}

TEST_CASE("a stored position reads back, and a damaged state file is an error, not a restart from scratch",
          "[webhooks]") {
  test::temp_dir tmp("webhooks");
  const std::string dir = tmp.path.string();
  std::string error;
  CHECK(!webhooks::load_next(dir, "crm", error).has_value());
  CHECK(error.empty());
  REQUIRE(webhooks::store_next(dir, "crm", 42, error));
  REQUIRE(webhooks::store_next(dir, "crm", 43, error));
  CHECK(webhooks::load_next(dir, "crm", error) == std::optional<std::uint64_t>(43));
  CHECK(read_file(webhooks::state_path(dir, "crm")) == "next=43\n");
  CHECK(!std::filesystem::exists(webhooks::state_path(dir, "crm") + ".tmp"));
  write_file(webhooks::state_path(dir, "crm"), "next=4x\n");
  CHECK(!webhooks::load_next(dir, "crm", error).has_value());
  CHECK(error.find("not a state file") != std::string::npos);
}

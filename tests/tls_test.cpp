// TLS on the wire protocol over real TCP on loopback: an engine in the test
// process with tls_cert / tls_key set, a self-signed certificate made at test
// time by the `openssl req -x509` command docs/OPERATIONS.md gives, and the
// client library, loyaltyctl and the load generator as integrators use them.
#include "temp_dir.hpp"
#include "io/client/client.hpp"
#include "io/wire/codec.hpp"
#include "io/server/engine.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

using namespace loyalty;
using namespace loyalty::io;

namespace {

struct temp_dir : test::temp_dir {
  temp_dir() : test::temp_dir("tls") {}
};

struct key_pair {
  std::string cert, key;  // PEM files
};

// A self-signed certificate (also its own CA) for `names` (a subjectAltName
// list, e.g. "DNS:localhost,IP:127.0.0.1"), with its key.
key_pair make_certificate(const std::filesystem::path& dir, const std::string& stem, const std::string& names) {
  key_pair kp{(dir / (stem + "-cert.pem")).string(), (dir / (stem + "-key.pem")).string()};
  std::ostringstream cmd;
  cmd << "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=" << stem
      << " -addext subjectAltName=" << names << " -keyout " << kp.key << " -out " << kp.cert << " > "
      << (dir / (stem + "-openssl.out")).string() << " 2>&1";
  INFO(cmd.str());
  REQUIRE(std::system(cmd.str().c_str()) == 0);
  return kp;
}

program test_program() {
  program p;
  p.name = "t";
  p.currency = "EUR";
  p.brands.push_back({1, "acme", "Acme", {1, 100}});
  p.tiers.push_back({"member", 0, {1, 1}});
  return p;
}

engine_settings tls_settings(const std::filesystem::path& dir, const key_pair& kp) {
  engine_settings s;
  s.listen_host = "127.0.0.1";
  s.listen_port = 0;
  s.data_dir = (dir / "data").string();
  s.map_bytes = 1ull << 30;
  s.commit_window_us = 100;
  s.actor_threads = 2;
  s.expiry_sweep_interval_s = 0;
  s.tls_cert = kp.cert;
  s.tls_key = kp.key;
  return s;
}

std::unique_ptr<engine> start_engine(const engine_settings& s) {
  engine_options o;
  o.settings = s;
  o.prog = test_program();
  std::string err;
  auto e = engine::start(std::move(o), err);
  INFO(err);
  REQUIRE(e);
  return e;
}

tls_options trusting(const std::string& ca_file) {
  tls_options t;
  t.enabled = true;
  t.ca_file = ca_file;
  return t;
}

std::unique_ptr<client> tls_client(const engine& e, const std::string& ca_file, const std::string& host = "127.0.0.1") {
  std::string err;
  auto c = client::connect(host, e.port(), trusting(ca_file), err);
  INFO(err);
  REQUIRE(c);
  REQUIRE(c->hello().ok());
  return c;
}

std::uint64_t stat_of(client& c, const std::string& name) {
  auto r = c.stats();
  REQUIRE(r.ok());
  for (auto& [k, v] : r.stats)
    if (k == name)
      return v;
  FAIL("no stat " << name);
  return 0;
}

// Polls `pred` (the server works on its own threads); true once it holds.
bool eventually(const std::function<bool()>& pred) {
  for (int i = 0; i < 2000; ++i) {
    if (pred())
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// A raw TCP peer: sends `bytes` (maybe none), then reads until the server
// closes the connection or `bound` passes (a bound on the test, not a
// measurement).
struct raw_result {
  bool closed = false;
  std::string received;
};

raw_result raw_exchange(std::uint16_t port, const std::string& bytes, std::chrono::seconds bound) {
  asio::io_context ctx;
  asio::ip::tcp::socket s(ctx);
  s.connect({asio::ip::make_address("127.0.0.1"), port});
  if (!bytes.empty())
    asio::write(s, asio::buffer(bytes));
  raw_result r;
  std::array<char, 4096> buf{};
  std::function<void()> next = [&] {
    s.async_read_some(asio::buffer(buf), [&](const asio::error_code& ec, std::size_t n) {
      r.received.append(buf.data(), n);
      if (ec) {
        r.closed = true;
        return;
      }
      next();
    });
  };
  next();
  ctx.run_for(bound);
  return r;
}

// Whether `bytes` start with one frame that decodes as a protocol response.
bool holds_a_response(const std::string& bytes) {
  if (bytes.size() < frame_header_bytes)
    return false;
  auto len = read_be32(reinterpret_cast<const unsigned char*>(bytes.data()));
  if (len == 0 || len > limits::frame_bytes_max || bytes.size() < frame_header_bytes + len)
    return false;
  response r;
  std::string err;
  return decode_response(bytes.data() + frame_header_bytes, len, r, err);
}

std::string hello_frame() {
  request h;
  h.op = opcode::hello;
  h.id = 1;
  h.version = limits::protocol_version_max;
  h.client_name = "plain";
  std::vector<char> out;
  encode_request(out, h);
  return {out.begin(), out.end()};
}

const std::uint64_t purchase_at_us = static_cast<std::uint64_t>(
  std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count());

std::string run(const std::string& cmd, const std::filesystem::path& out, int& rc) {
  rc = std::system((cmd + " > " + out.string() + " 2>&1").c_str());
  std::ifstream f(out);
  return {std::istreambuf_iterator<char>(f), {}};
}

} // namespace

TEST_CASE("a TLS client that checks the engine's certificate says hello, enrolls, earns and reads its balance",
          "[io][tls]") {
  temp_dir tmp;
  auto kp = make_certificate(tmp.path, "engine", "DNS:localhost,IP:127.0.0.1");
  auto e = start_engine(tls_settings(tmp.path, kp));
  for (const std::string host : {"127.0.0.1", "localhost"}) {  // an IP literal, and a name that is checked
    INFO(host);
    auto c = tls_client(*e, kp.cert, host);
    const std::uint64_t member = host == "localhost" ? 2 : 1;
    CHECK(c->enroll(member, "acme").ok());
    auto earned = c->earn("t-" + host, member, "acme", 25000, "EUR", purchase_at_us);
    REQUIRE(earned.ok());
    CHECK(earned.points == 250);
    auto bal = c->balance(member);
    REQUIRE(bal.ok());
    CHECK(bal.balance == 250);
  }
}

TEST_CASE("a client that trusts another CA cannot connect and is told the certificate check failed", "[io][tls]") {
  temp_dir tmp;
  auto kp = make_certificate(tmp.path, "engine", "DNS:localhost,IP:127.0.0.1");
  auto other = make_certificate(tmp.path, "other-ca", "DNS:localhost,IP:127.0.0.1");
  auto e = start_engine(tls_settings(tmp.path, kp));
  std::string err;
  auto c = client::connect("127.0.0.1", e->port(), trusting(other.cert), err);
  CHECK_FALSE(c);
  INFO(err);
  CHECK(err.find("TLS handshake with 127.0.0.1:" + std::to_string(e->port()) + " failed") != std::string::npos);
  CHECK(err.find("certificate verify failed") != std::string::npos);
  auto good = tls_client(*e, kp.cert);
  CHECK(eventually([&] { return stat_of(*good, "tls_handshakes_failed") >= 1; }));
}

TEST_CASE("a host name the certificate does not name is refused when checking, and accepted with verify = false",
          "[io][tls]") {
  temp_dir tmp;
  auto kp = make_certificate(tmp.path, "engine", "DNS:engine.example,IP:127.0.0.1");
  auto e = start_engine(tls_settings(tmp.path, kp));
  std::string err;
  CHECK_FALSE(client::connect("localhost", e->port(), trusting(kp.cert), err));
  INFO(err);
  CHECK(err.find("hostname mismatch") != std::string::npos);
  tls_options insecure;
  insecure.enabled = true;
  insecure.verify = false;
  auto c = client::connect("localhost", e->port(), insecure, err);
  REQUIRE(c);
  CHECK(c->hello().ok());
}

TEST_CASE("a plain client's bytes on the TLS port get no protocol answer and TLS clients are still served",
          "[io][tls]") {
  temp_dir tmp;
  auto kp = make_certificate(tmp.path, "engine", "DNS:localhost,IP:127.0.0.1");
  auto e = start_engine(tls_settings(tmp.path, kp));
  auto c = tls_client(*e, kp.cert);
  REQUIRE(c->enroll(1, "acme").ok());
  auto r = raw_exchange(e->port(), hello_frame(), std::chrono::seconds(30));
  CHECK(r.closed);
  CHECK_FALSE(holds_a_response(r.received));
  CHECK(stat_of(*c, "tls_handshakes_failed") == 1);
  auto bal = c->balance(1);
  CHECK(bal.ok());
  CHECK(tls_client(*e, kp.cert)->balance(1).ok());
}

TEST_CASE("a connection that never starts the TLS handshake is closed after tls_handshake_timeout_ms",
          "[io][tls]") {
  temp_dir tmp;
  auto kp = make_certificate(tmp.path, "engine", "DNS:localhost,IP:127.0.0.1");
  auto s = tls_settings(tmp.path, kp);
  s.tls_handshake_timeout_ms = 200;
  s.connections_max = 2;
  auto e = start_engine(s);
  auto c = tls_client(*e, kp.cert);
  auto r = raw_exchange(e->port(), "", std::chrono::seconds(30));
  CHECK(r.closed);
  CHECK(r.received.empty());
  CHECK(stat_of(*c, "tls_handshakes_failed") == 1);
  // Its slot is free again: with connections_max = 2, a second TLS client is served.
  CHECK(eventually([&] { return stat_of(*c, "connections") == 1; }));
  auto second = tls_client(*e, kp.cert);
  CHECK(second->stats().ok());
}

TEST_CASE("a TLS connection past connections_max is told too_many_connections over TLS", "[io][tls]") {
  temp_dir tmp;
  auto kp = make_certificate(tmp.path, "engine", "DNS:localhost,IP:127.0.0.1");
  auto s = tls_settings(tmp.path, kp);
  s.connections_max = 1;
  auto e = start_engine(s);
  auto first = tls_client(*e, kp.cert);
  std::string err;
  auto second = client::connect("127.0.0.1", e->port(), trusting(kp.cert), err);
  INFO(err);
  REQUIRE(second);
  response r;
  REQUIRE(second->receive(r, err, std::chrono::seconds(20)));
  CHECK(r.code == errc::too_many_connections);
  CHECK(first->stats().ok());
}

TEST_CASE("the engine does not start when a TLS file cannot be read or the key is not the certificate's",
          "[io][tls]") {
  temp_dir tmp;
  auto kp = make_certificate(tmp.path, "engine", "DNS:localhost");
  auto other = make_certificate(tmp.path, "other", "DNS:localhost");
  auto refused = [&](engine_settings s) {
    engine_options o;
    o.settings = std::move(s);
    o.prog = test_program();
    std::string err;
    auto e = engine::start(std::move(o), err);
    CHECK_FALSE(e);
    return err;
  };
  auto s = tls_settings(tmp.path, kp);
  s.tls_cert = (tmp.path / "missing-cert.pem").string();
  auto err = refused(s);
  INFO(err);
  CHECK(err.find("cannot read TLS certificate file " + s.tls_cert) != std::string::npos);
  s = tls_settings(tmp.path, kp);
  s.tls_key = other.key;
  err = refused(s);
  INFO(err);
  CHECK(err.find("TLS key file " + other.key) != std::string::npos);
}

TEST_CASE("loyaltyctl and the load generator talk TLS with --tls-ca and --tls-insecure, and fail without --tls",
          "[io][tls][tools]") {
  temp_dir tmp;
  auto kp = make_certificate(tmp.path, "engine", "DNS:localhost,IP:127.0.0.1");
  auto e = start_engine(tls_settings(tmp.path, kp));
  const std::string port = " --port " + std::to_string(e->port());
  const auto out = tmp.path / "tool.out";
  int rc = -1;
  auto text = run(std::string(LOYALTYCTL_BIN) + port + " --tls-ca " + kp.cert + " enroll 7 acme", out, rc);
  INFO(text);
  CHECK(rc == 0);
  CHECK(text.find("enrolled member 7") != std::string::npos);
  text = run(std::string(LOYALTYCTL_BIN) + port + " --tls-insecure balance 7", out, rc);
  CHECK(rc == 0);
  CHECK(text.find("member 7") != std::string::npos);
  text = run(std::string(LOYALTYCTL_BIN) + port + " --tls balance 7", out, rc);  // not in the system store
  CHECK(rc == 2 * 256);
  CHECK(text.find("certificate verify failed") != std::string::npos);
  text = run(std::string(LOYALTYCTL_BIN) + port + " balance 7", out, rc);  // plain TCP
  CHECK(rc == 2 * 256);
  text = run(std::string(LOYALTYCTL_BIN) + " --help", out, rc);
  CHECK(text.find("--tls-insecure") != std::string::npos);
  CHECK(text.find("WITHOUT checking") != std::string::npos);
  text = run(std::string(LOYALTY_LOADGEN_BIN) + port + " --tls-ca " + kp.cert +
               " --members 50 --connections 2 --depth 8 --duration 1 --seed 5",
             out, rc);
  CHECK(rc == 0);
  CHECK(e->ledger().last_seq() > 50);  // the enrolls and some earns
  text = run(std::string(LOYALTY_LOADGEN_BIN) + port + " --tls --members 5 --duration 1 --seed 5", out, rc);
  CHECK(rc != 0);
  CHECK(text.find("certificate verify failed") != std::string::npos);
}

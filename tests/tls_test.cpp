// TLS on the wire protocol over real TCP on loopback: an engine in the test
// process with tls_cert / tls_key set, a self-signed certificate made at test
// time by the `openssl req -x509` command docs/OPERATIONS.md gives (and
// expired or not yet valid ones by `openssl ca`), and the client library,
// loyaltyctl and the load generator as integrators use them; misbehaving
// peers (a handshake given up half-way, a client that stops reading) are
// OpenSSL and Asio driven by hand.
#include "eventually.hpp"
#include "temp_dir.hpp"
#include "io/client/client.hpp"
#include "io/wire/codec.hpp"
#include "io/server/engine.hpp"

#include <asio/ssl.hpp>
#include <openssl/bio.h>
#include <openssl/ssl.h>

#include <catch2/catch.hpp>

#include <array>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <memory>
#include <thread>
#include <vector>

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

// A self-signed certificate (its own CA) valid only from `not_before` to
// `not_after` (YYYYMMDDHHMMSSZ), for a certificate that has expired or is
// not valid yet: `openssl req` makes the request, `openssl ca -selfsign`
// signs it with those dates (`req -x509` only counts days from now).
key_pair make_dated_certificate(const std::filesystem::path& dir, const std::string& stem,
                                const std::string& not_before, const std::string& not_after) {
  const auto ca = dir / (stem + "-ca");
  std::filesystem::create_directories(ca);
  std::ofstream(ca / "ca.cnf") << "[ca]\ndefault_ca = d\n[d]\ndatabase = " << (ca / "index.txt").string()
                               << "\nnew_certs_dir = " << ca.string() << "\nserial = " << (ca / "serial").string()
                               << "\ndefault_md = sha256\npolicy = p\ncopy_extensions = copy\nunique_subject = no\n"
                                  "[p]\ncommonName = supplied\n";
  std::ofstream(ca / "index.txt").flush();
  std::ofstream(ca / "serial") << "01\n";
  key_pair kp{(dir / (stem + "-cert.pem")).string(), (dir / (stem + "-key.pem")).string()};
  const auto csr = (ca / "request.pem").string();
  const auto log = " >> " + (ca / "openssl.out").string() + " 2>&1";
  std::ostringstream req, sign;
  req << "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=" << stem
      << " -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -addext basicConstraints=critical,CA:TRUE -keyout "
      << kp.key << " -out " << csr << log;
  sign << "openssl ca -batch -notext -selfsign -config " << (ca / "ca.cnf").string() << " -keyfile " << kp.key
       << " -in " << csr << " -out " << kp.cert << " -startdate " << not_before << " -enddate " << not_after << log;
  INFO(req.str());
  REQUIRE(std::system(req.str().c_str()) == 0);
  INFO(sign.str());
  REQUIRE(std::system(sign.str().c_str()) == 0);
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

using test::eventually;

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

// An engine with TLS on a certificate for localhost and 127.0.0.1 (settings
// adjusted by `tweak`), and a client that checks it, member 1 enrolled.
struct tls_rig {
  temp_dir tmp;
  key_pair kp = make_certificate(tmp.path, "engine", "DNS:localhost,IP:127.0.0.1");
  std::unique_ptr<engine> e;
  std::unique_ptr<client> c;

  explicit tls_rig(const std::function<void(engine_settings&)>& tweak = {}) {
    auto s = tls_settings(tmp.path, kp);
    if (tweak)
      tweak(s);
    e = start_engine(s);
    c = tls_client(*e, kp.cert);
    REQUIRE(c->enroll(1, "acme").ok());
  }
};

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
  tls_rig g;
  auto r = raw_exchange(g.e->port(), hello_frame(), std::chrono::seconds(30));
  CHECK(r.closed);
  CHECK_FALSE(holds_a_response(r.received));
  CHECK(stat_of(*g.c, "tls_handshakes_failed") == 1);
  auto bal = g.c->balance(1);
  CHECK(bal.ok());
  CHECK(tls_client(*g.e, g.kp.cert)->balance(1).ok());
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

TEST_CASE("a client refuses a server certificate that has expired or is not valid yet, and says which", "[io][tls]") {
  temp_dir tmp;
  struct dated {
    const char* stem;
    const char* not_before;
    const char* not_after;
    const char* verdict;  // X509_verify_cert_error_string
  };
  for (const dated d : {dated{"expired", "20200101000000Z", "20200102000000Z", "certificate has expired"},
                        dated{"not-yet-valid", "20990101000000Z", "20991231000000Z", "certificate is not yet valid"}}) {
    INFO(d.stem);
    auto kp = make_dated_certificate(tmp.path, d.stem, d.not_before, d.not_after);
    const auto dir = tmp.path / d.stem;
    auto e = start_engine(tls_settings(dir, kp));
    std::string err;
    auto c = client::connect("127.0.0.1", e->port(), trusting(kp.cert), err);
    CHECK_FALSE(c);
    INFO(err);
    CHECK(err.find("TLS handshake with 127.0.0.1:" + std::to_string(e->port()) + " failed") != std::string::npos);
    CHECK(err.find(std::string("the server's certificate: ") + d.verdict) != std::string::npos);
    // The refusal is the client's: the engine served the handshake, and a
    // client that checks nothing still gets in (which is why it is for tests only).
    tls_options insecure;
    insecure.enabled = true;
    insecure.verify = false;
    auto unchecked = client::connect("127.0.0.1", e->port(), insecure, err);
    REQUIRE(unchecked);
    CHECK(unchecked->hello().ok());
    CHECK(eventually([&] { return stat_of(*unchecked, "tls_handshakes_failed") == 1; }));  // the refused one
  }
}

namespace {

struct ssl_ctx_free {
  void operator()(SSL_CTX* p) const { SSL_CTX_free(p); }
};
struct ssl_free {
  void operator()(SSL* p) const { SSL_free(p); }
};

// A TLS client that gives up in the middle of its handshake: it sends its
// ClientHello (all of it, or only the first `hello_bytes`), reads the
// start of the server's answer when it sent it all, then closes the
// connection -- with a reset when `reset`.
void abort_handshake(std::uint16_t port, std::size_t hello_bytes, bool reset) {
  std::unique_ptr<SSL_CTX, ssl_ctx_free> ctx(SSL_CTX_new(TLS_client_method()));
  REQUIRE(ctx);
  std::unique_ptr<SSL, ssl_free> ssl(SSL_new(ctx.get()));
  REQUIRE(ssl);
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl.get(), in, out);  // owned by ssl from here
  SSL_set_connect_state(ssl.get());
  REQUIRE(SSL_do_handshake(ssl.get()) == -1);  // wants the server's answer
  std::string hello(static_cast<std::size_t>(BIO_pending(out)), '\0');
  REQUIRE(BIO_read(out, hello.data(), static_cast<int>(hello.size())) == static_cast<int>(hello.size()));
  REQUIRE(hello.size() > hello_bytes);

  asio::io_context io;
  asio::ip::tcp::socket s(io);
  s.connect({asio::ip::make_address("127.0.0.1"), port});
  const bool whole = hello_bytes == 0;
  asio::write(s, asio::buffer(hello.data(), whole ? hello.size() : hello_bytes));
  if (whole) {  // the server's first flight (ServerHello, ...) has started
    std::array<char, 512> buf{};
    asio::error_code ec;
    CHECK(s.read_some(asio::buffer(buf), ec) > 0);
  }
  if (reset)
    s.set_option(asio::socket_base::linger(true, 0));
  s.close();
}

} // namespace

TEST_CASE("clients that abort in the middle of the TLS handshake are counted, and the engine serves the others",
          "[io][tls]") {
  tls_rig g;
  std::uint64_t aborted = 0;
  for (bool reset : {false, true})
    for (std::size_t hello_bytes : {std::size_t{0}, std::size_t{5}, std::size_t{40}}) {
      INFO("reset " << reset << ", ClientHello bytes " << hello_bytes << " (0: all)");
      abort_handshake(g.e->port(), hello_bytes, reset);
      ++aborted;
      CHECK(eventually([&] { return stat_of(*g.c, "tls_handshakes_failed") == aborted; }));
      CHECK(g.c->balance(1).ok());  // the open connection is served meanwhile
      CHECK(tls_client(*g.e, g.kp.cert)->balance(1).ok());  // and a new one
    }
  CHECK(eventually([&] { return stat_of(*g.c, "connections") == 1; }));  // no aborted one holds a slot
  CHECK(g.e->ledger().last_seq() == 1);
}

TEST_CASE("a TLS client that stops reading is closed after write_stall_timeout_ms while others are served",
          "[io][tls]") {
  tls_rig g([](engine_settings& s) {
    s.connection_output_bytes_max = 64u << 10;
    s.write_stall_timeout_ms = 1000;
  });
  const auto balances_before = stat_of(*g.c, "requests_balance");

  // Hello, then balance requests, far more than the socket buffers hold,
  // written over TLS and never read.
  const std::string hello = hello_frame();
  std::vector<char> flood(hello.begin(), hello.end());
  request b;
  b.op = opcode::balance;
  b.member = 1;
  constexpr std::uint64_t requests = 400'000;
  for (std::uint64_t i = 0; i < requests; ++i) {
    b.id = i + 2;
    encode_request(flood, b);
  }
  asio::io_context io;
  asio::ssl::context tls(asio::ssl::context::tls_client);
  tls.set_verify_mode(asio::ssl::verify_none);
  asio::ssl::stream<asio::ip::tcp::socket> stalled(io, tls);
  stalled.next_layer().open(asio::ip::tcp::v4());
  // Buffers as small as the kernel allows, so that they fill up soon.
  stalled.next_layer().set_option(asio::socket_base::receive_buffer_size(4096));
  stalled.next_layer().set_option(asio::socket_base::send_buffer_size(4096));
  stalled.next_layer().connect({asio::ip::make_address("127.0.0.1"), g.e->port()});
  stalled.handshake(asio::ssl::stream_base::client);
  asio::error_code write_ec;
  std::size_t written = 0;
  bool write_done = false;
  asio::async_write(stalled, asio::buffer(flood), [&](const asio::error_code& ec, std::size_t n) {
    write_ec = ec;
    written = n;
    write_done = true;
  });
  // The writes end when the server closes the connection (or, were it never
  // to, at this bound).
  std::thread writer([&] { io.run_for(std::chrono::seconds(60)); });

  CHECK(eventually([&] { return stat_of(*g.c, "requests_balance") > balances_before + 100; }));  // under way
  for (int i = 0; i < 5; ++i) {
    auto earned = g.c->earn("honest-" + std::to_string(i), 1, "acme", 1000, "EUR", purchase_at_us);
    REQUIRE(earned.ok());
    CHECK(earned.points == 10);
  }
  CHECK(eventually([&] { return stat_of(*g.c, "connections_closed_write_stall") == 1; }));
  writer.join();
  CHECK(write_done);
  CHECK(write_ec);  // cut off by the close
  CHECK(written < flood.size());
  CHECK(eventually([&] { return stat_of(*g.c, "connections") == 1; }));
  CHECK(eventually([&] { return stat_of(*g.c, "inflight") == 0; }));
  CHECK(stat_of(*g.c, "requests_balance") - balances_before < requests / 2);  // it stopped reading the flood
  auto bal = g.c->balance(1);
  REQUIRE(bal.ok());
  CHECK(bal.balance == 50);
  CHECK(tls_client(*g.e, g.kp.cert)->balance(1).ok());
}

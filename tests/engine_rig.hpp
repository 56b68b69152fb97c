// A whole engine in the test process (LMDB in a temporary directory, CAF
// member actors, the Asio server on an ephemeral loopback port) running a
// program given as TOML text, with a manual clock the test moves instead of
// sleeping, and two clients over real TCP: a plain integrator and one whose
// hello carried the admin key.
#pragma once

#include "temp_dir.hpp"

#include "io/client/client.hpp"
#include "io/server/engine.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <functional>
#include <fstream>
#include <memory>
#include <string>

namespace loyalty::test {

// The rig's API keys (the engine keeps their SHA-256 only).
inline constexpr const char* admin_key = "test-admin-key-0123456789";
inline constexpr const char* shop_key = "test-shop-key-0123456789";    // scope brand:shop
inline constexpr const char* read_key = "test-read-key-0123456789";    // scope read

inline api_key make_key(std::uint32_t id, const char* name, const char* secret, key_scope scope,
                        std::string code = {}) {
  api_key k;
  k.id = id;
  k.name = name;
  k.sha256 = key_sha256(secret);
  k.scope = scope;
  k.scope_code = std::move(code);
  return k;
}

// One counter of the engine's stats answer; a name the engine does not
// report fails the test.
inline std::uint64_t stat_of(io::client& c, const std::string& name) {
  auto r = c.stats();
  REQUIRE(r.ok());
  for (const auto& [k, v] : r.stats)
    if (k == name)
      return v;
  FAIL("no stat " << name);
  return 0;
}

struct engine_rig {
  temp_dir dir;
  manual_clock clock;
  std::string program_text;  // the program, as TOML
  std::unique_ptr<io::engine> eng;
  std::unique_ptr<io::client> c;      // integrator (admin key: every brand, every operation)
  std::unique_ptr<io::client> admin;  // a second connection with the admin key
  // (both without a key when a tweak configured none)

  // Applied to the engine's options before every start (tests that need
  // other limits, keys or sweeps).
  std::function<void(io::engine_options&)> tweak;

  engine_rig(const std::string& what, std::string toml, std::uint64_t start_us,
             std::function<void(io::engine_options&)> tweak_options = {})
    : dir(what), clock(start_us), program_text(std::move(toml)), tweak(std::move(tweak_options)) {
    start();
  }
  virtual ~engine_rig() = default;

  void start() {
    io::engine_options o;
    o.settings.listen_host = "127.0.0.1";
    o.settings.listen_port = 0;
    o.settings.data_dir = (dir.path / "data").string();
    o.settings.map_bytes = 1ull << 30;
    o.settings.commit_window_us = 50;
    o.settings.actor_threads = 2;
    o.settings.keys = {make_key(1, "test-admin", admin_key, key_scope::admin),
                       make_key(2, "shop-pos", shop_key, key_scope::brand, "shop"),
                       make_key(3, "auditor", read_key, key_scope::read)};
    o.settings.expiry_sweep_interval_s = 0;
    // The program lives in a file, as in production, so that `reload` can re-read it.
    const auto program_file = dir.path / "program.toml";
    if (!std::filesystem::exists(program_file))
      std::ofstream(program_file) << program_text;
    o.settings.program_path = program_file.string();
    std::vector<config_error> errors;
    auto prog = load_program(o.settings.program_path, errors);
    std::string why;
    for (const auto& e : errors)
      why += e.message + "\n";
    INFO(why);
    REQUIRE(prog);
    o.prog = std::move(*prog);
    o.clock = &clock;
    if (tweak)
      tweak(o);
    // Without keys configured, hello takes none (docs/PROTOCOL.md 2.2).
    const std::string key = o.settings.keys.empty() ? std::string() : std::string(admin_key);
    std::string err;
    eng = io::engine::start(std::move(o), err);
    INFO(err);
    REQUIRE(eng);
    c = connect(key);
    admin = connect(key);
    connected();
  }

  // Called after every (re)start, once c and admin are connected.
  virtual void connected() {}

  // Stops the engine (as a clean shutdown) and starts it on the same data.
  void restart() {
    disconnect();
    c.reset();
    admin.reset();
    eng.reset();
    start();
  }

  // Called before a restart stops the engine: close other connections.
  virtual void disconnect() {}

  std::unique_ptr<io::client> connect(const std::string& key) {
    std::string err;
    auto x = io::client::connect("127.0.0.1", eng->port(), err);
    INFO(err);
    REQUIRE(x);
    REQUIRE(x->hello("test", key).ok());
    return x;
  }

  void check_verify() {
    auto v = c->verify();
    REQUIRE(v.ok());
    std::string why;
    for (const auto& p : v.verify.problems)
      why += p + "\n";
    INFO(why);
    REQUIRE(v.verify.valid);
  }
};

} // namespace loyalty::test

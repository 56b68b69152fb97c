// Program versions over real TCP: every version the engine runs is recorded
// in the ledger with its SHA-256; every entry names the version it was
// evaluated under; `reload` (admin) validates the program file first and
// refuses an invalid one with its errors, keeping the running version.
#include "engine_rig.hpp"

#include <fstream>

using namespace loyalty;
using namespace loyalty::io;

namespace {

constexpr std::uint64_t t0 = 1'772'452'800'000'000ull;

std::string program_with_rate(int num) {
  return R"(
[program]
name = "versions"
currency = "EUR"

[[brands]]
id = 1
code = "shop"
earn_rate = { num = )" + std::to_string(num) + R"(, den = 100 }

[[tiers]]
name = "member"
threshold = 0
multiplier = { num = 1, den = 1 }
)";
}

request explain_of(const std::string& txn) {
  request r;
  r.op = opcode::explain;
  r.txn = txn;
  return r;
}

response reload(client& c) {
  request r;
  r.op = opcode::reload;
  return c.call(r);
}

} // namespace

TEST_CASE("a reload makes a new version; entries name the version they were evaluated under", "[versions]") {
  test::engine_rig g("versions", program_with_rate(1), t0);
  CHECK(g.eng->policy_version() == 1);
  REQUIRE(g.c->enroll(1, "shop").ok());
  auto before = g.c->earn("v-1", 1, "shop", 10000, "EUR", t0);
  REQUIRE(before.ok());
  CHECK(before.points == 100);

  // The operator raises the rate to 3 points per 1.00 and reloads.
  std::ofstream(g.dir.path / "program.toml") << program_with_rate(3);
  auto r = reload(*g.admin);
  INFO(r.message);
  REQUIRE(r.ok());
  CHECK(r.policy_version == 2);
  auto after = g.c->earn("v-2", 1, "shop", 10000, "EUR", t0);
  REQUIRE(after.ok());
  CHECK(after.points == 300);

  CHECK(g.c->call(explain_of("v-1")).policy_version == 1);
  CHECK(g.c->call(explain_of("v-2")).policy_version == 2);

  // Recorded in the ledger with the hash of each version's text.
  auto versions = g.eng->ledger().policies();
  REQUIRE(versions.size() == 2);
  CHECK(versions[0].first == 1);
  CHECK(versions[1].first == 2);
  const auto digest = key_sha256(program_with_rate(3));
  CHECK(std::equal(digest.begin(), digest.end(), versions[1].second.sha256));
  CHECK(versions[1].second.first_seq > before.seq);

  // Reloading the same text changes nothing.
  auto again = reload(*g.admin);
  REQUIRE(again.ok());
  CHECK(again.policy_version == 2);
  CHECK(g.eng->ledger().policies().size() == 2);
  g.check_verify();

  // A restart runs the same version; a retry of v-1 still answers its original result.
  g.restart();
  CHECK(g.eng->policy_version() == 2);
  auto retry = g.c->earn("v-1", 1, "shop", 10000, "EUR", t0);
  REQUIRE(retry.ok());
  CHECK(retry.replayed);
  CHECK(retry.points == 100);
}

TEST_CASE("an invalid program is refused with its errors and the running version stays", "[versions]") {
  test::engine_rig g("versions-bad", program_with_rate(1), t0);
  REQUIRE(g.c->enroll(1, "shop").ok());
  std::ofstream(g.dir.path / "program.toml") << program_with_rate(1) << "\n[[tiers]]\nname = \"gold\"\n";
  auto r = reload(*g.admin);
  CHECK(r.code == errc::invalid_program);
  CHECK(r.message.find("program.toml:") != std::string::npos);  // file:line of each error
  CHECK(g.eng->policy_version() == 1);
  CHECK(g.eng->ledger().policies().size() == 1);
  auto earn = g.c->earn("b-1", 1, "shop", 10000, "EUR", t0);
  REQUIRE(earn.ok());
  CHECK(earn.points == 100);
  CHECK(g.c->call(explain_of("b-1")).policy_version == 1);
  // Only an admin key may reload.
  CHECK(reload(*g.connect(test::shop_key)).code == errc::not_authorized);
  CHECK(reload(*g.connect(test::read_key)).code == errc::not_authorized);
  // A program without a brand a key needs is refused too.
  std::ofstream(g.dir.path / "program.toml") << "\n" << program_with_rate(2);
  std::string text = program_with_rate(2);
  text.replace(text.find("\"shop\""), 6, "\"store\"");
  std::ofstream(g.dir.path / "program.toml") << text;
  auto no_brand = reload(*g.admin);
  CHECK(no_brand.code == errc::invalid_program);
  CHECK(no_brand.message.find("shop") != std::string::npos);
  CHECK(g.eng->policy_version() == 1);
  g.check_verify();
}

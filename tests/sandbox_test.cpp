// Sandbox keys (issue 19 item 7, docs/PROTOCOL.md "Sandbox keys"): a key
// with `dry_run = true` in the settings file has every posting operation
// evaluated against the live program and state and answered with
// `dry_run: true`, and nothing posted: no journal entry, no txn id taken, no
// reward stock or rule cap moved, no event on the stream. Runs the real
// loyaltyd binary (its settings file carries the keys) on real LMDB, over
// real TCP, and loyaltyctl as an operator would.
#include "command.hpp"
#include "engine_process.hpp"
#include "one_brand_program.hpp"
#include "temp_dir.hpp"

#include "config/program.hpp"
#include "io/client/client.hpp"

#include <catch2/catch.hpp>

#include <fstream>
#include <map>

using namespace loyalty;
using namespace loyalty::io;

namespace {

constexpr const char* admin_key = "sandbox-test-admin-key-0123456789";
constexpr const char* sandbox_key = "sandbox-test-shop-sandbox-key-0123";         // brand:shop, dry_run
constexpr const char* sandbox_admin_key = "sandbox-test-admin-sandbox-key-0123";  // admin, dry_run

std::string hex_sha256(const char* key) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string s;
  for (unsigned char b : key_sha256(key))
    s += hex[b >> 4], s += hex[b & 15];
  return s;
}

std::string key_table(int id, const char* name, const char* key, const char* scope, bool dry_run) {
  return "[[keys]]\nid = " + std::to_string(id) + "\nname = \"" + name + "\"\nsha256 = \"" + hex_sha256(key) +
         "\"\nscope = \"" + scope + "\"\n" + (dry_run ? "dry_run = true\n" : "") + "\n";
}

// The one-brand program with a reward of which one unit is left.
constexpr const char* last_mug = R"(
[[rewards]]
id = 1
code = "mug"
name = "The last mug"
cost = 100
stock = 1
brand = "shop"
)";

struct sandbox_rig {
  test::temp_dir dir{"sandbox"};
  std::unique_ptr<test::engine_process> eng;
  std::unique_ptr<client> admin, sandbox;

  sandbox_rig() {
    std::ofstream(dir.path / "program.toml") << test::one_brand_program << last_mug;
    test::engine_process_options o;
    o.binary = LOYALTYD_BIN;
    o.dir = dir.path;
    o.program = (dir.path / "program.toml").string();
    o.more_tables = key_table(1, "admin", admin_key, "admin", false) +
                    key_table(2, "shop-sandbox", sandbox_key, "brand:shop", true) +
                    key_table(3, "admin-sandbox", sandbox_admin_key, "admin", true);
    eng = std::make_unique<test::engine_process>(o);
    admin = connect(admin_key);
    sandbox = connect(sandbox_key);
  }

  std::unique_ptr<client> connect(const char* key) {
    std::string err;
    auto c = client::connect("127.0.0.1", eng->port(), err);
    INFO(err);
    REQUIRE(c);
    auto h = c->hello("sandbox-test", key);
    REQUIRE(h.ok());
    return c;
  }

  // The newest committed journal entry's seq.
  std::uint64_t last_seq() {
    auto r = admin->journal(1, 1);
    REQUIRE(r.ok());
    return r.last_seq;
  }

  // Enrolls `member` (no points), for real; answers the journal's last seq after it.
  std::uint64_t enrolled(std::uint64_t member) {
    REQUIRE(admin->enroll(member, "shop").ok());
    return last_seq();
  }

  // Enrolls `member` and gives it `amount` / 100 points, for real.
  void member_with(std::uint64_t member, std::int64_t amount) {
    REQUIRE(admin->enroll(member, "shop").ok());
    auto e = admin->earn("seed-" + std::to_string(member), member, "shop", amount, "EUR", 0);
    INFO(e.message);
    REQUIRE(e.ok());
  }

  std::int64_t balance(std::uint64_t member) {
    auto b = admin->balance(member);
    REQUIRE(b.ok());
    return b.balance;
  }
};

} // namespace

TEST_CASE("a sandbox key's earn answers what a real earn gives, posts nothing, and leaves its txn id to a real earn",
          "[sandbox]") {
  sandbox_rig rig;
  const auto before = rig.enrolled(1);
  auto stream = rig.connect(admin_key);
  auto sub = stream->subscribe(before + 1);
  REQUIRE(sub.ok());

  auto dry = rig.sandbox->earn("order-1", 1, "shop", 50'000, "EUR", 0);
  INFO(dry.message);
  REQUIRE(dry.ok());
  CHECK(dry.dry_run);
  CHECK(dry.seq == 0);
  CHECK(dry.points == 500);
  CHECK(dry.balance == 500);
  CHECK(dry.tier == "member");
  REQUIRE(dry.lines.size() == 1);
  CHECK(dry.lines[0].points == 500);

  CHECK(rig.last_seq() == before);
  CHECK(rig.balance(1) == 0);

  auto real = rig.admin->earn("order-1", 1, "shop", 50'000, "EUR", 0);
  INFO(real.message);
  REQUIRE(real.ok());
  CHECK_FALSE(real.replayed);
  CHECK_FALSE(real.dry_run);
  CHECK(real.seq == before + 1);
  CHECK(real.points == dry.points);
  CHECK(real.balance == dry.balance);

  // The stream's first event is the real earn's: the dry run gave none.
  response frame;
  std::string err;
  do {
    REQUIRE(stream->receive(frame, err));
  } while (frame.events.empty());
  CHECK(frame.events.front().seq == real.seq);
  CHECK(frame.events.front().txn == "order-1");

  // Now the txn id is taken: a dry run of it is answered as a real retry would be.
  auto again = rig.sandbox->earn("order-1", 1, "shop", 50'000, "EUR", 0);
  REQUIRE(again.ok());
  CHECK(again.dry_run);
  CHECK(again.replayed);
  CHECK(again.seq == real.seq);
  CHECK(rig.last_seq() == before + 1);
}

TEST_CASE("a sandbox key's redeem beyond the balance is refused as a real one would be, and one within it changes nothing",
          "[sandbox]") {
  sandbox_rig rig;
  rig.member_with(1, 50'000);  // 500 points
  const auto before = rig.last_seq();

  auto over = rig.sandbox->redeem("spend-1", 1, 600);
  CHECK(over.code == errc::insufficient_points);
  CHECK(over.dry_run);

  auto within = rig.sandbox->redeem("spend-1", 1, 200);
  INFO(within.message);
  REQUIRE(within.ok());
  CHECK(within.dry_run);
  CHECK(within.points == 200);
  CHECK(within.balance == 300);

  auto stranger = rig.sandbox->redeem("spend-2", 99, 10);
  CHECK(stranger.code == errc::unknown_member);
  CHECK(stranger.dry_run);

  CHECK(rig.balance(1) == 500);
  CHECK(rig.last_seq() == before);
  // Reads answer as for any key of the scope, without the flag.
  auto b = rig.sandbox->balance(1);
  REQUIRE(b.ok());
  CHECK(b.balance == 500);
  CHECK_FALSE(b.dry_run);
}

TEST_CASE("dry runs of the last unit of a reward leave it for a real redemption, and then answer out_of_stock",
          "[sandbox]") {
  sandbox_rig rig;
  rig.member_with(1, 50'000);
  for (int i = 0; i < 3; ++i) {
    auto dry = rig.sandbox->redeem_reward("mug-dry-" + std::to_string(i), 1, "mug");
    INFO(dry.message);
    REQUIRE(dry.ok());
    CHECK(dry.dry_run);
    CHECK(dry.reward == "mug");
    CHECK(dry.balance == 400);
  }
  auto real = rig.admin->redeem_reward("mug-real", 1, "mug");
  INFO(real.message);
  REQUIRE(real.ok());
  CHECK(real.balance == 400);
  auto gone = rig.sandbox->redeem_reward("mug-dry-3", 1, "mug");
  CHECK(gone.code == errc::out_of_stock);
  CHECK(gone.dry_run);
}

TEST_CASE("a batch under a sandbox key posts none of its operations and answers each as a dry run", "[sandbox]") {
  sandbox_rig rig;
  rig.member_with(1, 50'000);
  const auto before = rig.last_seq();
  request batch;
  batch.op = opcode::batch;
  auto op = [&](opcode o, const std::string& txn) {
    request r;
    r.op = o;
    r.member = 1;
    r.txn = txn;
    return r;
  };
  const auto earn = test::shop_earn(1, "b-earn", 10'000);
  auto redeem = op(opcode::redeem, "b-redeem");
  redeem.points = 150;
  auto hold = op(opcode::hold, "b-hold");
  hold.points = 50;
  auto enroll = op(opcode::enroll, "");
  enroll.member = 2;
  enroll.brand = "shop";
  batch.ops = {earn, redeem, hold, enroll};
  auto r = rig.sandbox->call(batch);
  INFO(r.message);
  REQUIRE(r.ok());
  CHECK(r.dry_run);
  REQUIRE(r.results.size() == 4);
  for (const auto& x : r.results) {
    INFO(to_string(x.op) << ": " << x.message);
    CHECK(x.ok());
    CHECK(x.dry_run);
    CHECK(x.seq == 0);
  }
  CHECK(r.results[0].points == 100);
  CHECK(r.results[1].balance == 350);  // each element is evaluated on the member as it is, not after the others
  CHECK(r.results[2].hold == 1);  // the id a real hold would get now
  CHECK(rig.last_seq() == before);
  CHECK(rig.balance(1) == 500);
  CHECK(rig.admin->balance(2).code == errc::unknown_member);
}

TEST_CASE("every posting operation under a sandbox key answers what it would do and the journal stays as it was",
          "[sandbox]") {
  sandbox_rig rig;
  rig.member_with(1, 50'000);  // 500 points, by the earn "seed-1"
  REQUIRE(rig.admin->enroll(2, "shop").ok());
  auto held = rig.admin->hold("hold-1", 1, 120, "shop");
  REQUIRE(held.ok());
  auto spent = rig.admin->redeem("spent-1", 1, 30);
  REQUIRE(spent.ok());
  const auto before = rig.last_seq();
  const auto bal = rig.balance(1);
  auto& s = *rig.sandbox;

  auto capture = s.capture("d-capture", 1, held.hold, 100);
  INFO(capture.message);
  REQUIRE(capture.ok());
  CHECK(capture.points == 100);
  auto release = s.release("d-release", 1, held.hold);
  INFO(release.message);
  REQUIRE(release.ok());
  CHECK(release.points == 120);
  auto refund = s.refund("d-refund", 1, "seed-1", 10'000);
  INFO(refund.message);
  REQUIRE(refund.ok());
  CHECK(refund.points == 100);
  CHECK(refund.balance == bal - 100);
  auto reverse = s.reverse_redemption("d-reverse", 1, "spent-1");
  INFO(reverse.message);
  REQUIRE(reverse.ok());
  CHECK(reverse.points == 30);
  CHECK(reverse.balance == bal + 30);
  auto transfer = s.transfer("d-transfer", 1, 2, 40);
  INFO(transfer.message);
  REQUIRE(transfer.ok());
  CHECK(transfer.balance == bal - 40);
  auto alias = s.link_alias("d-alias", 1, "card-0001");
  INFO(alias.message);
  REQUIRE(alias.ok());
  auto consent = s.consent("d-consent", 1, 1, 1, "test form");
  INFO(consent.message);
  REQUIRE(consent.ok());
  CHECK(consent.consents == 1);
  auto enroll = s.enroll(3, "shop");
  INFO(enroll.message);
  REQUIRE(enroll.ok());
  CHECK(enroll.member == 3);
  auto hold_over = s.hold("d-hold", 1, 1'000, "shop");
  CHECK(hold_over.code == errc::insufficient_points);
  auto partner = s.partner_earn("d-partner", 1, "nowhere", 10);  // a brand key may not
  CHECK(partner.code == errc::not_authorized);
  auto released = s.release_pending("d-release-pending", 1, "seed-1");  // no return window: nothing pends
  CHECK(released.code == errc::nothing_pending);
  for (const auto* r : {&capture, &release, &refund, &reverse, &transfer, &alias, &consent, &enroll, &hold_over,
                        &partner, &released}) {
    INFO(to_string(r->op));
    CHECK(r->dry_run);
    CHECK(r->seq == 0);
  }

  CHECK(rig.last_seq() == before);
  CHECK(rig.balance(1) == bal);
  CHECK(rig.balance(2) == 0);
  CHECK(rig.admin->balance(3).code == errc::unknown_member);
  CHECK(rig.admin->lookup("card-0001").code == errc::unknown_alias);
  // The hold is still open: the real capture takes it.
  auto real = rig.admin->capture("capture-1", 1, held.hold);
  INFO(real.message);
  REQUIRE(real.ok());
  CHECK(real.points == 120);
  auto v = rig.admin->verify();
  REQUIRE(v.ok());
  CHECK(v.verify.valid);
}

TEST_CASE("a sandbox admin key dry-runs adjust and is refused the operations that change the engine", "[sandbox]") {
  sandbox_rig rig;
  rig.member_with(1, 50'000);
  const auto before = rig.last_seq();
  auto sa = rig.connect(sandbox_admin_key);
  auto adj = sa->adjust("fix-1", 1, 700, "goodwill test", "shop");
  INFO(adj.message);
  REQUIRE(adj.ok());
  CHECK(adj.dry_run);
  CHECK(adj.balance == 1200);
  CHECK(sa->expire(1).dry_run);
  request reload;
  reload.op = opcode::reload;
  CHECK(sa->call(reload).code == errc::not_authorized);
  CHECK(sa->expire_all().code == errc::not_authorized);
  CHECK(sa->backup((rig.dir.path / "copy").string()).code == errc::not_authorized);
  CHECK(sa->verify().ok());
  CHECK(rig.last_seq() == before);
  CHECK(rig.balance(1) == 500);
}

TEST_CASE("loyaltyctl says an answer under a sandbox key is a dry run", "[sandbox]") {
  sandbox_rig rig;
  REQUIRE(rig.admin->enroll(1, "shop").ok());
  const std::string ctl = std::string(LOYALTYCTL_BIN) + " --port " + std::to_string(rig.eng->port()) + " --key " +
                          sandbox_key + " ";
  int status = -1;
  auto out = test::run_command(ctl + "earn --txn ctl-1 --member 1 --brand shop --amount 20000 2>&1", status);
  INFO(out);
  CHECK(status == 0);
  CHECK(out.find("dry run (nothing posted): earned 200 points") != std::string::npos);
  out = test::run_command(ctl + "redeem --txn ctl-2 --member 1 --points 1 2>&1", status);
  CHECK(status == 1);
  CHECK(out.find("dry run (nothing posted): insufficient_points") != std::string::npos);
  out = test::run_command(ctl + "--json earn --txn ctl-1 --member 1 --brand shop --amount 20000", status);
  CHECK(status == 0);
  CHECK(out.find("\"dry_run\":true") != std::string::npos);
  CHECK(rig.balance(1) == 0);
}

TEST_CASE("a dry run still in flight when the connection switches to a real key is answered as the dry run it was",
          "[sandbox]") {
  sandbox_rig rig;
  const auto before = rig.enrolled(1);
  auto c = rig.connect(sandbox_key);
  const request dry = test::shop_earn(1, "switch-1", 10'000);
  request hello;
  hello.op = opcode::hello;
  hello.version = 1;
  hello.key = admin_key;
  const request real = test::shop_earn(1, "switch-2", 10'000);
  // Pipelined: the hello is handled while the dry run is with the member's actor.
  const auto dry_id = c->send(dry);
  const auto hello_id = c->send(hello);
  const auto real_id = c->send(real);
  std::map<std::uint64_t, response> answers;
  for (int i = 0; i < 3; ++i) {
    response r;
    std::string err;
    REQUIRE(c->receive(r, err));
    answers[r.id] = r;
  }
  REQUIRE(answers[hello_id].ok());
  CHECK_FALSE(answers[hello_id].dry_run);
  REQUIRE(answers[dry_id].ok());
  CHECK(answers[dry_id].dry_run);
  CHECK(answers[dry_id].seq == 0);
  REQUIRE(answers[real_id].ok());
  CHECK_FALSE(answers[real_id].dry_run);
  CHECK(answers[real_id].seq == before + 1);
  CHECK(rig.balance(1) == 100);
}

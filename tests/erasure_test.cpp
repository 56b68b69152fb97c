// Erasure (issue 19 item 3, docs/OPERATIONS.md "Erasure"): a member who asks
// to be forgotten is erased by an admin; the member's aliases and consent
// sources become unreadable for good (crypto-shredding: its key is deleted),
// while amounts, ids and the auditors' checks stay. Runs the real loyaltyd
// binary on real LMDB, over real TCP, restarts it on the same directory, and
// greps the data file as an auditor would.
#include "command.hpp"
#include "engine_process.hpp"
#include "one_brand_program.hpp"
#include "temp_dir.hpp"

#include "config/program.hpp"
#include "io/client/client.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <iterator>

using namespace loyalty;
using namespace loyalty::io;

namespace {

constexpr const char* admin_key = "erasure-test-admin-key-0123456789";
constexpr const char* shop_key = "erasure-test-shop-key-01234567890";  // brand:shop
constexpr const char* sandbox_admin_key = "erasure-test-sandbox-admin-key-012";  // admin, dry_run

constexpr const char* email = "ana.example@mail.test";
constexpr const char* source = "web signup form, Ana Example, +44 7700 900123";
constexpr std::uint32_t email_channel = 1;  // config/consent.hpp: bit 0

std::string key_table(int id, const char* name, const char* key, const char* scope, bool dry_run = false) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string h;
  for (unsigned char b : key_sha256(key))
    h += hex[b >> 4], h += hex[b & 15];
  return "[[keys]]\nid = " + std::to_string(id) + "\nname = \"" + name + "\"\nsha256 = \"" + h + "\"\nscope = \"" +
         scope + "\"\n" + (dry_run ? "dry_run = true\n" : "") + "\n";
}

struct erasure_rig {
  test::temp_dir dir{"erasure"};
  test::engine_process_options opts;
  std::unique_ptr<test::engine_process> eng;
  std::unique_ptr<client> admin;

  erasure_rig() {
    std::ofstream(dir.path / "program.toml") << test::one_brand_program;
    opts.binary = LOYALTYD_BIN;
    opts.dir = dir.path;
    opts.program = (dir.path / "program.toml").string();
    opts.more_tables = key_table(1, "admin", admin_key, "admin") + key_table(2, "shop", shop_key, "brand:shop") +
                       key_table(3, "admin-sandbox", sandbox_admin_key, "admin", true);
    start();
  }

  void start() {
    eng = std::make_unique<test::engine_process>(opts);
    admin = connect(admin_key);
  }
  void restart() {
    admin.reset();
    REQUIRE(eng->stop() == 0);
    start();
  }

  std::unique_ptr<client> connect(const char* key) {
    std::string err;
    auto c = client::connect("127.0.0.1", eng->port(), err);
    INFO(err);
    REQUIRE(c);
    REQUIRE(c->hello("erasure-test", key).ok());
    return c;
  }

  // Every event of the stream from seq 1 up to the journal's newest entry.
  std::vector<stream_event> events() {
    auto newest = admin->journal(1, 1);
    REQUIRE(newest.ok());
    auto c = connect(admin_key);
    auto sub = c->subscribe(1);
    REQUIRE(sub.ok());
    std::vector<stream_event> out = sub.events;
    std::string err;
    while (out.empty() || out.back().seq < newest.last_seq) {
      response frame;
      INFO(err);
      REQUIRE(c->receive(frame, err));
      out.insert(out.end(), frame.events.begin(), frame.events.end());
    }
    return out;
  }

  std::int64_t outstanding() {
    auto l = admin->liability();
    REQUIRE(l.ok());
    REQUIRE(l.liabilities.size() == 1);
    return l.liabilities[0].outstanding;
  }

  // Whether the data file holds `text` anywhere, in any page, live or free.
  bool data_file_holds(std::string_view text) const {
    std::ifstream f(dir.path / "data" / "data.mdb", std::ios::binary);
    REQUIRE(f);
    const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    REQUIRE(!bytes.empty());
    return bytes.find(text) != std::string::npos;
  }
};

const stream_event* first_of_type(const std::vector<stream_event>& events, std::string_view type) {
  auto it = std::find_if(events.begin(), events.end(), [&](const stream_event& e) { return e.type == type; });
  return it == events.end() ? nullptr : &*it;
}

void check_verified(client& c) {
  auto v = c.verify();
  INFO(v.message);
  REQUIRE(v.ok());
  for (const auto& p : v.verify.problems)
    FAIL_CHECK(p);
  CHECK(v.verify.valid);
}

} // namespace

TEST_CASE("a customer asks to be forgotten: support cannot find them by email, their purchases keep their amounts, "
          "the books still add up and the email can join again as a new member",
          "[erasure]") {
  erasure_rig rig;
  REQUIRE(rig.admin->enroll(1, "shop").ok());
  REQUIRE(rig.admin->link_alias("signup-1", 1, email).ok());
  auto consent = rig.admin->consent("consent-1", 1, email_channel, email_channel, source);
  INFO(consent.message);
  REQUIRE(consent.ok());
  auto bought = rig.admin->earn("order-1", email, "shop", 50'000, "EUR", 0);
  INFO(bought.message);
  REQUIRE(bought.ok());
  REQUIRE(bought.points == 500);

  // While the member is a member: found by email, its consent's source on the stream.
  auto found = rig.admin->lookup(email);
  REQUIRE(found.ok());
  CHECK(found.member == 1);
  {
    auto events = rig.events();
    auto c = first_of_type(events, "consent_changed");
    REQUIRE(c != nullptr);
    CHECK(c->source == source);
  }
  const auto outstanding = rig.outstanding();
  CHECK(outstanding == 500);

  // A brand's key may not erase; an admin's does, once.
  CHECK(rig.connect(shop_key)->erase("forget-1", 1, "ticket 4711").code == errc::not_authorized);
  auto erased = rig.admin->erase("forget-1", 1, "ticket 4711");
  INFO(erased.message);
  REQUIRE(erased.ok());
  CHECK(erased.seq > bought.seq);
  auto retried = rig.admin->erase("forget-1", 1, "ticket 4711");
  REQUIRE(retried.ok());
  CHECK(retried.replayed);
  CHECK(retried.seq == erased.seq);
  CHECK(rig.admin->erase("forget-2", 1, "ticket 4712").code == errc::member_erased);

  auto check_forgotten = [&] {
    // Support cannot find them by email.
    CHECK(rig.admin->lookup(email).code == errc::unknown_alias);
    CHECK(rig.admin->balance(std::string(email)).code == errc::unknown_alias);
    // Their purchase is still in their history, with its amount and points.
    auto h = rig.admin->history(1);
    REQUIRE(h.ok());
    auto earn = std::find_if(h.entries.begin(), h.entries.end(), [](const history_entry& e) { return e.kind == "earn"; });
    REQUIRE(earn != h.entries.end());
    CHECK(earn->amount == 50'000);
    CHECK(earn->points == 500);
    CHECK(earn->txn == "order-1");
    CHECK(h.entries.front().kind == "erase");
    // The stream shows the consent change without its source, and the erasure.
    auto events = rig.events();
    auto c = first_of_type(events, "consent_changed");
    REQUIRE(c != nullptr);
    CHECK(c->source.empty());
    auto e = first_of_type(events, "member_erased");
    REQUIRE(e != nullptr);
    CHECK(e->member == 1);
    CHECK(e->seq == erased.seq);
    // Nothing more is posted for them; their points are still owed (no forfeit).
    CHECK(rig.admin->earn("order-2", 1, "shop", 10'000, "EUR", 0).code == errc::member_erased);
    CHECK(rig.outstanding() == outstanding);
    // The auditors' verify holds.
    check_verified(*rig.admin);
    // The data file holds neither the email nor the consent's source (it
    // does hold the client's txn ids: the grep reads the right file).
    CHECK(rig.data_file_holds("order-1"));
    CHECK_FALSE(rig.data_file_holds(email));
    CHECK_FALSE(rig.data_file_holds("Ana Example"));
  };
  check_forgotten();

  // The same email joins again as a new member.
  REQUIRE(rig.admin->enroll(2, "shop").ok());
  auto relinked = rig.admin->link_alias("signup-2", 2, email);
  INFO(relinked.message);
  REQUIRE(relinked.ok());
  CHECK_FALSE(relinked.replayed);
  CHECK(rig.admin->lookup(email).member == 2);
  REQUIRE(rig.admin->earn("order-3", email, "shop", 20'000, "EUR", 0).ok());

  // A restart keeps all of it.
  rig.restart();
  CHECK(rig.admin->lookup(email).member == 2);
  CHECK(rig.admin->earn("order-4", 1, "shop", 10'000, "EUR", 0).code == errc::member_erased);
  auto h = rig.admin->history(1);
  REQUIRE(h.ok());
  CHECK(std::any_of(h.entries.begin(), h.entries.end(), [](const history_entry& e) { return e.amount == 50'000; }));
  auto events = rig.events();
  auto c = first_of_type(events, "consent_changed");
  REQUIRE(c != nullptr);
  CHECK(c->source.empty());
  check_verified(*rig.admin);
  CHECK(rig.outstanding() == outstanding + 200);
}

TEST_CASE("a consent source and an alias never reach the data file in plain text, even before an erase", "[erasure]") {
  erasure_rig rig;
  REQUIRE(rig.admin->enroll(7, "shop").ok());
  REQUIRE(rig.admin->link_alias("signup-7", 7, email).ok());
  REQUIRE(rig.admin->consent("consent-7", 7, email_channel, email_channel, source).ok());
  // A retried consent is matched (its stored request hash is keyed, not plain).
  auto again = rig.admin->consent("consent-7", 7, email_channel, email_channel, source);
  REQUIRE(again.ok());
  CHECK(again.replayed);
  CHECK(rig.admin->consent("consent-7", 7, email_channel, 0, source).code == errc::txn_id_conflict);
  CHECK_FALSE(rig.data_file_holds(email));
  CHECK_FALSE(rig.data_file_holds("Ana Example"));
  CHECK(rig.admin->lookup(email).member == 7);
}

TEST_CASE("loyaltyctl erases a member with an admin key and explains itself with --help", "[erasure]") {
  erasure_rig rig;
  REQUIRE(rig.admin->enroll(3, "shop").ok());
  REQUIRE(rig.admin->link_alias("signup-3", 3, "card-0003").ok());
  const std::string ctl = std::string(LOYALTYCTL_BIN) + " --port " + std::to_string(rig.eng->port()) + " --key ";
  int status = -1;
  auto help = test::run_command(std::string(LOYALTYCTL_BIN) + " erase --help 2>&1", status);
  CHECK(status == 0);
  CHECK(help.find("--reason") != std::string::npos);
  auto refused = test::run_command(ctl + shop_key + " erase --txn ctl-1 --member 3 --reason 'ticket 1' 2>&1", status);
  INFO(refused);
  CHECK(status != 0);
  CHECK(refused.find("not_authorized") != std::string::npos);
  auto out = test::run_command(ctl + admin_key + " erase --txn ctl-1 --member 3 --reason 'ticket 1' 2>&1", status);
  INFO(out);
  CHECK(status == 0);
  CHECK(out.find("member 3 erased") != std::string::npos);
  CHECK(rig.admin->lookup("card-0003").code == errc::unknown_alias);
}

TEST_CASE("an erase under a sandbox admin key is a dry run and forgets nothing", "[erasure]") {
  erasure_rig rig;
  REQUIRE(rig.admin->enroll(5, "shop").ok());
  REQUIRE(rig.admin->link_alias("signup-5", 5, "card-0005").ok());
  auto dry = rig.connect(sandbox_admin_key)->erase("dry-1", 5, "ticket 5");
  INFO(dry.message);
  REQUIRE(dry.ok());
  CHECK(dry.dry_run);
  CHECK(dry.seq == 0);
  CHECK(rig.admin->lookup("card-0005").member == 5);
  // Its txn id is free for the real erase.
  auto real = rig.admin->erase("dry-1", 5, "ticket 5");
  REQUIRE(real.ok());
  CHECK_FALSE(real.replayed);
  CHECK(rig.admin->lookup("card-0005").code == errc::unknown_alias);
}

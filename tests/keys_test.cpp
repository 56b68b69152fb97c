// API keys over real TCP: hello needs a configured key; every operation is
// allowed or refused by the key's scope (admin, read, brand) and a refused
// request posts nothing; the key id is journaled and shown by explain; a
// key's rate limit answers rate_limited; keygen's output is a valid setting.
#include "engine_rig.hpp"

#include <cstdio>
#include <fstream>
#include <map>

using namespace loyalty;
using namespace loyalty::io;

namespace {

constexpr std::uint64_t t0 = 1'772'452'800'000'000ull;  // 2026-03-02T12:00:00Z

constexpr const char* program_toml = R"(
[program]
name = "keys"
currency = "EUR"

[[brands]]
id = 1
code = "shop"
earn_rate = { num = 1, den = 100 }

[[brands]]
id = 2
code = "web"
earn_rate = { num = 1, den = 100 }

[[tiers]]
name = "member"
threshold = 0
multiplier = { num = 1, den = 1 }

[[rules]]
id = 1
code = "survey"
trigger = "event"
event = "survey"
bonus_points = 10

[[rewards]]
id = 1
code = "mug"
name = "Mug"
cost = 10
brand = "shop"
)";

// Members: 1 and 3 at shop, 2 at web; each with points to spend.
struct keys_rig : test::engine_rig {
  keys_rig() : test::engine_rig("keys", program_toml, t0) {
    for (std::uint64_t m : {1, 2, 3}) {
      REQUIRE(c->enroll(m, m == 2 ? "web" : "shop").ok());
      REQUIRE(c->earn("seed-" + std::to_string(m), m, m == 2 ? "web" : "shop", 100000, "EUR", t0).ok());
    }
  }
};

// One well-formed request of each operation, for member m at brand `brand`.
std::vector<request> one_of_each(std::uint64_t m, const std::string& brand, const std::string& tag) {
  std::vector<request> v;
  auto add = [&](opcode op) -> request& {
    request r;
    r.op = op;
    r.member = m;
    r.txn = tag + "-" + to_string(op);
    v.push_back(r);
    return v.back();
  };
  add(opcode::earn).brand = brand, v.back().amount = 1000, v.back().currency = "EUR", v.back().occurred_at_us = t0;
  add(opcode::redeem).points = 5;
  add(opcode::event).event = "survey";
  add(opcode::hold).points = 5;
  add(opcode::redeem_reward).reward = "mug";
  auto& adj = add(opcode::adjust);
  adj.points = 5, adj.reason = "goodwill", adj.brand = brand;
  add(opcode::transfer).to = m == 1 ? 3 : 1, v.back().points = 1;
  add(opcode::link_alias).alias = tag + "-card-" + std::to_string(m);
  add(opcode::balance).txn.clear();
  add(opcode::history).txn.clear();
  auto& ex = add(opcode::expire);
  ex.txn.clear();
  ex.has_member = true;
  return v;
}

} // namespace

TEST_CASE("hello needs one of the configured keys; a wrong or missing key is refused", "[keys]") {
  keys_rig g;
  std::string err;
  auto x = client::connect("127.0.0.1", g.eng->port(), err);
  REQUIRE(x);
  CHECK(x->hello("t").code == errc::not_authorized);
  CHECK(x->hello("t", "not-a-configured-key-at-all").code == errc::not_authorized);
  CHECK(x->balance(1).code == errc::hello_required);  // still no session
  REQUIRE(x->hello("t", test::read_key).ok());         // the connection may try again
  CHECK(x->balance(1).ok());
}

TEST_CASE("a refused second hello leaves the connection with the key it had", "[keys]") {
  keys_rig g;
  auto reader = g.connect(test::read_key);
  auto shop = g.connect(test::shop_key);
  for (client* x : {reader.get(), shop.get()}) {
    CHECK(x->hello("t").code == errc::not_authorized);
    CHECK(x->hello("t", "not-a-configured-key-at-all").code == errc::not_authorized);
  }
  // Still the read key: reads pass, postings do not.
  CHECK(reader->balance(1).ok());
  CHECK(reader->earn("rehello-1", 1, "shop", 1000, "EUR", t0).code == errc::not_authorized);
  // Still the brand key: its own brand only, never another one's.
  CHECK(shop->earn("rehello-2", 1, "shop", 1000, "EUR", t0).ok());
  CHECK(shop->earn("rehello-3", 2, "web", 1000, "EUR", t0).code == errc::not_authorized);
  // A valid key in a later hello is taken.
  REQUIRE(reader->hello("t", test::shop_key).ok());
  CHECK(reader->earn("rehello-4", 3, "shop", 1000, "EUR", t0).ok());
}

TEST_CASE("every operation is allowed or refused by the key's scope, and a refusal posts nothing", "[keys]") {
  keys_rig g;
  auto shop = g.connect(test::shop_key);
  auto reader = g.connect(test::read_key);
  struct expectation {
    client* who;
    std::uint64_t member;
    std::string brand;
    std::map<opcode, bool> allowed;  // op -> allowed?
  };
  const std::map<opcode, bool> admin_all{{opcode::earn, true},     {opcode::redeem, true},  {opcode::event, true},
                                         {opcode::hold, true},     {opcode::redeem_reward, true},
                                         {opcode::adjust, true},   {opcode::transfer, true}, {opcode::link_alias, true},
                                         {opcode::balance, true},  {opcode::history, true}, {opcode::expire, true}};
  std::map<opcode, bool> read_only = admin_all, brand_own = admin_all, brand_other;
  for (auto& [op, ok] : read_only)
    ok = op == opcode::balance || op == opcode::history;
  brand_own[opcode::adjust] = brand_own[opcode::expire] = false;  // admin only
  // On a member of another brand, a brand key may only post entries of its
  // own brand — the coalition case: the member spends points at the key's
  // brand (redeem and hold default to it, the mug is a shop reward), with the
  // inter-brand settlement in the entry; everything else — earning at the
  // other brand, reading the member — is refused.
  for (auto& [op, ok] : admin_all)
    brand_other[op] = op == opcode::redeem_reward || op == opcode::redeem || op == opcode::hold;
  const std::vector<expectation> cases{
    {g.c.get(), 1, "shop", admin_all},
    {reader.get(), 1, "shop", read_only},
    {shop.get(), 1, "shop", brand_own},
    {shop.get(), 2, "web", brand_other},
  };
  int n = 0;
  for (const auto& ex : cases) {
    for (auto r : one_of_each(ex.member, ex.brand, "case" + std::to_string(n++))) {
      INFO("case " << n << ": " << to_string(r.op) << " on member " << ex.member);
      const auto before = g.eng->ledger().last_seq();
      auto res = ex.who->call(r);
      INFO(to_string(res.code) << " " << res.message);
      if (ex.allowed.at(r.op)) {
        CHECK(res.ok());
      } else {
        CHECK(res.code == errc::not_authorized);
        CHECK(g.eng->ledger().last_seq() == before);
      }
    }
  }
  // Admin-wide operations: the reader may check the ledger, the brand key may not.
  CHECK(reader->verify().ok());
  CHECK(reader->stats().ok());
  CHECK(shop->verify().code == errc::not_authorized);
  CHECK(shop->expire_all().code == errc::not_authorized);
  // A batch is checked operation by operation.
  request batch;
  batch.op = opcode::batch;
  for (auto r : one_of_each(1, "shop", "batch")) {
    if (r.op == opcode::balance || r.op == opcode::adjust) {
      r.id = batch.ops.size() + 1;
      batch.ops.push_back(r);
    }
  }
  auto br = shop->call(batch);
  REQUIRE(br.results.size() == 2);
  CHECK(br.results[0].ok() != br.results[1].ok());
  g.check_verify();
}

TEST_CASE("each entry names the key that posted it, and explain shows key, rules and postings", "[keys]") {
  keys_rig g;
  auto shop = g.connect(test::shop_key);
  auto reader = g.connect(test::read_key);
  REQUIRE(shop->earn("k-earn", 1, "shop", 2500, "EUR", t0).ok());
  REQUIRE(shop->event("k-survey", 1, "survey").ok());
  auto ex = reader->call([] {
    request r;
    r.op = opcode::explain;
    r.txn = "k-survey";
    return r;
  }());
  INFO(ex.message);
  REQUIRE(ex.ok());
  CHECK(ex.key_id == 2);
  CHECK(ex.key_name == "shop-pos");
  REQUIRE(ex.entries.size() == 1);
  CHECK(ex.entries[0].kind == "event");
  CHECK(ex.member == 1);
  REQUIRE(ex.lines.size() == 1);
  CHECK(ex.lines[0].rule == "survey");
  CHECK(ex.lines[0].points == 10);
  REQUIRE(ex.moves.size() == 2);
  CHECK(ex.moves[0].account == "brand_issued:shop");
  CHECK(ex.moves[0].side == "debit");
  CHECK(ex.moves[1].account == "member:1");
  CHECK(ex.moves[1].amount == 10);
  auto seed = reader->call([] {
    request r;
    r.op = opcode::explain;
    r.txn = "seed-1";
    return r;
  }());
  REQUIRE(seed.ok());
  CHECK(seed.key_id == 1);  // posted by the rig's admin connection
  // A brand key may not read another brand's entries; an unknown txn id is unknown_txn.
  request other;
  other.op = opcode::explain;
  other.txn = "seed-2";
  CHECK(shop->call(other).code == errc::not_authorized);
  other.txn = "never-posted";
  CHECK(reader->call(other).code == errc::unknown_txn);
  // The ledger itself says who posted: header key ids.
  auto e = g.eng->ledger().read_entry(ex.seq);
  REQUIRE(e);
  CHECK(e->header.key_id == 2);
}

TEST_CASE("a key over its rate limit gets rate_limited and posts nothing for those requests", "[keys]") {
  test::temp_dir dir("keys-rate");
  engine_options o;
  o.settings.listen_port = 0;
  o.settings.data_dir = (dir.path / "data").string();
  o.settings.map_bytes = 1ull << 30;
  o.settings.expiry_sweep_interval_s = 0;
  auto slow = test::make_key(7, "slow-pos", test::shop_key, key_scope::brand, "shop");
  slow.rate_per_s = 5;
  o.settings.keys = {slow};
  std::vector<config_error> errors;
  auto prog = parse_program(program_toml, "keys.toml", errors);
  REQUIRE(prog);
  o.prog = std::move(*prog);
  std::string err;
  auto eng = engine::start(std::move(o), err);
  INFO(err);
  REQUIRE(eng);
  auto c = client::connect("127.0.0.1", eng->port(), err);
  REQUIRE(c);
  REQUIRE(c->hello("t", test::shop_key).ok());
  REQUIRE(c->enroll(1, "shop").ok());
  for (int i = 0; i < 40; ++i) {
    request r;
    r.op = opcode::earn;
    r.member = 1;
    r.brand = "shop";
    r.amount = 100;
    r.currency = "EUR";
    r.occurred_at_us = t0;
    r.txn = "r-" + std::to_string(i);
    c->send(r);
  }
  int ok = 0, limited = 0;
  for (int i = 0; i < 40; ++i) {
    response r;
    REQUIRE(c->receive(r, err));
    ok += r.ok();
    limited += r.code == errc::rate_limited;
  }
  CHECK(limited > 0);
  CHECK(ok + limited == 40);
  CHECK(eng->ledger().last_seq() == static_cast<std::uint64_t>(1 + ok));  // the enroll and the earns let through
  // A batch counts each of its operations: ten are more than the key's 5 a second.
  request batch;
  batch.op = opcode::batch;
  for (int i = 0; i < 10; ++i) {
    request b;
    b.op = opcode::balance;
    b.member = 1;
    b.id = static_cast<std::uint64_t>(i + 1);
    batch.ops.push_back(b);
  }
  CHECK(c->call(batch).code == errc::rate_limited);
}

TEST_CASE("an engine refuses to start with a key whose brand is not in the program", "[keys]") {
  test::temp_dir dir("keys-bad");
  engine_options o;
  o.settings.listen_port = 0;
  o.settings.data_dir = (dir.path / "data").string();
  o.settings.map_bytes = 1ull << 30;
  o.settings.keys = {test::make_key(9, "ghost", test::shop_key, key_scope::brand, "nowhere")};
  std::vector<config_error> errors;
  auto prog = parse_program(program_toml, "keys.toml", errors);
  REQUIRE(prog);
  o.prog = std::move(*prog);
  std::string err;
  CHECK(engine::start(std::move(o), err) == nullptr);
  CHECK(err.find("brand:nowhere") != std::string::npos);
}

TEST_CASE("loyaltyctl keygen prints a key and settings lines that load and match it", "[keys][tools]") {
  test::temp_dir dir("keygen");
  const auto out = dir.path / "keygen.txt";
  std::string cmd = std::string(LOYALTYCTL_BIN) + " keygen --id 12 --name pos-7 --scope brand:shop --rate 50 > " +
                    out.string();
  REQUIRE(std::system(cmd.c_str()) == 0);
  std::ifstream in(out);
  std::string first;
  std::getline(in, first);
  auto at = first.rfind(' ');
  REQUIRE(at != std::string::npos);
  const std::string secret = first.substr(at + 1);
  CHECK(secret.size() == 3 + 64);
  std::string rest((std::istreambuf_iterator<char>(in)), {});
  const auto settings = dir.path / "loyaltyd.toml";
  {
    std::ofstream f(settings);
    f << "[engine]\nprogram = \"p.toml\"\n" << rest;
  }
  std::vector<config_error> errors;
  auto s = load_settings(settings.string(), errors);
  for (const auto& e : errors)
    UNSCOPED_INFO(e.message);
  REQUIRE(s);
  REQUIRE(s->keys.size() == 1);
  CHECK(s->keys[0].id == 12);
  CHECK(s->keys[0].name == "pos-7");
  CHECK(s->keys[0].scope == key_scope::brand);
  CHECK(s->keys[0].scope_code == "shop");
  CHECK(s->keys[0].rate_per_s == 50);
  CHECK(s->keys[0].sha256 == key_sha256(secret));
}

// Bulk data over real TCP: the `journal` operation, and the real loyaltyctl
// binary's `import` (CSV and JSON lines, bad rows reported, reruns posting
// nothing) and `export journal` (JSON lines and CSV read back and checked
// against the ledger) against an engine in this process.
#include "engine_rig.hpp"

#include "config/consent.hpp"

#include "io/wire/codec.hpp"
#include "io/ctl/detail/csv.hpp"
#include "io/ctl/detail/json.hpp"

#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

using namespace loyalty;
using namespace loyalty::io;

namespace {

constexpr std::uint64_t t0 = 1'772'452'800'000'000ull;  // 2026-03-02T12:00:00Z

constexpr const char* program_toml = R"(
[program]
name = "bulk"
currency = "EUR"

[[brands]]
id = 1
code = "shop"
earn_rate = { num = 1, den = 100 }
cost_per_point = { num = 1, den = 2 }

[[brands]]
id = 2
code = "web"
earn_rate = { num = 1, den = 100 }
cost_per_point = { num = 1, den = 2 }

[[tiers]]
name = "member"
threshold = 0
multiplier = { num = 1, den = 1 }
)";

// An admin key limited to 200 requests a second.
constexpr const char* slow_key = "test-slow-key-0123456789";

struct bulk_rig : test::engine_rig {
  bulk_rig()
    : test::engine_rig("bulk", program_toml, t0, [](io::engine_options& o) {
        o.settings.keys.push_back(test::make_key(4, "slow", slow_key, key_scope::admin));
        o.settings.keys.back().rate_per_s = 200;
      }) {}

  // Runs loyaltyctl with `args` and a key; its exit status, stdout in `out`.
  int ctl(const std::string& args, const char* key, std::string* out = nullptr) {
    const auto out_file = dir.path / "ctl.out";
    const auto err_file = dir.path / "ctl.err";
    const std::string cmd = std::string(LOYALTYCTL_BIN) + " --port " + std::to_string(eng->port()) + " --key " +
                            key + " " + args + " > " + out_file.string() + " 2> " + err_file.string();
    const int status = std::system(cmd.c_str());
    const std::string text = slurp(out_file);
    UNSCOPED_INFO("loyaltyctl " << args << "\nstdout: " << text << "\nstderr: " << slurp(err_file));
    if (out != nullptr)
      *out = text;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  static std::string slurp(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
  }

  std::filesystem::path write(const std::string& name, const std::string& text) {
    const auto p = dir.path / name;
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }

  std::uint64_t last_seq() {
    auto r = c->journal(1, 1);
    REQUIRE(r.ok());
    return r.last_seq;
  }
};

// The records of a CSV file, header included.
std::vector<std::vector<std::string>> read_csv(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  detail::csv_reader rd(in);
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> f;
  std::uint64_t line = 0;
  std::string error;
  while (rd.next(f, line, error)) {
    INFO("line " << line << ": " << error);
    REQUIRE(error.empty());
    rows.push_back(f);
  }
  return rows;
}

// One line of an error report: line, member, op, error (the message aside).
using report_line = std::tuple<std::string, std::string, std::string, std::string>;

std::set<report_line> read_report(const std::filesystem::path& p) {
  auto rows = read_csv(p);
  REQUIRE(!rows.empty());
  CHECK(rows[0] == std::vector<std::string>{"line", "member", "op", "error", "message"});
  std::set<report_line> out;
  for (std::size_t i = 1; i < rows.size(); ++i) {
    REQUIRE(rows[i].size() == 5);
    CHECK(!rows[i][4].empty());
    out.emplace(rows[i][0], rows[i][1], rows[i][2], rows[i][3]);
  }
  return out;
}

// A posting as both export formats show it.
using posting_row = std::tuple<std::string, std::string, std::int64_t>;

std::vector<posting_row> moves_of(const detail::json_value& entry) {
  std::vector<posting_row> out;
  const auto* moves = entry.find("moves");
  REQUIRE(moves != nullptr);
  for (const auto& m : moves->items) {
    std::int64_t amount = 0;
    REQUIRE(m.find("amount")->to_i64(amount));
    out.emplace_back(m.find("account")->text, m.find("side")->text, amount);
  }
  return out;
}

// Some of everything: enrollments at two brands, an earn, a redemption at
// the other brand (settled between the brands), a transfer, an adjustment,
// an alias.
void activity(bulk_rig& g) {
  REQUIRE(g.c->enroll(1, "shop").ok());
  REQUIRE(g.c->enroll(2, "web").ok());
  REQUIRE(g.c->earn("e-1", 1, "shop", 50'000, "EUR", t0).ok());
  REQUIRE(g.c->redeem("r-1", 1, 100, "web").ok());
  REQUIRE(g.c->transfer("t-1", 1, 2, 50).ok());
  REQUIRE(g.c->adjust("a-1", 2, 30, "goodwill", "web").ok());
  REQUIRE(g.c->link_alias("l-1", 1, "card-1").ok());
}

} // namespace

TEST_CASE("an import with bad rows reports exactly them and imports the rest", "[bulk][import]") {
  bulk_rig g;
  // Member 900 is enrolled at web with the alias taken-card beforehand.
  REQUIRE(g.c->enroll(900, "web").ok());
  REQUIRE(g.c->link_alias("pre-alias", 900, "taken-card").ok());
  const auto file = g.write("members.csv",
                            "member,brand,aliases,opening_balance\n"
                            "1,shop,card-1;app-1,500\n"      // line 2: good
                            "2,web,,\n"                      // line 3: good, nothing but the enroll
                            "0,shop,,10\n"                   // line 4: member id out of range
                            "3,nosuch,card-3,\n"             // line 5: unknown brand
                            "4,shop,taken-card,20\n"         // line 6: alias of member 900
                            "5,shop,,-7\n"                   // line 7: negative balance
                            "\n"                             // line 8: blank, skipped
                            "6,\"shop\",\"card-6, with \"\"comma\"\"\",1000\n"  // line 9: good, quoted
                            "900,shop,,\n");                 // line 10: enrolled before at another brand
  const auto report = g.dir.path / "report.csv";
  const std::set<report_line> bad{{"4", "0", "validate", "invalid_argument"},
                                  {"5", "3", "enroll", "unknown_brand"},
                                  {"6", "4", "link_alias", "alias_taken"},
                                  {"7", "5", "validate", "invalid_amount"},
                                  {"10", "900", "enroll", "member_exists"}};
  std::string out;
  CHECK(g.ctl("import " + file.string() + " --errors " + report.string() + " --batch 3", test::admin_key, &out) == 2);
  CHECK(out.find("8 rows read, 3 imported, 0 already present, 5 failed") != std::string::npos);
  CHECK(read_report(report) == bad);

  // The good rows: enrolled at their brand, aliases linked, opening
  // balances posted as balanced entries (brand_issued -> member).
  auto b1 = g.c->balance(1);
  REQUIRE(b1.ok());
  CHECK(b1.brand == "shop");
  CHECK(b1.balance == 500);
  CHECK(g.c->lookup("card-1").member == 1);
  CHECK(g.c->lookup("app-1").member == 1);
  auto b2 = g.c->balance(2);
  REQUIRE(b2.ok());
  CHECK(b2.brand == "web");
  CHECK(b2.balance == 0);
  CHECK(g.c->balance(6).balance == 1000);
  CHECK(g.c->lookup("card-6, with \"comma\"").member == 6);
  auto open1 = g.c->call([] {
    request q;
    q.op = opcode::explain;
    q.txn = "open:1";
    return q;
  }());
  REQUIRE(open1.ok());
  REQUIRE(open1.moves.size() == 2);
  CHECK(open1.moves[0].account == "brand_issued:shop");
  CHECK(open1.moves[0].side == "debit");
  CHECK(open1.moves[0].amount == 500);
  CHECK(open1.moves[1].account == "member:1");
  CHECK(open1.moves[1].side == "credit");
  CHECK(open1.moves[1].amount == 500);
  // The bad rows posted nothing of theirs (member 4's enroll and balance
  // went in before its alias was refused: the row is reported).
  CHECK(g.c->balance(3).code == errc::unknown_member);
  CHECK(g.c->balance(5).code == errc::unknown_member);
  CHECK(g.c->balance(4).balance == 20);
  CHECK(g.c->balance(900).brand == "web");
  CHECK(g.c->lookup("taken-card").member == 900);
  g.check_verify();

  // A rerun of the same file posts nothing new: the good rows are already
  // present, the bad ones fail again with the same codes.
  const auto seq = g.last_seq();
  CHECK(g.ctl("import " + file.string() + " --errors " + report.string(), test::admin_key, &out) == 2);
  CHECK(out.find("8 rows read, 0 imported, 3 already present, 5 failed") != std::string::npos);
  CHECK(read_report(report) == bad);
  CHECK(g.last_seq() == seq);
  CHECK(g.c->balance(1).balance == 500);
  g.check_verify();
}

TEST_CASE("an import from JSON lines enrolls its members and a rerun finds them all present", "[bulk][import]") {
  bulk_rig g;
  const auto file = g.write("members.jsonl",
                            "{\"member\": 10, \"brand\": \"shop\", \"aliases\": [\"j-10\", \"j;10\"], "
                            "\"opening_balance\": 250}\n"
                            "{\"member\": \"11\", \"brand\": \"web\", \"aliases\": \"j-11;j-11b\"}\n"
                            "\n"
                            "{\"brand\": \"shop\", \"member\": 12, \"opening_balance\": null, \"consents\": []}\n");
  const auto report = g.dir.path / "members.jsonl.errors.csv";
  std::string out;
  REQUIRE(g.ctl("import " + file.string() + " --txn-prefix mig1:", test::admin_key, &out) == 0);
  CHECK(out.find("3 rows read, 3 imported, 0 already present, 0 failed") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(report));  // nothing failed: no report left
  CHECK(g.c->balance(10).balance == 250);
  CHECK(g.c->lookup("j;10").member == 10);  // an array keeps ';' inside an alias
  CHECK(g.c->lookup("j-11b").member == 11);
  CHECK(g.c->balance(11).brand == "web");
  CHECK(g.c->balance(12).ok());
  CHECK(g.c->call([] {
    request q;
    q.op = opcode::explain;
    q.txn = "mig1:open:10";
    return q;
  }()).ok());
  const auto seq = g.last_seq();
  REQUIRE(g.ctl("import " + file.string() + " --txn-prefix mig1: --inflight 1", test::admin_key, &out) == 0);
  CHECK(out.find("3 rows read, 0 imported, 3 already present, 0 failed") != std::string::npos);
  CHECK(g.last_seq() == seq);
  g.check_verify();
}

TEST_CASE("an import through a rate-limited key backs off and retries until every row is in", "[bulk][import]") {
  bulk_rig g;
  std::string rows = "member,brand\n";
  for (int m = 1; m <= 300; ++m)
    rows += std::to_string(m) + (m % 2 ? ",shop\n" : ",web\n");
  const auto file = g.write("many.csv", rows);
  std::string out;
  // Batches of 1000 never pass a rate of 200 a second: the import halves
  // them, and retries what was refused with the same requests.
  REQUIRE(g.ctl("import " + file.string(), slow_key, &out) == 0);
  CHECK(out.find("300 rows read, 300 imported, 0 already present, 0 failed") != std::string::npos);
  std::uint64_t limited = 0;
  for (const auto& [name, value] : g.c->stats().stats)
    if (name == "errors_rate_limited")
      limited = value;
  CHECK(limited > 0);
  CHECK(g.last_seq() == 300);
  CHECK(g.c->balance(300).brand == "web");
}

TEST_CASE("import refuses a file whose header names an unknown column and posts nothing", "[bulk][import]") {
  bulk_rig g;
  const auto seq = g.last_seq();
  const auto typo = g.write("typo.csv", "member,brand,opening_balanse\n1,shop,5\n");
  CHECK(g.ctl("import " + typo.string(), test::admin_key) == 1);
  CHECK(g.last_seq() == seq);
}

TEST_CASE("import records consents as the file states them and a rerun posts nothing", "[bulk][import][consent]") {
  bulk_rig g;
  // Member 1: email and sms; 2: no column value (consent left alone); 3:
  // none; 4: a channel that does not exist (the row fails, others go in).
  const auto file = g.write("consents.csv", "member,brand,consents\n1,shop,email;sms\n2,shop,\n3,shop,none\n"
                                            "4,shop,email;fax\n");
  CHECK(g.ctl("import " + file.string(), test::admin_key) == 2);
  auto b1 = g.c->balance(1);
  REQUIRE(b1.ok());
  CHECK(b1.consents == (consent_bit("email") | consent_bit("sms")));
  auto b2 = g.c->balance(2);
  REQUIRE(b2.ok());
  CHECK(b2.consents == 0);
  auto b3 = g.c->balance(3);
  REQUIRE(b3.ok());
  CHECK(b3.consents == 0);
  CHECK(g.c->balance(4).code == errc::unknown_member);
  // The consent entries: members 1 and 3 (2 stated nothing), source "import".
  auto explain = [&](const std::string& txn) {
    request q;
    q.op = opcode::explain;
    q.txn = txn;
    return g.c->call(q);
  };
  for (const char* txn : {"consent:1", "consent:3"}) {
    INFO(txn);
    auto x = explain(txn);
    REQUIRE(x.ok());
    CHECK(x.entries.at(0).kind == "consent");
  }
  CHECK(explain("consent:2").code == errc::unknown_txn);
  const auto seq = g.last_seq();
  CHECK(g.ctl("import " + file.string(), test::admin_key) == 2);  // row 4 still fails
  CHECK(g.last_seq() == seq);
  std::ifstream errors(file.string() + ".errors.csv");
  std::string text((std::istreambuf_iterator<char>(errors)), std::istreambuf_iterator<char>());
  CHECK(text.find("5,4,") != std::string::npos);  // line 5 of the file: member 4
  CHECK(text.find("fax") != std::string::npos);
  g.check_verify();
}

TEST_CASE("journal pages every entry in seq order for admin and read keys only", "[bulk][journal]") {
  bulk_rig g;
  activity(g);
  auto all = g.c->journal(1, journal_limit_max);
  REQUIRE(all.ok());
  REQUIRE(all.journal.size() == all.last_seq);
  CHECK(all.next == 0);
  for (std::size_t i = 0; i < all.journal.size(); ++i)
    CHECK(all.journal[i].entry.seq == i + 1);
  // The redemption at web of shop's points: moves, settle record, key.
  const auto& r = *std::find_if(all.journal.begin(), all.journal.end(),
                                [](const journal_entry& j) { return j.entry.txn == "r-1"; });
  CHECK(r.entry.kind == "redeem");
  CHECK(r.member == 1);
  CHECK(r.key_id == 1);
  CHECK(r.policy_version >= 1);
  CHECK(r.entry.points == -100);
  CHECK(r.settlements.size() == 1);
  CHECK(r.moves.size() >= 4);  // points and money

  // Pages: `next` goes on where a page stopped; 0 once the newest is in.
  auto p1 = g.c->journal(1, 3);
  REQUIRE(p1.ok());
  REQUIRE(p1.journal.size() == 3);
  CHECK(p1.next == 4);
  auto p2 = g.c->journal(p1.next, journal_limit_max);
  REQUIRE(p2.ok());
  CHECK(p2.journal.front().entry.seq == 4);
  CHECK(p2.journal.size() == all.last_seq - 3);
  CHECK(p2.next == 0);
  auto past = g.c->journal(all.last_seq + 5);
  REQUIRE(past.ok());
  CHECK(past.journal.empty());
  CHECK(past.next == 0);
  CHECK(past.last_seq == all.last_seq);

  // Errors: a page above the maximum, a brand or partner key, a batch.
  request big;
  big.op = opcode::journal;
  big.limit = journal_limit_max + 1;
  CHECK(g.c->call(big).code == errc::invalid_argument);
  auto shop = g.connect(test::shop_key);
  CHECK(shop->journal(1).code == errc::not_authorized);
  auto reader = g.connect(test::read_key);
  CHECK(reader->journal(1).ok());
  request b;
  b.op = opcode::batch;
  b.ops.push_back(big);
  b.ops.back().limit = 0;
  auto in_batch = g.c->call(b);
  REQUIRE(in_batch.ok());
  REQUIRE(in_batch.results.size() == 1);
  CHECK(in_batch.results[0].code == errc::invalid_argument);
}

TEST_CASE("a journal page stops before the frame bound and next goes on from there", "[bulk][journal]") {
  // 100 purchase rules with long codes: every earn carries 100 rule lines,
  // about 12 KiB an entry, so 100 earns do not fit one page.
  std::string toml = program_toml;
  for (int i = 1; i <= 100; ++i) {
    char code[80];
    std::snprintf(code, sizeof code, "a-bonus-rule-whose-long-code-makes-each-journal-entry-large-%03d", i);
    toml += "\n[[rules]]\nid = " + std::to_string(i) + "\ncode = \"" + code +
            "\"\ntrigger = \"purchase\"\nbonus_points = 1\n";
  }
  test::engine_rig g("bulk-page", toml, t0);
  REQUIRE(g.c->enroll(1, "shop").ok());
  request b;
  b.op = opcode::batch;
  for (int i = 0; i < 100; ++i) {
    request e;
    e.op = opcode::earn;
    e.txn = "big-" + std::to_string(i);
    e.member = 1;
    e.brand = "shop";
    e.amount = 1000;
    e.currency = "EUR";
    e.occurred_at_us = t0;
    b.ops.push_back(e);
  }
  auto done = g.c->call(b);
  REQUIRE(done.ok());
  for (const auto& r : done.results)
    REQUIRE(r.ok());
  auto first = g.c->journal(1, journal_limit_max);
  REQUIRE(first.ok());
  REQUIRE(first.last_seq == 101);
  CHECK(first.journal.size() > 1);
  CHECK(first.journal.size() < 101);  // cut by size, not by limit
  std::size_t bytes = 0;
  for (const auto& j : first.journal)
    bytes += journal_entry_bytes(j);
  CHECK(bytes <= journal_page_bytes_max);
  CHECK(first.journal.back().lines.size() == 101);  // base + 100 rules
  CHECK(first.next == first.journal.back().entry.seq + 1);
  // Paging on reads every entry exactly once.
  std::uint64_t seen = first.journal.size(), from = first.next;
  while (from != 0) {
    auto page = g.c->journal(from, journal_limit_max);
    REQUIRE(page.ok());
    REQUIRE(!page.journal.empty());
    CHECK(page.journal.front().entry.seq == from);
    seen += page.journal.size();
    from = page.next;
  }
  CHECK(seen == 101);
}

TEST_CASE("journal requests and answers survive the codec", "[bulk][journal][codec]") {
  CHECK(std::string(to_string(opcode::journal)) == "journal");
  request q;
  q.op = opcode::journal;
  q.id = 9;
  q.from_seq = 12345;
  q.limit = 7;
  std::vector<char> buf;
  encode_request(buf, q);
  auto back = decode_request(buf.data() + 4, buf.size() - 4);
  CHECK(back.error == errc::ok);
  CHECK(back.from_seq == 12345);
  CHECK(back.limit == 7);
  q.from_seq = 0;  // absent: from the beginning
  q.limit = 0;
  buf.clear();
  encode_request(buf, q);
  back = decode_request(buf.data() + 4, buf.size() - 4);
  CHECK(back.error == errc::ok);
  CHECK(back.from_seq == 0);

  response r;
  r.op = opcode::journal;
  r.id = 9;
  journal_entry j;
  j.entry.seq = 41;
  j.entry.kind = "earn";
  j.entry.txn = std::string("\x00\x01", 2);
  j.entry.points = 12;
  j.member = 77;
  j.key_id = 3;
  j.policy_version = 2;
  j.moves = {{"brand_issued:shop", "debit", 12}, {"member:77", "credit", 12}};
  j.lines = {{"base", "", 12, 1200}};
  j.settlements = {{"brand:shop", "brand:web", 12, 6, "1/2", false}};
  r.journal = {j};
  r.next = 42;
  r.last_seq = 99;
  buf.clear();
  encode_response(buf, r);
  CHECK(journal_entry_bytes(j) < buf.size());
  response got;
  std::string error;
  REQUIRE(decode_response(buf.data() + 4, buf.size() - 4, got, error));
  REQUIRE(got.journal.size() == 1);
  const auto& e = got.journal[0];
  CHECK(e.entry.seq == 41);
  CHECK(e.entry.txn == std::string("\x00\x01", 2));
  CHECK(e.member == 77);
  CHECK(e.key_id == 3);
  CHECK(e.policy_version == 2);
  REQUIRE(e.moves.size() == 2);
  CHECK(e.moves[1].account == "member:77");
  REQUIRE(e.lines.size() == 1);
  CHECK(e.lines[0].amount == 1200);
  REQUIRE(e.settlements.size() == 1);
  CHECK(e.settlements[0].amount == 6);
  CHECK(got.next == 42);
  CHECK(got.last_seq == 99);
}

TEST_CASE("export journal writes every entry once as JSON lines and CSV with balanced moves", "[bulk][export]") {
  bulk_rig g;
  activity(g);
  const auto newest = g.last_seq();
  REQUIRE(newest == 7);  // two enrolls, earn, redeem, transfer, adjust, link_alias
  const auto jsonl = g.dir.path / "journal.jsonl";
  // Pages of 3: the export pages through the whole journal.
  REQUIRE(g.ctl("export journal --from 1 --format jsonl --limit 3 --out " + jsonl.string(), test::read_key) == 0);
  std::ifstream in(jsonl);
  std::string text;
  std::uint64_t expect = 1;
  std::map<std::uint64_t, std::vector<posting_row>> by_seq;
  while (std::getline(in, text)) {
    detail::json_value v;
    std::string error;
    INFO(text);
    REQUIRE(detail::json_parser::parse(text, v, error));
    std::uint64_t seq = 0;
    REQUIRE(v.find("seq")->to_u64(seq));
    CHECK(seq == expect++);
    // Every entry balances: debits == credits in points and in money.
    std::map<bool, std::int64_t> net;  // by unit (true = money)
    for (const auto& [account, side, amount] : moves_of(v)) {
      const bool money = account.rfind("brand_settlement:", 0) == 0 || account.rfind("partner_", 0) == 0;
      net[money] += side == "debit" ? amount : -amount;
    }
    CHECK(net[false] == 0);
    CHECK(net[true] == 0);
    by_seq[seq] = moves_of(v);
    if (v.find("txn")->text == "r-1") {
      CHECK(v.find("kind")->text == "redeem");
      CHECK(v.find("settlements")->items.size() == 1);
    }
  }
  CHECK(expect == newest + 1);

  // CSV: one row a posting (posting 0 for an entry without any), the same
  // postings as the JSON lines.
  const auto csv = g.dir.path / "journal.csv";
  REQUIRE(g.ctl("export journal --out " + csv.string(), test::admin_key) == 0);
  auto rows = read_csv(csv);
  REQUIRE(!rows.empty());
  const std::vector<std::string> header{"seq", "kind", "member", "counterparty", "brand", "partner", "txn",
                                        "occurred_at_us", "committed_at_us", "amount", "points", "balance_after",
                                        "ref_seq", "key_id", "policy_version", "posting", "account", "side",
                                        "posting_amount"};
  REQUIRE(rows[0] == header);
  std::map<std::uint64_t, std::vector<posting_row>> from_csv;
  for (std::size_t i = 1; i < rows.size(); ++i) {
    REQUIRE(rows[i].size() == header.size());
    auto& list = from_csv[std::stoull(rows[i][0])];
    if (rows[i][15] == "0")
      CHECK(rows[i][16].empty());
    else
      list.emplace_back(rows[i][16], rows[i][17], std::stoll(rows[i][18]));
  }
  CHECK(from_csv == by_seq);

  // --from in the middle starts there; --to stops there.
  const auto part = g.dir.path / "part.jsonl";
  REQUIRE(g.ctl("export journal --from 3 --to 5 --out " + part.string(), test::read_key) == 0);
  std::ifstream pin(part);
  std::vector<std::uint64_t> seqs;
  while (std::getline(pin, text)) {
    detail::json_value v;
    std::string error;
    REQUIRE(detail::json_parser::parse(text, v, error));
    std::uint64_t seq = 0;
    REQUIRE(v.find("seq")->to_u64(seq));
    seqs.push_back(seq);
  }
  CHECK(seqs == std::vector<std::uint64_t>{3, 4, 5});
  // A brand key may not export: the engine refuses, exit 1.
  CHECK(g.ctl("export journal --out " + (g.dir.path / "no.jsonl").string(), test::shop_key) == 1);
}

// Storage faults and backups (issue 6), each on a real LMDB directory:
//   - the LMDB map filling up: postings are refused with storage_full before
//     anything is written, reads and replays are still answered, and a
//     restart with a larger map goes on with nothing lost;
//   - the disk filling up (a tmpfs of a few MiB; where mounting is not
//     allowed, a file size limit on the process, which fails writes the
//     same way): the engine stops (fail-stop, exit 70), and once there is
//     space again a restart has every acknowledged transaction;
//   - a hot backup under load with `loyaltyctl backup`, restored as
//     docs/OPERATIONS.md says: verify passes and the restored ledger holds
//     exactly the entries up to the backup's seq.
#include "engine_process.hpp"
#include "key_lines.hpp"
#include "engine_rig.hpp"

#include <sys/mount.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <thread>

using namespace loyalty;
using namespace loyalty::io;
using loyalty::test::engine_process;
using loyalty::test::engine_process_options;
using loyalty::test::temp_dir;

namespace {

constexpr std::uint64_t t0 = 1'772'452'800'000'000ull;  // 2026-03-02T12:00:00Z

constexpr const char* program_toml = R"(
[program]
name = "storage"
currency = "EUR"

[[brands]]
id = 1
code = "shop"
earn_rate = { num = 1, den = 100 }

[[tiers]]
name = "member"
threshold = 0
multiplier = { num = 1, den = 1 }
)";

constexpr const char* retail = LOYALTY_SOURCE_DIR "/config/examples/retail.toml";

request earn_req(std::uint64_t member, std::int64_t amount, std::string txn, std::string brand,
                 std::uint64_t at_us) {
  request r;
  r.op = opcode::earn;
  r.member = member;
  r.brand = std::move(brand);
  r.amount = amount;
  r.currency = "EUR";
  r.occurred_at_us = at_us;
  r.txn = std::move(txn);
  return r;
}

std::uint64_t now_us() {
  return static_cast<std::uint64_t>(
    std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count());
}

// Sends `reqs` pipelined and returns the answers by txn id; stops at the
// first broken connection (answers so far returned, `broken` set).
std::map<std::string, response> pipeline(client& c, const std::vector<request>& reqs, bool& broken) {
  std::map<std::uint64_t, std::string> txn_of;
  std::map<std::string, response> out;
  broken = false;
  try {
    for (const auto& r : reqs)
      txn_of[c.send(r)] = r.txn;
    for (std::size_t i = 0; i < reqs.size(); ++i) {
      response r;
      std::string err;
      if (!c.receive(r, err, std::chrono::seconds(20))) {
        broken = true;
        break;
      }
      out[txn_of[r.id]] = r;
    }
  } catch (const std::exception&) {
    broken = true;
  }
  return out;
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), {}};
}

// The [[keys]] of a settings file: an admin key and a read key.
constexpr const char* admin_secret = "storage-admin-key-0123456789";
constexpr const char* read_secret = "storage-read-key-0123456789";
std::string admin_keys() { return test::key_lines(1, admin_secret, "admin") + test::key_lines(2, read_secret, "read"); }

// Runs the real binary `argv[0]` to its end, stdout and stderr into `out`;
// its wait status, or -1 (the process killed) if it is still running after
// `limit`.
int run_to_end(const std::vector<std::string>& argv, const std::filesystem::path& out,
               std::chrono::seconds limit = std::chrono::seconds(60)) {
  std::vector<char*> args;
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const std::string out_path = out.string();
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    execv(args[0], args.data());
    _exit(127);
  }
  const auto until = std::chrono::steady_clock::now() + limit;
  for (;;) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid)
      return status;
    if (std::chrono::steady_clock::now() >= until) {
      ::kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// The real loyaltyd on the retail program with the admin and read keys,
// its files in `dir`.
engine_process_options retail_engine(const std::filesystem::path& dir) {
  engine_process_options o;
  o.binary = LOYALTYD_BIN;
  o.dir = dir;
  o.program = retail;
  o.extra_settings = admin_keys();
  return o;
}

std::unique_ptr<client> connect_to(std::uint16_t port, const std::string& key = "") {
  std::string err;
  auto c = client::connect("127.0.0.1", port, err);
  INFO(err);
  REQUIRE(c);
  REQUIRE(c->hello("storage-test", key).ok());
  return c;
}

// A tmpfs of a fixed size mounted on a directory; unmounted at the end.
// mounted() is false where this process may not mount (no root, no
// CAP_SYS_ADMIN in a container).
class small_fs {
public:
  small_fs(const std::filesystem::path& at, std::uint64_t bytes) : at_(at) {
    std::filesystem::create_directories(at_);
    const std::string opts = "size=" + std::to_string(bytes);
    mounted_ = ::mount("tmpfs", at_.c_str(), "tmpfs", 0, opts.c_str()) == 0;
  }
  ~small_fs() {
    if (mounted_)
      ::umount2(at_.c_str(), MNT_DETACH);
  }
  [[nodiscard]] bool mounted() const { return mounted_; }
  // Gives the filesystem more room, keeping its files.
  bool grow(std::uint64_t bytes) {
    const std::string opts = "size=" + std::to_string(bytes);
    return ::mount("tmpfs", at_.c_str(), "tmpfs", MS_REMOUNT, opts.c_str()) == 0;
  }

private:
  std::filesystem::path at_;
  bool mounted_ = false;
};

} // namespace

TEST_CASE("a full LMDB map refuses postings with storage_full and a larger map goes on with nothing lost",
          "[storage]") {
  std::uint64_t map_bytes = 3u << 20;
  test::engine_rig rig("mapfull", program_toml, t0, [&](engine_options& o) {
    o.settings.map_bytes = map_bytes;
    // A reserve of 32 x 4 pages + 1024 x 128 bytes + 1 MiB, about 1.6 MiB.
    o.settings.batch_entries_max = 32;
    o.settings.checkpoint_accounts_max = 1024;
  });
  constexpr std::uint64_t members = 20;
  for (std::uint64_t m = 1; m <= members; ++m)
    REQUIRE(rig.c->enroll(m, "shop").ok());
  std::map<std::string, response> posted;  // txn -> its answer
  std::map<std::uint64_t, std::int64_t> expected;
  std::string refused_txn, refused_message;
  int n = 0;
  while (refused_txn.empty() && n < 200000) {
    std::vector<request> reqs;
    for (int i = 0; i < 200; ++i, ++n)
      reqs.push_back(earn_req(1 + static_cast<std::uint64_t>(n) % members, 1000 + n % 5000, "f-" + std::to_string(n),
                              "shop", t0));
    bool broken = false;
    auto answers = pipeline(*rig.c, reqs, broken);
    REQUIRE_FALSE(broken);
    for (const auto& r : reqs) {
      const auto& a = answers.at(r.txn);
      if (a.ok()) {
        posted[r.txn] = a;
        expected[r.member] += a.points;
      } else {
        INFO(to_string(a.code) << ": " << a.message);
        REQUIRE(a.code == errc::storage_full);
        if (refused_txn.empty()) {
          refused_txn = r.txn;
          refused_message = a.message;
        }
      }
    }
  }
  REQUIRE_FALSE(refused_txn.empty());
  CHECK(posted.size() > 500);
  CHECK(refused_message.find("map_gib") != std::string::npos);
  // Full: a new posting is refused, and so is an enrollment.
  CHECK(rig.c->earn("after-full", 1, "shop", 1000, "EUR", t0).code == errc::storage_full);
  CHECK(rig.c->enroll(999, "shop").code == errc::storage_full);
  // Reads, replays and verify are still served.
  for (std::uint64_t m = 1; m <= members; ++m) {
    auto b = rig.c->balance(m);
    REQUIRE(b.ok());
    CHECK(b.balance == expected[m]);
  }
  int replays = 0;
  for (int i = 0; i < 200 && replays < 20; i += 10) {
    const std::string txn = "f-" + std::to_string(i);
    auto it = posted.find(txn);
    if (it == posted.end())
      continue;
    auto r = rig.c->call(earn_req(1 + static_cast<std::uint64_t>(i) % members, 1000 + i % 5000, txn, "shop", t0));
    REQUIRE(r.ok());
    CHECK(r.replayed);
    CHECK(r.seq == it->second.seq);
    ++replays;
  }
  CHECK(replays > 0);
  rig.check_verify();
  auto st = rig.c->stats();
  std::map<std::string, std::uint64_t> stats(st.stats.begin(), st.stats.end());
  CHECK(stats["ledger_storage_full_refusals"] > 0);
  CHECK(stats["storage_used_bytes"] + stats["storage_reserve_bytes"] > stats["storage_map_bytes"]);
  CHECK(stats["errors_storage_full"] > 0);

  // The operator grows the map and restarts: everything acknowledged is
  // there, and postings go on.
  map_bytes = 64u << 20;
  rig.restart();
  for (std::uint64_t m = 1; m <= members; ++m)
    CHECK(rig.c->balance(m).balance == expected[m]);
  auto retry = rig.c->call(earn_req(1 + std::stoull(refused_txn.substr(2)) % members,
                                    1000 + static_cast<std::int64_t>(std::stoull(refused_txn.substr(2)) % 5000),
                                    refused_txn, "shop", t0));
  REQUIRE(retry.ok());
  CHECK_FALSE(retry.replayed);  // it was refused, not posted: now it is
  CHECK(rig.c->enroll(999, "shop").ok());
  rig.check_verify();
}

TEST_CASE("a full disk stops the engine (fail-stop) and a restart with space loses nothing acknowledged",
          "[storage]") {
  temp_dir tmp("diskfull");
  const auto data = tmp.path / "fs" / "data";
  small_fs fs(tmp.path / "fs", 6u << 20);
  engine_process_options o;
  o.binary = LOYALTYD_BIN;
  o.dir = tmp.path;
  o.data_dir = data;
  o.program = retail;
  o.map_gib = 1;  // far more than the filesystem holds: the disk fills first
  if (fs.mounted()) {
    std::cout << "storage_test: the disk is a 6 MiB tmpfs\n";
  } else {
    // Not allowed to mount here: a file size limit makes the data file's
    // writes fail past 6 MiB (EFBIG) as a full disk fails them (ENOSPC).
    std::cout << "storage_test: cannot mount a tmpfs here; the disk is a 6 MiB file size limit\n";
    o.file_size_limit = 6u << 20;
  }
  constexpr std::uint64_t members = 50;
  std::map<std::string, response> acked;
  std::vector<request> sent;
  const auto at = now_us();
  int status = -1;
  {
    engine_process eng(o);
    auto c = connect_to(eng.port());
    for (std::uint64_t m = 1; m <= members; ++m)
      REQUIRE(c->enroll(m, "acme").ok());
    bool broken = false;
    for (int round = 0; !broken && round < 1000; ++round) {
      std::vector<request> reqs;
      for (int i = 0; i < 500; ++i) {
        const int n = round * 500 + i;
        reqs.push_back(earn_req(1 + static_cast<std::uint64_t>(n) % members, 100 + n % 9000,
                                "d-" + std::to_string(n), "acme", at));
      }
      sent.insert(sent.end(), reqs.begin(), reqs.end());
      for (auto& [txn, r] : pipeline(*c, reqs, broken)) {
        INFO(txn << ": " << to_string(r.code) << " " << r.message);
        REQUIRE(r.ok());  // until the disk is full: then no answer at all
        acked[txn] = r;
      }
    }
    REQUIRE(broken);
    status = eng.wait_exit(std::chrono::seconds(30));
    const auto err = read_file(eng.stderr_file());
    INFO(err);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 70);
    CHECK(err.find("FATAL: ledger commit failed") != std::string::npos);
    CHECK(err.find("fail-stop") != std::string::npos);
    // What failed, where, and why: an operator reads the cause off the line.
    if (const auto at = err.find("loyaltyd: FATAL"); at != std::string::npos)
      std::cout << "storage_test: " << err.substr(at, err.find('\n', at) - at) << "\n";
    CHECK(err.find(" in data directory " + data.string() + ": ") != std::string::npos);
    if (fs.mounted())
      CHECK(err.find(data.string() + ": the disk is full (") != std::string::npos);
    else
      CHECK(err.find(data.string() + ": the data file reached this process's file size limit") != std::string::npos);
  }
  REQUIRE(acked.size() > 100);
  // Space again: a larger filesystem (or no limit), the same data.
  if (fs.mounted())
    REQUIRE(fs.grow(256u << 20));
  o.file_size_limit = 0;
  engine_process eng(o);
  auto c = connect_to(eng.port());
  std::map<std::uint64_t, std::int64_t> balance;
  std::size_t replayed = 0, fresh = 0;
  for (const auto& r : sent) {
    auto a = c->call(r);
    REQUIRE(a.ok());
    if (auto it = acked.find(r.txn); it != acked.end()) {
      CHECK(a.replayed);
      CHECK(a.seq == it->second.seq);
      ++replayed;
    } else {
      fresh += a.replayed ? 0 : 1;  // unanswered: posted now, or found posted
    }
    balance[r.member] += a.points;
  }
  CHECK(replayed == acked.size());
  for (std::uint64_t m = 1; m <= members; ++m)
    CHECK(c->balance(m).balance == balance[m]);  // every earn once
  auto v = c->verify();
  REQUIRE(v.ok());
  CHECK(v.verify.valid);
  CHECK(v.verify.txn_ids == sent.size());
}

TEST_CASE("loyaltyctl backup under load restores into a new directory that verifies and ends at its seq",
          "[storage][backup]") {
  temp_dir tmp("backup");
  const auto o = retail_engine(tmp.path);
  engine_process eng(o);
  constexpr std::uint64_t members = 30;
  {
    auto c = connect_to(eng.port(), admin_secret);
    for (std::uint64_t m = 1; m <= members; ++m)
      REQUIRE(c->enroll(m, "acme").ok());
  }
  // Load on one connection while loyaltyctl backs up on another.
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> newest{0};  // the highest seq the load got answered
  std::map<std::string, response> acked;
  std::map<std::string, std::uint64_t> member_of;
  std::thread load([&] {
    auto c = connect_to(eng.port(), admin_secret);
    const auto at = now_us();
    for (int round = 0; !stop.load() || round < 4; ++round) {
      std::vector<request> reqs;
      for (int i = 0; i < 200; ++i) {
        const int n = round * 200 + i;
        reqs.push_back(earn_req(1 + static_cast<std::uint64_t>(n) % members, 100 + n % 9000,
                                "b-" + std::to_string(n), "acme", at));
        member_of[reqs.back().txn] = reqs.back().member;
      }
      bool broken = false;
      for (auto& [txn, r] : pipeline(*c, reqs, broken)) {
        acked[txn] = r;
        newest.store(std::max(newest.load(), r.seq));
      }
      if (broken)
        return;
    }
  });
  for (int i = 0; i < 2000 && newest.load() == 0; ++i)  // the load is under way
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const auto backup_dir = tmp.path / "backup";
  const auto out = tmp.path / "backup.json";
  const std::string cmd = std::string(LOYALTYCTL_BIN) + " --port " + std::to_string(eng.port()) + " --key " +
                          admin_secret + " --json backup " + backup_dir.string() + " > " + out.string() + " 2>&1";
  const int rc = std::system(cmd.c_str());
  const auto answer = read_file(out);
  const auto at_seq = answer.find("\"seq\":");
  const std::uint64_t backup_seq = at_seq != std::string::npos ? std::stoull(answer.substr(at_seq + 6)) : 0;
  // The load goes on until it has entries past the backup (bounded wait).
  for (int i = 0; i < 2000 && newest.load() <= backup_seq; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  stop.store(true);
  load.join();
  INFO(answer);
  REQUIRE(WEXITSTATUS(rc) == 0);
  REQUIRE(at_seq != std::string::npos);
  for (const auto& [txn, r] : acked)
    REQUIRE(r.ok());
  // The backup caught the load in the middle: some entries before it, some after.
  std::size_t before = 0, after = 0;
  for (const auto& [txn, r] : acked)
    (r.seq <= backup_seq ? before : after)++;
  CHECK(before > 0);
  CHECK(after > 0);
  // A second backup into the same directory is refused: it never overwrites.
  {
    auto c = connect_to(eng.port(), admin_secret);
    auto again = c->backup(backup_dir.string());
    CHECK(again.code == errc::invalid_argument);
    CHECK(again.message.find("not empty") != std::string::npos);
    // And a key that is not admin may not back up at all.
    CHECK(connect_to(eng.port(), read_secret)->backup((tmp.path / "other").string()).code == errc::not_authorized);
    CHECK_FALSE(std::filesystem::exists(tmp.path / "other"));
  }

  // Restore, as docs/OPERATIONS.md says: the copy's data.mdb into a new
  // data directory; loyaltyd --verify; start the engine on it.
  const auto restored = tmp.path / "restored";
  std::filesystem::create_directories(restored / "data");
  std::filesystem::copy_file(backup_dir / "data.mdb", restored / "data" / "data.mdb");
  const std::string verify_cmd = std::string(LOYALTYD_BIN) + " --config " + (tmp.path / "loyaltyd.toml").string() +
                                 " --data-dir " + (restored / "data").string() + " --verify > " +
                                 (tmp.path / "verify.txt").string() + " 2>&1";
  const int vrc = std::system(verify_cmd.c_str());
  INFO(read_file(tmp.path / "verify.txt"));
  CHECK(WEXITSTATUS(vrc) == 0);
  engine_process_options ro = o;
  ro.dir = restored;
  engine_process back(ro);
  auto c = connect_to(back.port(), admin_secret);
  std::map<std::uint64_t, std::int64_t> expected;
  for (std::uint64_t m = 1; m <= members; ++m)
    expected[m] = 0;
  for (const auto& [txn, r] : acked) {
    request e;
    e.op = opcode::explain;
    e.txn = txn;
    auto x = c->call(e);
    if (r.seq <= backup_seq) {
      REQUIRE(x.ok());
      CHECK(x.seq == r.seq);
      expected[member_of[txn]] += r.points;
    } else {
      CHECK(x.code == errc::unknown_txn);
    }
  }
  for (std::uint64_t m = 1; m <= members; ++m)
    CHECK(c->balance(m).balance == expected[m]);
  CHECK(c->stats().stats.size() > 0);
  auto v = c->verify();
  REQUIRE(v.ok());
  CHECK(v.verify.valid);
  CHECK(v.verify.txn_ids == before);
}

TEST_CASE("a truncated, zeroed or garbage data file is reported by loyaltyd --verify and at start-up, never a crash",
          "[storage][backup]") {
  temp_dir tmp("damaged");
  const auto o = retail_engine(tmp.path);
  const auto backup_dir = tmp.path / "backup";
  {
    engine_process eng(o);
    auto c = connect_to(eng.port(), admin_secret);
    constexpr std::uint64_t members = 20;
    for (std::uint64_t m = 1; m <= members; ++m)
      REQUIRE(c->enroll(m, "acme").ok());
    std::vector<request> reqs;
    for (int n = 0; n < 3000; ++n)
      reqs.push_back(earn_req(1 + static_cast<std::uint64_t>(n) % members, 100 + n, "t-" + std::to_string(n), "acme",
                              now_us()));
    bool broken = false;
    REQUIRE(pipeline(*c, reqs, broken).size() == reqs.size());
    REQUIRE_FALSE(broken);
    auto b = c->backup(backup_dir.string());
    INFO(b.message);
    REQUIRE(b.ok());
  }
  const auto whole = backup_dir / "data.mdb";
  const auto bytes = std::filesystem::file_size(whole);
  REQUIRE(bytes > 64 * 4096);  // pages enough that half the file cuts through the ledger
  const std::string settings = (tmp.path / "loyaltyd.toml").string();
  auto run = [&](const std::filesystem::path& data, bool verify, const std::string& what) {
    std::vector<std::string> argv{LOYALTYD_BIN, "--config", settings, "--data-dir", data.string()};
    if (verify)
      argv.push_back("--verify");
    const auto out = tmp.path / (what + (verify ? "-verify.txt" : "-start.txt"));
    const int status = run_to_end(argv, out);
    return std::pair{status, read_file(out)};
  };
  {
    // On a copy: --verify opens the ledger as the engine does, which writes.
    const auto data = tmp.path / "whole" / "data";
    std::filesystem::create_directories(data);
    std::filesystem::copy_file(whole, data / "data.mdb");
    const auto [status, out] = run(data, true, "whole");
    INFO(out);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);  // the copy is whole: the damage below is the only fault
  }
  struct damage {
    std::string name, says;
    std::function<void(const std::filesystem::path&)> apply;
  };
  const std::vector<damage> damages{
    {"truncated", "is truncated: " + std::to_string(bytes / 2) + " bytes, the ledger needs at least " +
                    std::to_string(bytes),
     [&](const std::filesystem::path& f) { std::filesystem::resize_file(f, bytes / 2); }},
    {"zeroed", "is damaged or not a ledger data file",
     [&](const std::filesystem::path& f) { std::ofstream(f, std::ios::binary | std::ios::trunc) << std::string(bytes, '\0'); }},
    {"garbage", "is damaged or not a ledger data file",
     [&](const std::filesystem::path& f) {
       std::string junk(100, '\0');
       for (std::size_t i = 0; i < junk.size(); ++i)
         junk[i] = static_cast<char>(i * 131 + 7);
       std::ofstream(f, std::ios::binary | std::ios::trunc) << junk;
     }},
  };
  for (const auto& d : damages) {
    const auto data = tmp.path / d.name / "data";
    std::filesystem::create_directories(data);
    std::filesystem::copy_file(whole, data / "data.mdb");
    d.apply(data / "data.mdb");
    for (const bool verify : {true, false}) {
      const auto [status, out] = run(data, verify, d.name);
      INFO(d.name << (verify ? ", loyaltyd --verify: " : ", loyaltyd: ") << out);
      REQUIRE(status != -1);               // it ended by itself: no engine serving a damaged ledger
      REQUIRE_FALSE(WIFSIGNALED(status));  // a sentence, not a SIGBUS
      REQUIRE(WIFEXITED(status));
      CHECK(WEXITSTATUS(status) != 0);
      CHECK(out.find((data / "data.mdb").string() + " " + d.says) != std::string::npos);
      CHECK(out.find("restore it from a backup") != std::string::npos);
    }
  }
}

TEST_CASE("a backup killed with the engine leaves no data.mdb, and the next backup into that directory is whole",
          "[storage][backup]") {
  temp_dir tmp("backupkill");
  const auto o = retail_engine(tmp.path);
  const std::string settings = (tmp.path / "loyaltyd.toml").string();
  const auto data_file = tmp.path / "data" / "data.mdb";
  // loyaltyd --verify of a copy of `file` (--verify writes to what it opens).
  auto verify_copy = [&](const std::filesystem::path& file, const std::string& what) {
    const auto data = tmp.path / what / "data";
    std::filesystem::create_directories(data);
    std::filesystem::copy_file(file, data / "data.mdb");
    const auto out = tmp.path / (what + ".txt");
    const int status = run_to_end({LOYALTYD_BIN, "--config", settings, "--data-dir", data.string(), "--verify"}, out);
    INFO(what << ": " << read_file(out));
    REQUIRE(status != -1);
    REQUIRE_FALSE(WIFSIGNALED(status));
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  };
  constexpr std::uint64_t members = 100;
  std::uint64_t last_seq = 0;
  {
    engine_process eng(o);
    auto c = connect_to(eng.port(), admin_secret);
    for (std::uint64_t m = 1; m <= members; ++m)
      REQUIRE(c->enroll(m, "acme").ok());
    // A ledger large enough that its copy takes a while (tens of ms): the
    // kill lands in the middle of it.
    const auto at = now_us();
    for (int round = 0; std::filesystem::file_size(data_file) < (64u << 20); ++round) {
      REQUIRE(round < 1000);
      std::vector<request> reqs;
      for (int i = 0; i < 2000; ++i) {
        const int n = round * 2000 + i;
        reqs.push_back(earn_req(1 + static_cast<std::uint64_t>(n) % members, 100 + n % 9000,
                                "k-" + std::to_string(n), "acme", at));
      }
      bool broken = false;
      for (auto& [txn, r] : pipeline(*c, reqs, broken))
        last_seq = std::max(last_seq, r.seq);
      REQUIRE_FALSE(broken);
    }
    std::cout << "storage_test: backing up a data file of " << std::filesystem::file_size(data_file) << " bytes\n";
  }
  // Start a backup and kill -9 the engine as soon as the copy's file
  // appears. Should the copy finish before the kill lands (a stalled test
  // thread), its data.mdb must be whole, and the next attempt kills again.
  std::filesystem::path killed;  // the directory of a backup killed in the middle of its copy
  for (int attempt = 0; attempt < 5 && killed.empty(); ++attempt) {
    const auto dir = tmp.path / ("backup-" + std::to_string(attempt));
    {
      engine_process eng(o);
      auto b = connect_to(eng.port(), admin_secret);
      std::thread backup([&b, &dir] {
        try {
          (void)b->backup(dir.string());
        } catch (const std::exception&) {
          // the engine was killed under it: no answer
        }
      });
      std::error_code ec;
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      while (std::chrono::steady_clock::now() < until &&
             (!std::filesystem::exists(dir, ec) || std::filesystem::is_empty(dir, ec)))
        std::this_thread::yield();
      eng.kill9();
      backup.join();
    }
    REQUIRE(std::filesystem::exists(dir));
    if (std::filesystem::exists(dir / "data.mdb")) {
      // A data.mdb is only ever a whole copy.
      verify_copy(dir / "data.mdb", "finished-" + std::to_string(attempt));
      CHECK_FALSE(std::filesystem::exists(dir / "data.mdb.partial"));
    } else {
      killed = dir;
      std::cout << "storage_test: attempt " << attempt << " killed the engine in the middle of its backup\n";
    }
  }
  INFO("every backup finished before the kill landed");
  REQUIRE_FALSE(killed.empty());
  // Killed in the middle of the copy: what it wrote is not under the data
  // file's name, so a restore cannot take it for a backup.
  CHECK(std::filesystem::exists(killed / "data.mdb.partial"));

  // After a restart the same directory takes a new backup: the leftover is
  // not something to keep from being overwritten.
  engine_process eng(o);
  auto c = connect_to(eng.port(), admin_secret);
  auto b = c->backup(killed.string());
  INFO(b.message);
  REQUIRE(b.ok());
  CHECK(b.seq == last_seq);
  CHECK(b.file == (killed / "data.mdb").string());
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(killed))
    names.push_back(e.path().filename().string());
  CHECK(names == std::vector<std::string>{"data.mdb"});
  verify_copy(killed / "data.mdb", "restored");
}

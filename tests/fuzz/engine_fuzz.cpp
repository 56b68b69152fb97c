// libFuzzer target: requests from the fuzzer, over real loopback TCP, to a
// real engine in this process (LMDB in a temporary directory, CAF member
// actors, the Asio server, a manual clock), started once on the first input
// and kept for the whole run, so its ledger grows as the fuzzer goes and
// later inputs meet members, holds, purchases and aliases earlier ones made.
//
// Input: a byte stream of length-prefixed frames, as the server reads a
// connection (frames.hpp; the same format as frame_fuzz, so seeds made by
// the client encoder start the fuzzer on valid requests of every operation,
// which it then mutates). Each input gets a fresh connection with an admin
// hello; its frames are sent one at a time, each answer awaited (bounded)
// before the next. A frame the server must close the connection on (a bad
// length, an unreadable payload, an unsupported protocol version) ends the
// input's connection; the next input reconnects. The clock moves a minute
// per input, so holds and points expire and pending points mature as the
// fuzzer goes.
//
// Checked for every frame:
//  - exactly one answer, within answer_timeout (no hang, no silence, nothing
//    extra: a sentinel request after the input's last frame must be answered
//    next), with the request's id and op (as decode_request reads them here);
//    a batch answered ok has one result per operation;
//  - the server closes the connection exactly where it must;
//  - nothing refused posts: every journal entry committed while a request
//    was in flight carries the txn id of a request (or batch element)
//    answered ok, or is for a member an enroll answered ok enrolled (the
//    enroll and its welcome bonus), or is housekeeping (expiry,
//    release of an expired hold, tier review; no txn id), which a request
//    to a member may trigger whatever its answer;
//  - everything answered ok posted: the answer to a posting operation (or
//    batch element) that says ok names, by its seq, a journal entry of that
//    request -- committed while it was in flight, or before it for an
//    answer marked replayed.
// Checked after an input: the whole ledger verifies (every input that
// changed it while the ledger is small, as in the corpus replay; past
// that, each time the journal has grown by an eighth, so that a long run
// spends a bounded share of its time verifying).
#include "frames.hpp"
#include "seeds.hpp"

#include "../fuzz_program.hpp"
#include "../temp_dir.hpp"

#include "config/log.hpp"
#include "io/client/client.hpp"
#include "io/server/engine.hpp"
#include "ledger/records.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

using namespace loyalty;
using namespace loyalty::io;

namespace {

constexpr std::uint64_t t0 = 1'772'452'800'000'000ull;  // 2026-03-02T12:00:00Z, as in seeds.cpp
constexpr std::uint64_t minute_us = 60'000'000ull;
// Requests sent per input: enough for a session that enrolls, earns and
// spends; more only slows the fuzzer.
constexpr std::size_t frames_max = 64;
// A verify of the whole ledger or an expiry sweep of every member is the
// slowest answer; at the ledger sizes of a fuzz run it takes well under a
// second. Past this the engine is hung.
constexpr auto answer_timeout = std::chrono::seconds(20);
// The sentinel's id: no seed uses it and a mutation rarely makes it.
constexpr std::uint64_t sentinel_id = 0xF022'5E27'1E11'0000ull;
// Up to this many journal entries, every input that changes the ledger is
// followed by a verify (well under a millisecond each at that size).
constexpr std::uint64_t verify_each_input_entries_max = 20'000;

// The program of ops_fuzz_test (tests/fuzz_program.hpp).
using loyalty::test::program_toml;

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "engine_fuzz: %s: %s\n", what, detail.c_str());
  std::abort();
}

// The engine of the whole run. Its directory is removed at exit; the engine
// itself is never stopped: libFuzzer ends the process with exit(), which
// destroys statics that CAF made while serving before this one, and
// ~actor_system then corrupts the heap. The process's end reclaims it.
struct fuzz_engine {
  test::temp_dir dir{"engine-fuzz"};
  manual_clock clock{t0};
  engine* eng = nullptr;
  // The ledger as of the last verify: newest seq, checkpoints done.
  std::uint64_t verified_seq = 0;
  std::uint64_t verified_checkpoints = 0;

  fuzz_engine() {
    log_threshold() = log_level::error;  // refusals are the fuzzer's daily bread
    engine_options o;
    o.settings.listen_host = "127.0.0.1";
    o.settings.listen_port = 0;
    o.settings.data_dir = (dir.path / "data").string();
    o.settings.map_bytes = 1ull << 30;
    o.settings.sync = durability::nosync_unsafe;  // no fsync per request: nothing here survives a power cut
    o.settings.commit_window_us = 0;
    o.settings.actor_threads = 2;
    o.settings.expiry_sweep_interval_s = 0;
    // Few active members, so that passivation and reactivation run too.
    o.settings.active_members_max = 16;
    // Small checkpoints, so that they run within a short fuzz run.
    o.settings.checkpoint_accounts_max = 64;
    o.settings.checkpoint_chunk_accounts = 8;
    api_key k;
    k.id = 1;
    k.name = "fuzz-admin";
    k.sha256 = key_sha256(fuzz::admin_key);
    k.scope = key_scope::admin;
    o.settings.keys = {k};
    const auto program_file = dir.path / "program.toml";
    std::ofstream(program_file) << program_toml;
    o.settings.program_path = program_file.string();
    std::vector<config_error> errors;
    auto prog = load_program(o.settings.program_path, errors);
    if (!prog)
      fail("the program does not load", errors.empty() ? std::string() : errors.front().message);
    o.prog = std::move(*prog);
    o.clock = &clock;
    std::string err;
    eng = engine::start(std::move(o), err).release();
    if (eng == nullptr)
      fail("the engine does not start", err);
  }
};

fuzz_engine& the_engine() {
  static fuzz_engine e;
  return e;
}

std::unique_ptr<client> connect(fuzz_engine& fe) {
  std::string err;
  auto c = client::connect("127.0.0.1", fe.eng->port(), err);
  if (!c)
    fail("connect", err);
  if (!c->hello("engine-fuzz", fuzz::admin_key).ok())
    fail("hello", "the admin key is refused");
  return c;
}

std::string frame_of(const char* payload, std::size_t size) {
  std::string f(frame_header_bytes, '\0');
  write_be32(reinterpret_cast<unsigned char*>(f.data()), static_cast<std::uint32_t>(size));
  return f.append(payload, size);
}

// An answer within answer_timeout (the client reads on through libFuzzer's
// timer signals itself).
bool receive(client& c, response& r, std::string& err) { return c.receive(r, err, answer_timeout); }

// The id of the connection's subscription once one was answered ok: the
// events frames it streams from then on (op subscribe, that id) come
// between the answers and are not answers (docs/PROTOCOL.md, "subscribe").
std::optional<std::uint64_t> streaming;

bool stream_frame(const response& r) { return streaming && r.op == opcode::subscribe && r.id == *streaming && r.ok(); }

response answer(client& c, const char* what) {
  response r;
  std::string err;
  do {
    r = response{};
    if (!receive(c, r, err))
      fail(what, err);
  } while (stream_frame(r));
  return r;
}

// After an answer the server must close on: nothing more, then the end.
void expect_close(client& c) {
  response extra;
  std::string err;
  bool more = false;
  while ((more = receive(c, extra, err)) && stream_frame(extra))
    extra = response{};
  if (more)
    fail("an answer after the one the server closes on", "id " + std::to_string(extra.id));
  if (err != "the server closed the connection")
    fail("the server did not close the connection", err);
}

// What the requests answered ok may have posted.
struct allowed_postings {
  std::set<std::string> txns;
  std::set<std::uint64_t> enrolled;

  void add(const request& r) {
    if (!r.txn.empty())
      txns.insert(r.txn);
    if (r.op == opcode::enroll)
      enrolled.insert(r.member);
  }
};

bool housekeeping(const ledger::ledger::entry& e) {
  const auto kind = static_cast<ledger::entry_kind>(e.header.kind);
  return e.txn_id.empty() && (kind == ledger::entry_kind::expire || kind == ledger::entry_kind::release ||
                              kind == ledger::entry_kind::tier_review);
}

void check_postings(ledger::ledger& l, std::uint64_t before, std::uint64_t after, const allowed_postings& ok) {
  if (after < before)
    fail("the journal went back", std::to_string(before) + " -> " + std::to_string(after));
  for (std::uint64_t seq = before + 1; seq <= after; ++seq) {
    const auto e = l.read_entry(seq);
    if (!e)
      fail("a committed entry cannot be read", std::to_string(seq));
    if (housekeeping(*e))
      continue;
    // An enroll posts the enroll entry and the bonus of an enroll rule,
    // neither with a txn id.
    if (e->txn_id.empty() ? ok.enrolled.count(e->header.member_id) != 0 : ok.txns.count(e->txn_id) != 0)
      continue;
    fail("an entry no request answered ok asked for",
         "seq " + std::to_string(seq) + " kind " + std::to_string(e->header.kind) + " member " +
           std::to_string(e->header.member_id));
  }
}

// An answer ok to a posting request names the entry the request posted:
// committed in (before, after], or at or before `before` when replayed.
// Which operations post is the operation table's `posts`; an enroll's entry
// carries no txn id (it is the member's enroll entry, not its welcome
// bonus), and an expire posts what is due,
// maybe nothing.
void check_posted(ledger::ledger& l, std::uint64_t before, std::uint64_t after, const request& r,
                  const response& a) {
  if (!a.ok() || !info(r.op).posts || r.op == opcode::expire)
    return;
  // A link_alias of an alias that already names the member posts nothing:
  // replayed, seq 0 (docs/PROTOCOL.md, link_alias).
  if (r.op == opcode::link_alias && a.replayed && a.seq == 0)
    return;
  const std::string which = std::string(to_string(r.op)) + " id " + std::to_string(r.id) + " seq " +
                            std::to_string(a.seq) + (a.replayed ? " (replayed)" : "");
  const bool in_flight = a.seq > before && a.seq <= after;
  if (a.replayed ? a.seq == 0 || a.seq > before : !in_flight)
    fail("an answer ok whose seq is not an entry it posted", which + ", journal " + std::to_string(before) +
                                                                  " -> " + std::to_string(after));
  const auto e = l.read_entry(a.seq);
  if (!e)
    fail("an answer ok names an entry that cannot be read", which);
  const bool enrolled = e->header.member_id == r.member &&
                        e->header.kind == static_cast<std::uint16_t>(ledger::entry_kind::enroll);
  const bool its_own = r.op == opcode::enroll ? enrolled : e->txn_id == r.txn;
  if (!its_own)
    fail("an answer ok names another request's entry", which);
}

// Verifies the whole ledger when it changed since the last verify (see the
// head of the file for how often).
void verify_if_due(fuzz_engine& fe) {
  const auto& l = fe.eng->ledger();
  const std::uint64_t seq = l.last_seq();
  const std::uint64_t checkpoints = l.stats().checkpoints;
  if (seq == fe.verified_seq && checkpoints == fe.verified_checkpoints)
    return;
  if (seq > verify_each_input_entries_max && seq - fe.verified_seq < fe.verified_seq / 8)
    return;
  const auto rep = l.verify();
  if (!rep.ok) {
    std::string problems;
    for (const auto& p : rep.problems)
      problems += "\n  " + p;
    fail("the ledger does not verify", "at seq " + std::to_string(seq) + ":" + problems);
  }
  fe.verified_seq = seq;
  fe.verified_checkpoints = checkpoints;
}

// Sends one whole frame and checks its answer. Returns false when the
// server (rightly) closed the connection.
bool one_frame(fuzz_engine& fe, client& c, const char* payload, std::size_t size) {
  const request req = decode_request(payload, size);
  const std::uint64_t before = fe.eng->ledger().last_seq();
  const std::string f = frame_of(payload, size);
  c.send_raw(f.data(), f.size());
  const response a = answer(c, "no answer to a request");
  allowed_postings ok;
  if (req.error == errc::malformed_frame) {
    if (a.code != errc::malformed_frame)
      fail("an unreadable frame answered", std::string(to_string(a.code)));
    check_postings(fe.eng->ledger(), before, fe.eng->ledger().last_seq(), ok);
    expect_close(c);
    return false;
  }
  if (a.id != req.id || a.op != req.op)
    fail("an answer to another request", "id " + std::to_string(a.id) + " op " + to_string(a.op) +
                                            " for id " + std::to_string(req.id) + " op " + to_string(req.op));
  const std::uint64_t after = fe.eng->ledger().last_seq();
  if (a.ok()) {
    if (req.op == opcode::subscribe)
      streaming = req.id;
    ok.add(req);
    check_posted(fe.eng->ledger(), before, after, req, a);
    if (req.op == opcode::batch) {
      if (a.results.size() != req.ops.size())
        fail("a batch answered with another number of results", std::to_string(a.results.size()));
      for (std::size_t i = 0; i < req.ops.size(); ++i) {
        if (a.results[i].id != req.ops[i].id)
          fail("a batch result for another operation", std::to_string(i));
        if (a.results[i].ok())
          ok.add(req.ops[i]);
        check_posted(fe.eng->ledger(), before, after, req.ops[i], a.results[i]);
      }
    }
  }
  check_postings(fe.eng->ledger(), before, after, ok);
  const bool bad_version = req.op == opcode::hello && req.error == errc::ok &&
                           (req.version < limits::protocol_version_min || req.version > limits::protocol_version_max);
  if (bad_version) {
    if (a.code != errc::unsupported_version)
      fail("a hello of an unsupported version answered", std::string(to_string(a.code)));
    expect_close(c);
    return false;
  }
  return true;
}

// A frame length the server refuses: one error answer, then it closes.
void bad_length(client& c, const std::uint8_t* header) {
  c.send_raw(header, frame_header_bytes);
  const response a = answer(c, "no answer to a frame of a bad length");
  if (a.code != errc::frame_too_large)
    fail("a frame of a bad length answered", std::string(to_string(a.code)));
  expect_close(c);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz_engine& fe = the_engine();
  fe.clock.advance(minute_us);
  auto c = connect(fe);
  streaming.reset();
  bool open = true;
  std::size_t consumed = 0;
  const auto end = fuzz::for_each_frame(data, size, frames_max, [&](const char* p, std::size_t n) {
    consumed = static_cast<std::size_t>(p - reinterpret_cast<const char*>(data)) + n;
    if (open)
      open = one_frame(fe, *c, p, n);
  });
  if (open && end == fuzz::frames_end::bad_length) {
    bad_length(*c, data + consumed);
    open = false;
  }
  if (!open) {
    verify_if_due(fe);
    return 0;
  }
  // A partial frame at the end is not sent: the server would wait for the
  // rest, and that wait is not a hang. The sentinel shows that every frame
  // sent got one answer and no more.
  request s;
  s.op = opcode::stats;
  s.id = sentinel_id;
  std::vector<char> f;
  encode_request(f, s);
  c->send_raw(f.data(), f.size());
  const response a = answer(*c, "no answer to the sentinel");
  if (a.id != sentinel_id)
    fail("an extra answer", "id " + std::to_string(a.id) + " where the sentinel's was due");
  verify_if_due(fe);
  return 0;
}

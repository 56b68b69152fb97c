#include "seeds.hpp"

#include "io/wire/codec.hpp"
#include "io/wire/protocol.hpp"

#include <cstdint>

namespace loyalty::fuzz {

using io::opcode;
using io::request;

namespace {

// 2026-03-02T12:00:00Z: engine_fuzz's clock stands there.
constexpr std::uint64_t t0 = 1'772'452'800'000'000ull;

// Builds one stream of frames, one request at a time; ids count from 1.
class stream {
public:
  request& add(opcode op) {
    reqs_.emplace_back();
    reqs_.back().op = op;
    reqs_.back().id = reqs_.size();
    return reqs_.back();
  }
  request& member_op(opcode op, const char* txn, std::uint64_t member) {
    request& r = add(op);
    r.txn = txn;
    r.member = member;
    return r;
  }
  void enroll(std::uint64_t member, const char* brand) {
    request& r = add(opcode::enroll);
    r.member = member;
    r.brand = brand;
  }
  void earn(const char* txn, std::uint64_t member, const char* brand, std::int64_t amount) {
    request& r = member_op(opcode::earn, txn, member);
    r.brand = brand;
    r.amount = amount;
    r.currency = "EUR";
    r.occurred_at_us = t0 - 3'600'000'000ull;
  }
  // Appends raw bytes after the frames of the requests so far.
  void raw(std::string bytes) {
    flush();
    bytes_ += bytes;
  }
  std::string bytes() {
    flush();
    return bytes_;
  }

private:
  void flush() {
    std::vector<char> out;
    for (const auto& r : reqs_)
      io::encode_request(out, r);
    bytes_.append(out.data(), out.size());
    reqs_.clear();
  }
  std::vector<request> reqs_;
  std::string bytes_;
};

std::string frame(const std::string& payload) {
  unsigned char head[io::frame_header_bytes];
  io::write_be32(head, static_cast<std::uint32_t>(payload.size()));
  return std::string(reinterpret_cast<const char*>(head), sizeof head) + payload;
}

} // namespace

std::vector<std::pair<std::string, std::string>> seeds() {
  std::vector<std::pair<std::string, std::string>> out;
  auto keep = [&](const char* name, stream& s) { out.emplace_back(name, s.bytes()); };
  {
    stream s;
    request& h = s.add(opcode::hello);
    h.version = 1;
    h.client_name = "fuzz";
    h.key = admin_key;
    s.enroll(1, "shop");
    s.earn("e-1", 1, "shop", 12000);
    s.add(opcode::balance).member = 1;
    keep("hello-enroll-earn-balance", s);
  }
  {
    stream s;
    request& h = s.add(opcode::hello);
    h.version = 2;  // unsupported: the server answers and closes
    keep("hello-bad-version", s);
  }
  {
    stream s;
    s.enroll(2, "web");
    request& e = s.member_op(opcode::earn, "e-2", 2);
    e.brand = "web";
    e.amount = 9000;
    e.currency = "EUR";
    e.occurred_at_us = t0;
    e.channel = "web";
    e.store = "online";
    e.items = {{"toy-1", "toys", 2, 5000}, {"book-1", "books", 1, 4000}};
    s.member_op(opcode::redeem, "r-2", 2).points = 30;
    request& h = s.add(opcode::history);
    h.member = 2;
    h.limit = 5;
    keep("enroll-earn-items-redeem-history", s);
  }
  {
    stream s;
    request& b = s.add(opcode::batch);
    request e;
    e.op = opcode::enroll;
    e.id = 11;
    e.member = 3;
    e.brand = "shop";
    b.ops.push_back(e);
    request earn = e;
    earn.op = opcode::earn;
    earn.id = 12;
    earn.txn = "b-e-3";
    earn.amount = 5000;
    earn.currency = "EUR";
    earn.occurred_at_us = t0;
    b.ops.push_back(earn);
    request redeem;
    redeem.op = opcode::redeem;
    redeem.id = 13;
    redeem.member = 3;
    redeem.txn = "b-r-3";
    redeem.points = 10;
    b.ops.push_back(redeem);
    keep("batch-enroll-earn-redeem", s);
  }
  {
    stream s;
    s.enroll(4, "shop");
    s.earn("e-4", 4, "shop", 30000);
    request& h = s.member_op(opcode::hold, "h-4", 4);
    h.points = 50;
    h.ttl_s = 60;
    request& c = s.member_op(opcode::capture, "c-4", 4);
    c.hold = 1;
    c.points = 20;
    s.member_op(opcode::release, "l-4", 4).hold = 1;
    keep("hold-capture-release", s);
  }
  {
    stream s;
    s.enroll(5, "web");
    request& ev = s.member_op(opcode::event, "v-5", 5);
    ev.event = "survey";
    s.earn("e-5", 5, "web", 20000);
    s.member_op(opcode::redeem_reward, "w-5", 5).reward = "ticket";
    s.member_op(opcode::reverse_redemption, "x-5", 5).ref = "w-5";
    request& rf = s.member_op(opcode::refund, "f-5", 5);
    rf.ref = "e-5";
    rf.amount = 500;
    keep("event-reward-reverse-refund", s);
  }
  {
    stream s;
    s.enroll(6, "shop");
    request& a = s.member_op(opcode::adjust, "a-6", 6);
    a.points = 200;
    a.reason = "goodwill";
    a.brand = "shop";
    s.member_op(opcode::transfer, "t-6", 6).points = 50;
    s.enroll(7, "shop");
    request& t = s.member_op(opcode::transfer, "t-6b", 6);
    t.to = 7;
    t.points = 40;
    s.member_op(opcode::link_alias, "k-6", 6).alias = "card-6";
    s.add(opcode::lookup).alias = "card-6";
    request& bal = s.add(opcode::balance);
    bal.alias = "card-6";
    s.add(opcode::explain).txn = "a-6";
    keep("adjust-transfer-alias-explain", s);
  }
  {
    stream s;
    s.enroll(8, "web");
    request& pe = s.member_op(opcode::partner_earn, "pe-8", 8);
    pe.partner = "air";
    pe.points = 300;
    pe.amount = 4500;
    request& pb = s.member_op(opcode::partner_burn, "pb-8", 8);
    pb.partner = "air";
    pb.points = 100;
    s.add(opcode::liability);
    request& ac = s.add(opcode::activity);
    ac.brand = "web";
    request& st = s.add(opcode::settlement);
    st.partner = "air";
    st.limit = 10;
    request& kp = s.add(opcode::report);
    kp.active_days = 30;
    kp.top = 5;
    keep("partner-earn-burn-reports", s);
  }
  {
    stream s;
    request& x = s.add(opcode::expire);
    x.member = 1;
    x.as_of_us = t0 + 400ull * 86'400'000'000ull;
    s.add(opcode::expire);  // every member
    s.add(opcode::stats);
    s.add(opcode::verify);
    s.add(opcode::reload);
    keep("expire-stats-verify-reload", s);
  }
  // Broken input: each is answered with an error; the first three close
  // the connection.
  {
    stream s;
    s.raw(frame("\xc1"));  // never used in msgpack
    keep("bad-msgpack", s);
  }
  {
    stream s;
    s.raw(std::string("\0\0\0\0", 4));
    keep("bad-length-zero", s);
  }
  {
    stream s;
    s.raw(std::string("\x00\x10\x00\x01", 4));  // 1 MiB + 1
    keep("bad-length-over-limit", s);
  }
  {
    stream s;
    s.raw(frame("\x81\xa2id\x01"));  // a map without op
    s.raw(frame("\x92\x01\x02"));    // an array
    s.raw(frame("\x82\xa2id\x02\xa2op\xa4" "earz"));
    s.raw(frame("\x83\xa2id\x03\xa2op\xa4" "earn\xa6member\xd0\xff"));
    s.raw(frame("\x82\xa2id\x04\xa2op\xa5" "batch"));
    keep("refused-requests", s);
  }
  {
    stream s;
    s.enroll(9, "shop");
    s.raw(frame("\x82\xa2id\x05\xa2op\xa5stats").substr(0, 7));  // ends mid-frame
    keep("partial-frame", s);
  }
  return out;
}

} // namespace loyalty::fuzz

// loyaltyctl: a small integrator / admin command line over the wire protocol.
#include "io/client.hpp"

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>

using namespace loyalty;
using namespace loyalty::io;

namespace {

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\')
      out += '\\', out += c;
    else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else
      out += c;
  }
  return out;
}

void print_json(const response& r, std::ostream& os) {
  os << "{\"id\":" << r.id << ",\"op\":\"" << to_string(r.op) << "\",\"ok\":" << (r.ok() ? "true" : "false");
  if (!r.ok()) {
    os << ",\"error\":\"" << to_string(r.code) << "\",\"code\":" << static_cast<int>(r.code) << ",\"message\":\""
       << json_escape(r.message) << "\"}";
    return;
  }
  switch (r.op) {
    case opcode::hello:
      os << ",\"version\":" << r.version << ",\"server\":\"" << json_escape(r.server) << "\"";
      break;
    case opcode::enroll: os << ",\"seq\":" << r.seq << ",\"member\":" << r.member; break;
    case opcode::earn:
    case opcode::redeem:
      os << ",\"seq\":" << r.seq << ",\"member\":" << r.member << ",\"points\":" << r.points << ",\"balance\":"
         << r.balance << ",\"lifetime\":" << r.lifetime << ",\"tier\":\"" << json_escape(r.tier)
         << "\",\"replayed\":" << (r.replayed ? "true" : "false");
      break;
    case opcode::balance:
      os << ",\"member\":" << r.member << ",\"brand\":\"" << json_escape(r.brand) << "\",\"balance\":" << r.balance
         << ",\"lifetime\":" << r.lifetime << ",\"tier\":\"" << json_escape(r.tier) << "\"";
      break;
    case opcode::verify: {
      os << ",\"valid\":" << (r.verify.valid ? "true" : "false") << ",\"entries\":" << r.verify.entries
         << ",\"postings\":" << r.verify.postings << ",\"accounts\":" << r.verify.accounts << ",\"members\":"
         << r.verify.members << ",\"txn_ids\":" << r.verify.txn_ids << ",\"problems\":[";
      for (std::size_t i = 0; i < r.verify.problems.size(); ++i)
        os << (i ? "," : "") << "\"" << json_escape(r.verify.problems[i]) << "\"";
      os << "]";
      break;
    }
    case opcode::stats: {
      os << ",\"stats\":{";
      for (std::size_t i = 0; i < r.stats.size(); ++i)
        os << (i ? "," : "") << "\"" << json_escape(r.stats[i].first) << "\":" << r.stats[i].second;
      os << "}";
      break;
    }
    default: break;
  }
  os << "}";
}

void print_text(const response& r) {
  if (!r.ok()) {
    std::cerr << "loyaltyctl: " << to_string(r.code) << ": " << r.message << "\n";
    return;
  }
  switch (r.op) {
    case opcode::hello: std::cout << r.server << " (protocol " << r.version << ")\n"; break;
    case opcode::enroll: std::cout << "enrolled member " << r.member << " (seq " << r.seq << ")\n"; break;
    case opcode::earn:
    case opcode::redeem:
      std::cout << (r.op == opcode::earn ? "earned " : "redeemed ") << r.points << " points"
                << (r.replayed ? " (replay of an earlier request: nothing posted now)" : "") << "; member "
                << r.member << " balance " << r.balance << ", lifetime " << r.lifetime << ", tier " << r.tier
                << " (seq " << r.seq << ")\n";
      break;
    case opcode::balance:
      std::cout << "member " << r.member << " (" << r.brand << "): balance " << r.balance << ", lifetime "
                << r.lifetime << ", tier " << r.tier << "\n";
      break;
    case opcode::verify:
      std::cout << (r.verify.valid ? "valid" : "INVALID") << ": " << r.verify.entries << " entries, "
                << r.verify.postings << " postings, " << r.verify.accounts << " accounts, " << r.verify.members
                << " members, " << r.verify.txn_ids << " txn ids\n";
      for (auto& p : r.verify.problems)
        std::cout << "problem: " << p << "\n";
      break;
    case opcode::stats:
      for (auto& [k, v] : r.stats)
        std::cout << k << " " << v << "\n";
      break;
    default: break;
  }
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"loyaltyctl: talk to a running loyaltyd over its wire protocol (docs/PROTOCOL.md).\n"
               "Exit status: 0 success, 1 the engine answered with an error (or verify found problems),\n"
               "2 connection or protocol failure."};
  std::string host = "127.0.0.1";
  int port = 7411;
  bool json = false;
  app.add_option("--host", host, "engine address")->capture_default_str();
  app.add_option("--port", port, "engine port")->capture_default_str()->check(CLI::Range(1, 65535));
  app.add_flag("--json", json, "print the response as JSON");
  app.require_subcommand(1);

  request req;
  auto* hello = app.add_subcommand("hello", "check the connection and the protocol version");
  auto* enroll = app.add_subcommand("enroll", "enroll a member at a brand");
  enroll->add_option("member", req.member, "member id (1..2^56-1)")->required();
  enroll->add_option("brand", req.brand, "brand code from the program")->required();
  auto* earn = app.add_subcommand("earn", "post a purchase: the member earns points");
  earn->add_option("--txn", req.txn, "client transaction id (retries with the same id are safe)")->required();
  earn->add_option("--member", req.member, "member id")->required();
  earn->add_option("--brand", req.brand, "brand code")->required();
  earn->add_option("--amount", req.amount, "purchase amount in minor currency units (cents)")->required();
  req.currency = "EUR";
  earn->add_option("--currency", req.currency, "ISO 4217 currency code")->capture_default_str();
  earn->add_option("--occurred-at", req.occurred_at_us, "time of the purchase, microseconds since the epoch (default: now)");
  auto* redeem = app.add_subcommand("redeem", "spend points");
  redeem->add_option("--txn", req.txn, "client transaction id")->required();
  redeem->add_option("--member", req.member, "member id")->required();
  redeem->add_option("--points", req.points, "points to spend")->required();
  auto* balance = app.add_subcommand("balance", "show a member's points and tier");
  balance->add_option("member", req.member, "member id")->required();
  auto* verify = app.add_subcommand("verify", "check every ledger invariant (exit 0 if valid, 1 if not)");
  auto* stats = app.add_subcommand("stats", "show the engine's counters");
  CLI11_PARSE(app, argc, argv);

  if (*hello) req.op = opcode::hello;
  if (*enroll) req.op = opcode::enroll;
  if (*earn) {
    req.op = opcode::earn;
    if (req.occurred_at_us == 0)
      req.occurred_at_us = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                                        std::chrono::system_clock::now().time_since_epoch())
                                                        .count());
  }
  if (*redeem) req.op = opcode::redeem;
  if (*balance) req.op = opcode::balance;
  if (*verify) req.op = opcode::verify;
  if (*stats) req.op = opcode::stats;

  std::string error;
  auto c = client::connect(host, static_cast<std::uint16_t>(port), error);
  if (!c) {
    std::cerr << "loyaltyctl: " << error << "\n";
    return 2;
  }
  try {
    auto h = c->hello("loyaltyctl");
    if (!h.ok()) {
      std::cerr << "loyaltyctl: hello refused: " << to_string(h.code) << ": " << h.message << "\n";
      return 2;
    }
    response r = req.op == opcode::hello ? h : c->call(req);
    if (json) {
      print_json(r, std::cout);
      std::cout << "\n";
    } else {
      print_text(r);
    }
    if (!r.ok())
      return 1;
    if (r.op == opcode::verify && !r.verify.valid)
      return 1;
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "loyaltyctl: " << e.what() << "\n";
    return 2;
  }
}

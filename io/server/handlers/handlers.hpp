// The handlers of the operations that are not member operations: coalition
// reports, the event stream and journal pages, the engine's admin
// operations, and the member reads the server answers from the ledger
// (docs/ARCHITECTURE.md, "io/server"). A handler is a function of the
// server's state and a request to a response: it never touches a
// connection. The session owns transport, authentication, admission,
// routing to member actors and outcomes, and runs what a handler hands it:
// an answer now, or a job for a slot off the io thread.
//
// Thread affinity: handlers run on the io thread of the requesting
// connection; a job's work runs on a thread of its own and must only read
// what it captured and the server's thread-safe dependencies.
#pragma once

#include "io/server/server_state.hpp"
#include "io/wire/protocol.hpp"
#include "ledger/ledger.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace loyalty::io::handlers {

// Who sent a request: what the connection's hello established.
struct caller {
  const api_key* key = nullptr;  // null: the engine has no keys configured
  std::uint32_t scope_brand = 0;  // a brand key's brand id, else 0
  // A partner key's partner id now; partner_none for other keys,
  // partner_gone when its partner left the program (it matches no partner).
  std::uint32_t scope_partner = 0;
  static constexpr std::uint32_t partner_none = 0, partner_gone = UINT32_MAX;

  [[nodiscard]] std::uint32_t key_id() const noexcept { return key != nullptr ? key->id : 0; }
  // A sandbox key (api_key::dry_run): it changes nothing in the engine.
  [[nodiscard]] bool sandbox() const noexcept { return key != nullptr && key->dry_run; }
};

// A handler's answer: `now`, or `work` run in `slot` off the io thread
// (answered `busy` with busy_message while the slot's previous job runs).
// The session sets op and id, and counts an error answer.
struct handled {
  response now;
  job_slot slot = job_slot::verify;
  const char* busy_message = "";
  std::function<response(server::impl&)> work;  // empty: answer `now`

  static handled answer(response r) {
    handled h;
    h.now = std::move(r);
    return h;
  }
  static handled error(errc code, std::string message = {}) {
    response r;
    r.code = code;
    r.message = std::move(message);
    return answer(std::move(r));
  }
  static handled job(job_slot s, const char* busy, std::function<response(server::impl&)> w) {
    handled h;
    h.slot = s;
    h.busy_message = busy;
    h.work = std::move(w);
    return h;
  }
};

// An error response (the session fills op, id and a default message).
[[nodiscard]] response refusal(errc code, std::string message = {});
// not_authorized, logged with the key's id and name (never the key).
[[nodiscard]] response deny(const caller& who, opcode op, std::string why = {});

// -- reports (reports.cpp): liability now; activity, settlement, report as jobs
[[nodiscard]] handled liability(server::impl& srv, const caller& who, const request& req);
[[nodiscard]] handled activity(server::impl& srv, const caller& who, const request& req);
[[nodiscard]] handled settlement(server::impl& srv, const caller& who, const request& req);
[[nodiscard]] handled report(server::impl& srv, const caller& who, const request& req);
// Flagged and blocked members (issue 19 item 2), answered at once: one page
// of the ledger's risk table, never a member's journal.
[[nodiscard]] handled risk_report(server::impl& srv, const caller& who, const request& req);

// -- admin (admin.cpp): stats now; verify, backup, the sweep, reload as jobs
[[nodiscard]] handled stats(server::impl& srv, const caller& who, const request& req);
// This node's view of the cluster (any node, leader or not; a single node
// answers role "single").
handled cluster_status(server::impl& srv, const caller& who, const request& req);
// A membership change on the leader (admin keys): a job, since the node
// added must catch up first.
handled cluster_change(server::impl& srv, const caller& who, const request& req);
[[nodiscard]] handled verify(server::impl& srv, const caller& who, const request& req);
[[nodiscard]] handled backup(server::impl& srv, const caller& who, const request& req);
// `expire` without a member: a pass of the expiry sweeper over every member.
[[nodiscard]] handled sweep(server::impl& srv, const caller& who, const request& req);
[[nodiscard]] handled reload(server::impl& srv, const caller& who, const request& req);

// -- member reads (reads.cpp), on the io thread; `member` is resolved from
// the request's member or alias. Each reads one member's or one entry's
// past in one read transaction.
[[nodiscard]] response lookup(server::impl& srv, const caller& who, const request& req, std::uint64_t member);
[[nodiscard]] response history(server::impl& srv, const caller& who, const request& req, std::uint64_t member);
[[nodiscard]] response explain(server::impl& srv, const caller& who, const request& req);

// -- the journal as pages and as a stream (stream.cpp)
// `journal`: a page of every member's entries in seq order (at most
// journal_limit_max, cut at journal_page_bytes_max).
[[nodiscard]] handled journal(server::impl& srv, const caller& who, const request& req);

// What a subscription streams (docs/PROTOCOL.md, "subscribe").
struct stream_filter {
  std::uint64_t from = 0;      // the first seq to stream
  std::uint32_t types = event_types_all;
  std::uint32_t consent = 0;  // 0: any member
  std::uint32_t brand = 0;    // 0: every brand
};
// The subscription a `subscribe` asks for, or a refusal in `refused`.
[[nodiscard]] std::optional<stream_filter> subscription(server::impl& srv, const caller& who, const request& req,
                                                        response& refused);
// The events of `entries` that pass `filter`, appended to `out`: each
// entry's own event, then tier_changed when the member's tier moved.
void events_of(const program& prog, const stream_filter& filter,
               const std::vector<ledger::ledger::stream_entry>& entries, std::vector<stream_event>& out);

} // namespace loyalty::io::handlers

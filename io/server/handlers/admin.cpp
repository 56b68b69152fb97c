// The engine's admin operations (docs/PROTOCOL.md: stats, verify, backup,
// expire of every member, reload). All but stats run as jobs off the io
// thread, each in its own slot.
#include "io/server/handlers/handlers.hpp"

#include "actors/sweeper.hpp"
#include "config/log.hpp"

namespace loyalty::io::handlers {

namespace {
// The admin operations that change the engine or write on its host have
// nothing to evaluate against a member's state: a sandbox key, which must
// change nothing, is refused them (docs/PROTOCOL.md, "Sandbox keys").
handled refused_to_sandbox(const caller& who, opcode op) {
  return handled::answer(deny(who, op, "a dry_run (sandbox) key cannot call " + std::string(to_string(op))));
}
} // namespace

handled stats(server::impl& srv, const caller&, const request&) {
  response r;
  r.stats = srv.stats();
  return handled::answer(std::move(r));
}

handled cluster_status(server::impl& srv, const caller&, const request&) {
  response r;
  if (srv.deps.cluster_status) {
    srv.deps.cluster_status(r);
  } else {
    r.role = "single";
    const auto d = srv.deps.ledger->journal_digest();
    r.stats = {{"journal_seq", d.seq}, {"journal_digest", d.digest}};
  }
  return handled::answer(std::move(r));
}

handled cluster_change(server::impl& srv, const caller& who, const request& req) {
  if (who.sandbox())
    return refused_to_sandbox(who, req.op);
  if (!srv.deps.cluster_change)
    return handled::error(errc::invalid_argument, "this engine is a single node, not a cluster: it has no membership");
  log(log_level::info, "key %u: %s of node %llu", who.key_id(), std::string(to_string(req.op)).c_str(),
      static_cast<unsigned long long>(req.node_id));
  return handled::job(job_slot::cluster, "another membership change is running", [req](server::impl& s) {
    return s.deps.cluster_change(req);
  });
}

// Its own read transaction: the engine keeps serving.
handled verify(server::impl&, const caller&, const request&) {
  return handled::job(job_slot::verify, "a verify is already running", [](server::impl& s) {
    auto rep = s.deps.ledger->verify();
    response r;
    r.verify.valid = rep.ok;
    r.verify.entries = rep.entries;
    r.verify.postings = rep.postings;
    r.verify.accounts = rep.accounts;
    r.verify.members = rep.members;
    r.verify.txn_ids = rep.txn_ids;
    r.verify.problems = std::move(rep.problems);
    return r;
  });
}

// A hot backup into a directory of the engine's host (admin keys only):
// LMDB's compacting copy in one read transaction; the writer keeps
// committing meanwhile.
handled backup(server::impl&, const caller& who, const request& req) {
  if (who.sandbox())
    return refused_to_sandbox(who, req.op);
  log(log_level::info, "key %u: backup into %s", who.key_id(), req.path.c_str());
  return handled::job(job_slot::backup, "a backup is already running", [path = req.path](server::impl& s) {
    response r;
    std::string error;
    auto b = s.deps.ledger->backup(path, error);
    if (!b) {
      log(log_level::error, "backup into %s failed: %s", path.c_str(), error.c_str());
      return refusal(errc::invalid_argument, std::move(error));
    }
    r.seq = b->seq;
    r.file = b->file;
    r.bytes = b->bytes;
    log(log_level::info, "backup: %s holds the journal up to seq %llu, %llu bytes, in %llu ms", b->file.c_str(),
        static_cast<unsigned long long>(b->seq), static_cast<unsigned long long>(b->bytes),
        static_cast<unsigned long long>(b->micros / 1000));
    return r;
  });
}

// A pass of the expiry sweeper over every member, answered when done.
handled sweep(server::impl& srv, const caller& who, const request& req) {
  if (who.sandbox())
    return refused_to_sandbox(who, req.op);
  if (srv.deps.sweeper == nullptr)
    return handled::error(errc::unavailable, "this engine has no expiry sweeper");
  const std::uint64_t now = srv.deps.clock->now_us();
  if (req.as_of_us > now)
    return handled::error(errc::invalid_argument, "as_of_us is in the future");
  const std::uint64_t as_of = req.as_of_us != 0 ? req.as_of_us : now;
  return handled::job(job_slot::sweep, "an expiry sweep is already running", [as_of](server::impl& s) {
    // busy here: the engine's periodic sweep is running
    auto res = s.deps.sweeper->run(as_of, 0, s.stopped);
    response r;
    r.code = res.code;
    r.members = res.members;
    r.expired = res.expired;
    return r;
  });
}

// The program file is validated and, if it holds, becomes the next
// version. A job: it waits for the ledger writer.
handled reload(server::impl& srv, const caller& who, const request& req) {
  if (who.sandbox())
    return refused_to_sandbox(who, req.op);
  if (!srv.deps.reload)
    return handled::error(errc::unavailable, "this engine cannot reload its program");
  log(log_level::info, "key %u: program reload requested", who.key_id());
  return handled::job(job_slot::reload, "a reload is already running", [](server::impl& s) {
    response r;
    std::string error;
    errc code = errc::invalid_program;
    r.policy_version = s.deps.reload(error, code);
    if (r.policy_version == 0) {
      auto refused = refusal(code, std::move(error));
      if (code == errc::not_leader && s.deps.leads)
        (void)s.deps.leads(refused.leader);  // the node lost its leadership meanwhile: who leads now
      return refused;
    }
    return r;
  });
}

} // namespace loyalty::io::handlers

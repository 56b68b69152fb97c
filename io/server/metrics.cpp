#include "io/server/metrics.hpp"

#include "config/log.hpp"
#include "config/thread_name.hpp"
#include "io/server/metrics_text.hpp"
#include "io/server/process.hpp"
#include "io/wire/protocol.hpp"

#include <asio.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <fstream>
#include <optional>
#include <span>
#include <thread>
#include <vector>

namespace loyalty::io {

// -- text ------------------------------------------------------------------------------
namespace detail {

namespace {

// RFC 9110 token characters: what a method may be made of.
bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
    return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// Visible ASCII only: no spaces, no controls, nothing past 0x7e.
bool visible(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f)
      return false;
  }
  return true;
}

std::string_view without_cr(std::string_view line) {
  if (!line.empty() && line.back() == '\r')
    line.remove_suffix(1);
  return line;
}

// The path of a request target in origin form (/metrics?x) or absolute
// form (http://host:port/metrics); empty for anything else.
std::string_view path_of(std::string_view target) {
  for (std::string_view scheme : {"http://", "https://"})
    if (target.substr(0, scheme.size()) == scheme) {
      target.remove_prefix(scheme.size());
      const auto slash = target.find('/');
      target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
      break;
    }
  if (target.empty() || target.front() != '/')
    return {};
  return target.substr(0, target.find_first_of("?#"));
}

} // namespace

http_parse parse_http_request(std::string_view in, std::size_t bytes_max, http_request& out) {
  const auto incomplete = [&] { return in.size() >= bytes_max ? http_parse::too_large : http_parse::incomplete; };
  const auto eol = in.find('\n');
  if (eol == std::string_view::npos)
    return incomplete();
  // request-line = method SP request-target SP HTTP-version (RFC 9112 3)
  const auto line = without_cr(in.substr(0, eol));
  const auto sp1 = line.find(' ');
  const auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
    return http_parse::bad_request;
  const auto method = line.substr(0, sp1);
  const auto target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const auto version = line.substr(sp2 + 1);
  if (method.empty() || !std::all_of(method.begin(), method.end(), is_tchar))
    return http_parse::bad_request;
  if (target.empty() || !visible(target) || path_of(target).empty())
    return http_parse::bad_request;
  if (version != "HTTP/1.1" && version != "HTTP/1.0")
    return http_parse::bad_request;
  // field-line = field-name ":" OWS field-value OWS, up to an empty line.
  for (std::size_t pos = eol + 1;;) {
    const auto end = in.find('\n', pos);
    if (end == std::string_view::npos)
      return incomplete();
    const auto field = without_cr(in.substr(pos, end - pos));
    if (field.empty())
      break;
    const auto colon = field.find(':');
    if (colon == 0 || colon == std::string_view::npos || field.front() == ' ' || field.front() == '\t')
      return http_parse::bad_request;  // no name, or obsolete line folding
    pos = end + 1;
  }
  out.method = method;
  out.path = path_of(target);
  return http_parse::complete;
}

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string escape_help(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string format_value(std::uint64_t v) { return std::to_string(v); }

std::string format_value(double v) {
  if (std::isnan(v))
    return "NaN";
  if (std::isinf(v))
    return v > 0 ? "+Inf" : "-Inf";
  // Plain decimals (0.0001, not 1e-04) where they stay short: bucket
  // bounds and sums read as people write them; the shortest form that
  // reads back to the same double either way.
  const double mag = std::fabs(v);
  const auto fmt = mag == 0 || (mag >= 1e-6 && mag < 1e15) ? std::chars_format::fixed : std::chars_format::general;
  char buf[128];
  const auto res = std::to_chars(buf, buf + sizeof buf, v, fmt);
  return std::string(buf, res.ptr);
}

} // namespace detail


namespace {

// Builds the exposition text: a family's # HELP and # TYPE, then its samples.
class exposition {
public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += detail::escape_help(help);
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  void sample(std::string_view name, const std::string& labels, const std::string& value) {
    out_ += name;
    if (!labels.empty()) {
      out_ += '{';
      out_ += labels;
      out_ += '}';
    }
    out_ += ' ';
    out_ += value;
    out_ += '\n';
  }
  // A family of one unlabelled sample.
  template <class V>
  void single(std::string_view name, std::string_view type, std::string_view help, V value) {
    family(name, type, help);
    sample(name, {}, detail::format_value(value));
  }
  // A histogram from per-bucket (not cumulative) counts: counts[i] for
  // bucket i of le[i], counts.back() for the ones above the last bound.
  void histogram(std::string_view name, std::string_view help, std::span<const std::string> le,
                 std::span<const std::uint64_t> counts, const std::string& sum) {
    family(name, "histogram", help);
    const std::string bucket = std::string(name) + "_bucket";
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < counts.size(); ++i) {
      cumulative += counts[i];
      if (i < le.size())
        sample(bucket, label("le", le[i]), detail::format_value(cumulative));
    }
    sample(bucket, label("le", "+Inf"), detail::format_value(cumulative));
    sample(std::string(name) + "_sum", {}, sum);
    sample(std::string(name) + "_count", {}, detail::format_value(cumulative));
  }
  static std::string label(std::string_view name, std::string_view value) {
    return std::string(name) + "=\"" + detail::escape_label_value(value) + '"';
  }
  std::string take() { return std::move(out_); }

private:
  std::string out_;
};

// Bucket bounds in microseconds as Prometheus `le` labels in seconds.
template <std::size_t N>
std::vector<std::string> seconds_le(const std::array<std::uint32_t, N>& us) {
  std::vector<std::string> le;
  for (auto b : us)
    le.push_back(detail::format_value(static_cast<double>(b) / 1e6));
  return le;
}

void render_server(exposition& x, const server_counters& sc) {
  x.family("loyaltyd_requests_total", "counter",
           "Request frames received, by operation (op=\"none\": a frame whose operation could not be read).");
  for (std::size_t i = 0; i < sc.requests.size(); ++i)
    x.sample("loyaltyd_requests_total", exposition::label("op", to_string(static_cast<opcode>(i))),
             detail::format_value(sc.requests[i]));
  x.family("loyaltyd_errors_total", "counter",
           "Error answers, by operation and error code (docs/PROTOCOL.md); op=\"none\": a frame that could not "
           "be read, the connection was closed.");
  for (const auto& e : sc.errors)
    x.sample("loyaltyd_errors_total",
             exposition::label("op", to_string(e.op)) + ',' + exposition::label("code", to_string(e.code)),
             detail::format_value(e.count));
  x.single("loyaltyd_inflight_requests", "gauge", "Requests admitted and not yet answered.", sc.inflight);
  x.single("loyaltyd_output_bytes", "gauge",
           "Answers waiting to be sent, every connection's together (bytes; output_mib_max bounds them).",
           sc.output_bytes);
  x.single("loyaltyd_connections", "gauge", "Wire protocol connections open.", sc.connections);
  x.single("loyaltyd_connections_total", "counter", "Wire protocol connections accepted.", sc.connections_total);
  x.single("loyaltyd_tls_handshakes_failed_total", "counter",
           "TLS handshakes that failed or timed out (the connection was closed).", sc.tls_handshakes_failed);
  x.single("loyaltyd_subscriptions", "gauge", "Event streams open (subscribe, docs/PROTOCOL.md).",
           sc.subscriptions);
  x.single("loyaltyd_stream_events_total", "counter", "Events sent to subscribers.", sc.stream_events);
  x.single("loyaltyd_accept_errors_total", "counter",
           "accept() failures (out of file descriptors, ...); the server retries after a pause.", sc.accept_errors);
  x.family("loyaltyd_connections_closed_total", "counter",
           "Connections the server closed for a limit, by reason: idle (idle_timeout_s), read_timeout "
           "(frame_read_timeout_ms), write_stall (write_stall_timeout_ms), refused (connections_max).");
  for (std::size_t i = 0; i < sc.closed.size(); ++i)
    x.sample("loyaltyd_connections_closed_total", exposition::label("reason", to_string(static_cast<close_reason>(i))),
             detail::format_value(sc.closed[i]));
  x.histogram("loyaltyd_member_answer_seconds",
              "Member and partner requests: time from admission on the io thread to the outcome back there (the "
              "actor, the writer, the commit and any replication), without the write of the answer to the socket.",
              seconds_le(ledger::commit_us_bounds), sc.answer_us_hist, detail::format_value(static_cast<double>(sc.answer_us_total) / 1e6));
}

void render_ledger(exposition& x, const ledger::ledger& led) {
  const auto ws = led.stats();
  // Bucket i of batch_hist holds sizes 2^i .. 2^(i+1) - 1: its upper bound.
  std::vector<std::string> batch_le;
  for (std::size_t i = 0; i + 1 < ws.batch_hist.size(); ++i)
    batch_le.push_back(detail::format_value((std::uint64_t{2} << i) - 1));
  x.histogram("loyaltyd_commit_batch_entries",
              "Operations per group commit (one LMDB write transaction); _count is the number of commits.", batch_le,
              ws.batch_hist, detail::format_value(ws.entries));
  x.histogram("loyaltyd_commit_seconds", "Time in mdb_txn_commit (with its fsync) per group commit.",
              seconds_le(ledger::commit_us_bounds),
              ws.commit_us_hist, detail::format_value(static_cast<double>(ws.commit_us_total) / 1e6));
  x.single("loyaltyd_checkpoints_total", "counter",
           "Account checkpoints completed (frozen generations written to the accounts table in full).",
           ws.checkpoints);
  x.single("loyaltyd_checkpoint_seconds_total", "counter",
           "Time spent putting checkpoint chunks of account records into group commits.",
           static_cast<double>(ws.checkpoint_us_total) / 1e6);
  x.single("loyaltyd_checkpoint_accounts_total", "counter", "Account balances written by checkpoints.",
           ws.checkpoint_accounts);
  x.single("loyaltyd_checkpoint_pending_accounts", "gauge",
           "Account records of the checkpoint in progress still to be written.", ws.checkpoint_pending);
  x.single("loyaltyd_ledger_accounts_cached", "gauge",
           "Account balances not yet in the accounts table: changed since the last freeze, or frozen and not yet "
           "written (kept in memory, replayed from the journal at start).",
           ws.accounts_cached);
  x.single("loyaltyd_ledger_last_seq", "gauge", "Sequence number of the newest committed journal entry.",
           led.last_seq());
  const auto space = led.space();
  x.single("loyaltyd_lmdb_map_bytes", "gauge", "LMDB map size: the most the data file can grow to.",
           space.map_bytes);
  x.single("loyaltyd_lmdb_used_bytes", "gauge",
           "LMDB pages up to the highest in use times the page size (the data file's high-water mark).",
           space.used_bytes);
  x.single("loyaltyd_lmdb_reserve_bytes", "gauge",
           "Free map space a group commit needs: while used + reserve > map, postings are refused with storage_full.",
           space.reserve_bytes);
  x.single("loyaltyd_storage_full_refusals_total", "counter",
           "Operations refused with storage_full (the map's high-water mark within the reserve of its end).",
           ws.storage_full_refusals);
}

void render_members(exposition& x, const metrics_sources& src) {
  const auto ds = src.dir->stats();
  x.single("loyaltyd_members_active", "gauge", "Member actors in memory.", ds.active);
  x.single("loyaltyd_member_activations_total", "counter", "Member actors started (first use or after passivation).",
           ds.activations);
  x.single("loyaltyd_member_passivations_total", "counter", "Member actors stopped for being idle.",
           ds.passivations);
  x.single("loyaltyd_member_failures_total", "counter",
           "Member actors that terminated abnormally (reactivated from the ledger on their next message).",
           src.supervision != nullptr ? src.supervision->member_failures.load(std::memory_order_relaxed) : ds.crashes);
  x.family("loyaltyd_partner_requests_total", "counter",
           "Partner operations by partner and what its actor did with them: forwarded to the member, or refused "
           "for the partner's status.");
  if (src.partners != nullptr)
    for (const auto& c : src.partners->counts()) {
      const auto partner = exposition::label("partner", c.partner);
      x.sample("loyaltyd_partner_requests_total", partner + ',' + exposition::label("result", "forwarded"),
               detail::format_value(c.forwarded));
      x.sample("loyaltyd_partner_requests_total", partner + ',' + exposition::label("result", "refused"),
               detail::format_value(c.refused));
    }
}

// A cluster node's view (docs/OPERATIONS.md, "Cluster"): its role, term,
// log indexes, and on the leader each server's replication lag.
void render_cluster(exposition& x, const cluster::node& n, const ledger::ledger& led) {
  const auto st = n.status();
  x.family("loyaltyd_cluster_role", "gauge", "1 for this node's Raft role now (leader, follower, candidate, unavailable).");
  for (const char* role : {"leader", "follower", "candidate", "unavailable"})
    x.sample("loyaltyd_cluster_role", exposition::label("role", role), st.role == role ? "1" : "0");
  x.single("loyaltyd_cluster_term", "gauge", "The Raft term this node is in.", st.term);
  x.single("loyaltyd_cluster_leader_id", "gauge", "The node this one knows as leader (0: none).", st.leader_id);
  x.single("loyaltyd_cluster_commit_index", "gauge", "The highest log index this node knows committed.",
           st.commit_index);
  x.single("loyaltyd_cluster_applied_index", "gauge", "The highest log index handed to this node's ledger.",
           st.applied_index);
  x.single("loyaltyd_cluster_ledger_applied_index", "gauge",
           "The highest log index this node's ledger has committed (meta log_applied).", led.applied_log_index());
  x.single("loyaltyd_cluster_last_index", "gauge", "The last entry of this node's log.", st.last_index);
  x.single("loyaltyd_cluster_snapshot_index", "gauge", "The log index of this node's last snapshot (0: none).",
           st.snapshot_index);
  x.single("loyaltyd_cluster_elections_total", "counter", "Terms begun (each with an election) since this node started.",
           st.elections);
  x.single("loyaltyd_cluster_snapshots_taken_total", "counter", "Snapshots of the ledger this node took.",
           st.snapshots_taken);
  x.single("loyaltyd_cluster_snapshots_installed_total", "counter", "Snapshots this node installed.",
           st.snapshots_installed);
  x.family("loyaltyd_cluster_replication_lag_entries", "gauge",
           "On the leader: log entries each server of the configuration is behind the leader's log.");
  if (st.leader)
    for (const auto& s : st.servers)
      x.sample("loyaltyd_cluster_replication_lag_entries", exposition::label("node", std::to_string(s.id)),
               detail::format_value(s.lag));
}

} // namespace

std::string render_metrics(const metrics_sources& src) {
  exposition x;
  render_server(x, src.srv->counters());
  render_ledger(x, *src.ledger);
  render_members(x, src);
  if (src.node != nullptr)
    render_cluster(x, *src.node, *src.ledger);
  if (const auto rss = resident_anon_bytes())
    x.single("loyaltyd_process_resident_anon_bytes", "gauge",
             "Anonymous resident memory of the process (RssAnon): heap and stacks, not the file-backed LMDB map.",
             *rss);
  return x.take();
}

// -- the HTTP server --------------------------------------------------------------------

namespace {

// After a failed accept (out of fds, say), wait this long before the next
// one rather than spin the endpoint's thread on the same error.
constexpr auto accept_retry_delay = std::chrono::milliseconds(100);

constexpr std::string_view metrics_content_type = "text/plain; version=0.0.4; charset=utf-8";
constexpr std::string_view plain_content_type = "text/plain; charset=utf-8";

} // namespace

class metrics_session;

class metrics_server::impl {
public:
  impl(metrics_options o, metrics_sources s) : opts(std::move(o)), src(s) {}

  bool start(std::string& error);
  void stop();
  void accept();

  metrics_options opts;
  metrics_sources src;
  // Destroyed after everything below that lives on it.
  asio::io_context ctx{1};
  asio::ip::tcp::acceptor acceptor{ctx};
  asio::steady_timer accept_retry{ctx};
  std::thread thread;
  std::uint16_t bound_port = 0;
  // The endpoint's thread only:
  std::uint32_t active = 0;  // connections holding a slot (metrics_connections_max)
  std::vector<std::weak_ptr<metrics_session>> sessions;
};

// One metrics connection: read one request, send one answer, close. Lives
// on the endpoint's thread only.
class metrics_session final : public std::enable_shared_from_this<metrics_session> {
public:
  // `slot`: the connection holds one of the metrics_connections_max slots
  // (released on close); one without is only told 503.
  metrics_session(metrics_server::impl& srv, asio::ip::tcp::socket sock, bool slot)
    : srv_(srv), sock_(std::move(sock)), timer_(srv.ctx), slot_(slot) {
    in_.resize(limits::metrics_request_bytes_max);
  }

  void start() {
    arm(std::chrono::milliseconds(srv_.opts.read_timeout_ms), [](metrics_session& s) { s.on_read_timeout(); });
    read();
  }

  // Over the connection limit: 503 without reading the request.
  void refuse() {
    respond("503 Service Unavailable", plain_content_type, "too many metrics connections; retry\n", false,
            "Retry-After: 1\r\n");
  }

  void close() {
    if (phase_ == phase::closed)
      return;
    phase_ = phase::closed;
    timer_.cancel();
    asio::error_code ec;
    sock_.close(ec);
    if (slot_)
      --srv_.active;
  }

private:
  enum class phase : std::uint8_t { reading, writing, lingering, closed };

  // The connection's one timer, for whichever phase it is in; a new arm()
  // makes the previous one's handler a no-op.
  template <class F>
  void arm(std::chrono::milliseconds after, F on_expiry) {
    timer_.expires_after(after);
    timer_.async_wait([self = shared_from_this(), gen = ++timer_gen_, on_expiry](const asio::error_code& ec) {
      if (ec || gen != self->timer_gen_ || self->phase_ == phase::closed)
        return;
      on_expiry(*self);
    });
  }

  void read() {
    sock_.async_read_some(asio::buffer(in_.data() + len_, in_.size() - len_),
                          [self = shared_from_this()](const asio::error_code& ec, std::size_t n) {
                            if (self->phase_ != phase::reading)
                              return;  // answered meanwhile (timeout) or closed
                            if (ec) {
                              self->close();  // the client left before finishing its request
                              return;
                            }
                            self->len_ += n;
                            self->on_input();
                          });
  }

  void on_input() {
    detail::http_request req;
    switch (detail::parse_http_request(std::string_view(in_.data(), len_), in_.size(), req)) {
      case detail::http_parse::incomplete: return read();
      case detail::http_parse::too_large:
        return respond("431 Request Header Fields Too Large", plain_content_type,
                       "request line and headers over " + std::to_string(limits::metrics_request_bytes_max) +
                         " bytes\n");
      case detail::http_parse::bad_request:
        return respond("400 Bad Request", plain_content_type, "malformed request\n");
      case detail::http_parse::complete: return answer(req);
    }
  }

  void answer(const detail::http_request& req) {
    if (req.path != "/metrics")
      return respond("404 Not Found", plain_content_type, "not found: the metrics are at /metrics\n");
    const bool head = req.method == "HEAD";
    if (req.method != "GET" && !head)
      return respond("405 Method Not Allowed", plain_content_type, "only GET and HEAD\n", false,
                     "Allow: GET, HEAD\r\n");
    respond("200 OK", metrics_content_type, render_metrics(srv_.src), head);
  }

  void on_read_timeout() {
    asio::error_code ec;
    sock_.cancel(ec);  // the pending read completes aborted and is ignored
    respond("408 Request Timeout", plain_content_type,
            "request not complete within " + std::to_string(srv_.opts.read_timeout_ms) + " ms\n");
  }

  // Sends the answer (headers only if `head_only`), then lingers and closes.
  void respond(std::string_view status, std::string_view content_type, const std::string& body,
               bool head_only = false, std::string_view extra_headers = {}) {
    phase_ = phase::writing;
    out_ = "HTTP/1.1 ";
    out_ += status;
    out_ += "\r\nContent-Type: ";
    out_ += content_type;
    out_ += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
    out_ += extra_headers;
    out_ += "Connection: close\r\n\r\n";
    if (!head_only)
      out_ += body;
    // A client that does not take its answer is closed like one that does
    // not send its request.
    arm(std::chrono::milliseconds(srv_.opts.read_timeout_ms), [](metrics_session& s) { s.close(); });
    asio::async_write(sock_, asio::buffer(out_), [self = shared_from_this()](const asio::error_code& ec, std::size_t) {
      if (self->phase_ != phase::writing)
        return;
      if (ec) {
        self->close();
        return;
      }
      self->linger();
    });
  }

  // The answer is sent: end our side and read until the client closes its
  // own (or metrics_linger_ms passes), so that unread input does not turn
  // the close into a reset that could destroy the answer in flight.
  void linger() {
    phase_ = phase::lingering;
    asio::error_code ec;
    sock_.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
    arm(std::chrono::milliseconds(limits::metrics_linger_ms), [](metrics_session& s) { s.close(); });
    discard();
  }

  void discard() {
    sock_.async_read_some(asio::buffer(in_), [self = shared_from_this()](const asio::error_code& ec, std::size_t) {
      if (self->phase_ != phase::lingering)
        return;
      if (ec)
        self->close();  // the client closed (or the connection failed)
      else
        self->discard();
    });
  }

  metrics_server::impl& srv_;
  asio::ip::tcp::socket sock_;
  asio::steady_timer timer_;
  const bool slot_;
  phase phase_ = phase::reading;
  std::uint64_t timer_gen_ = 0;
  std::vector<char> in_;
  std::size_t len_ = 0;
  std::string out_;
};

bool metrics_server::impl::start(std::string& error) {
  try {
    asio::ip::tcp::endpoint ep(asio::ip::make_address(opts.host), opts.port);
    acceptor.open(ep.protocol());
    acceptor.set_option(asio::ip::tcp::acceptor::reuse_address(true));
    acceptor.bind(ep);
    acceptor.listen(asio::socket_base::max_listen_connections);
    bound_port = acceptor.local_endpoint().port();
  } catch (const std::exception& e) {
    error = "cannot serve metrics on " + opts.host + ":" + std::to_string(opts.port) + ": " + e.what();
    return false;
  }
  accept();
  thread = std::thread([this] {
    name_this_thread("metrics");
    ctx.run();
  });
  log(log_level::info, "metrics on http://%s:%u/metrics", opts.host.c_str(), static_cast<unsigned>(bound_port));
  return true;
}

void metrics_server::impl::accept() {
  acceptor.async_accept([this](const asio::error_code& ec, asio::ip::tcp::socket sock) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open())
      return;  // stopping
    if (ec) {
      log(log_level::warn, "metrics endpoint: accept failed: %s; retrying", ec.message().c_str());
      accept_retry.expires_after(accept_retry_delay);
      accept_retry.async_wait([this](const asio::error_code& wec) {
        if (!wec)
          accept();
      });
      return;
    }
    const bool slot = active < limits::metrics_connections_max;
    auto s = std::make_shared<metrics_session>(*this, std::move(sock), slot);
    if (slot)
      ++active;
    std::erase_if(sessions, [](const auto& w) { return w.expired(); });
    sessions.push_back(s);
    if (slot)
      s->start();
    else
      s->refuse();
    accept();
  });
}

void metrics_server::impl::stop() {
  if (!thread.joinable())
    return;
  asio::post(ctx, [this] {
    asio::error_code ec;
    acceptor.close(ec);
    accept_retry.cancel();
    for (auto& w : sessions)
      if (auto s = w.lock())
        s->close();
    sessions.clear();
    ctx.stop();
  });
  thread.join();
}

metrics_server::metrics_server(metrics_options opts, metrics_sources src)
  : impl_(std::make_unique<impl>(std::move(opts), src)) {}

metrics_server::~metrics_server() { stop(); }

bool metrics_server::start(std::string& error) { return impl_->start(error); }

void metrics_server::stop() { impl_->stop(); }

std::uint16_t metrics_server::port() const noexcept { return impl_->bound_port; }

} // namespace loyalty::io

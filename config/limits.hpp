// Every hard limit of the engine in one place, unit last in the name, each
// with the reason for its value. Configurable limits have their defaults here
// and their knobs in the engine configuration (config/loyaltyd.toml).
#pragma once

#include <cstddef>
#include <cstdint>

namespace loyalty::limits {

// Largest frame payload accepted. A batch of batch_ops_max earns with 64-byte
// txn ids is about 200 KiB; 1 MiB leaves room without letting one client make
// the server buffer arbitrary amounts.
inline constexpr std::uint32_t frame_bytes_max = 1u << 20;

// Operations in one batch frame: bounds the work one frame can queue.
inline constexpr std::size_t batch_ops_max = 1000;

// Client transaction ids are opaque bytes. 64 bytes fits a UUID in text form
// (36) or any ULID / hash; longer ids only bloat the index.
inline constexpr std::size_t txn_id_bytes_max = 64;

// Protocol versions this build speaks.
inline constexpr std::uint32_t protocol_version_min = 1;
inline constexpr std::uint32_t protocol_version_max = 1;

// Defaults of the configurable limits (see config/loyaltyd.toml).
// In-flight requests per connection: deep enough for a pipelined client to
// keep the group commit full, small enough that one client cannot take the
// whole engine budget.
inline constexpr std::uint32_t inflight_per_connection_max_default = 8192;
// In-flight requests in the whole engine: every one of them is an entry in
// some queue (mailbox, writer queue), so this bounds all of those queues.
inline constexpr std::uint32_t inflight_total_max_default = 131072;
// Concurrent connections: each costs buffers and an fd.
inline constexpr std::uint32_t connections_max_default = 1024;
// Journal entries per LMDB write transaction: large enough to amortize the
// fsync (about 1-3 ms here), small enough that one commit stays short.
inline constexpr std::uint32_t batch_entries_max_default = 10000;
// How long the writer waits for more entries after the first one arrived
// before committing anyway. Adds at most this much latency at low load.
inline constexpr std::uint32_t commit_window_us_default = 200;
// A cluster leader's group-commit batches proposed to the log and not yet
// committed there ([cluster] pipeline_batches). With 1 the next batch is
// proposed as the last one commits, before it is applied to LMDB (the two
// overlap) and gathers every op that came meanwhile. More splits the load
// into smaller batches, each paying its fsyncs on every node: on a
// CPU-bound machine that costs more than it hides (docs/PERFORMANCE.md,
// "Issue 17"); on machines a real network apart it can hide round trips.
inline constexpr std::uint32_t pipeline_batches_default = 1;
inline constexpr std::uint32_t pipeline_batches_max = 64;
// Commands from the log a follower's ledger holds unapplied: past it the
// node's loop waits for its writer, so a slow disk slows the follower's
// acknowledgements instead of growing its memory.
inline constexpr std::size_t log_commands_queued_max = 64;
// Member actors active at once; past it, idle ones are passivated.
inline constexpr std::uint32_t active_members_max_default = 1000000;
// A member actor idle this long is passivated.
inline constexpr std::uint32_t member_idle_s_default = 60;
// Account balances changed since the last checkpoint are kept in memory;
// when this many have accumulated or checkpoint_interval_ms has passed they
// are frozen as a generation, which the writer writes to the accounts table
// in key order, a chunk with each group commit, finishing within 4/5 of the
// interval (an incremental checkpoint). A commit thus writes sequential
// journal and index pages plus a bounded slice of account pages, never one
// page per member touched and never the whole generation at once. Bounds
// memory (~100 B each, two generations at most) and the journal tail
// replayed at start.
inline constexpr std::uint32_t checkpoint_accounts_max_default = 262144;
inline constexpr std::uint32_t checkpoint_interval_ms_default = 10000;
// Account records a checkpoint writes with each group commit, at least.
inline constexpr std::uint32_t checkpoint_chunk_accounts_default = 256;
// A member's book is stored (ledger books table) when folding it read at
// least this many entries past the stored one: at an activation, and at a
// passivation after the actor posted as many. Activation then reads one
// book and fewer entries than this, however long the member's history.
inline constexpr std::size_t book_checkpoint_entries = 16;
// Books waiting for the writer's next commit; more are dropped (a cache:
// the next fold stores them again).
inline constexpr std::size_t books_queued_max = 4096;
// A TLS client has this long from accepting its connection to finishing the
// handshake; a peer that never completes it cannot hold a connection slot
// (connections_max) for ever. 10 s covers a slow client on a lossy link.
inline constexpr std::uint32_t tls_handshake_timeout_ms_default = 10000;
// -- misbehaving clients (docs/OPERATIONS.md, "Connection limits") ----------------
// A connection with no request in flight, nothing to write and no bytes
// received for this long is closed (0 = never): a client that opens a
// connection and forgets it holds a connections_max slot and its buffers.
// 5 minutes outlasts any pause of a pooled integrator connection between
// bursts; one that idles longer reconnects or sends a cheap request.
inline constexpr std::uint32_t idle_timeout_s_default = 300;
// Once the first byte of a frame has arrived, the rest must arrive within
// this: a client that sends half a frame and stalls holds the read buffer
// (up to a whole frame, 1 MiB) and a slot. A 1 MiB frame at 1 Mbit/s takes
// 8 s; 30 s leaves room for a slow link.
inline constexpr std::uint32_t frame_read_timeout_ms_default = 30000;
// While responses wait to be sent, the socket must take some of them within
// this: a client that never reads would otherwise hold its output buffer
// (connection_output_bytes_max) and its in-flight slots for ever. Same
// reasoning as the frame read timeout, for the other direction.
inline constexpr std::uint32_t write_stall_timeout_ms_default = 30000;
// Past this many bytes of unsent responses a connection stops reading until
// the client has read some (back-pressure): a client that pipelines without
// reading cannot make the server buffer without bound. 8 MiB holds the
// answers of a full in-flight window (8192 x under 1 KiB) with room to spare.
inline constexpr std::uint32_t connection_output_bytes_max_default = 8u << 20;
// Engine-wide bound on answers waiting to be sent, over every connection
// (docs/OPERATIONS.md, "Connection limits"). Past it, a connection that has
// answers waiting is not read until the total is below it again; one with
// nothing waiting is still read, so clients that read their answers keep
// being served while others stall. Without it 1,024 connections that stop
// reading could hold 1,024 x connection_output_bytes_max (8 GiB) for the
// write-stall window. 256 MiB is 32 connections at their own bound, a
// small part of the 4 GiB the engine is sized for at 1M active members.
inline constexpr std::uint64_t output_bytes_max_default = 256ull << 20;
// Fairness on an io thread (docs/OPERATIONS.md, "Connection limits"): one
// connection's turn ends after this many frames, or once its answers of the
// turn reach turn_output_bytes_max, and the rest of what it sent waits for
// its next turn behind the other connections' work. 64 earns are ~0.3 ms of
// an io thread; 64 KiB is three full history pages. Measured with 20
// connections pipelining history pages of 100 entries (docs/PERFORMANCE.md,
// "Issue 16"): with 256 KiB a light client's p99 was 1.5-6.5 s, with 64 KiB
// 40-50 ms, for 10-17 % fewer pages served to the flood.
inline constexpr std::uint32_t turn_frames_max = 64;
inline constexpr std::size_t turn_output_bytes_max = 64u << 10;
// Connections refused with too_many_connections that are still being closed
// (their error frame sent, linger running): they do not hold a
// connections_max slot, and past this many the next refused connection is
// closed at once without its frame, so a flood of connections cannot use
// up the process's file descriptors through the refusals.
inline constexpr std::uint32_t refused_closing_max = 64;
// A clean stop (SIGTERM, Ctrl-C; docs/OPERATIONS.md, "Starting and
// stopping") waits at most this long for the requests in flight to be
// answered (committed ones ok, the rest unavailable) before it closes the
// connections. The commits themselves take a group-commit window; 5 s
// covers a slow disk and clients reading their last answers.
inline constexpr std::uint32_t shutdown_drain_ms_default = 5000;
// When accept() fails for want of a resource (EMFILE, ENFILE, ENOBUFS), the
// connection stays in the backlog and accepting again at once fails again at
// once: the accept loop waits this long before it retries instead of
// spinning on the io thread. Short enough that a freed fd is used soon.
inline constexpr std::uint32_t accept_retry_ms = 100;
// After the last frame of a connection the server closes (an error that
// ends it: frame_too_large, malformed_frame, unsupported_version,
// too_many_connections, timed_out), it stops sending, reads and discards
// what the client still sends for at most this long, then closes: closing
// with unread input resets the connection, which can destroy that frame
// before the client reads it (as metrics_linger_ms for the metrics port).
inline constexpr std::uint32_t wire_linger_ms = 1000;

// The event stream (docs/PROTOCOL.md, "subscribe"). A subscriber's events
// are read from the ledger only while less than this much output waits for
// it on its connection: a slow subscriber falls behind in the journal (which
// it reads later), not in engine memory, and never slows ingestion.
inline constexpr std::size_t stream_output_low_bytes = 256u << 10;
// A subscribed connection's kernel send buffer (SO_SNDBUF), fixed instead of
// autotuned up to net.ipv4.tcp_wmem's maximum (4 MiB by default): what a
// subscriber that stops reading holds in memory is about this plus the
// above, whatever the journal holds.
inline constexpr int stream_socket_send_bytes = 256 << 10;
// A subscriber that is caught up gets an empty events frame this often, so
// it knows the stream is alive and where it stands (and the connection is
// never idle).
inline constexpr std::uint32_t stream_heartbeat_ms = 15'000;
// -- the metrics endpoint (io/metrics.hpp) ---------------------------------------
// Concurrent connections to the metrics port. Prometheus scrapes a target
// over one connection at a time; 8 leaves room for a redundant pair of
// scrapers and someone with curl, and a client that opens many holds at
// most 8 fds and 8 request buffers. Connections over it are answered 503.
inline constexpr std::uint32_t metrics_connections_max = 8;
// Request line and headers of one metrics request. A scraper sends a few
// hundred bytes; past this the request is answered 431 without being read
// further, so a client cannot make the server buffer more.
inline constexpr std::size_t metrics_request_bytes_max = 8192;
// A metrics client has this long from being accepted to finishing its
// request, and again this long to take the answer: one that sends half a
// request and stalls would otherwise hold a metrics_connections_max slot
// for ever. Half of Prometheus' default scrape timeout (10 s): a scraper
// that cannot send 300 bytes in 5 s has timed out anyway. A setting
// (metrics_read_timeout_ms).
inline constexpr std::uint32_t metrics_read_timeout_ms_default = 5000;
// After answering, the server reads and discards what the client still
// sends for at most this long before it closes: closing a socket with
// unread input resets the connection, which can destroy the answer before
// the client has read it (RFC 9112 section 9.6). Long enough for a peer's
// FIN to cross a LAN, short enough that it cannot hold the slot long.
inline constexpr std::uint32_t metrics_linger_ms = 1000;
// A failed ledger write is reported as a full disk (docs/OPERATIONS.md,
// "Disk full, or any failing write") for ENOSPC, and for EIO -- LMDB's code
// for a write the kernel cut short -- when the data directory's filesystem
// has less than this free; likewise it is put down to the process's file
// size limit when the data file is within this of it. LMDB writes at most
// 64 pages (256 KiB with 4 KiB pages) in one call, so a write cut short for
// want of space leaves less than that free; 1 MiB is four times it.
inline constexpr std::uint64_t write_cut_short_bytes_max = 1u << 20;
// The in-memory filter of committed txn ids (ledger/detail/txn_filter.hpp):
// about 1 % false positives up to 50M ids at 64 MiB (10 bits an id); past
// that it only sends more questions to LMDB. Its pages are touched as ids
// arrive, so a small ledger does not pay the whole size in resident memory.
inline constexpr std::uint64_t txn_filter_bytes_default = 64ull << 20;
// A clean close saves the txn filter when the ledger holds at least this
// many txn ids: loading the saved filter (64 MiB by default) takes 0.3-1.1
// s, scanning the ids 0.35-0.8 us each (docs/PERFORMANCE.md, issue 18).
inline constexpr std::uint64_t txn_filter_save_min_ids_default = 500000;
// Members of one household (the program's max_members may not exceed it): a
// pooled spend asks each member for its points, one message each, and
// moves points from as many with one entry each.
inline constexpr std::uint32_t household_members_max = 16;
// Household operations and pooled spends waiting for the household
// coordinator (actors/household.hpp); past it a request is refused
// `overloaded`, nothing posted.
inline constexpr std::size_t household_jobs_max = 10'000;
// LMDB map size: address space only (sparse file); 64 GiB holds ~200M entries.
inline constexpr std::uint64_t map_bytes_default = 64ull << 30;

} // namespace loyalty::limits

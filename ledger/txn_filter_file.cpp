// The txn filter saved at a clean close and loaded at the next start, so
// that a restart does not scan every txn id ever committed before replay
// checks stop going to LMDB (docs/ARCHITECTURE.md, "The txn filter across
// restarts").
//
// File `txn_filter` in the data directory: a header, then the filter's
// words. The header names the journal seq the filter covers and the
// journal's digest at that seq (command.hpp). At a start the filter is used
// only if the journal now holds that prefix: folding the digest from the
// saved one over the entries after the saved seq must give the journal's
// digest, read in the same read transaction; those entries' txn ids are
// added. Anything else (no file, a torn or damaged one, another filter size,
// a restored or replaced ledger) falls back to the scan of the txn index. A
// filter may say "maybe" too often, never "no" for a committed id: a saved
// filter of another journal would break that, hence the check.
#include "config/log.hpp"
#include "ledger/detail/impl.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

namespace loyalty::ledger {

using detail::val;

namespace {

// "LLTXF" + format 1: the layout below and txn_filter's hash and probes.
constexpr std::uint64_t filter_file_magic = 0x0000000146585a4c4cull;

struct filter_file_header {
  std::uint64_t magic;
  std::uint64_t words;     // the filter's size in 64-bit words
  std::uint64_t seq;       // the journal's last seq whose txn id it holds
  std::uint64_t digest;    // the journal's digest at seq
  std::uint64_t checksum;  // journal_digest_step over the words, then over seq and digest
  std::uint64_t reserved;  // zero
};
static_assert(sizeof(filter_file_header) == 48);

std::string filter_path(const std::string& dir) { return dir + "/txn_filter"; }

std::uint64_t checksum_of(const std::uint64_t* words, std::size_t n, std::uint64_t seq, std::uint64_t digest) {
  const std::uint64_t tail[2] = {seq, digest};
  return journal_digest_step(journal_digest_step(journal_digest_basis, words, n * sizeof *words), tail, sizeof tail);
}

bool write_all(int fd, const void* p, std::size_t n) {
  const auto* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t w = ::write(fd, c, n);
    if (w <= 0)
      return false;
    c += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool read_all(int fd, void* p, std::size_t n) {
  auto* c = static_cast<char*>(p);
  while (n > 0) {
    const ssize_t r = ::read(fd, c, n);
    if (r <= 0)
      return false;
    c += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

} // namespace

void ledger::impl::save_txn_filter() const {
  const auto path = filter_path(opts.dir), tmp = path + ".tmp";
  std::remove(path.c_str());  // an older one: the next start scans, unless a newer one is saved below
  if (!txn_seen.enabled() || !txn_seen.ready())
    return;  // a filter still loading does not hold every id: the next start scans
  {
    detail::read_txn txn(env);
    MDB_stat st{};
    if (!txn.get() || mdb_stat(txn.get(), db.txn_index, &st) != MDB_SUCCESS ||
        st.ms_entries < opts.txn_filter_save_min_ids)
      return;  // few ids: the scan is about as quick as loading the file
  }
  const auto t0 = std::chrono::steady_clock::now();
  const std::size_t n = txn_seen.word_count();
  filter_file_header h{filter_file_magic, n, next_seq - 1, digest, checksum_of(txn_seen.words(), n, next_seq - 1, digest),
                       0};
  // Not fsynced: a file that a power cut left torn or empty fails its
  // checksum at the next start, which then scans. Renamed into place whole.
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  bool ok = fd >= 0 && write_all(fd, &h, sizeof h) && write_all(fd, txn_seen.words(), n * sizeof(std::uint64_t));
  if (fd >= 0)
    ok = ::close(fd) == 0 && ok;
  ok = ok && std::rename(tmp.c_str(), path.c_str()) == 0;
  if (!ok) {
    std::remove(tmp.c_str());
    log(log_level::warn, "ledger: could not save the txn filter in %s; the next start scans the txn ids",
        opts.dir.c_str());
    return;
  }
  log(log_level::info, "ledger: txn filter saved (%llu MiB, through seq %llu) in %lld ms",
      static_cast<unsigned long long>((n * sizeof(std::uint64_t)) >> 20), static_cast<unsigned long long>(h.seq),
      static_cast<long long>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count()));
}

bool ledger::impl::load_saved_txn_filter(std::uint64_t& tail_ids) {
  tail_ids = 0;
  const auto path = filter_path(opts.dir);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  filter_file_header h{};
  const std::size_t n = txn_seen.word_count();
  std::unique_ptr<std::uint64_t[]> words;
  bool ok = read_all(fd, &h, sizeof h) && h.magic == filter_file_magic && h.words == n && n > 0 && h.reserved == 0;
  if (ok) {
    words.reset(new (std::nothrow) std::uint64_t[n]);
    ok = words != nullptr && read_all(fd, words.get(), n * sizeof(std::uint64_t)) &&
         checksum_of(words.get(), n, h.seq, h.digest) == h.checksum;
  }
  ::close(fd);
  if (!ok) {
    log(log_level::info, "ledger: the saved txn filter in %s is of another size or damaged: not used", opts.dir.c_str());
    return false;
  }
  // The journal now: its digest and the entries after the saved seq, in one
  // read transaction (the writer adds what it commits later itself).
  detail::read_txn txn(env);
  if (!txn.get())
    return false;
  digest_record now{0, journal_digest_basis};
  const MDB_val key = val(detail::journal_digest_key, sizeof detail::journal_digest_key - 1);
  (void)detail::get_record(txn.get(), db.meta, key, now);
  if (now.seq < h.seq)
    return false;
  // The tail's ids go into the filter as they are read: if the check below
  // fails they are extra bits (the scan that follows adds them anyway).
  std::uint64_t d = h.digest, seq = h.seq;
  bool whole = true;  // every entry after the saved seq read
  if (now.seq > h.seq &&
      for_each_journal_value(txn.get(), h.seq, [&](std::uint64_t s, const MDB_val& v) {
        journal_header jh{};
        if (v.mv_size < sizeof jh || (((tail_ids + 1) & 0xffff) == 0 && filter_stop.load(std::memory_order_relaxed)))
          return whole = false;
        seq = s;
        d = journal_digest_step(d, v.mv_data, v.mv_size);
        std::memcpy(&jh, v.mv_data, sizeof jh);
        const std::size_t at = sizeof jh + std::size_t{jh.posting_count} * sizeof(posting);
        if (jh.txn_id_bytes > 0 && at + jh.txn_id_bytes <= v.mv_size) {
          txn_seen.add({static_cast<const char*>(v.mv_data) + at, jh.txn_id_bytes});
          ++tail_ids;
        }
        return seq < now.seq;
      }) != MDB_SUCCESS)
    return false;
  if (!whole)
    return false;
  if (seq != now.seq || d != now.digest) {
    log(log_level::info, "ledger: the saved txn filter is of another journal (through seq %llu): not used",
        static_cast<unsigned long long>(h.seq));
    return false;
  }
  txn_seen.merge(words.get());
  return true;
}

} // namespace loyalty::ledger

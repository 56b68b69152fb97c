// Hot backup: LMDB's compacting copy under a temporary name, made durable,
// read back, then renamed to the data file's name.
#include "config/log.hpp"
#include "ledger/detail/impl.hpp"

#include <chrono>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include <fcntl.h>
#include <unistd.h>

namespace loyalty::ledger {

namespace {

// What a backup's copy is called until it is whole (docs/OPERATIONS.md,
// "Backup and restore"): never the name LMDB or a restore looks for.
constexpr char backup_partial_name[] = "data.mdb.partial";

// fsync of a file or a directory by path; false with `error` set.
bool sync_path(const std::filesystem::path& p, std::string& error) {
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    error = "cannot fsync " + p.string() + ": " + std::strerror(errno);
    if (fd >= 0)
      ::close(fd);
    return false;
  }
  ::close(fd);
  return true;
}

// The newest journal seq of the copy in `file`, and the log index it holds
// (0 but on a cluster node), opened read-only and without a lock file
// (nothing else opens a copy being made).
bool newest_seq(const std::filesystem::path& file, std::uint64_t& seq, std::uint64_t& log_index, std::string& error) {
  MDB_env* env = nullptr;
  if (int rc = mdb_env_create(&env); rc != MDB_SUCCESS) {
    error = detail::mdb_error("mdb_env_create", rc);
    return false;
  }
  mdb_env_set_maxdbs(env, 16);
  bool ok = false;
  MDB_txn* txn = nullptr;
  MDB_dbi journal = 0;
  MDB_dbi meta = 0;
  if (int rc = mdb_env_open(env, file.c_str(), MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK, 0644); rc != MDB_SUCCESS) {
    error = "cannot open the copy " + file.string() + ": " + mdb_strerror(rc);
  } else if (int rc = mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn); rc != MDB_SUCCESS) {
    error = detail::mdb_error("mdb_txn_begin on the copy", rc);
  } else if (int rc = mdb_dbi_open(txn, "journal", MDB_INTEGERKEY, &journal); rc != MDB_SUCCESS) {
    error = detail::mdb_error("opening the copy's journal", rc);
  } else if (int rc = mdb_dbi_open(txn, "meta", 0, &meta); rc != MDB_SUCCESS) {
    error = detail::mdb_error("opening the copy's meta table", rc);
  } else {
    log_index = 0;
    detail::get_record(txn, meta, detail::val(detail::log_applied_key, sizeof detail::log_applied_key - 1), log_index);
    detail::cursor cur(txn, journal);
    MDB_val k{}, v{};
    const int got = cur.rc() == MDB_SUCCESS ? mdb_cursor_get(cur.get(), &k, &v, MDB_LAST) : cur.rc();
    if (got == MDB_SUCCESS) {
      std::memcpy(&seq, k.mv_data, sizeof seq);
      ok = true;
    } else if (got == MDB_NOTFOUND) {
      seq = 0;  // an empty ledger
      ok = true;
    } else {
      error = detail::mdb_error("reading the copy's journal", got);
    }
  }
  if (txn != nullptr)
    mdb_txn_abort(txn);
  mdb_env_close(env);
  return ok;
}

// False (error set) if `dir` holds anything but what an interrupted backup
// left in it (its partial copy): a backup never overwrites anything.
bool only_leftovers(const std::filesystem::path& dir, std::string& error) {
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec))
    return true;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.path().filename() != backup_partial_name) {
      error = "backup directory " + dir.string() + " is not empty: a backup never overwrites anything";
      return false;
    }
  if (ec) {
    error = "cannot read backup directory " + dir.string() + ": " + ec.message();
    return false;
  }
  return true;
}

} // namespace

std::optional<backup_info> ledger::backup(const std::string& dir, std::string& error) const {
  namespace fs = std::filesystem;
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path to(dir);
  const fs::path partial = to / backup_partial_name;
  std::error_code ec;
  if (!only_leftovers(to, error))
    return std::nullopt;
  if (fs::remove(partial, ec))
    log(log_level::warn, "backup: removed %s, the partial copy of an interrupted backup", partial.c_str());
  fs::create_directories(to, ec);
  if (ec) {
    error = "cannot create backup directory " + dir + ": " + ec.message();
    return std::nullopt;
  }
  backup_info out;
  out.file = (to / detail::data_file_name).string();
  auto fail = [&](std::string why) -> std::optional<backup_info> {
    error = std::move(why);
    fs::remove(partial, ec);
    fs::remove(out.file, ec);  // never leave a copy that looks whole
    return std::nullopt;
  };
  // The copy is written under its temporary name and gets the data file's
  // name only once it is whole, durable and read back: a backup killed at
  // any point (kill -9 of the engine, a full disk) leaves no data.mdb that
  // a restore could take for a backup, and LMDB maps a data file without
  // reading it, so a partial one would be a SIGBUS at its first missing page.
  const int fd = ::open(partial.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    return fail("cannot create " + partial.string() + ": " + std::strerror(errno));
  const int rc = mdb_env_copyfd2(impl_->env, fd, MDB_CP_COMPACT);
  const int synced = rc == MDB_SUCCESS ? ::fsync(fd) : 0;
  const int sync_errno = errno;
  ::close(fd);
  if (rc != MDB_SUCCESS)
    return fail("copying the ledger to " + partial.string() + ": " + mdb_strerror(rc));
  if (synced != 0)
    return fail("cannot fsync " + partial.string() + ": " + std::strerror(sync_errno));
  std::string why;
  if (!detail::check_data_file(partial.string(), why) || !newest_seq(partial, out.seq, out.log_index, why))
    return fail(why);
  if (::rename(partial.c_str(), out.file.c_str()) != 0)
    return fail("cannot rename " + partial.string() + " to " + out.file + ": " + std::strerror(errno));
  if (!sync_path(to, why))  // the rename is durable only with its directory
    return fail(why);
  out.bytes = fs::file_size(out.file, ec);
  out.micros = static_cast<std::uint64_t>(
    std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count());
  return out;
}

} // namespace loyalty::ledger

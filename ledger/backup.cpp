// Hot backup: LMDB's compacting copy, made durable and read back.
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

// The newest journal seq of the environment in `dir`, opened read-only and
// without a lock file (nothing else opens a fresh copy).
bool newest_seq(const std::filesystem::path& dir, std::uint64_t& seq, std::string& error) {
  MDB_env* env = nullptr;
  if (int rc = mdb_env_create(&env); rc != MDB_SUCCESS) {
    error = detail::mdb_error("mdb_env_create", rc);
    return false;
  }
  mdb_env_set_maxdbs(env, 16);
  bool ok = false;
  MDB_txn* txn = nullptr;
  MDB_dbi journal = 0;
  if (int rc = mdb_env_open(env, dir.c_str(), MDB_RDONLY | MDB_NOLOCK, 0644); rc != MDB_SUCCESS) {
    error = "cannot open the copy in " + dir.string() + ": " + mdb_strerror(rc);
  } else if (int rc = mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn); rc != MDB_SUCCESS) {
    error = detail::mdb_error("mdb_txn_begin on the copy", rc);
  } else if (int rc = mdb_dbi_open(txn, "journal", MDB_INTEGERKEY, &journal); rc != MDB_SUCCESS) {
    error = detail::mdb_error("opening the copy's journal", rc);
  } else {
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

} // namespace

std::optional<backup_info> ledger::backup(const std::string& dir, std::string& error) const {
  namespace fs = std::filesystem;
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path to(dir);
  std::error_code ec;
  if (fs::exists(to, ec) && !fs::is_empty(to, ec)) {
    error = "backup directory " + dir + " is not empty: a backup never overwrites anything";
    return std::nullopt;
  }
  fs::create_directories(to, ec);
  if (ec) {
    error = "cannot create backup directory " + dir + ": " + ec.message();
    return std::nullopt;
  }
  backup_info out;
  out.file = (to / "data.mdb").string();
  auto fail = [&](std::string why) -> std::optional<backup_info> {
    error = std::move(why);
    fs::remove(out.file, ec);  // never leave a copy that looks whole
    return std::nullopt;
  };
  if (int rc = mdb_env_copy2(impl_->env, to.c_str(), MDB_CP_COMPACT); rc != MDB_SUCCESS)
    return fail("copying the ledger to " + dir + ": " + mdb_strerror(rc));
  std::string why;
  if (!sync_path(out.file, why) || !sync_path(to, why) || !newest_seq(to, out.seq, why))
    return fail(why);
  out.bytes = fs::file_size(out.file, ec);
  out.micros = static_cast<std::uint64_t>(
    std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count());
  return out;
}

} // namespace loyalty::ledger

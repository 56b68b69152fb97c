// The data file and the filesystem under it: checked before LMDB maps the
// file, and named with the cause when a write to them fails.
#include "ledger/detail/impl.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

namespace loyalty::ledger::detail {

namespace {

constexpr const char* restore_advice = "restore it from a backup (docs/OPERATIONS.md, \"Backup and restore\")";

// LMDB's page sizes: a power of two of at least 512 bytes and at most 64 KiB.
[[nodiscard]] bool plausible_page_size(std::uint64_t bytes) {
  return bytes >= 512 && bytes <= 65536 && (bytes & (bytes - 1)) == 0;
}

} // namespace

bool check_data_file(const std::string& path, std::string& error) {
  struct stat sb {};
  if (::stat(path.c_str(), &sb) != 0) {
    if (errno == ENOENT)
      return true;  // a new data directory: LMDB creates the file
    error = "cannot read " + path + ": " + std::strerror(errno);
    return false;
  }
  const auto bytes = static_cast<std::uint64_t>(sb.st_size);
  if (bytes == 0)
    return true;  // LMDB writes the meta pages of a file it finds empty
  // Its own environment, read-only and without a lock file: LMDB reads the
  // two meta pages with read(2), checks their magic and format version, and
  // maps the file without touching a page. So a failure here is the data
  // file's (never the lock file's), and nothing past its end has been read.
  MDB_env* env = nullptr;
  if (int rc = mdb_env_create(&env); rc != MDB_SUCCESS) {
    error = mdb_error("mdb_env_create", rc);
    return false;
  }
  bool ok = false;
  const int rc = mdb_env_open(env, path.c_str(), MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK, 0644);
  MDB_envinfo info{};
  MDB_stat st{};
  if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH) {
    error = path + " is damaged or not a ledger data file (" + std::to_string(bytes) +
            " bytes; its meta pages are not valid: " + mdb_strerror(rc) + "); " + restore_advice;
  } else if (rc != MDB_SUCCESS) {
    error = "cannot read " + path + ": " + mdb_strerror(rc);
  } else if (mdb_env_info(env, &info) != MDB_SUCCESS || mdb_env_stat(env, &st) != MDB_SUCCESS ||
             !plausible_page_size(st.ms_psize)) {
    error = path + " is damaged: its meta page gives a page size of " + std::to_string(st.ms_psize) + " bytes; " +
            restore_advice;
  } else {
    // Every page up to the last one in use must be in the file: LMDB reads
    // pages in place from its map, and a page past the end of the file is
    // a SIGBUS at the first read, not an error it could return.
    const std::uint64_t need = (static_cast<std::uint64_t>(info.me_last_pgno) + 1) * st.ms_psize;
    if (bytes < need)
      error = path + " is truncated: " + std::to_string(bytes) + " bytes, the ledger needs at least " +
              std::to_string(need) + " (" + std::to_string(info.me_last_pgno + 1) + " pages of " +
              std::to_string(st.ms_psize) + " bytes); " + restore_advice;
    else
      ok = true;
  }
  mdb_env_close(env);
  return ok;
}

std::string write_failure(const std::string& dir, int rc) {
  std::string out = mdb_strerror(rc);
  struct statvfs fs {};
  if (::statvfs(dir.c_str(), &fs) != 0)
    return out;  // nothing more is known about where it failed
  const std::uint64_t free_bytes = static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
  const std::string free_text = std::to_string(free_bytes) + " bytes free on its filesystem";
  rlimit fsize{};
  std::error_code ec;
  const auto file_bytes = std::filesystem::file_size(std::filesystem::path(dir) / data_file_name, ec);
  const bool at_file_limit = ::getrlimit(RLIMIT_FSIZE, &fsize) == 0 && fsize.rlim_cur != RLIM_INFINITY && !ec &&
                             file_bytes + limits::write_cut_short_bytes_max >= fsize.rlim_cur;
  // LMDB returns EIO for a write the kernel cut short, whatever stopped it.
  const bool cut_short = rc == EIO;
  if (rc == ENOSPC || rc == EDQUOT || (cut_short && free_bytes < limits::write_cut_short_bytes_max))
    return "the disk is full (" + out + "; " + free_text + ")";
  if (rc == EFBIG || (cut_short && at_file_limit))
    return "the data file reached this process's file size limit (" + out + "; RLIMIT_FSIZE, `ulimit -f`, is " +
           std::to_string(fsize.rlim_cur) + " bytes)";
  return out + " (" + free_text + ")";
}

} // namespace loyalty::ledger::detail

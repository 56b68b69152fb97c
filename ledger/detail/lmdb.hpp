// Private to ledger/: the LMDB boundary. Thin RAII and error translation;
// nothing outside ledger/ includes <lmdb.h>.
#pragma once

#include <lmdb.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

// Stays on in release builds: guards data that is about to be written or was
// just read back.
#define LEDGER_ASSERT(cond)                                                                  \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "loyaltyd: FATAL: ledger invariant violated at %s:%d: %s\n",     \
                   __FILE__, __LINE__, #cond);                                               \
      std::abort();                                                                          \
    }                                                                                        \
  } while (false)

namespace loyalty::ledger::detail {

inline std::string mdb_error(const char* what, int rc) {
  return std::string(what) + ": " + mdb_strerror(rc);
}

// A fatal error inside the writer: the batch cannot be completed and
// nothing of it was acknowledged. `cause` says what failed, where and why
// (ledger::impl::fail_stop).
[[noreturn]] inline void fail_stop(const std::string& cause) {
  std::fprintf(stderr,
               "loyaltyd: FATAL: ledger commit failed: %s; stopping (fail-stop). "
               "Nothing in this batch was acknowledged.\n",
               cause.c_str());
  std::fflush(stderr);
  std::_Exit(70);
}

inline MDB_val val(const void* p, std::size_t n) {
  return MDB_val{n, const_cast<void*>(p)};
}

template <class T>
MDB_val val_of(const T& x) {
  return val(&x, sizeof(T));
}

// Reads a fixed-size record; false if absent or the wrong size.
template <class T>
bool get_record(MDB_txn* txn, MDB_dbi dbi, const MDB_val& key, T& out, int* rc_out = nullptr) {
  MDB_val k = key, v{};
  int rc = mdb_get(txn, dbi, &k, &v);
  if (rc_out)
    *rc_out = rc;
  if (rc != MDB_SUCCESS || v.mv_size != sizeof(T))
    return false;
  std::memcpy(&out, v.mv_data, sizeof(T));
  return true;
}

// A read-only transaction, aborted on scope exit.
class read_txn {
public:
  explicit read_txn(MDB_env* env) {
    rc_ = mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn_);
    if (rc_ != MDB_SUCCESS)
      txn_ = nullptr;
  }
  ~read_txn() {
    if (txn_)
      mdb_txn_abort(txn_);
  }
  read_txn(const read_txn&) = delete;
  read_txn& operator=(const read_txn&) = delete;
  [[nodiscard]] MDB_txn* get() const noexcept { return txn_; }
  [[nodiscard]] int rc() const noexcept { return rc_; }

private:
  MDB_txn* txn_ = nullptr;
  int rc_ = 0;
};

// A cursor, closed on scope exit.
class cursor {
public:
  cursor(MDB_txn* txn, MDB_dbi dbi) { rc_ = mdb_cursor_open(txn, dbi, &cur_); }
  ~cursor() {
    if (cur_)
      mdb_cursor_close(cur_);
  }
  cursor(const cursor&) = delete;
  cursor& operator=(const cursor&) = delete;
  [[nodiscard]] MDB_cursor* get() const noexcept { return cur_; }
  [[nodiscard]] int rc() const noexcept { return rc_; }

private:
  MDB_cursor* cur_ = nullptr;
  int rc_ = 0;
};

// Calls f(key, value) for every record of the table in key order (every
// duplicate of an MDB_DUPSORT table too). The cursor's error if it cannot
// open, else MDB_SUCCESS. f must not write to the table.
template <class F>
int for_each_record(MDB_txn* txn, MDB_dbi dbi, F&& f) {
  cursor cur(txn, dbi);
  if (cur.rc() != MDB_SUCCESS)
    return cur.rc();
  MDB_val k{}, v{};
  for (int rc = mdb_cursor_get(cur.get(), &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
       rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT))
    f(k, v);
  return MDB_SUCCESS;
}

} // namespace loyalty::ledger::detail

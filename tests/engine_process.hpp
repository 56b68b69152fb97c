// A loyaltyd process of the test's own (the real binary, fork and exec), so
// it can be killed with SIGKILL, crash by itself (loyaltyd-faults with
// LOYALTY_FAULT), run out of disk, and be started again on the same data
// directory. Failures throw std::runtime_error: usable from Catch tests and
// from the crash harness's command line alike.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace loyalty::test {

struct engine_process_options {
  std::string binary;                 // loyaltyd
  std::filesystem::path dir;          // settings and output files go here
  std::filesystem::path data_dir;     // empty: dir / "data"
  std::string program;                // program file
  std::uint32_t map_gib = 1;
  std::string extra_settings;         // more lines of [engine]
  std::uint16_t listen_port = 0;      // 0: one the system picks
  std::string more_tables;            // tables after [engine] (e.g. [cluster])
  std::vector<std::string> env;       // NAME=value added to the environment
  // RLIMIT_FSIZE for the process (0: none): a write past it fails with
  // EFBIG, which the engine meets as a full disk.
  std::uint64_t file_size_limit = 0;
};

class engine_process {
public:
  explicit engine_process(engine_process_options o) : o_(std::move(o)) { start(); }
  ~engine_process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      waitpid(pid_, &status, 0);
    }
  }
  engine_process(const engine_process&) = delete;
  engine_process& operator=(const engine_process&) = delete;

  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  [[nodiscard]] std::filesystem::path stderr_file() const { return o_.dir / "stderr.txt"; }
  // Signals only a process that has not been reaped: pid -1 would signal
  // every process the user may signal.
  void signal(int sig) const {
    if (pid_ > 0)
      ::kill(pid_, sig);
  }

  // SIGKILL and reap; the process's wait status (its first one, if it had
  // ended already).
  int kill9() {
    signal(SIGKILL);
    return reap(true);
  }
  // SIGTERM (a clean stop) and reap; the wait status.
  int stop() {
    signal(SIGTERM);
    return reap(true);
  }
  // Waits for the process to end by itself, at most `limit`; its wait
  // status, or -1 if it still runs.
  int wait_exit(std::chrono::milliseconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    for (;;) {
      const int st = reap(false);
      if (st != -1 || std::chrono::steady_clock::now() >= until)
        return st;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

private:
  void start() {
    const auto data = o_.data_dir.empty() ? o_.dir / "data" : o_.data_dir;
    const auto settings = o_.dir / "loyaltyd.toml";
    {
      std::ofstream f(settings);
      f << "[engine]\nprogram = \"" << o_.program << "\"\nlisten_port = " << o_.listen_port << "\ndata_dir = \""
        << data.string() << "\"\nmap_gib = " << o_.map_gib << "\n"
        << o_.extra_settings << "\n"
        << o_.more_tables << "\n";
    }
    const auto out = (o_.dir / "stdout.txt").string();
    const auto err = stderr_file().string();
    std::filesystem::remove(out);
    // Everything exec needs is made before fork: the child only calls
    // async-signal-safe functions.
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e)
      env_strings.emplace_back(*e);
    for (const auto& e : o_.env)
      env_strings.push_back(e);
    std::vector<char*> envp;
    for (auto& e : env_strings)
      envp.push_back(e.data());
    envp.push_back(nullptr);
    const std::string settings_path = settings.string();
    const char* argv[] = {o_.binary.c_str(), "--config", settings_path.c_str(), nullptr};
    const auto fsize = o_.file_size_limit;
    pid_ = fork();
    if (pid_ < 0)
      throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 1);
      const int efd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(efd, 2);
      if (fsize != 0) {
        ::signal(SIGXFSZ, SIG_IGN);
        const rlimit lim{fsize, fsize};
        setrlimit(RLIMIT_FSIZE, &lim);
      }
      execve(argv[0], const_cast<char* const*>(argv), envp.data());
      _exit(127);
    }
    for (int i = 0; i < 2000 && port_ == 0; ++i) {
      std::ifstream f(out);
      std::string line;
      while (std::getline(f, line)) {
        const auto at = line.rfind(':');
        if (line.rfind("loyaltyd listening on ", 0) == 0 && at != std::string::npos)
          port_ = static_cast<std::uint16_t>(std::stoi(line.substr(at + 1)));
      }
      if (port_ == 0) {
        if (reap(false) != -1)
          throw std::runtime_error("loyaltyd exited before listening; see " + err);
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    if (port_ == 0)
      throw std::runtime_error("loyaltyd did not listen within 20 s; see " + err);
  }

  int reap(bool block) {
    if (pid_ <= 0)
      return status_;
    int status = 0;
    const pid_t r = waitpid(pid_, &status, block ? 0 : WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      status_ = status;
      return status;
    }
    return -1;
  }

  engine_process_options o_;
  pid_t pid_ = -1;
  int status_ = -1;
  std::uint16_t port_ = 0;
};

} // namespace loyalty::test

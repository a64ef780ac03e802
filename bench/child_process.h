// ChildProcess: a program the benchmark starts (a coordinator node, the etcd anchor
// script), in its own process group so that everything it forks can be stopped together.
// Children get SIGKILL if the benchmark dies (PR_SET_PDEATHSIG); the destructor stops them.
// Also the process-wide interrupt flag raised by SIGINT/SIGTERM/SIGHUP.
// Not thread-safe: start and stop children from the main thread only (the death signal
// fires when the thread that forked exits).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/status.h"

namespace verdict::bench {

class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();  // Stop() with a short grace period

  // Starts argv[0] (a path) with `argv`. If `log_path` is non-empty, stdout and stderr are
  // appended to it; otherwise stderr is inherited and, if `capture_stdout`, stdout is a
  // pipe read with ReadStdoutLine(). IOError if the program cannot be started.
  Status Start(const std::vector<std::string>& argv, const std::string& log_path,
               bool capture_stdout = false);

  // True while the child has not exited. Reaps it once it has.
  bool Running();

  // Waits up to `timeout` for the child to exit by itself; true if it has.
  bool WaitExit(std::chrono::milliseconds timeout);

  // SIGTERM to the child's process group; SIGKILL to it after `grace`. Reaps the child.
  // Idempotent.
  void Stop(std::chrono::milliseconds grace);

  // Reads the captured stdout until EOF, `deadline`, or Interrupted(); false on the last
  // two. The text read so far is appended to `out` either way.
  bool ReadStdoutUntilEof(std::chrono::steady_clock::time_point deadline, std::string* out);

  // How the child ended ("exit 0", "signal 9"), or "running".
  std::string ExitDescription() const;
  // The exit code if it exited normally, else -1.
  int exit_code() const;
  pid_t pid() const { return pid_; }

 private:
  void Reaped(int status);

  pid_t pid_ = -1;
  bool reaped_ = true;
  int status_ = 0;
  int stdout_fd_ = -1;
};

// Installs handlers for SIGINT, SIGTERM and SIGHUP that raise the interrupt flag (first
// signal) or SIGKILL every live child group and exit (second signal). Call once, first.
void InstallInterruptHandlers();
bool Interrupted();

}  // namespace verdict::bench

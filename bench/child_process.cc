#include "bench/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>

namespace verdict::bench {

namespace {

// Live children, for the second-signal emergency kill. Slots hold 0 when free.
std::array<std::atomic<pid_t>, 64> g_children{};
std::atomic<int> g_signals{0};

void Register(pid_t pid) {
  for (auto& slot : g_children) {
    pid_t expected = 0;
    if (slot.compare_exchange_strong(expected, pid)) return;
  }
}

void Unregister(pid_t pid) {
  for (auto& slot : g_children) {
    pid_t expected = pid;
    if (slot.compare_exchange_strong(expected, 0)) return;
  }
}

void OnSignal(int) {
  if (g_signals.fetch_add(1) == 0) return;  // first one: the main flow cleans up
  for (auto& slot : g_children) {
    pid_t pid = slot.load();
    if (pid > 0) kill(-pid, SIGKILL);
  }
  static const char kMsg[] = "verdict-bench: interrupted twice, killed children\n";
  [[maybe_unused]] ssize_t n = write(STDERR_FILENO, kMsg, sizeof(kMsg) - 1);
  _exit(130);
}

}  // namespace

void InstallInterruptHandlers() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: blocking reads return EINTR
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

bool Interrupted() { return g_signals.load() > 0; }

ChildProcess::~ChildProcess() { Stop(std::chrono::milliseconds(3000)); }

Status ChildProcess::Start(const std::vector<std::string>& argv, const std::string& log_path,
                           bool capture_stdout) {
  if (!reaped_) return Status::FailedPrecondition("child already running");
  if (argv.empty()) return Status::InvalidArgument("empty argv");
  // Everything the child needs is prepared before fork(): after it, only async-signal-safe
  // calls until exec.
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int log_fd = -1;
  if (!log_path.empty()) {
    log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) return Status::IOError("open " + log_path + ": " + std::strerror(errno));
  }
  int pipe_fds[2] = {-1, -1};
  if (log_fd < 0 && capture_stdout && pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return Status::IOError(std::string("pipe: ") + std::strerror(errno));
  }
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    int err = errno;
    if (log_fd >= 0) close(log_fd);
    if (pipe_fds[0] >= 0) close(pipe_fds[0]), close(pipe_fds[1]);
    return Status::IOError(std::string("fork: ") + std::strerror(err));
  }
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    if (log_fd >= 0) {
      dup2(log_fd, STDOUT_FILENO);
      dup2(log_fd, STDERR_FILENO);
    } else if (pipe_fds[1] >= 0) {
      dup2(pipe_fds[1], STDOUT_FILENO);
    }
    execv(args[0], args.data());
    static const char kMsg[] = "verdict-bench: exec failed\n";
    [[maybe_unused]] ssize_t n = write(STDERR_FILENO, kMsg, sizeof(kMsg) - 1);
    _exit(127);
  }
  setpgid(pid, pid);  // also in the parent, so that kill(-pid) works at once
  if (log_fd >= 0) close(log_fd);
  if (pipe_fds[1] >= 0) close(pipe_fds[1]);
  stdout_fd_ = pipe_fds[0];
  pid_ = pid;
  reaped_ = false;
  status_ = 0;
  Register(pid);
  return Status::OK();
}

void ChildProcess::Reaped(int status) {
  status_ = status;
  reaped_ = true;
  Unregister(pid_);
  // Whatever the child forked may still be alive in its group.
  kill(-pid_, SIGKILL);
}

bool ChildProcess::Running() {
  if (reaped_) return false;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    Reaped(status);
    return false;
  }
  return true;
}

bool ChildProcess::WaitExit(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (Running()) {
    if (std::chrono::steady_clock::now() >= deadline || Interrupted()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

void ChildProcess::Stop(std::chrono::milliseconds grace) {
  if (!reaped_) {
    kill(-pid_, SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + grace;
    while (Running() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!reaped_) {
      kill(-pid_, SIGKILL);
      int status = 0;
      while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      Reaped(status);
    }
  }
  if (stdout_fd_ >= 0) {
    close(stdout_fd_);
    stdout_fd_ = -1;
  }
}

bool ChildProcess::ReadStdoutUntilEof(std::chrono::steady_clock::time_point deadline,
                                      std::string* out) {
  if (stdout_fd_ < 0) return true;
  char buf[4096];
  while (true) {
    if (Interrupted()) return false;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    struct pollfd pfd = {stdout_fd_, POLLIN, 0};
    int r = poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left.count(), 200)));
    if (r <= 0) continue;  // timeout slice or EINTR: re-check the deadline and the flag
    ssize_t n = read(stdout_fd_, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return true;
    out->append(buf, static_cast<size_t>(n));
  }
}

std::string ChildProcess::ExitDescription() const {
  if (!reaped_) return "running";
  if (WIFEXITED(status_)) return "exit " + std::to_string(WEXITSTATUS(status_));
  if (WIFSIGNALED(status_)) return "signal " + std::to_string(WTERMSIG(status_));
  return "status " + std::to_string(status_);
}

int ChildProcess::exit_code() const {
  if (!reaped_ || !WIFEXITED(status_)) return -1;
  return WEXITSTATUS(status_);
}

}  // namespace verdict::bench

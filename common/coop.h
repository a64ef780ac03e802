// Cooperative waiting. Code that would block its thread — on a socket, a mutex, a sleep —
// calls these instead. On a fiber of an event loop (rpc::FiberServer, thrift/fiber_server.h)
// they suspend only that fiber and let the loop run the others; anywhere else they block
// the calling thread exactly as poll(), std::mutex::lock() and sleep_for() would.
//
// The rule that keeps fibers deadlock-free: a fiber may be suspended only inside these
// calls, so a std::mutex that fibers of one loop contend for must be taken with
// coop::MutexLock (a plain lock would block the loop while the holder, another fiber of
// it, waits to be resumed), and no other mutex may be held across a cooperative wait.
#pragma once

#include <chrono>
#include <mutex>

namespace verdict::coop {

// What a fiber's event loop provides; installed for the current thread while one of its
// fibers runs.
class Scheduler {
 public:
  virtual ~Scheduler() = default;
  // Suspends the running fiber until `fd` has one of `events` (POLLIN, POLLOUT) or
  // `timeout_ms` passes (< 0: no limit). Returns as poll() on one fd would: 1 ready, 0
  // timed out. One fiber at a time may wait on a given descriptor (a socket belongs to
  // one user at a time).
  virtual int WaitFd(int fd, short events, int timeout_ms) = 0;
  // Suspends the running fiber for `ms` (0: until the loop's next turn).
  virtual void Sleep(int ms) = 0;
};

// The scheduler of the fiber running on this thread, or null on an ordinary thread.
Scheduler* Current();
// Installed by the loop around each fiber it resumes (null after).
void SetCurrent(Scheduler* scheduler);

// poll() on one fd, cooperatively. Returns 1 ready (any revents), 0 timed out, -1 error
// (errno set; never on a fiber).
int WaitFd(int fd, short events, int timeout_ms);
void SleepFor(std::chrono::milliseconds duration);

// std::lock_guard for a mutex that fibers contend for: on a fiber it retries try_lock,
// yielding to the loop in between, instead of blocking the loop's thread.
class MutexLock {
 public:
  explicit MutexLock(std::mutex& mu);
  ~MutexLock() { mu_.unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  std::mutex& mu_;
};

}  // namespace verdict::coop

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
#include <cstdint>
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
  // The same for a socket waited on again and again (Descriptor below). `id` tells this
  // socket from any earlier one that had the same number. A loop may keep it registered
  // between waits; by default it is waited on like any descriptor.
  virtual int WaitDescriptor(int fd, uint64_t id, short events, int timeout_ms) {
    (void)id;
    return WaitFd(fd, events, timeout_ms);
  }
  // Suspends the running fiber for `ms` (0: until the loop's next turn).
  virtual void Sleep(int ms) = 0;
};

// A socket that one owner waits on many times over its life (a database connection): an
// event loop keeps it registered across waits rather than arming it for each one. Every
// wait on the socket must then go through the Descriptor, never through WaitFd(int), and
// the Descriptor must not outlive the socket's descriptor number: construct one for each
// new socket (ids are never reused, numbers are).
class Descriptor {
 public:
  explicit Descriptor(int fd);
  int fd() const { return fd_; }
  uint64_t id() const { return id_; }

 private:
  int fd_;
  uint64_t id_;
};

// The scheduler of the fiber running on this thread, or null on an ordinary thread.
Scheduler* Current();
// Installed by the loop around each fiber it resumes (null after).
void SetCurrent(Scheduler* scheduler);

// poll() on one fd, cooperatively. Returns 1 ready (any revents), 0 timed out, -1 error
// (errno set; never on a fiber).
int WaitFd(int fd, short events, int timeout_ms);
int WaitFd(const Descriptor& d, short events, int timeout_ms);
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

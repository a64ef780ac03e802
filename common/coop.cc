#include "common/coop.h"

#include <poll.h>

#include <atomic>
#include <cerrno>
#include <thread>

namespace verdict::coop {

namespace {
thread_local Scheduler* current = nullptr;
std::atomic<uint64_t> next_descriptor_id{1};

int PollOne(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  while (true) {
    const int n = ::poll(&p, 1, timeout_ms);
    if (n >= 0 || errno != EINTR) return n > 0 ? 1 : n;
  }
}
}  // namespace

Descriptor::Descriptor(int fd) : fd_(fd), id_(next_descriptor_id.fetch_add(1)) {}

Scheduler* Current() { return current; }
void SetCurrent(Scheduler* scheduler) { current = scheduler; }

int WaitFd(int fd, short events, int timeout_ms) {
  if (current != nullptr) return current->WaitFd(fd, events, timeout_ms);
  return PollOne(fd, events, timeout_ms);
}

int WaitFd(const Descriptor& d, short events, int timeout_ms) {
  if (current != nullptr) return current->WaitDescriptor(d.fd(), d.id(), events, timeout_ms);
  return PollOne(d.fd(), events, timeout_ms);
}

void SleepFor(std::chrono::milliseconds duration) {
  if (current != nullptr) {
    current->Sleep(static_cast<int>(duration.count()));
  } else {
    std::this_thread::sleep_for(duration);
  }
}

MutexLock::MutexLock(std::mutex& mu) : mu_(mu) {
  if (current == nullptr) {
    mu_.lock();
    return;
  }
  // Held by another fiber of this loop (which must run to release it) or by another
  // thread: let the loop turn, briefly at first, then a millisecond at a time.
  for (int tries = 0; !mu_.try_lock(); ++tries) current->Sleep(tries < 16 ? 0 : 1);
}

}  // namespace verdict::coop

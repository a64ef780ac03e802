#include "thrift/fiber_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <thrift/TOutput.h>
#include <thrift/processor/TMultiplexedProcessor.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/context/fiber.hpp>
#include <boost/context/protected_fixedsize_stack.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <vector>

#include "common/coop.h"

namespace verdict::rpc {

namespace ctx = boost::context;
using apache::thrift::transport::TMemoryBuffer;
using Clock = std::chrono::steady_clock;

namespace {

// How long Stop() lets requests in progress finish before it gives up on them.
constexpr auto kStopGrace = std::chrono::seconds(30);
constexpr size_t kReadChunk = 16 * 1024;
// What makes a read of the client connection worth trying.
constexpr uint32_t kReadable = EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR;

void ThriftLog(const char* message) { spdlog::debug("thrift: {}", message); }

void SetNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

}  // namespace

class FiberServer::Loop : public coop::Scheduler {
  struct Fiber;

 public:
  // Loop 0 owns the listeners and hands accepted connections round-robin to `loops`
  // (itself included); the others only serve what they are handed.
  Loop(const Options& options,
       const std::map<std::string, std::shared_ptr<apache::thrift::TProcessor>>& services,
       const std::vector<std::unique_ptr<Loop>>* loops, bool listens)
      : options_(options),
        loops_(loops),
        listens_(listens),
        protocol_(std::make_shared<apache::thrift::protocol::TBinaryProtocolFactory>(
            /*string_limit=*/static_cast<int32_t>(options.max_frame_bytes),
            /*container_limit=*/1 << 20, /*strict_read=*/true, /*strict_write=*/true)) {
    apache::thrift::GlobalOutput.setOutputFunction(ThriftLog);
    auto mux = std::make_shared<apache::thrift::TMultiplexedProcessor>();
    for (const auto& [name, processor] : services) mux->registerProcessor(name, processor);
    processor_ = mux;
  }

  ~Loop() override {
    for (const Listener& l : listeners_) ::close(l.fd);
    if (wake_fd_ >= 0) ::close(wake_fd_);
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
  }

  Status Start() {
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (epoll_fd_ < 0 || wake_fd_ < 0) return Status::IOError("epoll/eventfd: " + Errno());
    wake_handle_.kind = Handle::kWake;
    Watch(wake_fd_, &wake_handle_, EPOLLIN);
    if (listens_) {
      VERDICT_RETURN_IF_ERROR(ListenTcp());
      if (!options_.unix_path.empty()) VERDICT_RETURN_IF_ERROR(ListenUnix());
    }
    for (Listener& l : listeners_) Watch(l.fd, &l.handle, EPOLLIN);
    thread_ = std::thread([this] { Run(); });
    return Status::OK();
  }

  // Stop is in two steps so that every loop of a server stops at once: BeginStop, then
  // Join on each.
  void BeginStop() {
    stopping_.store(true);
    const uint64_t one = 1;
    if (wake_fd_ >= 0) (void)!::write(wake_fd_, &one, sizeof one);
  }
  void Join() {
    if (!thread_.joinable()) return;
    thread_.join();
    TakeAdopted(/*stopping=*/true);  // handed over while this loop was stopping: closed
    if (listens_ && !options_.unix_path.empty()) ::unlink(options_.unix_path.c_str());
  }

  // Called by loop 0's thread: serve this accepted connection.
  void Adopt(int fd) {
    {
      std::lock_guard<std::mutex> l(adopt_mu_);
      adopted_.push_back(fd);
    }
    const uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
  }

  // coop::Scheduler, called on a fiber of this loop.
  //
  // A descriptor stays in the epoll set once it has been waited for (closing it removes
  // it), armed one-shot for the fiber that waits: one epoll_ctl per wait. A wait that ends
  // otherwise (timer, Stop) takes it out of the set, so no event (not even a hang-up,
  // which epoll reports whatever the mask) can name a fiber that is gone.
  int WaitFd(int fd, short events, int timeout_ms) override {
    Fiber* f = running_;
    if (fd == f->fd) return WaitClient(f, events, timeout_ms, /*consume=*/true);
    if (fd >= 0 && static_cast<size_t>(fd) < watched_.size() && watched_[fd] != nullptr) {
      watched_[fd]->id = 0;  // re-registered below: the next WaitDescriptor must too
    }
    epoll_event ev{};
    ev.events = EpollEvents(events) | EPOLLONESHOT;
    ev.data.ptr = &f->handle;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) != 0 &&
        (errno != ENOENT || ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0)) {
      return PollLater(fd, events);
    }
    Suspend(f, timeout_ms);
    if (!f->woken_by_fd) ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    return f->woken_by_fd ? 1 : 0;
  }

  // A coop::Descriptor stays registered, level-triggered, between waits: while the same
  // socket is waited on for the same events, a wait costs no epoll_ctl. An event that finds
  // no fiber waiting (data nobody asked for yet, a hang-up while idle in a pool) disarms it
  // (one-shot with no events, so even a lasting hang-up is reported once); the next wait
  // arms it again. A socket another loop or thread uses meanwhile is at most disarmed here.
  int WaitDescriptor(int fd, uint64_t id, short events, int timeout_ms) override {
    Fiber* f = running_;
    if (fd < 0 || fd == f->fd) return WaitFd(fd, events, timeout_ms);
    if (static_cast<size_t>(fd) >= watched_.size()) watched_.resize(static_cast<size_t>(fd) + 1);
    std::unique_ptr<Watched>& slot = watched_[static_cast<size_t>(fd)];
    if (slot == nullptr) {
      slot = std::make_unique<Watched>();
      slot->handle.kind = Handle::kWatched;
      slot->handle.watched = slot.get();
      slot->fd = fd;
    }
    Watched* w = slot.get();
    const uint32_t want = EpollEvents(events);
    if (w->id != id || w->armed != want) {
      // A new socket under this number is added (the old one left the set when it was
      // closed); if the number is in the set already (waited for by WaitFd), modified.
      epoll_event ev{};
      ev.events = want;
      ev.data.ptr = &w->handle;
      const int op = w->id != id ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
      if (::epoll_ctl(epoll_fd_, op, fd, &ev) != 0 &&
          ((errno != EEXIST && errno != ENOENT) ||
           ::epoll_ctl(epoll_fd_, errno == EEXIST ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) != 0)) {
        w->id = 0;
        return PollLater(fd, events);
      }
      w->id = id;
      w->armed = want;
    }
    w->waiter = f;
    Suspend(f, timeout_ms);
    w->waiter = nullptr;
    return f->woken_by_fd ? 1 : 0;
  }

  void Sleep(int ms) override { Suspend(running_, ms); }

 private:
  struct Watched;
  struct Handle {
    enum Kind { kFiber, kClient, kListener, kWake, kWatched } kind = kFiber;
    Fiber* fiber = nullptr;
    Watched* watched = nullptr;
  };
  // A coop::Descriptor's registration (WaitDescriptor). Kept, per descriptor number, for
  // the loop's life: epoll may still hold its address.
  struct Watched {
    Handle handle;
    int fd = -1;
    uint64_t id = 0;     // the socket registered under this number; 0: none known
    uint32_t armed = 0;  // the events it is registered for (0: disarmed)
    Fiber* waiter = nullptr;
  };
  struct Fiber {
    Handle handle;                            // events of the descriptor it waits for (one-shot)
    Handle client{Handle::kClient, nullptr};  // events of its connection (edge-triggered)
    int fd = -1;                              // its client connection
    uint32_t client_events = 0;               // seen on `fd` and not yet consumed by a wait
    uint32_t waiting_client = 0;              // the events it waits for on `fd`, while it does
    ctx::fiber self;                          // while suspended: where to resume it
    ctx::fiber* sink = nullptr;               // while running: the loop, to suspend to
    bool waiting = false;                     // suspended in Suspend(), not yet woken
    bool woken_by_fd = false;                 // the last wake-up: its fd (else a timer or Stop)
    bool idle = false;                        // waiting for a request (Stop may close it)
    std::multimap<Clock::time_point, Fiber*>::iterator timer;
    bool has_timer = false;
  };
  struct Listener {
    int fd = -1;
    Handle handle;
  };

  static std::string Errno() { return std::strerror(errno); }

  static uint32_t EpollEvents(short events) {
    return ((events & POLLIN) != 0 ? EPOLLIN : 0u) | ((events & POLLOUT) != 0 ? EPOLLOUT : 0u);
  }

  // Not a pollable descriptor: ask poll() now, and let the caller come back.
  int PollLater(int fd, short events) {
    pollfd p{fd, events, 0};
    if (::poll(&p, 1, 0) > 0) return 1;
    Sleep(1);
    return 0;
  }

  // The fiber's own connection is watched edge-triggered for its whole life (no epoll_ctl
  // per wait): the loop accumulates its events in `client_events`, and a wait returns at
  // once if one arrived since they were last consumed. With `consume`, the wait consumes
  // them (a stale one then costs the caller one EAGAIN); otherwise the caller clears what
  // it found to be over (ReadAtLeast, WriteAll).
  int WaitClient(Fiber* f, short events, int timeout_ms, bool consume) {
    const uint32_t want = ((events & POLLIN) != 0 ? kReadable : 0u) |
                          ((events & POLLOUT) != 0 ? EPOLLOUT : 0u) | EPOLLHUP | EPOLLERR;
    if ((f->client_events & want) == 0) {
      f->waiting_client = want;
      Suspend(f, timeout_ms);
      f->waiting_client = 0;
      if (!f->woken_by_fd) return 0;
    }
    if (consume) f->client_events &= ~want;
    return 1;
  }

  void Watch(int fd, Handle* h, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = h;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  }

  Status ListenTcp() {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    addrinfo* found = nullptr;
    const std::string port = std::to_string(options_.port);
    const int rc = ::getaddrinfo(options_.host.empty() ? nullptr : options_.host.c_str(),
                                 port.c_str(), &hints, &found);
    if (rc != 0) {
      return Status::IOError("cannot listen on " + options_.host + ":" + port + ": " +
                             ::gai_strerror(rc));
    }
    std::string error = "no address";
    for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
      const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
      if (fd < 0) continue;
      const int one = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 1024) == 0) {
        SetNonBlocking(fd);
        AddListener(fd);
        ::freeaddrinfo(found);
        return Status::OK();
      }
      error = Errno();
      ::close(fd);
    }
    ::freeaddrinfo(found);
    return Status::IOError("cannot listen on " + options_.host + ":" + port + ": " + error);
  }

  Status ListenUnix() {
    const std::string& path = options_.unix_path;
    sockaddr_un addr{};
    if (path.size() >= sizeof(addr.sun_path)) {
      return Status::InvalidArgument("unix socket path too long: " + path);
    }
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    struct stat st;
    if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
      // A socket file left by an earlier run is replaced, unless a server answers on it.
      const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      const bool live = ::connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
      ::close(probe);
      if (live) return Status::IOError("cannot listen on unix:" + path + ": a server is using it");
      ::unlink(path.c_str());
    }
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd, 1024) != 0) {
      const std::string error = Errno();
      if (fd >= 0) ::close(fd);
      return Status::IOError("cannot listen on unix:" + path + ": " + error);
    }
    SetNonBlocking(fd);
    AddListener(fd);
    return Status::OK();
  }

  void AddListener(int fd) {
    listeners_.reserve(2);  // handles are pointed to by epoll: no reallocation after
    Listener l;
    l.fd = fd;
    l.handle.kind = Handle::kListener;
    listeners_.push_back(l);
  }

  // Suspends `f` until its fd (watched by the caller), `timeout_ms` (< 0: none; 0: the
  // next turn) or Stop (idle fibers only) wakes it.
  void Suspend(Fiber* f, int timeout_ms) {
    f->waiting = true;
    f->woken_by_fd = false;
    if (timeout_ms >= 0) {
      f->timer = timers_.emplace(Clock::now() + std::chrono::milliseconds(timeout_ms), f);
      f->has_timer = true;
    }
    *f->sink = std::move(*f->sink).resume();
  }

  void Wake(Fiber* f, bool by_fd) {
    if (!f->waiting) return;
    f->waiting = false;
    f->woken_by_fd = by_fd;
    if (f->has_timer) {
      timers_.erase(f->timer);
      f->has_timer = false;
    }
    ready_.push_back(f);
  }

  void OnWatched(Watched* w) {
    if (w->waiter != nullptr) {
      Wake(w->waiter, /*by_fd=*/true);
    } else if (w->armed != 0) {
      Disarm(w);
    }
  }

  void Disarm(Watched* w) {
    epoll_event ev{};
    ev.events = EPOLLONESHOT;
    ev.data.ptr = &w->handle;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, w->fd, &ev) != 0) w->id = 0;  // gone: re-add
    w->armed = 0;
  }

  void Accept(int listener) {
    while (true) {
      const int fd = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;  // EAGAIN, or a connection that went away: nothing to do
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // fails on unix: fine
      Loop* to = (*loops_)[next_loop_++ % loops_->size()].get();
      if (to == this) {
        StartFiber(fd);
      } else {
        to->Adopt(fd);
      }
    }
  }

  void StartFiber(int fd) {
    auto* f = new Fiber;
    f->fd = fd;
    f->handle.fiber = f;
    f->client.fiber = f;
    Watch(fd, &f->client, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
    f->self = ctx::fiber(std::allocator_arg, ctx::protected_fixedsize_stack(options_.stack_bytes),
                         [this, f](ctx::fiber&& sink) {
                           f->sink = &sink;
                           Serve(f);
                           return std::move(sink);
                         });
    fibers_.insert(f);
    ready_.push_back(f);
  }

  void TakeAdopted(bool stopping) {
    std::vector<int> fds;
    {
      std::lock_guard<std::mutex> l(adopt_mu_);
      fds.swap(adopted_);
    }
    for (int fd : fds) {
      if (stopping) {
        ::close(fd);
      } else {
        StartFiber(fd);
      }
    }
  }

  // Reads until `buf` holds at least `n` bytes. False on EOF, error or Stop (when idle).
  //
  // A read shorter than asked for emptied the socket (a stream socket returns what it
  // holds, up to the size asked): the next read waits for the next edge instead of
  // costing an EAGAIN. EPOLLRDHUP is registered, so an end of stream that came with the
  // last data stays visible as its own bit.
  bool ReadAtLeast(Fiber* f, std::string& buf, size_t n, bool idle) {
    char chunk[kReadChunk];
    while (buf.size() < n) {
      if ((f->client_events & kReadable) == 0) {
        if (idle && stopping_.load()) return false;
        f->idle = idle;
        const int ready = WaitClient(f, POLLIN, -1, /*consume=*/false);
        f->idle = false;
        if (ready == 0) return false;  // woken by Stop
      }
      const ssize_t got = ::recv(f->fd, chunk, sizeof chunk, 0);
      if (got > 0) {
        buf.append(chunk, static_cast<size_t>(got));
        if (static_cast<size_t>(got) < sizeof chunk) f->client_events &= ~EPOLLIN;
        continue;
      }
      if (got == 0) return false;
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
      f->client_events &= ~kReadable;
    }
    return true;
  }

  bool WriteAll(Fiber* f, const uint8_t* data, size_t n) {
    while (n > 0) {
      const ssize_t sent = ::send(f->fd, data, n, MSG_NOSIGNAL);
      if (sent > 0) {
        data += sent;
        n -= static_cast<size_t>(sent);
        continue;
      }
      if (sent < 0 && errno == EINTR) continue;
      if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        f->client_events &= ~EPOLLOUT;
        if (WaitClient(f, POLLOUT, -1, /*consume=*/false) == 0) return false;
        continue;
      }
      return false;
    }
    return true;
  }

  // One connection: request, process, answer, until the client leaves or Stop.
  void Serve(Fiber* f) {
    try {
      auto in = std::make_shared<TMemoryBuffer>();
      auto out = std::make_shared<TMemoryBuffer>();
      auto iprot = protocol_->getProtocol(in);
      auto oprot = protocol_->getProtocol(out);
      std::string buf;
      while (ReadAtLeast(f, buf, 4, /*idle=*/buf.empty())) {
        uint32_t be = 0;
        std::memcpy(&be, buf.data(), 4);
        const uint32_t size = ntohl(be);
        if (size == 0 || size > options_.max_frame_bytes) {
          spdlog::debug("rpc: closing a connection that sent a frame of {} bytes (limit {})", size,
                        options_.max_frame_bytes);
          break;
        }
        if (!ReadAtLeast(f, buf, 4 + static_cast<size_t>(size), /*idle=*/false)) break;
        in->resetBuffer(reinterpret_cast<uint8_t*>(buf.data()) + 4, size);
        // The reply is written after a 4-byte hole for its length, so that the frame
        // leaves in one send (two would be two segments, and two wake-ups of the client).
        out->resetBuffer();
        const uint8_t hole[4] = {0, 0, 0, 0};
        out->write(hole, sizeof hole);
        if (!processor_->process(iprot, oprot, nullptr)) break;
        buf.erase(0, 4 + static_cast<size_t>(size));
        uint8_t* frame = nullptr;
        uint32_t length = 0;
        out->getBuffer(&frame, &length);
        if (length == sizeof hole) continue;  // a oneway call: no reply
        const uint32_t header = htonl(length - static_cast<uint32_t>(sizeof hole));
        std::memcpy(frame, &header, sizeof header);
        if (!WriteAll(f, frame, length)) break;
      }
    } catch (const std::exception& e) {
      spdlog::debug("rpc: closing a connection: {}", e.what());
    }
    ::close(f->fd);
    f->fd = -1;
  }

  void Resume(Fiber* f) {
    running_ = f;
    coop::SetCurrent(this);
    f->self = std::move(f->self).resume();
    coop::SetCurrent(nullptr);
    running_ = nullptr;
    if (!f->self) {  // Serve returned
      fibers_.erase(f);
      delete f;
    }
  }

  void Run() {
    std::vector<epoll_event> events(256);
    bool closed_listeners = false;
    Clock::time_point give_up{};
    while (true) {
      if (stopping_.load() && !closed_listeners) {
        closed_listeners = true;
        give_up = Clock::now() + kStopGrace;
        for (Listener& l : listeners_) {
          ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, l.fd, nullptr);
          ::close(l.fd);
          l.fd = -1;
        }
        for (Fiber* f : fibers_) {
          if (f->idle) Wake(f, /*by_fd=*/false);
        }
      }
      if (closed_listeners && fibers_.empty() && ready_.empty()) break;
      if (closed_listeners && Clock::now() >= give_up) {
        spdlog::warn("rpc: stopping with {} request(s) still in progress", fibers_.size());
        break;  // their fibers are left suspended; the process is exiting
      }
      int timeout_ms = -1;
      if (!ready_.empty()) {
        timeout_ms = 0;
      } else if (!timers_.empty() || closed_listeners) {
        const Clock::time_point next =
            timers_.empty()
                ? Clock::now() + std::chrono::milliseconds(100)
                : std::min(timers_.begin()->first, Clock::now() + std::chrono::milliseconds(100));
        timeout_ms = static_cast<int>(std::max<int64_t>(
            0, std::chrono::ceil<std::chrono::milliseconds>(next - Clock::now()).count()));
      }
      const int n =
          ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), timeout_ms);
      // New connections are registered only after every event of the batch is handled: an
      // event of a socket closed meanwhile (by another thread) still names its number, and
      // must not reach a new connection that reused it (OnWatched's Disarm would).
      bool woken = false;
      std::vector<Handle*> listening;
      for (int i = 0; i < n; ++i) {
        auto* h = static_cast<Handle*>(events[static_cast<size_t>(i)].data.ptr);
        switch (h->kind) {
          case Handle::kWake:
            woken = true;
            break;
          case Handle::kListener:
            listening.push_back(h);
            break;
          case Handle::kFiber:
            Wake(h->fiber, /*by_fd=*/true);
            break;
          case Handle::kWatched:
            OnWatched(h->watched);
            break;
          case Handle::kClient: {
            Fiber* f = h->fiber;
            f->client_events |= events[static_cast<size_t>(i)].events;
            if ((f->client_events & f->waiting_client) != 0) Wake(f, /*by_fd=*/true);
            break;
          }
        }
      }
      if (woken) {
        uint64_t count;
        (void)!::read(wake_fd_, &count, sizeof count);
        TakeAdopted(closed_listeners);
      }
      for (Handle* h : listening) {
        for (Listener& l : listeners_) {
          if (&l.handle == h && l.fd >= 0) Accept(l.fd);
        }
      }
      const Clock::time_point now = Clock::now();
      while (!timers_.empty() && timers_.begin()->first <= now) {
        Fiber* f = timers_.begin()->second;
        timers_.erase(timers_.begin());
        f->has_timer = false;
        Wake(f, /*by_fd=*/false);
      }
      std::vector<Fiber*> run;
      run.swap(ready_);
      for (Fiber* f : run) Resume(f);
    }
  }

  const Options options_;
  const std::vector<std::unique_ptr<Loop>>* const loops_;
  const bool listens_;
  size_t next_loop_ = 0;  // loop 0's thread only
  std::mutex adopt_mu_;
  std::vector<int> adopted_;  // guarded by adopt_mu_
  std::shared_ptr<apache::thrift::protocol::TProtocolFactory> protocol_;
  std::shared_ptr<apache::thrift::TProcessor> processor_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  Handle wake_handle_;
  std::vector<Listener> listeners_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};

  // Loop thread only.
  std::unordered_set<Fiber*> fibers_;
  std::vector<Fiber*> ready_;
  std::multimap<Clock::time_point, Fiber*> timers_;
  Fiber* running_ = nullptr;
  std::vector<std::unique_ptr<Watched>> watched_;  // by descriptor number
};

FiberServer::FiberServer(
    Options options,
    const std::map<std::string, std::shared_ptr<apache::thrift::TProcessor>>& services)
    : options_(std::move(options)) {
  for (int i = 0; i < std::max(1, options_.loops); ++i) {
    loops_.push_back(std::make_unique<Loop>(options_, services, &loops_, /*listens=*/i == 0));
  }
}

FiberServer::~FiberServer() { Stop(); }

Status FiberServer::Start() {
  // The serving loops first, so that loop 0 never hands a connection to a loop not running.
  for (size_t i = loops_.size(); i-- > 0;) {
    Status s = loops_[i]->Start();
    if (!s.ok()) {
      Stop();
      return s;
    }
  }
  return Status::OK();
}

void FiberServer::Stop() {
  for (auto& loop : loops_) loop->BeginStop();
  for (auto& loop : loops_) loop->Join();
}

}  // namespace verdict::rpc

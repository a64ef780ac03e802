// FiberServer and common/coop.h (with 1, 2 and 3 event loops): a loop serves many
// connections; a request that
// waits cooperatively (on a descriptor, a contended mutex, a sleep) lets the others be
// served; bad input closes only its own connection; Stop closes idle connections and lets
// requests in progress finish. Also: coop.h's calls off a fiber behave like blocking ones.
#include "thrift/fiber_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <ctime>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ParticipantService.h"
#include "common/coop.h"
#include "thrift/thrift_channel.h"

namespace verdict::rpc {
namespace {

using Clock = std::chrono::steady_clock;

// Execute's sql says what to do before answering (rows_affected = a sequence number):
//   "now"      answer at once
//   "pipe"     wait (cooperatively) until the test writes to the pipe, then answer
//   "lock"     take the shared mutex, wait for the pipe, answer
//   "lockonly" take the shared mutex and answer
//   "sleep"    coop::SleepFor(50 ms), then answer
//   "desc"     wait on the shared socket's coop::Descriptor, read a byte, answer
//   "descnew"  replace the shared socket (closing the old: its number is reused), then "desc"
class Handler : public ParticipantServiceNull {
 public:
  Handler() { NewSocket(); }
  ~Handler() override {
    ::close(sock_[0]);
    ::close(sock_[1]);
  }
  // The test's end of the shared socket, and how many times it was replaced.
  int peer() const { return peer_.load(); }
  int generation() const { return generation_.load(); }

  // Lets the longest-waiting "pipe"/"lock" request go on.
  void Release() {
    int fd = -1;
    while (fd < 0) {
      {
        std::lock_guard<std::mutex> l(pipes_mu_);
        if (!waiting_.empty()) {
          fd = waiting_.front();
          waiting_.erase(waiting_.begin());
        }
      }
      if (fd < 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ASSERT_EQ(::write(fd, "x", 1), 1);
    ::close(fd);
  }
  int started() const { return started_.load(); }

  void Execute(ExecuteResponse& out, const ExecuteRequest& request) override {
    started_.fetch_add(1);
    out.code = ParticipantCode::OK;
    if (request.sql == "pipe") {
      WaitPipe();
    } else if (request.sql == "lock") {
      coop::MutexLock l(mu_);
      WaitPipe();
    } else if (request.sql == "lockonly") {
      coop::MutexLock l(mu_);
    } else if (request.sql == "sleep") {
      coop::SleepFor(std::chrono::milliseconds(50));
    } else if (request.sql == "desc" || request.sql == "descnew") {
      if (request.sql == "descnew") {
        ::close(sock_[0]);
        ::close(sock_[1]);
        NewSocket();
      }
      char c;
      while (::recv(sock_[0], &c, 1, 0) != 1) coop::WaitFd(*desc_, POLLIN, -1);
    }
    out.rows_affected = served_.fetch_add(1);
  }

 private:
  // Waits (cooperatively) on a pipe of its own until Release() writes to it.
  void WaitPipe() {
    int p[2];
    ASSERT_EQ(::pipe2(p, O_NONBLOCK), 0);
    {
      std::lock_guard<std::mutex> l(pipes_mu_);
      waiting_.push_back(p[1]);
    }
    char c;
    while (::read(p[0], &c, 1) != 1) coop::WaitFd(p[0], POLLIN, -1);
    ::close(p[0]);
  }

  void NewSocket() {
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sock_), 0);
    desc_ = std::make_unique<coop::Descriptor>(sock_[0]);
    peer_.store(sock_[1]);
    generation_.fetch_add(1);
  }

  int sock_[2] = {-1, -1};  // one "desc" request at a time uses it
  std::unique_ptr<coop::Descriptor> desc_;
  std::atomic<int> peer_{-1};
  std::atomic<int> generation_{0};
  std::mutex pipes_mu_;       // never held across a wait
  std::vector<int> waiting_;  // write ends, oldest first
  std::mutex mu_;             // the contended one
  std::atomic<int> started_{0};
  std::atomic<int> served_{0};
};

// The parameter: how many event loops the server runs.
class FiberServerTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    handler_ = std::make_shared<Handler>();
    StartServer();
  }
  void TearDown() override {
    if (server_) server_->Stop();
  }

  void StartServer() {
    for (int attempt = 0; attempt < 20; ++attempt) {
      FiberServer::Options o;
      o.host = "127.0.0.1";
      o.port = 20000 + static_cast<int>((::getpid() * 7 + attempt * 131) % 30000);
      o.unix_path = ::testing::TempDir() + "/fiber_server_test." + std::to_string(::getpid());
      o.max_frame_bytes = 4096;
      o.loops = GetParam();
      auto server = std::make_unique<FiberServer>(
          o, std::map<std::string, std::shared_ptr<apache::thrift::TProcessor>>{
                 {"Participant", std::make_shared<ParticipantServiceProcessor>(handler_)}});
      if (server->Start().ok()) {
        server_ = std::move(server);
        address_ = "127.0.0.1:" + std::to_string(o.port);
        unix_address_ = "unix:" + o.unix_path;
        return;
      }
    }
    FAIL() << "no free port";
  }

  // One call on a fresh connection; returns rows_affected, or -1 on a transport error.
  int64_t Call(const std::string& what, const std::string& address = "") {
    ThriftChannel channel(address.empty() ? address_ : address, "Participant", 5000);
    if (!channel.Open().ok()) return -1;
    ParticipantServiceClient client(channel.protocol());
    ExecuteRequest request;
    request.sql = what;
    ExecuteResponse response;
    try {
      client.Execute(response, request);
    } catch (const std::exception&) {
      return -1;
    }
    return response.rows_affected;
  }

  // Raw bytes to the TCP port; true if the server closed the connection (EOF) within 2 s.
  bool ClosesAfter(const std::string& bytes) {
    std::string host;
    int port = 0;
    EXPECT_TRUE(SplitHostPort(address_, &host, &port).ok());
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    EXPECT_EQ(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()));
    pollfd p{fd, POLLIN, 0};
    bool closed = false;
    if (::poll(&p, 1, 2000) == 1) {
      char buf[64];
      closed = ::recv(fd, buf, sizeof buf, 0) == 0;
    }
    ::close(fd);
    return closed;
  }

  std::shared_ptr<Handler> handler_;
  std::unique_ptr<FiberServer> server_;
  std::string address_, unix_address_;
};

TEST_P(FiberServerTest, AnswersOnTcpAndUnixSocket) {
  EXPECT_GE(Call("now"), 0);
  EXPECT_GE(Call("now", unix_address_), 0);
}

TEST_P(FiberServerTest, AWaitingRequestDoesNotHoldUpTheOthers) {
  std::vector<std::future<int64_t>> waiting;
  for (int i = 0; i < 3; ++i) {
    waiting.push_back(std::async(std::launch::async, [this] { return Call("pipe"); }));
  }
  while (handler_->started() < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  // Three requests are suspended inside the handler; the loop still serves everyone else.
  for (int i = 0; i < 20; ++i) EXPECT_GE(Call(i % 2 == 0 ? "now" : "sleep"), 0);
  for (auto& w : waiting) {
    EXPECT_EQ(w.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);
  }
  for (int i = 0; i < 3; ++i) handler_->Release();
  for (auto& w : waiting) EXPECT_GE(w.get(), 0);
}

TEST_P(FiberServerTest, AMutexHeldAcrossAWaitBlocksOnlyItsContenders) {
  auto holder = std::async(std::launch::async, [this] { return Call("lock"); });
  while (handler_->started() < 1) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  // A second fiber wants the mutex that a suspended fiber holds: it must wait without
  // blocking the loop (a plain lock here would deadlock the whole server).
  auto contender = std::async(std::launch::async, [this] { return Call("lockonly"); });
  while (handler_->started() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_GE(Call("now"), 0);  // the loop is alive
  EXPECT_EQ(contender.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  handler_->Release();
  EXPECT_GE(holder.get(), 0);
  EXPECT_GE(contender.get(), 0);
}

// CPU time this process used (all threads), for telling a busy loop from an idle one.
std::chrono::microseconds ProcessCpu() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::microseconds(ts.tv_nsec / 1000);
}

TEST_P(FiberServerTest, ADescriptorStaysUsableAcrossWaitsReuseAndHangUp) {
  // Waited on again and again, with the byte arriving before or after the wait begins
  // (and by fibers of different loops, when there are several).
  for (int i = 0; i < 6; ++i) {
    if (i % 2 == 0) {
      ASSERT_EQ(::send(handler_->peer(), "x", 1, 0), 1);
    }
    auto call = std::async(std::launch::async, [this] { return Call("desc"); });
    if (i % 2 == 1) {
      EXPECT_EQ(call.wait_for(std::chrono::milliseconds(20)), std::future_status::timeout);
      ASSERT_EQ(::send(handler_->peer(), "x", 1, 0), 1);
    }
    EXPECT_GE(call.get(), 0);
  }
  // Data nobody waits for, then a hang-up while nobody waits: the loop must neither spin
  // nor lose the socket that later takes the same number.
  ASSERT_EQ(::send(handler_->peer(), "yy", 2, 0), 1 + 1);
  EXPECT_GE(Call("now"), 0);
  ::shutdown(handler_->peer(), SHUT_RDWR);
  EXPECT_GE(Call("now"), 0);
  const auto cpu = ProcessCpu();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_LT(ProcessCpu() - cpu, std::chrono::milliseconds(50)) << "the loop spins";
  // A new socket under the same number, after the old one was disarmed (above), then
  // again while the old one is still armed (its last wait ended by its data).
  for (int round = 0; round < 2; ++round) {
    const int generation = handler_->generation();
    auto call = std::async(std::launch::async, [this] { return Call("descnew"); });
    while (handler_->generation() == generation) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    EXPECT_EQ(call.wait_for(std::chrono::milliseconds(20)), std::future_status::timeout);
    ASSERT_EQ(::send(handler_->peer(), "x", 1, 0), 1);
    ASSERT_EQ(call.wait_for(std::chrono::seconds(5)), std::future_status::ready) << round;
    EXPECT_GE(call.get(), 0);
  }
}

TEST_P(FiberServerTest, ManyConnectionsAtOnce) {
  std::vector<std::future<int64_t>> calls;
  for (int i = 0; i < 64; ++i) {
    calls.push_back(std::async(std::launch::async, [this, i] {
      return Call(i % 3 == 0 ? "sleep" : "now", i % 2 == 0 ? address_ : unix_address_);
    }));
  }
  std::vector<bool> seen(64, false);
  for (auto& c : calls) {
    const int64_t n = c.get();
    ASSERT_GE(n, 0);
    ASSERT_LT(n, 64);
    EXPECT_FALSE(seen[static_cast<size_t>(n)]);
    seen[static_cast<size_t>(n)] = true;
  }
}

TEST_P(FiberServerTest, OversizedFrameOrGarbageClosesOnlyThatConnection) {
  const uint32_t too_big = htonl(4097);
  EXPECT_TRUE(ClosesAfter(std::string(reinterpret_cast<const char*>(&too_big), 4)));
  const uint32_t zero = 0;
  EXPECT_TRUE(ClosesAfter(std::string(reinterpret_cast<const char*>(&zero), 4)));
  const uint32_t ten = htonl(10);
  EXPECT_TRUE(ClosesAfter(std::string(reinterpret_cast<const char*>(&ten), 4) + "0123456789"));
  EXPECT_GE(Call("now"), 0);
}

TEST_P(FiberServerTest, StopClosesIdleConnectionsAndFinishesRequestsInProgress) {
  ThriftChannel idle(address_, "Participant", 5000);
  ASSERT_TRUE(idle.Open().ok());
  auto in_progress = std::async(std::launch::async, [this] { return Call("pipe"); });
  while (handler_->started() < 1) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  auto stopped = std::async(std::launch::async, [this] { server_->Stop(); });
  // Stop waits for the request in progress...
  EXPECT_EQ(stopped.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout);
  handler_->Release();
  // ...which is answered; then Stop returns, and nothing is served any more.
  EXPECT_GE(in_progress.get(), 0);
  EXPECT_EQ(stopped.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(Call("now"), -1);
}

INSTANTIATE_TEST_SUITE_P(Loops, FiberServerTest, ::testing::Values(1, 2, 3),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return std::to_string(info.param) + "_loops";
                         });

TEST(CoopTest, OffAFiberTheCallsBlockTheThread) {
  EXPECT_EQ(coop::Current(), nullptr);
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  const auto start = Clock::now();
  EXPECT_EQ(coop::WaitFd(p[0], POLLIN, 30), 0);  // times out
  EXPECT_GE(Clock::now() - start, std::chrono::milliseconds(25));
  ASSERT_EQ(::write(p[1], "x", 1), 1);
  EXPECT_EQ(coop::WaitFd(p[0], POLLIN, 1000), 1);
  ::close(p[0]);
  ::close(p[1]);

  std::mutex mu;
  std::atomic<bool> got{false};
  std::thread other;
  {
    coop::MutexLock l(mu);
    other = std::thread([&] {
      coop::MutexLock l2(mu);
      got = true;
    });
    coop::SleepFor(std::chrono::milliseconds(20));
    EXPECT_FALSE(got.load());
  }
  other.join();
  EXPECT_TRUE(got.load());
}

}  // namespace
}  // namespace verdict::rpc

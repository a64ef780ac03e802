#include "bench/branch_mux.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/protocol/TMultiplexedProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "ParticipantService.h"
#include "participant/rpc_names.h"
#include "thrift/thrift_channel.h"

namespace verdict::bench {

using apache::thrift::TException;
using apache::thrift::protocol::TBinaryProtocol;
using apache::thrift::protocol::TMultiplexedProtocol;
using apache::thrift::transport::TMemoryBuffer;

namespace {

// The same branch rules as BranchClient's.
constexpr const char* kBranch = BranchClient::kBranch;
constexpr int kCommitAttempts = BranchClient::kCommitAttempts;
constexpr auto kCommitRetryDelay = std::chrono::milliseconds(5);
constexpr auto kReconnectDelay = std::chrono::milliseconds(20);
constexpr uint32_t kMaxFrame = 64u << 20;

}  // namespace

struct BranchMux::Conn {
  enum class Step { kIdle, kExecute, kPrepare, kCommit, kAbort, kDown };

  int index = 0;
  int fd = -1;
  Step step = Step::kIdle;
  // The call in flight was sent at `sent`; a Commit to resend waits until `resend_at`; a
  // closed connection reconnects at `resend_at`.
  Clock::time_point sent, resend_at;
  bool waiting_resend = false;
  std::string out, in;
  size_t out_done = 0;

  // The branch in flight.
  uint64_t next_branch = 0;
  std::string gtid;
  Clock::time_point begin, lap;
  BranchClient::Result result;
  BranchClient::Outcome abandon_outcome = BranchClient::Outcome::kVotedNo;
  int commit_attempts = 0;

  std::mt19937_64 rng;
  std::shared_ptr<TMemoryBuffer> out_mem = std::make_shared<TMemoryBuffer>();
  std::shared_ptr<TMemoryBuffer> in_mem = std::make_shared<TMemoryBuffer>();
  std::unique_ptr<rpc::ParticipantServiceClient> client;
};

BranchMux::BranchMux(Options options) : options_(std::move(options)) {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  for (int i = 0; i < options_.connections; ++i) {
    auto c = std::make_unique<Conn>();
    c->index = i;
    c->rng.seed(options_.seed * 1000003u + static_cast<uint64_t>(i));
    auto oprot = std::make_shared<TMultiplexedProtocol>(
        std::make_shared<TBinaryProtocol>(c->out_mem), participant::kParticipantServiceName);
    auto iprot = std::make_shared<TBinaryProtocol>(c->in_mem);
    c->client = std::make_unique<rpc::ParticipantServiceClient>(iprot, oprot);
    conns_.push_back(std::move(c));
  }
}

BranchMux::~BranchMux() {
  for (auto& c : conns_) Close(c.get());
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

bool BranchMux::Open(Conn* c) {
  Close(c);
  const std::string& address = options_.address;
  int fd = -1;
  if (address.rfind(rpc::kUnixPrefix, 0) == 0) {
    const std::string path = address.substr(std::strlen(rpc::kUnixPrefix));
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof(sa.sun_path)) return false;
    std::memcpy(sa.sun_path, path.data(), path.size());
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
      if (fd >= 0) close(fd);
      return false;
    }
  } else {
    std::string host;
    int port = 0;
    if (!rpc::SplitHostPort(address, &host, &port).ok()) return false;
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) return false;
    for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
      fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
      if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
        close(fd);
        fd = -1;
      }
    }
    freeaddrinfo(found);
    if (fd < 0) return false;
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = c;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    close(fd);
    return false;
  }
  c->fd = fd;
  c->step = Conn::Step::kIdle;
  c->out.clear();
  c->out_done = 0;
  c->in.clear();
  return true;
}

void BranchMux::Close(Conn* c) {
  if (c->fd < 0) return;
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c->fd, nullptr);
  close(c->fd);
  c->fd = -1;
}

int BranchMux::Connect() {
  int failed = 0;
  for (auto& c : conns_) {
    if (!Open(c.get())) {
      c->step = Conn::Step::kDown;
      c->resend_at = Clock::now();
      ++failed;
    }
  }
  return failed;
}

void BranchMux::StartBranch(Conn* c, Clock::time_point now) {
  c->gtid =
      options_.gtid_prefix + std::to_string(c->index) + "-" + std::to_string(c->next_branch++);
  c->result = BranchClient::Result();
  c->begin = c->lap = now;
  c->commit_attempts = 0;
  c->step = Conn::Step::kExecute;
  Send(c);
}

void BranchMux::Send(Conn* c) {
  c->out_mem->resetBuffer();
  switch (c->step) {
    case Conn::Step::kExecute: {
      std::uniform_int_distribution<int64_t> account(1, options_.accounts);
      rpc::ExecuteRequest execute;
      execute.gtid = c->gtid;
      execute.branch = kBranch;
      execute.sql = options_.sql;
      execute.params.resize(1);
      execute.params[0].type = rpc::SqlType::INTEGER;
      execute.params[0].__set_integer(account(c->rng));
      execute.seq = 1;
      execute.open.protocol = rpc::Protocol::TWO_PC;
      execute.__isset.open = true;
      c->client->send_Execute(execute);
      break;
    }
    case Conn::Step::kPrepare: {
      rpc::PrepareRequest prepare;
      prepare.gtid = c->gtid;
      prepare.branch = kBranch;
      rpc::PeerBranch self;
      self.name = options_.participant_name;
      self.address = options_.address;
      self.branch = kBranch;
      prepare.participants.push_back(self);
      c->client->send_Prepare(prepare);
      break;
    }
    case Conn::Step::kCommit: {
      rpc::CommitRequest commit;
      commit.gtid = c->gtid;
      commit.branch = kBranch;
      c->client->send_Commit(commit);
      break;
    }
    case Conn::Step::kAbort: {
      rpc::BranchRequest abort;
      abort.gtid = c->gtid;
      abort.branch = kBranch;
      c->client->send_Abort(abort);
      break;
    }
    case Conn::Step::kIdle:
    case Conn::Step::kDown:
      return;
  }
  uint8_t* payload = nullptr;
  uint32_t size = 0;
  c->out_mem->getBuffer(&payload, &size);
  const uint32_t be = htonl(size);
  c->out.append(reinterpret_cast<const char*>(&be), sizeof(be));
  c->out.append(reinterpret_cast<const char*>(payload), size);
  c->sent = Clock::now();
  Flush(c);  // a failure shows as a hang-up or a timeout in the loop
}

bool BranchMux::Flush(Conn* c) {
  while (c->out_done < c->out.size()) {
    const ssize_t n =
        send(c->fd, c->out.data() + c->out_done, c->out.size() - c->out_done, MSG_NOSIGNAL);
    if (n > 0) {
      c->out_done += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLOUT;
      ev.data.ptr = c;
      epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c->fd, &ev);
      return true;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return false;
    }
  }
  c->out.clear();
  c->out_done = 0;
  return true;
}

void BranchMux::Finish(Conn* c, BranchClient::Outcome outcome, std::string message,
                       Clock::time_point now) {
  c->result.outcome = outcome;
  if (c->result.message.empty()) c->result.message = std::move(message);
  c->step = c->fd >= 0 ? Conn::Step::kIdle : Conn::Step::kDown;
  (*on_branch_)(c->index, c->result, c->begin, now);
}

void BranchMux::Abandon(Conn* c, BranchClient::Outcome outcome, std::string message) {
  c->abandon_outcome = outcome;
  c->result.message = std::move(message);
  c->step = Conn::Step::kAbort;
  Send(c);
}

void BranchMux::Fail(Conn* c, const std::string& why, Clock::time_point now) {
  Close(c);
  c->resend_at = now + kReconnectDelay;
  if (c->step == Conn::Step::kIdle || c->step == Conn::Step::kDown) {
    c->step = Conn::Step::kDown;
    return;
  }
  c->result.message.clear();
  Finish(c, BranchClient::Outcome::kTransport, why, now);
}

void BranchMux::OnAnswer(Conn* c, const std::string& frame, Clock::time_point now) {
  c->in_mem->resetBuffer(reinterpret_cast<uint8_t*>(const_cast<char*>(frame.data())),
                         static_cast<uint32_t>(frame.size()), TMemoryBuffer::OBSERVE);
  auto lap = [&](size_t i) {
    c->result.step[i] = now - c->lap;
    c->lap = now;
  };
  switch (c->step) {
    case Conn::Step::kExecute: {
      rpc::ExecuteResponse executed;
      c->client->recv_Execute(executed);
      lap(0);
      if (executed.code != rpc::ParticipantCode::OK) {
        Abandon(c,
                BranchClient::IsNoVote(executed.code) ? BranchClient::Outcome::kVotedNo
                                                      : BranchClient::Outcome::kRejected,
                BranchClient::CodeText("Execute", executed.code, executed.message));
      } else if (executed.rows_affected != 1) {
        Abandon(c, BranchClient::Outcome::kRejected,
                "Execute: " + std::to_string(executed.rows_affected) + " rows affected");
      } else {
        c->step = Conn::Step::kPrepare;
        Send(c);
      }
      return;
    }
    case Conn::Step::kPrepare: {
      rpc::PrepareResponse prepared;
      c->client->recv_Prepare(prepared);
      lap(1);
      if (prepared.code != rpc::ParticipantCode::OK || prepared.vote != rpc::Vote::YES) {
        const bool no =
            prepared.code == rpc::ParticipantCode::OK || BranchClient::IsNoVote(prepared.code);
        Abandon(c, no ? BranchClient::Outcome::kVotedNo : BranchClient::Outcome::kRejected,
                BranchClient::CodeText("Prepare", prepared.code, prepared.message) + ", vote " +
                    std::to_string(static_cast<int>(prepared.vote)));
      } else {
        c->step = Conn::Step::kCommit;
        ++c->commit_attempts;
        Send(c);
      }
      return;
    }
    case Conn::Step::kCommit: {
      rpc::BranchResponse committed;
      c->client->recv_Commit(committed);
      if (committed.code == rpc::ParticipantCode::UNAVAILABLE &&
          c->commit_attempts < kCommitAttempts) {
        ++c->result.commit_retries;
        c->waiting_resend = true;
        c->resend_at = now + kCommitRetryDelay;
        return;
      }
      lap(2);
      if (committed.code != rpc::ParticipantCode::OK) {
        // A prepared branch must not be aborted by the bench: it stays in doubt.
        Finish(c, BranchClient::Outcome::kRejected,
               BranchClient::CodeText("Commit", committed.code, committed.message), now);
      } else {
        Finish(c, BranchClient::Outcome::kCommitted, "", now);
      }
      return;
    }
    case Conn::Step::kAbort: {
      rpc::BranchResponse ignored;
      c->client->recv_Abort(ignored);
      Finish(c, c->abandon_outcome, "", now);
      return;
    }
    case Conn::Step::kIdle:
    case Conn::Step::kDown:
      Fail(c, "an answer nobody asked for", now);
      return;
  }
}

bool BranchMux::ReadAnswers(Conn* c, Clock::time_point* now) {
  char buf[16384];
  while (true) {
    const ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
    if (n > 0) {
      c->in.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    Fail(c, n == 0 ? "the agent closed the connection" : std::strerror(errno), *now);
    return false;
  }
  *now = Clock::now();
  size_t at = 0;
  while (c->in.size() - at >= 4) {
    uint32_t be = 0;
    std::memcpy(&be, c->in.data() + at, sizeof(be));
    const uint32_t size = ntohl(be);
    if (size > kMaxFrame) {
      Fail(c, "frame of " + std::to_string(size) + " bytes", *now);
      return false;
    }
    if (c->in.size() - at - 4 < size) break;
    const std::string frame = c->in.substr(at + 4, size);
    at += 4 + size;
    try {
      OnAnswer(c, frame, *now);
    } catch (const TException& e) {
      Fail(c, e.what(), *now);
      return false;
    }
    if (c->fd < 0) return false;
  }
  c->in.erase(0, at);
  return true;
}

void BranchMux::Run(Clock::time_point start, Clock::time_point stop, const OnBranch& on_branch,
                    const std::function<bool()>& interrupted) {
  on_branch_ = &on_branch;
  const auto timeout = std::chrono::milliseconds(options_.call_timeout_ms);
  Clock::time_point now = Clock::now();
  std::vector<epoll_event> events(conns_.size() + 1);
  while (true) {
    now = Clock::now();
    const bool starting = now >= start && now < stop && !interrupted();
    bool busy = false;
    for (auto& owned : conns_) {
      Conn* c = owned.get();
      if (c->step == Conn::Step::kDown && starting && now >= c->resend_at) {
        if (!Open(c)) {
          c->step = Conn::Step::kDown;
          c->resend_at = now + kReconnectDelay;
          c->result = BranchClient::Result();
          c->result.message = "cannot connect to " + options_.address;
          on_branch(c->index, c->result, now, now);
          continue;
        }
      }
      if (c->step == Conn::Step::kIdle && starting) StartBranch(c, now);
      if (c->waiting_resend && now >= c->resend_at) {
        c->waiting_resend = false;
        ++c->commit_attempts;
        Send(c);
      }
      if (c->step != Conn::Step::kIdle && c->step != Conn::Step::kDown) {
        busy = true;
        if (!c->waiting_resend && now - c->sent > timeout) Fail(c, "call timed out", now);
      }
    }
    if (!starting && !busy && (now >= stop || interrupted())) return;
    const int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), 5);
    now = Clock::now();
    for (int i = 0; i < n; ++i) {
      Conn* c = static_cast<Conn*>(events[static_cast<size_t>(i)].data.ptr);
      if (c->fd < 0) continue;
      if ((events[static_cast<size_t>(i)].events & EPOLLOUT) != 0) {
        if (!Flush(c)) {
          Fail(c, std::strerror(errno), now);
          continue;
        }
        if (c->out.empty()) {
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.ptr = c;
          epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c->fd, &ev);
        }
      }
      if ((events[static_cast<size_t>(i)].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0) {
        ReadAnswers(c, &now);
      }
    }
  }
}

}  // namespace verdict::bench

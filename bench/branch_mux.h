// BranchMux: many branches on one agent from ONE thread, the way pgbench drives its clients:
// K non-blocking connections under one epoll loop, each running branches one after another
// (Execute with `open` -> Prepare -> Commit, exactly BranchClient's sequence and rules).
// Requests are encoded by the generated ParticipantServiceClient's send_X into a memory
// buffer and framed here; answers are decoded by its recv_X from the received frame.
//
// The thread-per-client driver (BranchClient) costs the benchmark a thread wake-up for
// every answer; on a 2-core machine those wake-ups come out of the database's share. This
// driver lets one wake-up read every answer that has arrived.
// Not thread-safe: Run on one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bench/branch_client.h"

namespace verdict::bench {

class BranchMux {
 public:
  using Clock = std::chrono::steady_clock;
  struct Options {
    std::string address;           // HOST:PORT or unix:PATH
    std::string participant_name;  // the branches' participant list: this agent alone
    int connections = 1;
    int call_timeout_ms = 10000;  // an answer later than this closes the connection
    std::string gtid_prefix;      // unique per run and agent; the branch number is appended
    std::string sql;              // one `?`, bound to a uniformly random id in 1..accounts
    int accounts = 10000;
    uint64_t seed = 1;
  };
  // Called on the loop's thread for every branch that ended (any outcome), with the time
  // its first request was queued and the time its last answer was read.
  using OnBranch = std::function<void(int connection, const BranchClient::Result& result,
                                      Clock::time_point begin, Clock::time_point end)>;

  explicit BranchMux(Options options);
  ~BranchMux();
  BranchMux(const BranchMux&) = delete;
  BranchMux& operator=(const BranchMux&) = delete;

  // Opens every connection (blocking). Returns how many failed; those are retried by Run.
  int Connect();
  // Runs branches from `start` until `stop`: no branch begins at or after `stop`, and the
  // branches in flight then are finished (or time out) before Run returns. A failed
  // connect counts as a kTransport branch of no duration. `interrupted` is polled.
  void Run(Clock::time_point start, Clock::time_point stop, const OnBranch& on_branch,
           const std::function<bool()>& interrupted);

 private:
  struct Conn;
  bool Open(Conn* c);
  void Close(Conn* c);
  void StartBranch(Conn* c, Clock::time_point now);
  void Send(Conn* c);  // encodes the call of c->step into c->out and writes what it can
  bool Flush(Conn* c);
  bool ReadAnswers(Conn* c, Clock::time_point* now);
  void OnAnswer(Conn* c, const std::string& frame, Clock::time_point now);
  void Finish(Conn* c, BranchClient::Outcome outcome, std::string message, Clock::time_point now);
  void Abandon(Conn* c, BranchClient::Outcome outcome, std::string message);
  void Fail(Conn* c, const std::string& why, Clock::time_point now);

  const Options options_;
  int epoll_fd_ = -1;
  std::vector<std::unique_ptr<Conn>> conns_;
  const OnBranch* on_branch_ = nullptr;
};

}  // namespace verdict::bench

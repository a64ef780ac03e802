// BranchClient: one Thrift connection to a verdict-participant agent's ParticipantService
// (framed transport, binary protocol, multiplexed as "Participant"), driving whole branches
// the way a coordinator and an SDK together would: OpenBranch, Execute, Prepare, Commit.
// Not thread-safe: one client per thread.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ParticipantService.h"
#include "common/status.h"
#include "thrift/thrift_channel.h"

namespace verdict::bench {

class BranchClient {
 public:
  // How one branch ended, as the agent benchmark counts it.
  enum class Outcome {
    kCommitted,  // opened, executed, voted YES, committed
    kVotedNo,    // a step refused or failed before the commit (SQL error, lock timeout,
                 // NO vote): the branch was aborted, nothing committed
    kTransport,  // the connection failed; it is closed (the branch's fate is unknown)
    kRejected,   // INVALID_ARGUMENT, NOT_FOUND at commit, or a code the bench does not
                 // expect: a bug in the bench or the agent; the run is invalid
  };
  struct Result {
    Outcome outcome = Outcome::kTransport;
    std::string message;     // why, when not kCommitted
    int commit_retries = 0;  // Commit calls answered UNAVAILABLE and sent again
    // Time of each step that ran: Execute (which opens the branch), Prepare, Commit
    // (retries included).
    std::array<std::chrono::nanoseconds, 3> step{};
  };
  static constexpr size_t kSteps = 3;
  static constexpr const char* kStepNames[kSteps] = {"open_execute", "prepare", "commit"};
  // The branch name every benchmark branch uses on its agent.
  static constexpr char kBranch[] = "b";
  // A Commit answered UNAVAILABLE (database or journal busy) is sent this many times.
  static constexpr int kCommitAttempts = 20;

  // "Step: code N (message)".
  static std::string CodeText(const char* step, rpc::ParticipantCode::type code,
                              const std::string& message);
  // True for the codes with which an agent refuses or fails a branch without the bench
  // being wrong: the branch votes NO.
  static bool IsNoVote(rpc::ParticipantCode::type code);

  // `timeout_ms` bounds connect, send and receive.
  explicit BranchClient(int timeout_ms) : timeout_ms_(timeout_ms) {}
  BranchClient(const BranchClient&) = delete;
  BranchClient& operator=(const BranchClient&) = delete;
  ~BranchClient();

  // Opens a connection to HOST:PORT, closing any previous one. Unavailable on failure.
  Status Connect(const std::string& address);
  void Close();
  bool connected() const { return client_ != nullptr; }

  // One branch (gtid, "b") on this agent, whose participant list is this agent alone
  // (`participant_name` at the connected address): OpenBranch (2PC) -> Execute(sql,
  // params) -> Prepare -> Commit. A Commit answered UNAVAILABLE is retried (it is
  // idempotent). Precondition: connected(). Never throws.
  Result RunBranch(const std::string& participant_name, const std::string& gtid,
                   const std::string& sql, const std::vector<rpc::SqlValue>& params);

  // Precondition: connected(). Unavailable (and closed) on a transport error.
  Status ListInDoubt(rpc::ListInDoubtResponse* response);

 private:
  const int timeout_ms_;
  std::string address_;
  std::unique_ptr<rpc::ThriftChannel> channel_;
  std::unique_ptr<rpc::ParticipantServiceClient> client_;
};

}  // namespace verdict::bench

// CoordinatorClient: the calls the participant agent makes to the coordinator group —
// register this agent's name and address, and inquire the outcome of a gtid for a
// prepared branch (DESIGN §3). The Thrift implementation speaks ParticipantRegistryService
// ("Registry", thrift/participant.thrift) and falls back to CoordinatorService.GetDecision
// where the registry is not served yet. Tests use a fake. Implementations are thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "participant/resource_manager.h"

namespace verdict::participant {

enum class InquiryResult : uint8_t {
  kCommitted,        // decided COMMIT
  kAborted,          // decided ABORT (or unknown, which the coordinator aborts first)
  kInProgress,       // undecided, still voting: wait
  kPrecommitIntent,  // 3PC: PRECOMMIT applied, no decision yet: wait
};
const char* InquiryResultName(InquiryResult r);

class CoordinatorClient {
 public:
  virtual ~CoordinatorClient() = default;

  // Records name -> address with the group's leader. OK once a leader accepted it;
  // Unavailable if no node answered or none is leader (the caller retries with backoff).
  virtual Status Register(const std::string& name, const std::string& address,
                          const std::string& backend) = 0;

  // The outcome of key.gtid as the coordinator group knows it. Unavailable when no
  // coordinator node answered with an outcome (the caller may then run cooperative
  // termination); never guesses.
  virtual Status Inquire(const BranchKey& key, const std::string& participant,
                         InquiryResult* result) = 0;
};

// Thrift client over `addresses` (HOST:PORT each), following NOT_LEADER hints; each RPC
// attempt is bounded by `timeout_ms`.
std::unique_ptr<CoordinatorClient> NewThriftCoordinatorClient(std::vector<std::string> addresses,
                                                              int timeout_ms);

}  // namespace verdict::participant

// PeerClient: the calls a terminating agent makes to the other participants of a gtid
// (cooperative termination, DESIGN §3-§4). Any error status means "could not reach the
// peer" (the terminator then stays prepared and retries). Implementations are thread-safe.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "participant/branch_journal.h"

namespace verdict::participant {

class PeerClient {
 public:
  virtual ~PeerClient() = default;
  // The peer branch's state (kNone if the peer has no record of it).
  virtual Status GetState(const PeerRef& peer, const std::string& gtid, BranchState* state) = 0;
  // Asks the peer to fence its branch; *state is its state afterwards (kFenced, or the
  // state that refused: kPrecommitted, kCommitted, kAborted, kActive, kNone).
  virtual Status Fence(const PeerRef& peer, const std::string& gtid, const std::string& fencer,
                       BranchState* state) = 0;
  // Tells the peer the branch aborts (presumed abort: OK if it had no record; the peer
  // records a tombstone so it can never vote YES later). *state is its state afterwards.
  virtual Status Abort(const PeerRef& peer, const std::string& gtid, BranchState* state) = 0;
  // Aborts the peer's branch only if it has not voted (ACTIVE or no record, which it
  // tombstones); otherwise changes nothing. *state is its state afterwards.
  virtual Status AbortIfUnvoted(const PeerRef& peer, const std::string& gtid,
                                BranchState* state) = 0;
  // Tells the peer the branch commits.
  virtual Status Commit(const PeerRef& peer, const std::string& gtid) = 0;
};

// Thrift client: one short-lived connection per call, bounded by `timeout_ms`.
std::unique_ptr<PeerClient> NewThriftPeerClient(int timeout_ms);

}  // namespace verdict::participant

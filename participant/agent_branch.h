// Agent::Branch: one branch in the agent's table. Private to participant/agent*.cc.
// Thread-safety: every field is guarded by `mu`, held for the whole of a call on the
// branch.
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "participant/agent.h"

namespace verdict::participant {

// One branch. Its fields are guarded by `mu` (held for the whole of a call on the branch),
// except `indexed`.
struct Agent::Branch {
  std::mutex mu;
  BranchKey key;
  BranchState state = BranchState::kNone;
  Protocol protocol = Protocol::k2PC;
  std::vector<PeerRef> participants;
  std::string rm_payload;  // kept for journal compaction
  bool rm_open = false;    // the RM holds an open local transaction
  int64_t deadline_ms = 0;
  int64_t idle_timeout_ms = 0;
  int lock_timeout_ms = 0;
  int64_t last_activity_ms = 0;
  int64_t state_since_ms = 0;
  int64_t next_inquiry_ms = 0;
  int64_t backoff_ms = 0;
  std::string abort_reason;
  // ABORTED, but the RM may still hold it prepared (a PREPARE whose undo failed): kept in
  // memory (never forgotten) until ReconcileOrphans rolls the leftover back.
  bool rm_leftover = false;
  int64_t rm_leftover_since_ms = 0;  // when rm_leftover was set
  // When this incarnation voted YES (0: voted in an earlier one, or adopted from the
  // database), and when the vote was given in wall-clock time (journaled with the
  // PREPARED record; 0 if unknown: adopted, or journaled before the field existed).
  // Cooperative termination trusts a peer's "no record" only shortly after the vote
  // (Agent::Terminate).
  int64_t voted_yes_ms = 0;
  int64_t voted_unix_ms = 0;
  int64_t last_seq = 0;
  ExecuteReply last_execute;
  // In Agent::branches_. Guarded by the agent's mu_, not by `mu`.
  bool indexed = false;
};

}  // namespace verdict::participant

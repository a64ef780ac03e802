// ParticipantCore: the durable branch store of one simulated participant agent and the
// rules it follows for coordinator messages and peer requests (DESIGN §3-§4): votes,
// PRECOMMIT/FENCE, decisions, cooperative-termination requests. No I/O, no clock, no
// randomness of its own (the caller draws the local database's choices). Shared by
// verdict-sim (tests/sim/txn_workload.cc) and the unit-level atomicity simulation
// (tests/unit/txn/atomicity_sim.cc). Not thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "coordinator/txn/engine_types.h"

namespace verdict::sim {

namespace txn = ::verdict::coordinator::txn;

using BranchState = txn::BranchStatus;

// Deliberately broken behaviours for the self-tests (each violates DESIGN §3-§4).
enum class ParticipantMutation : uint8_t {
  kNone,
  kAbortPreparedOnTimeout,  // a PREPARED branch aborts on its own (3PC's unsafe classic rule)
  kPrecommitWhileFenced,    // a FENCED branch accepts PRECOMMIT
};

// One branch as the agent keeps it. Everything but ACTIVE branches is durable: it survives
// Crash(). Invariant: COMMITTED and ABORTED are final; a PREPARED branch never aborts on its
// own (only a decision, or termination once every peer is fenced / one peer aborted).
struct SimBranch {
  BranchState state = BranchState::kActive;
  txn::Protocol protocol = txn::Protocol::k2PC;
  std::string branch;
  bool read_only = false;              // voted READ_ONLY: finished, nothing to commit
  std::vector<txn::PeerBranch> peers;  // from PREPARE: every branch, this one included
};

// What the local database makes of an ACTIVE branch when asked to vote (or to commit in
// one phase); drawn by the caller.
struct LocalChoice {
  txn::Vote vote = txn::Vote::kYes;  // kYes, kNo or kReadOnly
  bool one_phase_ok = true;
};

class ParticipantCore {
 public:
  // Called on every state change of a branch, after it happened (from == to never).
  using Observer = std::function<void(const std::string& gtid, BranchState from, BranchState to)>;

  explicit ParticipantCore(std::string name, Observer observer = {});
  ParticipantCore(const ParticipantCore&) = delete;
  ParticipantCore& operator=(const ParticipantCore&) = delete;
  ParticipantCore(ParticipantCore&&) = default;

  const std::string& name() const { return name_; }
  void set_mutation(ParticipantMutation m) { mutation_ = m; }
  ParticipantMutation mutation() const { return mutation_; }

  // nullptr if the agent has no record of `gtid`.
  SimBranch* Find(const std::string& gtid);
  const std::map<std::string, SimBranch>& branches() const { return branches_; }

  // The client opens a branch (ACTIVE). False if the gtid is known here already.
  bool Open(const std::string& gtid, txn::Protocol protocol, const std::string& branch);

  // A coordinator message; returns the agent's reply.
  txn::ParticipantReply Handle(const txn::ParticipantMessage& m, const LocalChoice& choice);

  // Peer requests of cooperative termination. Status: an unvoted (ACTIVE) or unknown branch
  // aborts first (it then can never vote YES); returns the state afterwards.
  BranchState AbortIfUnvoted(const std::string& gtid, bool* read_only);
  // 3PC fence: PREPARED or FENCED -> FENCED (a promise to refuse PRECOMMIT). Returns the
  // state afterwards (PRECOMMITTED refuses).
  BranchState Fence(const std::string& gtid);
  // A decision learnt from the coordinator (inquiry) or a peer: an in-doubt branch obeys.
  void Decide(const std::string& gtid, txn::Outcome outcome);

  // Raw transition (creates the record if needed). Leaving COMMITTED/ABORTED is reported to
  // the observer like any other change (the caller's checker flags it).
  void Set(const std::string& gtid, BranchState to);

  // Power loss: ACTIVE branches were volatile and are gone; the rest is on disk.
  void Crash();

  static bool InDoubt(BranchState s) {
    return s == BranchState::kPrepared || s == BranchState::kPrecommitted ||
           s == BranchState::kFenced;
  }
  static bool Final(BranchState s) {
    return s == BranchState::kCommitted || s == BranchState::kAborted;
  }

 private:
  std::string name_;
  Observer observer_;
  ParticipantMutation mutation_ = ParticipantMutation::kNone;
  std::map<std::string, SimBranch> branches_;
};

const char* BranchStateName(BranchState s);

}  // namespace verdict::sim

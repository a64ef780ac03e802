// The leader-volatile state the protocol engine keeps per transaction (engine.h). Internal
// to coordinator/txn/engine*.cc; thread-compatible (the engine's owner serializes access).
// Each rule of DESIGN §3-§4 is written next to the state it constrains.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "coordinator/txn/engine_types.h"
#include "coordinator/txn/gtid.h"
#include "coordinator/txn/txn_command.h"

namespace verdict::coordinator::txn {

// Where a transaction stands on this leader. Transitions (engine_2pc.cc, engine_3pc.cc,
// engine_recovery.cc):
//   kActive -> kPreparing | kOnePhase | kAbortedUnlogged | (erased: empty commit)
//   kPreparing -> kProposingCommit (2PC) | kProposingPrecommit (3PC) | kAbortedUnlogged
//   kProposingPrecommit -> kPrecommitting | kFencing (PRECOMMIT applied) | kPhaseTwo
//   kPrecommitting -> kFencing -> kProposingCommit | kProposingAbort
//   kProposing* -> kPhaseTwo (decision applied) -> kEnding -> (erased: END applied)
//   kAbortedUnlogged -> (erased, all ABORTs acknowledged) | kProposingAbort (an inquiry)
enum class Phase : uint8_t {
  kActive,              // begun; branches being registered; no Commit yet
  kPreparing,           // PREPARE sent to every branch; collecting votes
  kOnePhase,            // one branch: one-phase COMMIT sent; its reply is the outcome
  kProposingPrecommit,  // 3PC: all YES; PRECOMMIT proposed, not yet applied
  kPrecommitting,       // 3PC: PRECOMMIT applied; PRECOMMIT sent; waiting for one ack
  kFencing,             // 3PC: PRECOMMIT applied; FENCE sent to every branch
  kProposingCommit,     // DECIDE COMMIT proposed, not yet applied
  kProposingAbort,      // DECIDE ABORT proposed (fenced, or presumed for an answer)
  kPhaseTwo,            // decision applied; COMMIT/ABORT to each target until acked
  kEnding,              // every target acked; END batched or proposed
  kAbortedUnlogged,     // presumed abort, no log entry; ABORT to each target until acked
};
const char* PhaseName(Phase p);

struct BranchSlot {
  BranchRef ref;
  bool read_only_hint = false;  // informational: the vote decides
  // Votes are taken only in kPreparing, and only by the leadership that began the gtid.
  Vote vote = Vote::kNone;
  // 3PC evidence. `fenced` comes only from an OK to OUR FENCE: a FENCED reply to PRECOMMIT
  // is not a decision and not counted; it makes the engine fence everyone itself.
  bool precommit_acked = false;
  bool fenced = false;
  // Phase two (or the unlogged abort): this branch must receive the decision; `done` once
  // it acknowledged (or answered something that makes retrying pointless: a hazard).
  bool target = false;
  bool done = false;
  // Resend schedule of whatever message this phase owes the branch.
  int64_t next_send_ms = 0;
  int64_t backoff_ms = 0;
  uint32_t attempts = 0;
};

struct ActiveTxn {
  std::string gtid;
  std::optional<Gtid> id;  // parsed; absent for gtids not made by an engine
  Protocol protocol = Protocol::k2PC;
  Phase phase = Phase::kActive;
  // Begun by THIS leadership (same term as the engine). Only such a transaction may
  // collect votes or be driven to commit from votes (DESIGN §3.5); an adopted one only
  // finishes what the log says (3PC: PRECOMMIT applied -> PRECOMMIT again, DESIGN §4.4).
  bool own = false;
  int64_t begun_ms = 0;
  int64_t deadline_ms = 0;       // absolute; reaching it in kActive/kPreparing aborts,
                                 // in kPrecommitting starts fencing
  int64_t vote_deadline_ms = 0;  // kPreparing
  std::map<BranchRef, BranchSlot> branches;
  // A proposal in flight (kProposing*): re-proposed until its effect is applied.
  std::string proposal;
  int64_t proposed_ms = 0;
  DecideBasis abort_basis = DecideBasis::kPresumedAbort;  // kProposingAbort
  std::optional<Outcome> outcome;       // decided (applied, or unlogged abort, or one-phase)
  std::string reason;                   // why it aborted
  bool abort_requested = false;         // a client asked to abort once that was no longer free
  bool unknown_sent = false;            // kOnePhase: waiters already told UNKNOWN
  int64_t end_batched_ms = -1;          // kEnding: when it joined an END batch
  std::vector<RequestToken> waiters;    // Commit/Abort callers awaiting the outcome
  std::vector<RequestToken> inquirers;  // Inquire callers awaiting an applied decision
  std::vector<RequestToken> resolvers;  // Resolve callers awaiting their DECIDE
  bool erase = false;                   // finished: dropped at the end of the current event
};

}  // namespace verdict::coordinator::txn

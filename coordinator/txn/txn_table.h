// TxnTable: the coordinator's replicated state machine, applied from the Raft log. It holds
// every transaction with a logged PRECOMMIT intent or decision until an END lets it forget
// the transaction, a compact memory of ended COMMITs, and the participant registry.
// Deterministic: the same entries give the same table on every node. Not thread-safe: the
// apply thread owns it (readers on other threads need the driver's lock).
//
// Apply rules (DESIGN §2.2, §3, §4):
//  - PRECOMMIT(g, branches) records an intent. A no-op, returning the decision, if g already
//    has one (including an ended COMMIT); a no-op if the intent is already there.
//  - DECIDE(g, outcome, basis, branches, heuristic?): the first decision wins; a later one is
//    a no-op that returns the decision in force. One exception protects 3PC: once PRECOMMIT
//    is applied for g, an ABORT is applied only with basis kFenced (every branch fenced) or
//    kHeuristic (an operator); any other ABORT (e.g. a presumed abort for an inquiry) is
//    REJECTED and g stays an intent. A DECIDE for an ended COMMIT returns COMMIT.
//  - END(gtids) forgets each listed transaction that has a decision. Forgetting a COMMIT
//    leaves a tombstone; forgetting an ABORT leaves nothing (presumed abort already answers
//    "aborted" for an unknown gtid, and a new ABORT for it agrees with the old one).
//    Never forgotten, only marked ended: heuristic decisions (kept forever, visible) and
//    gtids that are not engine-made (ParseGtid fails: the older Decide RPC's records).
//    An intent without a decision, or an unknown gtid, is left alone.
//  - REGISTER_PARTICIPANT(name, address, backend) inserts or replaces the mapping.
//
// The forgetting rule. An inquiry about an unknown gtid is answered "aborted" only after an
// ABORT for it is proposed and applied; that is safe only if an ended COMMIT can never look
// unknown. So ended COMMITs of engine gtids are remembered as tombstones: per (term, node),
// a set of seq ranges [lo, hi]. Commits of one leadership that end in order collapse into
// a few ranges, so the memory is small. It is still bounded (Options): when there are too
// many ranges, the lowest (term, node, seq) range is dropped and `horizon` rises to its top.
// Find() then reports kBeyondMemory, not kUnknown, for any gtid <= horizon without a
// record: such a gtid may be a forgotten COMMIT, and the engine must not presume abort for
// it (it answers UNKNOWN and raises an operator event). Every node must use the same
// Options (eviction changes the state).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "coordinator/raft/types.h"
#include "coordinator/txn/gtid.h"
#include "coordinator/txn/txn_command.h"

namespace verdict::coordinator::txn {

// What the table knows about one transaction. Invariant: precommit || decision.
struct TxnRecord {
  bool precommit = false;        // a PRECOMMIT applied (before any decision)
  uint64_t precommit_index = 0;  // its log index
  std::optional<Outcome> decision;
  DecideBasis basis = DecideBasis::kVotes;  // with decision
  uint64_t decision_index = 0;              // log index of the deciding entry
  // The branches phase two must reach: the decision's list, or the intent's when the
  // decision named none.
  std::vector<BranchRef> participants;
  std::optional<HeuristicInfo> heuristic;  // basis == kHeuristic
  bool ended = false;                      // END applied but the record is kept (see above)

  friend bool operator==(const TxnRecord&, const TxnRecord&) = default;
};

struct ParticipantInfo {
  std::string address;
  std::string backend;
  uint64_t index = 0;  // log index of the registration in force

  friend bool operator==(const ParticipantInfo&, const ParticipantInfo&) = default;
};

// What applying one entry did.
struct ApplyResult {
  enum class Code : uint8_t {
    kNoop,               // empty entry (leader no-op) or membership change
    kPrecommitAccepted,  // the intent is recorded (now or before)
    kPrecommitRejected,  // the gtid already has a decision: see `decision`
    kDecided,            // this DECIDE is the gtid's decision
    kAlreadyDecided,     // an earlier decision stands: see `decision`
    kDecideRejected,     // ABORT refused after an applied PRECOMMIT (rule above)
    kEnded,              // END applied; `forgotten` records were dropped
    kRegistered,
  };
  Code code = Code::kNoop;
  uint64_t index = 0;
  uint64_t term = 0;
  std::optional<Outcome> decision;  // PRECOMMIT/DECIDE: the decision in force afterwards
  bool intent = false;              // PRECOMMIT/DECIDE: an undecided intent is in force
  size_t forgotten = 0;             // END
};
const char* ApplyCodeName(ApplyResult::Code c);

enum class GtidState : uint8_t {
  kUnknown,       // no record, and not an ended COMMIT: an ABORT may be proposed for it
  kIntent,        // PRECOMMIT applied, no decision
  kDecided,       // a decision applied (record may be marked ended)
  kEndedCommit,   // committed and forgotten: a tombstone remembers the COMMIT
  kBeyondMemory,  // no record, below the tombstone horizon: cannot tell (see above)
};
const char* GtidStateName(GtidState s);

struct GtidLookup {
  GtidState state = GtidState::kUnknown;
  const TxnRecord* record = nullptr;  // kIntent, kDecided; valid until the next Apply/Restore
};

class TxnTable {
 public:
  struct Options {
    // Bound on the tombstone ranges of ended COMMITs (each costs ~100 bytes).
    size_t max_commit_tombstone_ranges = size_t{1} << 20;
  };

  TxnTable() : TxnTable(Options{}) {}
  explicit TxnTable(Options options);
  TxnTable(const TxnTable&) = delete;
  TxnTable& operator=(const TxnTable&) = delete;

  // Applies one committed entry, in log order. Empty kNormal entries and kConfChange
  // entries are no-ops (they still advance applied_index()). Returns Corruption if the
  // payload is not a well-formed command (the driver must stop: never apply garbage) and
  // leaves the table unchanged.
  Status Apply(const raft::Entry& entry, ApplyResult* result);
  // Applies a decoded command at `index`/`term` (what Apply does after decoding).
  ApplyResult ApplyCommand(const TxnCommand& cmd, uint64_t index, uint64_t term);

  GtidLookup Find(std::string_view gtid) const;
  const ParticipantInfo* FindParticipant(std::string_view name) const;

  const std::map<std::string, TxnRecord, std::less<>>& records() const { return records_; }
  const std::map<std::string, ParticipantInfo, std::less<>>& participants() const {
    return participants_;
  }
  uint64_t applied_index() const { return applied_index_; }
  std::optional<Gtid> horizon() const { return horizon_; }
  size_t tombstone_ranges() const { return tombstone_ranges_; }

  struct Counters {
    uint64_t commits = 0, aborts = 0;  // decisions applied
    uint64_t overridden = 0;           // a later DECIDE with the other outcome
    uint64_t precommits_rejected = 0, decides_rejected = 0;
    uint64_t ended = 0;  // records forgotten by END
    friend bool operator==(const Counters&, const Counters&) = default;
  };
  const Counters& counters() const { return counters_; }

  // Snapshot of the whole table, and its inverse. Restore replaces the contents, or returns
  // Corruption and leaves the table unchanged. Restore also accepts a DecisionRegister
  // snapshot (format version 1): its decisions become kLegacy records.
  std::string Serialize() const;
  Status Restore(std::string_view data);

  bool operator==(const TxnTable& o) const;

 private:
  using GroupKey = std::pair<uint64_t, uint64_t>;  // (term, node) of a gtid
  using Ranges = std::map<uint64_t, uint64_t>;     // seq lo -> hi, disjoint, not adjacent

  ApplyResult ApplyPrecommit(const PrecommitCmd& c, uint64_t index);
  ApplyResult ApplyDecide(const DecideCmd& c, uint64_t index);
  ApplyResult ApplyEnd(const EndCmd& c);
  bool IsEndedCommit(const Gtid& g) const;
  void AddTombstone(const Gtid& g);
  void EvictTombstones();

  Options options_;
  uint64_t applied_index_ = 0;
  std::map<std::string, TxnRecord, std::less<>> records_;
  std::map<std::string, ParticipantInfo, std::less<>> participants_;
  std::map<GroupKey, Ranges> ended_commits_;
  size_t tombstone_ranges_ = 0;
  std::optional<Gtid> horizon_;  // highest gtid whose tombstone was dropped
  Counters counters_;
};

}  // namespace verdict::coordinator::txn

// DecisionRegister: the coordinator's replicated state machine for the decision log. It
// maps a global transaction id (gtid) to the first decision the Raft log applied for it.
// A later decision for the same gtid is a no-op that reports the existing one (first
// decision wins, DESIGN §2.2). Deterministic; not thread-safe (the apply thread owns it).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace verdict::coordinator::txn {

enum class Outcome : uint8_t { kCommit = 1, kAbort = 2 };
const char* OutcomeName(Outcome o);

// The payload of a Raft entry that records a decision.
struct DecideCommand {
  std::string gtid;
  Outcome outcome = Outcome::kAbort;
  std::vector<std::string> participants;

  bool operator==(const DecideCommand&) const = default;
};

// Entry payload grammar: a tag byte, then the command. Tag 1 = Decide:
//   varint len + gtid, 1 byte outcome, varint count, count x (varint len + participant).
std::string EncodeDecide(const DecideCommand& cmd);
// Returns InvalidArgument for a payload that is not a well-formed command (including an
// unknown tag). Empty payloads are the leader's no-ops and are not passed here.
Status DecodeDecide(std::string_view data, DecideCommand* cmd);

struct DecisionRecord {
  Outcome outcome = Outcome::kAbort;
  std::vector<std::string> participants;
  uint64_t index = 0;  // log index of the entry that decided

  bool operator==(const DecisionRecord&) const = default;
};

class DecisionRegister {
 public:
  DecisionRegister() = default;
  DecisionRegister(const DecisionRegister&) = delete;
  DecisionRegister& operator=(const DecisionRegister&) = delete;

  // Applies a committed Decide at log `index`. Returns the record in force for the gtid
  // afterwards: the new one, or the earlier decision if there was one.
  const DecisionRecord& Apply(const DecideCommand& cmd, uint64_t index);

  // nullptr if no decision has been applied for `gtid`. Valid until the next Apply/Restore.
  const DecisionRecord* Find(std::string_view gtid) const;

  size_t size() const { return decisions_.size(); }
  uint64_t commits() const { return commits_; }
  uint64_t aborts() const { return aborts_; }
  // Decides that arrived for a gtid already decided the other way (first one won).
  uint64_t overridden() const { return overridden_; }

  // Snapshot of the whole register, and its inverse. Restore replaces the contents, or
  // returns Corruption and leaves the register unchanged.
  std::string Serialize() const;
  Status Restore(std::string_view data);

  bool operator==(const DecisionRegister& o) const { return decisions_ == o.decisions_; }

 private:
  std::map<std::string, DecisionRecord, std::less<>> decisions_;
  uint64_t commits_ = 0;
  uint64_t aborts_ = 0;
  uint64_t overridden_ = 0;
};

}  // namespace verdict::coordinator::txn

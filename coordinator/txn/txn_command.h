// The commands of the replicated transaction table (txn_table.h): what a leader proposes to
// the Raft log, and their byte encoding. Plain values and pure functions; thread-safe.
//
// Entry payload grammar: one tag byte, then the command. Strings are varint length +
// bytes; lists are varint count + items.
//   tag 1 DECIDE (legacy, = decision_register.h's EncodeDecide, kept so old logs apply):
//         gtid, outcome byte, list<participant name>
//   tag 2 PRECOMMIT: gtid, list<branch>
//   tag 3 DECIDE:    gtid, outcome byte, basis byte, list<branch>,
//                    heuristic flag byte (0|1) [, who, varint when_unix_ms, why]
//   tag 4 END:       list<gtid>   (non-empty)
//   tag 5 REGISTER_PARTICIPANT: name, address, backend
// where branch = participant name, branch name (both non-empty).
// Unknown tags, truncated or trailing bytes, bad enum bytes and empty required strings are
// InvalidArgument. Empty payloads are the Raft leader's no-ops and never reach the decoder.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/status.h"
#include "coordinator/txn/decision_register.h"

namespace verdict::coordinator::txn {

enum class Protocol : uint8_t { k2PC = 2, k3PC = 3 };
const char* ProtocolName(Protocol p);

// One branch of a global transaction: the participant agent (by registered name) and the
// branch name on it.
struct BranchRef {
  std::string participant;
  std::string branch;

  friend auto operator<=>(const BranchRef&, const BranchRef&) = default;
  friend bool operator==(const BranchRef&, const BranchRef&) = default;
};

// Why a decision was taken; the table's apply rules depend on it (txn_table.h).
enum class DecideBasis : uint8_t {
  kLegacy = 0,         // tag 1: recorded through the older Decide RPC; basis unknown
  kVotes = 1,          // 2PC COMMIT: every branch voted YES (or READ_ONLY)
  kPrecommitAck = 2,   // 3PC COMMIT: a branch is known PRECOMMITTED (ack, refusal of FENCE,
                       //   or reported COMMITTED) after PRECOMMIT was applied
  kPresumedAbort = 3,  // ABORT: an answer "aborted" for a gtid no leader is driving
  kFenced = 4,         // 3PC ABORT after PRECOMMIT: every branch is FENCED (or one reported
                       //   ABORTED, which termination only does once all were fenced)
  kHeuristic = 5,      // an operator's `verdictctl resolve`; carries a HeuristicInfo
};
const char* DecideBasisName(DecideBasis b);

// Who took a heuristic decision, when and why. Kept forever by the table.
struct HeuristicInfo {
  std::string who;
  int64_t when_unix_ms = 0;
  std::string why;

  friend bool operator==(const HeuristicInfo&, const HeuristicInfo&) = default;
};

// 3PC intent: every branch voted YES; the leader will send PRECOMMIT once this applies.
// Not a decision. Rejected (a no-op) for a gtid that already has a decision.
struct PrecommitCmd {
  std::string gtid;
  std::vector<BranchRef> participants;  // the branches that voted YES

  friend bool operator==(const PrecommitCmd&, const PrecommitCmd&) = default;
};

// A decision. First decision wins; see txn_table.h for the full apply rule.
struct DecideCmd {
  std::string gtid;
  Outcome outcome = Outcome::kAbort;
  DecideBasis basis = DecideBasis::kVotes;
  // The branches phase two must reach (YES voters). kLegacy: names only, branch empty.
  std::vector<BranchRef> participants;
  std::optional<HeuristicInfo> heuristic;  // present iff basis == kHeuristic

  friend bool operator==(const DecideCmd&, const DecideCmd&) = default;
};

// Every listed gtid's phase two is complete: the table may forget it (txn_table.h).
struct EndCmd {
  std::vector<std::string> gtids;

  friend bool operator==(const EndCmd&, const EndCmd&) = default;
};

// A participant agent's name -> address (and back end), replacing any earlier mapping.
struct RegisterParticipantCmd {
  std::string name;
  std::string address;  // HOST:PORT of its ParticipantService
  std::string backend;  // "sqlite", "postgres", ...

  friend bool operator==(const RegisterParticipantCmd&, const RegisterParticipantCmd&) = default;
};

using TxnCommand = std::variant<PrecommitCmd, DecideCmd, EndCmd, RegisterParticipantCmd>;

// Precondition for a kLegacy DecideCmd: every branch name is empty and there is no
// heuristic (it is written as tag 1, exactly as EncodeDecide would).
std::string EncodeCommand(const TxnCommand& cmd);
// InvalidArgument for anything that is not a well-formed command (see grammar above).
Status DecodeCommand(std::string_view data, TxnCommand* cmd);

// "PRECOMMIT 7.1.3", "DECIDE 7.1.3 COMMIT (votes)", "END x3", "REGISTER a@host:1"; for logs.
std::string DescribeCommand(const TxnCommand& cmd);

}  // namespace verdict::coordinator::txn

// The vocabulary of the protocol engine (engine.h): its configuration, the messages it asks
// the driver to send to participant agents, the replies the driver feeds back, and the
// answers it produces for clients, inquiring agents and admin calls. Plain values;
// thread-compatible. The enums mirror thrift/participant.thrift so that this layer needs no
// Thrift; the driver converts at the RPC boundary.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "coordinator/txn/txn_command.h"

namespace verdict::coordinator::txn {

// Chosen by the driver; echoed in the answer so it can complete the right RPC.
using RequestToken = uint64_t;

struct EngineConfig {
  uint64_t node_id = 0;                  // this coordinator node (>= 1); part of every gtid
  int64_t default_deadline_ms = 30'000;  // Begin with deadline_ms <= 0
  int64_t max_deadline_ms = 3'600'000;   // longer deadlines are clamped
  int64_t vote_timeout_ms = 5'000;       // PREPARE sent -> every vote in, or ABORT
  int64_t retry_initial_ms = 50;         // first resend of an unanswered message
  int64_t retry_max_ms = 5'000;          // cap of the exponential backoff
  int64_t proposal_retry_ms = 2'000;     // re-propose a command not applied by then
  // A PRECOMMIT intent found in the log (leader change) has no deadline of its own: the
  // engine re-sends PRECOMMIT for this long, then also fences the branches.
  int64_t adopted_precommit_fence_ms = 10'000;
  size_t end_batch_max = 256;        // gtids per END entry
  int64_t end_batch_delay_ms = 20;   // an END batch waits at most this long
  size_t recent_outcomes = 100'000;  // outcomes remembered for gtids with no log entry
  size_t max_branches = 1'024;       // per transaction
};

// ---- to participants ----

enum class MessageKind : uint8_t {
  kPrepare,         // phase one; carries the participant list
  kPrecommit,       // 3PC, only once PRECOMMIT is applied
  kFence,           // 3PC termination by the coordinator
  kCommit,          // the decision COMMIT
  kCommitOnePhase,  // single-branch transaction: commit without prepare
  kAbort,           // the decision ABORT (logged or presumed)
};
const char* MessageKindName(MessageKind k);

struct PeerBranch {
  std::string participant;
  std::string address;  // from the registry; empty if the name is not registered
  std::string branch;

  friend bool operator==(const PeerBranch&, const PeerBranch&) = default;
};

struct ParticipantMessage {
  MessageKind kind = MessageKind::kPrepare;
  std::string gtid;
  Protocol protocol = Protocol::k2PC;
  PeerBranch to;
  std::vector<PeerBranch> participants;  // kPrepare: every branch of the gtid, `to` included
  uint32_t attempt = 0;                  // 0 = first send; then resends
};

// participant.thrift ParticipantCode.
enum class ParticipantCode : uint8_t {
  kOk = 0,
  kInvalidArgument = 1,
  kNotFound = 2,
  kWrongState = 3,
  kSqlError = 4,
  kLockTimeout = 5,
  kFenced = 6,
  kPrecommitted = 7,
  kUnavailable = 8,
  kAlreadyExists = 9,
};

// participant.thrift BranchState.
enum class BranchStatus : uint8_t {
  kActive = 0,
  kPrepared = 1,
  kPrecommitted = 2,
  kFenced = 3,
  kCommitted = 4,
  kAborted = 5,
  kNone = 6,
};

// participant.thrift Vote (kNone: no vote).
enum class Vote : uint8_t { kNone = 0, kYes = 1, kNo = 2, kReadOnly = 3 };
const char* VoteName(Vote v);

// A participant's answer to one ParticipantMessage. A transport failure may be reported as
// kUnavailable or not at all: unanswered messages are re-sent anyway.
struct ParticipantReply {
  MessageKind kind = MessageKind::kPrepare;  // the call this answers
  std::string gtid;
  std::string participant;
  std::string branch;
  ParticipantCode code = ParticipantCode::kOk;
  BranchStatus state = BranchStatus::kNone;
  Vote vote = Vote::kNone;  // kPrepare
  std::string message;
};

// ---- to clients, agents, operators ----

enum class ClientOutcome : uint8_t { kCommitted, kAborted, kUnknown, kNotLeader };
const char* ClientOutcomeName(ClientOutcome o);

// The answer to Commit() or Abort().
struct ClientReply {
  RequestToken token = 0;
  std::string gtid;
  ClientOutcome outcome = ClientOutcome::kUnknown;
  std::string reason;  // why ABORTED / UNKNOWN
};

// participant.thrift TxnStatus, plus the answers that are not a status.
enum class InquiryStatus : uint8_t {
  kCommitted,
  kAborted,          // always an APPLIED abort (or a known presumed one, see engine.h)
  kInProgress,       // still voting: wait
  kPrecommitIntent,  // 3PC: PRECOMMIT applied, no decision: wait
  kUnknown,          // cannot answer (gtid beyond the table's memory, future term)
  kNotLeader,
};
const char* InquiryStatusName(InquiryStatus s);

struct InquiryReply {
  RequestToken token = 0;
  std::string gtid;
  InquiryStatus status = InquiryStatus::kUnknown;
};

// The answer to RegisterParticipant() or Resolve(): OK once applied.
struct AdminReply {
  RequestToken token = 0;
  Status status;
};

enum class HazardKind : uint8_t {
  kCommitUnknownBranch,  // COMMIT answered NOT_FOUND: the branch says it never existed
  kCommittedButAborted,  // the decision is COMMIT but the branch is ABORTED
  kAbortedButCommitted,  // the decision is ABORT but the branch is COMMITTED
  kForgottenGtid,        // inquiry about a gtid below the table's memory horizon
};
const char* HazardKindName(HazardKind k);

// To be reported loudly (log, metric, verdictctl): DESIGN §2.4.
struct HazardEvent {
  HazardKind kind = HazardKind::kCommitUnknownBranch;
  std::string gtid;
  BranchRef branch;
  std::string message;
};

// Everything an engine call produced since the last TakeOutput(), in order.
struct EngineOutput {
  std::vector<ParticipantMessage> messages;  // send (fire and forget; feed replies back)
  std::vector<std::string> proposals;        // Raft::Propose each, in order
  std::vector<ClientReply> client_replies;
  std::vector<InquiryReply> inquiry_replies;
  std::vector<AdminReply> admin_replies;
  std::vector<HazardEvent> hazards;

  bool Empty() const {
    return messages.empty() && proposals.empty() && client_replies.empty() &&
           inquiry_replies.empty() && admin_replies.empty() && hazards.empty();
  }
};

}  // namespace verdict::coordinator::txn

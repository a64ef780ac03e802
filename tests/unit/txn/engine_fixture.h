// EngineTest: a ProtocolEngine over a TxnTable with a scripted Raft log (proposals wait
// until the test commits or drops them), a manual clock, and verbs that read as protocol
// steps. Single-threaded.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "coordinator/txn/engine.h"
#include "coordinator/txn/txn_table.h"

namespace verdict::coordinator::txn {

class EngineTest : public ::testing::Test {
 protected:
  EngineTest();

  EngineConfig Config() const;
  void Reset(EngineConfig config);

  // ---- log ----
  // Applies every pending proposal in order (as the Raft log would once committed).
  void CommitLog();
  // Applies only the first `n` pending proposals.
  void CommitFirst(size_t n);
  void DropLog() { pending_.clear(); }
  // Applies a command directly (another leader's entry).
  ApplyResult ApplyForeign(const TxnCommand& cmd);
  std::vector<TxnCommand> PendingCommands() const;
  size_t PendingCount() const { return pending_.size(); }

  // ---- engine verbs ----
  void Lead(uint64_t term);
  // Leadership moves to another node (a fresh engine over the same applied table); the
  // old one steps down first. Pending proposals stay unless the test drops them.
  void NewLeader(uint64_t node_id, uint64_t term);
  void Follow(uint64_t term);
  void Advance(int64_t ms);
  std::string Begin(Protocol p = Protocol::k2PC, int64_t deadline_ms = 10'000);
  // Begins a transaction with branches on participants a, b, ... (branch "b-<name>").
  std::string BeginWith(std::vector<std::string> participants, Protocol p = Protocol::k2PC,
                        int64_t deadline_ms = 10'000);
  RequestToken Commit(const std::string& gtid);
  RequestToken Abort(const std::string& gtid);
  RequestToken Inquire(const std::string& gtid, const std::string& participant);
  void Reply(MessageKind kind, const std::string& gtid, const std::string& participant,
             ParticipantCode code, BranchStatus state, Vote vote = Vote::kNone);
  void VoteAs(const std::string& gtid, const std::string& participant, Vote v);
  void Ack(MessageKind kind, const std::string& gtid, const std::string& participant,
           ParticipantCode code = ParticipantCode::kOk,
           BranchStatus state = BranchStatus::kCommitted);
  void Drain();

  // ---- observations (everything since the start, or since Clear) ----
  std::vector<ParticipantMessage> Sent(MessageKind kind, const std::string& participant = "") const;
  size_t CountSent(MessageKind kind, const std::string& participant = "") const {
    return Sent(kind, participant).size();
  }
  const ClientReply* ClientAnswer(RequestToken tok) const;
  const InquiryReply* InquiryAnswer(RequestToken tok) const;
  void ClearSent() { messages_.clear(); }
  std::optional<Outcome> LogDecision(const std::string& gtid) const;

  std::unique_ptr<TxnTable> table_;
  std::unique_ptr<ProtocolEngine> engine_;
  uint64_t term_ = 0;
  uint64_t index_ = 1;
  int64_t now_ = 1'000;
  RequestToken next_token_ = 1;
  std::vector<std::string> pending_;  // proposals not yet applied
  std::vector<ParticipantMessage> messages_;
  std::map<RequestToken, ClientReply> client_;
  std::map<RequestToken, InquiryReply> inquiries_;
  std::vector<AdminReply> admin_;
  std::vector<HazardEvent> hazards_;
};

}  // namespace verdict::coordinator::txn

// RaftNode: one coordinator node's driver. It owns the Raft core, the decision log
// (through its StorageWriter), the replicated transaction table, the protocol engine and
// the threads around them:
//   - the event loop thread owns the Raft core, the TxnTable (writes) and the
//     ProtocolEngine: ticks, incoming messages, proposals, reads, engine calls and
//     participant replies go in through a queue; it drains each Ready per raft.h's contract
//     (messages sent at once, persistence handed to the storage thread, committed entries
//     applied to the table in order and reported to the engine, waiting calls completed),
//     then the engine's output per engine.h's contract (proposals to Raft, messages to the
//     ParticipantSender, answers to the waiting calls);
//   - the storage thread (StorageWriter): group commit, after-persist messages;
//   - one sender thread per peer (PeerRouter), a few per participant agent
//     (ParticipantSender).
// Thread-safe: the public methods may be called from any thread (RPC handler threads).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "coordinator/raft/raft.h"
#include "coordinator/server/call_result.h"
#include "coordinator/server/metrics.h"
#include "coordinator/server/node_options.h"
#include "coordinator/server/participant_sender.h"
#include "coordinator/server/peer_router.h"
#include "coordinator/server/storage_writer.h"
#include "coordinator/storage/log_storage.h"
#include "coordinator/txn/decision_register.h"
#include "coordinator/txn/engine.h"
#include "coordinator/txn/txn_table.h"

namespace verdict::coordinator::server {

// A node's view of the group, as GetStatus reports it.
struct NodeStatus {
  raft::NodeId id = raft::kNoNode;
  std::string address;
  raft::Role role = raft::Role::kFollower;
  raft::Term term = 0;
  raft::NodeId leader = raft::kNoNode;
  std::string leader_address;
  raft::Index commit_index = 0;
  raft::Index applied_index = 0;
  raft::Index last_index = 0;
  raft::Index snapshot_index = 0;
  raft::Membership membership;
  uint64_t decisions = 0;  // transactions recorded in the table
};

// What the leader knows of one transaction (GetTxn / ListTxns).
struct TxnReport {
  std::string gtid;
  std::optional<txn::TxnView> view;  // the engine drives it
  txn::GtidState state = txn::GtidState::kUnknown;
  std::optional<txn::TxnRecord> record;          // the applied table record
  std::map<std::string, std::string> addresses;  // participant -> registered address
};

// A heuristic hazard this node saw (DESIGN §2.4).
struct HazardReport {
  txn::HazardEvent event;
  int64_t when_unix_ms = 0;
};

// A registered participant agent.
struct ParticipantReport {
  std::string name, address, backend;
};

class RaftNode {
 public:
  // Builds the node from what LogStorage::Open recovered: restores the table from the
  // recovered snapshot (Corruption if it cannot) and the Raft core from the rest.
  static Status Create(const NodeOptions& options, std::unique_ptr<storage::LogStorage> log,
                       storage::RecoveredState recovered, Metrics& metrics,
                       std::unique_ptr<RaftNode>* result);
  RaftNode(const RaftNode&) = delete;
  RaftNode& operator=(const RaftNode&) = delete;
  ~RaftNode();  // Stop()s

  // Starts the event loop, storage and peer threads.
  void Start();
  // Stops taking work, answers waiting calls UNAVAILABLE, writes and syncs everything the
  // core handed out, and joins every thread. Idempotent.
  void Stop();

  // Proposes `cmd` (already validated) and waits up to the request timeout for the entry to
  // be applied. kOk with the decision the table applied for the gtid (the first one
  // wins), kNotLeader with a hint, kUnknown on timeout or lost leadership, kUnavailable
  // when stopping.
  CallResult Decide(txn::DecideCommand cmd);
  // Several Decides queued at once (one wake-up of the event loop), each answered as
  // Decide() would, within one request timeout.
  std::vector<CallResult> DecideMany(std::vector<txn::DecideCommand> cmds);

  // The decision recorded for `gtid`. linearizable: only the leader answers, after a
  // read-index round (kNotLeader elsewhere, kUnknown on timeout); otherwise this node's
  // applied state is read at once. kOk or kNotFound.
  CallResult GetDecision(const std::string& gtid, bool linearizable);

  // Raft messages from peers (RaftService.Deliver), validated. Dropped when the inbox is
  // full or the node is stopping.
  void Deliver(std::vector<raft::Message>&& messages);

  NodeStatus GetStatus() const;

  // ---- global transactions (raft_node_txn.cc) ----
  // Each answers kNotLeader (with a hint) on a follower, kUnavailable when stopping, and
  // kUnknown if the event loop did not answer within the request timeout.

  // Starts a transaction: *gtid and the deadline in force.
  CallResult Begin(txn::Protocol protocol, int64_t deadline_ms, std::string* gtid,
                   int64_t* deadline_in_force_ms);
  // kOk, kNotFound (gtid not running here, participant unregistered), kWrongState,
  // kInvalidArgument.
  CallResult RegisterBranch(const std::string& gtid, const std::string& participant,
                            const std::string& branch, bool read_only);
  // Commit (commit = true) or Abort: kOk with `reply` once the engine answers, which for a
  // decision is once it is applied. Waits up to the transaction's vote timeout plus the
  // request timeout.
  CallResult Finish(bool commit, const std::string& gtid, txn::ClientReply* reply);
  // An agent's inquiry: kOk with *status.
  CallResult Inquire(const std::string& gtid, const txn::BranchRef& asker,
                     txn::InquiryStatus* status);
  // Registry: kOk once the mapping is applied.
  CallResult RegisterParticipant(const txn::RegisterParticipantCmd& cmd);
  // `verdictctl resolve`: kOk once the heuristic decision is applied, kWrongState (with
  // *decision if there is one) otherwise.
  CallResult Resolve(const std::string& gtid, txn::Outcome outcome, const txn::HeuristicInfo& info,
                     std::optional<txn::Outcome>* decision);
  // The leader's view of a gtid (kNotFound if neither the engine nor the table has it).
  CallResult GetTxn(const std::string& gtid, TxnReport* report);
  // Every transaction the engine drives plus the table's records that are not legacy
  // Decide records (heuristic ones stay forever), up to `limit`, ordered by gtid.
  CallResult ListTxns(size_t limit, std::vector<TxnReport>* reports, bool* truncated);
  // This node's applied registry (any role).
  std::vector<ParticipantReport> ListParticipants() const;
  // The most recent hazards this node saw (bounded) and how many in all.
  std::vector<HazardReport> Hazards(uint64_t* total) const;

 private:
  struct Proposal {
    txn::DecideCommand cmd;
    std::shared_ptr<Completion> done;
  };
  struct ReadRequest {
    std::string gtid;
    std::shared_ptr<Completion> done;
    std::chrono::steady_clock::time_point deadline;
  };
  struct PendingProposal {
    raft::Term term;
    std::string gtid;
    std::shared_ptr<Completion> done;
  };
  // Work queued for the event loop.
  struct Inbox {
    std::vector<raft::Message> messages;
    std::vector<Proposal> proposals;
    std::vector<ReadRequest> reads;
    std::vector<PersistedEvent> persisted;
    std::vector<std::function<void()>> tasks;    // engine calls, run on the loop
    std::vector<txn::ParticipantReply> replies;  // from the ParticipantSender
    // The table serialized by the snapshot thread (see MaybeCompact).
    std::shared_ptr<const std::string> serialized;
    bool Empty() const {
      return messages.empty() && proposals.empty() && reads.empty() && persisted.empty() &&
             tasks.empty() && replies.empty() && !serialized;
    }
  };
  // What a Ready asked to apply while the table was being serialized.
  struct DeferredApply {
    std::optional<raft::Snapshot> snapshot;
    std::vector<raft::Entry> entries;
  };
  static constexpr size_t kMaxInboxMessages = 100000;
  static constexpr int64_t kEngineTickMs = 5;  // engine timers' resolution

  RaftNode(const NodeOptions& options, std::unique_ptr<storage::LogStorage> log, Metrics& metrics);

  // Event loop (raft_node.cc).
  void Run();
  // Runs `add` on the inbox under its lock and wakes the loop; false if stopping.
  template <typename F>
  bool Push(F&& add);
  void OnPersisted(std::vector<PersistedEvent>&& events);
  void HandleProposals(std::vector<Proposal>& proposals);
  void HandleReads(std::vector<ReadRequest>& reads);
  void PublishStatus();
  void FailAllPending(CallResult::Code code, const std::string& message);
  CallResult NotLeaderResult() const;
  // The decision the table holds for a legacy Decide/GetDecision gtid, if any.
  std::optional<txn::DecisionRecord> DecisionOf(std::string_view gtid) const;

  // Engine driving (raft_node_txn.cc). All on the event loop thread.
  // Runs `task` on the event loop; false if stopping.
  bool RunOnLoop(std::function<void()> task);
  // Keeps the engine's idea of leadership equal to Raft's.
  void SyncLeadership();
  // Drains the engine's output (proposals, messages, answers, hazards) and the Readys it
  // causes, until both are quiet.
  void PumpEngine();
  void HandleEngineOutput(txn::EngineOutput out);
  void OnParticipantReply(const txn::ParticipantReply& reply);
  void PublishEngineStats();
  TxnReport ReportOf(const std::string& gtid, std::optional<txn::TxnView> view) const;
  // Any thread: an engine refusal as a CallResult; NOT_LEADER from the published status.
  CallResult FromEngineStatus(const Status& s) const;
  CallResult GetStatusNotLeader() const;
  int64_t NowMs() const;

  // Ready handling (raft_node_ready.cc).
  void HandleReady(raft::Ready rd);
  void ApplySnapshot(const raft::Snapshot& snapshot);
  void ApplyEntries(const std::vector<raft::Entry>& entries);
  void HandleReadStates(const std::vector<raft::ReadState>& read_states);
  void AnswerRead(const ReadRequest& read);
  void AnswerReadsUpToApplied();

  // Snapshots (raft_node_snapshot.cc). Serializing a large table takes long, so it runs
  // on a helper thread; meanwhile the event loop keeps Raft going (ticks, votes,
  // replication, persistence) and defers applying committed entries until it is done.
  void MaybeCompact();
  void FinishCompaction(std::shared_ptr<const std::string> data);
  void ExpireReads(std::chrono::steady_clock::time_point now);

  const NodeOptions options_;
  Metrics& metrics_;
  PeerRouter router_;
  StorageWriter storage_;

  // ---- owned by the event loop thread ----
  std::unique_ptr<raft::Raft> raft_;
  raft::Index applied_ = 0;
  raft::Index last_snapshot_index_ = 0;
  raft::HardState last_hard_state_;  // as last handed to storage
  raft::Role last_role_ = raft::Role::kFollower;
  raft::Membership last_membership_;
  std::map<raft::Index, PendingProposal> proposals_;       // by log index
  std::map<std::string, ReadRequest> reads_by_context_;    // waiting for their read state
  std::multimap<raft::Index, ReadRequest> reads_waiting_;  // waiting for apply
  uint64_t read_seq_ = 0;
  bool serializing_ = false;             // a snapshot thread is reading the table
  raft::Index serializing_index_ = 0;    // the applied index it snapshots
  std::vector<DeferredApply> deferred_;  // Ready applies held back while serializing
  std::thread serializer_;

  // The table: written only by the event loop, under an exclusive lock; other threads
  // read it under a shared lock; the event loop reads it without locking.
  mutable std::shared_mutex table_mu_;
  txn::TxnTable table_;  // guarded by table_mu_ (writes)

  // ---- the protocol engine: owned by the event loop thread ----
  std::unique_ptr<txn::ProtocolEngine> engine_;  // reads table_
  ParticipantSender participants_;
  txn::RequestToken next_token_ = 1;
  std::map<txn::RequestToken, std::shared_ptr<OneShot<txn::ClientReply>>> client_waiters_;
  std::map<txn::RequestToken, std::shared_ptr<OneShot<txn::InquiryReply>>> inquiry_waiters_;
  std::map<txn::RequestToken, std::shared_ptr<OneShot<txn::AdminReply>>> admin_waiters_;
  std::chrono::steady_clock::time_point epoch_ = std::chrono::steady_clock::now();
  int64_t last_engine_tick_ms_ = 0;

  static constexpr size_t kMaxHazards = 1000;
  mutable std::mutex hazards_mu_;
  std::deque<HazardReport> hazards_;  // guarded by hazards_mu_
  uint64_t hazards_total_ = 0;        // guarded by hazards_mu_

  mutable std::mutex inbox_mu_;
  std::condition_variable inbox_cv_;
  Inbox inbox_;            // guarded by inbox_mu_
  bool stopping_ = false;  // guarded by inbox_mu_

  mutable std::mutex status_mu_;
  NodeStatus status_;  // guarded by status_mu_; published by the event loop

  std::thread loop_thread_;
  bool started_ = false;  // Start()/Stop() caller only
};

template <typename F>
bool RaftNode::Push(F&& add) {
  std::lock_guard<std::mutex> lock(inbox_mu_);
  if (stopping_) return false;
  bool was_empty = inbox_.Empty();
  add(inbox_);
  if (was_empty) inbox_cv_.notify_one();
  return true;
}

}  // namespace verdict::coordinator::server

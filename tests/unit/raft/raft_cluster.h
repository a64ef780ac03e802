// RaftCluster: a test harness that drives N Raft cores in one thread over a fake network
// (messages wait until the test delivers, drops, duplicates or reorders them), a fake clock
// (ticks on demand) and an in-memory disk per node, following the Ready contract of
// coordinator/raft/raft.h. It checks Raft's safety properties as it goes (one leader per
// term, leader completeness, state-machine safety, durability of answers, applied index
// never moving backwards) and reports violations as GoogleTest failures.
// Thread-compatible: one test thread owns it.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "coordinator/raft/raft.h"
#include "coordinator/raft/types.h"

namespace verdict::coordinator::raft {
// GoogleTest printers for the value types (found by argument-dependent lookup).
void PrintTo(const Entry& e, std::ostream* os);
void PrintTo(const Membership& m, std::ostream* os);
void PrintTo(Role r, std::ostream* os);
}  // namespace verdict::coordinator::raft

namespace verdict::coordinator::raft::testing {

struct ClusterOptions {
  int nodes = 3;  // ids 1..nodes, all voters of the initial membership
  int election_ticks = 10;
  int heartbeat_ticks = 1;
  bool pre_vote = true;
  bool check_quorum = true;
  size_t max_entries_per_msg = 1024;
  size_t max_inflight_msgs = 64;
  uint64_t seed = 1;  // drives every node's election timer and the network's faults
};

// What one node has made durable. Survives Crash().
struct Disk {
  HardState hard_state;
  std::optional<Snapshot> snapshot;
  std::vector<Entry> entries;  // contiguous, starting right after the snapshot (or at 1)

  Index SnapshotIndex() const { return snapshot ? snapshot->meta.index : 0; }
  Index LastIndex() const;
  std::optional<Term> TermAt(Index index) const;
  RestoredState ToRestoredState() const;
};

// One record per message a node emitted, taken before the network decides its fate.
struct SentMessage {
  MessageType type;
  NodeId from;
  NodeId to;
  Term term;
  Index index;
  bool reject;
  bool after_persist;  // came from Ready::messages_after_persist
  size_t entries;
  bool dropped;  // by a partition, a filter or a random fault
};

// Random faults applied by the network, drawn from the cluster's seeded generator.
struct NetworkFaults {
  double drop = 0;       // a sent message is lost
  double duplicate = 0;  // a sent message is queued twice
  double delay = 0;      // a queued message waits for a later DeliverAll()
  bool reorder = false;  // queued messages are delivered in random order
};

// The state machine's view of one node: every entry it applied, in index order.
struct AppliedLog {
  std::vector<Entry> entries;  // entries[i].index == i + 1
  Index applied_index = 0;
  int snapshots_applied = 0;  // during this incarnation
  struct Read {
    ReadState state;
    Index applied_when_received;
  };
  std::vector<Read> reads;  // read states released to this node (this incarnation)
};

class RaftCluster {
 public:
  explicit RaftCluster(const ClusterOptions& options);
  RaftCluster(const RaftCluster&) = delete;
  RaftCluster& operator=(const RaftCluster&) = delete;
  ~RaftCluster();

  // ---- nodes ----
  const ClusterOptions& options() const { return options_; }
  std::vector<NodeId> ids() const;    // every node ever created, ascending
  std::vector<NodeId> UpIds() const;  // the ones not crashed
  bool IsUp(NodeId id) const;
  // The live core of `id`. Aborts if the node is crashed or unknown (a test bug).
  Raft& node(NodeId id);
  const Disk& disk(NodeId id) const;
  const AppliedLog& applied(NodeId id) const;
  // Creates a node that is not in any initial membership (a server about to be added):
  // empty initial_membership, connected to everyone.
  void AddNode(NodeId id);
  // Power cut: the core, its unpersisted writes and its state machine are lost; the disk
  // stays. Messages already in the network stay there.
  void Crash(NodeId id);
  // Builds a new core from the node's disk; the state machine restarts from the disk's
  // snapshot. `adjust` may change the node's Config (kept for later restarts).
  void Restart(NodeId id, const std::function<void(Config*)>& adjust = {});
  void CrashAll();
  void RestartAll();

  // ---- clock ----
  // Ticks one node `n` times and sends what it produces; delivers nothing.
  void Tick(NodeId id, int n = 1);
  // `rounds` times: tick every live node once, then DeliverAll().
  void TickAll(int rounds = 1);
  // Like TickAll but only the listed nodes' clocks advance.
  void TickNodes(const std::vector<NodeId>& ids, int rounds = 1);

  // ---- network ----
  // Delivers queued messages (and everything they cause) until the network is quiet.
  // Returns how many were delivered.
  int DeliverAll();
  // Delivers, in queue order, the currently queued messages matching `pred`, once. What
  // they cause is queued, not delivered.
  int DeliverIf(const std::function<bool(const Message&)>& pred);
  int DropIf(const std::function<bool(const Message&)>& pred);
  std::vector<Message> TakeIf(const std::function<bool(const Message&)>& pred);
  void DuplicateQueued();
  void ReverseQueued();
  size_t queued() const { return queue_.size() + held_.size(); }
  // Hands `m` straight to m.to, ignoring partitions (forged or replayed input).
  void Inject(const Message& m);
  // Messages matching a filter are dropped when sent, until ClearFilters().
  void AddFilter(std::function<bool(const Message&)> drop);
  // Every sent message passes through `rewrite` (e.g. to strip entries), until
  // ClearFilters().
  void AddRewrite(std::function<void(Message*)> rewrite);
  void ClearFilters();
  void SetFaults(const NetworkFaults& faults) { faults_ = faults; }
  // Called for every message a node emits, before the network decides its fate.
  void OnSend(std::function<void(const Message&, bool after_persist)> hook) {
    on_send_ = std::move(hook);
  }

  // ---- partitions ----
  void Isolate(NodeId id);
  void Reconnect(NodeId id);
  // Cuts every link between a node of `a` and a node of `b`.
  void Partition(const std::vector<NodeId>& a, const std::vector<NodeId>& b);
  void Heal();
  bool Connected(NodeId a, NodeId b) const;

  // ---- disk ----
  // In delayed mode a node's Ready writes (and everything after them: after-persist
  // messages, OnPersisted, applying) wait until CompletePersist().
  void SetDelayPersist(NodeId id, bool delay);
  size_t PendingWrites(NodeId id) const;
  // Completes up to `n` of the node's oldest pending writes, in order.
  void CompletePersist(NodeId id, size_t n = SIZE_MAX);

  // ---- clients ----
  // Propose on `id` and send what it produces (nothing is delivered).
  Status Propose(NodeId id, std::string data, Index* index = nullptr, Term* term = nullptr);
  // Proposes every item before draining the node's Ready once (a batch).
  Status ProposeBatch(NodeId id, const std::vector<std::string>& data);
  Status ProposeConfChange(NodeId id, const ConfChange& change, Index* index = nullptr);
  Status TransferLeadership(NodeId id, NodeId target);
  void ReadIndex(NodeId id, std::string context);
  // Compacts `id` at its applied index with its state machine's serialized state, and
  // stores the snapshot on its disk (the driver persists it itself).
  Status Compact(NodeId id);
  // The 6.824 tester's one(): proposes `data` on the leader (retrying while leadership
  // moves) until at least `expected` live nodes applied it. Returns its index, 0 if it
  // did not happen within `max_rounds` tick rounds.
  Index ProposeAndWait(const std::string& data, int expected, int max_rounds = 200);
  // How many live nodes applied an entry at `index` carrying `data`.
  int AppliedCount(Index index, const std::string& data) const;

  // ---- leadership ----
  // A live leader acknowledged (same term, leader() == it) by a quorum of its voters,
  // counting itself; kNoNode if none.
  NodeId Leader() const;
  // Every live node whose role is leader (a stale leader included).
  std::vector<NodeId> Leaders() const;
  // Like Leader(), but only a node of `group` whose quorum lies within `group` (the
  // leader of one side of a partition).
  NodeId LeaderOf(const std::vector<NodeId>& group) const;
  // Ticks all (with delivery) until Leader() finds one; returns it or kNoNode.
  NodeId WaitLeader(int max_rounds = 0);
  // WaitLeader(), then one more round so every follower knows the commit index.
  NodeId StabilizeElection();
  // Ticks only `id` until it campaigns, then delivers everything. Other voters must be
  // willing to vote (no leader lease in force). Returns true if `id` leads.
  bool ElectLeader(NodeId id);
  // (term -> leader) for every leader observed so far.
  const std::map<Term, NodeId>& leaders_by_term() const { return leaders_by_term_; }

  // ---- messages ----
  const std::vector<SentMessage>& sent() const { return sent_; }
  int Count(MessageType type) const;
  int Count(const std::function<bool(const SentMessage&)>& pred) const;
  void ResetCounters() { sent_.clear(); }
  // Append acknowledgements and vote grants found in Ready::messages rather than
  // Ready::messages_after_persist (the contract puts them after the write), over the
  // cluster's whole life; and the first one.
  int early_answers() const { return early_answers_; }
  const std::string& first_early_answer() const { return first_early_answer_; }

  // ---- invariants ----
  // Log matching across live nodes, commits within logs and matching what was applied,
  // applied never ahead of commit. Reports violations as test failures.
  void CheckInvariants();
  // Every entry some node applied, by index (the cluster's committed prefix as observed).
  const std::map<Index, Entry>& committed() const { return committed_; }

 private:
  struct Node;
  struct PendingWrite;

  Node& GetNode(NodeId id);
  const Node& GetNode(NodeId id) const;
  Config MakeConfig(NodeId id, Membership initial) const;
  void Process(NodeId id);
  void CompleteWrite(NodeId id, PendingWrite w);
  void Send(const Message& m, bool after_persist);
  void Deliver(const Message& m);
  bool Reachable(NodeId from, NodeId to) const;
  void ObserveRole(NodeId id);
  void CheckLeaderCompleteness(NodeId id);
  void CheckEarlyMessage(NodeId id, const Message& m);
  void RecordApplied(NodeId id, const Entry& e);
  void ApplySnapshot(NodeId id, const Snapshot& s);

  const ClusterOptions options_;
  std::mt19937_64 rng_;
  std::map<NodeId, std::unique_ptr<Node>> nodes_;
  Membership initial_membership_;

  std::deque<Message> queue_;
  std::deque<Message> held_;                 // delayed by a fault until the next DeliverAll()
  std::set<std::pair<NodeId, NodeId>> cut_;  // (low, high) links that are down
  std::vector<std::function<bool(const Message&)>> filters_;
  std::vector<std::function<void(Message*)>> rewrites_;
  NetworkFaults faults_;
  std::function<void(const Message&, bool)> on_send_;
  std::vector<SentMessage> sent_;
  int early_answers_ = 0;
  std::string first_early_answer_;

  bool trace_ = false;  // VERDICT_RAFT_TRACE set: print every delivered message
  std::map<Term, NodeId> leaders_by_term_;
  std::set<Term> split_terms_;  // terms already reported with two leaders
  std::map<Index, Entry> committed_;
};

// Encodes the applied entries [1, index] as a snapshot's state-machine data.
std::string EncodeAppliedLog(const std::vector<Entry>& entries, Index index);
bool DecodeAppliedLog(const std::string& data, std::vector<Entry>* entries);

}  // namespace verdict::coordinator::raft::testing

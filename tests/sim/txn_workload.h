// TxnWorkload: the transaction workload of verdict-sim. Simulated clients run global
// transactions through the coordinator group's ProtocolEngines (Begin 2PC or 3PC, branch
// work on 1..N participant agents, RegisterBranch, Commit or Abort, retrying NOT_LEADER and
// UNKNOWN at other nodes); simulated participant agents (ParticipantCore plus volatile
// timers) vote, obey PRECOMMIT/FENCE/COMMIT/ABORT, inquire, commit PRECOMMITTED branches
// after coordinator silence and run cooperative termination (2PC) or the fencing
// termination of DESIGN §4 (3PC) among themselves. Every message crosses the simulated
// network. It injects participant crashes and partitions and can isolate the coordinator
// group from every participant; it checks atomicity after every change. Not thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "tests/sim/checker.h"
#include "tests/sim/network.h"
#include "tests/sim/participant_core.h"
#include "tests/sim/sim_node.h"

namespace verdict::sim {

struct TxnOptions {
  int agents = 3;
  int max_branches = 3;            // per transaction: 1..max_branches agents
  Time min_arrival = 5 * kMillis;  // gap between new transactions
  Time max_arrival = 60 * kMillis;
  double three_pc = 0.5;
  // Single-branch transactions (one-phase commit) and clients that commit with no branch
  // opened (empty commit), both decided without a log entry.
  bool one_phase = true;
  double client_abort = 0.1;    // the client asks Abort instead of Commit
  double client_vanish = 0.03;  // the client never decides (the deadline cleans up)
  int64_t min_deadline_ms = 300, max_deadline_ms = 3000;
  double vote_no = 0.05, vote_read_only = 0.05, one_phase_fail = 0.1;
  // Agent timers (virtual time, on the agent's clock).
  Time agent_tick = 20 * kMillis;
  Time active_timeout = 3 * kSeconds;  // an unvoted branch gives up (votes NO later)
  Time inquire_after = 300 * kMillis;  // coordinator silence before asking it
  Time inquire_every = 200 * kMillis;
  Time terminate_after = 1 * kSeconds;    // coordinator silence before asking peers
  Time self_commit_after = 2 * kSeconds;  // PRECOMMITTED: coordinator silence, then commit
  Time round_timeout = 300 * kMillis;     // a termination round with an unreachable peer
  // Faults, per fault step of the scheduler.
  double agent_crash = 0.05;
  double agent_partition = 0.1;
  double isolate_group = 0.02;  // every coordinator cut from every participant
  Time max_agent_downtime = 2 * kSeconds;
  Time max_agent_partition = 3 * kSeconds;
  ParticipantMutation mutation = ParticipantMutation::kNone;
};

struct TxnStats {
  uint64_t transactions = 0, committed = 0, aborted = 0, unknown_given_up = 0;
  uint64_t branches_committed = 0, branches_aborted = 0;
  uint64_t self_commits = 0, terminations_commit = 0, terminations_abort = 0;
  uint64_t fenced_by_peers = 0, inquiries = 0, agent_crashes = 0, agent_partitions = 0;
  uint64_t group_isolations = 0, client_retries = 0;
};

class TxnWorkload {
 public:
  using NodeLookup = std::function<SimNode*(raft::NodeId)>;

  TxnWorkload(const TxnOptions& options, EventQueue* queue, Random* rng, Trace* trace,
              Checker* checker, Network* network, std::vector<raft::NodeId> node_ids,
              NodeLookup nodes);
  TxnWorkload(const TxnWorkload&) = delete;
  TxnWorkload& operator=(const TxnWorkload&) = delete;

  void Start();
  // SimNode hooks.
  void OnEngineOutput(raft::NodeId node, const txn::EngineOutput& out);
  void OnApply(raft::NodeId node, const raft::Entry& e, const txn::ApplyResult& result);

  // One fault step: maybe crash or partition an agent, maybe isolate the coordinator group.
  void Fault();
  // Faults stop: agents restart, the workload's partitions heal, no new transactions.
  void Heal();
  // Everything decided: every agent up with no branch ACTIVE or in doubt, every client
  // answered (or given up on UNKNOWN after healing), the leader's engine holds nothing and
  // its table has no intent without a decision.
  bool Settled(const SimNode* leader) const;
  std::string DescribeUnsettled(const SimNode* leader) const;
  // Final atomicity check of every gtid.
  void Check();

  const TxnStats& stats() const { return stats_; }

 private:
  struct Round {  // a termination round of one branch
    enum class Phase { kNone, kQuery, kFence } phase = Phase::kNone;
    uint64_t id = 0;
    Time started = 0;
    std::set<std::string> waiting;
  };
  struct Timers {  // volatile, per ACTIVE or in-doubt branch
    Time opened = 0, last_coord = 0, last_inquiry = -1, last_round = -1;
    Round round;
  };
  struct Agent {
    std::string name;
    raft::NodeId ep = 0;
    std::unique_ptr<ParticipantCore> core;
    bool up = true;
    uint64_t boot = 1;
    raft::NodeId hint = raft::kNoNode;
    std::map<std::string, Timers> timers;
  };
  struct Client {
    enum class Stage { kBegin, kRegister, kDecide, kDone, kVanished } stage = Stage::kBegin;
    std::string gtid;
    txn::Protocol protocol = txn::Protocol::k2PC;
    int64_t deadline_ms = 0;
    bool commit = true;
    std::vector<std::string> parts;
    raft::NodeId node = raft::kNoNode;
    uint64_t attempt = 0;
    Time backoff = 0;
    std::optional<txn::ClientOutcome> answer;
    int unknowns = 0;  // after healing
    bool gave_up = false;
  };
  struct Counts {
    int committed = 0, aborted = 0;
    std::string committed_on, aborted_on;
  };

  void Arrive();
  void ClientSend(size_t c);  // the client's current request, to c.node
  void ClientRetry(size_t c, raft::NodeId hint, bool backoff);
  void OnBeginReply(size_t c, uint64_t attempt, Status s, const std::string& gtid,
                    raft::NodeId hint);
  void OnRegisterReply(size_t c, uint64_t attempt, Status s);
  void OnClientReply(size_t c, uint64_t attempt, const txn::ClientReply& r, raft::NodeId hint);
  void Register();  // the agents' REGISTER_PARTICIPANT, until applied

  Agent& AgentByName(const std::string& name);
  void AgentReceive(size_t a, raft::NodeId node, const txn::ParticipantMessage& m);
  void AgentTick(size_t a);
  void Inquire(size_t a, const std::string& gtid);
  void OnInquiryReply(size_t a, uint64_t boot, const std::string& gtid, txn::InquiryStatus s,
                      raft::NodeId hint);
  void StartRound(size_t a, const std::string& gtid);
  void OnStatusReply(size_t a, uint64_t boot, const std::string& gtid, uint64_t round,
                     const std::string& peer, BranchState s, bool read_only);
  void OnFenceReply(size_t a, uint64_t boot, const std::string& gtid, uint64_t round,
                    const std::string& peer, BranchState s, bool read_only);
  void StartFencing(size_t a, const std::string& gtid);
  void TerminateWith(size_t a, const std::string& gtid, txn::Outcome o, const char* why);
  void OnBranchChange(size_t a, const std::string& gtid, BranchState from, BranchState to);
  void CrashAgent(size_t a);
  void RestartAgent(size_t a);
  void PartitionAgent();
  void IsolateGroup();

  void CheckGtid(const std::string& gtid);
  std::vector<std::string> PeersOf(size_t a, const std::string& gtid);
  raft::NodeId PickNode(raft::NodeId hint);
  Time Jitter(Time t) { return t + rng_->RangeSigned(0, t / 4); }

  const TxnOptions options_;
  EventQueue* queue_;
  Random* rng_;
  Trace* trace_;
  Checker* checker_;
  Network* network_;
  const std::vector<raft::NodeId> node_ids_;
  NodeLookup nodes_;

  static constexpr raft::NodeId kClientEp = 500;
  std::vector<Agent> agents_;
  std::vector<Client> clients_;
  std::map<std::string, size_t> client_of_;  // gtid -> client
  std::map<std::string, Counts> counts_;     // gtid -> branches decided (read-only excluded)
  // Engine tokens: client requests (client, attempt) and inquiries (agent, boot, gtid).
  std::map<txn::RequestToken, std::pair<size_t, uint64_t>> client_tokens_;
  struct InquiryToken {
    size_t agent;
    uint64_t boot;
    std::string gtid;
  };
  std::map<txn::RequestToken, InquiryToken> inquiry_tokens_;
  txn::RequestToken next_token_ = 1;
  std::set<std::string> registered_;
  uint64_t round_seq_ = 0;
  uint64_t partition_gen_ = 0;
  bool arriving_ = false;
  bool healing_ = false;
  TxnStats stats_;
};

}  // namespace verdict::sim

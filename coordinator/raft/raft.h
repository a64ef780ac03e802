// Raft: the consensus core of one node, as a deterministic state machine with no I/O,
// no threads and no clock of its own. Not thread-safe: one driver thread owns it.
//
// The driver feeds it events — Tick(), Step(message), Propose(), OnPersisted() — and after
// each batch of events drains the work it produced with GetReady():
//
//   Ready rd = raft.GetReady();
//   1. send rd.messages now (the leader's replication traffic: it may go out before the
//      leader's own disk write finishes, so the leader writes in parallel with replication);
//   2. durably store rd.snapshot (if any), then rd.hard_state and rd.entries
//      (rd.entries.front().index may be <= the stored last index: the stored suffix from
//      there is replaced), with ONE sync for the whole Ready (group commit);
//   3. only after that sync, send rd.messages_after_persist (votes, append responses:
//      answers that promise durable state), and call
//      raft.OnPersisted(rd.entries.back().index, rd.entries.back().term) if entries were
//      written, and raft.OnSnapshotPersisted(rd.snapshot->meta.index) if a snapshot was;
//   4. apply rd.snapshot (if any) to the state machine, then rd.committed_entries in
//      order; serve rd.read_states once the state machine has applied their index.
//
// Several Readys may be in flight at once if the driver writes asynchronously, as long as
// their writes complete, and their step-3 actions happen, in the order the Readys were
// produced.
//
// Safety properties the core maintains (tested in tests/unit and by verdict-sim):
// election safety, log matching, leader completeness, state-machine safety; a leader
// commits only entries of its own term by counting replicas (paper figure 8).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "common/status.h"
#include "coordinator/raft/types.h"

namespace verdict::coordinator::raft {

struct Config {
  NodeId id = kNoNode;
  // The founding membership of a brand-new cluster. A node that restores no snapshot and
  // no entries and has a non-empty initial_membership bootstraps: it creates log entry 1
  // (term 1, a kSetMembership change, committed by construction — every founding node
  // creates the same entry) and hands it out in its first Ready to persist and apply.
  // Membership is always derived from the log and the snapshot, never from this field
  // afterwards. A node joining an existing cluster passes an empty map, never campaigns,
  // and learns the membership from the leader's log or snapshot.
  Membership initial_membership;
  // A follower that hears nothing from a leader for a random number of ticks in
  // [election_ticks, 2*election_ticks) starts an election. The leader sends heartbeats
  // every heartbeat_ticks.
  int election_ticks = 10;
  int heartbeat_ticks = 1;
  bool pre_vote = true;
  // A leader that has not heard from a majority within an election timeout steps down;
  // a follower that heard from a live leader within the election timeout ignores votes.
  bool check_quorum = true;
  // Flow control: entries per kAppend, bytes per kAppend, kAppend messages in flight per
  // follower (pipelining).
  size_t max_entries_per_msg = 1024;
  size_t max_bytes_per_msg = 1 << 20;
  size_t max_inflight_msgs = 64;
  // Seed of the random election timeouts. Same seed, same events => same behaviour.
  uint64_t seed = 1;
};

// What a restarted node recovered from its storage.
struct RestoredState {
  HardState hard_state;
  std::optional<Snapshot> snapshot;
  std::vector<Entry> entries;  // contiguous, starting right after the snapshot (or at 1)
};

struct Ready {
  std::optional<HardState> hard_state;          // set when term, vote or commit changed
  std::vector<Entry> entries;                   // to append durably
  std::optional<Snapshot> snapshot;             // installed from the leader: store it, apply it
  std::vector<Message> messages;                // may be sent at once
  std::vector<Message> messages_after_persist;  // send only after this Ready is durable
  std::vector<Entry> committed_entries;         // apply in order
  std::vector<ReadState> read_states;

  bool Empty() const {
    return !hard_state && entries.empty() && !snapshot && messages.empty() &&
           messages_after_persist.empty() && committed_entries.empty() && read_states.empty();
  }
};

// Per-follower replication state, as the leader sees it.
struct Progress {
  Index match = 0;  // highest index known to be replicated there
  Index next = 1;   // next index to send
  enum class State : uint8_t { kProbe, kReplicate, kSnapshot } state = State::kProbe;
  bool recent_active = false;  // heard from since the last check-quorum round
  // Indexes of the last entry of each kAppend in flight, oldest first (pipelining window).
  std::vector<Index> inflight;
  bool probe_sent = false;     // in kProbe: one kAppend outstanding, wait for its answer
  Index pending_snapshot = 0;  // in kSnapshot: index of the snapshot sent
  int snapshot_elapsed = 0;    // in kSnapshot: ticks since sent; resent after a timeout
};

class Raft {
 public:
  // Panics if `restored` is internally inconsistent (entries not contiguous, a commit
  // beyond the last index): that is corrupt durable state, not a recoverable error.
  Raft(const Config& config, RestoredState restored);
  Raft(const Raft&) = delete;
  Raft& operator=(const Raft&) = delete;
  ~Raft();

  // ---- events ----

  // Advances the logical clock one tick (elections, heartbeats, check-quorum, transfer
  // timeout).
  void Tick();

  // Handles a message from a peer. Messages from unknown terms, stale messages and
  // duplicates are handled per the protocol (ignored or answered); never fails.
  void Step(const Message& m);

  // Appends `data` as a new entry if this node is the leader and no leadership transfer
  // is under way. On success *index and *term identify the entry: the proposal is
  // applied iff an entry with that index AND term is later committed. Otherwise returns
  // NotLeader (see leader()).
  Status Propose(std::string data, Index* index = nullptr, Term* term = nullptr);

  // Proposes a single-server membership change. Fails with NotLeader, or with
  // FailedPrecondition if another change is still uncommitted, the node is already a
  // voter (add) or not one (remove), or the change would leave no voter.
  Status ProposeConfChange(const ConfChange& change, Index* index = nullptr, Term* term = nullptr);

  // Starts a leadership transfer to `target` (a voter). The leader stops accepting
  // proposals, brings the target up to date, then tells it to campaign at once. The
  // transfer is abandoned after an election timeout. Fails with NotLeader or
  // InvalidArgument.
  Status TransferLeadership(NodeId target);

  // Requests a linearizable read point. It appears later in Ready::read_states with the
  // same context, or never (lost leadership, no leader): callers time out and retry. On a
  // follower the request is forwarded to the leader.
  void ReadIndex(std::string context);

  // The entries up to (index, term) are durable in local storage.
  void OnPersisted(Index index, Term term);
  // The snapshot handed out in a Ready with this index is durable.
  void OnSnapshotPersisted(Index index);

  // Compacts the in-memory log: the state machine has applied `index` and serialized its
  // state into `data`. Entries up to `index` are dropped (the leader sends this snapshot to
  // followers that need them). Fails with InvalidArgument if `index` is not applied or
  // not above the current snapshot. The driver persists the snapshot itself.
  Status Compact(Index index, std::shared_ptr<const std::string> data);

  // Drains the work produced so far. See the file comment for the contract.
  Ready GetReady();
  bool HasReady() const;

  // ---- queries ----
  NodeId id() const { return id_; }
  Role role() const { return role_; }
  Term term() const { return term_; }
  NodeId vote() const { return vote_; }
  NodeId leader() const { return leader_; }
  Index commit_index() const { return commit_; }
  Index applied_index() const { return applied_; }
  Index first_index() const;  // first entry in the in-memory log (snapshot index + 1)
  Index last_index() const;
  Term last_term() const;
  // Term of entry `index`, or nullopt if it is compacted away or beyond the log. The
  // snapshot's own index reports the snapshot's term.
  std::optional<Term> TermAt(Index index) const;
  // The entries in [lo, hi) (must be within [first_index(), last_index()+1)).
  std::vector<Entry> Entries(Index lo, Index hi) const;
  const Membership& membership() const;
  const std::optional<Snapshot>& snapshot() const { return snapshot_; }
  NodeId transfer_target() const { return transfer_target_; }
  // The leader's view of a voter's replication, or nullptr.
  const Progress* progress(NodeId id) const;

 private:
  // Implemented across raft.cc (construction, log, roles, ticks, Step dispatch, Ready),
  // raft_election.cc, raft_replication.cc, raft_snapshot.cc, raft_membership.cc and
  // raft_read_index.cc.

  // Log access.
  const Entry& At(Index index) const;  // precondition: first_index() <= index <= last_index()
  void AppendEntry(EntryType type, std::string data);  // leader: appends at last_index()+1
  // Follower: appends `entries` after (prev_index, prev_term) if that entry matches,
  // replacing a conflicting uncommitted suffix. Returns false if it does not match.
  bool MaybeAppend(Index prev_index, Term prev_term, const std::vector<Entry>& entries,
                   Index* last_new);
  void TruncateFrom(Index index);
  bool IsUpToDate(Index last_index, Term last_term) const;
  // Largest index <= `index` whose term is <= `term` (fast backtracking).
  Index FindConflictByTerm(Index index, Term term) const;

  // Roles and elections (raft_election.cc).
  void BecomeFollower(Term term, NodeId leader);
  void BecomePreCandidate();
  void BecomeCandidate();
  void BecomeLeader();
  void Campaign(bool forced);
  void TallyVote(NodeId from, bool granted);
  void HandleVoteRequest(const Message& m);
  void ResetTimers();
  size_t Quorum() const;
  bool IsVoter() const;
  bool InLease() const;

  // Step by role.
  void StepLeader(const Message& m);
  void StepCandidate(const Message& m);
  void StepFollower(const Message& m);

  // Replication (raft_replication.cc).
  void HandleAppend(const Message& m);
  void HandleHeartbeat(const Message& m);
  void HandleAppendResp(const Message& m);
  void HandleHeartbeatResp(const Message& m);
  void BroadcastAppend(bool send_if_empty);
  void BroadcastHeartbeat(const std::string& context);
  // Sends what `to` is missing, several pipelined messages in kReplicate. Returns whether
  // anything was sent.
  bool SendAppends(NodeId to, bool send_if_empty);
  bool SendOneAppend(NodeId to, bool send_if_empty);
  void SendHeartbeat(NodeId to, const std::string& context);
  void MaybeCommit();
  void CommitTo(Index index);

  // Snapshots (raft_snapshot.cc).
  void SendSnapshot(NodeId to);
  void HandleSnapshot(const Message& m);

  // Membership (raft_membership.cc).
  void MembershipMayHaveChanged();
  Membership MembershipAt(Index index) const;

  // Read index (raft_read_index.cc).
  void StartRead(std::string context, NodeId requester);
  void HandleReadIndexAck(const std::string& token, NodeId from);
  void ReleaseRead(Index index, const std::string& context, NodeId requester);
  void FlushDeferredReads();

  void Send(Message m);

  // ---- state ----
  const Config config_;
  const NodeId id_;
  std::mt19937_64 rng_;

  Role role_ = Role::kFollower;
  Term term_ = 0;
  NodeId vote_ = kNoNode;
  NodeId leader_ = kNoNode;
  Index commit_ = 0;
  Index applied_ = 0;  // last index handed out for applying (or the snapshot's)

  // The log: snapshot_ (if any) covers [1, snapshot_index_]; log_ holds the entries after.
  std::optional<Snapshot> snapshot_;
  Index snapshot_index_ = 0;
  Term snapshot_term_ = 0;
  std::vector<Entry> log_;     // log_[i].index == snapshot_index_ + 1 + i
  Index persisted_index_ = 0;  // entries up to here are durable locally
  Index unstable_from_ = 1;    // entries from here on have not been handed out to persist

  // Membership history: index of each kConfChange entry in the log -> the membership it
  // establishes. The membership in force is the last one, else base_membership_.
  std::map<Index, Membership> conf_history_;
  Membership base_membership_;    // as of snapshot_index_ (or the initial one)
  Membership membership_;         // in force
  Index pending_conf_index_ = 0;  // a leader may not propose a change until this commits

  // Timers, in ticks.
  int election_elapsed_ = 0;
  int heartbeat_elapsed_ = 0;
  int randomized_election_timeout_ = 0;
  int transfer_elapsed_ = 0;

  // Elections: votes for this node's (pre-)candidacy; true = granted.
  std::map<NodeId, bool> votes_;

  // Leader state.
  std::map<NodeId, Progress> progress_;  // every voter but this node
  NodeId transfer_target_ = kNoNode;
  bool broadcast_pending_ = false;  // proposals appended since the last broadcast
  struct PendingRead {
    Index index;
    std::string context;
    NodeId requester;   // kNoNode: this node
    std::string token;  // heartbeat context that confirms it
    std::map<NodeId, bool> acks;
  };
  std::vector<PendingRead> pending_reads_;  // awaiting a quorum of heartbeat acks
  std::vector<std::pair<std::string, NodeId>> deferred_reads_;  // until a commit in term
  uint64_t read_seq_ = 0;

  // Output waiting for GetReady().
  Ready ready_;
  HardState last_hard_state_;
};

}  // namespace verdict::coordinator::raft

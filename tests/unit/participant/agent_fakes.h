// Test doubles for the participant agent: a manual clock, a scriptable coordinator, a
// peer client that routes calls to in-process agents by address and a scriptable
// resource manager. Thread-safe.
#pragma once

#include <map>
#include <mutex>
#include <set>

#include "participant/agent.h"

namespace verdict::participant::testing {

class FakeClock : public AgentClock {
 public:
  int64_t NowMs() override {
    std::lock_guard<std::mutex> l(mu_);
    return now_;
  }
  // Wall time moves with NowMs(), from an epoch-like offset, plus any StepWall().
  int64_t WallMs() override {
    std::lock_guard<std::mutex> l(mu_);
    return kWallOffsetMs + now_ + wall_step_;
  }
  void Advance(int64_t ms) {
    std::lock_guard<std::mutex> l(mu_);
    now_ += ms;
  }
  // The wall clock alone jumps (an NTP step, a reset clock); NowMs() does not.
  void StepWall(int64_t ms) {
    std::lock_guard<std::mutex> l(mu_);
    wall_step_ += ms;
  }

 private:
  static constexpr int64_t kWallOffsetMs = 1'790'000'000'000;
  std::mutex mu_;
  int64_t now_ = 1000000;  // guarded by mu_
  int64_t wall_step_ = 0;  // guarded by mu_
};

class FakeCoordinator : public CoordinatorClient {
 public:
  Status Register(const std::string& name, const std::string& address,
                  const std::string&) override {
    std::lock_guard<std::mutex> l(mu_);
    ++register_attempts;
    if (register_attempts <= refuse_registrations) return Status::Unavailable("no leader");
    registered[name] = address;
    return Status::OK();
  }
  Status Inquire(const BranchKey& key, const std::string&, InquiryResult* r) override {
    std::lock_guard<std::mutex> l(mu_);
    ++inquiries;
    if (!reachable) return Status::Unavailable("coordinator group unreachable");
    auto it = decisions.find(key.gtid);
    *r = it == decisions.end() ? InquiryResult::kInProgress : it->second;
    return Status::OK();
  }
  void Set(const std::string& gtid, InquiryResult r) {
    std::lock_guard<std::mutex> l(mu_);
    decisions[gtid] = r;
  }
  void SetReachable(bool v) {
    std::lock_guard<std::mutex> l(mu_);
    reachable = v;
  }
  int Inquiries() {
    std::lock_guard<std::mutex> l(mu_);
    return inquiries;
  }
  std::map<std::string, std::string> Registered() {
    std::lock_guard<std::mutex> l(mu_);
    return registered;
  }

  std::mutex mu_;
  bool reachable = true;                           // guarded by mu_
  std::map<std::string, InquiryResult> decisions;  // guarded by mu_
  int inquiries = 0;                               // guarded by mu_
  int register_attempts = 0;                       // guarded by mu_
  int refuse_registrations = 0;                    // guarded by mu_
  std::map<std::string, std::string> registered;   // guarded by mu_
};

// Routes PeerClient calls to agents registered by address; an unknown or "down" address
// is unreachable.
class FakePeers : public PeerClient {
 public:
  void Add(const std::string& address, Agent* agent) {
    std::lock_guard<std::mutex> l(mu_);
    agents_[address] = agent;
  }
  void SetDown(const std::string& address, bool down) {
    std::lock_guard<std::mutex> l(mu_);
    down_[address] = down;
  }
  Status GetState(const PeerRef& p, const std::string& gtid, BranchState* st) override {
    Agent* a = Lookup(p.address);
    if (!a) return Status::Unavailable("down");
    BranchStatus status = a->GetStatus({gtid, p.branch});
    if (!status.lookup.ok()) return Status::Unavailable(status.lookup.ToString());
    *st = status.state;
    return Status::OK();
  }
  Status Fence(const PeerRef& p, const std::string& gtid, const std::string& fencer,
               BranchState* st) override {
    Agent* a = Lookup(p.address);
    if (!a) return Status::Unavailable("down");
    *st = a->Fence({gtid, p.branch}, fencer).state;
    return Status::OK();
  }
  Status Abort(const PeerRef& p, const std::string& gtid, BranchState* st) override {
    Agent* a = Lookup(p.address);
    if (!a) return Status::Unavailable("down");
    *st = a->Abort({gtid, p.branch}).state;
    return Status::OK();
  }
  Status AbortIfUnvoted(const PeerRef& p, const std::string& gtid, BranchState* st) override {
    Agent* a = Lookup(p.address);
    if (!a) return Status::Unavailable("down");
    Reply r = a->AbortIfUnvoted({gtid, p.branch});
    if (r.code == ReplyCode::kUnavailable) return Status::Unavailable(r.message);
    *st = r.state;
    return Status::OK();
  }
  Status Commit(const PeerRef& p, const std::string& gtid) override {
    Agent* a = Lookup(p.address);
    if (!a) return Status::Unavailable("down");
    a->Commit({gtid, p.branch}, false);
    return Status::OK();
  }

 private:
  Agent* Lookup(const std::string& address) {
    std::lock_guard<std::mutex> l(mu_);
    if (down_[address]) return nullptr;
    auto it = agents_.find(address);
    return it == agents_.end() ? nullptr : it->second;
  }
  std::mutex mu_;
  std::map<std::string, Agent*> agents_;  // guarded by mu_
  std::map<std::string, bool> down_;      // guarded by mu_
};

// A resource manager with no database: every call succeeds except what the test
// scripts (one-phase commit status, prepare vote). Thread-safe.
class FakeResourceManager : public ResourceManager {
 public:
  std::string_view backend() const override { return "fake"; }
  Status Start() override { return Status::OK(); }
  Status Restore(const BranchKey&, std::string_view) override { return Status::OK(); }
  Status Begin(const BranchKey&, const BranchOptions&) override { return Status::OK(); }
  Status Execute(const BranchKey&, const std::string&, const std::vector<SqlValue>&,
                 QueryResult*) override {
    return Status::OK();
  }
  Status Prepare(const BranchKey& key, const std::vector<std::string>&, PrepareResult* r) override {
    std::lock_guard<std::mutex> l(mu_);
    if (!prepare_status_.ok()) {
      r->maybe_prepared = prepare_maybe_prepared_;
      if (prepare_maybe_prepared_ && durable_prepare_) prepared_.insert(key);
      return prepare_status_;
    }
    r->vote = prepare_vote_;
    if (durable_prepare_ && r->vote == PrepareVote::kYes) prepared_.insert(key);
    return Status::OK();
  }
  Status CommitPrepared(const BranchKey& key) override {
    std::lock_guard<std::mutex> l(mu_);
    if (!commit_prepared_status_.ok() || !durable_prepare_) return commit_prepared_status_;
    if (prepared_.erase(key) > 0) committed_.insert(key);
    return committed_.count(key) > 0 ? Status::OK() : Status::NotFound("no such prepared");
  }
  Status RollbackPrepared(const BranchKey& key) override {
    std::lock_guard<std::mutex> l(mu_);
    if (!rollback_prepared_status_.ok()) return rollback_prepared_status_;
    prepared_.erase(key);
    return Status::OK();
  }
  bool DurablePrepare() const override { return durable_prepare_; }
  Status IsPrepared(const BranchKey& key, bool* prepared) override {
    std::lock_guard<std::mutex> l(mu_);
    if (!evidence_status_.ok()) return evidence_status_;
    *prepared = prepared_.count(key) > 0;
    return Status::OK();
  }
  Status Rollback(const BranchKey&) override { return Status::OK(); }
  Status CommitOnePhase(const BranchKey&) override {
    std::lock_guard<std::mutex> l(mu_);
    ++one_phase_commits_;
    return one_phase_status_;
  }
  Status IsReadOnly(const BranchKey&, bool* read_only) override {
    *read_only = false;
    return Status::OK();
  }
  Status CommitEvidence(const BranchKey& key, bool* committed) override {
    std::lock_guard<std::mutex> l(mu_);
    if (!evidence_status_.ok()) return evidence_status_;
    *committed = committed_.count(key) > 0;
    return Status::OK();
  }
  Status PruneCommitEvidence(int64_t, int64_t* pruned) override {
    *pruned = 0;
    return Status::OK();
  }
  Status ListPrepared(std::vector<PreparedBranchInfo>* out) override {
    std::lock_guard<std::mutex> l(mu_);
    out->clear();
    for (const BranchKey& k : prepared_) out->push_back({k, 3600});
    return Status::OK();
  }

  // Durable-prepare mode (like PostgreSQL): a YES prepare is held in the "database" by
  // itself (prepared_), found by IsPrepared/ListPrepared, moved to the commit evidence by
  // CommitPrepared and dropped by RollbackPrepared. Set before the agent is created.
  explicit FakeResourceManager(bool durable_prepare = false) : durable_prepare_(durable_prepare) {}
  // The database holds `key` prepared (e.g. prepared by an earlier incarnation).
  void AddPrepared(const BranchKey& key) {
    std::lock_guard<std::mutex> l(mu_);
    prepared_.insert(key);
  }
  bool HoldsPrepared(const BranchKey& key) {
    std::lock_guard<std::mutex> l(mu_);
    return prepared_.count(key) > 0;
  }
  bool HasCommitEvidence(const BranchKey& key) {
    std::lock_guard<std::mutex> l(mu_);
    return committed_.count(key) > 0;
  }
  // Every Prepare() fails with `s`; `maybe_prepared`: and may have left it prepared (it
  // does, in durable-prepare mode).
  void SetPrepareFailure(Status s, bool maybe_prepared) {
    std::lock_guard<std::mutex> l(mu_);
    prepare_status_ = std::move(s);
    prepare_maybe_prepared_ = maybe_prepared;
  }
  void SetRollbackPreparedStatus(Status s) {
    std::lock_guard<std::mutex> l(mu_);
    rollback_prepared_status_ = std::move(s);
  }
  void Stop() override {}

  // Every CommitPrepared() returns `s` (NotFound: rolled back behind the agent's back).
  void SetCommitPreparedStatus(Status s) {
    std::lock_guard<std::mutex> l(mu_);
    commit_prepared_status_ = std::move(s);
  }
  // Scripted commit evidence: `key` has a commit marker.
  void AddCommitEvidence(const BranchKey& key) {
    std::lock_guard<std::mutex> l(mu_);
    committed_.insert(key);
  }
  // Every CommitEvidence() fails with `s` (the database cannot be asked) while not OK.
  void SetEvidenceStatus(Status s) {
    std::lock_guard<std::mutex> l(mu_);
    evidence_status_ = std::move(s);
  }

  void SetOnePhaseStatus(Status s) {
    std::lock_guard<std::mutex> l(mu_);
    one_phase_status_ = std::move(s);
  }
  int OnePhaseCommits() {
    std::lock_guard<std::mutex> l(mu_);
    return one_phase_commits_;
  }

 private:
  std::mutex mu_;
  Status one_phase_status_;                       // guarded by mu_
  PrepareVote prepare_vote_ = PrepareVote::kYes;  // guarded by mu_
  int one_phase_commits_ = 0;                     // guarded by mu_
  std::set<BranchKey> committed_;                 // guarded by mu_
  Status evidence_status_;                        // guarded by mu_
  Status commit_prepared_status_;                 // guarded by mu_
  const bool durable_prepare_ = false;
  std::set<BranchKey> prepared_;         // guarded by mu_ (durable-prepare mode)
  Status prepare_status_;                // guarded by mu_
  bool prepare_maybe_prepared_ = false;  // guarded by mu_
  Status rollback_prepared_status_;      // guarded by mu_
};

}  // namespace verdict::participant::testing

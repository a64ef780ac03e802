// Agent: timer work — idle/deadline aborts, inquiry with backoff, cooperative termination
// (DESIGN §3-§4), PRECOMMITTED commit on timeout, orphan reconciliation, journal
// compaction, registration.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <set>

#include "common/coop.h"
#include "common/failpoint.h"
#include "participant/agent.h"
#include "participant/agent_branch.h"

namespace verdict::participant {

namespace {
std::string Name(const BranchKey& k) { return k.gtid + ":" + k.branch; }
}  // namespace

void Agent::Tick() {
  FlushJournal();
  const int64_t now = clock_->NowMs();
  std::vector<BranchPtr> visit;
  {
    std::lock_guard<std::mutex> l(mu_);
    visit.swap(ticking_);  // branches created meanwhile are appended to the empty list
  }
  std::vector<bool> done(visit.size());
  std::vector<int64_t> since(visit.size());
  for (size_t i = 0; i < visit.size(); ++i) {
    done[i] = TickBranch(visit[i], now);
    if (done[i]) {
      coop::MutexLock l(visit[i]->mu);
      since[i] = visit[i]->state_since_ms;
      // Finished: from now on only its key, outcome and status are asked for. The last
      // statement's result (possibly many rows) and the RM payload go now, not when the
      // branch is forgotten decided_retention_ms later.
      visit[i]->last_execute = ExecuteReply();
      std::string().swap(visit[i]->rm_payload);
    }
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    for (size_t i = 0; i < visit.size(); ++i) {
      if (!visit[i]->indexed) continue;  // erased meanwhile
      if (done[i]) {
        finished_.emplace_back(since[i], std::move(visit[i]));
      } else {
        ticking_.push_back(std::move(visit[i]));
      }
    }
  }
  ForgetExpired(now);
  ReconcileOrphans(now);
  MaybeCompact();
  MaybePruneEvidence(now);
}

void Agent::FlushJournal() {
  // Lazily appended records (COMMITTED of a prepared branch; 2PC PREPARED with a
  // durable-prepare RM) reach the disk at the latest one tick after they were appended.
  // Tests: the failpoint keeps them in memory, as if the crash came first.
  if (Failpoint("skip_lazy_journal_flush")) return;
  std::shared_lock<std::shared_mutex> gate(journal_gate_);
  Status s = journal_.Flush();
  if (!s.ok()) spdlog::error("branch journal flush failed: {}", s.ToString());
}

void Agent::MaybePruneEvidence(int64_t now) {
  const int64_t retention = options_.commit_evidence_retention_ms;
  if (retention <= 0) return;
  {
    std::lock_guard<std::mutex> l(mu_);
    const int64_t interval =
        std::max<int64_t>(1000, std::min<int64_t>(retention / 4, 10 * 60 * 1000));
    if (last_prune_ms_ != 0 && now - last_prune_ms_ < interval) return;
    last_prune_ms_ = now;
  }
  int64_t pruned = 0;
  Status s = rm_.PruneCommitEvidence(retention, &pruned);
  if (!s.ok()) {
    spdlog::warn("pruning commit markers older than {} ms failed: {}", retention, s.ToString());
  } else if (pruned > 0) {
    spdlog::info("pruned {} commit markers older than {} ms", pruned, retention);
  }
}

void Agent::StartBackground() {
  std::lock_guard<std::mutex> l(bg_mu_);
  if (tick_thread_.joinable()) return;
  stopping_ = false;
  tick_thread_ = std::thread([this] {
    std::unique_lock<std::mutex> l(bg_mu_);
    while (!stopping_) {
      l.unlock();
      Tick();
      l.lock();
      bg_cv_.wait_for(l, std::chrono::milliseconds(options_.tick_ms), [this] { return stopping_; });
    }
  });
  register_thread_ = std::thread([this] { RegisterLoop(); });
}

void Agent::StopBackground() {
  {
    std::lock_guard<std::mutex> l(bg_mu_);
    stopping_ = true;
  }
  bg_cv_.notify_all();
  const bool was_running = tick_thread_.joinable();
  if (tick_thread_.joinable()) tick_thread_.join();
  if (register_thread_.joinable()) register_thread_.join();
  if (was_running) FlushJournal();
}

void Agent::RegisterLoop() {
  int64_t backoff = 100;
  for (;;) {
    Status s = coordinator_.Register(options_.name, options_.address, std::string(rm_.backend()));
    if (s.ok()) {
      registered_ = true;
      spdlog::info("registered as {} at {} with the coordinator group", options_.name,
                   options_.address);
      return;
    }
    spdlog::debug("registration not accepted yet: {}", s.ToString());
    std::unique_lock<std::mutex> l(bg_mu_);
    if (bg_cv_.wait_for(l, std::chrono::milliseconds(backoff), [this] { return stopping_; })) {
      return;
    }
    backoff = std::min<int64_t>(backoff * 2, 5000);
  }
}

bool Agent::TickBranch(const BranchPtr& b, int64_t now) {
  std::unique_lock<std::mutex> l(b->mu, std::try_to_lock);
  if (!l.owns_lock()) return false;  // a call is running on it
  switch (BranchStateMachine::OnTimeout(b->state, b->protocol)) {
    case TimeoutAction::kAbort:
      if (now >= b->deadline_ms) {
        AbortActiveLocked(*b, "deadline passed");
      } else if (now - b->last_activity_ms >= b->idle_timeout_ms) {
        AbortActiveLocked(*b, "idle timeout");
      }
      return false;  // finished or not, the next tick says so
    case TimeoutAction::kInquire:
    case TimeoutAction::kCommit:
      if (now < b->next_inquiry_ms) return false;
      l.unlock();
      ResolveInDoubt(b, now);
      return false;
    case TimeoutAction::kNone:
      return BranchStateMachine::Finished(b->state) && !b->rm_leftover;
  }
  return false;
}

void Agent::ForgetExpired(int64_t now) {
  std::lock_guard<std::mutex> l(mu_);
  while (!finished_.empty() && now - finished_.front().first >= options_.decided_retention_ms) {
    const BranchPtr b = std::move(finished_.front().second);
    finished_.pop_front();
    // A finished state is final (and its time with it), so no need for b->mu here.
    auto it = branches_.find(b->key);
    if (!b->indexed || it == branches_.end() || it->second != b) continue;
    b->indexed = false;
    branches_.erase(it);
    spdlog::debug("branch {} forgotten after --decided-retention-ms", Name(b->key));
  }
}

void Agent::ResolveInDoubt(const BranchPtr& b, int64_t now) {
  BranchKey key;
  BranchState state;
  Protocol protocol;
  int64_t since;
  {
    coop::MutexLock l(b->mu);
    if (!BranchStateMachine::InDoubt(b->state)) return;
    key = b->key;
    state = b->state;
    protocol = b->protocol;
    since = b->state_since_ms;
  }
  InquiryResult result;
  Status s = coordinator_.Inquire(key, options_.name, &result);
  if (s.ok() && (result == InquiryResult::kCommitted || result == InquiryResult::kAborted)) {
    const bool commit = result == InquiryResult::kCommitted;
    coop::MutexLock l(b->mu);
    Reply r = DecideLocked(*b, commit, commit ? "inquiry: COMMITTED" : "inquiry: ABORTED");
    if (r.code == ReplyCode::kOk) {
      spdlog::info("branch {} resolved by inquiry: {}", Name(key), BranchStateName(b->state));
      return;
    }
  } else if (s.ok()) {
    spdlog::debug("branch {}: coordinator says {}", Name(key), InquiryResultName(result));
  } else if (state == BranchState::kPrecommitted) {
    // 3PC: a PRECOMMITTED branch whose coordinator group is silent commits by itself.
    if (protocol == Protocol::k3PC && now - since >= options_.precommit_timeout_ms) {
      coop::MutexLock l(b->mu);
      Reply r = DecideLocked(*b, true, "PRECOMMITTED timeout, coordinator group silent");
      if (r.code == ReplyCode::kOk) {
        spdlog::warn("branch {} committed on PRECOMMITTED timeout (coordinator unreachable: {})",
                     Name(key), s.ToString());
        return;
      }
    }
  } else {
    spdlog::info(
        "branch {} in doubt and the coordinator group does not answer ({}): asking "
        "peers",
        Name(key), s.ToString());
    Terminate(b);
  }
  coop::MutexLock l(b->mu);
  if (!BranchStateMachine::InDoubt(b->state)) return;
  b->backoff_ms = b->backoff_ms == 0
                      ? options_.inquiry_after_ms
                      : std::min<int64_t>(b->backoff_ms * 2, options_.inquiry_backoff_max_ms);
  int64_t wait = b->backoff_ms;
  if (b->state == BranchState::kPrecommitted) {
    wait = std::min<int64_t>(
        wait, std::max<int64_t>(1, b->state_since_ms + options_.precommit_timeout_ms - now));
  }
  b->next_inquiry_ms = clock_->NowMs() + wait;
}

void Agent::Terminate(const BranchPtr& b) {
  for (int round = 0; round < 8; ++round) {
    BranchKey key;
    BranchState self;
    Protocol protocol;
    int64_t voted_yes_ms;
    int64_t voted_unix_ms;
    std::vector<PeerRef> peers;
    {
      coop::MutexLock l(b->mu);
      key = b->key;
      self = b->state;
      protocol = b->protocol;
      voted_yes_ms = b->voted_yes_ms;
      voted_unix_ms = b->voted_unix_ms;
      for (const PeerRef& p : b->participants) {
        if (p.name == options_.name && p.branch == key.branch) continue;
        peers.push_back(p);
      }
    }
    if (peers.empty()) return;
    // A peer's "no record" means "never voted" (it may be aborted, then everyone may
    // abort) only while that peer cannot have forgotten a vote: a READ_ONLY or ABORTED
    // branch is forgotten after --decided-retention-ms, and then answers "no record" too
    // (a COMMITTED one is recalled from its commit marker). Every vote of a transaction is
    // given within a short time of ours (one PREPARE round), so "no record" is trusted for
    // half the retention after our own YES (peers are assumed to retain at least as long
    // as we do). Within this incarnation the monotonic clock measures that; after a
    // restart, the wall-clock time of the vote from the journal does (a clock stepped
    // back by less than the other half of the retention is tolerated; one that went
    // backwards past the vote is not trusted), and a vote of unknown time (adopted from
    // the database) never is. An untrusted "no record" is an unknown state: 2PC then
    // waits for the coordinator.
    const int64_t window = options_.decided_retention_ms / 2;
    bool trust_no_record;
    if (voted_yes_ms > 0) {
      trust_no_record = clock_->NowMs() - voted_yes_ms < window;
    } else {
      const int64_t wall = clock_->WallMs();
      trust_no_record = voted_unix_ms > 0 && wall >= voted_unix_ms && wall - voted_unix_ms < window;
    }
    std::vector<std::optional<BranchState>> states;
    for (const PeerRef& p : peers) {
      BranchState st;
      Status s = peers_.GetState(p, key.gtid, &st);
      if (!s.ok()) {
        spdlog::debug("branch {}: peer {} ({}) gives no state: {}", Name(key), p.name, p.address,
                      s.ToString());
      } else if (st == BranchState::kNone && !trust_no_record) {
        spdlog::info(
            "branch {}: peer {} has no record of it, which may be a forgotten READ_ONLY or "
            "ABORTED vote this long after ours: taken as unknown",
            Name(key), p.name);
        s = Status::Unavailable("untrusted no record");
      }
      states.push_back(s.ok() ? std::optional<BranchState>(st) : std::nullopt);
    }
    TerminationStep step = BranchStateMachine::Terminate(protocol, self, states);
    switch (step.kind) {
      case TerminationStep::Kind::kCommit:
      case TerminationStep::Kind::kAbort: {
        const bool commit = step.kind == TerminationStep::Kind::kCommit;
        Reply r;
        {
          coop::MutexLock l(b->mu);
          r = DecideLocked(
              *b, commit,
              commit ? "cooperative termination: commit" : "cooperative termination: abort");
        }
        if (r.code != ReplyCode::kOk) return;
        spdlog::warn("branch {} {} by cooperative termination", Name(key),
                     commit ? "COMMITTED" : "ABORTED");
        for (size_t i = 0; i < peers.size(); ++i) {
          BranchState after;
          if (commit && states[i] != BranchState::kCommitted) peers_.Commit(peers[i], key.gtid);
          if (!commit && states[i] != BranchState::kAborted) {
            peers_.Abort(peers[i], key.gtid, &after);
          }
        }
        return;
      }
      case TerminationStep::Kind::kAbortPeer: {
        BranchState after;
        Status s = peers_.AbortIfUnvoted(peers[step.peer], key.gtid, &after);
        if (!s.ok()) return;
        continue;  // ask again with the peer's new state
      }
      case TerminationStep::Kind::kFence: {
        if (self == BranchState::kPrepared) {
          Reply r = Fence(key, options_.name);
          if (r.code != ReplyCode::kOk) continue;  // our state changed: re-evaluate
        }
        for (size_t i = 0; i < peers.size(); ++i) {
          if (states[i] != BranchState::kPrepared) continue;
          BranchState after;
          if (!peers_.Fence(peers[i], key.gtid, options_.name, &after).ok()) return;
        }
        continue;
      }
      case TerminationStep::Kind::kWait:
        return;
    }
  }
}

void Agent::ReconcileOrphans(int64_t now) {
  {
    std::lock_guard<std::mutex> l(mu_);
    const int64_t interval = std::max(1000, std::min(options_.orphan_safety_ms / 2, 10000));
    if (now - last_reconcile_ms_ < interval) return;
    last_reconcile_ms_ = now;
  }
  std::vector<PreparedBranchInfo> prepared;
  if (!rm_.ListPrepared(&prepared).ok()) return;
  std::set<BranchKey> listed;
  for (const PreparedBranchInfo& info : prepared) listed.insert(info.key);
  {
    // A leftover that is no longer prepared (rolled back by now): nothing left to finish.
    // Only one flagged before this listing began can be judged by it.
    // A branch with a leftover is never finished for good: it is still ticking.
    for (const BranchPtr& b : Ticking()) {
      std::unique_lock<std::mutex> l(b->mu, std::try_to_lock);
      if (l.owns_lock() && b->rm_leftover && b->rm_leftover_since_ms < now &&
          listed.count(b->key) == 0) {
        b->rm_leftover = false;
      }
    }
  }
  for (const PreparedBranchInfo& info : prepared) {
    BranchPtr known = Find(info.key);
    if (known != nullptr) {
      // ABORTED with the database still holding it prepared (a PREPARE whose undo failed;
      // its NO is journaled): finish the rollback. Everything else is handled by the
      // branch's own in-doubt logic.
      std::unique_lock<std::mutex> l(known->mu, std::try_to_lock);
      if (l.owns_lock() && known->state == BranchState::kAborted) {
        Status s = rm_.RollbackPrepared(info.key);
        if (s.ok()) known->rm_leftover = false;
        spdlog::warn("leftover prepared branch {} of an ABORTED branch rolled back: {}",
                     Name(info.key), s.ToString());
      }
      continue;
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      auto [it, inserted] = orphans_first_seen_.emplace(info.key, now);
      int64_t age = info.age_seconds >= 0 ? info.age_seconds * 1000 : now - it->second;
      if (age < options_.orphan_safety_ms) continue;
      orphans_first_seen_.erase(it);
    }
    // Prepared in the database, unknown here (an earlier incarnation's branch): adopt it
    // as PREPARED (RecallLocked re-checks the database under the branch's lock); its
    // in-doubt logic then inquires the coordinator. It may have voted YES, so it never
    // aborts on its own.
    bool created = false;
    BranchPtr b = FindOrCreate(info.key, &created);
    coop::MutexLock l(b->mu);
    if (b->state != BranchState::kNone) continue;
    Status s = RecallLocked(*b);
    if (b->state == BranchState::kNone) {
      if (created) Erase(info.key);
      continue;
    }
    spdlog::warn("orphan prepared branch {} adopted as {} ({})", Name(info.key),
                 BranchStateName(b->state), s.ToString());
  }
}

void Agent::MaybeCompact() {
  if (journal_.SizeBytes() < options_.journal_compact_bytes) return;
  std::vector<BranchPtr> all;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto& [k, b] : branches_) all.push_back(b);
  }
  std::unique_lock<std::shared_mutex> gate(journal_gate_);
  std::vector<std::unique_lock<std::mutex>> held;
  std::vector<JournalRecord> live;
  for (const BranchPtr& b : all) {
    std::unique_lock<std::mutex> l(b->mu, std::try_to_lock);
    if (!l.owns_lock()) return;  // busy (perhaps waiting for the gate): next tick
    if (BranchStateMachine::InDoubt(b->state) || BranchStateMachine::Finished(b->state)) {
      JournalRecord r;
      r.key = b->key;
      r.protocol = b->protocol;
      if (BranchStateMachine::InDoubt(b->state)) {
        r.state = BranchState::kPrepared;
        r.participants = b->participants;
        r.rm_payload = b->rm_payload;
        r.voted_unix_ms = b->voted_unix_ms;
        live.push_back(r);
        if (b->state != BranchState::kPrepared) {
          r.state = b->state;
          r.participants.clear();
          r.rm_payload.clear();
          live.push_back(r);
        }
      } else {
        r.state = b->state;
        live.push_back(r);
      }
    }
    held.push_back(std::move(l));
  }
  uint64_t before = journal_.SizeBytes();
  Status s = journal_.Rewrite(live);
  if (s.ok()) {
    spdlog::info("branch journal compacted: {} -> {} bytes ({} records)", before,
                 journal_.SizeBytes(), live.size());
  } else {
    spdlog::error("branch journal compaction failed: {}", s.ToString());
  }
}

Reply Agent::AbortIfUnvoted(const BranchKey& key) {
  bool created = false;
  BranchPtr b = FindOrCreate(key, &created);
  coop::MutexLock l(b->mu);
  // No record is not "never voted": a COMMITTED branch forgotten after its retention
  // period is recalled from the database's commit marker, and refuses (WRONG_STATE,
  // COMMITTED). Without an answer from the database, refuse to tombstone: UNAVAILABLE
  // (the terminating peer counts us as unreachable and retries).
  Status s = RecallLocked(*b);
  if (!s.ok()) {
    if (created && b->state == BranchState::kNone) Erase(key);
    return Current(*b, ReplyCode::kUnavailable,
                   "no record of this branch and no answer from the database: " + s.ToString());
  }
  if (b->state == BranchState::kActive || b->state == BranchState::kNone) {
    Reply r = DecideLocked(*b, false, "aborted by a terminating peer before its vote");
    if (created && b->state == BranchState::kNone) Erase(key);
    return r;
  }
  return Current(*b, b->state == BranchState::kAborted ? ReplyCode::kOk : ReplyCode::kWrongState,
                 "branch has voted: " + std::string(BranchStateName(b->state)));
}

}  // namespace verdict::participant

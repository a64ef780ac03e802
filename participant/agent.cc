#include "participant/agent.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <set>

#include "common/coop.h"
#include "common/failpoint.h"
#include "common/panic.h"
#include "participant/agent_branch.h"

namespace verdict::participant {

namespace {

class SteadyClock : public AgentClock {
 public:
  int64_t NowMs() override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  int64_t WallMs() override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

std::string Name(const BranchKey& k) { return k.gtid + ":" + k.branch; }

}  // namespace

AgentClock* SystemAgentClock() {
  static SteadyClock clock;
  return &clock;
}

const char* InquiryResultName(InquiryResult r) {
  switch (r) {
    case InquiryResult::kCommitted:
      return "COMMITTED";
    case InquiryResult::kAborted:
      return "ABORTED";
    case InquiryResult::kInProgress:
      return "IN_PROGRESS";
    case InquiryResult::kPrecommitIntent:
      return "PRECOMMIT_INTENT";
  }
  return "?";
}

Agent::Agent(AgentOptions options, ResourceManager& rm, BranchJournal& journal,
             CoordinatorClient& coordinator, PeerClient& peers, AgentClock* clock)
    : options_(std::move(options)),
      rm_(rm),
      journal_(journal),
      coordinator_(coordinator),
      peers_(peers),
      clock_(clock ? clock : SystemAgentClock()) {}

Agent::~Agent() { StopBackground(); }

// ---------------------------------------------------------------------------------------
// Recovery.

Status Agent::Recover() {
  std::map<BranchKey, JournalRecord> last;  // merged: fields of PREPARED, latest state
  Status s = journal_.Replay([&](const JournalRecord& r) {
    auto it = last.find(r.key);
    if (r.state == BranchState::kPrepared || it == last.end()) {
      last[r.key] = r;
    } else {
      it->second.state = r.state;
    }
  });
  if (!s.ok()) return s;
  // A durable-prepare RM (PostgreSQL) holds every prepared branch by itself; a 2PC
  // branch's PREPARED record is appended lazily and may have been lost (Prepare()).
  std::set<BranchKey> in_rm;
  if (rm_.DurablePrepare()) {
    std::vector<PreparedBranchInfo> listed;
    s = rm_.ListPrepared(&listed);
    if (!s.ok()) {
      return Status::Unavailable("cannot list the branches the " + std::string(rm_.backend()) +
                                 " database holds prepared: " + s.ToString());
    }
    for (const PreparedBranchInfo& info : listed) in_rm.insert(info.key);
  }
  const int64_t now = clock_->NowMs();
  int restored = 0;
  int adopted = 0;
  for (auto& [key, r] : last) {
    auto b = std::make_shared<Branch>();
    b->key = key;
    b->state = r.state;
    b->protocol = r.protocol;
    b->participants = r.participants;
    b->rm_payload = r.rm_payload;
    b->voted_unix_ms = r.voted_unix_ms;
    b->state_since_ms = now;
    b->next_inquiry_ms = now + options_.inquiry_after_ms;
    if (BranchStateMachine::InDoubt(r.state)) {
      // A commit whose COMMITTED record was lost (it is written lazily): the database's
      // commit marker says so; nothing is left to restore.
      bool committed = false;
      Status es = rm_.CommitEvidence(key, &committed);
      if (!es.ok()) {
        return Status::Unavailable("cannot read the commit evidence of branch " + Name(key) + ": " +
                                   es.ToString());
      }
      if (committed) {
        b->state = BranchState::kCommitted;
        IndexLocked(b);
        spdlog::info("branch {} is {} in the journal and committed in the {} database", Name(key),
                     BranchStateName(r.state), rm_.backend());
        continue;
      }
      Status rs = rm_.Restore(key, r.rm_payload);
      if (rs.IsNotFound()) {
        // The RM no longer holds it: it was resolved after the journal record was written
        // (the decision is unique, so it was resolved the way the next decision says).
        spdlog::warn("branch {} is {} in the journal but not prepared in the {} database",
                     Name(key), BranchStateName(r.state), rm_.backend());
      } else if (!rs.ok()) {
        return Status::Corruption("cannot restore prepared branch " + Name(key) + ": " +
                                  rs.ToString());
      }
      ++restored;
    } else if (in_rm.count(key) > 0) {
      if (r.state == BranchState::kAborted) {
        // A PREPARE whose undo failed, then voted NO (its ABORTED record is a promise):
        // roll the leftover back now, or from ReconcileOrphans.
        Status rs = rm_.RollbackPrepared(key);
        b->rm_leftover = !rs.ok();
        b->rm_leftover_since_ms = now;
        spdlog::warn(
            "branch {} is ABORTED in the journal but prepared in the {} database: "
            "rollback {}",
            Name(key), rm_.backend(), rs.ToString());
      } else {
        spdlog::critical(
            "branch {} is {} in the journal but prepared in the {} database; "
            "left alone",
            Name(key), BranchStateName(r.state), rm_.backend());
      }
    }
    IndexLocked(b);
  }
  // Prepared in the database, no journal record: adopted as PREPARED, never "no record".
  for (const BranchKey& key : in_rm) {
    if (last.count(key) > 0) continue;
    auto b = std::make_shared<Branch>();
    b->key = key;
    AdoptLocked(*b);
    if (b->state != BranchState::kPrepared) {
      return Status::Corruption("cannot adopt prepared branch " + Name(key) + " of the " +
                                std::string(rm_.backend()) + " database");
    }
    IndexLocked(b);
    ++adopted;
  }
  spdlog::info(
      "recovered {} branch records, {} in doubt re-established, {} prepared branches "
      "adopted from the {} database",
      last.size(), restored, adopted, rm_.backend());
  return Status::OK();
}

void Agent::AdoptLocked(Branch& b) {
  // Registers the branch with the RM as prepared (PostgreSQL: checks pg_prepared_xacts).
  Status rs = rm_.Restore(b.key, "");
  if (!rs.ok()) {
    spdlog::error("branch {}: cannot adopt it from the {} database: {}", Name(b.key), rm_.backend(),
                  rs.ToString());
    return;
  }
  const int64_t now = clock_->NowMs();
  b.state = BranchState::kPrepared;
  b.protocol = Protocol::k2PC;  // 3PC PREPARED records are always synced (Prepare())
  b.participants.clear();       // unknown: no cooperative termination of its own
  b.rm_payload.clear();
  b.state_since_ms = now;
  b.next_inquiry_ms = now + options_.inquiry_after_ms;
  b.backoff_ms = 0;
  spdlog::warn(
      "branch {} is prepared in the {} database but has no record in the journal "
      "(its lazily appended PREPARED record was lost in a crash, or the agent died "
      "before its vote left): adopted as PREPARED, 2PC, participant list unknown",
      Name(b.key), rm_.backend());
}

// ---------------------------------------------------------------------------------------
// Branch table.

Agent::BranchPtr Agent::Find(const BranchKey& key) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = branches_.find(key);
  return it == branches_.end() ? nullptr : it->second;
}

Agent::BranchPtr Agent::FindOrCreate(const BranchKey& key, bool* created) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = branches_.find(key);
  *created = it == branches_.end();
  if (!*created) return it->second;
  auto b = std::make_shared<Branch>();
  b->key = key;
  IndexLocked(b);
  return b;
}

void Agent::IndexLocked(const BranchPtr& b) {
  b->indexed = true;
  branches_[b->key] = b;
  ticking_.push_back(b);
}

void Agent::Erase(const BranchKey& key) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = branches_.find(key);
  if (it == branches_.end()) return;
  it->second->indexed = false;  // Tick() drops it from ticking_
  branches_.erase(it);
}

std::vector<Agent::BranchPtr> Agent::Ticking() {
  std::lock_guard<std::mutex> l(mu_);
  return ticking_;
}

Reply Agent::Current(const Branch& b, ReplyCode code, std::string message) {
  return Reply{code, b.state, std::move(message)};
}

JournalRecord Agent::RecordOf(const Branch& b, BranchState state) {
  JournalRecord r;
  r.key = b.key;
  r.state = state;
  r.protocol = b.protocol;
  if (state == BranchState::kPrepared) {
    r.participants = b.participants;
    r.rm_payload = b.rm_payload;
    r.voted_unix_ms = b.voted_unix_ms;
  }
  return r;
}

Status Agent::Journal(const Branch& b, BranchState state) {
  // On a fiber the Append below waits cooperatively with the gate held (shared). That is
  // safe although coop.h forbids holding a mutex across a wait: the only exclusive holder
  // is the timer thread's compaction (not a fiber), and shared holders do not wait for it.
  std::shared_lock<std::shared_mutex> gate(journal_gate_);
  return journal_.Append(RecordOf(b, state));
}

Status Agent::JournalLazily(const Branch& b, BranchState state) {
  std::shared_lock<std::shared_mutex> gate(journal_gate_);
  return journal_.AppendLazily(RecordOf(b, state));
}

// ---------------------------------------------------------------------------------------
// Calls.

Reply Agent::Open(const OpenArgs& a) {
  bool created = false;
  BranchPtr b = FindOrCreate(a.key, &created);
  coop::MutexLock l(b->mu);
  CallStep step = BranchStateMachine::OnCall(b->state, b->protocol, BranchCall::kOpen);
  if (step.kind == CallStep::Kind::kRepeat) return Current(*b, ReplyCode::kOk);
  if (step.kind == CallStep::Kind::kRefuse) {
    return Current(*b, step.code,
                   "branch exists in state " + std::string(BranchStateName(b->state)));
  }
  const int64_t now = clock_->NowMs();
  auto clamp = [&](int64_t v, int64_t dflt) {
    return std::min<int64_t>(v > 0 ? v : dflt, options_.max_timeout_ms);
  };
  b->protocol = a.protocol;
  b->deadline_ms = now + clamp(a.timeout_ms, options_.default_timeout_ms);
  b->idle_timeout_ms = clamp(a.idle_timeout_ms, options_.default_idle_timeout_ms);
  b->lock_timeout_ms = static_cast<int>(clamp(a.lock_timeout_ms, options_.default_lock_timeout_ms));
  BranchOptions bo;
  bo.lock_timeout_ms = b->lock_timeout_ms;
  Status s = rm_.Begin(a.key, bo);
  if (!s.ok()) {
    if (created) {
      Erase(a.key);
      b->state = BranchState::kNone;
    }
    return Current(*b, ReplyCode::kUnavailable, "cannot open a local transaction: " + s.ToString());
  }
  b->rm_open = true;
  b->state = BranchState::kActive;
  b->last_activity_ms = now;
  b->state_since_ms = now;
  return Current(*b, ReplyCode::kOk);
}

Reply Agent::AbortActiveLocked(Branch& b, const std::string& why) {
  if (b.rm_open) rm_.Rollback(b.key);
  b.rm_open = false;
  b.state = BranchState::kAborted;
  b.abort_reason = why;
  b.state_since_ms = clock_->NowMs();
  spdlog::debug("branch {} aborted before the vote: {}", Name(b.key), why);
  return Current(b, ReplyCode::kOk);
}

ExecuteReply Agent::Execute(const BranchKey& key, const std::string& sql,
                            const std::vector<SqlValue>& params, int64_t seq) {
  ExecuteReply out;
  BranchPtr b = Find(key);
  if (b == nullptr) {
    out.reply = {ReplyCode::kNotFound, BranchState::kNone, "no such branch"};
    return out;
  }
  coop::MutexLock l(b->mu);
  // A retried statement gets its first answer, unless the branch has changed state since
  // (e.g. aborted on its idle timeout): then it hears the current state, below.
  if (seq > 0 && seq == b->last_seq && b->last_execute.reply.state == b->state) {
    return b->last_execute;
  }
  CallStep step = BranchStateMachine::OnCall(b->state, b->protocol, BranchCall::kExecute);
  if (step.kind != CallStep::Kind::kProceed) {
    std::string why = "execute in state " + std::string(BranchStateName(b->state));
    if (!b->abort_reason.empty()) why += " (" + b->abort_reason + ")";
    out.reply = Current(*b, step.code == ReplyCode::kOk ? ReplyCode::kWrongState : step.code, why);
    return out;
  }
  if (seq > 0 && seq != b->last_seq + 1) {
    out.reply = Current(*b, ReplyCode::kInvalidArgument,
                        "seq " + std::to_string(seq) + " after " + std::to_string(b->last_seq));
    return out;
  }
  const int64_t now = clock_->NowMs();
  b->last_activity_ms = now;
  if (now >= b->deadline_ms) {
    AbortActiveLocked(*b, "deadline passed");
    out.reply = Current(*b, ReplyCode::kWrongState, "the branch's deadline passed; aborted");
    return out;
  }
  Status s = rm_.Execute(key, sql, params, &out.result);
  b->last_activity_ms = clock_->NowMs();
  if (!s.ok()) {
    ReplyCode code = s.code() == Status::Code::kTimeout    ? ReplyCode::kLockTimeout
                     : s.code() == Status::Code::kNotFound ? ReplyCode::kWrongState
                                                           : ReplyCode::kSqlError;
    AbortActiveLocked(*b, s.message());
    out.result = QueryResult();
    out.reply = Current(*b, code, s.message());
  } else {
    out.reply = Current(*b, ReplyCode::kOk);
  }
  if (seq > 0) {
    b->last_seq = seq;
    b->last_execute = out;
  }
  return out;
}

PrepareReply Agent::Prepare(const BranchKey& key, const std::vector<PeerRef>& participants) {
  PrepareReply out;
  BranchPtr b = Find(key);
  if (b == nullptr) {
    out.reply = {ReplyCode::kNotFound, BranchState::kNone, "no such branch: votes NO"};
    return out;
  }
  coop::MutexLock l(b->mu);
  CallStep step = BranchStateMachine::OnCall(b->state, b->protocol, BranchCall::kPrepare);
  if (step.kind == CallStep::Kind::kRepeat) {
    out.vote = b->state == BranchState::kReadOnly ? Vote::kReadOnly : Vote::kYes;
    out.reply = Current(*b, ReplyCode::kOk);
    return out;
  }
  if (step.kind == CallStep::Kind::kRefuse) {
    out.reply = Current(*b, step.code,
                        "prepare in state " + std::string(BranchStateName(b->state)) +
                            (b->abort_reason.empty() ? "" : ": " + b->abort_reason));
    return out;
  }
  const int64_t now = clock_->NowMs();
  if (now >= b->deadline_ms) {
    AbortActiveLocked(*b, "deadline passed before PREPARE");
    out.reply = Current(*b, ReplyCode::kOk, b->abort_reason);
    return out;
  }
  std::vector<std::string> names;
  for (const PeerRef& p : participants) names.push_back(p.name);
  PrepareResult pr;
  Status s = rm_.Prepare(key, names, &pr);
  b->rm_open = false;
  if (!s.ok()) {
    if (pr.maybe_prepared) {
      // The database may still hold it prepared and recovery adopts every prepared branch
      // it finds: make the NO durable first (recovery and ReconcileOrphans then roll the
      // leftover back), so that it never comes back as a YES-capable PREPARED branch.
      Status js = Journal(*b, BranchState::kAborted);
      if (!js.ok()) {
        VERDICT_PANIC(
            "branch %s: PREPARE failed, the database may still hold it prepared "
            "and the NO vote cannot be journaled (%s): stopping before replying",
            Name(key).c_str(), js.ToString().c_str());
      }
      b->rm_leftover = true;
      b->rm_leftover_since_ms = now;
    }
    AbortActiveLocked(*b, "prepare failed: " + s.message());
    out.reply = Current(*b, ReplyCode::kOk, b->abort_reason);
    return out;
  }
  if (pr.vote == PrepareVote::kReadOnly) {
    // READ_ONLY, not COMMITTED: the branch leaves without learning the outcome, and a
    // terminating peer must not take it for a commit (nor, forgotten after a crash, for
    // an unvoted branch it may tombstone and count as an abort): journal it first.
    s = Journal(*b, BranchState::kReadOnly);
    if (!s.ok()) {
      AbortActiveLocked(*b, "cannot make the READ_ONLY vote durable: " + s.message());
      out.reply = Current(*b, ReplyCode::kOk, b->abort_reason);
      return out;
    }
    b->state = BranchState::kReadOnly;
    b->state_since_ms = now;
    out.vote = Vote::kReadOnly;
    out.reply = Current(*b, ReplyCode::kOk);
    return out;
  }
  b->participants = participants;
  b->rm_payload = std::move(pr.recovery_payload);
  // The PREPARED record of a 2PC branch whose RM holds the prepare durably by itself
  // (PostgreSQL) is not waited for: if a crash loses it, Recover() adopts the branch from
  // the database as PREPARED (docs/participant-postgres.md, "Durability of the vote").
  // What it would lose is the participant list and the protocol; a 3PC branch needs both
  // (PRECOMMIT, FENCE, termination among peers), so its record is synced, as is SQLite's,
  // whose prepare exists only in the journal.
  const bool lazily = rm_.DurablePrepare() && b->protocol == Protocol::k2PC;
  b->voted_unix_ms = clock_->WallMs();  // journaled with the vote
  if (Failpoint("before_prepare_journal")) s = Status::IOError("failpoint");
  if (s.ok()) {
    s = lazily ? JournalLazily(*b, BranchState::kPrepared) : Journal(*b, BranchState::kPrepared);
  }
  if (!s.ok()) {
    Status undo = rm_.RollbackPrepared(key);
    if (!undo.ok() && rm_.DurablePrepare()) {
      // Prepared in the database and it cannot be undone now: the branch IS prepared (and
      // recovery adopts it); it must not claim a NO. No vote is given: UNAVAILABLE.
      b->state = BranchState::kPrepared;
      b->state_since_ms = now;
      b->next_inquiry_ms = now + options_.inquiry_after_ms;
      b->backoff_ms = 0;
      out.reply =
          Current(*b, ReplyCode::kUnavailable,
                  "cannot journal the prepare (" + s.message() + ") nor undo it in the database (" +
                      undo.message() + "): prepared, vote withheld");
      return out;
    }
    AbortActiveLocked(*b, "cannot make the prepare durable: " + s.message());
    out.reply = Current(*b, ReplyCode::kOk, b->abort_reason);
    return out;
  }
  b->state = BranchState::kPrepared;
  b->state_since_ms = now;
  b->voted_yes_ms = now;
  b->next_inquiry_ms = now + options_.inquiry_after_ms;
  b->backoff_ms = 0;
  Failpoint("after_prepare_durable_before_reply");
  out.vote = Vote::kYes;
  out.reply = Current(*b, ReplyCode::kOk);
  return out;
}

Reply Agent::Precommit(const BranchKey& key) {
  BranchPtr b = Find(key);
  if (b == nullptr) return {ReplyCode::kNotFound, BranchState::kNone, "no such branch"};
  coop::MutexLock l(b->mu);
  CallStep step = BranchStateMachine::OnCall(b->state, b->protocol, BranchCall::kPrecommit);
  if (step.kind == CallStep::Kind::kRepeat) return Current(*b, ReplyCode::kOk);
  if (step.kind == CallStep::Kind::kRefuse) {
    return Current(*b, step.code, "precommit in state " + std::string(BranchStateName(b->state)));
  }
  Status s = Journal(*b, BranchState::kPrecommitted);
  if (!s.ok()) return Current(*b, ReplyCode::kUnavailable, s.message());
  b->state = BranchState::kPrecommitted;
  b->state_since_ms = clock_->NowMs();
  b->next_inquiry_ms = b->state_since_ms + options_.inquiry_after_ms;
  Failpoint("after_precommit_durable_before_reply");
  return Current(*b, ReplyCode::kOk);
}

Reply Agent::Fence(const BranchKey& key, const std::string& fencer) {
  BranchPtr b = Find(key);
  if (b == nullptr) return {ReplyCode::kNotFound, BranchState::kNone, "no such branch"};
  coop::MutexLock l(b->mu);
  CallStep step = BranchStateMachine::OnCall(b->state, b->protocol, BranchCall::kFence);
  if (step.kind == CallStep::Kind::kRepeat) return Current(*b, ReplyCode::kOk);
  if (step.kind == CallStep::Kind::kRefuse) {
    return Current(*b, step.code, "fence in state " + std::string(BranchStateName(b->state)));
  }
  Status s = Journal(*b, BranchState::kFenced);
  if (!s.ok()) return Current(*b, ReplyCode::kUnavailable, s.message());
  b->state = BranchState::kFenced;
  b->state_since_ms = clock_->NowMs();
  spdlog::info("branch {} fenced by {}", Name(key), fencer);
  Failpoint("after_fence_durable_before_reply");
  return Current(*b, ReplyCode::kOk);
}

Reply Agent::DecideLocked(Branch& b, bool commit, const char* why) {
  CallStep step = BranchStateMachine::OnCall(b.state, b.protocol,
                                             commit ? BranchCall::kCommit : BranchCall::kAbort);
  if (step.kind == CallStep::Kind::kRepeat) return Current(b, ReplyCode::kOk);
  if (step.kind == CallStep::Kind::kRefuse) {
    if (commit && b.state == BranchState::kAborted) {
      spdlog::critical("HEURISTIC HAZARD: COMMIT ({}) of branch {} which is ABORTED", why,
                       Name(b.key));
    } else if (!commit && b.state == BranchState::kCommitted) {
      spdlog::critical("HEURISTIC HAZARD: ABORT ({}) of branch {} which is COMMITTED", why,
                       Name(b.key));
    }
    return Current(
        b, step.code,
        std::string(commit ? "commit" : "abort") + " in state " + BranchStateName(b.state));
  }
  if (b.state == BranchState::kActive) return AbortActiveLocked(b, why);  // abort only
  const bool was_known = b.state != BranchState::kNone;
  if (was_known) {
    Status s = commit ? rm_.CommitPrepared(b.key) : rm_.RollbackPrepared(b.key);
    if (s.IsNotFound() && commit) {
      // Neither prepared nor committed in the database (no commit marker): it was rolled
      // back behind the agent's back, e.g. an operator's ROLLBACK PREPARED. The decision
      // is COMMIT, so this is a heuristic hazard (DESIGN §2.4). Nothing is journaled and
      // the branch stays in doubt, so a terminating peer keeps waiting instead of taking
      // it for an abort; every retry raises the hazard again.
      spdlog::critical(
          "HEURISTIC HAZARD: COMMIT ({}) of branch {} which the agent holds {}, but the {} "
          "database has neither it prepared nor its commit marker: it was rolled back "
          "outside Verdict (a manual ROLLBACK PREPARED?): {}",
          why, Name(b.key), BranchStateName(b.state), rm_.backend(), s.ToString());
      return Current(b, ReplyCode::kNotFound,
                     "heuristic hazard: the branch was rolled back in the database "
                     "outside Verdict: " +
                         s.message());
    }
    if (s.code() == Status::Code::kFailedPrecondition && !commit) {
      // RollbackPrepared found the commit marker: the branch committed (heuristic hazard).
      spdlog::critical(
          "HEURISTIC HAZARD: ABORT ({}) of branch {} which committed in the {} "
          "database: {}",
          why, Name(b.key), rm_.backend(), s.ToString());
      Status js = Journal(b, BranchState::kCommitted);
      if (js.ok()) {
        b.state = BranchState::kCommitted;
        b.state_since_ms = clock_->NowMs();
      }
      return Current(b, ReplyCode::kWrongState, "abort of a committed branch: " + s.message());
    }
    if (!s.ok()) {
      return Current(b, ReplyCode::kUnavailable,
                     std::string(commit ? "commit" : "rollback") + " failed: " + s.ToString());
    }
    if (commit) Failpoint("after_local_commit_before_reply");
  }
  BranchState next = commit ? BranchState::kCommitted : BranchState::kAborted;
  // A prepared branch's COMMITTED record is not waited for: the database already holds
  // the commit durably together with its commit marker, from which Recover() restores the
  // state if the record is lost (one fsync fewer on the commit path). ABORTED records and
  // tombstones are promises only the journal keeps: they are waited for.
  Status js = commit && was_known ? JournalLazily(b, next) : Journal(b, next);
  if (!js.ok()) {
    if (!was_known) {
      // The abort tombstone is a promise: without it, refuse.
      return Current(b, ReplyCode::kUnavailable, "cannot journal the abort: " + js.message());
    }
    // The database already holds the outcome (commit marker / no prepared branch); a
    // retried call is idempotent. Keep going, loudly.
    spdlog::error("branch {}: cannot journal {}: {}", Name(b.key), BranchStateName(next),
                  js.ToString());
  }
  b.state = next;
  b.state_since_ms = clock_->NowMs();
  if (!commit) b.abort_reason = why;
  spdlog::debug("branch {} {} ({})", Name(b.key), BranchStateName(next), why);
  return Current(b, ReplyCode::kOk);
}

Status Agent::RecallLocked(Branch& b) {
  if (b.state != BranchState::kNone) return Status::OK();
  bool committed = false;
  VERDICT_RETURN_IF_ERROR(rm_.CommitEvidence(b.key, &committed));
  if (committed) {
    b.state = BranchState::kCommitted;
    b.state_since_ms = clock_->NowMs();
    spdlog::info(
        "branch {}: no record in the agent; recalled as COMMITTED from the {} "
        "database's commit marker",
        Name(b.key), rm_.backend());
    return Status::OK();
  }
  if (rm_.DurablePrepare()) {
    // Prepared in the database but not in memory (its lazily appended PREPARED record was
    // lost, or it was prepared by an earlier incarnation): it may have voted YES.
    bool prepared = false;
    VERDICT_RETURN_IF_ERROR(rm_.IsPrepared(b.key, &prepared));
    if (prepared) {
      AdoptLocked(b);
      if (b.state == BranchState::kNone) {
        return Status::Unavailable("branch " + Name(b.key) +
                                   " is prepared in the database but cannot be adopted");
      }
    }
  }
  return Status::OK();
}

Reply Agent::Commit(const BranchKey& key, bool one_phase) {
  bool created = false;
  BranchPtr b = FindOrCreate(key, &created);
  coop::MutexLock l(b->mu);
  if (b->state == BranchState::kNone) {
    // Forgotten after its retention period? The database's commit marker proves a commit.
    Status s = RecallLocked(*b);
    if (b->state == BranchState::kNone) {
      if (created) Erase(key);
      if (!s.ok()) {
        return Current(*b, ReplyCode::kUnavailable,
                       "no record of this branch and no answer from the database: " + s.ToString());
      }
      spdlog::critical(
          "HEURISTIC HAZARD: COMMIT of branch {}, of which the agent has no "
          "record and the {} database no commit marker",
          Name(key), rm_.backend());
      return Current(*b, ReplyCode::kNotFound, "no record of this branch: heuristic hazard");
    }
    if (b->state == BranchState::kCommitted) {
      return Current(*b, ReplyCode::kOk, "committed earlier (commit marker)");
    }
    // Adopted as PREPARED from the database: commit it below.
  }
  if (b->state == BranchState::kOutcomeUnknown) {
    // A one-phase commit the RM could not confirm: its marker, once visible, confirms it.
    bool committed = false;
    if (rm_.CommitEvidence(key, &committed).ok() && committed) {
      b->state = BranchState::kCommitted;
      b->state_since_ms = clock_->NowMs();
      spdlog::info("branch {}: one-phase commit confirmed by its commit marker", Name(key));
      return Current(*b, ReplyCode::kOk);
    }
  }
  if (one_phase && b->state == BranchState::kActive) {
    if (clock_->NowMs() >= b->deadline_ms) {
      AbortActiveLocked(*b, "deadline passed before the one-phase commit");
      return Current(*b, ReplyCode::kWrongState, b->abort_reason);
    }
    Status s = rm_.CommitOnePhase(key);
    b->rm_open = false;
    if (s.ok() && Failpoint("after_one_phase_commit_outcome_lost")) {
      // Tests: the local COMMIT happened but its outcome is lost, as when the connection
      // dies during COMMIT and the server cannot be asked in time.
      s = Status::IOError("failpoint after_one_phase_commit_outcome_lost");
    }
    if (s.IsIOError() || s.code() == Status::Code::kUnavailable) {
      // The RM could not tell whether COMMIT happened (e.g. the connection died during
      // COMMIT and the server could not be asked): in doubt, never ABORTED (DESIGN §2.4).
      b->state = BranchState::kOutcomeUnknown;
      b->state_since_ms = clock_->NowMs();
      spdlog::error("branch {}: outcome of the one-phase commit is unknown: {}", Name(key),
                    s.ToString());
      return Current(*b, ReplyCode::kUnavailable,
                     "one-phase commit outcome unknown (in doubt): " + s.message());
    }
    if (!s.ok()) {
      AbortActiveLocked(*b, "one-phase commit failed: " + s.message());
      return Current(
          *b, s.code() == Status::Code::kTimeout ? ReplyCode::kLockTimeout : ReplyCode::kSqlError,
          b->abort_reason);
    }
    Failpoint("after_local_commit_before_reply");
    b->state = BranchState::kCommitted;
    b->state_since_ms = clock_->NowMs();
    return Current(*b, ReplyCode::kOk);
  }
  return DecideLocked(*b, true, "COMMIT");
}

Reply Agent::Abort(const BranchKey& key) {
  bool created = false;
  BranchPtr b = FindOrCreate(key, &created);
  coop::MutexLock l(b->mu);
  // A forgotten COMMITTED branch must not be tombstoned as ABORTED: recall it first (the
  // state machine then refuses the abort, a heuristic hazard).
  Status s = RecallLocked(*b);
  if (!s.ok()) {
    if (created) Erase(key);
    return Current(*b, ReplyCode::kUnavailable,
                   "no record of this branch and no answer from the database: " + s.ToString());
  }
  Reply r = DecideLocked(*b, false, "ABORT");
  if (created && b->state == BranchState::kNone) Erase(key);
  return r;
}

BranchStatus Agent::GetStatus(const BranchKey& key) {
  BranchStatus st;
  st.key = key;
  BranchPtr b = Find(key);
  if (b == nullptr) {
    // No record: forgotten, never here, or prepared with its PREPARED record lost. Only
    // the database can tell: its commit marker, or the branch prepared there.
    bool committed = false;
    st.lookup = rm_.CommitEvidence(key, &committed);
    if (!st.lookup.ok()) return st;
    bool prepared = false;
    if (!committed && rm_.DurablePrepare()) {
      st.lookup = rm_.IsPrepared(key, &prepared);
      if (!st.lookup.ok()) return st;
    }
    if (!committed && !prepared) return st;
  }
  bool created = false;
  if (b == nullptr) b = FindOrCreate(key, &created);
  coop::MutexLock l(b->mu);
  if (b->state == BranchState::kNone) {
    st.lookup = RecallLocked(*b);
    if (b->state == BranchState::kNone) {
      if (created) Erase(key);
      return st;
    }
  }
  st.state = b->state;
  st.protocol = b->protocol;
  st.participants = b->participants;
  st.age_ms = clock_->NowMs() - b->state_since_ms;
  return st;
}

std::vector<BranchStatus> Agent::ListInDoubt() {
  const std::vector<BranchPtr> all = Ticking();  // an in-doubt branch is never finished
  std::vector<BranchStatus> out;
  const int64_t now = clock_->NowMs();
  for (const BranchPtr& b : all) {
    coop::MutexLock l(b->mu);
    if (!BranchStateMachine::InDoubt(b->state) && b->state != BranchState::kOutcomeUnknown) {
      continue;
    }
    out.push_back(
        {b->key, b->state, b->protocol, b->participants, now - b->state_since_ms, Status::OK()});
  }
  return out;
}

}  // namespace verdict::participant

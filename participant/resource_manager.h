// ResourceManager: what the participant agent needs from one local database (SQLite or
// PostgreSQL) to run branches of global transactions: typed SQL with `?` parameters inside
// a local transaction, a durable prepared state, and commit/rollback of a prepared branch
// by (gtid, branch) that is idempotent and survives agent and database restarts.
//
// Thread-safety: every method is safe to call from any thread. The agent serializes calls
// that name the SAME branch (it never runs two methods on one BranchKey concurrently), so
// an implementation only has to protect state shared between branches (connection pools,
// lock tables, the prepared-branch set).
//
// Durability split: the agent owns a journal (participant/branch_journal.h) in which it
// records, fsync'd, every PREPARED/PRECOMMITTED/FENCED/COMMITTED/ABORTED transition of a
// branch together with the participant list. Prepare() returns an opaque `recovery_payload`
// that the agent stores in that journal record before it acknowledges YES, and hands back
// to Restore() after a restart. PostgreSQL's prepare is durable in the server, so its
// payload may be empty; SQLite's payload is the branch's changeset (DESIGN §6).
//
// Change log (tell the other RM engineer when this file changes):
//   v1 — initial interface.
//   v1.1 — contract clarified, no signature change: Restore() returning NotFound is
//          tolerated (the agent logs it and keeps the branch in doubt); CommitPrepared()
//          returning NotFound for a branch the agent journaled as prepared is taken as
//          "already committed before a restart" (the decision is unique).
//   v2 — durable commit evidence: CommitEvidence() and PruneCommitEvidence() added. Both
//          back ends write a commit marker that becomes durable and visible exactly when
//          the branch's data commits (SQLite: same local transaction; PostgreSQL: inserted
//          inside the branch before PREPARE TRANSACTION / COMMIT). CommitPrepared()
//          returning NotFound now always means "no evidence of a commit" (a heuristic
//          hazard), also for a branch the agent journaled as prepared: an operator's
//          manual ROLLBACK PREPARED is no longer mistaken for an earlier commit.
//   v3 — durable prepare: DurablePrepare() and IsPrepared() added, and
//          PrepareResult::maybe_prepared. An RM whose prepared state is durable by itself
//          (PostgreSQL) lets the agent append a 2PC branch's PREPARED record without
//          waiting for its fsync; the agent then re-creates a PREPARED record from
//          ListPrepared() for every prepared branch its journal lost
//          (docs/participant-postgres.md, "Durability of the vote").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace verdict::participant {

// ---------------------------------------------------------------------------------------
// Typed SQL values and results.

enum class SqlType : uint8_t {
  kNull = 0,
  kInteger = 1,  // int64. PostgreSQL: int2/int4/int8, bool (0/1), oid.
  kReal = 2,     // double. PostgreSQL: float4/float8 (numeric comes back as kText).
  kText = 3,     // UTF-8 bytes. PostgreSQL: every other type, in its text form.
  kBlob = 4,     // raw bytes. PostgreSQL: bytea.
};

// One SQL value. A plain value type; copyable.
struct SqlValue {
  SqlType type = SqlType::kNull;
  int64_t integer = 0;  // kInteger
  double real = 0;      // kReal
  std::string bytes;    // kText, kBlob

  static SqlValue Null() { return SqlValue(); }
  static SqlValue Integer(int64_t v) {
    SqlValue x;
    x.type = SqlType::kInteger;
    x.integer = v;
    return x;
  }
  static SqlValue Real(double v) {
    SqlValue x;
    x.type = SqlType::kReal;
    x.real = v;
    return x;
  }
  static SqlValue Text(std::string v) {
    SqlValue x;
    x.type = SqlType::kText;
    x.bytes = std::move(v);
    return x;
  }
  static SqlValue Blob(std::string v) {
    SqlValue x;
    x.type = SqlType::kBlob;
    x.bytes = std::move(v);
    return x;
  }
  bool is_null() const { return type == SqlType::kNull; }
  friend bool operator==(const SqlValue& a, const SqlValue& b) {
    if (a.type != b.type) return false;
    switch (a.type) {
      case SqlType::kNull:
        return true;
      case SqlType::kInteger:
        return a.integer == b.integer;
      case SqlType::kReal:
        return a.real == b.real;
      default:
        return a.bytes == b.bytes;
    }
  }
};

using SqlRow = std::vector<SqlValue>;

// The result of one statement: column names and rows for a query (possibly zero rows),
// and the number of rows changed for INSERT/UPDATE/DELETE (0 for a query).
struct QueryResult {
  std::vector<std::string> columns;
  std::vector<SqlRow> rows;
  int64_t rows_affected = 0;
};

// ---------------------------------------------------------------------------------------
// Branch identity and options.

// A branch of a global transaction: gtid (from the coordinator) and a branch name unique
// within the gtid on this participant. Both non-empty, at most 256 bytes, printable ASCII
// without ':' (the agent validates before calling an RM).
struct BranchKey {
  std::string gtid;
  std::string branch;
  friend bool operator==(const BranchKey&, const BranchKey&) = default;
  friend auto operator<=>(const BranchKey&, const BranchKey&) = default;
};

struct BranchOptions {
  // How long one statement may wait for a lock held by another branch before it fails
  // with Status::Timeout (the agent then aborts the branch and it votes NO). > 0.
  int lock_timeout_ms = 2000;
};

// What Prepare() decided.
enum class PrepareVote : uint8_t {
  kYes = 1,       // durable in the RM's sense; store recovery_payload, then vote YES
  kReadOnly = 2,  // the branch wrote nothing; its local transaction is already ended
};

struct PrepareResult {
  PrepareVote vote = PrepareVote::kYes;
  // kYes: opaque bytes the agent journals (fsync'd BEFORE acknowledging YES, unless
  // DurablePrepare()) and passes back to Restore() after a restart. May be empty.
  std::string recovery_payload;
  // On error only: the RM could not make sure the branch is NOT left prepared (PostgreSQL:
  // the connection died during PREPARE TRANSACTION and the undo failed too). The agent
  // then makes its NO vote durable (an ABORTED record) before replying, so that recovery,
  // which adopts every prepared branch it finds, rolls this one back instead.
  bool maybe_prepared = false;
};

// A branch the RM itself holds prepared (PostgreSQL: a pg_prepared_xacts row with this
// agent's prefix; SQLite: a branch restored or prepared since start).
struct PreparedBranchInfo {
  BranchKey key;
  // Seconds since the branch was prepared, when the RM knows (PostgreSQL: from
  // pg_prepared_xacts.prepared); -1 if unknown. Lets the agent apply the orphan safety
  // interval of DESIGN §6.
  int64_t age_seconds = -1;
};

// ---------------------------------------------------------------------------------------

class ResourceManager {
 public:
  virtual ~ResourceManager() = default;
  ResourceManager() = default;
  ResourceManager(const ResourceManager&) = delete;
  ResourceManager& operator=(const ResourceManager&) = delete;

  // "sqlite" or "postgres"; for logs and status.
  virtual std::string_view backend() const = 0;

  // Connects/opens the database, checks it is usable (PostgreSQL: refuses with a clear
  // FailedPrecondition message if max_prepared_transactions is 0) and creates the
  // bookkeeping schema (sql/) if missing. Called once, before anything else, before the
  // agent serves. Errors: IOError/Unavailable (cannot reach the database),
  // FailedPrecondition (misconfigured database).
  virtual Status Start() = 0;

  // Re-establishes a branch the agent's journal says is PREPARED (or PRECOMMITTED/FENCED)
  // and undecided, after an agent restart, BEFORE the agent serves anything: the branch's
  // locks are held again when this returns OK. `payload` is what Prepare() returned.
  // OK if the branch is prepared (again). NotFound if the RM no longer holds it (it was
  // resolved after the journal record and before the crash): the agent logs it, keeps the
  // branch in doubt, and treats a later CommitPrepared() NotFound as already done.
  // Corruption if the payload is unusable (the agent refuses to start). Called once per
  // branch, single-threaded, at start-up; with DurablePrepare() also at run time, with an
  // empty payload, for a branch the agent adopts from IsPrepared()/ListPrepared().
  virtual Status Restore(const BranchKey& key, std::string_view payload) = 0;

  // Opens a local transaction for a new branch. Precondition: no branch with `key` is
  // open in this RM. Errors: FailedPrecondition (key already open), Unavailable.
  virtual Status Begin(const BranchKey& key, const BranchOptions& options) = 0;

  // Runs one statement with `?` parameters bound positionally inside the branch's local
  // transaction. Precondition: Begin(key) succeeded and the branch is not prepared/ended.
  // Errors: InvalidArgument (SQL syntax, wrong parameter count), Aborted (constraint
  // violation or any other SQL error; message carries the database's text), Timeout (a
  // lock wait exceeded BranchOptions::lock_timeout_ms), NotFound (no such open branch).
  // After ANY error the agent calls Rollback(key) and the branch votes NO; an RM need not
  // keep the branch usable after an error.
  virtual Status Execute(const BranchKey& key, const std::string& sql,
                         const std::vector<SqlValue>& params, QueryResult* result) = 0;

  // Makes the branch durably prepared (or detects that it is read-only). `participants`
  // is informational (the agent journals it itself). Precondition: branch open, no error.
  // On OK with kYes the branch holds its locks until CommitPrepared/RollbackPrepared,
  // across agent restarts once the agent has journaled recovery_payload. On OK with
  // kReadOnly the local transaction is finished and the branch forgotten. On error
  // (Aborted, IOError, Unavailable) the branch is rolled back: the agent votes NO.
  virtual Status Prepare(const BranchKey& key, const std::vector<std::string>& participants,
                         PrepareResult* result) = 0;

  // Commits a prepared branch, from any connection. Idempotent: OK if it is already
  // committed (its commit marker exists, see CommitEvidence). NotFound if the branch is
  // neither prepared nor committed here — never prepared, rolled back, or rolled back by
  // hand by an operator (PostgreSQL ROLLBACK PREPARED): the agent reports a heuristic
  // hazard (DESIGN §2.4). IOError/Unavailable: not committed yet, retry later (the
  // branch stays prepared).
  virtual Status CommitPrepared(const BranchKey& key) = 0;

  // Rolls back a prepared branch, from any connection. Idempotent: OK if it does not exist
  // (presumed abort). FailedPrecondition if it is not prepared and its commit marker
  // exists (it committed: a heuristic hazard, nothing changes). IOError/Unavailable:
  // retry later.
  virtual Status RollbackPrepared(const BranchKey& key) = 0;

  // Rolls back an open, unprepared branch (abort before the vote, idle timeout, SQL
  // error). Idempotent: OK if there is no such open branch.
  virtual Status Rollback(const BranchKey& key) = 0;

  // One-phase commit of an open, unprepared branch (single-participant transaction): no
  // prepare, no journal. OK = committed, with its commit marker if it wrote anything (a
  // branch that wrote nothing leaves no marker: there is nothing to prove). Aborted/Timeout =
  // rolled back, nothing visible. IOError/Unavailable = the outcome is UNKNOWN (e.g. the connection
  // died during COMMIT and the server could not be asked): the agent reports the branch in doubt
  // (UNAVAILABLE, state OUTCOME_UNKNOWN), never ABORTED.
  virtual Status CommitOnePhase(const BranchKey& key) = 0;

  // Whether the open branch has written nothing so far (used for status; Prepare decides
  // the READ_ONLY vote itself). NotFound if no such open branch.
  virtual Status IsReadOnly(const BranchKey& key, bool* read_only) = 0;

  // Durable evidence of a commit, which outlives the agent's memory and journal: sets
  // *committed to true iff the branch's commit marker exists. The marker is written in the
  // same local transaction as the branch's data, so it exists exactly when that data is
  // committed: a prepared-but-undecided, rolled-back, never-prepared or read-only branch
  // has none. After PruneCommitEvidence() removed it, false too (see the pruning rule in
  // docs/participant.md). Errors (IOError/Unavailable): the answer is unknown — the caller
  // must not take it for "no evidence".
  virtual Status CommitEvidence(const BranchKey& key, bool* committed) = 0;

  // Deletes commit markers of branches that committed at least `older_than_ms` ago
  // (measured from when the RM first saw the commit; never earlier than the commit) and
  // sets *pruned to how many. Idempotent; may delete in bounded batches (call again).
  virtual Status PruneCommitEvidence(int64_t older_than_ms, int64_t* pruned) = 0;

  // True if a successful Prepare() (kYes) is durable in the database by itself, so that the
  // branch can be found again with ListPrepared() after any crash, whatever the agent's
  // journal holds (PostgreSQL: PREPARE TRANSACTION is WAL-flushed before it returns).
  // False if the agent's journal record is the only durable trace (SQLite: the changeset).
  virtual bool DurablePrepare() const { return false; }

  // Only meaningful when DurablePrepare(): sets *prepared to whether the RM holds `key`
  // prepared right now (PostgreSQL: its gid is in pg_prepared_xacts). Errors
  // (IOError/Unavailable): unknown — the caller must not take it for "not prepared".
  // Default: never prepared outside the agent's journal.
  virtual Status IsPrepared(const BranchKey& /*key*/, bool* prepared) {
    *prepared = false;
    return Status::OK();
  }

  // Every branch this RM holds prepared right now (see PreparedBranchInfo), for recovery
  // and periodic reconciliation. Sorted by key.
  virtual Status ListPrepared(std::vector<PreparedBranchInfo>* out) = 0;

  // Releases connections. Open unprepared branches are rolled back; prepared ones stay
  // prepared (they are restored on the next start). Idempotent.
  virtual void Stop() = 0;
};

}  // namespace verdict::participant

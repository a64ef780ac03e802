// PostgresResourceManager: the ResourceManager (participant/resource_manager.h) for one
// PostgreSQL database, through libpq. A branch is a pooled connection with an open
// transaction; Prepare() runs PREPARE TRANSACTION 'verdict:<gtid>:<participant>:<branch>'
// (participant/postgres/gid.h); CommitPrepared()/RollbackPrepared() run COMMIT PREPARED /
// ROLLBACK PREPARED from a separate control pool, so phase two never waits behind open
// branches and works from any connection, after agent and server restarts.
// Commit evidence: a row in verdict.commit_markers is inserted inside the branch's
// transaction before PREPARE TRANSACTION (or a one-phase COMMIT), so it is visible exactly
// when the branch committed; CommitPrepared() of a gid that is gone is OK only if the
// marker is there (else NotFound: a heuristic hazard, e.g. a manual ROLLBACK PREPARED).
// See docs/participant-postgres.md.
//
// Thread-safety: every method is safe from any thread. Calls naming the same branch are
// serialized by the agent (and, defensively, by a per-branch mutex).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "participant/postgres/pg_connection.h"
#include "participant/resource_manager.h"

namespace verdict::participant::postgres {

// A branch's commit marker, inserted in its own transaction just before PREPARE
// TRANSACTION or the one-phase COMMIT (in the same round trip): $1 is the gid.
inline constexpr char kInsertMarkerSql[] = "INSERT INTO verdict.commit_markers(gid) VALUES ($1)";

struct PostgresOptions {
  std::string dsn;               // libpq conninfo or URI of the participant's database
  std::string participant_name;  // carried in every gid; see gid.h for the rules
  // Branch connections (each open branch holds one). PostgreSQL's max_connections must
  // allow this plus control_connections plus everybody else's.
  int max_branch_connections = 64;
  // Connections reserved for phase two, recovery and ListPrepared.
  int control_connections = 4;
  // One operation keeps retrying a failed connect (with backoff) this long, then fails
  // with Unavailable; short, so that an RPC fails fast and the caller retries later.
  int connect_timeout_ms = 1000;
  int acquire_timeout_ms = 1000;  // wait this long for a pooled connection
  // Run repeated statements without result columns as named statements prepared per
  // connection (docs/participant-postgres.md, "Named statements"). Turn off behind a
  // pooling proxy in transaction mode, which does not keep one server session per client.
  bool named_statements = true;
  int startup_timeout_ms = 30000;  // Start() waits this long for the server to accept us
  // After the connection died during a one-phase COMMIT, keep asking the server what
  // became of the transaction this long before answering "outcome unknown" (IOError).
  int one_phase_outcome_timeout_ms = 10000;
  // How many decided (committed / rolled back) branch keys to remember (Begin() refuses
  // them; the commit marker, not this memory, answers a retried decision).
  size_t remembered_decisions = 100000;
};

class PostgresResourceManager final : public ResourceManager {
 public:
  explicit PostgresResourceManager(PostgresOptions options);
  ~PostgresResourceManager() override;

  std::string_view backend() const override { return "postgres"; }
  Status Start() override;
  Status Restore(const BranchKey& key, std::string_view payload) override;
  Status Begin(const BranchKey& key, const BranchOptions& options) override;
  Status Execute(const BranchKey& key, const std::string& sql, const std::vector<SqlValue>& params,
                 QueryResult* result) override;
  Status Prepare(const BranchKey& key, const std::vector<std::string>& participants,
                 PrepareResult* result) override;
  Status CommitPrepared(const BranchKey& key) override;
  Status RollbackPrepared(const BranchKey& key) override;
  Status Rollback(const BranchKey& key) override;
  Status CommitOnePhase(const BranchKey& key) override;
  Status IsReadOnly(const BranchKey& key, bool* read_only) override;
  Status CommitEvidence(const BranchKey& key, bool* committed) override;
  Status PruneCommitEvidence(int64_t older_than_ms, int64_t* pruned) override;
  Status ListPrepared(std::vector<PreparedBranchInfo>* out) override;
  // PREPARE TRANSACTION is WAL-flushed by the server before it returns (whatever
  // synchronous_commit says), so a prepared branch survives any crash in the server.
  bool DurablePrepare() const override { return true; }
  Status IsPrepared(const BranchKey& key, bool* prepared) override;
  void Stop() override;

  // Grows whenever a pooled connection was found broken (server restart, network). The
  // agent re-runs reconciliation (ListPrepared) when it changes.
  uint64_t connection_losses() const;
  // The database the DSN points at (known after Start()).
  std::string database() const;

 private:
  // One open (unprepared) branch. Its transaction starts with its first statement (BEGIN
  // rides in the same round trip); from then until the branch is closed, conn is inside
  // it. After `failed` the only way out is a rollback (the branch votes NO).
  struct OpenBranch {
    std::mutex mu;                       // serializes calls on this branch
    std::string gid;                     // GUARDED_BY(mu)
    std::unique_ptr<PgConnection> conn;  // GUARDED_BY(mu)
    int lock_timeout_ms = 0;             // GUARDED_BY(mu): from BranchOptions
    bool begun = false;   // GUARDED_BY(mu): a statement was sent (the transaction started)
    bool wrote = false;   // GUARDED_BY(mu): a statement certainly wrote (command tag)
    bool failed = false;  // GUARDED_BY(mu): a statement failed; the transaction is aborted
    bool closed = false;  // GUARDED_BY(mu): ended (prepared, committed or rolled back)
  };
  enum class Decided : uint8_t { kCommitted, kRolledBack };

  Status CheckStarted() const;
  std::shared_ptr<OpenBranch> FindOpen(const BranchKey& key);
  // Removes `key` from open_ and ends the branch: rolls back (if its connection still
  // works) and releases its connection. Precondition: branch->mu held, !branch->closed.
  void CloseBranch(const BranchKey& key, OpenBranch* branch, bool rollback);
  // Runs `sql` on a control connection; a stale pooled connection is replaced once.
  // `borrow_idle_branch` (phase two): an idle branch connection is used first if there is
  // one — after PREPARE the branch's own connection is usually idle — so that concurrent
  // COMMIT/ROLLBACK PREPAREDs do not queue for the few control connections; phase two
  // still never waits for a branch connection.
  Status ControlExec(const std::string& sql, const PgParams* params, PgResultPtr* result,
                     std::string* sqlstate, bool borrow_idle_branch = false);
  // True if the branch's transaction has an xid (it wrote). Sets *xid to it as text.
  Status AssignedXid(PgConnection* conn, bool* has_xid, std::string* xid);
  // After the connection died during a one-phase COMMIT: asks the server what became of
  // transaction `xid`.
  Status OnePhaseOutcome(const std::string& xid, const std::string& gid);
  // Whether `gid` is prepared in this database (pg_prepared_xacts), on a control
  // connection.
  Status PreparedInServer(const std::string& gid, bool* prepared);
  // Whether the commit marker of `gid` (sql/participant_postgres.sql) is visible, i.e. the
  // branch committed. Runs on a control connection.
  Status MarkerExists(const std::string& gid, bool* exists);
  void RememberDecision(const BranchKey& key, Decided decided);

  const PostgresOptions options_;
  PgConnectionPool branch_pool_;
  PgConnectionPool control_pool_;

  mutable std::mutex mu_;
  bool started_ = false;                                   // GUARDED_BY(mu_)
  std::string database_;                                   // GUARDED_BY(mu_)
  std::map<BranchKey, std::shared_ptr<OpenBranch>> open_;  // GUARDED_BY(mu_)
  // Branches prepared by this instance or restored from the agent's journal and not yet
  // decided here. A gid missing from the server is "already resolved" only for these keys
  // (and decided_ ones); otherwise it is "never prepared" (NotFound, a heuristic hazard).
  std::set<BranchKey> prepared_;          // GUARDED_BY(mu_)
  std::map<BranchKey, Decided> decided_;  // GUARDED_BY(mu_)
  std::deque<BranchKey> decided_order_;   // GUARDED_BY(mu_): eviction order of decided_
};

}  // namespace verdict::participant::postgres

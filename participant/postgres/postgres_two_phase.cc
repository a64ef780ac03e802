// PostgresResourceManager: PREPARE TRANSACTION, COMMIT/ROLLBACK PREPARED, recovery
// (Restore) and reconciliation (ListPrepared).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>

#include "common/coop.h"
#include "common/panic.h"
#include "participant/postgres/gid.h"
#include "participant/postgres/pg_values.h"
#include "participant/postgres/postgres_resource_manager.h"

namespace verdict::participant::postgres {
namespace {

// A gid is made of [A-Za-z0-9._-:%] (gid.h), so it can sit between single quotes as is.
std::string QuotedGid(const std::string& gid) {
  VERDICT_CHECK(gid.find_first_of("'\\") == std::string::npos);
  return "'" + gid + "'";
}

}  // namespace

Status PostgresResourceManager::ControlExec(const std::string& sql, const PgParams* params,
                                            PgResultPtr* result, std::string* sqlstate,
                                            bool borrow_idle_branch) {
  Status s;
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::unique_ptr<PgConnection> conn;
    PgConnectionPool* pool = &branch_pool_;
    if (!borrow_idle_branch || !branch_pool_.TryAcquireIdle(&conn)) {
      pool = &control_pool_;
      VERDICT_RETURN_IF_ERROR(control_pool_.Acquire(&conn));
    }
    s = params != nullptr ? conn->ExecParams(sql, *params, result, sqlstate)
                          : conn->Exec(sql, result, sqlstate);
    const bool stale = !s.ok() && conn->reused && !conn->healthy();
    if (!s.ok() && !conn->healthy()) {
      // The server restarted or dropped us: every idle connection is suspect.
      control_pool_.DropIdle();
      branch_pool_.DropIdle();
    }
    pool->Release(std::move(conn));
    if (!stale) return s;
  }
  return s;
}

void PostgresResourceManager::RememberDecision(const BranchKey& key, Decided decided) {
  std::lock_guard<std::mutex> lock(mu_);
  prepared_.erase(key);
  auto [it, inserted] = decided_.insert_or_assign(key, decided);
  if (inserted) decided_order_.push_back(key);
  while (decided_order_.size() > options_.remembered_decisions) {
    decided_.erase(decided_order_.front());
    decided_order_.pop_front();
  }
}

Status PostgresResourceManager::Prepare(const BranchKey& key,
                                        const std::vector<std::string>& /*participants*/,
                                        PrepareResult* result) {
  std::shared_ptr<OpenBranch> branch = FindOpen(key);
  if (branch == nullptr) {
    std::lock_guard<std::mutex> lock(mu_);
    if (prepared_.count(key) > 0) {
      return Status::FailedPrecondition("branch " + key.gtid + "/" + key.branch +
                                        " is already prepared");
    }
    return Status::NotFound("no open branch " + key.gtid + "/" + key.branch);
  }
  coop::MutexLock branch_lock(branch->mu);
  if (branch->closed) return Status::NotFound("no open branch " + branch->gid);
  if (branch->failed) {
    CloseBranch(key, branch.get(), /*rollback=*/true);
    return Status::Aborted("branch " + branch->gid + " had an SQL error; voting NO");
  }
  PgConnection* conn = branch->conn.get();

  if (!branch->begun) {  // no statement ever ran: nothing to prepare
    CloseBranch(key, branch.get(), /*rollback=*/false);
    result->vote = PrepareVote::kReadOnly;
    result->recovery_payload.clear();
    return Status::OK();
  }
  if (!branch->wrote) {
    // Only reads so far (by command tag): ask the server whether an xid was ever assigned.
    bool has_xid = true;
    Status s = AssignedXid(conn, &has_xid, nullptr);
    if (!s.ok()) {
      CloseBranch(key, branch.get(), /*rollback=*/true);
      return s;
    }
    if (!has_xid) {
      PgResultPtr res;
      s = conn->Exec("COMMIT", &res);
      CloseBranch(key, branch.get(), /*rollback=*/true);
      if (!s.ok()) return s;
      result->vote = PrepareVote::kReadOnly;
      result->recovery_payload.clear();
      return Status::OK();
    }
  }

  // The commit marker rides inside the branch's transaction (sql/participant_postgres.sql):
  // it becomes visible exactly when COMMIT PREPARED commits the branch, and vanishes with
  // ROLLBACK PREPARED. One round trip for both statements; a failing INSERT (e.g. the key
  // already committed once: primary key) stops before the PREPARE and the branch votes NO.
  PgResultPtr res;
  PgParams marker;
  BuildParams({SqlValue::Text(branch->gid)}, &marker);
  Status s = conn->ExecParamsThen(kInsertMarkerSql, marker,
                                  "PREPARE TRANSACTION " + QuotedGid(branch->gid), &res);
  if (s.ok() && std::string_view(PQcmdStatus(res.get())) != "PREPARE TRANSACTION") {
    s = Status::Aborted("postgres rolled the branch back at PREPARE (" +
                        std::string(PQcmdStatus(res.get())) + ")");
  }
  if (!s.ok()) {
    const bool lost = !conn->healthy();
    CloseBranch(key, branch.get(), /*rollback=*/true);
    if (lost) {
      // The PREPARE may have happened before the connection died. We vote NO, so undo it
      // if it exists; if that fails too, reconciliation finds it as an orphan.
      std::string sqlstate;
      Status undo =
          ControlExec("ROLLBACK PREPARED " + QuotedGid(branch->gid), nullptr, nullptr, &sqlstate);
      spdlog::warn("postgres RM {}: connection lost during PREPARE of {}; undo: {}",
                   options_.participant_name, branch->gid,
                   undo.ok()                              ? "rolled back"
                   : sqlstate == kSqlStateUndefinedObject ? "nothing was prepared"
                                                          : undo.ToString());
      result->maybe_prepared = !undo.ok() && sqlstate != kSqlStateUndefinedObject;
    }
    return s;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    prepared_.insert(key);
  }
  CloseBranch(key, branch.get(), /*rollback=*/false);  // the connection is idle again
  result->vote = PrepareVote::kYes;
  result->recovery_payload = branch->gid;
  return Status::OK();
}

Status PostgresResourceManager::CommitPrepared(const BranchKey& key) {
  VERDICT_RETURN_IF_ERROR(CheckStarted());
  std::string gid;
  VERDICT_RETURN_IF_ERROR(MakeGid(options_.participant_name, key, &gid));
  if (FindOpen(key) != nullptr) {
    return Status::FailedPrecondition("branch " + gid + " is open and not prepared");
  }
  std::string sqlstate;
  Status s = ControlExec("COMMIT PREPARED " + QuotedGid(gid), nullptr, nullptr, &sqlstate,
                         /*borrow_idle_branch=*/true);
  if (s.ok()) {
    RememberDecision(key, Decided::kCommitted);
    return s;
  }
  if (sqlstate == kSqlStateObjectInUse) {
    return Status::Unavailable(s.message() + " (another session is finishing it; retry)");
  }
  if (sqlstate != kSqlStateUndefinedObject) return s;
  // The gid is not in pg_prepared_xacts: committed already (its marker is visible), or
  // never committed — never prepared, rolled back by us, or rolled back by an operator.
  bool committed = false;
  Status m = MarkerExists(gid, &committed);
  if (!m.ok()) return Status::Unavailable("cannot look up the commit marker: " + m.ToString());
  if (committed) {
    RememberDecision(key, Decided::kCommitted);
    return Status::OK();
  }
  std::string why;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = decided_.find(key);
    why = prepared_.count(key) > 0
              ? "it was prepared here and is gone without a commit: rolled back outside "
                "Verdict (a manual ROLLBACK PREPARED?)"
          : it != decided_.end() && it->second == Decided::kRolledBack
              ? "this agent rolled it back"
              : "this agent never prepared it";
  }
  spdlog::critical(
      "postgres RM {}: COMMIT of {} but it is not prepared in the server and has no commit "
      "marker; {}: heuristic hazard",
      options_.participant_name, gid, why);
  return Status::NotFound("no prepared transaction " + gid + " and no commit marker; " + why +
                          ": heuristic hazard");
}

Status PostgresResourceManager::MarkerExists(const std::string& gid, bool* exists) {
  PgParams params;
  BuildParams({SqlValue::Text(gid)}, &params);
  PgResultPtr res;
  VERDICT_RETURN_IF_ERROR(
      ControlExec("SELECT EXISTS (SELECT 1 FROM verdict.commit_markers WHERE gid = $1)::int",
                  &params, &res, nullptr));
  *exists = std::string_view(PQgetvalue(res.get(), 0, 0)) == "1";
  return Status::OK();
}

Status PostgresResourceManager::CommitEvidence(const BranchKey& key, bool* committed) {
  VERDICT_RETURN_IF_ERROR(CheckStarted());
  std::string gid;
  VERDICT_RETURN_IF_ERROR(MakeGid(options_.participant_name, key, &gid));
  return MarkerExists(gid, committed);
}

Status PostgresResourceManager::PruneCommitEvidence(int64_t older_than_ms, int64_t* pruned) {
  VERDICT_RETURN_IF_ERROR(CheckStarted());
  *pruned = 0;
  const std::string participant = EncodeGidField(options_.participant_name);
  PgParams params;
  BuildParams({SqlValue::Text(participant)}, &params);
  // 1. Stamp this participant's committed markers that have no stamp yet: the stamp is
  //    never earlier than the commit (uncommitted rows are invisible here).
  VERDICT_RETURN_IF_ERROR(
      ControlExec("UPDATE verdict.commit_markers SET seen_at = now() "
                  "WHERE seen_at IS NULL AND split_part(gid, ':', 3) = $1",
                  &params, nullptr, nullptr));
  // 2. Delete those stamped at least older_than_ms ago, in a bounded batch.
  BuildParams({SqlValue::Text(participant), SqlValue::Integer(older_than_ms)}, &params);
  PgResultPtr res;
  VERDICT_RETURN_IF_ERROR(ControlExec(
      "DELETE FROM verdict.commit_markers WHERE gid IN (SELECT gid FROM verdict.commit_markers "
      "WHERE seen_at <= now() - $2::float8 * interval '1 millisecond' "
      "AND split_part(gid, ':', 3) = $1 LIMIT 10000)",
      &params, &res, nullptr));
  *pruned = std::strtoll(PQcmdTuples(res.get()), nullptr, 10);
  return Status::OK();
}

Status PostgresResourceManager::RollbackPrepared(const BranchKey& key) {
  VERDICT_RETURN_IF_ERROR(CheckStarted());
  std::string gid;
  VERDICT_RETURN_IF_ERROR(MakeGid(options_.participant_name, key, &gid));
  if (FindOpen(key) != nullptr) {
    return Status::FailedPrecondition("branch " + gid + " is open and not prepared (use Rollback)");
  }
  std::string sqlstate;
  Status s = ControlExec("ROLLBACK PREPARED " + QuotedGid(gid), nullptr, nullptr, &sqlstate,
                         /*borrow_idle_branch=*/true);
  if (sqlstate == kSqlStateObjectInUse) {
    return Status::Unavailable(s.message() + " (another session is finishing it; retry)");
  }
  if (!s.ok() && sqlstate != kSqlStateUndefinedObject) return s;
  if (!s.ok()) {
    // Not prepared: presumed abort, unless it committed (its marker is visible).
    bool committed = false;
    Status m = MarkerExists(gid, &committed);
    if (!m.ok()) return Status::Unavailable("cannot look up the commit marker: " + m.ToString());
    if (committed) {
      return Status::FailedPrecondition("branch " + gid + " was already committed");
    }
  }
  RememberDecision(key, Decided::kRolledBack);  // absent: presumed abort, OK
  return Status::OK();
}

Status PostgresResourceManager::Restore(const BranchKey& key, std::string_view payload) {
  VERDICT_RETURN_IF_ERROR(CheckStarted());
  std::string gid;
  VERDICT_RETURN_IF_ERROR(MakeGid(options_.participant_name, key, &gid));
  if (!payload.empty() && payload != gid) {
    return Status::Corruption("journaled gid '" + std::string(payload) + "' differs from '" + gid +
                              "' (was the participant renamed?)");
  }
  if (FindOpen(key) != nullptr) return Status::FailedPrecondition("branch " + gid + " is open");
  bool prepared = false;
  VERDICT_RETURN_IF_ERROR(PreparedInServer(gid, &prepared));
  if (!prepared) {
    // Resolved after the journal record: a crash after COMMIT/ROLLBACK PREPARED and before
    // the agent journaled the outcome, or an operator's ROLLBACK PREPARED. The commit
    // marker tells which way; the retried decision is answered from it (a COMMIT of a
    // branch without a marker is a heuristic hazard).
    bool committed = false;
    VERDICT_RETURN_IF_ERROR(MarkerExists(gid, &committed));
    spdlog::warn(
        "postgres RM {}: journaled prepared branch {} is no longer prepared in the "
        "server; it {} before the restart",
        options_.participant_name, gid,
        committed ? "committed (its commit marker exists)"
                  : "was rolled back (no commit marker; a COMMIT decision for it will be "
                    "reported as a heuristic hazard)");
  }
  std::lock_guard<std::mutex> lock(mu_);
  prepared_.insert(key);
  return Status::OK();
}

Status PostgresResourceManager::IsPrepared(const BranchKey& key, bool* prepared) {
  VERDICT_RETURN_IF_ERROR(CheckStarted());
  std::string gid;
  VERDICT_RETURN_IF_ERROR(MakeGid(options_.participant_name, key, &gid));
  return PreparedInServer(gid, prepared);
}

Status PostgresResourceManager::PreparedInServer(const std::string& gid, bool* prepared) {
  PgParams params;
  BuildParams({SqlValue::Text(gid)}, &params);
  PgResultPtr res;
  VERDICT_RETURN_IF_ERROR(ControlExec(
      "SELECT 1 FROM pg_prepared_xacts WHERE gid = $1 AND database = current_database()", &params,
      &res, nullptr));
  *prepared = PQntuples(res.get()) > 0;
  return Status::OK();
}

Status PostgresResourceManager::ListPrepared(std::vector<PreparedBranchInfo>* out) {
  VERDICT_RETURN_IF_ERROR(CheckStarted());
  PgResultPtr res;
  VERDICT_RETURN_IF_ERROR(ControlExec(
      "SELECT gid, GREATEST(0, EXTRACT(EPOCH FROM now() - prepared))::bigint "
      "FROM pg_prepared_xacts WHERE database = current_database() AND gid LIKE 'verdict:%'",
      nullptr, &res, nullptr));
  out->clear();
  for (int r = 0; r < PQntuples(res.get()); ++r) {
    std::string participant;
    PreparedBranchInfo info;
    if (!ParseGid(PQgetvalue(res.get(), r, 0), &participant, &info.key)) continue;
    if (participant != options_.participant_name) continue;
    info.age_seconds = std::strtoll(PQgetvalue(res.get(), r, 1), nullptr, 10);
    out->push_back(std::move(info));
  }
  std::sort(out->begin(), out->end(),
            [](const PreparedBranchInfo& a, const PreparedBranchInfo& b) { return a.key < b.key; });
  return Status::OK();
}

}  // namespace verdict::participant::postgres

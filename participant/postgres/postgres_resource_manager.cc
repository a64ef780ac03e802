// PostgresResourceManager: start-up, open branches (Begin/Execute/Rollback), one-phase
// commit. Two-phase operations and recovery are in postgres_two_phase.cc.
#include "participant/postgres/postgres_resource_manager.h"

#include <spdlog/spdlog.h>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <string_view>
#include <thread>

#include "common/coop.h"
#include "participant/postgres/gid.h"
#include "participant/postgres/pg_values.h"
#include "participant/postgres/placeholder.h"
#include "participant/postgres/schema.h"

namespace verdict::participant::postgres {
namespace {

PgPoolOptions PoolOptions(const PostgresOptions& o, int max_connections, const char* role) {
  PgPoolOptions p;
  p.dsn = o.dsn;
  p.application_name = "verdict-participant:" + o.participant_name + ":" + role;
  p.max_connections = max_connections;
  p.connect_timeout_ms = o.connect_timeout_ms;
  p.acquire_timeout_ms = o.acquire_timeout_ms;
  p.named_statements = o.named_statements;
  return p;
}

// The first keyword of `sql`, lower-cased, after whitespace and comments.
std::string FirstWord(std::string_view sql, size_t* end) {
  size_t i = 0;
  while (i < sql.size()) {
    if (std::isspace(static_cast<unsigned char>(sql[i]))) {
      ++i;
    } else if (sql.substr(i, 2) == "--") {
      const size_t nl = sql.find('\n', i);
      i = nl == std::string_view::npos ? sql.size() : nl + 1;
    } else if (sql.substr(i, 2) == "/*") {
      const size_t close = sql.find("*/", i + 2);
      i = close == std::string_view::npos ? sql.size() : close + 2;
    } else {
      break;
    }
  }
  std::string word;
  while (i < sql.size() && std::isalpha(static_cast<unsigned char>(sql[i]))) {
    word += static_cast<char>(std::tolower(static_cast<unsigned char>(sql[i])));
    ++i;
  }
  *end = i;
  return word;
}

// Statements that would end or nest the branch's transaction behind the RM's back.
bool IsTransactionControl(std::string_view sql) {
  size_t end = 0;
  const std::string word = FirstWord(sql, &end);
  if (word == "begin" || word == "start" || word == "commit" || word == "end" ||
      word == "rollback" || word == "abort") {
    return true;
  }
  if (word == "prepare") {  // PREPARE TRANSACTION, not PREPARE name AS ...
    size_t end2 = 0;
    return FirstWord(sql.substr(end), &end2) == "transaction";
  }
  return false;
}

// Whether a command tag certainly means the statement wrote (anything but a read).
bool TagMeansWrite(std::string_view tag) {
  return !(tag.rfind("SELECT", 0) == 0 || tag.rfind("SHOW", 0) == 0 || tag.rfind("FETCH", 0) == 0 ||
           tag.rfind("EXPLAIN", 0) == 0 || tag.rfind("SET", 0) == 0 ||
           tag.rfind("SAVEPOINT", 0) == 0 || tag.rfind("RELEASE", 0) == 0 ||
           tag.rfind("DECLARE", 0) == 0 || tag.rfind("CLOSE", 0) == 0 || tag.rfind("MOVE", 0) == 0);
}

}  // namespace

PostgresResourceManager::PostgresResourceManager(PostgresOptions options)
    : options_(std::move(options)),
      branch_pool_(PoolOptions(options_, options_.max_branch_connections, "branch")),
      control_pool_(PoolOptions(options_, options_.control_connections, "control")) {}

PostgresResourceManager::~PostgresResourceManager() { Stop(); }

uint64_t PostgresResourceManager::connection_losses() const {
  return branch_pool_.broken_connections() + control_pool_.broken_connections();
}

std::string PostgresResourceManager::database() const {
  std::lock_guard<std::mutex> lock(mu_);
  return database_;
}

Status PostgresResourceManager::CheckStarted() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!started_) return Status::FailedPrecondition("postgres RM is not started");
  return Status::OK();
}

Status PostgresResourceManager::Start() {
  VERDICT_RETURN_IF_ERROR(ValidateParticipantName(options_.participant_name));
  if (options_.dsn.empty()) return Status::InvalidArgument("postgres RM: empty DSN");
  if (options_.max_branch_connections <= 0 || options_.control_connections <= 0) {
    return Status::InvalidArgument("postgres RM: connection limits must be positive");
  }
  PgResultPtr res;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.startup_timeout_ms);
  Status s;
  while (true) {  // the server may still be starting (or restarting) under us
    s = ControlExec(
        "SELECT current_setting('max_prepared_transactions')::int, "
        "current_setting('server_version_num')::int, current_database()",
        nullptr, &res, nullptr);
    if (s.ok() || s.code() != Status::Code::kUnavailable ||
        std::chrono::steady_clock::now() >= deadline) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  if (!s.ok()) return s;
  const int max_prepared = std::atoi(PQgetvalue(res.get(), 0, 0));
  const int version = std::atoi(PQgetvalue(res.get(), 0, 1));
  const std::string database = PQgetvalue(res.get(), 0, 2);
  if (version < 130000) {
    return Status::FailedPrecondition("PostgreSQL " + std::to_string(version) +
                                      " is too old: the participant needs PostgreSQL 13 or newer");
  }
  if (max_prepared <= 0) {
    return Status::FailedPrecondition(
        "PostgreSQL database '" + database +
        "' has max_prepared_transactions = 0, so PREPARE TRANSACTION (two-phase commit) is "
        "disabled; set max_prepared_transactions in postgresql.conf to at least the number of "
        "branches that may be prepared at once (e.g. " +
        std::to_string(options_.max_branch_connections) + ") and restart PostgreSQL");
  }
  if (max_prepared < options_.max_branch_connections) {
    spdlog::warn(
        "postgres RM {}: max_prepared_transactions = {} is below max_branch_connections = {}; "
        "prepares beyond it will fail and vote NO",
        options_.participant_name, max_prepared, options_.max_branch_connections);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    started_ = true;
    database_ = database;
  }
  // The commit-marker schema, created only if missing: DDL on an existing table would wait
  // for the prepared branches that inserted their markers into it (they hold a lock on it
  // until COMMIT/ROLLBACK PREPARED) — a deadlock at start-up. Two agents starting on one
  // database may race on CREATE ... IF NOT EXISTS (a unique violation in the catalog): the
  // second attempt sees it. lock_timeout bounds any wait.
  for (int attempt = 0;; ++attempt) {
    std::string sqlstate;
    PgResultPtr exists;
    s = ControlExec(
        "SELECT (to_regclass('verdict.commit_markers') IS NOT NULL AND "
        "to_regclass('verdict.commit_markers_seen_at') IS NOT NULL)::int",
        nullptr, &exists, &sqlstate);
    if (s.ok() && std::string_view(PQgetvalue(exists.get(), 0, 0)) == "1") break;
    if (s.ok()) {
      s = ControlExec(
          std::string("BEGIN; SET LOCAL lock_timeout = '10s'; ") + kSchemaSql + "; COMMIT", nullptr,
          nullptr, &sqlstate);
    }
    if (s.ok()) break;
    if (attempt < 2 && (sqlstate == "23505" || sqlstate == "42P07" || sqlstate == "42P06")) {
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      started_ = false;
    }
    return Status::FailedPrecondition(
        "cannot create the commit-marker table verdict.commit_markers in database '" + database +
        "' (the agent's role needs CREATE on the database the first time): " + s.ToString());
  }
  std::vector<PreparedBranchInfo> prepared;
  VERDICT_RETURN_IF_ERROR(ListPrepared(&prepared));
  spdlog::info(
      "postgres RM {}: database '{}', {} prepared branch(es) of this participant in the "
      "server",
      options_.participant_name, database, prepared.size());
  return Status::OK();
}

std::shared_ptr<PostgresResourceManager::OpenBranch> PostgresResourceManager::FindOpen(
    const BranchKey& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = open_.find(key);
  return it == open_.end() ? nullptr : it->second;
}

void PostgresResourceManager::CloseBranch(const BranchKey& key, OpenBranch* branch, bool rollback) {
  if (branch->conn != nullptr) {
    PgConnection* conn = branch->conn.get();
    if (rollback && conn->healthy() && conn->transaction_status() != PQTRANS_IDLE) {
      conn->Exec("ROLLBACK");  // failure leaves it unhealthy or in a transaction: closed below
    }
    if (!conn->healthy()) branch_pool_.DropIdle();
    branch_pool_.Release(std::move(branch->conn));
  }
  branch->closed = true;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = open_.find(key);
  if (it != open_.end() && it->second.get() == branch) open_.erase(it);
}

Status PostgresResourceManager::Begin(const BranchKey& key, const BranchOptions& options) {
  VERDICT_RETURN_IF_ERROR(CheckStarted());
  std::string gid;
  VERDICT_RETURN_IF_ERROR(MakeGid(options_.participant_name, key, &gid));
  if (options.lock_timeout_ms <= 0) {
    return Status::InvalidArgument("lock_timeout_ms must be positive");
  }
  auto branch = std::make_shared<OpenBranch>();
  branch->gid = gid;
  coop::MutexLock branch_lock(branch->mu);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (open_.count(key) > 0) return Status::FailedPrecondition("branch " + gid + " is open");
    if (prepared_.count(key) > 0) {
      return Status::FailedPrecondition("branch " + gid + " is already prepared");
    }
    if (decided_.count(key) > 0) {
      return Status::FailedPrecondition("branch " + gid + " is already decided");
    }
    open_.emplace(key, branch);
  }
  // No round trip here: BEGIN goes out with the branch's first statement (Execute).
  branch->lock_timeout_ms = options.lock_timeout_ms;
  Status s = branch_pool_.Acquire(&branch->conn);
  if (!s.ok()) CloseBranch(key, branch.get(), /*rollback=*/false);
  return s;
}

Status PostgresResourceManager::Execute(const BranchKey& key, const std::string& sql,
                                        const std::vector<SqlValue>& params, QueryResult* result) {
  std::shared_ptr<OpenBranch> branch = FindOpen(key);
  if (branch == nullptr) return Status::NotFound("no open branch " + key.gtid + "/" + key.branch);
  coop::MutexLock branch_lock(branch->mu);
  if (branch->closed) return Status::NotFound("no open branch " + branch->gid);
  if (branch->failed) {
    return Status::FailedPrecondition("branch " + branch->gid +
                                      " already failed; it can only be rolled back");
  }
  std::string rewritten;
  int param_count = 0;
  VERDICT_RETURN_IF_ERROR(RewritePlaceholders(sql, &rewritten, &param_count));
  if (param_count != static_cast<int>(params.size())) {
    return Status::InvalidArgument("SQL has " + std::to_string(param_count) +
                                   " ? placeholders but " + std::to_string(params.size()) +
                                   " parameters were given");
  }
  if (IsTransactionControl(rewritten)) {
    return Status::InvalidArgument(
        "transaction control statements (BEGIN, COMMIT, ROLLBACK, PREPARE TRANSACTION...) are "
        "not allowed inside a branch; the coordinator decides the outcome");
  }
  PgParams pg_params;
  BuildParams(params, &pg_params);
  PgResultPtr res;
  Status s;
  if (branch->begun) {
    s = branch->conn->ExecParams(rewritten, pg_params, &res);
  } else {
    branch->begun = true;
    s = branch->conn->BeginAndExecParams(branch->lock_timeout_ms, rewritten, pg_params, &res);
    if (!s.ok() && branch->conn->reused && !branch->conn->healthy()) {
      // A pooled connection gone stale while idle (the server restarted or dropped it).
      // Nothing of this branch can have survived on it: start over on a fresh one, once.
      branch_pool_.DropIdle();
      branch_pool_.Release(std::move(branch->conn));
      s = branch_pool_.Acquire(&branch->conn);
      if (s.ok()) {
        s = branch->conn->BeginAndExecParams(branch->lock_timeout_ms, rewritten, pg_params, &res);
      }
    }
  }
  PgConnection* conn = branch->conn.get();
  if (!s.ok()) {
    branch->failed = true;
    if (conn != nullptr && !conn->healthy()) branch_pool_.NoteBroken();
    return s;
  }
  if (conn->transaction_status() != PQTRANS_INTRANS) {
    branch->failed = true;
    return Status::Aborted("statement ended the branch's transaction");
  }
  if (TagMeansWrite(PQcmdStatus(res.get()))) branch->wrote = true;
  QueryResult local;
  VERDICT_RETURN_IF_ERROR(DecodeResult(res.get(), result != nullptr ? result : &local));
  return Status::OK();
}

Status PostgresResourceManager::Rollback(const BranchKey& key) {
  std::shared_ptr<OpenBranch> branch = FindOpen(key);
  if (branch == nullptr) return Status::OK();
  coop::MutexLock branch_lock(branch->mu);
  if (!branch->closed) CloseBranch(key, branch.get(), /*rollback=*/true);
  return Status::OK();
}

Status PostgresResourceManager::AssignedXid(PgConnection* conn, bool* has_xid, std::string* xid) {
  PgResultPtr res;
  VERDICT_RETURN_IF_ERROR(conn->Exec("SELECT pg_current_xact_id_if_assigned()::text", &res));
  *has_xid = !PQgetisnull(res.get(), 0, 0);
  if (*has_xid && xid != nullptr) *xid = PQgetvalue(res.get(), 0, 0);
  return Status::OK();
}

Status PostgresResourceManager::IsReadOnly(const BranchKey& key, bool* read_only) {
  std::shared_ptr<OpenBranch> branch = FindOpen(key);
  if (branch == nullptr) return Status::NotFound("no open branch " + key.gtid + "/" + key.branch);
  coop::MutexLock branch_lock(branch->mu);
  if (branch->closed) return Status::NotFound("no open branch " + branch->gid);
  if (branch->wrote) {
    *read_only = false;
    return Status::OK();
  }
  if (branch->failed) return Status::FailedPrecondition("branch " + branch->gid + " failed");
  if (!branch->begun) {
    *read_only = true;  // no statement ever ran
    return Status::OK();
  }
  bool has_xid = false;
  VERDICT_RETURN_IF_ERROR(AssignedXid(branch->conn.get(), &has_xid, nullptr));
  *read_only = !has_xid;
  return Status::OK();
}

Status PostgresResourceManager::CommitOnePhase(const BranchKey& key) {
  std::shared_ptr<OpenBranch> branch = FindOpen(key);
  if (branch == nullptr) return Status::NotFound("no open branch " + key.gtid + "/" + key.branch);
  coop::MutexLock branch_lock(branch->mu);
  if (branch->closed) return Status::NotFound("no open branch " + branch->gid);
  if (branch->failed) {
    CloseBranch(key, branch.get(), /*rollback=*/true);
    return Status::Aborted("branch " + branch->gid + " had an SQL error; rolled back");
  }
  if (!branch->begun) {  // no statement ever ran: nothing to commit
    CloseBranch(key, branch.get(), /*rollback=*/false);
    return Status::OK();
  }
  PgConnection* conn = branch->conn.get();
  bool has_xid = false;
  std::string xid;
  Status s = AssignedXid(conn, &has_xid, &xid);
  if (!s.ok()) {
    CloseBranch(key, branch.get(), /*rollback=*/true);
    return s;
  }
  PgResultPtr res;
  // A branch that wrote commits with its marker, in the same transaction and round trip.
  if (has_xid) {
    PgParams marker;
    BuildParams({SqlValue::Text(branch->gid)}, &marker);
    s = conn->ExecParamsThen(kInsertMarkerSql, marker, "COMMIT", &res);
  } else {
    s = conn->Exec("COMMIT", &res);
  }
  const bool lost = !s.ok() && !conn->healthy();
  const std::string tag = s.ok() ? PQcmdStatus(res.get()) : "";
  CloseBranch(key, branch.get(), /*rollback=*/true);
  if (s.ok()) {
    if (tag != "COMMIT") return Status::Aborted("postgres rolled the branch back (" + tag + ")");
    return Status::OK();
  }
  if (!lost) return s;
  if (!has_xid) return Status::OK();  // wrote nothing: there was nothing to commit
  spdlog::warn(
      "postgres RM {}: connection lost during one-phase COMMIT of xid {}; asking the "
      "server for the outcome",
      options_.participant_name, xid);
  return OnePhaseOutcome(xid, branch->gid);
}

Status PostgresResourceManager::OnePhaseOutcome(const std::string& xid, const std::string& gid) {
  using Clock = std::chrono::steady_clock;
  const auto deadline =
      Clock::now() + std::chrono::milliseconds(options_.one_phase_outcome_timeout_ms);
  PgParams params;
  BuildParams({SqlValue::Text(xid)}, &params);
  Status last;
  while (true) {
    PgResultPtr res;
    last = ControlExec("SELECT pg_xact_status($1::xid8)", &params, &res, nullptr);
    if (last.ok()) {
      const std::string status = PQgetisnull(res.get(), 0, 0) ? "" : PQgetvalue(res.get(), 0, 0);
      if (status == "committed") return Status::OK();
      if (status == "aborted") {
        return Status::Aborted("connection lost during COMMIT; the server rolled back xid " + xid);
      }
      if (status.empty()) {
        // Too old for pg_xact_status: the transaction is over, and its marker tells.
        bool committed = false;
        last = MarkerExists(gid, &committed);
        if (last.ok() && committed) return Status::OK();
        if (last.ok()) {
          return Status::Aborted("connection lost during COMMIT; xid " + xid +
                                 " ended without its commit marker");
        }
      }
    }
    if (Clock::now() >= deadline) break;
    coop::SleepFor(std::chrono::milliseconds(50));
  }
  return Status::IOError("outcome of one-phase COMMIT of xid " + xid +
                         " is unknown (connection lost): " + last.ToString());
}

void PostgresResourceManager::Stop() {
  std::vector<std::pair<BranchKey, std::shared_ptr<OpenBranch>>> branches;
  {
    std::lock_guard<std::mutex> lock(mu_);
    started_ = false;
    for (const auto& [key, branch] : open_) branches.emplace_back(key, branch);
  }
  for (auto& [key, branch] : branches) {
    coop::MutexLock branch_lock(branch->mu);
    if (!branch->closed) CloseBranch(key, branch.get(), /*rollback=*/true);
  }
  branch_pool_.Close();
  control_pool_.Close();
}

}  // namespace verdict::participant::postgres

#include "participant/postgres/pg_connection.h"

#include <poll.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

#include "common/coop.h"

namespace verdict::participant::postgres {
namespace {

std::string TrimRight(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

Status ErrorStatus(PGconn* conn, const PGresult* result, std::string* sqlstate) {
  const char* state = result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  const std::string code = state != nullptr ? state : "";
  if (sqlstate != nullptr) *sqlstate = code;
  if (code.empty()) {
    // No SQLSTATE: libpq itself failed, almost always because the connection is gone (after
    // "server closed the connection unexpectedly" PQstatus may still say CONNECTION_OK).
    return Status::Unavailable("postgres: connection lost: " + TrimRight(PQerrorMessage(conn)));
  }
  std::string message;
  const char* primary =
      result != nullptr ? PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  message = primary != nullptr ? primary : TrimRight(PQerrorMessage(conn));
  const char* detail =
      result != nullptr ? PQresultErrorField(result, PG_DIAG_MESSAGE_DETAIL) : nullptr;
  if (detail != nullptr) message += std::string(" (") + detail + ")";
  const char* hint = result != nullptr ? PQresultErrorField(result, PG_DIAG_MESSAGE_HINT) : nullptr;
  if (hint != nullptr) message += std::string(" [hint: ") + hint + "]";
  const std::string text = "postgres SQLSTATE " + (code.empty() ? "?????" : code) + ": " + message;

  if (PQstatus(conn) != CONNECTION_OK) return Status::Unavailable(text);
  if (code == "55P03" || code == "57014") return Status::Timeout(text);
  if (code == "08P01") return Status::InvalidArgument(text);
  if (code.rfind("08", 0) == 0 || code == "57P01" || code == "57P02" || code == "57P03") {
    return Status::Unavailable(text);
  }
  if (code.rfind("42", 0) == 0) return Status::InvalidArgument(text);
  return Status::Aborted(text);
}

Status PgConnection::Connect(const std::string& dsn, const std::string& application_name,
                             std::unique_ptr<PgConnection>* out, int timeout_ms) {
  const char* keys[] = {"dbname", "fallback_application_name", nullptr};
  const char* values[] = {dsn.c_str(), application_name.c_str(), nullptr};
  // libpq's non-blocking connect, so that a fiber waits cooperatively for each step.
  PGconn* conn = PQconnectStartParams(keys, values, /*expand_dbname=*/1);
  if (conn == nullptr) return Status::Unavailable("postgres: out of memory connecting");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  PostgresPollingStatusType poll = PGRES_POLLING_WRITING;
  while (PQstatus(conn) != CONNECTION_BAD && poll != PGRES_POLLING_OK &&
         poll != PGRES_POLLING_FAILED) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 ||
        coop::WaitFd(PQsocket(conn), poll == PGRES_POLLING_READING ? POLLIN : POLLOUT,
                     static_cast<int>(left.count())) == 0) {
      PQfinish(conn);
      return Status::Unavailable("postgres: cannot connect: timed out after " +
                                 std::to_string(timeout_ms) + " ms");
    }
    poll = PQconnectPoll(conn);
  }
  if (PQstatus(conn) != CONNECTION_OK) {
    Status s = Status::Unavailable("postgres: cannot connect: " + TrimRight(PQerrorMessage(conn)));
    PQfinish(conn);
    return s;
  }
  // Server notices (e.g. "terminating connection due to immediate shutdown") go to the log,
  // not to raw stderr.
  PQsetNoticeProcessor(
      conn,
      [](void*, const char* message) {
        spdlog::info("postgres notice: {}", TrimRight(message == nullptr ? "" : message));
      },
      nullptr);
  out->reset(new PgConnection(conn));
  return Status::OK();
}

PgConnection::~PgConnection() { PQfinish(conn_); }

Status PgConnection::Finish(PGresult* raw, PgResultPtr* result, std::string* sqlstate) {
  PgResultPtr res(raw);
  const ExecStatusType st = res != nullptr ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
    if (sqlstate != nullptr) sqlstate->clear();
    if (result != nullptr) *result = std::move(res);
    return Status::OK();
  }
  std::string code;
  Status s = ErrorStatus(conn_, res.get(), &code);
  if (s.code() == Status::Code::kUnavailable) broken_ = true;
  if (sqlstate != nullptr) *sqlstate = code;
  return s;
}

void PgConnection::AwaitResult() {
  while (PQisBusy(conn_) == 1) {
    // After libpq dropped a broken connection its socket is -1 (and the number may belong
    // to another socket by now): never wait on socket_ then.
    const int fd = PQsocket(conn_);
    const int ready =
        fd == socket_.fd() ? coop::WaitFd(socket_, POLLIN, -1) : coop::WaitFd(fd, POLLIN, -1);
    if (ready < 0 || PQconsumeInput(conn_) != 1) return;
  }
}

PGresult* PgConnection::CollectResults() {
  PGresult* kept = nullptr;
  while (true) {
    AwaitResult();
    PGresult* r = PQgetResult(conn_);
    if (r == nullptr) return kept;
    if (kept != nullptr && PQresultStatus(kept) == PGRES_FATAL_ERROR) {
      PQclear(r);  // the first error is the answer, as with PQexec
    } else {
      PQclear(kept);
      kept = r;
    }
    if (PQstatus(conn_) == CONNECTION_BAD) {
      // No NULL may ever come on a dead connection: the error result is the answer.
      return kept;
    }
  }
}

// PQexec and PQexecParams, except that the wait for the results is cooperative.
Status PgConnection::Exec(const std::string& sql, PgResultPtr* result, std::string* sqlstate) {
  if (PQsendQuery(conn_, sql.c_str()) != 1) return Finish(nullptr, result, sqlstate);
  return Finish(CollectResults(), result, sqlstate);
}

Status PgConnection::ExecParams(const std::string& sql, const PgParams& params, PgResultPtr* result,
                                std::string* sqlstate) {
  return RunPipeline(/*set_lock_timeout_ms=*/-1, /*begin=*/false, sql, params, nullptr, result,
                     sqlstate);
}

Status PgConnection::ExecParamsThen(const std::string& sql, const PgParams& params,
                                    const std::string& then_sql, PgResultPtr* result,
                                    std::string* sqlstate) {
  return RunPipeline(/*set_lock_timeout_ms=*/-1, /*begin=*/false, sql, params, &then_sql, result,
                     sqlstate);
}

Status PgConnection::Broken(const std::string& what) {
  broken_ = true;
  return Status::Unavailable("postgres: connection lost (" + what +
                             "): " + TrimRight(PQerrorMessage(conn_)));
}

Status PgConnection::BeginAndExecParams(int lock_timeout_ms, const std::string& sql,
                                        const PgParams& params, PgResultPtr* result,
                                        std::string* sqlstate) {
  return RunPipeline(lock_timeout_ms != session_lock_timeout_ms_ ? lock_timeout_ms : -1,
                     /*begin=*/true, sql, params, nullptr, result, sqlstate);
}

std::string PgConnection::StatementKey(const std::string& sql, const PgParams& params) {
  // The parameter count, their types, then the text: no two statements share a key.
  std::string key;
  key.reserve(4 + 4 * params.types.size() + sql.size());
  const uint32_t n = static_cast<uint32_t>(params.types.size());
  key.append(reinterpret_cast<const char*>(&n), sizeof n);
  for (Oid t : params.types) key.append(reinterpret_cast<const char*>(&t), sizeof t);
  key.append(sql);
  return key;
}

Status PgConnection::RunPipeline(int set_lock_timeout_ms, bool begin, const std::string& sql,
                                 const PgParams& params, const std::string* then_sql,
                                 PgResultPtr* result, std::string* sqlstate) {
  // Which form the statement goes out in: a named statement prepared earlier on this
  // connection, one prepared now (its second run), or unnamed (parsed for this run only).
  // Only statements that return no columns are ever named: a named statement's result
  // type is fixed, so one returning rows would fail ("cached plan must not change result
  // type", 0A000) once DDL changed its table; one without columns is re-planned silently.
  std::string key;
  std::string name;
  bool prepare = false;
  if (named_statements_) {
    key = StatementKey(sql, params);
    if (auto it = prepared_.find(key); it != prepared_.end()) {
      name = it->second;
    } else if (seen_once_.erase(key) > 0 && prepared_.size() < kMaxPreparedStatements) {
      name = "verdict_" + std::to_string(++statements_made_);
      prepare = true;
    }
  }

  if (PQenterPipelineMode(conn_) != 1) return Broken("entering pipeline mode");
  size_t expected = 1;
  int syncs = 1;
  bool sent = true;
  if (set_lock_timeout_ms >= 0) {
    const std::string set = "SET lock_timeout = " + std::to_string(set_lock_timeout_ms);
    sent = PQsendQueryParams(conn_, set.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0) == 1 &&
           PQpipelineSync(conn_) == 1;
    ++expected;
    ++syncs;
  }
  if (begin) {
    sent = sent && PQsendQueryParams(conn_, "BEGIN", 0, nullptr, nullptr, nullptr, nullptr, 0) == 1;
    ++expected;
  }
  if (prepare) {
    sent = sent &&
           PQsendPrepare(conn_, name.c_str(), sql.c_str(), params.size(), params.types.data()) == 1;
    ++expected;
  }
  if (!name.empty()) {
    sent = sent && PQsendQueryPrepared(conn_, name.c_str(), params.size(), params.values.data(),
                                       params.lengths.data(), params.formats.data(),
                                       /*resultFormat=*/0) == 1;
  } else {
    sent = sent && PQsendQueryParams(conn_, sql.c_str(), params.size(), params.types.data(),
                                     params.values.data(), params.lengths.data(),
                                     params.formats.data(), /*resultFormat=*/0) == 1;
  }
  if (then_sql != nullptr) {
    sent = sent && PQsendQueryParams(conn_, then_sql->c_str(), 0, nullptr, nullptr, nullptr,
                                     nullptr, /*resultFormat=*/0) == 1;
    ++expected;
  }
  sent = sent && PQpipelineSync(conn_) == 1;
  if (!sent) return Broken("sending a pipeline");
  // One result per statement, then NULL; a PIPELINE_SYNC result after each Sync (with no
  // NULL after it). Two NULLs in a row would mean a result libpq will never deliver.
  std::vector<PgResultPtr> results;
  int nulls = 0;
  while (syncs > 0) {
    AwaitResult();
    PGresult* raw = PQgetResult(conn_);
    if (raw == nullptr) {
      if (++nulls > 1 || PQstatus(conn_) != CONNECTION_OK) return Broken("reading a pipeline");
      continue;
    }
    nulls = 0;
    PgResultPtr r(raw);
    if (PQresultStatus(raw) == PGRES_PIPELINE_SYNC) {
      --syncs;
      continue;
    }
    if (PQresultStatus(raw) == PGRES_FATAL_ERROR && PQstatus(conn_) != CONNECTION_OK) {
      return Finish(r.release(), result, sqlstate);  // maps to Unavailable, marks broken
    }
    results.push_back(std::move(r));
  }
  if (PQexitPipelineMode(conn_) != 1) return Broken("leaving pipeline mode");
  if (results.size() != expected) return Broken("unexpected pipeline results");
  // In order; the first failure is the answer (the statements after it in its Sync were
  // skipped: PIPELINE_ABORTED).
  size_t i = 0;
  if (set_lock_timeout_ms >= 0) {
    VERDICT_RETURN_IF_ERROR(Finish(results[i++].release(), nullptr, sqlstate));
    session_lock_timeout_ms_ = set_lock_timeout_ms;
  }
  if (begin) VERDICT_RETURN_IF_ERROR(Finish(results[i++].release(), nullptr, sqlstate));
  if (prepare) {
    VERDICT_RETURN_IF_ERROR(Finish(results[i++].release(), nullptr, sqlstate));
    prepared_.emplace(key, name);
  }
  std::string code;
  PgResultPtr own;
  Status s = Finish(results[i].release(), &own, &code);
  if (sqlstate != nullptr) *sqlstate = code;
  if (!s.ok()) {
    if (!name.empty() &&
        (code == kSqlStateInvalidStatementName || code == kSqlStateDuplicateStatement ||
         code == kSqlStateFeatureNotSupported)) {
      // Our named statement is not what the server has under that name: gone (a
      // DEALLOCATE), taken (a pooling proxy between us and the server), or stale. Forget
      // it, and retire the connection when it goes back to the pool.
      prepared_.erase(key);
      stale_statements_ = true;
    }
    return s;
  }
  const std::string_view tag = PQcmdStatus(own.get());
  if (tag == "DEALLOCATE ALL" || tag == "DEALLOCATE" || tag == "DISCARD ALL") {
    prepared_.clear();  // some or all of ours are gone: start afresh on a new connection
    stale_statements_ = true;
  } else if (named_statements_ && name.empty() && PQnfields(own.get()) == 0) {
    // Ran unnamed and returned no columns: named from its next run on.
    if (seen_once_.size() >= kMaxPreparedStatements) seen_once_.clear();
    seen_once_.insert(std::move(key));
  }
  if (then_sql != nullptr) return Finish(results[i + 1].release(), result, sqlstate);
  if (result != nullptr) *result = std::move(own);
  return s;
}

Status PgConnectionPool::ConnectWithBackoff(std::unique_ptr<PgConnection>* out) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::milliseconds(options_.connect_timeout_ms);
  auto backoff = std::chrono::milliseconds(20);
  while (true) {
    // One attempt may outlast the retry deadline (a backend can take seconds to start on a
    // loaded machine); the deadline only stops further attempts.
    Status s = PgConnection::Connect(options_.dsn, options_.application_name, out);
    if (s.ok()) {
      (*out)->set_named_statements(options_.named_statements);
      return s;
    }
    if (Clock::now() + backoff >= deadline) return s;
    coop::SleepFor(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
  }
}

Status PgConnectionPool::Acquire(std::unique_ptr<PgConnection>* out) {
  {
    std::unique_lock<std::mutex> lock(mu_);
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.acquire_timeout_ms);
    while (idle_.empty() && open_ >= options_.max_connections) {
      bool timed_out;
      if (coop::Current() != nullptr) {
        // A fiber must not block its loop (the holders may be fibers of it): poll.
        lock.unlock();
        coop::SleepFor(std::chrono::milliseconds(1));
        lock.lock();
        timed_out = std::chrono::steady_clock::now() >= deadline;
      } else {
        timed_out = cv_.wait_until(lock, deadline) == std::cv_status::timeout;
      }
      if (timed_out && idle_.empty() && open_ >= options_.max_connections) {
        return Status::Unavailable("postgres: all " + std::to_string(options_.max_connections) +
                                   " pooled connections are in use");
      }
    }
    if (!idle_.empty()) {
      *out = std::move(idle_.back());
      idle_.pop_back();
      (*out)->reused = true;
      return Status::OK();
    }
    ++open_;  // reserve a slot, connect outside the lock
  }
  Status s = ConnectWithBackoff(out);
  if (!s.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    --open_;
    cv_.notify_one();
    return s;
  }
  (*out)->reused = false;
  return Status::OK();
}

bool PgConnectionPool::TryAcquireIdle(std::unique_ptr<PgConnection>* out) {
  std::lock_guard<std::mutex> lock(mu_);
  if (idle_.empty()) return false;
  *out = std::move(idle_.back());
  idle_.pop_back();
  (*out)->reused = true;
  return true;
}

void PgConnectionPool::Release(std::unique_ptr<PgConnection> conn) {
  if (conn == nullptr) return;
  const bool reusable =
      conn->healthy() && conn->transaction_status() == PQTRANS_IDLE && !conn->stale_statements();
  if (!conn->healthy()) NoteBroken();
  std::unique_ptr<PgConnection> doomed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (reusable) {
      idle_.push_back(std::move(conn));
    } else {
      doomed = std::move(conn);
      --open_;
    }
  }
  cv_.notify_one();
  // `doomed` (if any) is closed here, outside the lock.
}

void PgConnectionPool::DropIdle() {
  std::vector<std::unique_ptr<PgConnection>> doomed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    doomed.swap(idle_);
    open_ -= static_cast<int>(doomed.size());
  }
  cv_.notify_all();
}

}  // namespace verdict::participant::postgres

#include "participant/sqlite/sqlite_resource_manager.h"

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "common/coding.h"
#include "participant/sqlite/row_lock_table.h"
#include "participant/sqlite/schema.h"

#if !defined(SQLITE_ENABLE_SESSION) || !defined(SQLITE_ENABLE_PREUPDATE_HOOK)
#error "the SQLite resource manager needs SQLITE_ENABLE_SESSION and SQLITE_ENABLE_PREUPDATE_HOOK"
#endif

namespace verdict::participant::sqlite {

namespace {

using Clock = std::chrono::steady_clock;

int64_t UnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One SQLite connection with its busy deadline and the tables its statements changed.
struct Conn {
  sqlite3* db = nullptr;
  Clock::time_point busy_deadline;
  std::set<std::string> touched_tables;  // filled by the update hook

  ~Conn() {
    if (db) sqlite3_close_v2(db);
  }
};

// Busy handler: short sleeps until the connection's deadline (SQLite's own busy_timeout
// sleeps up to 100 ms at a time, which would dominate commit latency).
int BusyHandler(void* arg, int attempt) {
  Conn* c = static_cast<Conn*>(arg);
  if (Clock::now() >= c->busy_deadline) return 0;
  std::this_thread::sleep_for(std::chrono::microseconds(attempt < 10 ? 100 : 500));
  return 1;
}

void UpdateHook(void* arg, int, const char*, const char* table, sqlite3_int64) {
  static_cast<Conn*>(arg)->touched_tables.insert(table);
}

std::string Err(sqlite3* db) { return sqlite3_errmsg(db); }

Status Exec(sqlite3* db, const char* sql) {
  char* msg = nullptr;
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, &msg);
  if (rc == SQLITE_OK) return Status::OK();
  std::string m = msg ? msg : sqlite3_errstr(rc);
  sqlite3_free(msg);
  if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) {
    return Status::Timeout(std::string(sql) + ": " + m);
  }
  return Status::IOError(std::string(sql) + ": " + m);
}

// Appends the lock-key encoding of one value.
void AppendKeyValue(sqlite3_value* v, std::string* key) {
  int type = v ? sqlite3_value_type(v) : SQLITE_NULL;
  key->push_back(static_cast<char>('0' + type));
  switch (type) {
    case SQLITE_INTEGER:
      PutFixed64(key, static_cast<uint64_t>(sqlite3_value_int64(v)));
      break;
    case SQLITE_FLOAT: {
      double d = sqlite3_value_double(v);
      uint64_t bits;
      std::memcpy(&bits, &d, sizeof bits);
      PutFixed64(key, bits);
      break;
    }
    case SQLITE_TEXT:
    case SQLITE_BLOB: {
      const void* p = sqlite3_value_blob(v);
      PutLengthPrefixed(key, std::string_view(static_cast<const char*>(p),
                                              static_cast<size_t>(sqlite3_value_bytes(v))));
      break;
    }
    default:
      break;
  }
}

SqlValue ColumnValue(sqlite3_stmt* st, int i) {
  switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER:
      return SqlValue::Integer(sqlite3_column_int64(st, i));
    case SQLITE_FLOAT:
      return SqlValue::Real(sqlite3_column_double(st, i));
    case SQLITE_TEXT: {
      const unsigned char* p = sqlite3_column_text(st, i);
      return SqlValue::Text(std::string(reinterpret_cast<const char*>(p),
                                        static_cast<size_t>(sqlite3_column_bytes(st, i))));
    }
    case SQLITE_BLOB: {
      const void* p = sqlite3_column_blob(st, i);
      int n = sqlite3_column_bytes(st, i);
      return SqlValue::Blob(n ? std::string(static_cast<const char*>(p), n) : std::string());
    }
    default:
      return SqlValue::Null();
  }
}

int Bind(sqlite3_stmt* st, int i, const SqlValue& v) {
  switch (v.type) {
    case SqlType::kNull:
      return sqlite3_bind_null(st, i);
    case SqlType::kInteger:
      return sqlite3_bind_int64(st, i, v.integer);
    case SqlType::kReal:
      return sqlite3_bind_double(st, i, v.real);
    case SqlType::kText:
      return sqlite3_bind_text64(st, i, v.bytes.data(), v.bytes.size(), SQLITE_TRANSIENT,
                                 SQLITE_UTF8);
    case SqlType::kBlob:
      return sqlite3_bind_blob64(st, i, v.bytes.data(), v.bytes.size(), SQLITE_TRANSIENT);
  }
  return SQLITE_MISUSE;
}

// Statements a branch may not run: they would end or escape its local transaction.
bool IsTransactionControl(const std::string& sql) {
  size_t i = 0;
  while (i < sql.size() && std::isspace(static_cast<unsigned char>(sql[i]))) ++i;
  std::string word;
  while (i < sql.size() && std::isalpha(static_cast<unsigned char>(sql[i]))) {
    word.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(sql[i]))));
    ++i;
  }
  static const std::set<std::string> kRefused = {"BEGIN",     "COMMIT",  "END",    "ROLLBACK",
                                                 "SAVEPOINT", "RELEASE", "ATTACH", "DETACH",
                                                 "VACUUM",    "PRAGMA"};
  return kRefused.count(word) > 0;
}

struct SessionDeleter {
  void operator()(sqlite3_session* s) const { sqlite3session_delete(s); }
};

// An open (ACTIVE) branch.
struct OpenBranch {
  std::unique_ptr<Conn> conn;
  std::unique_ptr<sqlite3_session, SessionDeleter> session;
  BranchOptions options;
};

// A prepared branch: its changeset (locks are in the RowLockTable).
struct PreparedBranch {
  std::string changeset;
};

// A COMMIT waiting for (or riding in) a group apply.
struct CommitJob {
  BranchKey key;
  const std::string* changeset = nullptr;
  Status result;
  bool done = false;
};

class SqliteResourceManager : public ResourceManager {
 public:
  explicit SqliteResourceManager(SqliteOptions options) : options_(std::move(options)) {}
  ~SqliteResourceManager() override { Stop(); }

  std::string_view backend() const override { return "sqlite"; }

  Status Start() override {
    std::unique_ptr<Conn> c;
    VERDICT_RETURN_IF_ERROR(OpenConn(&c));
    c->busy_deadline = Clock::now() + std::chrono::milliseconds(options_.apply_busy_timeout_ms);
    Status s = Exec(c->db, kSchemaSql);
    if (!s.ok()) return Status::IOError("creating the bookkeeping schema: " + s.message());
    sqlite3_session* probe = nullptr;
    if (sqlite3session_create(c->db, "main", &probe) != SQLITE_OK || probe == nullptr) {
      return Status::FailedPrecondition(
          "this libsqlite3 has no session extension (needed for durable prepare)");
    }
    sqlite3session_delete(probe);
    std::lock_guard<std::mutex> l(apply_mu_);
    apply_conn_ = std::move(c);
    return Status::OK();
  }

  Status Restore(const BranchKey& key, std::string_view payload) override {
    std::vector<std::string> keys;
    VERDICT_RETURN_IF_ERROR(ChangesetLockKeys(payload, &keys));
    BranchKey holder;
    if (!locks_.TryLockAll(key, keys, &holder)) {
      return Status::Corruption("prepared branches " + key.gtid + ":" + key.branch + " and " +
                                holder.gtid + ":" + holder.branch + " lock the same rows");
    }
    std::lock_guard<std::mutex> l(mu_);
    prepared_[key] = PreparedBranch{std::string(payload)};
    return Status::OK();
  }

  Status Begin(const BranchKey& key, const BranchOptions& options) override {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (open_.count(key) || prepared_.count(key)) {
        return Status::FailedPrecondition("branch already open");
      }
    }
    auto b = std::make_unique<OpenBranch>();
    b->options = options;
    VERDICT_RETURN_IF_ERROR(TakeConn(&b->conn));
    Status s = StartLocalTxn(b.get());
    if (!s.ok()) {
      GiveConn(std::move(b->conn));
      return s;
    }
    std::lock_guard<std::mutex> l(mu_);
    open_[key] = std::move(b);
    return Status::OK();
  }

  Status Execute(const BranchKey& key, const std::string& sql, const std::vector<SqlValue>& params,
                 QueryResult* result) override {
    OpenBranch* b = FindOpen(key);
    if (b == nullptr) return Status::NotFound("no open branch");
    if (IsTransactionControl(sql)) {
      return Status::InvalidArgument(
          "transaction-control statements are not allowed in a "
          "branch: " +
          sql.substr(0, 64));
    }
    const auto deadline = Clock::now() + std::chrono::milliseconds(b->options.lock_timeout_ms);
    for (;;) {
      const bool had_locks = locks_.HeldBy(key) > 0;
      bool wrote = false;
      VERDICT_RETURN_IF_ERROR(RunStatement(b, sql, params, deadline, result, &wrote));
      if (!wrote) return Status::OK();
      VERDICT_RETURN_IF_ERROR(CheckPrimaryKeys(b->conn.get()));
      std::vector<std::string> keys;
      VERDICT_RETURN_IF_ERROR(SessionLockKeys(b, &keys));
      BranchKey holder;
      if (locks_.TryLockAll(key, keys, &holder)) return Status::OK();
      std::string who = holder.gtid + ":" + holder.branch;
      if (had_locks) {
        // Waiting while holding SQLite's write lock would stall the holder's COMMIT.
        return Status::Timeout("row locked by prepared branch " + who);
      }
      // Nothing written before this statement: give SQLite's write lock back, wait for the
      // rows, and run the statement again from a fresh local transaction.
      VERDICT_RETURN_IF_ERROR(RestartLocalTxn(b));
      if (!locks_.LockAllUntil(key, keys, deadline, &holder)) {
        return Status::Timeout("lock wait timed out: row locked by branch " + holder.gtid + ":" +
                               holder.branch);
      }
      *result = QueryResult();
    }
  }

  Status Prepare(const BranchKey& key, const std::vector<std::string>&,
                 PrepareResult* result) override {
    std::unique_ptr<OpenBranch> b = TakeOpen(key);
    if (b == nullptr) return Status::NotFound("no open branch");
    std::string changeset;
    Status s = Changeset(b.get(), &changeset);
    Status rb = Exec(b->conn->db, "ROLLBACK");
    b->session.reset();
    if (rb.ok()) GiveConn(std::move(b->conn));  // else drop the connection
    if (!s.ok()) {
      locks_.ReleaseAll(key);
      return Status::Aborted("cannot capture the changeset: " + s.message());
    }
    if (changeset.empty()) {
      locks_.ReleaseAll(key);
      result->vote = PrepareVote::kReadOnly;
      result->recovery_payload.clear();
      return Status::OK();
    }
    // Make sure the lock set covers the final changeset exactly.
    std::vector<std::string> keys;
    VERDICT_RETURN_IF_ERROR(ChangesetLockKeys(changeset, &keys));
    BranchKey holder;
    if (!locks_.TryLockAll(key, keys, &holder)) {
      locks_.ReleaseAll(key);
      return Status::Aborted("row locked by branch " + holder.gtid + ":" + holder.branch);
    }
    result->vote = PrepareVote::kYes;
    result->recovery_payload = changeset;
    std::lock_guard<std::mutex> l(mu_);
    prepared_[key] = PreparedBranch{std::move(changeset)};
    return Status::OK();
  }

  Status CommitPrepared(const BranchKey& key) override {
    std::string changeset;
    {
      std::lock_guard<std::mutex> l(mu_);
      auto it = prepared_.find(key);
      if (it != prepared_.end()) changeset = it->second.changeset;
    }
    if (changeset.empty()) {
      bool marked = false;
      VERDICT_RETURN_IF_ERROR(HasMarker(key, &marked));
      if (marked) return Status::OK();
      return Status::NotFound("no prepared or committed branch " + key.gtid + ":" + key.branch);
    }
    CommitJob job;
    job.key = key;
    job.changeset = &changeset;
    GroupApply(&job);
    if (job.result.ok()) {
      {
        std::lock_guard<std::mutex> l(mu_);
        prepared_.erase(key);
      }
      locks_.ReleaseAll(key);
    }
    return job.result;
  }

  Status RollbackPrepared(const BranchKey& key) override {
    bool was_prepared;
    {
      std::lock_guard<std::mutex> l(mu_);
      was_prepared = prepared_.erase(key) > 0;
    }
    if (was_prepared) {
      bool marked = false;
      if (HasMarker(key, &marked).ok() && marked) {
        spdlog::critical(
            "HEURISTIC HAZARD: branch {}:{} is rolled back but its commit marker "
            "exists (it was committed locally)",
            key.gtid, key.branch);
      }
    }
    Rollback(key);
    locks_.ReleaseAll(key);
    return Status::OK();
  }

  Status Rollback(const BranchKey& key) override {
    std::unique_ptr<OpenBranch> b = TakeOpen(key);
    if (b != nullptr) {
      Status s = Exec(b->conn->db, "ROLLBACK");
      b->session.reset();
      if (s.ok() || sqlite3_get_autocommit(b->conn->db)) GiveConn(std::move(b->conn));
    }
    bool prepared;
    {
      std::lock_guard<std::mutex> l(mu_);
      prepared = prepared_.count(key) > 0;
    }
    if (!prepared) locks_.ReleaseAll(key);
    return Status::OK();
  }

  Status CommitOnePhase(const BranchKey& key) override {
    OpenBranch* ob = FindOpen(key);
    if (ob == nullptr) return Status::NotFound("no open branch");
    bool empty = sqlite3session_isempty(ob->session.get()) != 0;
    Status s;
    if (!empty) s = InsertMarker(ob->conn->db, key);
    std::unique_ptr<OpenBranch> b = TakeOpen(key);
    b->session.reset();
    b->conn->busy_deadline = Clock::now() + std::chrono::milliseconds(b->options.lock_timeout_ms);
    if (s.ok()) s = Exec(b->conn->db, "COMMIT");
    if (!s.ok()) {
      Exec(b->conn->db, "ROLLBACK");
      s = Status::Aborted("one-phase commit failed: " + s.message());
    }
    if (sqlite3_get_autocommit(b->conn->db)) GiveConn(std::move(b->conn));
    locks_.ReleaseAll(key);
    return s;
  }

  Status IsReadOnly(const BranchKey& key, bool* read_only) override {
    OpenBranch* b = FindOpen(key);
    if (b == nullptr) return Status::NotFound("no open branch");
    *read_only = sqlite3session_isempty(b->session.get()) != 0;
    return Status::OK();
  }

  Status CommitEvidence(const BranchKey& key, bool* committed) override {
    // A pooled connection: in WAL mode this read never waits for a writer (nor for a
    // group apply holding apply_mu_).
    std::unique_ptr<Conn> c;
    VERDICT_RETURN_IF_ERROR(TakeConn(&c));
    c->busy_deadline = Clock::now() + std::chrono::milliseconds(options_.apply_busy_timeout_ms);
    Status s = MarkerExists(c->db, key, committed);
    GiveConn(std::move(c));
    return s;
  }

  Status PruneCommitEvidence(int64_t older_than_ms, int64_t* pruned) override {
    *pruned = 0;
    std::lock_guard<std::mutex> l(apply_mu_);
    if (!apply_conn_) return Status::Unavailable("resource manager stopped");
    sqlite3* db = apply_conn_->db;
    apply_conn_->busy_deadline =
        Clock::now() + std::chrono::milliseconds(options_.apply_busy_timeout_ms);
    sqlite3_stmt* raw = nullptr;
    sqlite3_prepare_v2(db,
                       "DELETE FROM verdict_commit_markers WHERE (gtid, branch) IN "
                       "(SELECT gtid, branch FROM verdict_commit_markers "
                       "WHERE committed_ms <= ? LIMIT 10000)",
                       -1, &raw, nullptr);
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> st(raw, sqlite3_finalize);
    if (!st) return Status::IOError("marker prune: " + Err(db));
    sqlite3_bind_int64(st.get(), 1, UnixMs() - older_than_ms);
    int rc = sqlite3_step(st.get());
    if (rc != SQLITE_DONE) {
      if ((rc & 0xff) == SQLITE_BUSY) return Status::Unavailable("marker prune: " + Err(db));
      return Status::IOError("marker prune: " + Err(db));
    }
    *pruned = sqlite3_changes64(db);
    return Status::OK();
  }

  Status ListPrepared(std::vector<PreparedBranchInfo>* out) override {
    std::lock_guard<std::mutex> l(mu_);
    out->clear();
    for (const auto& [key, p] : prepared_) out->push_back({key, -1});
    return Status::OK();
  }

  void Stop() override {
    std::map<BranchKey, std::unique_ptr<OpenBranch>> open;
    {
      std::lock_guard<std::mutex> l(mu_);
      open.swap(open_);
      idle_.clear();
    }
    for (auto& [key, b] : open) {
      Exec(b->conn->db, "ROLLBACK");
      b->session.reset();
      locks_.ReleaseAll(key);
    }
    std::lock_guard<std::mutex> l(apply_mu_);
    apply_conn_.reset();
  }

 private:
  Status OpenConn(std::unique_ptr<Conn>* out) {
    auto c = std::make_unique<Conn>();
    int rc =
        sqlite3_open_v2(options_.path.c_str(), &c->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      return Status::IOError("cannot open SQLite database " + options_.path + ": " +
                             (c->db ? Err(c->db) : sqlite3_errstr(rc)));
    }
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_handler(c->db, BusyHandler, c.get());
    c->busy_deadline = Clock::now() + std::chrono::seconds(10);
    VERDICT_RETURN_IF_ERROR(Exec(c->db, "PRAGMA journal_mode=WAL"));
    VERDICT_RETURN_IF_ERROR(
        Exec(c->db, options_.sync ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=OFF"));
    sqlite3_update_hook(c->db, UpdateHook, c.get());
    *out = std::move(c);
    return Status::OK();
  }

  Status TakeConn(std::unique_ptr<Conn>* out) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!idle_.empty()) {
        *out = std::move(idle_.back());
        idle_.pop_back();
        return Status::OK();
      }
    }
    return OpenConn(out);
  }

  void GiveConn(std::unique_ptr<Conn> c) {
    if (!c || !sqlite3_get_autocommit(c->db)) return;  // never pool a connection mid-txn
    c->touched_tables.clear();
    std::lock_guard<std::mutex> l(mu_);
    if (idle_.size() < 64) idle_.push_back(std::move(c));
  }

  OpenBranch* FindOpen(const BranchKey& key) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = open_.find(key);
    return it == open_.end() ? nullptr : it->second.get();
  }

  std::unique_ptr<OpenBranch> TakeOpen(const BranchKey& key) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = open_.find(key);
    if (it == open_.end()) return nullptr;
    std::unique_ptr<OpenBranch> b = std::move(it->second);
    open_.erase(it);
    return b;
  }

  Status StartLocalTxn(OpenBranch* b) {
    VERDICT_RETURN_IF_ERROR(Exec(b->conn->db, "BEGIN"));
    sqlite3_session* s = nullptr;
    if (sqlite3session_create(b->conn->db, "main", &s) != SQLITE_OK ||
        sqlite3session_attach(s, nullptr) != SQLITE_OK) {
      if (s) sqlite3session_delete(s);
      Exec(b->conn->db, "ROLLBACK");
      return Status::IOError("cannot start a session: " + Err(b->conn->db));
    }
    b->session.reset(s);
    b->conn->touched_tables.clear();
    return Status::OK();
  }

  Status RestartLocalTxn(OpenBranch* b) {
    b->session.reset();
    VERDICT_RETURN_IF_ERROR(Exec(b->conn->db, "ROLLBACK"));
    return StartLocalTxn(b);
  }

  Status RunStatement(OpenBranch* b, const std::string& sql, const std::vector<SqlValue>& params,
                      Clock::time_point deadline, QueryResult* result, bool* wrote) {
    sqlite3* db = b->conn->db;
    sqlite3_stmt* raw = nullptr;
    const char* tail = nullptr;
    b->conn->busy_deadline = deadline;
    int rc = sqlite3_prepare_v2(db, sql.c_str(), static_cast<int>(sql.size()), &raw, &tail);
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> st(raw, sqlite3_finalize);
    if (rc != SQLITE_OK) {
      if ((rc & 0xff) == SQLITE_BUSY) return Status::Timeout("lock wait: " + Err(db));
      return Status::InvalidArgument("SQL error: " + Err(db));
    }
    if (st == nullptr) return Status::InvalidArgument("empty statement");
    for (const char* p = tail; p && *p; ++p) {
      if (!std::isspace(static_cast<unsigned char>(*p)) && *p != ';') {
        return Status::InvalidArgument("one statement per call");
      }
    }
    if (sqlite3_bind_parameter_count(st.get()) != static_cast<int>(params.size())) {
      return Status::InvalidArgument("statement has " +
                                     std::to_string(sqlite3_bind_parameter_count(st.get())) +
                                     " parameters, " + std::to_string(params.size()) + " given");
    }
    for (size_t i = 0; i < params.size(); ++i) {
      if (Bind(st.get(), static_cast<int>(i + 1), params[i]) != SQLITE_OK) {
        return Status::InvalidArgument("cannot bind parameter " + std::to_string(i + 1));
      }
    }
    const bool read_only = sqlite3_stmt_readonly(st.get()) != 0;
    *result = QueryResult();
    const int ncol = sqlite3_column_count(st.get());
    for (int i = 0; i < ncol; ++i) result->columns.push_back(sqlite3_column_name(st.get(), i));
    for (;;) {
      rc = sqlite3_step(st.get());
      if (rc == SQLITE_ROW) {
        SqlRow row;
        row.reserve(ncol);
        for (int i = 0; i < ncol; ++i) row.push_back(ColumnValue(st.get(), i));
        result->rows.push_back(std::move(row));
        continue;
      }
      break;
    }
    if (rc != SQLITE_DONE) {
      std::string msg = Err(db);
      int primary = rc & 0xff;
      if (rc == SQLITE_BUSY_SNAPSHOT) {
        return Status::Aborted(
            "serialization conflict (a concurrent commit changed the "
            "snapshot this branch read): " +
            msg);
      }
      if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
        return Status::Timeout("lock wait exceeded " + std::to_string(b->options.lock_timeout_ms) +
                               " ms: " + msg);
      }
      if (primary == SQLITE_CONSTRAINT) return Status::Aborted("constraint violation: " + msg);
      return Status::Aborted("SQL error: " + msg);
    }
    if (sqlite3_get_autocommit(db)) {
      return Status::Aborted("the statement ended the branch's local transaction");
    }
    if (!read_only) result->rows_affected = sqlite3_changes64(db);
    *wrote = !read_only;
    return Status::OK();
  }

  // Refuses writes to tables without a PRIMARY KEY: the session would not record them.
  Status CheckPrimaryKeys(Conn* c) {
    for (const std::string& table : c->touched_tables) {
      {
        std::lock_guard<std::mutex> l(mu_);
        if (pk_ok_.count(table)) continue;
      }
      sqlite3_stmt* raw = nullptr;
      sqlite3_prepare_v2(c->db, "SELECT COUNT(*) FROM pragma_table_info(?) WHERE pk > 0", -1, &raw,
                         nullptr);
      std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> st(raw, sqlite3_finalize);
      if (!st) return Status::IOError("pragma_table_info: " + Err(c->db));
      sqlite3_bind_text(st.get(), 1, table.c_str(), -1, SQLITE_TRANSIENT);
      int64_t n = sqlite3_step(st.get()) == SQLITE_ROW ? sqlite3_column_int64(st.get(), 0) : 0;
      if (n == 0) {
        return Status::InvalidArgument("table " + table +
                                       " has no PRIMARY KEY; a SQLite branch can only write "
                                       "tables with one");
      }
      std::lock_guard<std::mutex> l(mu_);
      pk_ok_.insert(table);
    }
    return Status::OK();
  }

  Status Changeset(OpenBranch* b, std::string* out) {
    int n = 0;
    void* p = nullptr;
    int rc = sqlite3session_changeset(b->session.get(), &n, &p);
    if (rc != SQLITE_OK) return Status::IOError("sqlite3session_changeset: " + Err(b->conn->db));
    out->assign(static_cast<const char*>(p), static_cast<size_t>(n));
    sqlite3_free(p);
    return Status::OK();
  }

  Status SessionLockKeys(OpenBranch* b, std::vector<std::string>* keys) {
    std::string changeset;
    VERDICT_RETURN_IF_ERROR(Changeset(b, &changeset));
    return ChangesetLockKeys(changeset, keys);
  }

  Status InsertMarker(sqlite3* db, const BranchKey& key) {
    sqlite3_stmt* raw = nullptr;
    sqlite3_prepare_v2(db,
                       "INSERT OR IGNORE INTO verdict_commit_markers(gtid, branch, committed_ms) "
                       "VALUES (?, ?, ?)",
                       -1, &raw, nullptr);
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> st(raw, sqlite3_finalize);
    if (!st) return Status::IOError("marker insert: " + Err(db));
    sqlite3_bind_text(st.get(), 1, key.gtid.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st.get(), 2, key.branch.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st.get(), 3, UnixMs());
    int rc = sqlite3_step(st.get());
    if (rc != SQLITE_DONE) {
      if ((rc & 0xff) == SQLITE_BUSY) return Status::Timeout("marker insert: " + Err(db));
      return Status::IOError("marker insert: " + Err(db));
    }
    return Status::OK();
  }

  Status MarkerExists(sqlite3* db, const BranchKey& key, bool* exists) {
    sqlite3_stmt* raw = nullptr;
    sqlite3_prepare_v2(db, "SELECT 1 FROM verdict_commit_markers WHERE gtid = ? AND branch = ?", -1,
                       &raw, nullptr);
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> st(raw, sqlite3_finalize);
    if (!st) return Status::IOError("marker lookup: " + Err(db));
    sqlite3_bind_text(st.get(), 1, key.gtid.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st.get(), 2, key.branch.c_str(), -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st.get());
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return Status::IOError("marker: " + Err(db));
    *exists = rc == SQLITE_ROW;
    return Status::OK();
  }

  Status HasMarker(const BranchKey& key, bool* exists) {
    std::lock_guard<std::mutex> l(apply_mu_);
    if (!apply_conn_) return Status::Unavailable("resource manager stopped");
    apply_conn_->busy_deadline =
        Clock::now() + std::chrono::milliseconds(options_.apply_busy_timeout_ms);
    return MarkerExists(apply_conn_->db, key, exists);
  }

  // Group commit of prepared branches: the first waiter applies everyone queued in one
  // local transaction (one fsync); each branch sits in its own savepoint so that one
  // failing changeset does not sink the others.
  void GroupApply(CommitJob* job) {
    std::unique_lock<std::mutex> l(queue_mu_);
    queue_.push_back(job);
    while (!job->done) {
      if (applying_) {
        queue_cv_.wait(l);
        continue;
      }
      applying_ = true;
      std::vector<CommitJob*> batch;
      batch.swap(queue_);
      l.unlock();
      ApplyBatch(batch);
      l.lock();
      applying_ = false;
      for (CommitJob* j : batch) j->done = true;
      queue_cv_.notify_all();
    }
  }

  void ApplyBatch(const std::vector<CommitJob*>& batch) {
    std::lock_guard<std::mutex> l(apply_mu_);
    auto fail_all = [&](const Status& s) {
      for (CommitJob* j : batch) j->result = s;
    };
    if (!apply_conn_) return fail_all(Status::Unavailable("resource manager stopped"));
    sqlite3* db = apply_conn_->db;
    apply_conn_->busy_deadline =
        Clock::now() + std::chrono::milliseconds(options_.apply_busy_timeout_ms);
    Status s = Exec(db, "BEGIN IMMEDIATE");
    if (!s.ok()) return fail_all(Status::Unavailable("cannot take the write lock: " + s.message()));
    for (CommitJob* j : batch) {
      j->result = ApplyOne(db, *j);
    }
    s = Exec(db, "COMMIT");
    if (!s.ok()) {
      Exec(db, "ROLLBACK");
      for (CommitJob* j : batch) {
        if (j->result.ok()) j->result = Status::IOError("local commit failed: " + s.message());
      }
    }
  }

  Status ApplyOne(sqlite3* db, const CommitJob& job) {
    VERDICT_RETURN_IF_ERROR(Exec(db, "SAVEPOINT verdict_branch"));
    bool marked = false;
    Status s = MarkerExists(db, job.key, &marked);
    if (s.ok() && !marked) {
      std::string conflict;
      auto on_conflict = [](void* ctx, int kind, sqlite3_changeset_iter* it) -> int {
        const char* table = nullptr;
        int ncol = 0, op = 0, indirect = 0;
        sqlite3changeset_op(it, &table, &ncol, &op, &indirect);
        *static_cast<std::string*>(ctx) = "changeset conflict kind " + std::to_string(kind) +
                                          " on table " + (table ? table : "?");
        return SQLITE_CHANGESET_ABORT;
      };
      int rc = sqlite3changeset_apply(db, static_cast<int>(job.changeset->size()),
                                      const_cast<char*>(job.changeset->data()), nullptr,
                                      on_conflict, &conflict);
      if (rc != SQLITE_OK) {
        s = Status::Aborted("cannot apply branch " + job.key.gtid + ":" + job.key.branch + ": " +
                            (conflict.empty() ? Err(db) : conflict));
        spdlog::critical("{}", s.message());
      } else {
        s = InsertMarker(db, job.key);
      }
    }
    if (!s.ok()) Exec(db, "ROLLBACK TO verdict_branch");
    Exec(db, "RELEASE verdict_branch");
    return s;
  }

  const SqliteOptions options_;
  RowLockTable locks_;

  std::mutex mu_;
  std::map<BranchKey, std::unique_ptr<OpenBranch>> open_;  // guarded by mu_
  std::map<BranchKey, PreparedBranch> prepared_;           // guarded by mu_
  std::vector<std::unique_ptr<Conn>> idle_;                // guarded by mu_
  std::set<std::string> pk_ok_;                            // guarded by mu_

  std::mutex apply_mu_;
  std::unique_ptr<Conn> apply_conn_;  // guarded by apply_mu_

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;  // guarded by queue_mu_
  std::vector<CommitJob*> queue_;     // guarded by queue_mu_
  bool applying_ = false;             // guarded by queue_mu_
};

}  // namespace

Status ChangesetLockKeys(std::string_view changeset, std::vector<std::string>* keys) {
  keys->clear();
  if (changeset.empty()) return Status::OK();
  sqlite3_changeset_iter* it = nullptr;
  if (sqlite3changeset_start(&it, static_cast<int>(changeset.size()),
                             const_cast<char*>(changeset.data())) != SQLITE_OK) {
    return Status::Corruption("unreadable changeset");
  }
  int rc;
  while ((rc = sqlite3changeset_next(it)) == SQLITE_ROW) {
    const char* table = nullptr;
    int ncol = 0, op = 0, indirect = 0;
    unsigned char* pk = nullptr;
    int npk = 0;
    if (sqlite3changeset_op(it, &table, &ncol, &op, &indirect) != SQLITE_OK ||
        sqlite3changeset_pk(it, &pk, &npk) != SQLITE_OK) {
      sqlite3changeset_finalize(it);
      return Status::Corruption("unreadable changeset entry");
    }
    std::string key = table;
    key.push_back('\0');
    for (int i = 0; i < ncol; ++i) {
      if (!pk[i]) continue;
      sqlite3_value* v = nullptr;
      if (op == SQLITE_INSERT) {
        sqlite3changeset_new(it, i, &v);
      } else {
        sqlite3changeset_old(it, i, &v);
      }
      AppendKeyValue(v, &key);
    }
    keys->push_back(std::move(key));
  }
  int frc = sqlite3changeset_finalize(it);
  if (rc != SQLITE_DONE || frc != SQLITE_OK) return Status::Corruption("corrupt changeset");
  std::sort(keys->begin(), keys->end());
  keys->erase(std::unique(keys->begin(), keys->end()), keys->end());
  return Status::OK();
}

std::unique_ptr<ResourceManager> NewSqliteResourceManager(const SqliteOptions& options) {
  return std::make_unique<SqliteResourceManager>(options);
}

}  // namespace verdict::participant::sqlite

// PgConnection: one libpq connection, with statements whose failures come back as Status
// (SQLSTATE in the message); PgConnectionPool: a bounded pool of them that reconnects with
// backoff when the server is gone or restarting.
// PgConnection is not thread-safe (libpq's rule: one thread at a time per connection).
// PgConnectionPool is thread-safe.
// Every wait — for a result, a connection, a free pool slot, a reconnect backoff — goes
// through common/coop.h: on a fiber of the agent's FiberServer it suspends only that
// fiber; on an ordinary thread it blocks as libpq itself would.
#pragma once

#include <libpq-fe.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/coop.h"
#include "common/status.h"

namespace verdict::participant::postgres {

struct PgResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResultPtr = std::unique_ptr<PGresult, PgResultDeleter>;

// Well-known SQLSTATEs the resource manager reacts to.
inline constexpr const char* kSqlStateUndefinedObject = "42704";  // no such prepared xact
inline constexpr const char* kSqlStateObjectInUse = "55006";      // prepared xact busy
inline constexpr const char* kSqlStateInvalidStatementName = "26000";
inline constexpr const char* kSqlStateDuplicateStatement = "42P05";
inline constexpr const char* kSqlStateFeatureNotSupported = "0A000";  // e.g. a stale plan

// Statement parameters in libpq's layout. Values point into `storage`; null => SQL NULL.
struct PgParams {
  std::vector<std::string> storage;
  std::vector<Oid> types;
  std::vector<const char*> values;
  std::vector<int> lengths;
  std::vector<int> formats;  // 0 text, 1 binary
  int size() const { return static_cast<int>(values.size()); }
};

class PgConnection {
 public:
  // Opens a connection to `dsn` (a conninfo string or URI; its own application_name wins
  // over `application_name`), giving up after `timeout_ms`. Unavailable with libpq's
  // message on failure.
  static Status Connect(const std::string& dsn, const std::string& application_name,
                        std::unique_ptr<PgConnection>* out, int timeout_ms = 30000);
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // Runs `sql` with the simple query protocol (several statements allowed; the result is
  // the last one's). On failure returns the mapped error (see ErrorStatus) and, if
  // `sqlstate` is not null, the SQLSTATE ("" when the connection broke).
  Status Exec(const std::string& sql, PgResultPtr* result = nullptr,
              std::string* sqlstate = nullptr);
  // Runs one statement with `$n` parameters (extended protocol, text results). A statement
  // that returns no columns (INSERT, UPDATE, DELETE without RETURNING...) runs, from its
  // second run on a connection on, as a named statement prepared on that connection (by
  // text and parameter types): the server parses it once. See set_named_statements.
  Status ExecParams(const std::string& sql, const PgParams& params, PgResultPtr* result,
                    std::string* sqlstate = nullptr);

  // ExecParams, then `then_sql` (no parameters) in the same round trip, unless `sql`
  // failed. The result and errors are the first failure's, else `then_sql`'s.
  Status ExecParamsThen(const std::string& sql, const PgParams& params, const std::string& then_sql,
                        PgResultPtr* result, std::string* sqlstate = nullptr);

  // Starts a transaction and runs one statement in it, in a single round trip (libpq
  // pipeline mode): `BEGIN` and the statement go out together. If the connection's session
  // lock_timeout is not `lock_timeout_ms` yet, `SET lock_timeout` goes first, committed on
  // its own (a Sync before the BEGIN), so a rolled-back branch cannot undo it and the
  // remembered value stays true. The result and errors are the statement's (or BEGIN's, if
  // that failed), as from ExecParams; afterwards the connection is inside the transaction
  // (in the failed state after a statement error) unless it broke.
  Status BeginAndExecParams(int lock_timeout_ms, const std::string& sql, const PgParams& params,
                            PgResultPtr* result, std::string* sqlstate = nullptr);

  // False once a statement failed because the connection broke (or libpq says so); such a
  // connection is never reused.
  bool healthy() const { return !broken_ && PQstatus(conn_) == CONNECTION_OK; }
  // PQTRANS_IDLE / INTRANS / INERROR / UNKNOWN.
  PGTransactionStatusType transaction_status() const { return PQtransactionStatus(conn_); }
  // True if this connection was taken from the pool's idle list (it may have gone stale
  // while idle, e.g. across a server restart), false if it was opened for this use.
  bool reused = false;
  // True once this connection's named statements may no longer match the server's (after
  // DDL changed a table under one, or a DEALLOCATE / DISCARD): the pool closes it when it
  // comes back instead of lending it again.
  bool stale_statements() const { return stale_statements_; }
  // Whether statements may be prepared as named ones (default true). Off for a pooling
  // proxy that does not keep a server session per client connection.
  void set_named_statements(bool on) { named_statements_ = on; }

 private:
  // At most this many named statements per connection (others run unnamed), and this many
  // candidates (statements run once; then forgotten, all at once).
  static constexpr size_t kMaxPreparedStatements = 256;
  static std::string StatementKey(const std::string& sql, const PgParams& params);
  // One pipeline, one round trip: SET lock_timeout (own Sync, if >= 0), BEGIN (if `begin`),
  // then `sql` (preparing it first if this is its second run),
  // then `then_sql` (if not null; no parameters), and a Sync.
  Status RunPipeline(int set_lock_timeout_ms, bool begin, const std::string& sql,
                     const PgParams& params, const std::string* then_sql, PgResultPtr* result,
                     std::string* sqlstate);

  explicit PgConnection(PGconn* conn) : conn_(conn), socket_(PQsocket(conn)) {}
  Status Finish(PGresult* raw, PgResultPtr* result, std::string* sqlstate);
  // Waits until PQgetResult would not block (or the connection failed: PQgetResult then
  // reports it).
  void AwaitResult();
  // After a successful PQsendQuery*: every result, as PQexec keeps them (the first error,
  // else the last result); null if there was none.
  PGresult* CollectResults();

  // Marks the connection broken; Unavailable with libpq's message.
  Status Broken(const std::string& what);

  PGconn* conn_;
  // The connection's socket, for cooperative waits (libpq opens no other once connected).
  const coop::Descriptor socket_;
  bool broken_ = false;  // a statement failed with a connection-level (Unavailable) error
  int session_lock_timeout_ms_ = -1;  // set by BeginAndExecParams; -1 = server default
  std::unordered_map<std::string, std::string> prepared_;  // StatementKey -> statement name
  std::unordered_set<std::string> seen_once_;              // StatementKeys run once, unnamed
  uint64_t statements_made_ = 0;
  bool stale_statements_ = false;
  bool named_statements_ = true;
};

// Maps a failed result to a Status whose message carries the SQLSTATE, the server's
// message and its detail:
//   connection broken, class 08, 57P01..57P03 -> Unavailable
//   55P03 lock_not_available, 57014 query_canceled -> Timeout
//   class 42 (syntax error, undefined table/column...), 08P01 -> InvalidArgument
//   everything else (constraint violations, data errors, deadlocks...) -> Aborted
Status ErrorStatus(PGconn* conn, const PGresult* result, std::string* sqlstate);

struct PgPoolOptions {
  std::string dsn;
  std::string application_name = "verdict-participant";
  int max_connections = 64;        // idle + lent; Acquire waits when all are lent
  int connect_timeout_ms = 10000;  // keep retrying a connect (with backoff) this long
  int acquire_timeout_ms = 5000;   // wait this long for a lent connection to come back
  bool named_statements = true;    // PgConnection::set_named_statements
};

class PgConnectionPool {
 public:
  explicit PgConnectionPool(PgPoolOptions options) : options_(std::move(options)) {}
  PgConnectionPool(const PgConnectionPool&) = delete;
  PgConnectionPool& operator=(const PgConnectionPool&) = delete;

  // Lends an idle connection, or opens a new one, retrying a failed connect with
  // exponential backoff (20 ms .. 1 s) for connect_timeout_ms. Unavailable if the server
  // cannot be reached in time or every connection stays lent for acquire_timeout_ms.
  Status Acquire(std::unique_ptr<PgConnection>* out);
  // Lends an idle connection if there is one, without waiting or connecting; false if
  // none is idle.
  bool TryAcquireIdle(std::unique_ptr<PgConnection>* out);
  // Returns a lent connection. A broken one, or one still inside a transaction, is closed.
  void Release(std::unique_ptr<PgConnection> conn);
  // Closes every idle connection (after one of them was found dead: the server restarted
  // or dropped us, so the others are dead too).
  void DropIdle();
  // Closes idle connections and refuses nothing; lent ones are closed when released.
  void Close() { DropIdle(); }
  // How many times a connection was found broken (the agent re-reconciles when it grows).
  uint64_t broken_connections() const { return broken_.load(); }
  void NoteBroken() { broken_.fetch_add(1); }

 private:
  Status ConnectWithBackoff(std::unique_ptr<PgConnection>* out);

  const PgPoolOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<PgConnection>> idle_;  // GUARDED_BY(mu_)
  int open_ = 0;                                     // GUARDED_BY(mu_): idle + lent
  std::atomic<uint64_t> broken_{0};
};

}  // namespace verdict::participant::postgres

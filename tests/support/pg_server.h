// PgServer: a throwaway PostgreSQL server in a fresh temp dir, for integration tests, crash
// tests and benchmarks. initdb and the server run as the unprivileged `postgres` user (through
// runuser) when the process is root, because PostgreSQL refuses to run as root. The server
// listens on a unix socket inside its temp dir (and on 127.0.0.1 if asked), with fsync on.
// A watchdog process stops the server and removes the dir if the owning process dies.
// Not thread-safe: one thread drives a PgServer; the DSNs it hands out may be used anywhere.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/status.h"

namespace verdict::test_support {

struct PgServerOptions {
  // 0 reproduces PostgreSQL's default, with which two-phase commit is refused.
  int max_prepared_transactions = 64;
  int max_connections = 100;
  // Also listen on 127.0.0.1:<port> (the unix socket is always there).
  bool listen_tcp = false;
  // Lines appended verbatim to postgresql.conf.
  std::vector<std::string> extra_config;
  // Keep the temp dir after the server is destroyed (also: env VERDICT_KEEP_PG_DIR=1).
  bool keep_dir = false;
};

class PgServer {
 public:
  explicit PgServer(PgServerOptions options = {});
  ~PgServer();  // Stops the server (immediate: its data is discarded) and removes its dir.
  PgServer(const PgServer&) = delete;
  PgServer& operator=(const PgServer&) = delete;

  // initdb in a new temp dir, then pg_ctl start (waits until the server accepts
  // connections). Fails with the reason and the tail of the server log; never skips.
  // Precondition: not started yet.
  Status Start();
  // pg_ctl -m immediate stop: the server dies without a checkpoint, as in a crash.
  Status ImmediateShutdown();
  // pg_ctl -m fast stop (clean shutdown).
  Status Stop();
  // Stops the server if it runs (fast), then starts it again on the same dir and port.
  // After ImmediateShutdown() this runs crash recovery.
  Status Restart();
  bool running() const { return running_; }

  // libpq connection string for `dbname` as the superuser `postgres`.
  std::string Dsn(const std::string& dbname = "postgres") const;
  Status CreateDatabase(const std::string& name);
  // Runs one or more statements in `dbname` (no results).
  Status Exec(const std::string& dbname, const std::string& sql);
  // Runs one query in `dbname` and returns its rows as text; NULL comes back as "\N".
  Status Query(const std::string& dbname, const std::string& sql,
               std::vector<std::vector<std::string>>* rows);
  // The first column of the first row, or an error if there is no row.
  Status QueryValue(const std::string& dbname, const std::string& sql, std::string* value);

  // The last `lines` lines of the server log (for failure messages).
  std::string LogTail(int lines = 30) const;

  const std::string& dir() const { return dir_; }
  const std::string& socket_dir() const { return dir_; }
  int port() const { return port_; }
  // PostgreSQL's server binaries: $VERDICT_PG_BIN, else the newest /usr/lib/postgresql/*/bin.
  static std::string BinDir();

 private:
  // Runs `argv` (argv[0] is a program in BinDir()) as the server user; captures its output.
  Status RunServerTool(const std::vector<std::string>& argv, std::string* output);
  Status PgCtlStart();
  Status PgCtlStop(const char* mode);
  Status InitDataDir();
  Status StartWatchdog();
  // Forks `/bin/sh -c script` in its own session with stdin = the read end of a pipe whose
  // write end (close-on-exec) is returned in *fd: the script sees EOF when that closes.
  Status SpawnWatchdog(const std::string& script, int* fd, pid_t* pid) const;
  Status Fail(const std::string& what, const std::string& detail) const;

  PgServerOptions options_;
  std::string bin_dir_;
  std::string dir_;  // temp dir: socket, server.log; data in dir_/data
  int port_ = 0;
  bool running_ = false;
  int watchdog_fd_ = -1;  // write end of the pipe the watchdog reads
  pid_t watchdog_pid_ = -1;
};

}  // namespace verdict::test_support

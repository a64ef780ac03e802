#include "bench/bench_fixtures.h"

#include <sqlite3.h>
#include <stdlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

namespace verdict::bench {

TempDir::~TempDir() {
  if (path_.empty()) return;
  if (keep_) {
    std::fprintf(stderr, "verdict-bench: kept %s\n", path_.c_str());
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

Status TempDir::Create(const char* prefix, bool keep) {
  std::string tmpl = std::string("/tmp/") + prefix + ".XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    return Status::IOError(std::string("mkdtemp: ") + std::strerror(errno));
  }
  path_ = tmpl;
  keep_ = keep;
  return Status::OK();
}

namespace {

// Runs `sql` on an open SQLite handle.
Status SqliteExec(sqlite3* db, const std::string& sql) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
    std::string message = error != nullptr ? error : sqlite3_errmsg(db);
    sqlite3_free(error);
    return Status::IOError("sqlite: " + message);
  }
  return Status::OK();
}

}  // namespace

std::string AccountsRows() {
  return "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < " +
         std::to_string(kAccounts) + ") INSERT INTO accounts SELECT i, " +
         std::to_string(kInitialBalance) + " FROM g";
}

Status CreateSqliteAccounts(const std::string& path) {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open(path.c_str(), &raw);
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> db(raw, sqlite3_close);
  if (rc != SQLITE_OK) return Status::IOError("sqlite: cannot open " + path);
  return SqliteExec(db.get(),
                    "CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL); "
                    "BEGIN; " +
                        AccountsRows() + "; COMMIT;");
}

Status SqliteBalanceSum(const std::string& path, int64_t* sum) {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr);
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> db(raw, sqlite3_close);
  if (rc != SQLITE_OK) return Status::IOError("sqlite: cannot open " + path);
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db.get(), "SELECT sum(balance) FROM accounts", -1, &stmt, nullptr) !=
      SQLITE_OK) {
    return Status::IOError(std::string("sqlite: ") + sqlite3_errmsg(db.get()));
  }
  Status s = Status::OK();
  if (sqlite3_step(stmt) == SQLITE_ROW) {
    *sum = sqlite3_column_int64(stmt, 0);
  } else {
    s = Status::IOError(std::string("sqlite: ") + sqlite3_errmsg(db.get()));
  }
  sqlite3_finalize(stmt);
  return s;
}

}  // namespace verdict::bench

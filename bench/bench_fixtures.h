// Fixtures shared by verdict-bench's sections: a temp directory removed on destruction,
// and the accounts table of ../shared/anchors/pg-2pc-ceiling.sh in a SQLite database.
// Main thread only.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace verdict::bench {

// The workload of ../shared/anchors/pg-2pc-ceiling.sh: accounts 1..10,000 at 1,000 each;
// every branch changes one random account, so 32 clients rarely meet on a row.
inline constexpr int kAccounts = 10000;
inline constexpr int64_t kInitialBalance = 1000;

// A directory under /tmp removed (with everything in it) on destruction.
class TempDir {
 public:
  TempDir() = default;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();
  // mkdtemp("/tmp/<prefix>.XXXXXX"); `keep` leaves it (and says so) on destruction.
  Status Create(const char* prefix, bool keep);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  bool keep_ = false;
};

// The SQL that fills `accounts` with ids 1..kAccounts at kInitialBalance.
std::string AccountsRows();
// Creates a SQLite database at `path` with the accounts table, filled.
Status CreateSqliteAccounts(const std::string& path);
// The sum of every balance in the SQLite database at `path`.
Status SqliteBalanceSum(const std::string& path, int64_t* sum);

}  // namespace verdict::bench

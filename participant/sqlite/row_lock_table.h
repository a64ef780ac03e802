// RowLockTable: the SQLite agent's exclusive row locks, keyed by (table, primary key)
// strings, owned by branches. A prepared SQLite branch has rolled back its local
// transaction (so other branches can use the database) and keeps its rows protected here
// until its decision is applied (docs/participant.md). Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "participant/resource_manager.h"

namespace verdict::participant::sqlite {

class RowLockTable {
 public:
  RowLockTable() = default;
  RowLockTable(const RowLockTable&) = delete;
  RowLockTable& operator=(const RowLockTable&) = delete;

  // Takes every key in `keys` for `owner` if none is held by another owner; otherwise
  // takes nothing, sets *holder to one conflicting owner and returns false. Never blocks.
  bool TryLockAll(const BranchKey& owner, const std::vector<std::string>& keys, BranchKey* holder);

  // Waits until every key is free of other owners (or `deadline` passes), then takes them
  // all. False on timeout (nothing taken).
  bool LockAllUntil(const BranchKey& owner, const std::vector<std::string>& keys,
                    std::chrono::steady_clock::time_point deadline, BranchKey* holder);

  // Releases every key `owner` holds and wakes waiters.
  void ReleaseAll(const BranchKey& owner);

  size_t HeldBy(const BranchKey& owner) const;

 private:
  bool ConflictLocked(const BranchKey& owner, const std::vector<std::string>& keys,
                      BranchKey* holder) const;

  mutable std::mutex mu_;
  std::condition_variable released_;                    // guarded by mu_
  std::map<std::string, BranchKey> owner_of_;           // guarded by mu_
  std::map<BranchKey, std::set<std::string>> keys_of_;  // guarded by mu_
};

}  // namespace verdict::participant::sqlite

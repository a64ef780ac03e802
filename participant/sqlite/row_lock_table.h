// RowLockTable: the SQLite agent's exclusive row locks, keyed by (table, primary key)
// strings, owned by branches. A SQLite branch holds SQLite's write lock only while one of
// its statements runs; between statements, while prepared and until its decision is
// applied, its rows are protected here only (docs/participant.md). Thread-safe.
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
  // all. False on timeout (nothing taken). With `only_behind_prepared`, returns false at
  // once (nothing taken) while a conflicting owner is not marked prepared: a branch that
  // already holds locks waits only for branches that wait for nothing themselves, so two
  // executing branches never deadlock (there is no deadlock detection).
  bool LockAllUntil(const BranchKey& owner, const std::vector<std::string>& keys,
                    std::chrono::steady_clock::time_point deadline, BranchKey* holder,
                    bool only_behind_prepared = false);

  // Marks `owner` as prepared (it waits for no lock any more) until ReleaseAll(owner).
  void MarkPrepared(const BranchKey& owner);

  // Releases every key `owner` holds, clears its prepared mark and wakes waiters.
  void ReleaseAll(const BranchKey& owner);

  size_t HeldBy(const BranchKey& owner) const;

 private:
  // True if a key is held by another owner; *holder is one of them, preferably one that
  // is not prepared (*active tells whether it is).
  bool ConflictLocked(const BranchKey& owner, const std::vector<std::string>& keys,
                      BranchKey* holder, bool* active = nullptr) const;

  mutable std::mutex mu_;
  std::condition_variable released_;                    // guarded by mu_
  std::map<std::string, BranchKey> owner_of_;           // guarded by mu_
  std::map<BranchKey, std::set<std::string>> keys_of_;  // guarded by mu_
  std::set<BranchKey> prepared_;                        // guarded by mu_
};

}  // namespace verdict::participant::sqlite

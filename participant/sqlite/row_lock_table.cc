#include "participant/sqlite/row_lock_table.h"

namespace verdict::participant::sqlite {

bool RowLockTable::ConflictLocked(const BranchKey& owner, const std::vector<std::string>& keys,
                                  BranchKey* holder) const {
  for (const std::string& k : keys) {
    auto it = owner_of_.find(k);
    if (it != owner_of_.end() && !(it->second == owner)) {
      if (holder) *holder = it->second;
      return true;
    }
  }
  return false;
}

bool RowLockTable::TryLockAll(const BranchKey& owner, const std::vector<std::string>& keys,
                              BranchKey* holder) {
  std::lock_guard<std::mutex> l(mu_);
  if (ConflictLocked(owner, keys, holder)) return false;
  auto& mine = keys_of_[owner];
  for (const std::string& k : keys) {
    owner_of_.emplace(k, owner);
    mine.insert(k);
  }
  if (mine.empty()) keys_of_.erase(owner);
  return true;
}

bool RowLockTable::LockAllUntil(const BranchKey& owner, const std::vector<std::string>& keys,
                                std::chrono::steady_clock::time_point deadline, BranchKey* holder) {
  std::unique_lock<std::mutex> l(mu_);
  while (ConflictLocked(owner, keys, holder)) {
    if (released_.wait_until(l, deadline) == std::cv_status::timeout &&
        ConflictLocked(owner, keys, holder)) {
      return false;
    }
  }
  auto& mine = keys_of_[owner];
  for (const std::string& k : keys) {
    owner_of_.emplace(k, owner);
    mine.insert(k);
  }
  if (mine.empty()) keys_of_.erase(owner);
  return true;
}

void RowLockTable::ReleaseAll(const BranchKey& owner) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = keys_of_.find(owner);
  if (it == keys_of_.end()) return;
  for (const std::string& k : it->second) owner_of_.erase(k);
  keys_of_.erase(it);
  released_.notify_all();
}

size_t RowLockTable::HeldBy(const BranchKey& owner) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = keys_of_.find(owner);
  return it == keys_of_.end() ? 0 : it->second.size();
}

}  // namespace verdict::participant::sqlite

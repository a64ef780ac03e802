#include "participant/sqlite/row_lock_table.h"

namespace verdict::participant::sqlite {

bool RowLockTable::ConflictLocked(const BranchKey& owner, const std::vector<std::string>& keys,
                                  BranchKey* holder, bool* active) const {
  bool conflict = false;
  for (const std::string& k : keys) {
    auto it = owner_of_.find(k);
    if (it == owner_of_.end() || it->second == owner) continue;
    const bool is_active = prepared_.count(it->second) == 0;
    if (!conflict || is_active) {
      if (holder) *holder = it->second;
    }
    conflict = true;
    if (is_active) {
      if (active) *active = true;
      return true;
    }
  }
  if (active) *active = false;
  return conflict;
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
                                std::chrono::steady_clock::time_point deadline, BranchKey* holder,
                                bool only_behind_prepared) {
  std::unique_lock<std::mutex> l(mu_);
  bool active = false;
  while (ConflictLocked(owner, keys, holder, &active)) {
    if (only_behind_prepared && active) return false;
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

void RowLockTable::MarkPrepared(const BranchKey& owner) {
  std::lock_guard<std::mutex> l(mu_);
  prepared_.insert(owner);
}

void RowLockTable::ReleaseAll(const BranchKey& owner) {
  std::lock_guard<std::mutex> l(mu_);
  prepared_.erase(owner);
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

// MemEnv: an in-memory Env that models a disk with a volatile cache, for storage tests and
// the deterministic simulator. Each file has durable contents (what survives a power cut)
// and unsynced appended bytes; directory operations (create, rename, remove) are durable
// only after SyncDir() of their directory. Thread-safe (one mutex).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/env.h"

namespace verdict {

class MemEnv : public Env {
 public:
  MemEnv();
  ~MemEnv() override;

  // ---- fault injection ----

  // Power cut: every file loses the bytes not yet Sync()ed, and directory changes not
  // yet SyncDir()ed are undone. Open WritableFiles become unusable (their calls fail).
  // If `torn_tail_bytes` is non-null, it is called once per file with unsynced data and
  // returns how many of those bytes (0..n) survive anyway: a torn last write.
  void PowerCut(const std::function<uint64_t(const std::string& path, uint64_t unsynced)>&
                    torn_tail_bytes = nullptr);
  // When set, Append() fails with IOError ("no space left on device") once the total
  // bytes in all files would exceed `limit`. 0 = no limit.
  void SetSpaceLimit(uint64_t limit);
  // Overwrites one byte of a file's durable and current contents (bit rot).
  Status CorruptByte(const std::string& path, uint64_t offset, char xor_mask = 0x40);
  // Total Sync() + SyncDir() calls so far (tests count group commits with this).
  uint64_t sync_count() const;

  // ---- Env ----
  Status NewAppendableFile(const std::string& path, std::unique_ptr<WritableFile>* result) override;
  Status NewWritableFile(const std::string& path, std::unique_ptr<WritableFile>* result) override;
  Status ReadFile(const std::string& path, std::string* data) override;
  bool FileExists(const std::string& path) override;
  Status GetFileSize(const std::string& path, uint64_t* size) override;
  Status GetChildren(const std::string& dir, std::vector<std::string>* names) override;
  Status CreateDirIfMissing(const std::string& dir) override;
  Status RemoveFile(const std::string& path) override;
  Status RenameFile(const std::string& from, const std::string& to) override;
  Status TruncateFile(const std::string& path, uint64_t size) override;
  Status SyncDir(const std::string& dir) override;
  Status LockFile(const std::string& path, std::unique_ptr<FileLock>* lock) override;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace verdict

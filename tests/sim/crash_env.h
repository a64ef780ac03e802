// CrashEnv: an Env over a MemEnv that can cut the power in the middle of a storage call —
// at a file Sync(), a directory SyncDir() or a RenameFile() — when `crash_now` says so.
// The data the call was about to make durable is then unsynced in the MemEnv and the
// power cut keeps only a torn prefix of it; the call fails, and every later call fails
// until Revive() (the process is gone). Not thread-safe (the simulator is single-threaded).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/mem_env.h"

namespace verdict::sim {

class CrashEnv : public Env {
 public:
  using TornTail = std::function<uint64_t(const std::string& path, uint64_t unsynced)>;

  // `crash_now(what)` is asked before each Sync/SyncDir/RenameFile; `torn` is handed to
  // MemEnv::PowerCut.
  CrashEnv(MemEnv* base, std::function<bool(const char* what)> crash_now, TornTail torn)
      : base_(base), crash_now_(std::move(crash_now)), torn_(std::move(torn)) {}
  CrashEnv(const CrashEnv&) = delete;
  CrashEnv& operator=(const CrashEnv&) = delete;

  // True once a call cut the power; cleared by Revive() (the node restarts).
  bool crashed() const { return crashed_; }
  const std::string& crash_site() const { return crash_site_; }
  void Revive() {
    crashed_ = false;
    crash_site_.clear();
  }

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
  class File;
  // Cuts the power if `crash_now` says so; returns the error the call then fails with.
  Status MaybeCrash(const char* what, const std::string& path);
  Status Dead() const;

  MemEnv* base_;
  std::function<bool(const char*)> crash_now_;
  TornTail torn_;
  bool crashed_ = false;
  std::string crash_site_;
};

}  // namespace verdict::sim

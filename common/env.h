// Env: the file-system operations Verdict's durable storage needs, behind an interface so
// tests and the simulator can inject faults (lost unsynced writes, torn writes, full disk).
// PosixEnv() is thread-safe; a file object is used by one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace verdict {

// An append-only file. Data is durable only after Sync() returns OK.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual Status Append(std::string_view data) = 0;
  // fdatasync(): everything appended so far is durable when this returns OK.
  virtual Status Sync() = 0;
  virtual Status Close() = 0;
  // Bytes appended so far (including the size of the file when it was opened).
  virtual uint64_t Size() const = 0;
};

class Env {
 public:
  virtual ~Env() = default;

  // Opens `path` for appending, creating it if absent (existing contents are kept).
  virtual Status NewAppendableFile(const std::string& path,
                                   std::unique_ptr<WritableFile>* result) = 0;
  // Creates `path`, truncating it if it exists.
  virtual Status NewWritableFile(const std::string& path,
                                 std::unique_ptr<WritableFile>* result) = 0;
  // Reads a whole file into *data.
  virtual Status ReadFile(const std::string& path, std::string* data) = 0;
  virtual bool FileExists(const std::string& path) = 0;
  virtual Status GetFileSize(const std::string& path, uint64_t* size) = 0;
  // Names (not paths) of the entries of `dir`, without "." and "..".
  virtual Status GetChildren(const std::string& dir, std::vector<std::string>* names) = 0;
  virtual Status CreateDirIfMissing(const std::string& dir) = 0;
  virtual Status RemoveFile(const std::string& path) = 0;
  // Atomically replaces `to` with `from` (rename(2)). Durable only after SyncDir().
  virtual Status RenameFile(const std::string& from, const std::string& to) = 0;
  // Sets the file's length. Durable when it returns OK (implementations sync the file).
  virtual Status TruncateFile(const std::string& path, uint64_t size) = 0;
  // fsync() of a directory: makes creations, renames and removals in it durable.
  virtual Status SyncDir(const std::string& dir) = 0;
  // Takes an exclusive advisory lock on `path` (created if absent) for the life of the
  // process or until *lock is destroyed. Fails if another process holds it.
  virtual Status LockFile(const std::string& path, std::unique_ptr<class FileLock>* lock) = 0;
};

class FileLock {
 public:
  virtual ~FileLock() = default;
};

// The process-wide POSIX Env. Never deleted.
Env* PosixEnv();

}  // namespace verdict

#include "common/mem_env.h"

#include <algorithm>
#include <set>
#include <utility>
#include <vector>

namespace verdict {
namespace {

// One file's bytes. The first `synced` bytes are on the (simulated) platter; the rest sit
// in the volatile cache. Files only grow by appends, so durable contents = a prefix.
struct Inode {
  std::string data;
  uint64_t synced = 0;
};

std::string NormalizeDir(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir.empty() ? std::string(".") : dir;
}

std::string ParentDir(const std::string& path) {
  size_t pos = path.rfind('/');
  if (pos == std::string::npos) return ".";
  if (pos == 0) return "/";
  return path.substr(0, pos);
}

std::string BaseName(const std::string& path) {
  size_t pos = path.rfind('/');
  return pos == std::string::npos ? path : path.substr(pos + 1);
}

// Simplifications of the disk model, chosen to keep it deterministic and small:
//  - truncation (TruncateFile, or NewWritableFile over an existing file) is durable at once;
//  - directories themselves, once created, survive power cuts (their entries do not);
//  - Append() past the space limit writes nothing (a real disk may write a prefix).
struct DiskState {
  mutable std::mutex mu;
  std::map<std::string, std::shared_ptr<Inode>> files;    // GUARDED_BY(mu): what a reader sees
  std::map<std::string, std::shared_ptr<Inode>> durable;  // GUARDED_BY(mu): after a power cut
  std::set<std::string> dirs;                             // GUARDED_BY(mu)
  std::map<std::string, uint64_t> locks;                  // GUARDED_BY(mu): path -> token
  uint64_t next_lock_token = 1;                           // GUARDED_BY(mu)
  uint64_t generation = 0;   // GUARDED_BY(mu): bumped by PowerCut; stale handles fail
  uint64_t space_limit = 0;  // GUARDED_BY(mu)
  uint64_t sync_count = 0;   // GUARDED_BY(mu)

  bool DirExists(const std::string& dir) const {
    return dir == "." || dir == "/" || dirs.count(dir) != 0;
  }

  Status CheckParent(const std::string& path) const {
    if (!DirExists(ParentDir(path))) {
      return Status::NotFound(path + ": No such file or directory (parent directory missing)");
    }
    return Status::OK();
  }

  uint64_t UsedBytes() const {
    uint64_t total = 0;
    for (const auto& [path, inode] : files) total += inode->data.size();
    return total;
  }
};

class MemWritableFile : public WritableFile {
 public:
  MemWritableFile(DiskState* state, std::string path, std::shared_ptr<Inode> inode,
                  uint64_t generation)
      : state_(state), path_(std::move(path)), inode_(std::move(inode)), generation_(generation) {}

  Status Append(std::string_view data) override {
    std::lock_guard<std::mutex> l(state_->mu);
    VERDICT_RETURN_IF_ERROR(CheckUsable());
    if (state_->space_limit != 0 && state_->UsedBytes() + data.size() > state_->space_limit) {
      return Status::IOError(path_ + ": write: No space left on device");
    }
    inode_->data.append(data.data(), data.size());
    return Status::OK();
  }

  Status Sync() override {
    std::lock_guard<std::mutex> l(state_->mu);
    VERDICT_RETURN_IF_ERROR(CheckUsable());
    inode_->synced = inode_->data.size();
    ++state_->sync_count;
    return Status::OK();
  }

  Status Close() override {
    std::lock_guard<std::mutex> l(state_->mu);
    Status s = CheckUsable();
    closed_ = true;
    return s;
  }

  uint64_t Size() const override {
    std::lock_guard<std::mutex> l(state_->mu);
    return inode_->data.size();
  }

 private:
  Status CheckUsable() const {
    if (closed_) return Status::IOError(path_ + ": file is closed");
    if (generation_ != state_->generation) {
      return Status::IOError(path_ + ": file handle lost in a power cut");
    }
    return Status::OK();
  }

  DiskState* const state_;
  const std::string path_;
  const std::shared_ptr<Inode> inode_;
  const uint64_t generation_;
  bool closed_ = false;  // GUARDED_BY(state_->mu)
};

class MemFileLock : public FileLock {
 public:
  MemFileLock(DiskState* state, std::string path, uint64_t token)
      : state_(state), path_(std::move(path)), token_(token) {}
  ~MemFileLock() override {
    std::lock_guard<std::mutex> l(state_->mu);
    auto it = state_->locks.find(path_);
    // A power cut releases every lock; a later holder's lock must not be dropped here.
    if (it != state_->locks.end() && it->second == token_) state_->locks.erase(it);
  }

 private:
  DiskState* const state_;
  const std::string path_;
  const uint64_t token_;
};

}  // namespace

struct MemEnv::State : DiskState {};

MemEnv::MemEnv() : state_(std::make_unique<State>()) {}
MemEnv::~MemEnv() = default;

void MemEnv::PowerCut(
    const std::function<uint64_t(const std::string& path, uint64_t unsynced)>& torn_tail_bytes) {
  std::lock_guard<std::mutex> l(state_->mu);
  // Only files whose directory entry is durable survive; each loses its unsynced bytes
  // except for the torn prefix the callback grants. (The callback runs under the lock and
  // must not call back into this MemEnv.)
  std::set<Inode*> done;
  for (const auto& [path, inode] : state_->durable) {
    if (!done.insert(inode.get()).second) continue;
    uint64_t unsynced = inode->data.size() - inode->synced;
    uint64_t keep = 0;
    if (unsynced > 0 && torn_tail_bytes) keep = std::min(unsynced, torn_tail_bytes(path, unsynced));
    inode->data.resize(inode->synced + keep);
    inode->synced = inode->data.size();
  }
  state_->files = state_->durable;
  state_->locks.clear();
  ++state_->generation;
}

void MemEnv::SetSpaceLimit(uint64_t limit) {
  std::lock_guard<std::mutex> l(state_->mu);
  state_->space_limit = limit;
}

Status MemEnv::CorruptByte(const std::string& path, uint64_t offset, char xor_mask) {
  std::lock_guard<std::mutex> l(state_->mu);
  auto it = state_->files.find(path);
  if (it == state_->files.end()) return Status::NotFound(path + ": No such file");
  std::string& data = it->second->data;
  if (offset >= data.size()) {
    return Status::InvalidArgument(path + ": offset " + std::to_string(offset) +
                                   " past end of file (" + std::to_string(data.size()) + ")");
  }
  data[offset] = static_cast<char>(data[offset] ^ xor_mask);
  return Status::OK();
}

uint64_t MemEnv::sync_count() const {
  std::lock_guard<std::mutex> l(state_->mu);
  return state_->sync_count;
}

Status MemEnv::NewAppendableFile(const std::string& path, std::unique_ptr<WritableFile>* result) {
  std::lock_guard<std::mutex> l(state_->mu);
  VERDICT_RETURN_IF_ERROR(state_->CheckParent(path));
  auto& inode = state_->files[path];
  if (!inode) inode = std::make_shared<Inode>();
  *result = std::make_unique<MemWritableFile>(state_.get(), path, inode, state_->generation);
  return Status::OK();
}

Status MemEnv::NewWritableFile(const std::string& path, std::unique_ptr<WritableFile>* result) {
  std::lock_guard<std::mutex> l(state_->mu);
  VERDICT_RETURN_IF_ERROR(state_->CheckParent(path));
  auto& inode = state_->files[path];
  if (!inode) inode = std::make_shared<Inode>();
  inode->data.clear();
  inode->synced = 0;
  *result = std::make_unique<MemWritableFile>(state_.get(), path, inode, state_->generation);
  return Status::OK();
}

Status MemEnv::ReadFile(const std::string& path, std::string* data) {
  std::lock_guard<std::mutex> l(state_->mu);
  auto it = state_->files.find(path);
  if (it == state_->files.end()) return Status::NotFound(path + ": No such file or directory");
  *data = it->second->data;
  return Status::OK();
}

bool MemEnv::FileExists(const std::string& path) {
  std::lock_guard<std::mutex> l(state_->mu);
  return state_->files.count(path) != 0 || state_->dirs.count(NormalizeDir(path)) != 0;
}

Status MemEnv::GetFileSize(const std::string& path, uint64_t* size) {
  std::lock_guard<std::mutex> l(state_->mu);
  auto it = state_->files.find(path);
  if (it == state_->files.end()) return Status::NotFound(path + ": No such file or directory");
  *size = it->second->data.size();
  return Status::OK();
}

Status MemEnv::GetChildren(const std::string& dir, std::vector<std::string>* names) {
  std::lock_guard<std::mutex> l(state_->mu);
  const std::string d = NormalizeDir(dir);
  if (!state_->DirExists(d)) return Status::NotFound(dir + ": No such file or directory");
  names->clear();
  for (const auto& [path, inode] : state_->files) {
    if (ParentDir(path) == d) names->push_back(BaseName(path));
  }
  for (const auto& sub : state_->dirs) {
    if (sub != d && ParentDir(sub) == d) names->push_back(BaseName(sub));
  }
  return Status::OK();
}

Status MemEnv::CreateDirIfMissing(const std::string& dir) {
  std::lock_guard<std::mutex> l(state_->mu);
  const std::string d = NormalizeDir(dir);
  if (state_->files.count(d) != 0) return Status::IOError(dir + ": File exists (not a directory)");
  state_->dirs.insert(d);
  return Status::OK();
}

Status MemEnv::RemoveFile(const std::string& path) {
  std::lock_guard<std::mutex> l(state_->mu);
  if (state_->files.erase(path) == 0) {
    return Status::NotFound(path + ": No such file or directory");
  }
  return Status::OK();
}

Status MemEnv::RenameFile(const std::string& from, const std::string& to) {
  std::lock_guard<std::mutex> l(state_->mu);
  auto it = state_->files.find(from);
  if (it == state_->files.end()) return Status::NotFound(from + ": No such file or directory");
  VERDICT_RETURN_IF_ERROR(state_->CheckParent(to));
  std::shared_ptr<Inode> inode = it->second;
  state_->files.erase(it);
  state_->files[to] = std::move(inode);
  return Status::OK();
}

Status MemEnv::TruncateFile(const std::string& path, uint64_t size) {
  std::lock_guard<std::mutex> l(state_->mu);
  auto it = state_->files.find(path);
  if (it == state_->files.end()) return Status::NotFound(path + ": No such file or directory");
  // Like PosixEnv, the new length and contents are durable when this returns.
  it->second->data.resize(size, '\0');
  it->second->synced = size;
  return Status::OK();
}

Status MemEnv::SyncDir(const std::string& dir) {
  std::lock_guard<std::mutex> l(state_->mu);
  const std::string d = NormalizeDir(dir);
  if (!state_->DirExists(d)) return Status::NotFound(dir + ": No such file or directory");
  for (auto it = state_->durable.begin(); it != state_->durable.end();) {
    if (ParentDir(it->first) == d && state_->files.count(it->first) == 0) {
      it = state_->durable.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& [path, inode] : state_->files) {
    if (ParentDir(path) == d) state_->durable[path] = inode;
  }
  ++state_->sync_count;
  return Status::OK();
}

Status MemEnv::LockFile(const std::string& path, std::unique_ptr<FileLock>* lock) {
  std::lock_guard<std::mutex> l(state_->mu);
  if (state_->locks.count(path) != 0) {
    return Status::IOError(path +
                           ": lock held by another process (Resource temporarily "
                           "unavailable)");
  }
  VERDICT_RETURN_IF_ERROR(state_->CheckParent(path));
  auto& inode = state_->files[path];
  if (!inode) inode = std::make_shared<Inode>();
  uint64_t token = state_->next_lock_token++;
  state_->locks[path] = token;
  *lock = std::make_unique<MemFileLock>(state_.get(), path, token);
  return Status::OK();
}

}  // namespace verdict

#include "tests/sim/crash_env.h"

namespace verdict::sim {

class CrashEnv::File : public WritableFile {
 public:
  File(CrashEnv* env, std::string path, std::unique_ptr<WritableFile> base)
      : env_(env), path_(std::move(path)), base_(std::move(base)) {}

  Status Append(std::string_view data) override {
    if (env_->crashed_) return env_->Dead();
    return base_->Append(data);
  }
  Status Sync() override {
    if (env_->crashed_) return env_->Dead();
    VERDICT_RETURN_IF_ERROR(env_->MaybeCrash("sync", path_));
    return base_->Sync();
  }
  Status Close() override {
    if (env_->crashed_) return env_->Dead();
    return base_->Close();
  }
  uint64_t Size() const override { return base_->Size(); }

 private:
  CrashEnv* env_;
  std::string path_;
  std::unique_ptr<WritableFile> base_;
};

Status CrashEnv::Dead() const { return Status::IOError("simulated power cut"); }

Status CrashEnv::MaybeCrash(const char* what, const std::string& path) {
  if (crashed_) return Dead();
  if (!crash_now_ || !crash_now_(what)) return Status::OK();
  base_->PowerCut(torn_);
  crashed_ = true;
  crash_site_ = std::string(what) + " " + path;
  return Dead();
}

Status CrashEnv::NewAppendableFile(const std::string& path, std::unique_ptr<WritableFile>* result) {
  if (crashed_) return Dead();
  std::unique_ptr<WritableFile> f;
  VERDICT_RETURN_IF_ERROR(base_->NewAppendableFile(path, &f));
  *result = std::make_unique<File>(this, path, std::move(f));
  return Status::OK();
}

Status CrashEnv::NewWritableFile(const std::string& path, std::unique_ptr<WritableFile>* result) {
  if (crashed_) return Dead();
  std::unique_ptr<WritableFile> f;
  VERDICT_RETURN_IF_ERROR(base_->NewWritableFile(path, &f));
  *result = std::make_unique<File>(this, path, std::move(f));
  return Status::OK();
}

Status CrashEnv::ReadFile(const std::string& path, std::string* data) {
  if (crashed_) return Dead();
  return base_->ReadFile(path, data);
}

bool CrashEnv::FileExists(const std::string& path) { return !crashed_ && base_->FileExists(path); }

Status CrashEnv::GetFileSize(const std::string& path, uint64_t* size) {
  if (crashed_) return Dead();
  return base_->GetFileSize(path, size);
}

Status CrashEnv::GetChildren(const std::string& dir, std::vector<std::string>* names) {
  if (crashed_) return Dead();
  return base_->GetChildren(dir, names);
}

Status CrashEnv::CreateDirIfMissing(const std::string& dir) {
  if (crashed_) return Dead();
  return base_->CreateDirIfMissing(dir);
}

Status CrashEnv::RemoveFile(const std::string& path) {
  if (crashed_) return Dead();
  return base_->RemoveFile(path);
}

Status CrashEnv::RenameFile(const std::string& from, const std::string& to) {
  VERDICT_RETURN_IF_ERROR(MaybeCrash("rename", from));
  return base_->RenameFile(from, to);
}

Status CrashEnv::TruncateFile(const std::string& path, uint64_t size) {
  if (crashed_) return Dead();
  return base_->TruncateFile(path, size);
}

Status CrashEnv::SyncDir(const std::string& dir) {
  VERDICT_RETURN_IF_ERROR(MaybeCrash("syncdir", dir));
  return base_->SyncDir(dir);
}

Status CrashEnv::LockFile(const std::string& path, std::unique_ptr<FileLock>* lock) {
  if (crashed_) return Dead();
  return base_->LockFile(path, lock);
}

}  // namespace verdict::sim

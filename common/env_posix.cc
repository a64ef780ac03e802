// PosixEnv: the real file system. Every error names the operation, the path and strerror.
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/env.h"

namespace verdict {
namespace {

// strerror_r comes in a GNU flavour (returns char*) and an XSI one (returns int).
[[maybe_unused]] const char* StrErrorResult(const char* result, const char* /*buf*/) {
  return result;
}
[[maybe_unused]] const char* StrErrorResult(int result, const char* buf) {
  return result == 0 ? buf : "unknown error";
}

std::string ErrnoText(int err) {
  char buf[256];
  buf[0] = '\0';
  return StrErrorResult(strerror_r(err, buf, sizeof(buf)), buf);
}

// "<op> <path>: <strerror>"; ENOENT maps to NotFound, everything else to IOError.
Status PosixError(const char* op, const std::string& path, int err) {
  std::string msg = std::string(op) + " " + path + ": " + ErrnoText(err);
  if (err == ENOENT) return Status::NotFound(msg);
  return Status::IOError(msg);
}

int OpenRetrying(const char* path, int flags, mode_t mode = 0644) {
  int fd;
  do {
    fd = ::open(path, flags, mode);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

class PosixWritableFile : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd, uint64_t size)
      : path_(std::move(path)), fd_(fd), size_(size) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }

  Status Append(std::string_view data) override {
    if (fd_ < 0) return Status::IOError("write " + path_ + ": file is closed");
    const char* p = data.data();
    size_t left = data.size();
    while (left > 0) {
      ssize_t n = ::write(fd_, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        return PosixError("write", path_, errno);
      }
      p += n;
      left -= static_cast<size_t>(n);
      size_ += static_cast<uint64_t>(n);
    }
    return Status::OK();
  }

  Status Sync() override {
    if (fd_ < 0) return Status::IOError("fdatasync " + path_ + ": file is closed");
    // No retry on failure: after a failed fdatasync the kernel may have dropped the dirty
    // pages, and a second call could report success for data that never reached the disk.
    if (::fdatasync(fd_) != 0) return PosixError("fdatasync", path_, errno);
    return Status::OK();
  }

  Status Close() override {
    if (fd_ < 0) return Status::OK();
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) return PosixError("close", path_, errno);
    return Status::OK();
  }

  uint64_t Size() const override { return size_; }

 private:
  const std::string path_;
  int fd_;
  uint64_t size_;
};

class PosixFileLock : public FileLock {
 public:
  explicit PosixFileLock(int fd) : fd_(fd) {}
  ~PosixFileLock() override {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
  }

 private:
  const int fd_;
};

class PosixFileSystemEnv : public Env {
 public:
  Status NewAppendableFile(const std::string& path,
                           std::unique_ptr<WritableFile>* result) override {
    return OpenWritable(path, O_APPEND, result);
  }

  Status NewWritableFile(const std::string& path, std::unique_ptr<WritableFile>* result) override {
    return OpenWritable(path, O_TRUNC, result);
  }

  Status ReadFile(const std::string& path, std::string* data) override {
    int fd = OpenRetrying(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return PosixError("open", path, errno);
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      return PosixError("fstat", path, err);
    }
    data->clear();
    data->resize(static_cast<size_t>(st.st_size));
    size_t done = 0;
    for (;;) {
      if (done == data->size()) data->resize(done + 4096 + done / 2);  // file grew
      ssize_t n = ::read(fd, data->data() + done, data->size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        int err = errno;
        ::close(fd);
        return PosixError("read", path, err);
      }
      if (n == 0) break;
      done += static_cast<size_t>(n);
    }
    data->resize(done);
    ::close(fd);
    return Status::OK();
  }

  bool FileExists(const std::string& path) override { return ::access(path.c_str(), F_OK) == 0; }

  Status GetFileSize(const std::string& path, uint64_t* size) override {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return PosixError("stat", path, errno);
    *size = static_cast<uint64_t>(st.st_size);
    return Status::OK();
  }

  Status GetChildren(const std::string& dir, std::vector<std::string>* names) override {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return PosixError("opendir", dir, errno);
    names->clear();
    errno = 0;
    while (struct dirent* e = ::readdir(d)) {
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
        names->emplace_back(e->d_name);
      }
    }
    int err = errno;
    ::closedir(d);
    if (err != 0) return PosixError("readdir", dir, err);
    return Status::OK();
  }

  Status CreateDirIfMissing(const std::string& dir) override {
    if (::mkdir(dir.c_str(), 0755) == 0) return Status::OK();
    int err = errno;
    struct stat st;
    if (err == EEXIST && ::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      return Status::OK();
    }
    if (err == EEXIST) return Status::IOError("mkdir " + dir + ": exists and is not a directory");
    return PosixError("mkdir", dir, err);
  }

  Status RemoveFile(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return PosixError("unlink", path, errno);
    return Status::OK();
  }

  Status RenameFile(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) {
      return PosixError("rename", from + " -> " + to, errno);
    }
    return Status::OK();
  }

  // Durable when it returns: the file is fdatasync'ed after ftruncate.
  Status TruncateFile(const std::string& path, uint64_t size) override {
    int fd = OpenRetrying(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return PosixError("open", path, errno);
    Status s;
    if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
      s = PosixError("ftruncate", path, errno);
    } else if (::fdatasync(fd) != 0) {
      s = PosixError("fdatasync", path, errno);
    }
    ::close(fd);
    return s;
  }

  Status SyncDir(const std::string& dir) override {
    int fd = OpenRetrying(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return PosixError("open", dir, errno);
    Status s;
    if (::fsync(fd) != 0) s = PosixError("fsync", dir, errno);
    ::close(fd);
    return s;
  }

  // flock() locks belong to the open file description, so a second LockFile() of the same
  // path fails even inside the same process, and the lock dies with the process.
  Status LockFile(const std::string& path, std::unique_ptr<FileLock>* lock) override {
    int fd = OpenRetrying(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC);
    if (fd < 0) return PosixError("open", path, errno);
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int err = errno;
      ::close(fd);
      if (err == EWOULDBLOCK) {
        return Status::IOError("lock " + path + ": held by another process or handle (" +
                               ErrnoText(err) + ")");
      }
      return PosixError("flock", path, err);
    }
    *lock = std::make_unique<PosixFileLock>(fd);
    return Status::OK();
  }

 private:
  Status OpenWritable(const std::string& path, int extra_flags,
                      std::unique_ptr<WritableFile>* result) {
    int fd = OpenRetrying(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | extra_flags);
    if (fd < 0) return PosixError("open", path, errno);
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      return PosixError("fstat", path, err);
    }
    *result = std::make_unique<PosixWritableFile>(path, fd, static_cast<uint64_t>(st.st_size));
    return Status::OK();
  }
};

}  // namespace

Env* PosixEnv() {
  static Env* const env = new PosixFileSystemEnv;
  return env;
}

}  // namespace verdict

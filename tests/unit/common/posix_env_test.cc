#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/env.h"

namespace verdict {
namespace {

class PosixEnvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/verdict-posix-env-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::string cmd = "rm -rf '" + dir_ + "'";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  void Write(const std::string& name, const std::string& data) {
    std::unique_ptr<WritableFile> f;
    ASSERT_TRUE(env_->NewAppendableFile(Path(name), &f).ok());
    ASSERT_TRUE(f->Append(data).ok());
    ASSERT_TRUE(f->Sync().ok());
    ASSERT_TRUE(f->Close().ok());
  }
  std::string Read(const std::string& name) {
    std::string data;
    Status s = env_->ReadFile(Path(name), &data);
    return s.ok() ? data : "<" + s.ToString() + ">";
  }

  Env* env_ = PosixEnv();
  std::string dir_;
};

TEST_F(PosixEnvTest, Append_ReadBackAcrossReopen) {
  Write("a", "hello ");
  Write("a", "world");
  EXPECT_EQ(Read("a"), "hello world");
  std::unique_ptr<WritableFile> f;
  ASSERT_TRUE(env_->NewAppendableFile(Path("a"), &f).ok());
  EXPECT_EQ(f->Size(), 11u);
  ASSERT_TRUE(env_->NewWritableFile(Path("a"), &f).ok());
  EXPECT_EQ(f->Size(), 0u);
  EXPECT_EQ(Read("a"), "");
}

TEST_F(PosixEnvTest, ReadFile_MissingIsNotFoundNamingPath) {
  std::string data;
  Status s = env_->ReadFile(Path("missing"), &data);
  EXPECT_TRUE(s.IsNotFound()) << s.ToString();
  EXPECT_NE(s.message().find(Path("missing")), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("No such file or directory"), std::string::npos) << s.ToString();
}

TEST_F(PosixEnvTest, Append_FullDiskIsIOErrorNoSpace) {
  std::unique_ptr<WritableFile> f;
  ASSERT_TRUE(env_->NewAppendableFile("/dev/full", &f).ok());
  Status s = f->Append("x");
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  EXPECT_NE(s.message().find("No space left on device"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("/dev/full"), std::string::npos) << s.ToString();
}

TEST_F(PosixEnvTest, DirectoryOperations_ListRenameRemoveTruncateSync) {
  Write("a", "abcdef");
  ASSERT_TRUE(env_->CreateDirIfMissing(Path("sub")).ok());
  ASSERT_TRUE(env_->CreateDirIfMissing(Path("sub")).ok());  // idempotent
  EXPECT_TRUE(env_->CreateDirIfMissing(Path("a")).IsIOError());
  ASSERT_TRUE(env_->RenameFile(Path("a"), Path("b")).ok());
  ASSERT_TRUE(env_->SyncDir(dir_).ok());
  std::vector<std::string> names;
  ASSERT_TRUE(env_->GetChildren(dir_, &names).ok());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"b", "sub"}));
  ASSERT_TRUE(env_->TruncateFile(Path("b"), 2).ok());
  EXPECT_EQ(Read("b"), "ab");
  uint64_t size = 0;
  ASSERT_TRUE(env_->GetFileSize(Path("b"), &size).ok());
  EXPECT_EQ(size, 2u);
  EXPECT_TRUE(env_->FileExists(Path("b")));
  ASSERT_TRUE(env_->RemoveFile(Path("b")).ok());
  EXPECT_FALSE(env_->FileExists(Path("b")));
  EXPECT_TRUE(env_->RemoveFile(Path("b")).IsNotFound());
  EXPECT_TRUE(env_->RenameFile(Path("b"), Path("c")).IsNotFound());
  EXPECT_FALSE(env_->SyncDir(Path("nodir")).ok());
}

TEST_F(PosixEnvTest, LockFile_SecondLockFailsUntilReleased) {
  std::unique_ptr<FileLock> first, second;
  ASSERT_TRUE(env_->LockFile(Path("LOCK"), &first).ok());
  Status s = env_->LockFile(Path("LOCK"), &second);
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  EXPECT_NE(s.message().find(Path("LOCK")), std::string::npos) << s.ToString();
  first.reset();
  EXPECT_TRUE(env_->LockFile(Path("LOCK"), &second).ok());
}

}  // namespace
}  // namespace verdict

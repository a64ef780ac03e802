#include "common/mem_env.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace verdict {
namespace {

class MemEnvTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(env_.CreateDirIfMissing("/d").ok()); }

  // Appends `data` to `path` (creating it) and syncs it if `sync`.
  void Write(const std::string& path, const std::string& data, bool sync) {
    std::unique_ptr<WritableFile> f;
    ASSERT_TRUE(env_.NewAppendableFile(path, &f).ok());
    ASSERT_TRUE(f->Append(data).ok());
    if (sync) {
      ASSERT_TRUE(f->Sync().ok());
    }
  }
  std::string Read(const std::string& path) {
    std::string data;
    Status s = env_.ReadFile(path, &data);
    return s.ok() ? data : "<" + s.ToString() + ">";
  }
  std::vector<std::string> Children() {
    std::vector<std::string> names;
    EXPECT_TRUE(env_.GetChildren("/d", &names).ok());
    std::sort(names.begin(), names.end());
    return names;
  }

  MemEnv env_;
};

TEST_F(MemEnvTest, Append_ReadBackAndSize) {
  std::unique_ptr<WritableFile> f;
  ASSERT_TRUE(env_.NewAppendableFile("/d/a", &f).ok());
  ASSERT_TRUE(f->Append("hello ").ok());
  ASSERT_TRUE(f->Append("world").ok());
  EXPECT_EQ(f->Size(), 11u);
  EXPECT_EQ(Read("/d/a"), "hello world");
  uint64_t size = 0;
  ASSERT_TRUE(env_.GetFileSize("/d/a", &size).ok());
  EXPECT_EQ(size, 11u);
  // Reopening for append keeps contents and reports the existing size.
  ASSERT_TRUE(env_.NewAppendableFile("/d/a", &f).ok());
  EXPECT_EQ(f->Size(), 11u);
  // NewWritableFile truncates.
  ASSERT_TRUE(env_.NewWritableFile("/d/a", &f).ok());
  EXPECT_EQ(Read("/d/a"), "");
}

TEST_F(MemEnvTest, NewAppendableFile_MissingParentDirFails) {
  std::unique_ptr<WritableFile> f;
  Status s = env_.NewAppendableFile("/nope/a", &f);
  EXPECT_TRUE(s.IsNotFound()) << s.ToString();
  EXPECT_NE(s.message().find("/nope/a"), std::string::npos);
}

TEST_F(MemEnvTest, PowerCut_DropsUnsyncedBytesKeepsSynced) {
  Write("/d/a", "synced", true);
  ASSERT_TRUE(env_.SyncDir("/d").ok());
  Write("/d/a", "-unsynced", false);
  EXPECT_EQ(Read("/d/a"), "synced-unsynced");
  env_.PowerCut();
  EXPECT_EQ(Read("/d/a"), "synced");
}

TEST_F(MemEnvTest, PowerCut_TornTailKeepsGrantedPrefix) {
  Write("/d/a", "abc", true);
  ASSERT_TRUE(env_.SyncDir("/d").ok());
  Write("/d/a", "defgh", false);
  std::vector<std::pair<std::string, uint64_t>> calls;
  env_.PowerCut([&](const std::string& path, uint64_t unsynced) {
    calls.emplace_back(path, unsynced);
    return 2;
  });
  EXPECT_EQ(Read("/d/a"), "abcde");
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0], std::make_pair(std::string("/d/a"), uint64_t{5}));
  // What survived is now durable.
  env_.PowerCut();
  EXPECT_EQ(Read("/d/a"), "abcde");
}

TEST_F(MemEnvTest, PowerCut_UndoesCreateUnlessDirSynced) {
  Write("/d/kept", "x", true);
  ASSERT_TRUE(env_.SyncDir("/d").ok());
  Write("/d/lost", "y", true);  // data synced, directory entry not
  env_.PowerCut();
  EXPECT_EQ(Children(), std::vector<std::string>{"kept"});
}

TEST_F(MemEnvTest, PowerCut_UndoesRenameAndRemoveUnlessDirSynced) {
  Write("/d/a", "A", true);
  Write("/d/b", "B", true);
  ASSERT_TRUE(env_.SyncDir("/d").ok());
  ASSERT_TRUE(env_.RenameFile("/d/a", "/d/c").ok());
  ASSERT_TRUE(env_.RemoveFile("/d/b").ok());
  EXPECT_EQ(Children(), std::vector<std::string>{"c"});
  env_.PowerCut();
  EXPECT_EQ(Children(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(Read("/d/a"), "A");

  ASSERT_TRUE(env_.RenameFile("/d/a", "/d/c").ok());
  ASSERT_TRUE(env_.RemoveFile("/d/b").ok());
  ASSERT_TRUE(env_.SyncDir("/d").ok());
  env_.PowerCut();
  EXPECT_EQ(Children(), std::vector<std::string>{"c"});
  EXPECT_EQ(Read("/d/c"), "A");
}

TEST_F(MemEnvTest, PowerCut_RenameOverExistingIsUndone) {
  Write("/d/snap", "old", true);
  ASSERT_TRUE(env_.SyncDir("/d").ok());
  Write("/d/snap.tmp", "new", true);
  ASSERT_TRUE(env_.RenameFile("/d/snap.tmp", "/d/snap").ok());
  EXPECT_EQ(Read("/d/snap"), "new");
  env_.PowerCut();
  EXPECT_EQ(Read("/d/snap"), "old");
}

TEST_F(MemEnvTest, PowerCut_OpenFilesBecomeUnusable) {
  std::unique_ptr<WritableFile> f;
  ASSERT_TRUE(env_.NewAppendableFile("/d/a", &f).ok());
  ASSERT_TRUE(env_.SyncDir("/d").ok());
  env_.PowerCut();
  EXPECT_TRUE(f->Append("x").IsIOError());
  EXPECT_TRUE(f->Sync().IsIOError());
  EXPECT_EQ(Read("/d/a"), "");
}

TEST_F(MemEnvTest, SetSpaceLimit_AppendFailsWithNoSpaceAndWritesNothing) {
  env_.SetSpaceLimit(10);
  std::unique_ptr<WritableFile> f;
  ASSERT_TRUE(env_.NewAppendableFile("/d/a", &f).ok());
  ASSERT_TRUE(f->Append("12345678").ok());
  Status s = f->Append("abc");
  EXPECT_TRUE(s.IsIOError());
  EXPECT_NE(s.message().find("No space left on device"), std::string::npos) << s.ToString();
  EXPECT_EQ(Read("/d/a"), "12345678");
  EXPECT_TRUE(f->Append("ab").ok());  // exactly at the limit is fine
  env_.SetSpaceLimit(0);
  EXPECT_TRUE(f->Append("more").ok());
}

TEST_F(MemEnvTest, CorruptByte_FlipsCurrentAndDurableContents) {
  Write("/d/a", "abc", true);
  ASSERT_TRUE(env_.SyncDir("/d").ok());
  ASSERT_TRUE(env_.CorruptByte("/d/a", 1).ok());
  EXPECT_EQ(Read("/d/a"), std::string("a") + static_cast<char>('b' ^ 0x40) + "c");
  env_.PowerCut();
  EXPECT_EQ(Read("/d/a")[1], static_cast<char>('b' ^ 0x40));
  EXPECT_FALSE(env_.CorruptByte("/d/a", 3).ok());
  EXPECT_TRUE(env_.CorruptByte("/d/none", 0).IsNotFound());
}

TEST_F(MemEnvTest, SyncCount_CountsFileAndDirSyncs) {
  uint64_t before = env_.sync_count();
  Write("/d/a", "x", true);
  ASSERT_TRUE(env_.SyncDir("/d").ok());
  EXPECT_EQ(env_.sync_count(), before + 2);
}

TEST_F(MemEnvTest, TruncateFile_IsDurable) {
  Write("/d/a", "abcdef", false);
  ASSERT_TRUE(env_.SyncDir("/d").ok());
  ASSERT_TRUE(env_.TruncateFile("/d/a", 3).ok());
  env_.PowerCut();
  EXPECT_EQ(Read("/d/a"), "abc");
}

TEST_F(MemEnvTest, LockFile_SecondLockFailsUntilReleased) {
  std::unique_ptr<FileLock> first, second;
  ASSERT_TRUE(env_.LockFile("/d/LOCK", &first).ok());
  Status s = env_.LockFile("/d/LOCK", &second);
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  first.reset();
  EXPECT_TRUE(env_.LockFile("/d/LOCK", &second).ok());
}

TEST_F(MemEnvTest, LockFile_PowerCutReleasesLocksAndOldHolderDoesNotStealNewOne) {
  std::unique_ptr<FileLock> old_holder, new_holder, third;
  ASSERT_TRUE(env_.LockFile("/d/LOCK", &old_holder).ok());
  env_.PowerCut();
  ASSERT_TRUE(env_.LockFile("/d/LOCK", &new_holder).ok());
  old_holder.reset();  // the crashed process's handle goes away late
  EXPECT_TRUE(env_.LockFile("/d/LOCK", &third).IsIOError());
}

TEST_F(MemEnvTest, GetChildren_ListsFilesAndSubdirsOfOneDir) {
  Write("/d/a", "", false);
  ASSERT_TRUE(env_.CreateDirIfMissing("/d/sub").ok());
  Write("/d/sub/b", "", false);
  EXPECT_EQ(Children(), (std::vector<std::string>{"a", "sub"}));
  std::vector<std::string> names;
  EXPECT_TRUE(env_.GetChildren("/missing", &names).IsNotFound());
  EXPECT_TRUE(env_.FileExists("/d/a"));
  EXPECT_FALSE(env_.FileExists("/d/b"));
}

}  // namespace
}  // namespace verdict

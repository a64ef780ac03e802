// FileBranchJournal: round trip, torn tail, corruption, group commit, rewrite.
#include "participant/branch_journal.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>

#include "common/coop.h"
#include "common/env.h"
#include "common/mem_env.h"
#include "tests/unit/participant/test_dirs.h"

namespace verdict::participant {
namespace {

// Counts Sync() calls and makes each one slow, so that concurrent appends pile up.
class SlowSyncEnv : public Env {
 public:
  std::atomic<int> syncs{0};
  std::atomic<int> syncs_on_test_thread{0};
  std::thread::id test_thread = std::this_thread::get_id();

  class File : public WritableFile {
   public:
    File(std::unique_ptr<WritableFile> f, SlowSyncEnv* env) : f_(std::move(f)), env_(env) {}
    Status Append(std::string_view d) override { return f_->Append(d); }
    Status Sync() override {
      env_->syncs++;
      if (std::this_thread::get_id() == env_->test_thread) env_->syncs_on_test_thread++;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      return f_->Sync();
    }
    Status Close() override { return f_->Close(); }
    uint64_t Size() const override { return f_->Size(); }

   private:
    std::unique_ptr<WritableFile> f_;
    SlowSyncEnv* env_;
  };

  Status NewAppendableFile(const std::string& p, std::unique_ptr<WritableFile>* r) override {
    std::unique_ptr<WritableFile> f;
    Status s = base_->NewAppendableFile(p, &f);
    if (s.ok()) *r = std::make_unique<File>(std::move(f), this);
    return s;
  }
  Status NewWritableFile(const std::string& p, std::unique_ptr<WritableFile>* r) override {
    return base_->NewWritableFile(p, r);
  }
  Status ReadFile(const std::string& p, std::string* d) override { return base_->ReadFile(p, d); }
  bool FileExists(const std::string& p) override { return base_->FileExists(p); }
  Status GetFileSize(const std::string& p, uint64_t* s) override {
    return base_->GetFileSize(p, s);
  }
  Status GetChildren(const std::string& d, std::vector<std::string>* n) override {
    return base_->GetChildren(d, n);
  }
  Status CreateDirIfMissing(const std::string& d) override { return base_->CreateDirIfMissing(d); }
  Status RemoveFile(const std::string& p) override { return base_->RemoveFile(p); }
  Status RenameFile(const std::string& a, const std::string& b) override {
    return base_->RenameFile(a, b);
  }
  Status TruncateFile(const std::string& p, uint64_t s) override {
    return base_->TruncateFile(p, s);
  }
  Status SyncDir(const std::string& d) override { return base_->SyncDir(d); }
  Status LockFile(const std::string& p, std::unique_ptr<FileLock>* l) override {
    return base_->LockFile(p, l);
  }

 private:
  Env* base_ = PosixEnv();
};

class BranchJournalTest : public ::testing::Test {
 protected:
  std::unique_ptr<BranchJournal> Open(Env* env = PosixEnv()) {
    std::unique_ptr<BranchJournal> j;
    EXPECT_TRUE(OpenFileBranchJournal(env, dir_.path(), true, &j).ok());
    return j;
  }
  static JournalRecord Prepared(const std::string& gtid, const std::string& payload) {
    JournalRecord r;
    r.key = {gtid, "b1"};
    r.state = BranchState::kPrepared;
    r.protocol = Protocol::k3PC;
    r.participants = {{"p1", "127.0.0.1:1", "b1"}, {"p2", "127.0.0.1:2", "b2"}};
    r.rm_payload = payload;
    r.voted_unix_ms = 1234;
    return r;
  }
  std::vector<JournalRecord> ReplayAll(BranchJournal* j, Status* s = nullptr) {
    std::vector<JournalRecord> out;
    Status st = j->Replay([&](const JournalRecord& r) { out.push_back(r); });
    if (s)
      *s = st;
    else
      EXPECT_TRUE(st.ok()) << st.ToString();
    return out;
  }
  std::string JournalPath() { return dir_.File("branches.journal"); }
  void CorruptByte(size_t offset) {
    std::fstream f(JournalPath(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(offset);
    char c;
    f.read(&c, 1);
    c ^= 0x40;
    f.seekp(offset);
    f.write(&c, 1);
  }
  testing::TempDir dir_;
};

TEST_F(BranchJournalTest, Append_ReplayRoundTrip) {
  {
    auto j = Open();
    ReplayAll(j.get());
    ASSERT_TRUE(j->Append(Prepared("g1", std::string("\0changeset\xff", 11))).ok());
    JournalRecord fenced;
    fenced.key = {"g1", "b1"};
    fenced.state = BranchState::kFenced;
    fenced.protocol = Protocol::k3PC;
    ASSERT_TRUE(j->Append(fenced).ok());
  }
  auto j = Open();
  auto records = ReplayAll(j.get());
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].key.gtid, "g1");
  EXPECT_EQ(records[0].state, BranchState::kPrepared);
  EXPECT_EQ(records[0].protocol, Protocol::k3PC);
  EXPECT_EQ(records[0].rm_payload, std::string("\0changeset\xff", 11));
  ASSERT_EQ(records[0].participants.size(), 2u);
  EXPECT_EQ(records[0].participants[1], (PeerRef{"p2", "127.0.0.1:2", "b2"}));
  EXPECT_EQ(records[0].voted_unix_ms, 1234);
  EXPECT_EQ(records[1].state, BranchState::kFenced);
}

TEST_F(BranchJournalTest, Replay_TruncatesTornTail) {
  {
    auto j = Open();
    ReplayAll(j.get());
    ASSERT_TRUE(j->Append(Prepared("g1", "aaaa")).ok());
    ASSERT_TRUE(j->Append(Prepared("g2", "bbbb")).ok());
  }
  uint64_t size = std::filesystem::file_size(JournalPath());
  std::filesystem::resize_file(JournalPath(), size - 3);  // a crash mid-append
  auto j = Open();
  auto records = ReplayAll(j.get());
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].key.gtid, "g1");
  // Appending after the truncation works and replays.
  ASSERT_TRUE(j->Append(Prepared("g3", "cccc")).ok());
  auto j2 = Open();
  EXPECT_EQ(ReplayAll(j2.get()).size(), 2u);
}

TEST_F(BranchJournalTest, Replay_RefusesCorruptionInTheMiddle) {
  {
    auto j = Open();
    ReplayAll(j.get());
    ASSERT_TRUE(j->Append(Prepared("g1", "aaaa")).ok());
    ASSERT_TRUE(j->Append(Prepared("g2", "bbbb")).ok());
  }
  CorruptByte(12);  // inside the first record's body
  auto j = Open();
  Status s;
  ReplayAll(j.get(), &s);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
}

TEST_F(BranchJournalTest, Append_ConcurrentCallersShareSyncs) {
  SlowSyncEnv env;
  auto j = Open(&env);
  ReplayAll(j.get());
  constexpr int kThreads = 16, kPer = 20;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPer; ++i) {
        ASSERT_TRUE(j->Append(Prepared("g" + std::to_string(t * 1000 + i), "x")).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_LT(env.syncs.load(), kThreads * kPer / 2) << "group commit did not batch";
  auto j2 = Open();
  EXPECT_EQ(ReplayAll(j2.get()).size(), static_cast<size_t>(kThreads * kPer));
}

// A coop::Scheduler that stands for an event loop: it counts the cooperative waits.
class CountingScheduler : public coop::Scheduler {
 public:
  int WaitFd(int fd, short events, int timeout_ms) override {
    ++waits;
    pollfd p{fd, events, 0};
    return ::poll(&p, 1, timeout_ms) > 0 ? 1 : 0;
  }
  void Sleep(int ms) override {
    ++waits;
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  }
  int waits = 0;
};

TEST_F(BranchJournalTest, Append_OnAFiberLeavesTheSyncToAnotherThread) {
  SlowSyncEnv env;
  auto j = Open(&env);
  ReplayAll(j.get());
  CountingScheduler loop;
  coop::SetCurrent(&loop);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(j->Append(Prepared("g" + std::to_string(i), "x")).ok());
  }
  ASSERT_TRUE(j->AppendLazily(Prepared("lazy", "y")).ok());
  EXPECT_TRUE(j->Append(Prepared("g3", "x")).ok());  // the lazy one goes with it
  coop::SetCurrent(nullptr);
  EXPECT_EQ(env.syncs_on_test_thread.load(), 0);  // the "loop" never synced
  EXPECT_GE(env.syncs.load(), 4);
  EXPECT_GE(loop.waits, 4);  // it waited cooperatively instead
  // Off a fiber the caller leads its own group, as before.
  EXPECT_TRUE(j->Append(Prepared("g4", "x")).ok());
  EXPECT_EQ(env.syncs_on_test_thread.load(), 1);
  j.reset();  // stops the syncer thread
  auto j2 = Open();
  EXPECT_EQ(ReplayAll(j2.get()).size(), 6u);
}

TEST_F(BranchJournalTest, Rewrite_KeepsOnlyLiveRecords) {
  auto j = Open();
  ReplayAll(j.get());
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(j->Append(Prepared("g" + std::to_string(i), "x")).ok());
  ASSERT_TRUE(j->Rewrite({Prepared("g7", "x")}).ok());
  ASSERT_TRUE(j->Append(Prepared("g11", "y")).ok());
  auto j2 = Open();
  auto records = ReplayAll(j2.get());
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].key.gtid, "g7");
  EXPECT_EQ(records[1].key.gtid, "g11");
}

TEST_F(BranchJournalTest, AppendLazily_IsWrittenWithTheNextGroup_OrLostInACrash) {
  MemEnv env;
  {
    std::unique_ptr<BranchJournal> j;
    ASSERT_TRUE(OpenFileBranchJournal(&env, "/j", true, &j).ok());
    ReplayAll(j.get());
    ASSERT_TRUE(j->Append(Prepared("g1", "a")).ok());
    ASSERT_TRUE(j->Append(Prepared("g2", "b")).ok());
    uint64_t syncs = env.sync_count();
    JournalRecord committed;
    committed.key = {"g1", "b1"};
    committed.state = BranchState::kCommitted;
    ASSERT_TRUE(j->AppendLazily(committed).ok());
    EXPECT_EQ(env.sync_count(), syncs);  // not waited for
    // The next durable append carries it, in order.
    JournalRecord fenced;
    fenced.key = {"g2", "b1"};
    fenced.state = BranchState::kFenced;
    ASSERT_TRUE(j->Append(fenced).ok());
    JournalRecord lost;
    lost.key = {"g2", "b1"};
    lost.state = BranchState::kCommitted;
    ASSERT_TRUE(j->AppendLazily(lost).ok());
  }
  env.PowerCut();  // what was not synced is gone
  std::unique_ptr<BranchJournal> j;
  ASSERT_TRUE(OpenFileBranchJournal(&env, "/j", true, &j).ok());
  auto records = ReplayAll(j.get());
  ASSERT_EQ(records.size(), 4u);
  EXPECT_EQ(records[2].key.gtid, "g1");
  EXPECT_EQ(records[2].state, BranchState::kCommitted);
  EXPECT_EQ(records[3].state, BranchState::kFenced);  // the last lazy record was lost
}

TEST_F(BranchJournalTest, Flush_MakesLazilyAppendedRecordsDurable) {
  MemEnv env;
  {
    std::unique_ptr<BranchJournal> j;
    ASSERT_TRUE(OpenFileBranchJournal(&env, "/j", true, &j).ok());
    ReplayAll(j.get());
    uint64_t syncs = env.sync_count();
    ASSERT_TRUE(j->Flush().ok());
    EXPECT_EQ(env.sync_count(), syncs);  // nothing pending: no sync
    ASSERT_TRUE(j->AppendLazily(Prepared("g1", "a")).ok());
    ASSERT_TRUE(j->AppendLazily(Prepared("g2", "b")).ok());
    EXPECT_EQ(env.sync_count(), syncs);
    ASSERT_TRUE(j->Flush().ok());
    EXPECT_EQ(env.sync_count(), syncs + 1);                  // one group for both
    ASSERT_TRUE(j->AppendLazily(Prepared("g3", "c")).ok());  // lost below
  }
  env.PowerCut();
  std::unique_ptr<BranchJournal> j;
  ASSERT_TRUE(OpenFileBranchJournal(&env, "/j", true, &j).ok());
  auto records = ReplayAll(j.get());
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].key.gtid, "g1");
  EXPECT_EQ(records[1].key.gtid, "g2");
}

TEST_F(BranchJournalTest, AppendLazily_QueueIsBounded) {
  MemEnv env;
  std::unique_ptr<BranchJournal> j;
  ASSERT_TRUE(OpenFileBranchJournal(&env, "/j", true, &j).ok());
  ReplayAll(j.get());
  uint64_t syncs = env.sync_count();
  JournalRecord big = Prepared("g1", "a");
  big.rm_payload.assign(BranchJournal::kMaxLazyBytes / 4, 'x');
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(j->AppendLazily(big).ok());
  EXPECT_EQ(env.sync_count(), syncs + 1);  // the fifth crossed the bound: written and synced
}

}  // namespace
}  // namespace verdict::participant

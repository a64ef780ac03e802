// SegmentedLog (LogStorage): durability, recovery, torn tails vs corruption, snapshots.
// SegmentedLogTest runs on MemEnv and on PosixEnv in a temp dir; SegmentedLogFaultTest
// needs MemEnv's fault injection (power cuts, full disk, sync counting).
#include "coordinator/storage/segmented_log.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "common/mem_env.h"
#include "coordinator/storage/file_names.h"
#include "coordinator/storage/log_format.h"
#include "coordinator/storage/log_record.h"

namespace verdict::coordinator::storage {
namespace {

#define ASSERT_OK(expr)                                     \
  do {                                                      \
    ::verdict::Status _s = (expr);                          \
    ASSERT_TRUE(_s.ok()) << #expr << ": " << _s.ToString(); \
  } while (0)

using raft::Entry;
using raft::HardState;
using raft::Index;
using raft::Term;

// Forwards to a MemEnv; `hook` runs before each mutating call and may fail it (after, say,
// cutting the power), to stop an operation at an exact step.
class FaultInjectionEnv : public Env {
 public:
  explicit FaultInjectionEnv(MemEnv* base) : base_(base) {}
  std::function<Status(const std::string& op, const std::string& path)> hook;

  Status NewAppendableFile(const std::string& p, std::unique_ptr<WritableFile>* r) override {
    VERDICT_RETURN_IF_ERROR(Hook("NewAppendableFile", p));
    return base_->NewAppendableFile(p, r);
  }
  Status NewWritableFile(const std::string& p, std::unique_ptr<WritableFile>* r) override {
    VERDICT_RETURN_IF_ERROR(Hook("NewWritableFile", p));
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
  Status RemoveFile(const std::string& p) override {
    VERDICT_RETURN_IF_ERROR(Hook("RemoveFile", p));
    return base_->RemoveFile(p);
  }
  Status RenameFile(const std::string& f, const std::string& t) override {
    VERDICT_RETURN_IF_ERROR(Hook("RenameFile", f));
    return base_->RenameFile(f, t);
  }
  Status TruncateFile(const std::string& p, uint64_t s) override {
    VERDICT_RETURN_IF_ERROR(Hook("TruncateFile", p));
    return base_->TruncateFile(p, s);
  }
  Status SyncDir(const std::string& d) override {
    VERDICT_RETURN_IF_ERROR(Hook("SyncDir", d));
    return base_->SyncDir(d);
  }
  Status LockFile(const std::string& p, std::unique_ptr<FileLock>* l) override {
    return base_->LockFile(p, l);
  }

 private:
  Status Hook(const char* op, const std::string& path) {
    return hook ? hook(op, path) : Status::OK();
  }
  MemEnv* const base_;
};

enum class EnvKind { kMem, kPosix };

class LogTestBase : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { spdlog::set_level(spdlog::level::err); }

  void UseEnv(EnvKind kind) {
    kind_ = kind;
    if (kind == EnvKind::kMem) {
      dir_ = "/log";
      env_ = &fault_env_;
    } else {
      char tmpl[] = "/tmp/verdict-log-test-XXXXXX";
      ASSERT_NE(::mkdtemp(tmpl), nullptr);
      dir_ = std::string(tmpl) + "/log";
      tmp_root_ = tmpl;
      env_ = PosixEnv();
    }
  }
  void TearDown() override {
    log_.reset();
    if (!tmp_root_.empty()) {
      std::string cmd = "rm -rf '" + tmp_root_ + "'";
      ASSERT_EQ(std::system(cmd.c_str()), 0);
    }
  }

  // ---- verbs ----
  Status Open() {
    log_.reset();
    recovered_ = RecoveredState{};
    return LogStorage::Open(env_, dir_, options_, &log_, &recovered_);
  }
  // The process dies: the log object is gone without a clean shutdown. On MemEnv the
  // machine loses power as well, so everything unsynced is lost.
  void Crash() {
    if (kind_ == EnvKind::kMem) mem_.PowerCut();
    log_.reset();
  }
  static std::string Data(Index index, Term term) {
    return "decision-" + std::to_string(index) + "@" + std::to_string(term);
  }
  static std::vector<Entry> Entries(Index from, Index to, Term term) {
    std::vector<Entry> entries;
    for (Index i = from; i <= to; ++i) {
      entries.push_back(Entry{term, i, raft::EntryType::kNormal, Data(i, term)});
    }
    return entries;
  }
  Status Append(Index from, Index to, Term term) {
    return log_->Append(nullptr, Entries(from, to, term));
  }
  // Appends entries [from, to] of `term` and syncs them (one group commit).
  Status Write(Index from, Index to, Term term = 1) {
    VERDICT_RETURN_IF_ERROR(Append(from, to, term));
    return log_->Sync();
  }
  Status WriteHardState(Term term, raft::NodeId vote, Index commit) {
    HardState hs{term, vote, commit};
    VERDICT_RETURN_IF_ERROR(log_->Append(&hs, {}));
    return log_->Sync();
  }
  Status SaveSnapshot(Index index, Term term, bool discard_log = false) {
    raft::Snapshot snap;
    snap.meta.index = index;
    snap.meta.term = term;
    snap.meta.membership.voters = {{1, "127.0.0.1:7001"}, {2, "127.0.0.1:7002"}};
    snap.data = std::make_shared<const std::string>("state-machine@" + std::to_string(index));
    return log_->SaveSnapshot(snap, discard_log);
  }
  std::vector<std::string> Files(std::string_view prefix) {
    std::vector<std::string> names, out;
    EXPECT_TRUE(env_->GetChildren(dir_, &names).ok());
    for (const auto& n : names) {
      if (n.starts_with(prefix)) out.push_back(JoinPath(dir_, n));
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  std::vector<std::string> Segments() { return Files(format::kSegmentPrefix); }
  std::vector<std::string> Snapshots() { return Files(format::kSnapshotPrefix); }
  uint64_t Size(const std::string& path) {
    uint64_t size = 0;
    EXPECT_TRUE(env_->GetFileSize(path, &size).ok()) << path;
    return size;
  }
  // Bit rot: flips one byte on disk, through the Env so it works on both kinds.
  void CorruptByte(const std::string& path, uint64_t offset) {
    std::string data;
    ASSERT_OK(env_->ReadFile(path, &data));
    ASSERT_LT(offset, data.size());
    data[offset] = static_cast<char>(data[offset] ^ 0x40);
    std::unique_ptr<WritableFile> f;
    ASSERT_OK(env_->NewWritableFile(path, &f));
    ASSERT_OK(f->Append(data));
    ASSERT_OK(f->Sync());
    ASSERT_OK(f->Close());
  }
  void TruncateTo(const std::string& path, uint64_t size) {
    ASSERT_OK(env_->TruncateFile(path, size));
  }

  // ---- checks ----
  std::vector<Index> RecoveredIndexes() const {
    std::vector<Index> out;
    for (const auto& e : recovered_.entries) out.push_back(e.index);
    return out;
  }
  static std::vector<Index> Range(Index from, Index to) {
    std::vector<Index> out;
    for (Index i = from; i <= to; ++i) out.push_back(i);
    return out;
  }
  // Every recovered entry carries exactly the bytes written for it: nothing garbled.
  void ExpectEntriesIntact() const {
    for (const auto& e : recovered_.entries) {
      EXPECT_EQ(e.data, Data(e.index, e.term)) << "entry " << e.index;
    }
  }
  static size_t HardStateRecordSize(const HardState& hs) {
    std::string buf;
    AppendHardStateRecord(&buf, hs);
    return buf.size();
  }

  EnvKind kind_ = EnvKind::kMem;
  MemEnv mem_;
  FaultInjectionEnv fault_env_{&mem_};
  Env* env_ = nullptr;
  std::string dir_;
  std::string tmp_root_;
  LogStorageOptions options_;
  std::unique_ptr<LogStorage> log_;
  RecoveredState recovered_;
};

// ======================= on both MemEnv and PosixEnv =======================

class SegmentedLogTest : public LogTestBase, public ::testing::WithParamInterface<EnvKind> {
 protected:
  void SetUp() override { UseEnv(GetParam()); }
};

INSTANTIATE_TEST_SUITE_P(Envs, SegmentedLogTest, ::testing::Values(EnvKind::kMem, EnvKind::kPosix),
                         [](const ::testing::TestParamInfo<EnvKind>& info) {
                           return info.param == EnvKind::kMem ? std::string("MemEnv")
                                                              : std::string("PosixEnv");
                         });

TEST_P(SegmentedLogTest, Open_EmptyDirectoryStartsEmpty) {
  ASSERT_OK(Open());
  EXPECT_TRUE(recovered_.entries.empty());
  EXPECT_FALSE(recovered_.snapshot.has_value());
  EXPECT_EQ(recovered_.hard_state, HardState{});
  EXPECT_EQ(log_->LastIndex(), 0u);
  EXPECT_EQ(log_->SegmentCount(), 1u);
}

TEST_P(SegmentedLogTest, Open_RoundTripsEntriesHardStateAndSnapshot) {
  ASSERT_OK(Open());
  ASSERT_OK(WriteHardState(3, 2, 0));
  ASSERT_OK(Write(1, 50, 3));
  ASSERT_OK(SaveSnapshot(20, 3));
  HardState hs{4, 1, 40};
  ASSERT_OK(log_->Append(&hs, Entries(51, 60, 4)));
  ASSERT_OK(log_->Sync());
  EXPECT_EQ(log_->LastIndex(), 60u);

  ASSERT_OK(Open());
  EXPECT_EQ(recovered_.hard_state, hs);
  ASSERT_TRUE(recovered_.snapshot.has_value());
  EXPECT_EQ(recovered_.snapshot->meta.index, 20u);
  EXPECT_EQ(recovered_.snapshot->meta.term, 3u);
  EXPECT_EQ(recovered_.snapshot->meta.membership.voters.at(2), "127.0.0.1:7002");
  EXPECT_EQ(*recovered_.snapshot->data, "state-machine@20");
  EXPECT_EQ(RecoveredIndexes(), Range(21, 60));
  EXPECT_EQ(recovered_.entries.front().term, 3u);
  EXPECT_EQ(recovered_.entries.back().term, 4u);
  ExpectEntriesIntact();
  EXPECT_EQ(log_->LastIndex(), 60u);

  // Reopening again changes nothing.
  ASSERT_OK(Open());
  EXPECT_EQ(RecoveredIndexes(), Range(21, 60));
  EXPECT_EQ(recovered_.hard_state, hs);
}

TEST_P(SegmentedLogTest, Append_SuffixOverwriteSurvivesReopen) {
  ASSERT_OK(Open());
  ASSERT_OK(Write(1, 10, 1));
  ASSERT_OK(Write(6, 8, 2));  // a new leader's entries replace 6..10
  EXPECT_EQ(log_->LastIndex(), 8u);
  ASSERT_OK(Open());
  EXPECT_EQ(RecoveredIndexes(), Range(1, 8));
  EXPECT_EQ(recovered_.entries[4].term, 1u);
  EXPECT_EQ(recovered_.entries[5].term, 2u);
  ExpectEntriesIntact();
  ASSERT_OK(Write(9, 9, 2));
  ASSERT_OK(Open());
  EXPECT_EQ(RecoveredIndexes(), Range(1, 9));
}

TEST_P(SegmentedLogTest, Append_OverwriteAcrossSegmentsSurvivesReopen) {
  options_.segment_bytes = 1;  // every Sync starts a new segment
  ASSERT_OK(Open());
  ASSERT_OK(Write(1, 5, 1));
  ASSERT_OK(Write(6, 10, 1));
  ASSERT_OK(Write(3, 4, 2));
  ASSERT_OK(Open());
  EXPECT_EQ(RecoveredIndexes(), Range(1, 4));
  EXPECT_EQ(recovered_.entries[2].term, 2u);
  ExpectEntriesIntact();
}

TEST_P(SegmentedLogTest, Append_RejectsGapsAndIndexesCoveredBySnapshotWithoutSticking) {
  ASSERT_OK(Open());
  ASSERT_OK(Write(1, 10));
  EXPECT_EQ(Append(12, 13, 1).code(), Status::Code::kInvalidArgument);
  ASSERT_OK(SaveSnapshot(5, 1));
  EXPECT_EQ(Append(5, 6, 1).code(), Status::Code::kInvalidArgument);
  std::vector<Entry> holey = Entries(11, 13, 1);
  holey.erase(holey.begin() + 1);
  EXPECT_EQ(log_->Append(nullptr, holey).code(), Status::Code::kInvalidArgument);
  ASSERT_OK(Write(11, 12));  // the log is still usable
  EXPECT_EQ(log_->LastIndex(), 12u);
}

TEST_P(SegmentedLogTest, Append_RejectsTermsGoingDown) {
  ASSERT_OK(Open());
  ASSERT_OK(Write(1, 5, 3));
  EXPECT_EQ(Append(6, 6, 2).code(), Status::Code::kInvalidArgument);  // after term 3
  EXPECT_EQ(Append(4, 4, 2).code(), Status::Code::kInvalidArgument);  // overwrite after 3
  ASSERT_OK(Write(4, 4, 4));                                          // a newer leader
  ASSERT_OK(SaveSnapshot(3, 3));
  EXPECT_EQ(Append(4, 4, 2).code(), Status::Code::kInvalidArgument);  // below snapshot term
  ASSERT_OK(Write(5, 6, 4));
  ASSERT_OK(SaveSnapshot(50, 7, /*discard_log=*/true));
  EXPECT_EQ(Append(51, 51, 6).code(), Status::Code::kInvalidArgument);
  ASSERT_OK(Write(51, 51, 7));
  ASSERT_OK(Open());
  EXPECT_EQ(RecoveredIndexes(), Range(51, 51));
  EXPECT_EQ(Append(52, 52, 6).code(), Status::Code::kInvalidArgument);
}

TEST_P(SegmentedLogTest, SaveSnapshot_CompactionDeletesOldSegmentsAndHardStateSurvives) {
  options_.segment_bytes = 200;
  ASSERT_OK(Open());
  ASSERT_OK(WriteHardState(7, 3, 0));  // only ever written once, into the first segment
  for (Index i = 1; i <= 100; i += 5) ASSERT_OK(Write(i, i + 4, 7));
  const size_t before = log_->SegmentCount();
  ASSERT_GT(before, 5u);
  EXPECT_EQ(Segments().size(), before);

  ASSERT_OK(SaveSnapshot(90, 7));
  EXPECT_LT(log_->SegmentCount(), before);
  EXPECT_LE(log_->SegmentCount(), 3u);
  EXPECT_EQ(Segments().size(), log_->SegmentCount());

  ASSERT_OK(Open());
  EXPECT_EQ(recovered_.hard_state.term, 7u);
  EXPECT_EQ(recovered_.hard_state.vote, 3u);
  EXPECT_EQ(recovered_.snapshot->meta.index, 90u);
  EXPECT_EQ(RecoveredIndexes(), Range(91, 100));
  ExpectEntriesIntact();
}

TEST_P(SegmentedLogTest, SaveSnapshot_KeepsOnlySnapshotsToKeep) {
  options_.snapshots_to_keep = 2;
  ASSERT_OK(Open());
  ASSERT_OK(Write(1, 40));
  for (Index i = 10; i <= 40; i += 10) ASSERT_OK(SaveSnapshot(i, 1));
  ASSERT_EQ(Snapshots().size(), 2u);
  EXPECT_EQ(Snapshots()[0], JoinPath(dir_, SnapshotFileName(30, 1)));
  EXPECT_EQ(Snapshots()[1], JoinPath(dir_, SnapshotFileName(40, 1)));
}

TEST_P(SegmentedLogTest, SaveSnapshot_DiscardLogResetSurvivesReopen) {
  options_.segment_bytes = 300;
  ASSERT_OK(Open());
  ASSERT_OK(WriteHardState(2, 1, 5));
  for (Index i = 1; i <= 30; i += 10) ASSERT_OK(Write(i, i + 9, 2));
  ASSERT_OK(Append(31, 35, 2));  // unsynced; dropped by the reset
  ASSERT_OK(SaveSnapshot(500, 6, /*discard_log=*/true));
  EXPECT_EQ(log_->LastIndex(), 500u);
  EXPECT_EQ(log_->SegmentCount(), 1u);

  ASSERT_OK(Open());
  EXPECT_TRUE(recovered_.entries.empty());
  EXPECT_EQ(recovered_.snapshot->meta.index, 500u);
  EXPECT_EQ(recovered_.hard_state.term, 2u);
  EXPECT_EQ(recovered_.hard_state.commit, 500u);  // never below the snapshot
  EXPECT_EQ(log_->LastIndex(), 500u);
  ASSERT_OK(Write(501, 505, 6));
  ASSERT_OK(Open());
  EXPECT_EQ(RecoveredIndexes(), Range(501, 505));
  ExpectEntriesIntact();
}

TEST_P(SegmentedLogTest, SaveSnapshot_DiscardLogDropsConflictingSuffix) {
  ASSERT_OK(Open());
  ASSERT_OK(Write(1, 20, 1));
  ASSERT_OK(SaveSnapshot(10, 3, /*discard_log=*/true));  // entry 10 had term 1: other history
  EXPECT_EQ(log_->LastIndex(), 10u);
  ASSERT_OK(Write(11, 12, 3));
  ASSERT_OK(Open());
  EXPECT_EQ(RecoveredIndexes(), Range(11, 12));
  EXPECT_EQ(recovered_.entries[0].term, 3u);
}

TEST_P(SegmentedLogTest, Open_TornTailAtEveryCutPointOfFinalRecordIsTruncated) {
  ASSERT_OK(Open());
  ASSERT_OK(Write(1, 10));
  const std::string seg = Segments().back();
  const uint64_t good = Size(seg);
  ASSERT_OK(Write(11, 11));
  const uint64_t full = Size(seg);
  log_.reset();
  std::string original;
  ASSERT_OK(env_->ReadFile(seg, &original));

  for (uint64_t cut = good; cut < full; ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    TruncateTo(seg, cut);
    ASSERT_OK(Open());
    EXPECT_EQ(RecoveredIndexes(), Range(1, 10));
    ExpectEntriesIntact();
    // The tail was cut back to the last good record; Open then restated the hard state.
    EXPECT_EQ(Size(seg), good + HardStateRecordSize(recovered_.hard_state));
    log_.reset();
    // Restore the original bytes for the next cut point.
    std::unique_ptr<WritableFile> f;
    ASSERT_OK(env_->NewWritableFile(seg, &f));
    ASSERT_OK(f->Append(original));
    ASSERT_OK(f->Sync());
  }
  ASSERT_OK(Open());
  EXPECT_EQ(RecoveredIndexes(), Range(1, 11));
}

TEST_P(SegmentedLogTest, Open_ZeroFilledTailIsTruncated) {
  ASSERT_OK(Open());
  ASSERT_OK(Write(1, 10));
  const std::string seg = Segments().back();
  const uint64_t good = Size(seg);
  ASSERT_OK(Write(11, 20));
  log_.reset();
  TruncateTo(seg, good);
  TruncateTo(seg, good + 4096);  // extends with zeros, as a crashed file system may
  ASSERT_OK(Open());
  EXPECT_EQ(RecoveredIndexes(), Range(1, 10));
  ASSERT_OK(Write(11, 12));
  ASSERT_OK(Open());
  EXPECT_EQ(RecoveredIndexes(), Range(1, 12));
}

TEST_P(SegmentedLogTest, Open_CorruptByteMidSegmentIsCorruptionNamingFileAndOffset) {
  ASSERT_OK(Open());
  ASSERT_OK(Write(1, 4));
  const std::string seg = Segments().back();
  const uint64_t record5 = Size(seg);
  ASSERT_OK(Write(5, 5));
  ASSERT_OK(Write(6, 20));
  log_.reset();
  CorruptByte(seg, record5 + format::kRecordHeaderSize + 3);  // inside entry 5's payload
  Status s = Open();
  ASSERT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(s.message().find(seg), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("offset " + std::to_string(record5)), std::string::npos)
      << s.ToString();
  EXPECT_EQ(log_, nullptr);
}

TEST_P(SegmentedLogTest, Open_CorruptByteInNonFinalSegmentIsCorruption) {
  options_.segment_bytes = 1;
  ASSERT_OK(Open());
  ASSERT_OK(Write(1, 5));
  ASSERT_OK(Write(6, 10));
  ASSERT_OK(Write(11, 15));
  ASSERT_GE(Segments().size(), 3u);
  const std::string seg = Segments()[1];
  const uint64_t last_byte = Size(seg) - 1;  // inside that segment's final record
  log_.reset();
  CorruptByte(seg, last_byte);
  Status s = Open();
  ASSERT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(s.message().find(seg), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("offset "), std::string::npos) << s.ToString();
}

TEST_P(SegmentedLogTest, Open_CorruptByteInFinalRecordIsTreatedAsTornTail) {
  ASSERT_OK(Open());
  ASSERT_OK(Write(1, 10));
  const std::string seg = Segments().back();
  const uint64_t last = Size(seg);
  ASSERT_OK(Write(11, 11));
  const uint64_t end = Size(seg);
  log_.reset();
  std::string original;
  ASSERT_OK(env_->ReadFile(seg, &original));
  // Every byte of the final record, header included: bit rot there cannot be told apart
  // from a torn write, so the record is dropped like a torn one (docs/storage-format.md).
  for (uint64_t offset = last; offset < end; ++offset) {
    SCOPED_TRACE("byte " + std::to_string(offset));
    CorruptByte(seg, offset);
    ASSERT_OK(Open());
    EXPECT_EQ(RecoveredIndexes(), Range(1, 10));
    ExpectEntriesIntact();
    log_.reset();
    std::unique_ptr<WritableFile> f;
    ASSERT_OK(env_->NewWritableFile(seg, &f));
    ASSERT_OK(f->Append(original));
    ASSERT_OK(f->Sync());
  }
}

TEST_P(SegmentedLogTest, Open_CorruptLengthFieldMidFileIsCorruption) {
  ASSERT_OK(Open());
  ASSERT_OK(Write(1, 4));
  const std::string seg = Segments().back();
  const uint64_t record5 = Size(seg);
  ASSERT_OK(Write(5, 20));
  log_.reset();
  for (uint64_t i = 8; i < 12; ++i) {  // each byte of entry 5's length field
    SCOPED_TRACE("length byte " + std::to_string(i - 8));
    CorruptByte(seg, record5 + i);
    Status s = Open();
    ASSERT_TRUE(s.IsCorruption()) << s.ToString();
    EXPECT_NE(s.message().find(seg + ": offset " + std::to_string(record5)), std::string::npos)
        << s.ToString();
    CorruptByte(seg, record5 + i);  // flip it back
  }
  ASSERT_OK(Open());
  EXPECT_EQ(RecoveredIndexes(), Range(1, 20));
}

TEST_P(SegmentedLogTest, Open_MissingMiddleSegmentIsCorruption) {
  options_.segment_bytes = 1;
  ASSERT_OK(Open());
  for (Index i = 1; i <= 20; i += 5) ASSERT_OK(Write(i, i + 4));
  std::vector<std::string> segs = Segments();
  ASSERT_GE(segs.size(), 4u);
  log_.reset();
  ASSERT_OK(env_->RemoveFile(segs[2]));
  Status s = Open();
  ASSERT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(s.message().find(segs[2]), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("missing"), std::string::npos) << s.ToString();
}

TEST_P(SegmentedLogTest, Open_CorruptNewestSnapshotFallsBackWhenLogCoversTheGap) {
  ASSERT_OK(Open());
  ASSERT_OK(Write(1, 30));
  ASSERT_OK(SaveSnapshot(10, 1));
  ASSERT_OK(SaveSnapshot(20, 1));  // the one segment still holds 11..30
  log_.reset();
  const std::string newest = JoinPath(dir_, SnapshotFileName(20, 1));
  CorruptByte(newest, Size(newest) - 1);
  ASSERT_OK(Open());
  ASSERT_TRUE(recovered_.snapshot.has_value());
  EXPECT_EQ(recovered_.snapshot->meta.index, 10u);
  EXPECT_EQ(RecoveredIndexes(), Range(11, 30));
  ExpectEntriesIntact();
}

TEST_P(SegmentedLogTest, Open_CorruptNewestSnapshotWithCompactedLogIsCorruption) {
  options_.segment_bytes = 1;
  ASSERT_OK(Open());
  for (Index i = 1; i <= 30; i += 5) ASSERT_OK(Write(i, i + 4));
  ASSERT_OK(SaveSnapshot(10, 1));
  ASSERT_OK(SaveSnapshot(20, 1));  // deletes the segments holding 11..20
  log_.reset();
  const std::string newest = JoinPath(dir_, SnapshotFileName(20, 1));
  CorruptByte(newest, 20);  // in the header
  Status s = Open();
  ASSERT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(s.message().find("log starts at index 21"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find(newest), std::string::npos) << s.ToString();
}

TEST_P(SegmentedLogTest, Open_SecondOpenFailsWhileFirstHoldsTheLock) {
  ASSERT_OK(Open());
  std::unique_ptr<LogStorage> second;
  RecoveredState state;
  Status s = LogStorage::Open(env_, dir_, options_, &second, &state);
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  EXPECT_EQ(second, nullptr);
  log_.reset();
  ASSERT_OK(LogStorage::Open(env_, dir_, options_, &second, &state));
}

TEST_P(SegmentedLogTest, Open_RemovesLeftoverTempSnapshot) {
  ASSERT_OK(Open());
  ASSERT_OK(Write(1, 5));
  log_.reset();
  std::unique_ptr<WritableFile> f;
  const std::string tmp = JoinPath(dir_, SnapshotFileName(5, 1) + ".tmp");
  ASSERT_OK(env_->NewWritableFile(tmp, &f));
  ASSERT_OK(f->Append("half a snapshot"));
  ASSERT_OK(f->Close());
  ASSERT_OK(Open());
  EXPECT_FALSE(env_->FileExists(tmp));
  EXPECT_FALSE(recovered_.snapshot.has_value());
  EXPECT_EQ(RecoveredIndexes(), Range(1, 5));
}

// ======================= MemEnv fault injection =======================

class SegmentedLogFaultTest : public LogTestBase {
 protected:
  void SetUp() override { UseEnv(EnvKind::kMem); }
};

TEST_F(SegmentedLogFaultTest, PowerCut_DropsUnsyncedAndKeepsSynced) {
  ASSERT_OK(Open());
  ASSERT_OK(WriteHardState(2, 1, 0));
  ASSERT_OK(Write(1, 10, 2));
  HardState unsynced_hs{3, 2, 10};
  ASSERT_OK(log_->Append(&unsynced_hs, Entries(11, 20, 3)));  // never synced
  EXPECT_EQ(log_->LastIndex(), 20u);
  Crash();
  ASSERT_OK(Open());
  EXPECT_EQ(RecoveredIndexes(), Range(1, 10));
  EXPECT_EQ(recovered_.hard_state, (HardState{2, 1, 0}));
  ExpectEntriesIntact();
}

TEST_F(SegmentedLogFaultTest, PowerCut_TornWriteAtEveryByteOfFinalRecord) {
  ASSERT_OK(Open());
  ASSERT_OK(Write(1, 10));
  log_.reset();
  // Probe: how long is entry 11's record?
  std::string probe;
  AppendEntryRecord(&probe, Entries(11, 11, 1)[0]);
  for (uint64_t keep = 0; keep <= probe.size(); ++keep) {
    SCOPED_TRACE("bytes of the final write that reached the disk: " + std::to_string(keep));
    options_.sync = true;
    ASSERT_OK(Open());
    const Index last = log_->LastIndex();
    ASSERT_EQ(last, 10u);
    options_.sync = false;  // reopen so the next Sync leaves its write in the cache
    ASSERT_OK(Open());
    ASSERT_OK(Write(11, 11));
    log_.reset();
    mem_.PowerCut([&](const std::string&, uint64_t unsynced) {
      EXPECT_EQ(unsynced, probe.size());
      return keep;
    });
    options_.sync = true;
    ASSERT_OK(Open());
    EXPECT_EQ(RecoveredIndexes(), keep == probe.size() ? Range(1, 11) : Range(1, 10));
    ExpectEntriesIntact();
    if (keep == probe.size()) break;
    log_.reset();
  }
}

TEST_F(SegmentedLogFaultTest, PowerCut_TornBatchKeepsAWholeRecordPrefix) {
  ASSERT_OK(Open());
  ASSERT_OK(Write(1, 10));
  log_.reset();
  options_.sync = false;
  ASSERT_OK(Open());
  ASSERT_OK(Write(11, 60));
  log_.reset();
  for (uint64_t keep : {uint64_t{1}, uint64_t{100}, uint64_t{777}, uint64_t{1500}}) {
    mem_.PowerCut([&](const std::string&, uint64_t) { return keep; });
    options_.sync = true;
    ASSERT_OK(Open());
    ASSERT_GE(log_->LastIndex(), 10u);
    EXPECT_EQ(RecoveredIndexes(), Range(1, log_->LastIndex()));
    ExpectEntriesIntact();
    log_.reset();
  }
}

TEST_F(SegmentedLogFaultTest, PowerCut_DuringRolloverLosesOnlyTheUnsyncedBatch) {
  options_.segment_bytes = 1;
  ASSERT_OK(Open());
  ASSERT_OK(Write(1, 5));
  // The rollover creates a file whose name is durable only after SyncDir: cut the power
  // right before it.
  fault_env_.hook = [&](const std::string& op, const std::string&) {
    if (op != "SyncDir") return Status::OK();
    mem_.PowerCut();
    return Status::IOError("power cut");
  };
  EXPECT_TRUE(Write(6, 10).IsIOError());
  fault_env_.hook = nullptr;
  log_.reset();
  ASSERT_OK(Open());
  EXPECT_EQ(RecoveredIndexes(), Range(1, 5));
}

TEST_F(SegmentedLogFaultTest, Sync_GroupCommitIsOneFsyncForManyEntries) {
  ASSERT_OK(Open());
  ASSERT_OK(Write(1, 1));
  uint64_t before = mem_.sync_count();
  HardState hs{5, 1, 1};
  ASSERT_OK(log_->Append(&hs, Entries(2, 500, 5)));
  ASSERT_OK(Append(501, 1000, 5));
  ASSERT_OK(log_->Sync());
  EXPECT_EQ(mem_.sync_count(), before + 1);
  ASSERT_OK(log_->Sync());  // nothing pending: no fsync
  EXPECT_EQ(mem_.sync_count(), before + 1);
}

TEST_F(SegmentedLogFaultTest, Sync_NewSegmentAddsOneDirectorySync) {
  options_.segment_bytes = 4096;
  ASSERT_OK(Open());
  ASSERT_OK(Write(1, 200));  // fills the first segment past segment_bytes
  const size_t segments = log_->SegmentCount();
  uint64_t before = mem_.sync_count();
  ASSERT_OK(Write(201, 210));
  EXPECT_EQ(log_->SegmentCount(), segments + 1);
  EXPECT_EQ(mem_.sync_count(), before + 2);  // the new file + its directory
  before = mem_.sync_count();
  ASSERT_OK(Write(211, 212));
  EXPECT_EQ(mem_.sync_count(), before + 1);
}

TEST_F(SegmentedLogFaultTest, Sync_UnsafeNoSyncModeSkipsFsync) {
  options_.sync = false;
  ASSERT_OK(Open());
  uint64_t before = mem_.sync_count();
  ASSERT_OK(Write(1, 100));
  EXPECT_EQ(mem_.sync_count(), before);
}

TEST_F(SegmentedLogFaultTest, Sync_DiskFullIsStickyAndReopenRecoversSyncedPrefix) {
  ASSERT_OK(Open());
  ASSERT_OK(Write(1, 10));
  mem_.SetSpaceLimit(2000);
  ASSERT_OK(Append(11, 200, 1));  // Append only buffers
  Status s = log_->Sync();
  ASSERT_TRUE(s.IsIOError()) << s.ToString();
  EXPECT_NE(s.message().find("No space left on device"), std::string::npos) << s.ToString();
  mem_.SetSpaceLimit(0);  // space is back, but the log must not pretend nothing happened
  EXPECT_TRUE(Append(201, 201, 1).IsIOError());
  EXPECT_TRUE(log_->Sync().IsIOError());
  EXPECT_TRUE(SaveSnapshot(5, 1).IsIOError());
  Crash();
  ASSERT_OK(Open());
  EXPECT_EQ(RecoveredIndexes(), Range(1, 10));
  ASSERT_OK(Write(11, 12));
}

TEST_F(SegmentedLogFaultTest, SaveSnapshot_PowerCutBeforeRenameKeepsOldSnapshot) {
  ASSERT_OK(Open());
  ASSERT_OK(Write(1, 30));
  ASSERT_OK(SaveSnapshot(10, 1));
  fault_env_.hook = [&](const std::string& op, const std::string&) {
    if (op != "RenameFile") return Status::OK();
    mem_.PowerCut();
    return Status::IOError("power cut");
  };
  EXPECT_FALSE(SaveSnapshot(20, 1).ok());
  fault_env_.hook = nullptr;
  log_.reset();
  ASSERT_OK(Open());
  EXPECT_EQ(recovered_.snapshot->meta.index, 10u);
  EXPECT_EQ(*recovered_.snapshot->data, "state-machine@10");
  EXPECT_EQ(RecoveredIndexes(), Range(11, 30));
  EXPECT_EQ(Snapshots(), std::vector<std::string>{JoinPath(dir_, SnapshotFileName(10, 1))});
}

TEST_F(SegmentedLogFaultTest, SaveSnapshot_PowerCutAfterRenameBeforeDirSyncKeepsOldSnapshot) {
  ASSERT_OK(Open());
  ASSERT_OK(Write(1, 30));
  ASSERT_OK(SaveSnapshot(10, 1));
  bool renamed = false;
  fault_env_.hook = [&](const std::string& op, const std::string&) {
    if (op == "RenameFile") renamed = true;
    if (op != "SyncDir" || !renamed) return Status::OK();
    mem_.PowerCut();
    return Status::IOError("power cut");
  };
  EXPECT_FALSE(SaveSnapshot(20, 1).ok());
  fault_env_.hook = nullptr;
  log_.reset();
  ASSERT_OK(Open());
  EXPECT_EQ(recovered_.snapshot->meta.index, 10u);
  EXPECT_EQ(RecoveredIndexes(), Range(11, 30));
}

TEST_F(SegmentedLogFaultTest, SaveSnapshot_PowerCutAfterCompletionKeepsNewSnapshot) {
  options_.segment_bytes = 1;
  ASSERT_OK(Open());
  for (Index i = 1; i <= 30; i += 5) ASSERT_OK(Write(i, i + 4));
  ASSERT_OK(SaveSnapshot(20, 1));
  Crash();
  ASSERT_OK(Open());
  EXPECT_EQ(recovered_.snapshot->meta.index, 20u);
  EXPECT_EQ(RecoveredIndexes(), Range(21, 30));
}

TEST_F(SegmentedLogFaultTest, SaveSnapshot_DiscardLogPowerCutBeforeResetIsDurable) {
  // The snapshot file is durable but the crash hits before the reset segment's name is:
  // the old log comes back with a conflicting entry at the snapshot index, and recovery
  // must drop it rather than splice two histories together.
  ASSERT_OK(Open());
  ASSERT_OK(Write(1, 20, 1));
  int dir_syncs = 0;
  fault_env_.hook = [&](const std::string& op, const std::string&) {
    if (op != "SyncDir" || ++dir_syncs < 2) return Status::OK();
    mem_.PowerCut();
    return Status::IOError("power cut");
  };
  EXPECT_FALSE(SaveSnapshot(15, 4, /*discard_log=*/true).ok());
  fault_env_.hook = nullptr;
  log_.reset();
  ASSERT_OK(Open());
  EXPECT_EQ(recovered_.snapshot->meta.index, 15u);
  EXPECT_TRUE(recovered_.entries.empty());
  EXPECT_EQ(log_->LastIndex(), 15u);
  // The log continues after the snapshot, and keeps doing so across restarts.
  ASSERT_OK(Write(16, 17, 4));
  ASSERT_OK(Open());
  EXPECT_EQ(RecoveredIndexes(), Range(16, 17));
  ExpectEntriesIntact();
}

TEST_F(SegmentedLogFaultTest, SaveSnapshot_BeyondLogPowerCutBeforeResetThenAppendSurvives) {
  ASSERT_OK(Open());
  ASSERT_OK(Write(1, 10, 1));
  int dir_syncs = 0;
  fault_env_.hook = [&](const std::string& op, const std::string&) {
    if (op != "SyncDir" || ++dir_syncs < 2) return Status::OK();
    mem_.PowerCut();
    return Status::IOError("power cut");
  };
  EXPECT_FALSE(SaveSnapshot(20, 2).ok());  // beyond the log: needs a reset, which is lost
  fault_env_.hook = nullptr;
  log_.reset();
  ASSERT_OK(Open());
  EXPECT_EQ(log_->LastIndex(), 20u);
  ASSERT_OK(Write(21, 22, 2));
  ASSERT_OK(Open());
  EXPECT_EQ(recovered_.snapshot->meta.index, 20u);
  EXPECT_EQ(RecoveredIndexes(), Range(21, 22));
}

TEST_F(SegmentedLogFaultTest, Open_SnapshotWithoutAnySegmentIsCorruption) {
  ASSERT_OK(Open());
  ASSERT_OK(Write(1, 10));
  ASSERT_OK(SaveSnapshot(10, 1));
  log_.reset();
  for (const auto& seg : Segments()) ASSERT_OK(env_->RemoveFile(seg));
  EXPECT_TRUE(Open().IsCorruption());
}

TEST_F(SegmentedLogFaultTest, Open_FailedOpenChangesNothingOnDisk) {
  options_.segment_bytes = 1;
  ASSERT_OK(Open());
  for (Index i = 1; i <= 20; i += 5) ASSERT_OK(Write(i, i + 4));
  log_.reset();
  const std::string first = Segments()[0];
  CorruptByte(first, 30);
  const std::string last = Segments().back();
  TruncateTo(last, Size(last) - 3);  // also a torn tail, which must not be "repaired"
  const uint64_t last_size = Size(last);
  EXPECT_TRUE(Open().IsCorruption());
  EXPECT_EQ(Size(last), last_size);
}

}  // namespace
}  // namespace verdict::coordinator::storage

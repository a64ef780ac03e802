// FileBranchJournal: BranchJournal on one append-only file with group commit.
#include "participant/branch_journal.h"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "common/coding.h"
#include "common/coop.h"
#include "common/crc32c.h"
#include "common/env.h"
#include "participant/journal_format.h"

namespace verdict::participant {

namespace {

constexpr char kJournalName[] = "branches.journal";
constexpr char kJournalTemp[] = "branches.journal.tmp";

class FileBranchJournal : public BranchJournal {
 public:
  FileBranchJournal(Env* env, std::string dir, bool sync)
      : env_(env), dir_(std::move(dir)), sync_(sync) {}

  ~FileBranchJournal() override {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    syncer_cv_.notify_all();
    if (syncer_.joinable()) syncer_.join();
  }

  Status Open() {
    VERDICT_RETURN_IF_ERROR(env_->CreateDirIfMissing(dir_));
    // A leftover temp file is an interrupted Rewrite: the old journal is still valid.
    if (env_->FileExists(TempPath())) VERDICT_RETURN_IF_ERROR(env_->RemoveFile(TempPath()));
    return Status::OK();
  }

  Status Replay(const std::function<void(const JournalRecord&)>& fn) override {
    std::string data;
    if (env_->FileExists(Path())) VERDICT_RETURN_IF_ERROR(env_->ReadFile(Path(), &data));
    size_t pos = 0;
    while (pos < data.size()) {
      size_t left = data.size() - pos;
      bool ok = false;
      uint32_t length = 0;
      if (left >= journal_format::kHeaderSize) {
        uint32_t masked = DecodeFixed32(data.data() + pos);
        length = DecodeFixed32(data.data() + pos + 4);
        if (length <= journal_format::kMaxRecordBytes &&
            length <= left - journal_format::kHeaderSize) {
          uint32_t crc = crc32c::Value(data.data() + pos + 4, 4 + length);
          ok = crc32c::Unmask(masked) == crc;
        }
      }
      if (!ok) {
        // Torn tail: the bad record reaches the end of the file (a crash mid-append).
        // Anything else is corruption in the middle: refuse.
        bool reaches_end = left < journal_format::kHeaderSize ||
                           length > left - journal_format::kHeaderSize ||
                           pos + journal_format::kHeaderSize + length == data.size();
        if (!reaches_end) {
          return Status::Corruption("branch journal " + Path() + ": bad record at offset " +
                                    std::to_string(pos) + " followed by more data");
        }
        spdlog::warn("branch journal: truncating a torn final record at offset {} ({} bytes)", pos,
                     left);
        VERDICT_RETURN_IF_ERROR(env_->TruncateFile(Path(), pos));
        break;
      }
      JournalRecord record;
      Status s = journal_format::DecodeBody(
          std::string_view(data).substr(pos + journal_format::kHeaderSize, length), &record);
      if (!s.ok()) {
        return Status::Corruption("branch journal " + Path() + " at offset " + std::to_string(pos) +
                                  ": " + s.message());
      }
      fn(record);
      pos += journal_format::kHeaderSize + length;
    }
    const bool created = !env_->FileExists(Path());
    std::unique_lock<std::mutex> l(mu_);
    VERDICT_RETURN_IF_ERROR(env_->NewAppendableFile(Path(), &file_));
    // A new file's name must be durable before any record in it is acknowledged.
    if (created && sync_) VERDICT_RETURN_IF_ERROR(env_->SyncDir(dir_));
    return Status::OK();
  }

  Status Append(const JournalRecord& record) override {
    std::string bytes;
    journal_format::EncodeRecord(record, &bytes);
    std::unique_lock<std::mutex> l(mu_);
    if (!error_.ok()) return error_;
    if (file_ == nullptr) return Status::FailedPrecondition("branch journal not replayed");
    pending_.append(bytes);
    return WaitDurableLocked(++appended_seq_, l);
  }

  Status Flush() override {
    std::unique_lock<std::mutex> l(mu_);
    if (!error_.ok()) return error_;
    if (file_ == nullptr) return Status::FailedPrecondition("branch journal not replayed");
    return WaitDurableLocked(appended_seq_, l);
  }

  Status AppendLazily(const JournalRecord& record) override {
    std::string bytes;
    journal_format::EncodeRecord(record, &bytes);
    std::unique_lock<std::mutex> l(mu_);
    if (!error_.ok()) return error_;
    if (file_ == nullptr) return Status::FailedPrecondition("branch journal not replayed");
    pending_.append(bytes);  // the next group's leader writes it, in order
    ++appended_seq_;
    // Bound the queue (memory, and what a crash can lose): past the limit, write a group.
    if (pending_.size() > kMaxLazyBytes) return WaitDurableLocked(appended_seq_, l);
    return Status::OK();
  }

 private:
  // Waits until every record up to `seq` is written and synced, leading a group if no one
  // else is. mu_ held (through `l`).
  Status WaitDurableLocked(uint64_t seq, std::unique_lock<std::mutex>& l) {
    if (coop::Current() != nullptr) return WaitDurableOnFiber(seq, l);
    const uint64_t my_seq = seq;
    while (synced_seq_ < my_seq) {
      if (syncing_) {
        cv_.wait(l);
        continue;
      }
      // Become the leader of a group: write and sync everything pending at once.
      syncing_ = true;
      std::string batch;
      batch.swap(pending_);
      const uint64_t batch_end = appended_seq_;
      l.unlock();
      Status s = file_->Append(batch);
      if (s.ok() && sync_) s = file_->Sync();
      l.lock();
      syncing_ = false;
      if (!s.ok()) {
        // After a failed fsync the file's contents are unknown: fail every later append.
        error_ = Status::IOError("branch journal: " + s.message());
        spdlog::error("branch journal write failed, refusing further appends: {}", s.ToString());
      }
      synced_seq_ = batch_end;
      ++groups_;
      cv_.notify_all();
      WakeFiberWaiters();
    }
    return error_;
  }

  // On a fiber of an event loop (common/coop.h), a write and fsync here would stall every
  // connection of the loop, and a fiber could never join another fiber's group: the
  // syncer thread leads the groups instead, and the fiber waits on an eventfd of its own
  // that whoever finishes the group signals (the loop runs the other fibers meanwhile).
  // Concurrent fibers' records share the syncer's groups.
  Status WaitDurableOnFiber(uint64_t seq, std::unique_lock<std::mutex>& l) {
    if (!syncer_.joinable()) syncer_ = std::thread([this] { SyncLoop(); });
    const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd >= 0) fiber_waiters_.emplace(fd, seq);
    while (synced_seq_ < seq && error_.ok()) {
      sync_wanted_ = true;
      syncer_cv_.notify_one();
      l.unlock();
      // Woken by the group's end; the time limit only bounds a wait for a lost wake-up
      // (and is the whole wait if no eventfd could be made).
      if (fd >= 0) {
        uint64_t count;
        if (coop::WaitFd(fd, POLLIN, 100) > 0) (void)!::read(fd, &count, sizeof count);
      } else {
        coop::SleepFor(std::chrono::milliseconds(1));
      }
      l.lock();
    }
    if (fd >= 0) {
      fiber_waiters_.erase(fd);
      ::close(fd);
    }
    return error_;
  }

  // After synced_seq_ advanced (mu_ held): wakes the fibers whose records are durable now.
  void WakeFiberWaiters() {
    for (const auto& [fd, seq] : fiber_waiters_) {
      if (seq > synced_seq_ && error_.ok()) continue;
      const uint64_t one = 1;
      (void)!::write(fd, &one, sizeof one);
    }
  }

  void SyncLoop() {
    std::unique_lock<std::mutex> l(mu_);
    while (true) {
      syncer_cv_.wait(l, [this] { return stop_ || sync_wanted_; });
      if (stop_) return;
      sync_wanted_ = false;
      (void)WaitDurableLocked(appended_seq_, l);  // a thread: leads a group, or waits for one
    }
  }

 public:
  Status Rewrite(const std::vector<JournalRecord>& live) override {
    std::string data;
    for (const JournalRecord& r : live) journal_format::EncodeRecord(r, &data);
    std::unique_lock<std::mutex> l(mu_);
    while (syncing_) cv_.wait(l);
    if (!error_.ok()) return error_;
    // `live` is the agent's whole state, lazily appended records included.
    pending_.clear();
    synced_seq_ = appended_seq_;
    WakeFiberWaiters();
    std::unique_ptr<WritableFile> tmp;
    VERDICT_RETURN_IF_ERROR(env_->NewWritableFile(TempPath(), &tmp));
    VERDICT_RETURN_IF_ERROR(tmp->Append(data));
    VERDICT_RETURN_IF_ERROR(tmp->Sync());
    VERDICT_RETURN_IF_ERROR(tmp->Close());
    if (file_) file_->Close();
    file_.reset();
    VERDICT_RETURN_IF_ERROR(env_->RenameFile(TempPath(), Path()));
    VERDICT_RETURN_IF_ERROR(env_->SyncDir(dir_));
    return env_->NewAppendableFile(Path(), &file_);
  }

  uint64_t SizeBytes() const override {
    std::unique_lock<std::mutex> l(mu_);
    return file_ ? file_->Size() : 0;
  }

 private:
  std::string Path() const { return dir_ + "/" + kJournalName; }
  std::string TempPath() const { return dir_ + "/" + kJournalTemp; }

  Env* const env_;
  const std::string dir_;
  const bool sync_;

  mutable std::mutex mu_;
  std::condition_variable cv_;          // guarded by mu_: signals a finished group
  std::unique_ptr<WritableFile> file_;  // guarded by mu_ (written by the group leader)
  std::string pending_;                 // guarded by mu_: encoded, not yet written
  uint64_t appended_seq_ = 0;           // guarded by mu_
  uint64_t synced_seq_ = 0;             // guarded by mu_
  bool syncing_ = false;                // guarded by mu_: a leader is writing
  uint64_t groups_ = 0;                 // guarded by mu_
  Status error_;                        // guarded by mu_: sticky write failure
  // The syncer thread (started by the first fiber that needs a sync; WaitDurableOnFiber).
  std::thread syncer_;
  std::condition_variable syncer_cv_;      // guarded by mu_: sync_wanted_ or stop_
  bool sync_wanted_ = false;               // guarded by mu_
  bool stop_ = false;                      // guarded by mu_
  std::map<int, uint64_t> fiber_waiters_;  // guarded by mu_: eventfd -> the seq it waits for
};

}  // namespace

Status OpenFileBranchJournal(Env* env, const std::string& dir, bool sync,
                             std::unique_ptr<BranchJournal>* out) {
  if (!sync) {
    spdlog::warn(
        "*** branch journal WITHOUT fsync (--unsafe-no-fsync): prepared branches "
        "can be LOST on a crash; benchmarks only ***");
  }
  auto journal = std::make_unique<FileBranchJournal>(env, dir, sync);
  VERDICT_RETURN_IF_ERROR(journal->Open());
  *out = std::move(journal);
  return Status::OK();
}

}  // namespace verdict::participant

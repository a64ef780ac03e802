#include "coordinator/server/storage_writer.h"

#include <pthread.h>

#include <chrono>

#include "coordinator/server/fatal.h"

namespace verdict::coordinator::server {

StorageWriter::StorageWriter(std::unique_ptr<storage::LogStorage> log, PeerRouter& router,
                             Metrics& metrics, PersistedCallback on_persisted)
    : router_(router),
      metrics_(metrics),
      on_persisted_(std::move(on_persisted)),
      log_(std::move(log)) {}

StorageWriter::~StorageWriter() { Stop(); }

void StorageWriter::Start() {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "raft-storage");
    Run();
  });
}

void StorageWriter::Submit(PersistJob job) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return;
  queue_.push_back(std::move(job));
  if (queue_.size() == 1) cv_.notify_one();
}

void StorageWriter::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void StorageWriter::SyncOrDie() {
  auto start = std::chrono::steady_clock::now();
  Status s = log_->Sync();
  if (!s.ok()) FatalError("log sync failed: " + s.ToString());
  metrics_.fsync_seconds.Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  metrics_.fsyncs.fetch_add(1, std::memory_order_relaxed);
  unsynced_ = false;
}

void StorageWriter::WriteBatch(std::vector<PersistJob>& jobs, bool final_sync) {
  bool need_sync = final_sync && unsynced_;
  std::vector<PersistedEvent> events;
  events.reserve(jobs.size());
  uint64_t entries = 0;
  for (PersistJob& job : jobs) {
    PersistedEvent ev;
    // A snapshot file is durable by itself, but it must not overtake (or, with discard_log,
    // erase) unsynced writes submitted before it: sync those first.
    for (auto* snap : {&job.installed_snapshot, &job.local_snapshot}) {
      if (!*snap) continue;
      if (unsynced_) SyncOrDie();
      bool discard = snap == &job.installed_snapshot;
      Status s = log_->SaveSnapshot(**snap, discard);
      if (!s.ok()) FatalError("saving snapshot failed: " + s.ToString());
      if (!discard) metrics_.snapshots_saved.fetch_add(1, std::memory_order_relaxed);
      if (discard) ev.snapshot_index = (*snap)->meta.index;
    }
    if (job.hard_state || !job.entries.empty()) {
      Status s = log_->Append(job.hard_state ? &*job.hard_state : nullptr, job.entries);
      if (!s.ok()) FatalError("log append failed: " + s.ToString());
      unsynced_ = true;
      need_sync = need_sync || job.needs_sync;
    }
    if (!job.entries.empty()) {
      ev.entries_index = job.entries.back().index;
      ev.entries_term = job.entries.back().term;
      entries += job.entries.size();
    }
    events.push_back(ev);
  }
  // After-persist messages promise entries, snapshots and term/vote changes: every batch
  // that holds one of those syncs here, before its messages leave, so earlier batches
  // left nothing such unsynced. A commit-only hard state is a hint that rides along with
  // the next sync: a follower's answer to a commit-only append costs no fsync.
  if (unsynced_ && need_sync) SyncOrDie();
  metrics_.entries_persisted.fetch_add(entries, std::memory_order_relaxed);
  for (PersistJob& job : jobs) router_.Send(std::move(job.messages_after_persist));
  bool report = false;
  for (const auto& ev : events) report = report || ev.entries_index || ev.snapshot_index;
  if (report) on_persisted_(std::move(events));
}

void StorageWriter::Run() {
  std::vector<PersistJob> batch;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    bool stopping = stopping_;
    batch.swap(queue_);
    lock.unlock();
    WriteBatch(batch, /*final_sync=*/stopping);
    batch.clear();
    lock.lock();
    if (stopping && queue_.empty()) break;
  }
}

}  // namespace verdict::coordinator::server

// Fuzzes log recovery: arbitrary bytes become segment (and snapshot) files in a MemEnv and
// LogStorage::Open recovers them. It must never crash, and never return anything that was
// not written as an intact record: every recovered entry must appear, byte for byte as its
// encoded record, in the input files. Open must also be idempotent, leave the files alone
// when it fails, and leave a log that accepts appends.
#include <spdlog/spdlog.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "common/mem_env.h"
#include "coordinator/storage/file_names.h"
#include "coordinator/storage/log_format.h"
#include "coordinator/storage/log_record.h"
#include "coordinator/storage/log_storage.h"
#include "tests/fuzz/fuzz_input.h"

namespace verdict::coordinator::storage {
namespace {

constexpr char kDir[] = "/log";

using fuzz::Input;

// Builds segments from commands, with valid checksums, so the semantic checks of recovery
// (gaps, overwrites, resets, terms, headers) get exercised, plus some raw garbage.
std::map<uint64_t, std::string> BuildStructured(Input* in) {
  std::map<uint64_t, std::string> segments;
  uint64_t seq = 1;
  AppendSegmentHeaderRecord(&segments[seq], seq);
  while (!in->empty()) {
    std::string& seg = segments[seq];
    switch (in->Byte() % 7) {
      case 0:
        AppendHardStateRecord(&seg, raft::HardState{in->Byte(), in->Byte(), in->Byte()});
        break;
      case 1:
      case 2: {
        raft::Entry e;
        e.term = in->Byte() % 4;
        e.index = in->Byte() % 16;
        e.type = static_cast<raft::EntryType>(in->Byte() % 2);
        e.data = in->Bytes(in->Byte() % 8);
        AppendEntryRecord(&seg, e);
        break;
      }
      case 3: {
        raft::Index index = in->Byte() % 16;
        AppendLogResetRecord(&seg, index, in->Byte() % 4);
        break;
      }
      case 4:
        AppendSegmentHeaderRecord(&seg, in->Byte() % 4);
        break;
      case 5:
        seg += in->Bytes(in->Byte() % 24);  // garbage
        break;
      case 6:
        seq += 1 + (in->Byte() % 8 == 0 ? 1 : 0);  // occasionally skip one: a missing segment
        AppendSegmentHeaderRecord(&segments[seq], seq);
        break;
    }
  }
  return segments;
}

bool AppearsIn(const std::map<std::string, std::string>& files, const std::string& needle) {
  for (const auto& [name, contents] : files) {
    if (contents.find(needle) != std::string::npos) return true;
  }
  return false;
}

std::map<std::string, std::string> ReadAll(MemEnv* env) {
  std::map<std::string, std::string> files;
  std::vector<std::string> names;
  FUZZ_CHECK(env->GetChildren(kDir, &names).ok());
  for (const auto& n : names) {
    if (n == format::kLockFileName) continue;  // created by Open before anything is validated
    FUZZ_CHECK(env->ReadFile(JoinPath(kDir, n), &files[n]).ok());
  }
  return files;
}

void CheckRecovered(const RecoveredState& r, const std::map<std::string, std::string>& input) {
  const raft::Index start = r.snapshot ? r.snapshot->meta.index + 1 : 1;
  for (size_t i = 0; i < r.entries.size(); ++i) {
    FUZZ_CHECK(r.entries[i].index == start + i);
    std::string record;
    AppendEntryRecord(&record, r.entries[i]);
    FUZZ_CHECK(AppearsIn(input, record));  // never garbage
  }
}

void RunOne(const uint8_t* data, size_t size) {
  Input in(data, size);
  MemEnv env;
  FUZZ_CHECK(env.CreateDirIfMissing(kDir).ok());
  auto write = [&](const std::string& name, const std::string& contents) {
    std::unique_ptr<WritableFile> f;
    FUZZ_CHECK(env.NewWritableFile(JoinPath(kDir, name), &f).ok());
    FUZZ_CHECK(f->Append(contents).ok());
    FUZZ_CHECK(f->Sync().ok());
  };
  switch (in.Byte() % 4) {
    case 0:  // raw bytes as the only segment
      write(SegmentFileName(1), in.Rest());
      break;
    case 1: {  // a valid segment header, then raw bytes
      std::string seg;
      AppendSegmentHeaderRecord(&seg, 1);
      write(SegmentFileName(1), seg + in.Rest());
      break;
    }
    case 2:  // checksummed records built from commands
      for (const auto& [seq, contents] : BuildStructured(&in)) {
        write(SegmentFileName(seq), contents);
      }
      break;
    case 3: {  // a valid log and raw bytes as a snapshot file
      std::string seg;
      AppendSegmentHeaderRecord(&seg, 1);
      for (raft::Index i = 1; i <= 8; ++i) {
        AppendEntryRecord(&seg, raft::Entry{1, i, raft::EntryType::kNormal, "x"});
      }
      write(SegmentFileName(1), seg);
      write(SnapshotFileName(in.Byte() % 10, 1), in.Rest());
      break;
    }
  }
  FUZZ_CHECK(env.SyncDir(kDir).ok());
  const auto input = ReadAll(&env);

  LogStorageOptions options;
  options.segment_bytes = 256;
  std::unique_ptr<LogStorage> log;
  RecoveredState first;
  Status s = LogStorage::Open(&env, kDir, options, &log, &first);
  if (!s.ok()) {
    FUZZ_CHECK(s.IsCorruption());
    FUZZ_CHECK(log == nullptr);
    FUZZ_CHECK(ReadAll(&env) == input);  // a failed Open changes nothing
    return;
  }
  CheckRecovered(first, input);
  const raft::Index last = log->LastIndex();
  FUZZ_CHECK(last == (first.entries.empty() ? (first.snapshot ? first.snapshot->meta.index : 0)
                                            : first.entries.back().index));

  // Recovery is idempotent.
  log.reset();
  RecoveredState second;
  FUZZ_CHECK(LogStorage::Open(&env, kDir, options, &log, &second).ok());
  FUZZ_CHECK(second.entries == first.entries);
  FUZZ_CHECK(second.hard_state == first.hard_state);
  FUZZ_CHECK(second.snapshot.has_value() == first.snapshot.has_value());

  // The recovered log accepts appends, and they survive.
  const raft::Term term = first.entries.empty() ? 1 : first.entries.back().term;
  raft::Entry next{term, last + 1, raft::EntryType::kNormal, "next"};
  FUZZ_CHECK(log->Append(nullptr, {next}).ok());
  FUZZ_CHECK(log->Sync().ok());
  log.reset();
  RecoveredState third;
  FUZZ_CHECK(LogStorage::Open(&env, kDir, options, &log, &third).ok());
  FUZZ_CHECK(!third.entries.empty() && third.entries.back() == next);
  FUZZ_CHECK(third.entries.size() == first.entries.size() + 1);
}

}  // namespace
}  // namespace verdict::coordinator::storage

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = [] {
    spdlog::set_level(spdlog::level::off);
    return true;
  }();
  (void)quiet;
  verdict::coordinator::storage::RunOne(data, size);
  return 0;
}

// Fuzzes the participant agent's branch journal (participant/branch_journal.h) and the
// agent's recovery from it: arbitrary bytes, or checksummed records built from the input
// with garbage between them, become branches.journal in a MemEnv. Replay must never crash
// and never hand back anything that was not written as an intact record; a failed replay
// changes nothing; a successful one is idempotent and leaves a journal that accepts appends
// and rewrites. Agent::Recover over the same file must succeed or refuse with Corruption,
// and a recovered agent answers calls on the recovered branches.
#include <spdlog/spdlog.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "common/coding.h"
#include "common/crc32c.h"
#include "common/mem_env.h"
#include "participant/agent.h"
#include "participant/branch_journal.h"
#include "participant/journal_format.h"
#include "tests/fuzz/fuzz_input.h"
#include "tests/unit/participant/agent_fakes.h"

namespace verdict::participant {
namespace {

constexpr char kDir[] = "/agent";
constexpr char kFile[] = "/agent/branches.journal";

const char* const kIds[] = {"", "g1", "g2", "a:b", "x"};
const BranchState kStates[] = {BranchState::kPrepared, BranchState::kPrecommitted,
                               BranchState::kFenced,   BranchState::kCommitted,
                               BranchState::kAborted,  BranchState::kReadOnly,
                               BranchState::kActive,   BranchState::kNone};

JournalRecord MakeRecord(fuzz::Input* in) {
  JournalRecord r;
  r.key.gtid = kIds[in->Byte() % 5];
  r.key.branch = kIds[in->Byte() % 5];
  r.state = kStates[in->Byte() % 8];  // ACTIVE and NONE are never written: Replay must refuse
  r.protocol = in->Byte() % 2 ? Protocol::k2PC : Protocol::k3PC;
  r.voted_unix_ms = static_cast<int64_t>(in->Byte()) << 40;
  for (int i = in->Byte() % 3; i > 0; --i) {
    r.participants.push_back({kIds[in->Byte() % 5], kIds[in->Byte() % 5], kIds[in->Byte() % 5]});
  }
  r.rm_payload = in->Bytes(in->Byte() % 6);
  return r;
}

std::string Encode(const JournalRecord& r) {
  std::string s;
  journal_format::EncodeRecord(r, &s);
  return s;
}

std::string BuildStructured(fuzz::Input* in) {
  std::string file;
  while (!in->empty()) {
    switch (in->Byte() % 6) {
      case 0:
      case 1:
      case 2:
        file += Encode(MakeRecord(in));
        break;
      case 3:
        file += in->Bytes(in->Byte() % 12);  // garbage
        break;
      case 4: {  // a record with a valid checksum around a body of raw bytes
        std::string body = in->Bytes(in->Byte() % 40);
        std::string header;
        PutFixed32(&header, static_cast<uint32_t>(body.size()));
        const uint32_t crc = crc32c::Extend(crc32c::Value(header), body.data(), body.size());
        PutFixed32(&file, crc32c::Mask(crc));
        file += header + body;
        break;
      }
      case 5: {  // a torn record
        const std::string r = Encode(MakeRecord(in));
        file += r.substr(0, r.size() * in->Byte() / 256);
        break;
      }
    }
  }
  return file;
}

std::string ReadJournal(MemEnv* env) {
  std::string data;
  if (env->FileExists(kFile)) FUZZ_CHECK(env->ReadFile(kFile, &data).ok());
  return data;
}

Status ReplayAll(MemEnv* env, std::unique_ptr<BranchJournal>* journal,
                 std::vector<JournalRecord>* out) {
  FUZZ_CHECK(OpenFileBranchJournal(env, kDir, /*sync=*/true, journal).ok());
  out->clear();
  return (*journal)->Replay([&](const JournalRecord& r) { out->push_back(r); });
}

bool SameRecords(const std::vector<JournalRecord>& a, const std::vector<JournalRecord>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Encode(a[i]) != Encode(b[i])) return false;
  }
  return true;
}

void CheckAgentRecovery(MemEnv* env, const std::vector<JournalRecord>& records, bool durable) {
  testing::FakeResourceManager rm(durable);
  testing::FakeCoordinator coordinator;
  testing::FakePeers peers;
  testing::FakeClock clock;
  std::unique_ptr<BranchJournal> journal;
  FUZZ_CHECK(OpenFileBranchJournal(env, kDir, /*sync=*/true, &journal).ok());
  AgentOptions options;
  options.name = "p";
  options.address = "127.0.0.1:1";
  Agent agent(options, rm, *journal, coordinator, peers, &clock);
  Status s = agent.Recover();
  if (!s.ok()) {
    FUZZ_CHECK(s.IsCorruption());
    return;
  }
  // Every recovered branch answers, and the calls of a decision keep it consistent.
  for (const JournalRecord& r : records) {
    BranchStatus before = agent.GetStatus(r.key);
    (void)agent.ListInDoubt();
    if (before.state == BranchState::kCommitted) {
      FUZZ_CHECK(agent.Abort(r.key).state != BranchState::kAborted);
    } else if (before.state == BranchState::kAborted) {
      FUZZ_CHECK(agent.Commit(r.key, /*one_phase=*/false).state != BranchState::kCommitted);
    }
  }
  agent.Tick();
  clock.Advance(3600 * 1000);
  agent.Tick();
}

void RunOne(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  MemEnv env;
  FUZZ_CHECK(env.CreateDirIfMissing(kDir).ok());
  const uint8_t mode = in.Byte();
  std::string contents = mode % 2 ? BuildStructured(&in) : in.Rest();
  {
    std::unique_ptr<WritableFile> f;
    FUZZ_CHECK(env.NewWritableFile(kFile, &f).ok());
    FUZZ_CHECK(f->Append(contents).ok());
    FUZZ_CHECK(f->Sync().ok());
  }
  FUZZ_CHECK(env.SyncDir(kDir).ok());

  std::unique_ptr<BranchJournal> journal;
  std::vector<JournalRecord> first;
  Status s = ReplayAll(&env, &journal, &first);
  if (!s.ok()) {
    FUZZ_CHECK(s.IsCorruption());
    FUZZ_CHECK(ReadJournal(&env) == contents);  // a refused journal is left alone
    CheckAgentRecovery(&env, first, mode & 2);
    return;
  }
  // Only a torn tail may have been cut, and every record handed back was written whole.
  const std::string after = ReadJournal(&env);
  FUZZ_CHECK(contents.compare(0, after.size(), after) == 0);
  size_t pos = 0;
  for (const JournalRecord& r : first) {
    const std::string bytes = Encode(r);
    FUZZ_CHECK(after.compare(pos, bytes.size(), bytes) == 0);
    pos += bytes.size();
  }
  FUZZ_CHECK(pos == after.size());

  // Idempotent, and the journal takes appends and rewrites afterwards.
  journal.reset();
  std::vector<JournalRecord> second;
  FUZZ_CHECK(ReplayAll(&env, &journal, &second).ok());
  FUZZ_CHECK(SameRecords(first, second));
  JournalRecord next;
  next.key = {"next", "b"};
  FUZZ_CHECK(journal->Append(next).ok());
  journal.reset();
  std::vector<JournalRecord> third;
  FUZZ_CHECK(ReplayAll(&env, &journal, &third).ok());
  FUZZ_CHECK(third.size() == first.size() + 1 && Encode(third.back()) == Encode(next));
  CheckAgentRecovery(&env, third, mode & 2);

  std::vector<JournalRecord> live(first.begin(), first.begin() + first.size() / 2);
  journal.reset();
  FUZZ_CHECK(ReplayAll(&env, &journal, &third).ok());
  FUZZ_CHECK(journal->Rewrite(live).ok());
  journal.reset();
  std::vector<JournalRecord> rewritten;
  FUZZ_CHECK(ReplayAll(&env, &journal, &rewritten).ok());
  FUZZ_CHECK(SameRecords(live, rewritten));
}

}  // namespace
}  // namespace verdict::participant

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = [] {
    spdlog::set_level(spdlog::level::off);
    return true;
  }();
  (void)quiet;
  verdict::participant::RunOne(data, size);
  return 0;
}

// BranchJournal: the participant agent's own durable record of every branch state that
// outlives a crash (PREPARED, PRECOMMITTED, FENCED, COMMITTED, ABORTED), with the
// participant list for cooperative termination and, for SQLite, the changeset
// (ResourceManager::Prepare's recovery_payload). Used by the agent for BOTH back ends.
//
// Rule (DESIGN §2.3): Append() returns only once the record is fdatasync'd; the agent
// acknowledges a transition only after Append() returned OK, except for the records whose
// durable fact the database holds (AppendLazily). Concurrent Append() calls share one
// fdatasync (group commit).
//
// Thread-safety: Append() may be called from many threads at once, and from fibers of an
// event loop (common/coop.h): a fiber never writes or syncs itself; a syncer thread leads
// the groups and the fiber waits cooperatively. Open(), Replay() and Rewrite() are called
// single-threaded (at start-up / by the compaction thread while no Append() runs, as each
// method states).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "participant/resource_manager.h"

namespace verdict {
class Env;
}

namespace verdict::participant {

// The durable states of a branch (DESIGN §4). ACTIVE is never journaled: an ACTIVE branch
// that crashes is aborted (it never voted).
enum class BranchState : uint8_t {
  kActive = 0,
  kPrepared = 1,
  kPrecommitted = 2,
  kFenced = 3,
  kCommitted = 4,
  kAborted = 5,
  kNone = 6,  // no record of the branch (never journaled; used in replies and termination)
  // Voted READ_ONLY: wrote nothing, released everything and left the transaction; it does
  // not know the outcome. Journaled (before the vote is returned) so that a restart never
  // turns it into kNone, which a terminating peer would tombstone and count as an abort.
  // Never evidence for either outcome in cooperative termination; never accepts PRECOMMIT.
  kReadOnly = 7,
  // A one-phase commit whose outcome the RM could not establish (IOError/Unavailable,
  // e.g. the connection died during COMMIT). Never journaled; every call but Open answers
  // UNAVAILABLE ("in doubt, ask again later"); never reported as COMMITTED or ABORTED.
  kOutcomeUnknown = 8,
};
const char* BranchStateName(BranchState s);

// Which commit protocol a branch runs under (decides its termination rule).
enum class Protocol : uint8_t { k2PC = 2, k3PC = 3 };

// Another branch of the same gtid (possibly on this agent): whom to ask during
// cooperative termination.
struct PeerRef {
  std::string name;     // participant name
  std::string address;  // HOST:PORT of its agent
  std::string branch;   // the branch name on that participant
  friend bool operator==(const PeerRef&, const PeerRef&) = default;
};

// One journal record: the branch's new state. A kPrepared record carries participants,
// protocol and rm_payload; later records for the same key carry only the state (replay
// keeps the fields of the kPrepared record).
struct JournalRecord {
  BranchKey key;
  BranchState state = BranchState::kPrepared;
  Protocol protocol = Protocol::k2PC;
  std::vector<PeerRef> participants;  // every branch of the gtid, this one included
  std::string rm_payload;             // kPrepared only; opaque to the journal
  // kPrepared only: when the YES vote was given, in wall-clock ms since the epoch (0 =
  // unknown; journals written before this field had a meaning carry 0 there). Cooperative
  // termination needs it after a restart (Agent::Terminate).
  int64_t voted_unix_ms = 0;
};

class BranchJournal {
 public:
  virtual ~BranchJournal() = default;

  // Appends `record` and makes it durable. Returns OK only after the bytes are
  // fdatasync'd. IOError: nothing is promised (the agent must not acknowledge; it keeps
  // the branch in its previous state and reports the error to the caller).
  // Thread-safe; concurrent callers share one sync.
  virtual Status Append(const JournalRecord& record) = 0;

  // Queues `record` to be written with the next group and returns at once, without waiting
  // for it to be durable: it may be lost in a crash. Only for records whose loss recovery
  // repairs from elsewhere (a COMMITTED record after the database holds the commit and its
  // commit marker: Agent::Recover consults the marker; a 2PC PREPARED record of a branch
  // the database holds prepared by itself: Agent::Recover adopts it from
  // ResourceManager::ListPrepared). The record is written, in order, by the next group
  // (any Append() or Flush()); an appender waits for a group only when more than
  // kMaxLazyBytes are queued. IOError after a failed write.
  virtual Status AppendLazily(const JournalRecord& record) = 0;

  // Writes and fdatasyncs every record appended so far (lazily ones included); returns at
  // once if there are none. The agent calls it from its timer. Thread-safe.
  virtual Status Flush() = 0;

  static constexpr size_t kMaxLazyBytes = 1u << 20;

  // Calls `fn` for every valid record in file order. A torn final record (crash during
  // append) is truncated away; a corrupt record before valid data is Corruption (the
  // agent refuses to start). Start-up only, before any Append().
  virtual Status Replay(const std::function<void(const JournalRecord&)>& fn) = 0;

  // Atomically replaces the journal with `live` (the records of undecided branches plus
  // recently decided ones the agent still wants to answer for): temp file, fsync,
  // rename, fsync dir. No Append() may run concurrently.
  virtual Status Rewrite(const std::vector<JournalRecord>& live) = 0;

  // Bytes in the journal file (for deciding when to Rewrite).
  virtual uint64_t SizeBytes() const = 0;
};

// The file-backed journal at `dir`/branches.journal. `sync` = false is the benchmark-only
// unsafe mode (logged loudly). Fails if the file cannot be opened.
Status OpenFileBranchJournal(Env* env, const std::string& dir, bool sync,
                             std::unique_ptr<BranchJournal>* out);

}  // namespace verdict::participant

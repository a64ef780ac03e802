// Snapshot files: a checksummed header (SnapshotMeta) followed by the state machine's
// data, written atomically (temp file, fsync, rename, fsync dir). Stateless functions;
// thread-safe as far as the Env is.
#pragma once

#include <string>

#include "common/env.h"
#include "common/status.h"
#include "coordinator/raft/types.h"

namespace verdict::coordinator::storage {

namespace raft = ::verdict::coordinator::raft;

// Writes `snapshot` to dir/SnapshotFileName(index, term) atomically: <name>.tmp is
// written and fdatasync'ed, renamed over <name>, and the directory fsync'ed. On return OK
// the file is durable; on error a <name>.tmp may be left behind (Open removes it).
Status WriteSnapshotFile(Env* env, const std::string& dir, const raft::Snapshot& snapshot);

// Reads and verifies the snapshot at `path`. Corruption (naming the file) if any checksum,
// length, magic or version check fails, or the header does not match the file name.
Status ReadSnapshotFile(Env* env, const std::string& path, raft::Snapshot* snapshot);

}  // namespace verdict::coordinator::storage

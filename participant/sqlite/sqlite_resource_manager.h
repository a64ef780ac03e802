// SqliteResourceManager: the ResourceManager for one SQLite database file (DESIGN §6).
//
// Concurrency design (docs/participant.md): each open branch runs in its own connection
// and local transaction, with a session object recording its changeset. Rows a branch
// writes are locked in an agent-level RowLockTable keyed by (table, primary key). At
// PREPARE the changeset becomes the recovery payload (journaled by the agent) and the
// local transaction is ROLLED BACK, releasing SQLite's single write lock; the row locks
// stay until the decision. COMMIT re-applies the changeset plus a marker row in one local
// transaction; concurrent COMMITs share that transaction (and its fsync). After a
// restart, Restore() re-takes the row locks from the journaled changeset.
//
// Restrictions: every table a branch writes needs a PRIMARY KEY (the session extension
// records nothing else); transaction-control statements are refused. Reads are not
// locked (read committed, like PostgreSQL's default); writes are first-writer-wins.
//
// Thread-safety: as ResourceManager.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "participant/resource_manager.h"

namespace verdict::participant::sqlite {

struct SqliteOptions {
  std::string path;  // the database file (created if absent)
  bool sync = true;  // PRAGMA synchronous=FULL; false only for benchmarks
  // How long a COMMIT/ABORT of a prepared branch waits for SQLite's write lock (held by a
  // branch that is executing) before failing with Unavailable (it is then retried).
  int apply_busy_timeout_ms = 10000;
};

std::unique_ptr<ResourceManager> NewSqliteResourceManager(const SqliteOptions& options);

// The lock keys of the rows a changeset touches (table name and primary-key values),
// sorted and unique. Corruption if the changeset cannot be parsed. Exposed for tests.
Status ChangesetLockKeys(std::string_view changeset, std::vector<std::string>* keys);

}  // namespace verdict::participant::sqlite

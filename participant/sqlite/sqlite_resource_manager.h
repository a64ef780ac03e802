// SqliteResourceManager: the ResourceManager for one SQLite database file (DESIGN §6).
//
// Concurrency design (docs/participant.md): "row-level locks in the agent plus changeset
// re-application". An open branch holds no SQLite transaction between its statements: it
// keeps the changeset of everything it wrote so far. Each statement runs in a short local
// transaction of its own (BEGIN, attach a session, re-apply the branch's changeset, run the
// statement, capture the session's changeset as the branch's new one, ROLLBACK), so
// SQLite's single write lock is held only while a statement runs. Rows a branch writes are
// locked in an agent-level RowLockTable keyed by (table, primary key) — taken before that
// ROLLBACK — until the branch ends. At PREPARE the changeset becomes the recovery payload
// (journaled by the agent). COMMIT (and a one-phase commit) applies the changeset plus a
// marker row in one local transaction; concurrent COMMITs share that transaction (and its
// fsync). After a restart, Restore() re-takes the row locks from the journaled changeset.
// A branch that runs DDL (or writes the temp database), which a session cannot record,
// keeps its local transaction open instead until it ends ("pinned").
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

-- Bookkeeping the SQLite participant agent keeps inside the shard's own database file.
-- Created (if missing) by the agent at start-up; compiled into the agent from this file.
--
-- verdict_commit_markers: one row per committed branch, written in the SAME local SQLite
-- transaction as the branch's data. A COMMIT that finds its marker is a no-op (idempotent
-- commit); recovery after a crash between the local commit and the journal's COMMITTED
-- record is exact. It is also the agent's durable evidence of a commit once the agent has
-- forgotten the branch (--decided-retention-ms, then journal compaction): a terminating
-- peer's AbortIfUnvoted, GetBranchStatus and a repeated COMMIT are answered COMMITTED
-- from it. A branch that wrote nothing (READ_ONLY vote, read-only one-phase commit) has
-- no row. Pruning: the agent deletes rows whose committed_ms is older than
-- --commit-evidence-retention-ms (7 days by default; 0 keeps them forever); see
-- docs/participant.md for the rule and what it assumes.
CREATE TABLE IF NOT EXISTS verdict_commit_markers (
  gtid         TEXT    NOT NULL,
  branch       TEXT    NOT NULL,
  committed_ms INTEGER NOT NULL,  -- unix milliseconds of the local commit
  PRIMARY KEY (gtid, branch)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS verdict_commit_markers_by_time
  ON verdict_commit_markers(committed_ms);

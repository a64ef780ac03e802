-- Bookkeeping the SQLite participant agent keeps inside the shard's own database file.
-- Created (if missing) by the agent at start-up; compiled into the agent from this file.
--
-- verdict_commit_markers: one row per committed branch, written in the SAME local SQLite
-- transaction as the branch's data. A COMMIT that finds its marker is a no-op (idempotent
-- commit); recovery after a crash between the local commit and the journal's COMMITTED
-- record is exact.
CREATE TABLE IF NOT EXISTS verdict_commit_markers (
  gtid         TEXT    NOT NULL,
  branch       TEXT    NOT NULL,
  committed_ms INTEGER NOT NULL,  -- unix milliseconds of the local commit
  PRIMARY KEY (gtid, branch)
) WITHOUT ROWID;

-- Bookkeeping the PostgreSQL participant agent keeps inside the shard's own database.
-- Created (if missing) by the agent at start-up (it needs CREATE on the database the first
-- time); compiled into the agent from this file. A schema of its own keeps it out of the
-- application's tables and out of reach of a branch's search_path.
--
-- verdict.commit_markers: durable evidence of a commit. The agent inserts the row INSIDE
-- the branch's own transaction, just before PREPARE TRANSACTION (two-phase) or COMMIT
-- (one-phase), in the same round trip. The row therefore becomes visible exactly when
-- the branch's data commits (COMMIT PREPARED, or the one-phase COMMIT), and disappears
-- with it on ROLLBACK PREPARED — including an operator's manual one. So, for a branch of
-- this participant:
--   row visible                    <=> the branch committed;
--   no row and no prepared gid     => it never committed (never prepared, rolled back,
--                                     or rolled back by hand: a COMMIT decision for it
--                                     is a heuristic hazard, reported as NOT_FOUND).
-- A branch that wrote nothing (READ_ONLY vote, read-only one-phase commit) has no row.
-- A second PREPARE of a committed key fails on the primary key and votes NO.
--
-- gid is the branch's prepared-transaction id, verdict:<gtid>:<participant>:<branch>
-- (participant/postgres/gid.h), so participants sharing one database never collide.
--
-- seen_at is NULL when inserted (the prepare time is not the commit time: a branch may be
-- in doubt for days). The agent's periodic sweep stamps committed rows that have none with
-- now() — never earlier than their commit — and deletes rows stamped more than
-- --commit-evidence-retention-ms ago (7 days by default; 0 = never). See
-- docs/participant-postgres.md.
CREATE SCHEMA IF NOT EXISTS verdict;
CREATE TABLE IF NOT EXISTS verdict.commit_markers (
  gid     text        PRIMARY KEY,
  seen_at timestamptz
);
CREATE INDEX IF NOT EXISTS commit_markers_seen_at ON verdict.commit_markers (seen_at);

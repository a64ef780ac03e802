-- The bank demo's table (examples/bank, verdict-bank --init), the same on every shard.
-- Account i lives on shard i % (number of shards); every transfer moves money between two
-- accounts in one global transaction, so the sum over all shards never changes.
CREATE TABLE IF NOT EXISTS accounts (
  id      INTEGER PRIMARY KEY,
  balance INTEGER NOT NULL
)

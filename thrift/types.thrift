// Types shared by every Verdict service: outcomes, result codes, node addresses.
// C++ code is generated at build time (thrift/CMakeLists.txt) into the build tree.

namespace cpp verdict.rpc
namespace py verdict_rpc.types

// The decision recorded for a global transaction (DESIGN §2.4).
enum Outcome {
  COMMIT = 1,
  ABORT = 2,
}

// How a call ended. Every response carries one; fields beside it are meaningful as each
// response documents.
enum ResultCode {
  OK = 0,
  // This node is not the leader. The response's `leader` holds the leader's id and
  // address when this node knows them (id 0 = unknown); retry there.
  NOT_LEADER = 1,
  // The outcome of the request is in doubt (timeout, leadership lost mid-flight). Retrying
  // the same request is safe: every call is idempotent.
  UNKNOWN = 2,
  // The request is malformed (empty gtid, unknown enum value, oversized field); `message`
  // says why. Retrying it unchanged fails the same way.
  INVALID_ARGUMENT = 3,
  // Nothing is recorded for the gtid (GetDecision).
  NOT_FOUND = 4,
  // The node is shutting down or cannot serve right now; retry elsewhere or later.
  UNAVAILABLE = 5,
  // The call does not fit the transaction's state (a branch registered after Commit was
  // requested, resolve of a decided transaction, ...); `message` says why. Nothing changed.
  WRONG_STATE = 6,
}

struct NodeAddress {
  1: i64 id,
  2: string address,  // HOST:PORT
}

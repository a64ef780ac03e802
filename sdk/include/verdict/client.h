// libverdict: the C++ client of Verdict. A service begins a global transaction on the
// coordinator group, runs SQL on the participants (shards) it touches, and asks for the
// commit; Verdict makes the outcome all-or-nothing across them (DESIGN §3).
//
//   verdict::sdk::ClientOptions options;
//   options.coordinators = {"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"};
//   std::unique_ptr<verdict::sdk::Client> client;
//   verdict::sdk::Status s = verdict::sdk::Client::Connect(options, &client);
//   std::unique_ptr<verdict::sdk::Transaction> txn;
//   s = client->Begin({}, &txn);
//   s = txn->Execute("shard_a", "UPDATE accounts SET balance = balance - ? WHERE id = ?",
//                    {Value::Integer(10), Value::Integer(7)});
//   s = txn->Execute("shard_b", "UPDATE accounts SET balance = balance + ? WHERE id = ?",
//                    {Value::Integer(10), Value::Integer(8)});
//   verdict::sdk::Outcome outcome;
//   s = txn->Commit(&outcome);  // kCommitted, kAborted, or kUnknown (ask again: Outcome())
//
// Participants are named as they registered with the coordinator group (their --name);
// the client learns their addresses from the group (ListParticipants).
//
// Thread-safety: a Client and its Transactions are used by one thread at a time (give
// each thread its own Client). A Transaction must not outlive its Client. Every call
// blocks; `rpc_timeout_ms` bounds each RPC.
// Nothing here is thrown: every call returns a Status.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace verdict::sdk {

class Status {
 public:
  enum class Code {
    kOk = 0,
    kInvalidArgument,  // a malformed call (bad SQL parameters, unknown participant...)
    kNotFound,         // no such transaction or participant
    kUnavailable,      // nobody could be reached in time; the call may be retried
    kAborted,          // the transaction is aborted (a statement failed, the deadline...)
    kUnknown,          // the outcome is not known yet (ask again with Client::Outcome)
    kSqlError,         // a statement failed; its branch, and so the transaction, aborts
    kLockTimeout,      // a statement waited too long for a lock; idem
    kWrongState,       // the call does not fit the transaction's state
  };
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status OK() { return Status(); }
  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

// One SQL value: a statement parameter or a result cell.
class Value {
 public:
  enum class Type { kNull, kInteger, kReal, kText, kBlob };
  Value() = default;  // NULL
  static Value Null() { return Value(); }
  static Value Integer(int64_t v);
  static Value Real(double v);
  static Value Text(std::string v);
  static Value Blob(std::string v);
  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  int64_t integer() const { return integer_; }         // kInteger
  double real() const { return real_; }                // kReal
  const std::string& bytes() const { return bytes_; }  // kText, kBlob
  bool operator==(const Value& o) const;

 private:
  Type type_ = Type::kNull;
  int64_t integer_ = 0;
  double real_ = 0;
  std::string bytes_;
};

// What a statement returned.
struct Result {
  std::vector<std::string> columns;
  std::vector<std::vector<Value>> rows;
  int64_t rows_affected = 0;
};

enum class Protocol { kTwoPhase, kThreePhase };
enum class Outcome { kCommitted, kAborted, kUnknown };
const char* OutcomeName(Outcome o);

struct ClientOptions {
  std::vector<std::string> coordinators;  // HOST:PORT of every coordinator node
  int rpc_timeout_ms = 5000;              // bound on each RPC
  // How long Begin/Commit/Abort/Outcome keep looking for the leader (elections,
  // NOT_LEADER hints, unreachable nodes) before they give up with kUnavailable.
  int leader_wait_ms = 10000;
};

struct TxnOptions {
  Protocol protocol = Protocol::kTwoPhase;
  // Time the transaction may take until its decision; past it, it aborts. 0 = the
  // coordinator's default (--default-deadline-ms).
  int64_t deadline_ms = 0;
};

class Transaction;

class Client {
 public:
  // Checks the options and learns the participants from the coordinator group.
  static Status Connect(const ClientOptions& options, std::unique_ptr<Client>* out);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Begins a global transaction on the leader.
  Status Begin(const TxnOptions& options, std::unique_ptr<Transaction>* out);
  // The decision on `gtid` as the leader knows it (kUnknown while undecided).
  Status GetOutcome(const std::string& gtid, Outcome* out);
  // The participants the coordinator group knows: name -> address.
  Status Participants(std::map<std::string, std::string>* out);
  // The transactions the leader knows to be in doubt: a branch may still be prepared
  // without knowing the outcome (phase two not finished).
  Status ListInDoubt(std::vector<std::string>* gtids);

  struct Impl;

 private:
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class Transaction {
 public:
  ~Transaction();  // aborts the transaction if neither Commit nor Abort was called
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  const std::string& gtid() const { return gtid_; }

  // Runs one statement (`?` placeholders, bound to `params`) on `participant`'s branch of
  // this transaction. The first statement on a participant opens the branch there (in the
  // same round trip) and registers it with the coordinator. kSqlError / kLockTimeout: the
  // branch aborted, so the transaction will abort (call Abort). kUnavailable: the
  // participant could not be reached; the statement may or may not have run (Abort).
  Status Execute(const std::string& participant, const std::string& sql,
                 const std::vector<Value>& params = {}, Result* result = nullptr);
  // Asks for the commit and waits until the decision is applied: *outcome is kCommitted
  // or kAborted (with the reason in the Status message), or kUnknown if the leader was
  // lost on the way (the decision may still come: Client::GetOutcome). OK in all three
  // cases; an error Status means the request itself failed (kUnavailable: no leader).
  Status Commit(Outcome* outcome);
  // Aborts the transaction (idempotent).
  Status Abort();

 private:
  friend class Client;
  Transaction(Client::Impl* client, std::string gtid, TxnOptions options, int64_t deadline_ms);

  Client::Impl* const client_;
  const std::string gtid_;
  const TxnOptions options_;
  const int64_t deadline_ms_;                  // in force (after the coordinator clamped it)
  std::map<std::string, int64_t> statements_;  // participant -> statements run (seq)
  bool finished_ = false;
};

}  // namespace verdict::sdk

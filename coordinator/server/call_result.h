// CallResult: how a client call handled by the node ended, and Completion, the one-shot
// slot through which the event loop hands it to the RPC thread that waits for it.
// OneShot is thread-safe; CallResult is a plain value.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>

#include "coordinator/raft/types.h"
#include "coordinator/txn/decision_register.h"

namespace verdict::coordinator::server {

namespace raft = ::verdict::coordinator::raft;

struct CallResult {
  enum class Code {
    kOk,           // `record` is the applied decision
    kNotFound,     // a read found no decision
    kNotLeader,    // see leader / leader_address (kNoNode / "" if unknown)
    kUnknown,      // not known to be applied (timeout, lost leadership): retry
    kUnavailable,  // the node is shutting down
    kInvalidArgument,
    kWrongState,  // the call does not fit the transaction's state
  };
  Code code = Code::kUnknown;
  std::optional<txn::DecisionRecord> record;
  raft::NodeId leader = raft::kNoNode;
  std::string leader_address;
  std::string message;
};

// A one-shot slot for a value of type T handed from the event loop to a waiting thread.
template <typename T>
class OneShot {
 public:
  // The first Set() wins; later ones are ignored.
  void Set(T result) {
    std::lock_guard<std::mutex> lock(mu_);
    if (done_) return;
    result_ = std::move(result);
    done_ = true;
    cv_.notify_all();
  }
  // Waits up to `timeout` for Set(); false on timeout.
  bool Wait(std::chrono::milliseconds timeout, T* out) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, timeout, [this] { return done_; })) return false;
    *out = std::move(result_);
    return true;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;  // guarded by mu_
  T result_;           // guarded by mu_
};

using Completion = OneShot<CallResult>;

}  // namespace verdict::coordinator::server

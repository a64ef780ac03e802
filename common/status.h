// Status: the result of an operation that can fail, in the style of LevelDB's.
// A Status is a value; copying it is cheap. Thread-compatible.
#pragma once

#include <string>
#include <string_view>
#include <utility>

namespace verdict {

class Status {
 public:
  enum class Code {
    kOk = 0,
    kNotFound,
    kCorruption,
    kInvalidArgument,
    kIOError,
    kNotLeader,
    kTimeout,
    kUnavailable,
    kAborted,
    kFailedPrecondition,
  };

  Status() = default;
  static Status OK() { return Status(); }
  static Status NotFound(std::string_view m) { return Status(Code::kNotFound, m); }
  static Status Corruption(std::string_view m) { return Status(Code::kCorruption, m); }
  static Status InvalidArgument(std::string_view m) { return Status(Code::kInvalidArgument, m); }
  static Status IOError(std::string_view m) { return Status(Code::kIOError, m); }
  static Status NotLeader(std::string_view m) { return Status(Code::kNotLeader, m); }
  static Status Timeout(std::string_view m) { return Status(Code::kTimeout, m); }
  static Status Unavailable(std::string_view m) { return Status(Code::kUnavailable, m); }
  static Status Aborted(std::string_view m) { return Status(Code::kAborted, m); }
  static Status FailedPrecondition(std::string_view m) {
    return Status(Code::kFailedPrecondition, m);
  }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  bool IsNotFound() const { return code_ == Code::kNotFound; }
  bool IsCorruption() const { return code_ == Code::kCorruption; }
  bool IsIOError() const { return code_ == Code::kIOError; }
  bool IsNotLeader() const { return code_ == Code::kNotLeader; }

  // "OK" or "<code name>: <message>".
  std::string ToString() const;

 private:
  Status(Code code, std::string_view message) : code_(code), message_(message) {}

  Code code_ = Code::kOk;
  std::string message_;
};

// Returns early from the enclosing function if `expr` is not OK.
#define VERDICT_RETURN_IF_ERROR(expr) \
  do {                                \
    ::verdict::Status _st = (expr);   \
    if (!_st.ok()) return _st;        \
  } while (0)

}  // namespace verdict

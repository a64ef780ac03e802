// ThriftChannel: one client connection to a multiplexed Verdict service (framed
// transport, binary protocol, TMultiplexedProtocol with the service's name), with
// connect/send/receive timeouts, to HOST:PORT or to unix:PATH (a Unix-domain socket).
// Not thread-safe: one user at a time.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"

namespace apache::thrift::protocol {
class TProtocol;
}
namespace apache::thrift::transport {
class TTransport;
}

namespace verdict::rpc {

// An address of this form names a Unix-domain socket: "unix:/run/verdict/agent.sock".
inline constexpr char kUnixPrefix[] = "unix:";

// Splits "HOST:PORT" ("[v6]:PORT" too). InvalidArgument if malformed.
Status SplitHostPort(const std::string& address, std::string* host, int* port);

class ThriftChannel {
 public:
  ThriftChannel(std::string address, std::string service, int timeout_ms)
      : address_(std::move(address)), service_(std::move(service)), timeout_ms_(timeout_ms) {}
  ~ThriftChannel();

  // Opens the connection. IOError/Unavailable on failure.
  Status Open();
  void Close();
  std::shared_ptr<apache::thrift::protocol::TProtocol> protocol() const { return protocol_; }

 private:
  const std::string address_;
  const std::string service_;
  const int timeout_ms_;
  std::shared_ptr<apache::thrift::transport::TTransport> transport_;
  std::shared_ptr<apache::thrift::protocol::TProtocol> protocol_;
};

}  // namespace verdict::rpc

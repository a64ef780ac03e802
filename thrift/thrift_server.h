// ThriftServer: serves named Thrift services on one address with a TMultiplexedProcessor,
// framed transport (bounded frame size, per-frame message accounting), the strict binary
// protocol and one thread per connection. Used by every Verdict daemon.
// Start() and Stop() are called from the owning thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "common/status.h"

namespace apache::thrift {
class TProcessor;
namespace server {
class TThreadedServer;
}
namespace transport {
class TServerSocket;
}
}  // namespace apache::thrift

namespace verdict::rpc {

class ThriftServer {
 public:
  // A server on a Unix-domain socket at `path` (for clients on the same host), with the
  // same framing, protocol and threading. A stale socket file at `path` is replaced.
  static std::unique_ptr<ThriftServer> OnUnixSocket(
      const std::string& path, uint32_t max_frame_bytes,
      const std::map<std::string, std::shared_ptr<apache::thrift::TProcessor>>& services);

  // `services` maps each multiplexed service name to its processor.
  ThriftServer(std::string host, int port, uint32_t max_frame_bytes,
               const std::map<std::string, std::shared_ptr<apache::thrift::TProcessor>>& services);
  ThriftServer(const ThriftServer&) = delete;
  ThriftServer& operator=(const ThriftServer&) = delete;
  ~ThriftServer();  // Stop()s

  // Binds and starts serving; returns once listening, or IOError if the address cannot be
  // bound.
  Status Start();
  // Stops accepting, interrupts open connections and waits for their threads. Idempotent.
  void Stop();

 private:
  ThriftServer(std::string unix_path, uint32_t max_frame_bytes,
               const std::map<std::string, std::shared_ptr<apache::thrift::TProcessor>>& services);
  void Build(std::shared_ptr<apache::thrift::transport::TServerSocket> socket,
             uint32_t max_frame_bytes,
             const std::map<std::string, std::shared_ptr<apache::thrift::TProcessor>>& services);
  std::string Where() const;

  const std::string host_;
  const int port_;
  const std::string unix_path_;  // non-empty for a Unix-domain socket
  std::shared_ptr<apache::thrift::server::TThreadedServer> server_;
  std::thread thread_;
};

}  // namespace verdict::rpc

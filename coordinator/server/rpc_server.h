// RpcServer: serves RaftService and CoordinatorService on the node's one address with a
// TMultiplexedProcessor, framed transport (bounded frame size) and the binary protocol,
// one thread per connection. Thread-safe: Start() and Stop() from the owning thread.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "common/status.h"

namespace apache::thrift {
class TProcessor;
namespace server {
class TThreadedServer;
}
}  // namespace apache::thrift

namespace verdict::coordinator::server {

class RpcServer {
 public:
  // `raft` and `coordinator` are the services' processors.
  RpcServer(std::string host, int port, uint32_t max_frame_bytes,
            std::shared_ptr<apache::thrift::TProcessor> raft,
            std::shared_ptr<apache::thrift::TProcessor> coordinator);
  RpcServer(const RpcServer&) = delete;
  RpcServer& operator=(const RpcServer&) = delete;
  ~RpcServer();  // Stop()s

  // Binds and starts serving; returns once listening, or IOError if the address cannot be
  // bound.
  Status Start();
  // Stops accepting, interrupts open connections and waits for their threads. Idempotent.
  void Stop();

 private:
  const std::string host_;
  const int port_;
  std::shared_ptr<apache::thrift::server::TThreadedServer> server_;
  std::thread thread_;
};

}  // namespace verdict::coordinator::server

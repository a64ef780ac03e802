// FiberServer: serves named Thrift services like ThriftServer (TMultiplexedProcessor,
// framed transport with a bounded frame size, the strict binary protocol) but runs every
// connection as a fiber (Boost.Context) on an event-loop thread (Options::loops of them; a
// connection stays on the loop it was handed) instead of a thread of its own. A fiber reads a
// request, runs the ordinary synchronous processor and handler, and writes the answer; wherever
// that code would block — a PostgreSQL result, a busy mutex, a sleep — it waits through
// common/coop.h, which suspends the fiber and lets the loop serve the others. So one wake-up of the
// loop serves every socket that is ready, and a request costs no thread switches of its own.
//
// What runs on it must follow coop.h's rule (no plain mutex that fibers contend for, no
// other mutex held across a cooperative wait), and must not do long work without waiting
// cooperatively: a synchronous fsync or a CPU-bound call stalls every connection for its
// duration. The participant agent uses it for the PostgreSQL back end, whose request path
// waits only on PostgreSQL (docs/participant.md, "Server model").
//
// Start() and Stop() are called from the owning thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace apache::thrift {
class TProcessor;
}

namespace verdict::rpc {

class FiberServer {
 public:
  struct Options {
    std::string host;       // TCP listener HOST (IPv4 or IPv6 literal, or a name)
    int port = 0;           // and PORT
    std::string unix_path;  // also a Unix-domain socket here, if not empty
    uint32_t max_frame_bytes = 64u << 20;
    size_t stack_bytes = 512 * 1024;  // per connection (virtual; a guard page below it)
    // Event-loop threads; connections are spread over them round-robin as they arrive.
    int loops = 1;
  };
  FiberServer(Options options,
              const std::map<std::string, std::shared_ptr<apache::thrift::TProcessor>>& services);
  FiberServer(const FiberServer&) = delete;
  FiberServer& operator=(const FiberServer&) = delete;
  ~FiberServer();  // Stop()s

  // Binds every listener and starts the loop; IOError if an address cannot be bound.
  Status Start();
  // Stops accepting, closes idle connections, lets the requests in progress finish, and
  // joins the loop. Idempotent.
  void Stop();

  class Loop;

 private:
  const Options options_;
  std::vector<std::unique_ptr<Loop>> loops_;
};

}  // namespace verdict::rpc

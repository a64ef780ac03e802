// MetricsHttpServer: a tiny HTTP/1.1 server (Boost.Beast) that answers GET /metrics with
// the Prometheus text exposition of a Metrics object, and 404 elsewhere. One thread,
// asynchronous, one request per connection. Thread-safe: Start()/Stop() from the owner.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "common/status.h"
#include "coordinator/server/metrics.h"

namespace verdict::coordinator::server {

class MetricsHttpServer {
 public:
  MetricsHttpServer(std::string host, int port, const Metrics& metrics);
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;
  ~MetricsHttpServer();  // Stop()s

  // Binds and starts the thread; IOError if the port cannot be bound.
  Status Start();
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace verdict::coordinator::server

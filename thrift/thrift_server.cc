#include "thrift/thrift_server.h"

#include <spdlog/spdlog.h>
#include <thrift/TOutput.h>
#include <thrift/processor/TMultiplexedProcessor.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/server/TThreadedServer.h>
#include <thrift/transport/TServerSocket.h>

#include <future>

#include "thrift/framed_transport.h"

namespace verdict::rpc {

namespace {

// Thrift's library logs (e.g. a peer sending garbage) go to spdlog at debug level.
void ThriftLog(const char* message) { spdlog::debug("thrift: {}", message); }

}  // namespace

ThriftServer::ThriftServer(
    std::string host, int port, uint32_t max_frame_bytes,
    const std::map<std::string, std::shared_ptr<apache::thrift::TProcessor>>& services)
    : host_(std::move(host)), port_(port) {
  apache::thrift::GlobalOutput.setOutputFunction(ThriftLog);
  auto mux = std::make_shared<apache::thrift::TMultiplexedProcessor>();
  for (const auto& [name, processor] : services) mux->registerProcessor(name, processor);
  auto socket = std::make_shared<apache::thrift::transport::TServerSocket>(host_, port_);
  auto protocol = std::make_shared<apache::thrift::protocol::TBinaryProtocolFactory>(
      /*string_limit=*/static_cast<int32_t>(max_frame_bytes), /*container_limit=*/1 << 20,
      /*strict_read=*/true, /*strict_write=*/true);
  server_ = std::make_shared<apache::thrift::server::TThreadedServer>(
      mux, socket, std::make_shared<BoundedFramedTransportFactory>(max_frame_bytes), protocol);
}

ThriftServer::~ThriftServer() { Stop(); }

Status ThriftServer::Start() {
  auto listening = std::make_shared<std::promise<std::string>>();
  auto socket = std::dynamic_pointer_cast<apache::thrift::transport::TServerSocket>(
      server_->getServerTransport());
  socket->setListenCallback([listening](int) {
    try {
      listening->set_value("");
    } catch (const std::future_error&) {
    }
  });
  std::future<std::string> result = listening->get_future();
  thread_ = std::thread([this, listening] {
    try {
      server_->serve();
    } catch (const std::exception& e) {
      try {
        listening->set_value(e.what());
      } catch (const std::future_error&) {
        spdlog::error("RPC server stopped: {}", e.what());
      }
    }
  });
  std::string error = result.get();
  if (!error.empty()) {
    thread_.join();
    return Status::IOError("cannot listen on " + host_ + ":" + std::to_string(port_) + ": " +
                           error);
  }
  return Status::OK();
}

void ThriftServer::Stop() {
  if (!thread_.joinable()) return;
  server_->stop();
  thread_.join();
}

}  // namespace verdict::rpc

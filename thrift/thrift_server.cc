#include "thrift/thrift_server.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <thrift/TOutput.h>
#include <thrift/processor/TMultiplexedProcessor.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/server/TThreadedServer.h>
#include <thrift/transport/TServerSocket.h>
#include <unistd.h>

#include <cstring>
#include <future>

#include "thrift/framed_transport.h"

namespace verdict::rpc {

namespace {

// Thrift's library logs (e.g. a peer sending garbage) go to spdlog at debug level.
void ThriftLog(const char* message) { spdlog::debug("thrift: {}", message); }

// Whether something accepts connections on the Unix-domain socket at `path`.
bool UnixSocketAnswers(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) return false;
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0) return false;
  const bool answers = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return answers;
}

}  // namespace

ThriftServer::ThriftServer(
    std::string host, int port, uint32_t max_frame_bytes,
    const std::map<std::string, std::shared_ptr<apache::thrift::TProcessor>>& services)
    : host_(std::move(host)), port_(port) {
  Build(std::make_shared<apache::thrift::transport::TServerSocket>(host_, port_), max_frame_bytes,
        services);
}

ThriftServer::ThriftServer(
    std::string unix_path, uint32_t max_frame_bytes,
    const std::map<std::string, std::shared_ptr<apache::thrift::TProcessor>>& services)
    : port_(0), unix_path_(std::move(unix_path)) {
  Build(std::make_shared<apache::thrift::transport::TServerSocket>(unix_path_), max_frame_bytes,
        services);
}

std::unique_ptr<ThriftServer> ThriftServer::OnUnixSocket(
    const std::string& path, uint32_t max_frame_bytes,
    const std::map<std::string, std::shared_ptr<apache::thrift::TProcessor>>& services) {
  return std::unique_ptr<ThriftServer>(new ThriftServer(path, max_frame_bytes, services));
}

void ThriftServer::Build(
    std::shared_ptr<apache::thrift::transport::TServerSocket> socket, uint32_t max_frame_bytes,
    const std::map<std::string, std::shared_ptr<apache::thrift::TProcessor>>& services) {
  apache::thrift::GlobalOutput.setOutputFunction(ThriftLog);
  auto mux = std::make_shared<apache::thrift::TMultiplexedProcessor>();
  for (const auto& [name, processor] : services) mux->registerProcessor(name, processor);
  auto protocol = std::make_shared<apache::thrift::protocol::TBinaryProtocolFactory>(
      /*string_limit=*/static_cast<int32_t>(max_frame_bytes), /*container_limit=*/1 << 20,
      /*strict_read=*/true, /*strict_write=*/true);
  server_ = std::make_shared<apache::thrift::server::TThreadedServer>(
      mux, socket, std::make_shared<BoundedFramedTransportFactory>(max_frame_bytes), protocol);
}

std::string ThriftServer::Where() const {
  return unix_path_.empty() ? host_ + ":" + std::to_string(port_) : "unix:" + unix_path_;
}

ThriftServer::~ThriftServer() { Stop(); }

Status ThriftServer::Start() {
  if (!unix_path_.empty()) {
    // A socket file left by an earlier run (killed before it could remove it) would make
    // bind() fail: it is removed, unless a live server still answers on it. Anything that
    // is not a socket is left alone, and bind() reports it.
    struct stat st;
    if (::lstat(unix_path_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
      if (UnixSocketAnswers(unix_path_)) {
        return Status::IOError("cannot listen on " + Where() + ": a server is using it");
      }
      ::unlink(unix_path_.c_str());
    }
  }
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
    return Status::IOError("cannot listen on " + Where() + ": " + error);
  }
  return Status::OK();
}

void ThriftServer::Stop() {
  if (!thread_.joinable()) return;
  server_->stop();
  thread_.join();
  if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
}

}  // namespace verdict::rpc

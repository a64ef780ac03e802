#include "coordinator/server/metrics_http_server.h"

#include <spdlog/spdlog.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace verdict::coordinator::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

// One connection: read one request (within a deadline), answer it, close.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, const Metrics& metrics)
      : stream_(std::move(socket)), metrics_(metrics) {}

  void Run() {
    stream_.expires_after(std::chrono::seconds(10));
    http::async_read(stream_, buffer_, request_,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       if (!ec) self->Respond();
                     });
  }

 private:
  void Respond() {
    response_.version(request_.version());
    response_.keep_alive(false);
    response_.set(http::field::server, "verdict-coordinator");
    if (request_.method() == http::verb::get &&
        (request_.target() == "/metrics" || request_.target().starts_with("/metrics?"))) {
      response_.result(http::status::ok);
      response_.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
      response_.body() = metrics_.RenderPrometheus();
    } else {
      response_.result(http::status::not_found);
      response_.set(http::field::content_type, "text/plain");
      response_.body() = "not found; try /metrics\n";
    }
    response_.prepare_payload();
    http::async_write(stream_, response_, [self = shared_from_this()](beast::error_code, size_t) {
      beast::error_code ignored;
      self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> request_;
  http::response<http::string_body> response_;
  const Metrics& metrics_;
};

}  // namespace

struct MetricsHttpServer::Impl {
  Impl(std::string h, int p, const Metrics& m) : host(std::move(h)), port(p), metrics(m) {}

  void Accept() {
    acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) std::make_shared<Session>(std::move(socket), metrics)->Run();
      Accept();
    });
  }

  const std::string host;
  const int port;
  const Metrics& metrics;
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  std::thread thread;
};

MetricsHttpServer::MetricsHttpServer(std::string host, int port, const Metrics& metrics)
    : impl_(std::make_unique<Impl>(std::move(host), port, metrics)) {}

MetricsHttpServer::~MetricsHttpServer() { Stop(); }

Status MetricsHttpServer::Start() {
  beast::error_code ec;
  auto address = asio::ip::make_address(impl_->host, ec);
  if (ec) {
    // A host name: resolve it.
    tcp::resolver resolver(impl_->io);
    auto results = resolver.resolve(impl_->host, std::to_string(impl_->port), ec);
    if (ec || results.empty()) {
      return Status::IOError("metrics: cannot resolve " + impl_->host + ": " + ec.message());
    }
    address = results.begin()->endpoint().address();
  }
  tcp::endpoint endpoint(address, static_cast<unsigned short>(impl_->port));
  impl_->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl_->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl_->acceptor.bind(endpoint, ec);
  if (!ec) impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status::IOError("metrics: cannot listen on " + impl_->host + ":" +
                           std::to_string(impl_->port) + ": " + ec.message());
  }
  impl_->Accept();
  impl_->thread = std::thread([this] { impl_->io.run(); });
  return Status::OK();
}

void MetricsHttpServer::Stop() {
  if (!impl_->thread.joinable()) return;
  asio::post(impl_->io, [this] {
    beast::error_code ignored;
    impl_->acceptor.close(ignored);
  });
  impl_->io.stop();
  impl_->thread.join();
}

}  // namespace verdict::coordinator::server

// verdict-thin-agent: an EXPERIMENT, not a participant. It bounds what the event-driven
// agent of docs/performance.md could reach on this machine: one thread, one epoll loop,
// speaking the agent's Thrift wire protocol (framed, binary, multiplexed "Participant")
// for exactly the calls the agent benchmark makes, and issuing the same PostgreSQL
// statements the PostgreSQL resource manager issues, through libpq's asynchronous API:
//   Execute  -> "BEGIN; <statement with its parameter inlined>"   (one round trip)
//   Prepare  -> "INSERT <commit marker>; PREPARE TRANSACTION 'verdict:<gtid>:<branch>'"
//   Commit   -> "COMMIT PREPARED '...'"
//   Abort    -> "ROLLBACK" (or ROLLBACK PREPARED)
//   ListInDoubt -> an empty list (readiness)
// Everything that makes an agent an agent is missing on purpose: no journal, no state
// machine, no timeouts, no recovery, no registration, one PostgreSQL connection per client
// connection, one call at a time per connection. So its throughput is an upper bound for
// an event-driven agent with the same round trips.
//
// It accepts verdict-participant's command line (--listen, --local-socket, --pg-dsn; the
// rest is ignored), so `verdict-bench --only agent_pg --bin-dir DIR` runs it when
// DIR/verdict-participant is a link to it: bench/thin_agent/run.sh.
#include <arpa/inet.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "ParticipantService.h"

namespace {

using apache::thrift::protocol::TBinaryProtocol;
using apache::thrift::protocol::TMessageType;
using apache::thrift::transport::TMemoryBuffer;
namespace rpc = verdict::rpc;

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "verdict-thin-agent: %s\n", why.c_str());
  std::exit(1);
}

enum class Pending { kNone, kExecute, kPrepare, kCommit, kAbort };

struct Conn {
  int fd = -1;
  PGconn* pg = nullptr;
  std::string in, out;
  Pending pending = Pending::kNone;
  std::string method;  // of the call in flight
  int32_t seqid = 0;
  bool prepared = false;  // the current branch is PREPAREd in the server
  // What the PostgreSQL results of the call in flight said.
  std::string error;
  int64_t rows_affected = 0;
};

struct Handle {
  Conn* conn;
  bool pg;
};

int g_epoll = -1;
std::string g_dsn;

void Watch(int fd, Handle* h, uint32_t events, int op) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = h;
  if (epoll_ctl(g_epoll, op, fd, &ev) != 0 && op == EPOLL_CTL_ADD) Die("epoll_ctl");
}

void CloseConn(Conn* c) {
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  if (c->pg != nullptr) PQfinish(c->pg);
  c->pg = nullptr;
}

void FlushOut(Conn* c) {
  while (!c->out.empty()) {
    const ssize_t n = send(c->fd, c->out.data(), c->out.size(), MSG_NOSIGNAL);
    if (n > 0) {
      c->out.erase(0, static_cast<size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return;  // EAGAIN: answers are small, the driver reads them; anything else: next read
    }
  }
}

template <typename Result>
void Reply(Conn* c, const std::string& method, int32_t seqid, Result& result) {
  auto mem = std::make_shared<TMemoryBuffer>();
  TBinaryProtocol proto(mem);
  proto.writeMessageBegin(method, apache::thrift::protocol::T_REPLY, seqid);
  result.write(&proto);
  proto.writeMessageEnd();
  uint8_t* data = nullptr;
  uint32_t size = 0;
  mem->getBuffer(&data, &size);
  const uint32_t be = htonl(size);
  c->out.append(reinterpret_cast<const char*>(&be), 4);
  c->out.append(reinterpret_cast<const char*>(data), size);
  FlushOut(c);
}

std::string Gid(const std::string& gtid, const std::string& branch) {
  return "verdict:" + gtid + ":" + branch;
}

// Inlines the one integer parameter of the benchmark's statement (a bound, not an RM).
std::string Inline(const rpc::ExecuteRequest& r) {
  std::string sql = r.sql;
  const size_t q = sql.find('?');
  if (q != std::string::npos && !r.params.empty()) {
    sql.replace(q, 1, std::to_string(r.params[0].integer));
  }
  return sql;
}

void SendSql(Conn* c, Pending what, const std::string& sql) {
  c->pending = what;
  c->error.clear();
  c->rows_affected = 0;
  if (PQsendQuery(c->pg, sql.c_str()) != 1) c->error = PQerrorMessage(c->pg);
  PQflush(c->pg);
}

// Decodes one request frame and starts it (or answers it at once).
void OnFrame(Conn* c, const std::string& frame) {
  auto mem =
      std::make_shared<TMemoryBuffer>(reinterpret_cast<uint8_t*>(const_cast<char*>(frame.data())),
                                      static_cast<uint32_t>(frame.size()), TMemoryBuffer::OBSERVE);
  TBinaryProtocol proto(mem);
  std::string name;
  TMessageType type;
  int32_t seqid = 0;
  proto.readMessageBegin(name, type, seqid);
  const size_t colon = name.find(':');
  const std::string method = colon == std::string::npos ? name : name.substr(colon + 1);
  c->method = method;
  c->seqid = seqid;
  if (method == "Execute") {
    rpc::ParticipantService_Execute_args args;
    args.read(&proto);
    c->prepared = false;
    SendSql(c, Pending::kExecute, "BEGIN; " + Inline(args.request));
  } else if (method == "Prepare") {
    rpc::ParticipantService_Prepare_args args;
    args.read(&proto);
    const std::string gid = Gid(args.request.gtid, args.request.branch);
    SendSql(c, Pending::kPrepare,
            "INSERT INTO verdict.commit_markers(gid) VALUES ('" + gid +
                "'); PREPARE TRANSACTION '" + gid + "'");
  } else if (method == "Commit") {
    rpc::ParticipantService_Commit_args args;
    args.read(&proto);
    SendSql(c, Pending::kCommit,
            "COMMIT PREPARED '" + Gid(args.request.gtid, args.request.branch) + "'");
  } else if (method == "Abort") {
    rpc::ParticipantService_Abort_args args;
    args.read(&proto);
    SendSql(c, Pending::kAbort,
            c->prepared ? "ROLLBACK PREPARED '" + Gid(args.request.gtid, args.request.branch) + "'"
                        : std::string("ROLLBACK"));
  } else if (method == "ListInDoubt") {
    rpc::ParticipantService_ListInDoubt_result result;
    result.success.code = rpc::ParticipantCode::OK;
    result.__isset.success = true;
    Reply(c, method, seqid, result);
  } else {
    Die("the thin agent does not serve " + method);
  }
}

// The call in flight is complete in PostgreSQL: answer it.
void Complete(Conn* c) {
  const Pending what = c->pending;
  c->pending = Pending::kNone;
  const bool ok = c->error.empty();
  switch (what) {
    case Pending::kExecute: {
      rpc::ParticipantService_Execute_result result;
      result.success.code = ok ? rpc::ParticipantCode::OK : rpc::ParticipantCode::SQL_ERROR;
      result.success.rows_affected = c->rows_affected;
      result.success.state = ok ? rpc::BranchState::ACTIVE : rpc::BranchState::ABORTED;
      result.success.message = c->error;
      result.__isset.success = true;
      Reply(c, c->method, c->seqid, result);
      return;
    }
    case Pending::kPrepare: {
      c->prepared = ok;
      rpc::ParticipantService_Prepare_result result;
      result.success.code = rpc::ParticipantCode::OK;
      result.success.vote = ok ? rpc::Vote::YES : rpc::Vote::NO;
      result.success.state = ok ? rpc::BranchState::PREPARED : rpc::BranchState::ABORTED;
      result.success.message = c->error;
      result.__isset.success = true;
      Reply(c, c->method, c->seqid, result);
      return;
    }
    case Pending::kCommit:
    case Pending::kAbort: {
      c->prepared = false;
      rpc::ParticipantService_Commit_result result;  // same shape as Abort's
      result.success.code = ok ? rpc::ParticipantCode::OK : rpc::ParticipantCode::UNAVAILABLE;
      result.success.state =
          what == Pending::kCommit ? rpc::BranchState::COMMITTED : rpc::BranchState::ABORTED;
      result.success.message = c->error;
      result.__isset.success = true;
      Reply(c, c->method, c->seqid, result);
      return;
    }
    case Pending::kNone:
      return;
  }
}

// Reads every complete request frame; one call at a time per connection.
void ProcessInput(Conn* c) {
  while (c->pending == Pending::kNone && c->in.size() >= 4) {
    uint32_t be = 0;
    std::memcpy(&be, c->in.data(), 4);
    const uint32_t size = ntohl(be);
    if (c->in.size() < 4 + static_cast<size_t>(size)) return;
    const std::string frame = c->in.substr(4, size);
    c->in.erase(0, 4 + static_cast<size_t>(size));
    OnFrame(c, frame);
  }
}

void OnPgReadable(Conn* c) {
  if (PQconsumeInput(c->pg) != 1) Die(std::string("postgres: ") + PQerrorMessage(c->pg));
  while (c->pending != Pending::kNone && PQisBusy(c->pg) == 0) {
    PGresult* r = PQgetResult(c->pg);
    if (r == nullptr) {
      Complete(c);
      ProcessInput(c);
      return;
    }
    const ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_FATAL_ERROR && c->error.empty()) c->error = PQresultErrorMessage(r);
    const char* tuples = PQcmdTuples(r);
    if (tuples != nullptr && *tuples != '\0') c->rows_affected = std::atoll(tuples);
    PQclear(r);
  }
}

void OnClientReadable(Conn* c) {
  char buf[16384];
  while (true) {
    const ssize_t n = recv(c->fd, buf, sizeof buf, 0);
    if (n > 0) {
      c->in.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    CloseConn(c);  // the client left; the Conn is leaked (an experiment: few connections)
    return;
  }
  ProcessInput(c);
}

void Accept(int listener) {
  while (true) {
    const int fd = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // fails harmlessly on unix
    auto* c = new Conn;
    c->fd = fd;
    c->pg = PQconnectdb(g_dsn.c_str());
    if (PQstatus(c->pg) != CONNECTION_OK) Die(std::string("postgres: ") + PQerrorMessage(c->pg));
    PQsetnonblocking(c->pg, 1);
    Watch(fd, new Handle{c, false}, EPOLLIN, EPOLL_CTL_ADD);
    Watch(PQsocket(c->pg), new Handle{c, true}, EPOLLIN, EPOLL_CTL_ADD);
  }
}

int Listen(const std::string& listen, const std::string& local_socket) {
  int fd = -1;
  if (!local_socket.empty()) {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, local_socket.c_str(), sizeof(sa.sun_path) - 1);
    unlink(local_socket.c_str());
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) Die("bind " + local_socket);
  } else {
    const size_t colon = listen.rfind(':');
    if (colon == std::string::npos) Die("--listen HOST:PORT");
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(std::atoi(listen.c_str() + colon + 1)));
    if (inet_pton(AF_INET, listen.substr(0, colon).c_str(), &sa.sin_addr) != 1) {
      Die("--listen wants an IPv4 HOST:PORT");
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) Die("bind " + listen);
  }
  if (::listen(fd, 256) != 0) Die("listen");
  return fd;
}

void CreateMarkerTable() {
  PGconn* pg = PQconnectdb(g_dsn.c_str());
  if (PQstatus(pg) != CONNECTION_OK) Die(std::string("postgres: ") + PQerrorMessage(pg));
  PGresult* r = PQexec(pg,
                       "CREATE SCHEMA IF NOT EXISTS verdict; CREATE TABLE IF NOT EXISTS "
                       "verdict.commit_markers (gid text PRIMARY KEY, seen_at timestamptz)");
  if (PQresultStatus(r) != PGRES_COMMAND_OK) {
    Die(std::string("postgres: ") + PQresultErrorMessage(r));
  }
  PQclear(r);
  PQfinish(pg);
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen, local_socket;
  for (int i = 1; i + 1 < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--listen") listen = argv[i + 1];
    if (flag == "--local-socket") local_socket = argv[i + 1];
    if (flag == "--pg-dsn") g_dsn = argv[i + 1];
  }
  if (g_dsn.empty() || listen.empty()) Die("usage: --listen HOST:PORT --pg-dsn DSN [...]");
  std::signal(SIGPIPE, SIG_IGN);
  CreateMarkerTable();
  g_epoll = epoll_create1(EPOLL_CLOEXEC);
  // A readiness check or the benchmark connects to one of these.
  std::vector<int> listeners = {Listen(listen, "")};
  if (!local_socket.empty()) listeners.push_back(Listen(listen, local_socket));
  for (int l : listeners) Watch(l, new Handle{nullptr, false}, EPOLLIN, EPOLL_CTL_ADD);
  std::fprintf(stderr, "verdict-thin-agent: serving on %s%s%s\n", listen.c_str(),
               local_socket.empty() ? "" : " and ", local_socket.c_str());
  std::vector<epoll_event> events(256);
  while (true) {
    const int n = epoll_wait(g_epoll, events.data(), static_cast<int>(events.size()), -1);
    for (int i = 0; i < n; ++i) {
      auto* h = static_cast<Handle*>(events[static_cast<size_t>(i)].data.ptr);
      if (h->conn == nullptr) {
        for (int l : listeners) Accept(l);
      } else if (h->conn->fd < 0) {
        continue;
      } else if (h->pg) {
        OnPgReadable(h->conn);
      } else {
        OnClientReadable(h->conn);
      }
    }
  }
}

// verdict-participant: the participant agent beside one database (DESIGN §6-§7). Parses
// flags (or --config), opens the branch journal and the resource manager, re-establishes
// every prepared branch from the journal BEFORE serving, then serves ParticipantService
// and registers with the coordinator group, until SIGTERM/SIGINT. See docs/participant.md.
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "ParticipantService.h"
#include "common/env.h"
#include "participant/agent.h"
#include "participant/agent_flags.h"
#include "participant/branch_journal.h"
#include "participant/participant_handler.h"
#include "participant/rpc_names.h"
#include "participant/sqlite/sqlite_resource_manager.h"
#include "thrift/fiber_server.h"
#include "thrift/thrift_channel.h"
#include "thrift/thrift_server.h"
#ifdef VERDICT_HAVE_POSTGRES
#include "participant/postgres/postgres_resource_manager.h"
#endif

using namespace verdict;
using namespace verdict::participant;

namespace {

constexpr int kExitUsage = 2;
constexpr int kExitStartup = 1;

[[noreturn]] void Die(int code, const std::string& message) {
  std::fprintf(stderr, "verdict-participant: error: %s\n", message.c_str());
  std::fflush(stderr);
  std::exit(code);
}

std::unique_ptr<ResourceManager> MakeResourceManager(const AgentFlags& f) {
  if (f.backend == "sqlite") {
    sqlite::SqliteOptions o;
    o.path = f.sqlite_path;
    o.sync = f.sync;
    return sqlite::NewSqliteResourceManager(o);
  }
#ifdef VERDICT_HAVE_POSTGRES
  postgres::PostgresOptions o;
  o.dsn = f.pg_dsn;
  o.participant_name = f.agent.name;
  o.named_statements = f.pg_named_statements;
  return std::make_unique<postgres::PostgresResourceManager>(o);
#else
  Die(kExitStartup,
      "--backend postgres: this build has no PostgreSQL resource manager "
      "(libpq not found at configure time)");
#endif
}

}  // namespace

int main(int argc, char** argv) {
  AgentFlags flags;
  Status s = ParseAgentFlags(argc, argv, &flags);
  if (!s.ok()) Die(kExitUsage, s.message());
  if (flags.help) {
    std::cout << flags.help_text << "\n";
    return 0;
  }
  auto level = spdlog::level::from_str(flags.log_level);
  if (level == spdlog::level::off && flags.log_level != "off") {
    Die(kExitUsage, "--log-level '" + flags.log_level + "' is not a log level");
  }
  auto logger = spdlog::stderr_color_mt("verdict");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e [%l] participant " + flags.agent.name + ": %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(level);
  spdlog::flush_on(spdlog::level::info);

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  Env* env = PosixEnv();
  s = env->CreateDirIfMissing(flags.data_dir);
  if (!s.ok()) Die(kExitStartup, "cannot create --data-dir " + flags.data_dir + ": " + s.message());
  std::unique_ptr<FileLock> dir_lock;
  s = env->LockFile(flags.data_dir + "/LOCK", &dir_lock);
  if (!s.ok()) {
    Die(kExitStartup,
        "--data-dir " + flags.data_dir + " is in use by another agent: " + s.message());
  }
  std::unique_ptr<BranchJournal> journal;
  s = OpenFileBranchJournal(env, flags.data_dir, flags.sync, &journal);
  if (!s.ok()) Die(kExitStartup, "cannot open the branch journal: " + s.ToString());

  std::unique_ptr<ResourceManager> rm = MakeResourceManager(flags);
  s = rm->Start();
  if (!s.ok()) Die(kExitStartup, std::string(rm->backend()) + ": " + s.ToString());

  std::unique_ptr<CoordinatorClient> coordinator =
      NewThriftCoordinatorClient(flags.coordinators, flags.rpc_timeout_ms);
  std::unique_ptr<PeerClient> peers = NewThriftPeerClient(flags.rpc_timeout_ms);
  Agent agent(flags.agent, *rm, *journal, *coordinator, *peers, nullptr);
  // Every prepared branch is re-established (locks held) before anything is served.
  s = agent.Recover();
  if (!s.ok()) Die(kExitStartup, "recovery failed: " + s.ToString());

  std::string host;
  int port;
  rpc::SplitHostPort(flags.listen, &host, &port);
  auto processor = std::make_shared<rpc::ParticipantServiceProcessor>(
      std::make_shared<ParticipantHandler>(agent));
  const std::map<std::string, std::shared_ptr<apache::thrift::TProcessor>> services = {
      {kParticipantServiceName, processor}};
  std::unique_ptr<rpc::ThriftServer> server, local;
  std::unique_ptr<rpc::FiberServer> fibers;
  if (flags.server_model == "fibers") {
    rpc::FiberServer::Options o;
    o.host = host;
    o.port = port;
    o.unix_path = flags.local_socket;
    o.max_frame_bytes = flags.max_frame_bytes;
    o.loops = flags.server_loops;
    fibers = std::make_unique<rpc::FiberServer>(o, services);
    s = fibers->Start();
  } else {
    server = std::make_unique<rpc::ThriftServer>(host, port, flags.max_frame_bytes, services);
    s = server->Start();
    if (s.ok() && !flags.local_socket.empty()) {
      local = rpc::ThriftServer::OnUnixSocket(flags.local_socket, flags.max_frame_bytes, services);
      s = local->Start();
    }
  }
  if (!s.ok()) Die(kExitStartup, s.message());
  if (!flags.local_socket.empty()) spdlog::info("serving also on unix:{}", flags.local_socket);
  agent.StartBackground();
  spdlog::info(
      "serving on {} (backend {}, {}, data dir {}, fsync {})", flags.listen, rm->backend(),
      flags.server_model == "fibers" ? "one event loop of fibers" : "a thread per connection",
      flags.data_dir, flags.sync ? "on" : "OFF");

  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("{}: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  if (fibers) fibers->Stop();
  if (server) server->Stop();
  if (local) local->Stop();
  agent.StopBackground();
  rm->Stop();
  spdlog::info("stopped cleanly");
  spdlog::default_logger()->flush();
  return 0;
}

// verdict-coordinator: one node of the coordinator group (DESIGN §7). Parses flags (or a
// --config file), opens the decision log, and serves RaftService + CoordinatorService on
// the node's address until SIGTERM/SIGINT. See docs/coordinator.md.
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <boost/program_options.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include "common/env.h"
#include "coordinator/server/coordinator_handler.h"
#include "coordinator/server/metrics.h"
#include "coordinator/server/metrics_http_server.h"
#include "coordinator/server/node_options.h"
#include "coordinator/server/raft_handler.h"
#include "coordinator/server/raft_node.h"
#include "coordinator/server/registry_handler.h"
#include "coordinator/server/rpc_names.h"
#include "coordinator/storage/log_storage.h"
#include "thrift/thrift_channel.h"
#include "thrift/thrift_server.h"

namespace po = boost::program_options;
using namespace verdict;
using namespace verdict::coordinator::server;
namespace storage = verdict::coordinator::storage;

namespace {

constexpr int kExitUsage = 2;
constexpr int kExitStartup = 1;

[[noreturn]] void Die(int code, const std::string& message) {
  std::fprintf(stderr, "verdict-coordinator: error: %s\n", message.c_str());
  std::fflush(stderr);
  std::exit(code);
}

struct Flags {
  NodeOptions node;
  std::string log_level = "info";
};

// Parses argv (and --config FILE: command-line values win). Exits on bad flags.
Flags ParseFlags(int argc, char** argv) {
  Flags f;
  uint64_t id = 0;
  std::string cluster, config_file;
  bool unsafe_no_fsync = false;
  po::options_description desc(
      "Usage: verdict-coordinator --id N --cluster 1=HOST:PORT,2=HOST:PORT,3=HOST:PORT "
      "--data-dir DIR [options]\nOptions");
  // clang-format off
  desc.add_options()
      ("help,h", "print this help and exit")
      ("config", po::value(&config_file), "read options from FILE (key = value lines; "
                                           "command-line flags win)")
      ("id", po::value(&id), "this node's id in --cluster (required)")
      ("cluster", po::value(&cluster), "every voter as ID=HOST:PORT,... (required)")
      ("data-dir", po::value(&f.node.data_dir), "directory of this node's decision log "
                                                 "(required; created if absent)")
      ("metrics-port", po::value(&f.node.metrics_port), "serve Prometheus /metrics over HTTP "
                                                         "on this port (0: off)")
      ("tick-ms", po::value(&f.node.tick_ms)->default_value(50), "Raft tick length in ms")
      ("election-ticks", po::value(&f.node.election_ticks)->default_value(10),
       "election timeout in ticks (randomized in [N, 2N))")
      ("heartbeat-ticks", po::value(&f.node.heartbeat_ticks)->default_value(1),
       "leader heartbeat interval in ticks")
      ("snapshot-entries", po::value(&f.node.snapshot_entries)->default_value(10000),
       "take a snapshot and compact the log every N applied entries")
      ("request-timeout-ms", po::value(&f.node.request_timeout_ms)->default_value(5000),
       "a client call not applied within this answers UNKNOWN")
      ("max-frame-bytes", po::value(&f.node.max_frame_bytes)->default_value(128u << 20),
       "largest Thrift frame accepted or sent")
      ("default-deadline-ms", po::value(&f.node.default_deadline_ms)->default_value(30000),
       "deadline of a transaction begun without one")
      ("max-deadline-ms", po::value(&f.node.max_deadline_ms)->default_value(3600000),
       "longer transaction deadlines are clamped to this")
      ("vote-timeout-ms", po::value(&f.node.vote_timeout_ms)->default_value(5000),
       "a transaction whose votes are not all in this long after PREPARE aborts")
      ("retry-initial-ms", po::value(&f.node.retry_initial_ms)->default_value(100),
       "first resend of an unanswered participant call (then doubling)")
      ("retry-max-ms", po::value(&f.node.retry_max_ms)->default_value(2000),
       "cap of the participant resend backoff")
      ("participant-rpc-timeout-ms",
       po::value(&f.node.participant_rpc_timeout_ms)->default_value(3000),
       "connect/send/receive timeout of one call to a participant agent")
      ("participant-connections", po::value(&f.node.participant_connections)->default_value(8),
       "connections (concurrent calls) per participant agent")
      ("unsafe-no-fsync", po::bool_switch(&unsafe_no_fsync),
       "UNSAFE, benchmarks only: never fsync the log")
      ("log-level", po::value(&f.log_level)->default_value("info"),
       "trace, debug, info, warn, error or critical");
  // clang-format on
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(desc).run(), vm);
    if (vm.count("help")) {
      std::cout << desc << "\n";
      std::exit(0);
    }
    if (vm.count("config")) {
      std::ifstream in(vm["config"].as<std::string>());
      if (!in) Die(kExitUsage, "cannot read --config file " + vm["config"].as<std::string>());
      po::store(po::parse_config_file(in, desc), vm);
    }
    po::notify(vm);
  } catch (const po::error& e) {
    Die(kExitUsage, std::string(e.what()) + " (see --help)");
  }
  if (!vm.count("id")) Die(kExitUsage, "--id is required (see --help)");
  if (!vm.count("cluster")) Die(kExitUsage, "--cluster is required (see --help)");
  if (!vm.count("data-dir")) Die(kExitUsage, "--data-dir is required (see --help)");
  f.node.id = id;
  Status s = ParseCluster(cluster, &f.node.cluster);
  if (s.ok()) s = ValidateOptions(f.node);
  if (!s.ok()) Die(kExitUsage, s.message());
  f.node.sync = !unsafe_no_fsync;
  auto level = spdlog::level::from_str(f.log_level);
  if (level == spdlog::level::off && f.log_level != "off") {
    Die(kExitUsage, "--log-level '" + f.log_level + "' is not a log level");
  }
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags = ParseFlags(argc, argv);
  const NodeOptions& options = flags.node;

  auto logger = spdlog::stderr_color_mt("verdict");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e [%l] node " + std::to_string(options.id) + ": %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(flags.log_level));
  spdlog::flush_on(spdlog::level::warn);

  // Every thread inherits this mask; the main thread waits for the signals below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  if (!options.sync) {
    spdlog::warn(
        "UNSAFE: --unsafe-no-fsync is set: the decision log is NEVER fsync'd, acknowledged "
        "decisions can be lost in a crash. For benchmarks only.");
  }

  storage::LogStorageOptions log_options;
  log_options.sync = options.sync;
  std::unique_ptr<storage::LogStorage> log;
  storage::RecoveredState recovered;
  Status s = storage::LogStorage::Open(PosixEnv(), options.data_dir, log_options, &log, &recovered);
  if (!s.ok()) Die(kExitStartup, "cannot open data dir " + options.data_dir + ": " + s.ToString());

  Metrics metrics;
  std::unique_ptr<RaftNode> node;
  s = RaftNode::Create(options, std::move(log), std::move(recovered), metrics, &node);
  if (!s.ok()) Die(kExitStartup, "cannot recover from " + options.data_dir + ": " + s.ToString());

  std::string host;
  int port;
  s = rpc::SplitHostPort(options.address(), &host, &port);  // validated by ParseCluster
  auto raft_processor = std::make_shared<rpc::RaftServiceProcessor>(
      std::make_shared<RaftHandler>(options.id, *node, metrics));
  auto coordinator_processor = std::make_shared<rpc::CoordinatorServiceProcessor>(
      std::make_shared<CoordinatorHandler>(*node, metrics));
  auto registry_processor = std::make_shared<rpc::ParticipantRegistryServiceProcessor>(
      std::make_shared<RegistryHandler>(*node, metrics));
  rpc::ThriftServer rpc_server(host, port, options.max_frame_bytes,
                               {{kRaftServiceName, raft_processor},
                                {kCoordinatorServiceName, coordinator_processor},
                                {kRegistryServiceName, registry_processor}});
  node->Start();
  s = rpc_server.Start();
  if (!s.ok()) {
    node->Stop();
    Die(kExitStartup, s.message());
  }
  std::unique_ptr<MetricsHttpServer> metrics_server;
  if (options.metrics_port != 0) {
    metrics_server = std::make_unique<MetricsHttpServer>(host, options.metrics_port, metrics);
    s = metrics_server->Start();
    if (!s.ok()) {
      rpc_server.Stop();
      node->Stop();
      Die(kExitStartup, s.message());
    }
  }
  NodeStatus st = node->GetStatus();
  spdlog::info("serving on {} (data dir {}, term {}, last index {}, fsync {}{})", options.address(),
               options.data_dir, st.term, st.last_index, options.sync ? "on" : "OFF",
               options.metrics_port ? ", metrics on port " + std::to_string(options.metrics_port)
                                    : std::string());

  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("{}: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  // Fail waiting calls and flush the log first, then close connections.
  node->Stop();
  rpc_server.Stop();
  if (metrics_server) metrics_server->Stop();
  spdlog::info("stopped cleanly");
  spdlog::default_logger()->flush();
  return 0;
}

#include "participant/agent_flags.h"

#include <boost/program_options.hpp>
#include <fstream>
#include <sstream>

#include "participant/participant_handler.h"
#include "thrift/thrift_channel.h"

namespace verdict::participant {

namespace po = boost::program_options;

Status ParseAgentFlags(int argc, const char* const* argv, AgentFlags* f) {
  std::string coordinators, config_file;
  bool unsafe_no_fsync = false;
  AgentOptions& a = f->agent;
  po::options_description desc(
      "Usage: verdict-participant --name NAME --listen HOST:PORT --coordinators "
      "HOST:PORT,... --data-dir DIR (--backend sqlite --sqlite-path FILE | --backend "
      "postgres --pg-dsn DSN) [options]\nOptions");
  // clang-format off
  desc.add_options()
      ("help,h", "print this help and exit")
      ("config", po::value(&config_file), "read options from FILE (key = value lines; "
                                           "command-line flags win)")
      ("name", po::value(&a.name), "this participant's unique name (required)")
      ("listen", po::value(&f->listen), "HOST:PORT to serve on (required)")
      ("local-socket", po::value(&f->local_socket),
       "also serve on this Unix-domain socket, for clients on the same host (unix:PATH)")
      ("coordinators", po::value(&coordinators), "coordinator nodes HOST:PORT,... (required)")
      ("data-dir", po::value(&f->data_dir), "directory of the branch journal (required)")
      ("backend", po::value(&f->backend), "sqlite or postgres (required)")
      ("sqlite-path", po::value(&f->sqlite_path), "the SQLite database file (--backend sqlite)")
      ("pg-dsn", po::value(&f->pg_dsn), "libpq connection string (--backend postgres)")
      ("pg-named-statements", po::value(&f->pg_named_statements)->default_value(true),
       "run repeated statements as named statements prepared per connection (--backend "
       "postgres; false behind a pooling proxy in transaction mode)")
      ("default-timeout-ms", po::value(&a.default_timeout_ms)->default_value(60000),
       "branch deadline when the opener gives none")
      ("idle-timeout-ms", po::value(&a.default_idle_timeout_ms)->default_value(30000),
       "abort an unprepared branch idle this long (default; per-branch override)")
      ("lock-timeout-ms", po::value(&a.default_lock_timeout_ms)->default_value(2000),
       "bound on one statement's lock wait (default; per-branch override)")
      ("inquiry-after-ms", po::value(&a.inquiry_after_ms)->default_value(2000),
       "an undecided prepared branch inquires after this long")
      ("inquiry-backoff-max-ms", po::value(&a.inquiry_backoff_max_ms)->default_value(30000),
       "cap of the inquiry backoff")
      ("precommit-timeout-ms", po::value(&a.precommit_timeout_ms)->default_value(5000),
       "3PC: a PRECOMMITTED branch whose coordinator group is silent commits after this")
      ("decided-retention-ms", po::value(&a.decided_retention_ms)->default_value(600000),
       "answer for decided branches from memory this long")
      ("commit-evidence-retention-ms",
       po::value(&a.commit_evidence_retention_ms)->default_value(7LL * 24 * 3600 * 1000),
       "prune commit markers (durable evidence of a commit, answering for forgotten "
       "branches) this long after the commit; 0 = never; else >= --decided-retention-ms")
      ("journal-compact-bytes", po::value(&a.journal_compact_bytes)->default_value(64ull << 20),
       "rewrite the branch journal without forgotten branches once it is this large")
      ("orphan-safety-ms", po::value(&a.orphan_safety_ms)->default_value(60000),
       "resolve a database-prepared branch unknown to the journal after this age")
      ("tick-ms", po::value(&a.tick_ms)->default_value(100), "timer period")
      ("rpc-timeout-ms", po::value(&f->rpc_timeout_ms)->default_value(2000),
       "timeout of calls to coordinators and peers")
      ("max-frame-bytes", po::value(&f->max_frame_bytes)->default_value(64u << 20),
       "largest Thrift frame accepted")
      ("server-loops", po::value(&f->server_loops)->default_value(1),
       "event-loop threads of the fiber server (connections are spread over them)")
      ("server-model", po::value(&f->server_model)->default_value("auto"),
       "fibers (one event-loop thread; every connection a fiber), threads (a thread per "
       "connection) or auto (fibers for postgres, threads for sqlite)")
      ("unsafe-no-fsync", po::bool_switch(&unsafe_no_fsync),
       "UNSAFE, benchmarks only: never fsync the branch journal or SQLite")
      ("log-level", po::value(&f->log_level)->default_value("info"),
       "trace, debug, info, warn, error or critical");
  // clang-format on
  std::ostringstream help;
  help << desc;
  f->help_text = help.str();
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(desc).run(), vm);
    if (vm.count("help")) {
      f->help = true;
      return Status::OK();
    }
    if (vm.count("config")) {
      std::ifstream in(vm["config"].as<std::string>());
      if (!in) {
        return Status::InvalidArgument("cannot read --config file " +
                                       vm["config"].as<std::string>());
      }
      po::store(po::parse_config_file(in, desc), vm);
    }
    po::notify(vm);
  } catch (const po::error& e) {
    return Status::InvalidArgument(std::string(e.what()) + " (see --help)");
  }
  for (const char* req : {"name", "listen", "coordinators", "data-dir", "backend"}) {
    if (!vm.count(req)) return Status::InvalidArgument(std::string("--") + req + " is required");
  }
  std::string why = ParticipantHandler::CheckId("--name", a.name);
  if (!why.empty()) return Status::InvalidArgument(why);
  std::string host;
  int port;
  VERDICT_RETURN_IF_ERROR(rpc::SplitHostPort(f->listen, &host, &port));
  a.address = f->listen;
  f->coordinators.clear();
  std::stringstream ss(coordinators);
  for (std::string item; std::getline(ss, item, ',');) {
    if (item.empty()) continue;
    Status s = rpc::SplitHostPort(item, &host, &port);
    if (!s.ok()) return Status::InvalidArgument("--coordinators: " + s.message());
    f->coordinators.push_back(item);
  }
  if (f->coordinators.empty()) return Status::InvalidArgument("--coordinators is empty");
  if (f->data_dir.empty()) return Status::InvalidArgument("--data-dir is empty");
  if (f->backend == "sqlite") {
    if (f->sqlite_path.empty())
      return Status::InvalidArgument("--backend sqlite needs --sqlite-path");
    if (!f->pg_dsn.empty()) return Status::InvalidArgument("--pg-dsn is for --backend postgres");
  } else if (f->backend == "postgres") {
    if (f->pg_dsn.empty()) return Status::InvalidArgument("--backend postgres needs --pg-dsn");
    if (!f->sqlite_path.empty()) {
      return Status::InvalidArgument("--sqlite-path is for --backend sqlite");
    }
  } else {
    return Status::InvalidArgument("--backend must be sqlite or postgres, not '" + f->backend +
                                   "'");
  }
  for (auto [flag, v] : {std::pair<const char*, int>{"--default-timeout-ms", a.default_timeout_ms},
                         {"--idle-timeout-ms", a.default_idle_timeout_ms},
                         {"--lock-timeout-ms", a.default_lock_timeout_ms},
                         {"--inquiry-after-ms", a.inquiry_after_ms},
                         {"--inquiry-backoff-max-ms", a.inquiry_backoff_max_ms},
                         {"--precommit-timeout-ms", a.precommit_timeout_ms},
                         {"--decided-retention-ms", a.decided_retention_ms},
                         {"--orphan-safety-ms", a.orphan_safety_ms},
                         {"--tick-ms", a.tick_ms},
                         {"--server-loops", f->server_loops},
                         {"--rpc-timeout-ms", f->rpc_timeout_ms}}) {
    if (v <= 0) return Status::InvalidArgument(std::string(flag) + " must be positive");
  }
  if (a.commit_evidence_retention_ms < 0 ||
      (a.commit_evidence_retention_ms > 0 &&
       a.commit_evidence_retention_ms < a.decided_retention_ms)) {
    return Status::InvalidArgument(
        "--commit-evidence-retention-ms must be 0 (never prune) or at least "
        "--decided-retention-ms");
  }
  if (a.journal_compact_bytes == 0) {
    return Status::InvalidArgument("--journal-compact-bytes must be positive");
  }
  if (f->server_model == "auto") {
    f->server_model = f->backend == "postgres" ? "fibers" : "threads";
  } else if (f->server_model != "fibers" && f->server_model != "threads") {
    return Status::InvalidArgument("--server-model must be fibers, threads or auto, not '" +
                                   f->server_model + "'");
  }
  f->sync = !unsafe_no_fsync;
  return Status::OK();
}

}  // namespace verdict::participant

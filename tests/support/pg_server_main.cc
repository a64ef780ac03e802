// verdict-pg-server: starts a throwaway PostgreSQL server (tests/support/pg_server.h) for
// manual runs of the agent and benchmarks; prints its DSNs, stops it on SIGINT/SIGTERM.
// Usage: verdict-pg-server [--max-prepared N] [--max-connections N] [--tcp] [--databases a,b]
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/pg_server.h"

int main(int argc, char** argv) {
  verdict::test_support::PgServerOptions options;
  std::vector<std::string> databases;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "verdict-pg-server: %s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--max-prepared") {
      options.max_prepared_transactions = std::atoi(next().c_str());
    } else if (arg == "--max-connections") {
      options.max_connections = std::atoi(next().c_str());
    } else if (arg == "--tcp") {
      options.listen_tcp = true;
    } else if (arg == "--databases") {
      std::stringstream ss(next());
      std::string db;
      while (std::getline(ss, db, ',')) {
        if (!db.empty()) databases.push_back(db);
      }
    } else {
      std::fprintf(stderr,
                   "usage: verdict-pg-server [--max-prepared N] [--max-connections N] [--tcp] "
                   "[--databases a,b]\n");
      return 2;
    }
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  verdict::test_support::PgServer server(options);
  verdict::Status s = server.Start();
  if (!s.ok()) {
    std::fprintf(stderr, "verdict-pg-server: %s\n", s.ToString().c_str());
    return 1;
  }
  for (const auto& db : databases) {
    s = server.CreateDatabase(db);
    if (!s.ok()) {
      std::fprintf(stderr, "verdict-pg-server: %s\n", s.ToString().c_str());
      return 1;
    }
  }
  if (databases.empty()) databases.push_back("postgres");
  for (const auto& db : databases) std::printf("%s\n", server.Dsn(db).c_str());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  return 0;
}

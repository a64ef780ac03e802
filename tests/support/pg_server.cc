#include "tests/support/pg_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>

namespace verdict::test_support {
namespace {

namespace fs = std::filesystem;

constexpr const char* kSuperuser = "postgres";
constexpr const char* kRunuser = "/usr/sbin/runuser";

bool IsRoot() { return geteuid() == 0; }

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

// Value quoting for a libpq conninfo string.
std::string ConninfoQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A port nobody listens on right now (the kernel's choice for an ephemeral bind).
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  int port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

struct PgConnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct PgResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ConnPtr = std::unique_ptr<PGconn, PgConnDeleter>;
using ResultPtr = std::unique_ptr<PGresult, PgResultDeleter>;

}  // namespace

PgServer::PgServer(PgServerOptions options) : options_(std::move(options)), bin_dir_(BinDir()) {
  const char* keep = std::getenv("VERDICT_KEEP_PG_DIR");
  if (keep != nullptr && std::string(keep) == "1") options_.keep_dir = true;
}

PgServer::~PgServer() {
  // The data dir is thrown away, so there is no point in a shutdown checkpoint.
  if (running_) PgCtlStop("immediate");
  if (watchdog_fd_ >= 0) {
    // Tell the watchdog that the owner cleaned up itself.
    ssize_t n = write(watchdog_fd_, "q\n", 2);
    (void)n;
    close(watchdog_fd_);
  }
  if (watchdog_pid_ > 0) {
    int status = 0;
    waitpid(watchdog_pid_, &status, 0);
  }
  if (!dir_.empty() && !options_.keep_dir) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

std::string PgServer::BinDir() {
  const char* env = std::getenv("VERDICT_PG_BIN");
  if (env != nullptr && *env != '\0') return env;
  std::error_code ec;
  std::string best;
  int best_version = -1;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    const fs::path bin = entry.path() / "bin";
    if (!fs::exists(bin / "initdb", ec)) continue;
    const int version = std::atoi(name.c_str());
    if (version > best_version) {
      best_version = version;
      best = bin.string();
    }
  }
  return best;
}

Status PgServer::Fail(const std::string& what, const std::string& detail) const {
  std::string msg = "PgServer: " + what;
  if (!detail.empty()) msg += ": " + detail;
  if (!dir_.empty()) {
    msg += "\n--- tail of " + dir_ + "/server.log ---\n" + LogTail();
  }
  return Status::IOError(msg);
}

Status PgServer::RunServerTool(const std::vector<std::string>& argv, std::string* output) {
  std::vector<std::string> full;
  if (IsRoot()) {
    full = {kRunuser, "-u", kSuperuser, "--"};
  }
  full.insert(full.end(), argv.begin(), argv.end());
  std::vector<char*> cargv;
  for (auto& a : full) cargv.push_back(a.data());
  cargv.push_back(nullptr);

  const std::string out_path = dir_ + "/tool.out";
  int out_fd = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out_fd < 0) return Fail("cannot create " + out_path, std::strerror(errno));
  const pid_t pid = fork();
  if (pid < 0) {
    close(out_fd);
    return Fail("fork", std::strerror(errno));
  }
  if (pid == 0) {
    // Only async-signal-safe calls until exec.
    dup2(out_fd, STDOUT_FILENO);
    dup2(out_fd, STDERR_FILENO);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, STDIN_FILENO);
    if (chdir(dir_.c_str()) != 0) _exit(126);
    execv(cargv[0], cargv.data());
    _exit(127);
  }
  close(out_fd);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  *output = ReadWholeFile(out_path);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string how = WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                        : "killed by a signal";
    return Status::IOError(full[IsRoot() ? 4 : 0] + " failed (" + how + "): " + *output);
  }
  return Status::OK();
}

Status PgServer::Start() {
  if (!dir_.empty()) return Status::FailedPrecondition("PgServer::Start called twice");
  if (bin_dir_.empty()) {
    return Fail(
        "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin "
        "(apt-get install postgresql, or set VERDICT_PG_BIN)",
        "");
  }
  char tmpl[] = "/tmp/verdict-pg.XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return Fail("mkdtemp", std::strerror(errno));
  dir_ = tmpl;
  if (IsRoot()) {
    const passwd* pw = getpwnam(kSuperuser);
    if (pw == nullptr) {
      return Fail(
          "running as root, and there is no `postgres` user to run PostgreSQL as "
          "(PostgreSQL refuses to run as root)",
          "");
    }
    if (chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      return Fail("chown " + dir_, std::strerror(errno));
    }
    if (access(kRunuser, X_OK) != 0) return Fail(std::string(kRunuser) + " not found", "");
  }
  port_ = FreePort();
  if (port_ == 0) return Fail("no free TCP port", std::strerror(errno));

  VERDICT_RETURN_IF_ERROR(InitDataDir());

  {
    std::ofstream conf(dir_ + "/data/postgresql.conf", std::ios::app);
    conf << "\n# PgServer test settings\n"
         << "port = " << port_ << "\n"
         << "listen_addresses = '" << (options_.listen_tcp ? "127.0.0.1" : "") << "'\n"
         << "unix_socket_directories = '" << dir_ << "'\n"
         << "max_prepared_transactions = " << options_.max_prepared_transactions << "\n"
         << "max_connections = " << options_.max_connections << "\n"
         << "fsync = on\n"
         << "synchronous_commit = on\n"
         << "shared_buffers = 32MB\n"
         << "log_min_messages = warning\n"
         << "recovery_init_sync_method = syncfs\n";
    for (const auto& line : options_.extra_config) conf << line << "\n";
    if (!conf.good()) return Fail("cannot write postgresql.conf", "");
  }
  // The watchdog first, so that no window leaves a server behind a dead test process.
  VERDICT_RETURN_IF_ERROR(StartWatchdog());
  return PgCtlStart();
}

Status PgServer::InitDataDir() {
  // initdb costs seconds; it runs once per process into a template that every server
  // copies. The template is removed by its own watchdog when the process exits.
  static std::mutex mu;
  static std::string* template_dir = nullptr;  // leaked on purpose: lives until exit
  std::lock_guard<std::mutex> lock(mu);
  std::string out;
  if (template_dir == nullptr) {
    char tmpl[] = "/tmp/verdict-pg-template.XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return Fail("mkdtemp", std::strerror(errno));
    const std::string dir = tmpl;
    if (IsRoot()) {
      const passwd* pw = getpwnam(kSuperuser);
      if (pw == nullptr || chown(dir.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
        return Fail("chown " + dir, std::strerror(errno));
      }
    }
    Status s = RunServerTool({bin_dir_ + "/initdb", "-D", dir + "/data", "-U", kSuperuser,
                              "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"},
                             &out);
    if (!s.ok()) {
      std::error_code ec;
      fs::remove_all(dir, ec);
      return Fail("initdb", s.message());
    }
    int fd = -1;
    pid_t pid = -1;
    // The write end stays open until the process exits; then the watchdog removes the dir.
    VERDICT_RETURN_IF_ERROR(SpawnWatchdog("read -r x; rm -rf " + ShellQuote(dir), &fd, &pid));
    template_dir = new std::string(dir);
  }
  Status s = RunServerTool({"/bin/cp", "-a", *template_dir + "/data", dir_ + "/data"}, &out);
  if (!s.ok()) return Fail("copying the initdb template", s.message());
  return Status::OK();
}

Status PgServer::PgCtlStart() {
  std::string out;
  Status s = RunServerTool({bin_dir_ + "/pg_ctl", "start", "-w", "-t", "60", "-s", "-D",
                            dir_ + "/data", "-l", dir_ + "/server.log"},
                           &out);
  if (!s.ok()) {
    std::string ignored;
    // pg_ctl may have given up waiting on a server that is still coming up.
    RunServerTool(
        {bin_dir_ + "/pg_ctl", "stop", "-w", "-s", "-D", dir_ + "/data", "-m", "immediate"},
        &ignored);
    return Fail("pg_ctl start", s.message());
  }
  running_ = true;
  return Status::OK();
}

Status PgServer::PgCtlStop(const char* mode) {
  std::string out;
  Status s = RunServerTool(
      {bin_dir_ + "/pg_ctl", "stop", "-w", "-t", "60", "-s", "-D", dir_ + "/data", "-m", mode},
      &out);
  if (!s.ok()) return Fail(std::string("pg_ctl stop -m ") + mode, s.message());
  running_ = false;
  return Status::OK();
}

Status PgServer::SpawnWatchdog(const std::string& script, int* fd, pid_t* pid_out) const {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return Fail("pipe2", std::strerror(errno));
  std::string sh = "/bin/sh", dash_c = "-c", body = script;
  char* argv[] = {sh.data(), dash_c.data(), body.data(), nullptr};
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return Fail("fork watchdog", std::strerror(errno));
  }
  if (pid == 0) {
    dup2(fds[0], STDIN_FILENO);  // clears close-on-exec on the read end
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) {
      dup2(devnull, STDOUT_FILENO);
      dup2(devnull, STDERR_FILENO);
    }
    setsid();  // survive signals sent to the test's process group
    if (chdir("/") != 0) _exit(126);
    execv(argv[0], argv);
    _exit(127);
  }
  close(fds[0]);
  *fd = fds[1];
  *pid_out = pid;
  return Status::OK();
}

Status PgServer::StartWatchdog() {
  // Reads "q" when the owner cleaned up itself, EOF when the owner died.
  std::string script = "read -r x; [ \"$x\" = q ] && exit 0; ";
  if (IsRoot()) script += std::string(kRunuser) + " -u " + kSuperuser + " -- ";
  script += ShellQuote(bin_dir_ + "/pg_ctl") + " stop -D " + ShellQuote(dir_ + "/data") +
            " -m immediate -w >/dev/null 2>&1; ";
  if (!options_.keep_dir) script += "rm -rf " + ShellQuote(dir_);
  return SpawnWatchdog(script, &watchdog_fd_, &watchdog_pid_);
}

Status PgServer::ImmediateShutdown() {
  if (!running_) return Status::FailedPrecondition("PgServer is not running");
  return PgCtlStop("immediate");
}

Status PgServer::Stop() {
  if (!running_) return Status::OK();
  return PgCtlStop("fast");
}

Status PgServer::Restart() {
  if (dir_.empty()) return Status::FailedPrecondition("PgServer was never started");
  if (running_) VERDICT_RETURN_IF_ERROR(PgCtlStop("fast"));
  return PgCtlStart();
}

std::string PgServer::Dsn(const std::string& dbname) const {
  return "host=" + ConninfoQuote(dir_) + " port=" + std::to_string(port_) + " user=" + kSuperuser +
         " dbname=" + ConninfoQuote(dbname) + " connect_timeout=10";
}

Status PgServer::Query(const std::string& dbname, const std::string& sql,
                       std::vector<std::vector<std::string>>* rows) {
  ConnPtr conn(PQconnectdb(Dsn(dbname).c_str()));
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    return Fail("connect to " + dbname, PQerrorMessage(conn.get()));
  }
  ResultPtr res(PQexec(conn.get(), sql.c_str()));
  const ExecStatusType st = PQresultStatus(res.get());
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    return Status::IOError("PgServer: `" + sql + "` failed: " + PQerrorMessage(conn.get()));
  }
  if (rows != nullptr) {
    rows->clear();
    for (int r = 0; r < PQntuples(res.get()); ++r) {
      std::vector<std::string> row;
      for (int c = 0; c < PQnfields(res.get()); ++c) {
        row.push_back(PQgetisnull(res.get(), r, c) ? "\\N" : PQgetvalue(res.get(), r, c));
      }
      rows->push_back(std::move(row));
    }
  }
  return Status::OK();
}

Status PgServer::Exec(const std::string& dbname, const std::string& sql) {
  return Query(dbname, sql, nullptr);
}

Status PgServer::QueryValue(const std::string& dbname, const std::string& sql, std::string* value) {
  std::vector<std::vector<std::string>> rows;
  VERDICT_RETURN_IF_ERROR(Query(dbname, sql, &rows));
  if (rows.empty() || rows[0].empty()) {
    return Status::NotFound("PgServer: `" + sql + "` returned no row");
  }
  *value = rows[0][0];
  return Status::OK();
}

Status PgServer::CreateDatabase(const std::string& name) {
  std::string ident = "\"";
  for (char c : name) {
    if (c == '"') ident += '"';
    ident += c;
  }
  ident += '"';
  return Exec("postgres", "CREATE DATABASE " + ident);
}

std::string PgServer::LogTail(int lines) const {
  const std::string log = ReadWholeFile(dir_ + "/server.log");
  if (log.empty()) return "(empty)";
  size_t pos = log.size();
  if (log.back() == '\n') --pos;
  for (int n = 0; n < lines && pos > 0; ++n) {
    pos = log.rfind('\n', pos - 1);
    if (pos == std::string::npos) return log;
  }
  return log.substr(pos + 1);
}

}  // namespace verdict::test_support

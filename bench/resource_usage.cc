#include "bench/resource_usage.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>

namespace verdict::bench {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double ToSeconds(const struct timeval& tv) {
  return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
}

}  // namespace

double ProcessCpuSeconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return kNaN;
  // The command name (field 2) may hold spaces; fields after its closing ')' are fixed.
  size_t close = line.rfind(')');
  if (close == std::string::npos) return kNaN;
  std::istringstream fields(line.substr(close + 2));
  std::string field;
  double utime = 0, stime = 0;
  // Fields 3.. follow; utime and stime are fields 14 and 15 (1-based).
  for (int i = 3; i <= 15 && (fields >> field); ++i) {
    if (i == 14) utime = std::strtod(field.c_str(), nullptr);
    if (i == 15) stime = std::strtod(field.c_str(), nullptr);
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

int ProcessThreads(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::atoi(line.c_str() + 8);
  }
  return -1;
}

double SelfCpuSeconds() {
  struct rusage usage;
  if (getrusage(RUSAGE_SELF, &usage) != 0) return kNaN;
  return ToSeconds(usage.ru_utime) + ToSeconds(usage.ru_stime);
}

MachineCpu ReadMachineCpu() {
  MachineCpu cpu;
  std::ifstream in("/proc/stat");
  std::string label;
  if (!(in >> label) || label != "cpu") return cpu;
  // user nice system idle iowait irq softirq steal ...
  double value;
  for (int i = 0; i < 8 && (in >> value); ++i) {
    cpu.total += value;
    if (i != 3 && i != 4) cpu.busy += value;
  }
  return cpu;
}

double LoadAverage1() {
  std::ifstream in("/proc/loadavg");
  double load;
  if (!(in >> load)) return kNaN;
  return load;
}

std::string LoadAverageLine() {
  std::ifstream in("/proc/loadavg");
  std::string line;
  std::getline(in, line);
  return line;
}

std::map<std::string, double> ScrapeMetrics(int port, int timeout_ms) {
  std::map<std::string, double> out;
  if (port <= 0) return out;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return out;
  struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  struct sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string reply;
  if (connect(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) == 0) {
    static const char kRequest[] =
        "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (send(fd, kRequest, sizeof(kRequest) - 1, MSG_NOSIGNAL) ==
        static_cast<ssize_t>(sizeof(kRequest) - 1)) {
      char buf[8192];
      size_t content_length = std::string::npos;
      size_t body_start = std::string::npos;
      while (true) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        reply.append(buf, static_cast<size_t>(n));
        if (body_start == std::string::npos) {
          size_t end = reply.find("\r\n\r\n");
          if (end != std::string::npos) {
            body_start = end + 4;
            std::string head = reply.substr(0, end);
            for (char& c : head) c = static_cast<char>(std::tolower(c));
            size_t cl = head.find("content-length:");
            if (cl != std::string::npos) {
              content_length = std::strtoul(head.c_str() + cl + 15, nullptr, 10);
            }
          }
        }
        if (body_start != std::string::npos && content_length != std::string::npos &&
            reply.size() >= body_start + content_length) {
          break;
        }
      }
    }
  }
  close(fd);
  size_t end = reply.find("\r\n\r\n");
  if (reply.rfind("HTTP/1.", 0) != 0 || reply.find(" 200") > reply.find("\r\n") ||
      end == std::string::npos) {
    return out;
  }
  std::istringstream body(reply.substr(end + 4));
  std::string line;
  while (std::getline(body, line)) {
    if (line.empty() || line[0] == '#' || line.find('{') != std::string::npos) continue;
    size_t space = line.find(' ');
    if (space == std::string::npos) continue;
    try {
      out[line.substr(0, space)] = std::stod(line.substr(space + 1));
    } catch (const std::exception&) {
    }
  }
  return out;
}

}  // namespace verdict::bench

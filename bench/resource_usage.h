// Where the time goes: readings the benchmark takes around each run, from /proc (CPU time
// and threads of a process, whole-machine CPU, load average) and from a coordinator's
// Prometheus /metrics endpoint. Plain functions; thread-safe.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>

namespace verdict::bench {

// CPU seconds (user + system) a process has used, summed over its threads; NaN if the
// process is gone.
double ProcessCpuSeconds(pid_t pid);
// Threads of a process now; -1 if it is gone.
int ProcessThreads(pid_t pid);
// CPU seconds (user + system) this process has used.
double SelfCpuSeconds();

// Whole-machine CPU time from /proc/stat, in clock ticks.
struct MachineCpu {
  double busy = 0;
  double total = 0;
};
MachineCpu ReadMachineCpu();

// The 1-minute load average, NaN if unreadable; and /proc/loadavg's whole first line.
double LoadAverage1();
std::string LoadAverageLine();

// GETs http://127.0.0.1:PORT/metrics and parses the samples without labels into
// name -> value. Empty on any failure (no endpoint, timeout, bad reply).
std::map<std::string, double> ScrapeMetrics(int port, int timeout_ms);

}  // namespace verdict::bench

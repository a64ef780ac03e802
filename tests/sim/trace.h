// Trace: the event log of one simulated run, printed with -v. Formatting costs nothing
// when tracing is off. Not thread-safe.
#pragma once

#include <cstdarg>
#include <cstdio>

#include "tests/sim/event_queue.h"

namespace verdict::sim {

class Trace {
 public:
  Trace(const EventQueue* clock, bool enabled, FILE* out = stdout)
      : clock_(clock), enabled_(enabled), out_(out) {}
  Trace(const Trace&) = delete;
  Trace& operator=(const Trace&) = delete;

  bool enabled() const { return enabled_; }

  __attribute__((format(printf, 2, 3))) void Log(const char* fmt, ...) {
    if (!enabled_) return;
    Time t = clock_->now();
    std::fprintf(out_, "[%6lld.%03lldms] ", static_cast<long long>(t / kMillis),
                 static_cast<long long>(t % kMillis));
    va_list ap;
    va_start(ap, fmt);
    std::vfprintf(out_, fmt, ap);
    va_end(ap);
    std::fputc('\n', out_);
  }

 private:
  const EventQueue* clock_;
  bool enabled_;
  FILE* out_;
};

}  // namespace verdict::sim

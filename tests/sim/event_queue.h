// EventQueue: virtual time and the single ordered queue of future events of one simulated
// run. Events run in (time, insertion order), so the order never depends on anything but
// the seed. Not thread-safe (the simulator is single-threaded).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

namespace verdict::sim {

// Virtual time in microseconds since the start of the run.
using Time = int64_t;
constexpr Time kMicros = 1;
constexpr Time kMillis = 1000;
constexpr Time kSeconds = 1000 * kMillis;

class EventQueue {
 public:
  using Fn = std::function<void()>;

  EventQueue() = default;
  EventQueue(const EventQueue&) = delete;
  EventQueue& operator=(const EventQueue&) = delete;

  Time now() const { return now_; }
  bool empty() const { return heap_.empty(); }
  size_t size() const { return heap_.size(); }
  uint64_t executed() const { return executed_; }

  // Schedules `fn` at virtual time max(t, now()).
  void At(Time t, Fn fn) {
    heap_.push_back(Event{std::max(t, now_), seq_++, std::move(fn)});
    std::push_heap(heap_.begin(), heap_.end(), Later());
  }
  void After(Time delay, Fn fn) { At(now_ + delay, std::move(fn)); }

  // Runs the earliest event, advancing the clock to its time. Returns false if empty.
  bool RunNext() {
    if (heap_.empty()) return false;
    std::pop_heap(heap_.begin(), heap_.end(), Later());
    Event e = std::move(heap_.back());
    heap_.pop_back();
    now_ = e.time;
    ++executed_;
    e.fn();
    return true;
  }

 private:
  struct Event {
    Time time;
    uint64_t seq;
    Fn fn;
  };
  // std::*_heap keep the "largest" on top; the largest here is the earliest event.
  struct Later {
    bool operator()(const Event& a, const Event& b) const {
      return a.time != b.time ? a.time > b.time : a.seq > b.seq;
    }
  };

  std::vector<Event> heap_;
  Time now_ = 0;
  uint64_t seq_ = 0;
  uint64_t executed_ = 0;
};

}  // namespace verdict::sim

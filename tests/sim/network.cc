#include "tests/sim/network.h"

#include <algorithm>

namespace verdict::sim {

Network::Network(EventQueue* queue, Random* rng, Trace* trace,
                 std::function<void(const raft::Message&)> deliver)
    : queue_(queue), rng_(rng), trace_(trace), deliver_(std::move(deliver)) {}

void Network::Split(const std::vector<raft::NodeId>& side, const std::vector<raft::NodeId>& nodes) {
  for (raft::NodeId a : side) {
    for (raft::NodeId b : nodes) {
      if (std::find(side.begin(), side.end(), b) != side.end()) continue;
      Cut(a, b);
      Cut(b, a);
    }
  }
}

void Network::Send(const raft::Message& m) {
  ++stats_.sent;
  if (Blocked(m.from, m.to)) {
    ++stats_.cut;
    return;
  }
  if (faults_.drop > 0 && rng_->Chance(faults_.drop)) {
    ++stats_.dropped;
    if (trace_->enabled()) {
      trace_->Log("net drop %s n%llu->n%llu", raft::MessageTypeName(m.type),
                  static_cast<unsigned long long>(m.from), static_cast<unsigned long long>(m.to));
    }
    return;
  }
  Schedule(m);
  if (faults_.duplicate > 0 && rng_->Chance(faults_.duplicate)) {
    ++stats_.duplicated;
    Schedule(m);
  }
}

Time Network::Delay() {
  Time delay = rng_->RangeSigned(faults_.min_delay, faults_.max_delay);
  if (faults_.spike > 0 && rng_->Chance(faults_.spike)) {
    delay += rng_->RangeSigned(0, faults_.spike_delay);
  }
  return delay;
}

void Network::Post(raft::NodeId from, raft::NodeId to, std::function<void()> deliver) {
  ++stats_.sent;
  if (PostBlocked(from, to)) {
    ++stats_.cut;
    return;
  }
  if (faults_.drop > 0 && rng_->Chance(faults_.drop)) {
    ++stats_.dropped;
    return;
  }
  int copies = 1;
  if (faults_.duplicate > 0 && rng_->Chance(faults_.duplicate)) {
    ++stats_.duplicated;
    copies = 2;
  }
  for (int i = 0; i < copies; ++i) {
    queue_->After(Delay(), [this, from, to, deliver]() {
      if (PostBlocked(from, to)) {
        ++stats_.cut;
        return;
      }
      ++stats_.delivered;
      deliver();
    });
  }
}

void Network::Schedule(const raft::Message& m) {
  Time delay = Delay();
  queue_->After(delay, [this, m]() {
    if (Blocked(m.from, m.to)) {
      ++stats_.cut;
      return;
    }
    ++stats_.delivered;
    deliver_(m);
  });
}

}  // namespace verdict::sim

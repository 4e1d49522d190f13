#include "common/periodic.h"

namespace latchkey {

Periodic::Periodic(absl::Duration interval, std::function<void()> tick)
    : interval_(interval), tick_(std::move(tick)), thread_([this] { Loop(); }) {}

Periodic::~Periodic() { Stop(); }

void Periodic::Stop() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    stop_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
}

void Periodic::Loop() {
  MutexLock lock(&mu_);
  auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
  while (!stop_.WaitFor(&mu_, interval_, stopping)) {
    mu_.Unlock();
    tick_();
    mu_.Lock();
  }
}

}  // namespace latchkey

#include "authority/fanout/event_hub.h"

namespace latchkey {

EventHub::EventHub(std::string store_id, absl::Duration progress_interval,
                   std::function<uint64_t()> head)
    : store_id_(std::move(store_id)),
      progress_interval_(progress_interval),
      head_(std::move(head)),
      ticker_(progress_interval_, [this] { TickProgress(); }) {}

EventHub::~EventHub() { ticker_.Stop(); }

void EventHub::Add(Subscriber* s) {
  MutexLock lock(&mu_);
  subscribers_.insert(s);
  changes_.fetch_add(1, std::memory_order_relaxed);
}

void EventHub::Remove(Subscriber* s) {
  MutexLock lock(&mu_);
  subscribers_.erase(s);
  changes_.fetch_add(1, std::memory_order_relaxed);
}

size_t EventHub::size() const {
  MutexLock lock(&mu_);
  return subscribers_.size();
}

void EventHub::CloseAll(const absl::Status& why) {
  MutexLock lock(&mu_);
  for (Subscriber* s : subscribers_) s->Close(why);
}

void EventHub::ClosePrincipal(std::string_view principal_id, const absl::Status& why) {
  MutexLock lock(&mu_);
  for (Subscriber* s : subscribers_) {
    if (s->principal_id() == principal_id) s->Close(why);
  }
}

void EventHub::Publish(const v1::KeyEvent& event) {
  v1::WatchResponse message;
  message.set_store_id(store_id_);
  *message.mutable_event() = event;
  Broadcast(WireResponse::Encode(message));
  changes_.fetch_add(1, std::memory_order_relaxed);
}

void EventHub::Broadcast(const SharedResponse& message) {
  MutexLock lock(&mu_);
  for (Subscriber* s : subscribers_) s->Deliver(message);
}

void EventHub::TickProgress() {
  // The head is read under mu_, which Publish also takes: a progress message
  // never names a head behind an event already delivered. It may name one
  // whose event follows right after it.
  MutexLock lock(&mu_);
  v1::WatchResponse progress;
  progress.set_store_id(store_id_);
  progress.mutable_progress()->set_head_revision(head_());
  const SharedResponse message = WireResponse::Encode(progress);
  for (Subscriber* s : subscribers_) s->Deliver(message);
}

}  // namespace latchkey

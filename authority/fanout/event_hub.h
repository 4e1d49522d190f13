// Fans committed events out to every watch stream, in revision order, and
// ticks progress messages. Each message is encoded once, for all of them
// (authority/fanout/wire_response.h).
//
// Subscribers are told of each event from the store's commit listener, which
// the store calls in revision order, one commit at a time, under locks of
// its own (authority/store/key_store.h, KeyStore::CommitListener), so that delivery
// order is revision order; Deliver must therefore only queue and kick a
// write, never read the store or block.
//
// An EventHub is safe for concurrent access from multiple threads.
#ifndef LATCHKEY_AUTHORITY_FANOUT_EVENT_HUB_H_
#define LATCHKEY_AUTHORITY_FANOUT_EVENT_HUB_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "authority/fanout/wire_response.h"
#include "common/mutex.h"
#include "common/periodic.h"
#include "latchkey/v1/key_sync.pb.h"

namespace latchkey {

class Subscriber {
 public:
  virtual ~Subscriber() = default;
  // A committed event or a progress message, shared with every other
  // subscriber. Must not block.
  virtual void Deliver(const SharedResponse& message) = 0;
  // End the stream with `why` (the authority is stopping, the caller's
  // principal was deleted). Must not block.
  virtual void Close(const absl::Status& why) = 0;
  // Who opened the stream.
  virtual const std::string& principal_id() const = 0;
};

class EventHub {
 public:
  // `head` answers the current head revision for progress messages.
  EventHub(std::string store_id, absl::Duration progress_interval, std::function<uint64_t()> head);
  ~EventHub();  // stops the progress ticker

  // Subscribers are not owned; Remove before destroying one. After Remove
  // returns, the hub never calls it again.
  void Add(Subscriber* s);
  void Remove(Subscriber* s);
  size_t size() const;

  // Closes every subscriber with `why`, for shutdown.
  void CloseAll(const absl::Status& why);
  // Closes the subscribers `principal_id` opened, with `why`.
  void ClosePrincipal(std::string_view principal_id, const absl::Status& why);

  // Called by the store's commit listener, in revision order.
  void Publish(const v1::KeyEvent& event);

  // Subscribers added and removed and events published so far: the work
  // that leaves freed memory behind (common/memory_release.h). Progress
  // messages are not counted; each one's memory is reused by the next.
  uint64_t changes() const { return changes_.load(std::memory_order_relaxed); }

 private:
  void Broadcast(const SharedResponse& message);
  // Sends every subscriber a progress message with the head revision.
  void TickProgress();

  // Constant after construction.
  const std::string store_id_;
  const absl::Duration progress_interval_;
  const std::function<uint64_t()> head_;

  mutable Mutex mu_;
  absl::flat_hash_set<Subscriber*> subscribers_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> changes_{0};
  Periodic ticker_;  // TickProgress every progress_interval_; last, so it starts last
};

}  // namespace latchkey

#endif  // LATCHKEY_AUTHORITY_FANOUT_EVENT_HUB_H_

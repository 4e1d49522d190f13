#include "authority/fanout/propagation.h"

#include <algorithm>

#include "common/key_format.h"
#include "common/strings.h"
#include "common/time_util.h"

namespace latchkey {
namespace {

// 32 base62 characters: about 190 random bits.
std::string NewSession() { return GenerateId("ses_", 32); }

}  // namespace

PropagationTracker::PropagationTracker(absl::Duration forget_after, size_t max_disconnected)
    : forget_after_(forget_after), max_disconnected_(max_disconnected) {}

void PropagationTracker::Committed(uint64_t revision, absl::Time at) {
  MutexLock lock(&mu_);
  timings_[revision].committed = at;
  ++version_;
  while (timings_.size() > kHistory) timings_.erase(timings_.begin());
}

PropagationTracker::Stream PropagationTracker::Opened(const std::string& principal_id,
                                                      const std::string& sidecar_id,
                                                      const std::string& resume_session,
                                                      absl::Time now) {
  MutexLock lock(&mu_);
  Forget(now);
  Stream stream{resume_session, ++generations_};
  Entry* entry = Find(principal_id, resume_session);
  if (entry == nullptr || entry->sidecar_id != sidecar_id) {
    stream.session = NewSession();
    entry = &entries_[stream.session];
    entry->principal_id = principal_id;
    entry->sidecar_id = sidecar_id;
  } else if (entry->disconnected) {
    disconnected_.erase({*entry->disconnected, stream.session});
    entry->disconnected.reset();
  }
  entry->generation = stream.generation;
  ++version_;
  return stream;
}

void PropagationTracker::Closed(const Stream& stream, absl::Time now) {
  MutexLock lock(&mu_);
  auto it = entries_.find(stream.session);
  // Gone (the sidecar left), or held by a newer stream.
  if (it == entries_.end() || it->second.generation != stream.generation) return;
  it->second.disconnected = now;
  disconnected_.emplace(now, stream.session);
  ++version_;
  Forget(now);
}

PropagationTracker::Entry* PropagationTracker::Find(const std::string& principal_id,
                                                    const std::string& session) {
  auto it = entries_.find(session);
  if (it == entries_.end() || it->second.principal_id != principal_id) return nullptr;
  return &it->second;
}

absl::Status PropagationTracker::Acknowledged(const std::string& principal_id,
                                              const std::string& session, uint64_t applied_revision,
                                              absl::Time at) {
  MutexLock lock(&mu_);
  Entry* entry = Find(principal_id, session);
  if (entry == nullptr) {
    return absl::FailedPreconditionError(
        "no watch session of this caller has that id: acknowledge with the session of an open "
        "Watch stream");
  }
  if (applied_revision <= entry->applied) return absl::OkStatus();
  // Every kept revision this acknowledgement newly covers was applied by
  // now: usually one, all of them for a sidecar's first.
  for (auto it = timings_.upper_bound(entry->applied);
       it != timings_.end() && it->first <= applied_revision; ++it) {
    it->second.slowest = std::max(it->second.slowest, at - it->second.committed);
  }
  entry->applied = applied_revision;
  ++version_;
  return absl::OkStatus();
}

absl::Status PropagationTracker::Left(const std::string& principal_id, const std::string& session) {
  MutexLock lock(&mu_);
  Entry* entry = Find(principal_id, session);
  if (entry == nullptr) {
    return absl::FailedPreconditionError("no watch session of this caller has that id");
  }
  if (entry->disconnected) disconnected_.erase({*entry->disconnected, session});
  entries_.erase(session);
  ++version_;
  return absl::OkStatus();
}

void PropagationTracker::Forget(absl::Time now) const {
  while (!disconnected_.empty() && (disconnected_.size() > max_disconnected_ ||
                                    now - disconnected_.begin()->first >= forget_after_)) {
    entries_.erase(disconnected_.begin()->second);
    disconnected_.erase(disconnected_.begin());
    ++version_;
  }
}

absl::StatusOr<v1::GetPropagationResponse> PropagationTracker::Receipt(
    uint64_t revision, uint64_t head, absl::Time now,
    const std::vector<internal::SharedReceipts>& others) const {
  if (revision == 0 || revision > head) {
    return absl::InvalidArgumentError(
        StrCat("revision must be between 1 and the head revision ", head));
  }
  v1::GetPropagationResponse resp;
  resp.set_revision(revision);
  resp.set_head_revision(head);
  std::vector<v1::MissingSidecar> missing;
  // One sidecar, here or on another replica.
  auto count = [&](const std::string& sidecar_id, uint64_t applied,
                   std::optional<absl::Time> disconnected) {
    if (disconnected) {
      resp.set_sidecars_disconnected(resp.sidecars_disconnected() + 1);
    } else {
      resp.set_sidecars_connected(resp.sidecars_connected() + 1);
    }
    if (applied >= revision) {
      resp.set_sidecars_applied(resp.sidecars_applied() + 1);
      return;
    }
    v1::MissingSidecar& m = missing.emplace_back();
    m.set_sidecar_id(sidecar_id);
    if (disconnected) *m.mutable_disconnected_time() = ToProto(*disconnected);
  };
  absl::Duration slowest = absl::ZeroDuration();
  {
    MutexLock lock(&mu_);
    Forget(now);
    for (const auto& [session, e] : entries_) count(e.sidecar_id, e.applied, e.disconnected);
    if (auto timing = timings_.find(revision); timing != timings_.end()) {
      slowest = timing->second.slowest;
    }
  }
  for (const internal::SharedReceipts& other : others) {
    for (const auto& s : other.sidecars()) {
      std::optional<absl::Time> disconnected;
      if (s.disconnected_unix_micros() != 0) {
        disconnected = absl::FromUnixMicros(s.disconnected_unix_micros());
      }
      count(s.sidecar_id(), s.applied(), disconnected);
    }
    for (const auto& d : other.delays()) {
      if (d.revision() == revision) {
        slowest = std::max(slowest, absl::Microseconds(d.slowest_micros()));
      }
    }
  }
  std::sort(missing.begin(), missing.end(),
            [](const auto& a, const auto& b) { return a.sidecar_id() < b.sidecar_id(); });
  for (v1::MissingSidecar& m : missing) {
    resp.add_missing_sidecar_ids(m.sidecar_id());
    *resp.add_missing_sidecars() = std::move(m);
  }
  *resp.mutable_slowest_apply_delay() = ToProto(slowest);
  return resp;
}

internal::SharedReceipts PropagationTracker::Share(absl::Time now) const {
  internal::SharedReceipts shared;
  MutexLock lock(&mu_);
  Forget(now);
  for (const auto& [session, e] : entries_) {
    auto* s = shared.add_sidecars();
    s->set_sidecar_id(e.sidecar_id);
    s->set_applied(e.applied);
    if (e.disconnected) s->set_disconnected_unix_micros(absl::ToUnixMicros(*e.disconnected));
  }
  auto it = timings_.end();
  for (size_t n = 0; n < kSharedDelays && it != timings_.begin(); ++n) --it;
  for (; it != timings_.end(); ++it) {
    auto* d = shared.add_delays();
    d->set_revision(it->first);
    d->set_slowest_micros(absl::ToInt64Microseconds(it->second.slowest));
  }
  return shared;
}

uint64_t PropagationTracker::version() const {
  MutexLock lock(&mu_);
  return version_;
}

absl::StatusOr<v1::GetPropagationResponse> PropagationTracker::ReceiptAcrossReplicas(
    uint64_t revision, uint64_t head, const Replicas& replicas, absl::Time now) const {
  absl::StatusOr<std::vector<std::string>> shared = replicas.SharedByOthers();
  if (!shared.ok()) return shared.status();
  std::vector<internal::SharedReceipts> others(shared->size());
  for (size_t i = 0; i < shared->size(); ++i) {
    if (!others[i].ParseFromString((*shared)[i])) {
      return absl::DataLossError("another replica shared receipts this one cannot read");
    }
  }
  return Receipt(revision, head, now, others);
}

}  // namespace latchkey

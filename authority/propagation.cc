#include "authority/propagation.h"

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
  commit_times_[revision] = at;
  while (commit_times_.size() > kHistory) commit_times_.erase(commit_times_.begin());
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
  return stream;
}

void PropagationTracker::Closed(const Stream& stream, absl::Time now) {
  MutexLock lock(&mu_);
  auto it = entries_.find(stream.session);
  // Gone (the sidecar left), or held by a newer stream.
  if (it == entries_.end() || it->second.generation != stream.generation) return;
  it->second.disconnected = now;
  disconnected_.emplace(now, stream.session);
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
  entry->applied = applied_revision;
  entry->acks.emplace_back(applied_revision, at);
  while (entry->acks.size() > kHistory) entry->acks.pop_front();
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
  return absl::OkStatus();
}

void PropagationTracker::Forget(absl::Time now) const {
  while (!disconnected_.empty() && (disconnected_.size() > max_disconnected_ ||
                                    now - disconnected_.begin()->first >= forget_after_)) {
    entries_.erase(disconnected_.begin()->second);
    disconnected_.erase(disconnected_.begin());
  }
}

absl::StatusOr<v1::GetPropagationResponse> PropagationTracker::Receipt(uint64_t revision,
                                                                       uint64_t head,
                                                                       absl::Time now) const {
  if (revision == 0 || revision > head) {
    return absl::InvalidArgumentError(
        StrCat("revision must be between 1 and the head revision ", head));
  }
  MutexLock lock(&mu_);
  Forget(now);
  v1::GetPropagationResponse resp;
  resp.set_revision(revision);
  resp.set_head_revision(head);
  auto committed = commit_times_.find(revision);
  absl::Duration slowest = absl::ZeroDuration();
  std::vector<v1::MissingSidecar> missing;
  for (const auto& [session, e] : entries_) {
    if (e.disconnected) {
      resp.set_sidecars_disconnected(resp.sidecars_disconnected() + 1);
    } else {
      resp.set_sidecars_connected(resp.sidecars_connected() + 1);
    }
    if (e.applied < revision) {
      v1::MissingSidecar& m = missing.emplace_back();
      m.set_sidecar_id(e.sidecar_id);
      if (e.disconnected) *m.mutable_disconnected_time() = ToProto(*e.disconnected);
      continue;
    }
    resp.set_sidecars_applied(resp.sidecars_applied() + 1);
    auto ack = std::lower_bound(e.acks.begin(), e.acks.end(), revision,
                                [](const auto& a, uint64_t r) { return a.first < r; });
    if (committed != commit_times_.end() && ack != e.acks.end()) {
      slowest = std::max(slowest, ack->second - committed->second);
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

}  // namespace latchkey

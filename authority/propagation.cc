#include "authority/propagation.h"

#include <algorithm>

#include "common/strings.h"
#include "common/time_util.h"

namespace latchkey {

void PropagationTracker::Committed(uint64_t revision, absl::Time at) {
  MutexLock lock(&mu_);
  commit_times_[revision] = at;
  while (commit_times_.size() > kHistory) commit_times_.erase(commit_times_.begin());
}

void PropagationTracker::Connected(const std::string& sidecar_id) {
  MutexLock lock(&mu_);
  ++sidecars_[sidecar_id].streams;
}

void PropagationTracker::Disconnected(const std::string& sidecar_id) {
  MutexLock lock(&mu_);
  auto it = sidecars_.find(sidecar_id);
  if (it == sidecars_.end()) return;
  if (--it->second.streams <= 0) sidecars_.erase(it);
}

void PropagationTracker::Acknowledged(const std::string& sidecar_id, uint64_t applied_revision,
                                      absl::Time at) {
  MutexLock lock(&mu_);
  auto it = sidecars_.find(sidecar_id);
  if (it == sidecars_.end()) return;  // only connected sidecars count
  Sidecar& s = it->second;
  if (applied_revision <= s.applied) return;
  s.applied = applied_revision;
  s.acks.emplace_back(applied_revision, at);
  while (s.acks.size() > kHistory) s.acks.pop_front();
}

absl::StatusOr<v1::GetPropagationResponse> PropagationTracker::Receipt(uint64_t revision,
                                                                       uint64_t head) const {
  if (revision == 0 || revision > head) {
    return absl::InvalidArgumentError(
        StrCat("revision must be between 1 and the head revision ", head));
  }
  MutexLock lock(&mu_);
  v1::GetPropagationResponse resp;
  resp.set_revision(revision);
  resp.set_head_revision(head);
  auto committed = commit_times_.find(revision);
  absl::Duration slowest = absl::ZeroDuration();
  std::vector<std::string> missing;
  for (const auto& [id, s] : sidecars_) {
    resp.set_sidecars_connected(resp.sidecars_connected() + 1);
    if (s.applied < revision) {
      missing.push_back(id);
      continue;
    }
    resp.set_sidecars_applied(resp.sidecars_applied() + 1);
    auto ack = std::lower_bound(s.acks.begin(), s.acks.end(), revision,
                                [](const auto& a, uint64_t r) { return a.first < r; });
    if (committed != commit_times_.end() && ack != s.acks.end()) {
      slowest = std::max(slowest, ack->second - committed->second);
    }
  }
  std::sort(missing.begin(), missing.end());
  for (std::string& id : missing) resp.add_missing_sidecar_ids(std::move(id));
  *resp.mutable_slowest_apply_delay() = ToProto(slowest);
  return resp;
}

}  // namespace latchkey

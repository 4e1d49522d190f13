#include "sidecar/usage.h"

#include <algorithm>

#include "common/grpc_client.h"
#include "common/log.h"
#include "common/time_util.h"

namespace latchkey {

Use UseOf(v1::Verdict verdict) {
  switch (verdict) {
    case v1::VALID:
      return Use::kUsed;
    case v1::REVOKED:
    case v1::EXPIRED:
    case v1::PROJECT_DISABLED:
      return Use::kRejected;
    default:
      return Use::kNone;
  }
}

void UsageCounter::Counts::Merge(const Counts& more) {
  count += more.count;
  last_used_micros = std::max(last_used_micros, more.last_used_micros);
  rejected += more.rejected;
  last_rejected_micros = std::max(last_rejected_micros, more.last_rejected_micros);
}

UsageCounter::Counts UsageCounter::Counts::Of(Use use, absl::Time when) {
  const int64_t micros = absl::ToUnixMicros(when);
  if (use == Use::kUsed) return {.count = 1, .last_used_micros = micros};
  return {.rejected = 1, .last_rejected_micros = micros};
}

size_t UsageCounter::ShardOf(std::string_view key_id) {
  return std::hash<std::string_view>()(key_id) % kShards;
}

void UsageCounter::Shard::Merge(std::string_view key_id, const Counts& more) {
  auto it = counts.find(absl::string_view(key_id.data(), key_id.size()));
  if (it == counts.end()) it = counts.emplace(std::string(key_id), Counts{}).first;
  it->second.Merge(more);
}

void UsageCounter::Add(std::string_view key_id, const Counts& more) {
  Shard& shard = shards_[ShardOf(key_id)];
  MutexLock lock(&shard.mu);
  shard.Merge(key_id, more);
}

void UsageCounter::Count(const Validation& v, absl::Time when) {
  const Use use = UseOf(v.verdict);
  if (use == Use::kNone) return;
  const std::array<char, 20> id = v.key_id_chars();
  Add(std::string_view(id.data(), id.size()), Counts::Of(use, when));
}

void UsageCounter::Tally::Count(const Validation& v, absl::Time when) {
  const Use use = UseOf(v.verdict);
  if (use == Use::kNone) return;
  const std::array<char, 20> id = v.key_id_chars();
  shards_[ShardOf(std::string_view(id.data(), id.size()))][id].Merge(
      UsageCounter::Counts::Of(use, when));
}

void UsageCounter::Add(const Tally& tally) {
  for (size_t i = 0; i < kShards; ++i) {
    if (tally.shards_[i].empty()) continue;
    Shard& shard = shards_[i];
    MutexLock lock(&shard.mu);
    for (const auto& [id, more] : tally.shards_[i]) {
      shard.Merge(std::string_view(id.data(), id.size()), more);
    }
  }
}

void UsageCounter::Record(std::string_view key_id, absl::Time when) {
  Add(key_id, Counts::Of(Use::kUsed, when));
}

void UsageCounter::RecordRejected(std::string_view key_id, absl::Time when) {
  Add(key_id, Counts::Of(Use::kRejected, when));
}

void UsageCounter::Merge(const v1::ReportUsageRequest& usage) {
  for (const v1::KeyUsage& u : usage.usage()) {
    Add(u.key_id(),
        Counts{.count = u.count(),
               .last_used_micros =
                   u.count() > 0 ? absl::ToUnixMicros(FromProto(u.last_used_time())) : 0,
               .rejected = u.rejected_count(),
               .last_rejected_micros = u.rejected_count() > 0
                                           ? absl::ToUnixMicros(FromProto(u.last_rejected_time()))
                                           : 0});
  }
}

v1::ReportUsageRequest UsageCounter::Drain() {
  v1::ReportUsageRequest req;
  for (Shard& shard : shards_) {
    absl::flat_hash_map<std::string, Counts> taken;
    {
      MutexLock lock(&shard.mu);
      taken.swap(shard.counts);
    }
    for (auto& [key_id, c] : taken) {
      v1::KeyUsage* u = req.add_usage();
      u->set_key_id(key_id);
      if (c.count > 0) {
        u->set_count(c.count);
        *u->mutable_last_used_time() = ToProto(absl::FromUnixMicros(c.last_used_micros));
      }
      if (c.rejected > 0) {
        u->set_rejected_count(c.rejected);
        *u->mutable_last_rejected_time() = ToProto(absl::FromUnixMicros(c.last_rejected_micros));
      }
    }
  }
  return req;
}

UsageReporter::UsageReporter(std::shared_ptr<grpc::Channel> channel, std::string token,
                             std::string sidecar_id, absl::Duration interval)
    : stub_(v1::KeySync::NewStub(std::move(channel))),
      token_(std::move(token)),
      sidecar_id_(std::move(sidecar_id)),
      interval_(interval) {}

UsageReporter::~UsageReporter() { Stop(); }

void UsageReporter::Start() {
  ticker_ = std::make_unique<Periodic>(interval_, [this] {
    if (grpc::Status s = Flush(); !s.ok()) {
      spdlog::warn("usage report failed ({}); will retry", s.error_message());
    }
  });
}

void UsageReporter::Stop() {
  if (stopped_.exchange(true)) return;
  if (ticker_) ticker_->Stop();
  if (grpc::Status s = Flush(); !s.ok()) {
    spdlog::warn("final usage report failed: {}", s.error_message());
  }
}

std::vector<v1::ReportUsageRequest> SplitUsage(const v1::ReportUsageRequest& usage,
                                               size_t max_bytes) {
  // Room for the sidecar id and the framing of each entry.
  const size_t overhead = usage.sidecar_id().size() + 16;
  std::vector<v1::ReportUsageRequest> parts;
  size_t bytes = max_bytes;  // forces a first part
  for (const v1::KeyUsage& u : usage.usage()) {
    const size_t entry = u.ByteSizeLong() + 8;
    if (bytes + entry > max_bytes) {
      parts.emplace_back().set_sidecar_id(usage.sidecar_id());
      bytes = overhead;
    }
    *parts.back().add_usage() = u;
    bytes += entry;
  }
  return parts;
}

grpc::Status UsageReporter::Flush() {
  MutexLock flush(&flush_mu_);
  v1::ReportUsageRequest all = counter_.Drain();
  if (all.usage().empty()) return grpc::Status::OK;
  all.set_sidecar_id(sidecar_id_);
  std::vector<v1::ReportUsageRequest> parts = SplitUsage(all, report_bytes_);
  std::reverse(parts.begin(), parts.end());  // send from the back
  grpc::Status status;
  while (!parts.empty()) {
    v1::ReportUsageRequest& part = parts.back();
    grpc::Status s = Send(part);
    if (s.ok()) {
      parts.pop_back();
    } else if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED && part.usage_size() > 1) {
      // Too large for the authority: halve it now and from now on.
      report_bytes_ = std::max<size_t>(part.ByteSizeLong() / 2, 1);
      spdlog::warn("usage report of {} bytes refused as too large; sending parts under {} bytes",
                   part.ByteSizeLong(), report_bytes_);
      std::vector<v1::ReportUsageRequest> halves = SplitUsage(part, report_bytes_);
      parts.pop_back();
      parts.insert(parts.end(), halves.rbegin(), halves.rend());
    } else if (s.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
      spdlog::error("usage report for {} keys refused ({}); dropping it rather than retrying it",
                    part.usage_size(), s.error_message());
      parts.pop_back();
      status = s;
    } else {
      for (const v1::ReportUsageRequest& unsent : parts) counter_.Merge(unsent);
      return s;  // keep them for the next report
    }
  }
  return status;
}

grpc::Status UsageReporter::Send(const v1::ReportUsageRequest& report) {
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + token_);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::ReportUsageResponse resp;
  return CallAndWait([&](auto done) { stub_->async()->ReportUsage(&ctx, &report, &resp, done); });
}

}  // namespace latchkey

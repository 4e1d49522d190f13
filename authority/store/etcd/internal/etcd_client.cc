#include "authority/store/etcd/internal/etcd_client.h"

#include "authority/store/etcd/internal/layout.h"
#include "common/strings.h"
#include "common/tls.h"

namespace latchkey {

using etcdserverpb::Compare;
using etcdserverpb::RangeRequest;
using etcdserverpb::RangeResponse;
using etcdserverpb::TxnRequest;
using etcdserverpb::TxnResponse;

absl::Status FromGrpc(const grpc::Status& s, std::string_view what) {
  if (s.ok()) return absl::OkStatus();
  const std::string message = StrCat("etcd ", what, ": ", s.error_message());
  switch (s.error_code()) {
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::CANCELLED:
      return absl::UnavailableError(message);
    case grpc::StatusCode::OUT_OF_RANGE:  // a compacted revision
      return absl::OutOfRangeError(message);
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return absl::ResourceExhaustedError(message);
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
      return absl::PermissionDeniedError(message);
    default:
      return absl::InternalError(message);
  }
}

bool MemberGone(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAVAILABLE ||
         s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
}

EtcdClient::EtcdClient(std::vector<std::string> endpoints,
                       const std::shared_ptr<grpc::ChannelCredentials>& credentials,
                       absl::Duration call_timeout, absl::Duration attempt_timeout)
    : endpoints_(std::move(endpoints)),
      call_timeout_(call_timeout),
      attempt_timeout_(attempt_timeout) {
  for (const std::string& e : endpoints_) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, 64 << 20);
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    // A connection attempt to a member that accepts but never answers
    // (stopped) gives up after an attempt, not gRPC's default 20 s.
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
                static_cast<int>(absl::ToInt64Milliseconds(attempt_timeout)));
    // Keep-alive pings find a silent member under a long call (the watch)
    // even when nothing waits on it. etcd refuses pings more often than
    // every 5 s by default (--grpc-keepalive-min-time), so every 10 s;
    // attempts and the watch's own check (EtcdStore::WaitPublished) notice
    // a silent member within about a second.
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                static_cast<int>(absl::ToInt64Milliseconds(attempt_timeout)));
    auto channel = grpc::CreateCustomChannel(e, credentials, args);
    kv_.push_back(etcdserverpb::KV::NewStub(channel));
    lease_.push_back(etcdserverpb::Lease::NewStub(channel));
    watch_.push_back(etcdserverpb::Watch::NewStub(channel));
  }
}

void EtcdClient::MoveOn(size_t from) {
  size_t expected = from;
  current_.compare_exchange_strong(expected, (from + 1) % size());
}

void EtcdClient::Prepare(grpc::ClientContext& ctx, absl::Time deadline) const {
  ctx.set_deadline(absl::ToChronoTime(std::min(absl::Now() + attempt_timeout_, deadline)));
  // A member cut off from the quorum refuses rather than answering stale.
  ctx.AddMetadata("hasleader", "true");
}

absl::Status EtcdClient::Range(const RangeRequest& req, RangeResponse* resp, absl::Time deadline) {
  return OnAnyMember(
      "range", [&](size_t i, grpc::ClientContext& ctx) { return kv_[i]->Range(&ctx, req, resp); },
      deadline);
}

absl::StatusOr<int64_t> EtcdClient::Grant(absl::Duration ttl) {
  etcdserverpb::LeaseGrantRequest req;
  req.set_ttl(absl::ToInt64Seconds(ttl));
  etcdserverpb::LeaseGrantResponse resp;
  absl::Status s = OnAnyMember("lease grant", [&](size_t i, grpc::ClientContext& ctx) {
    return lease_[i]->LeaseGrant(&ctx, req, &resp);
  });
  if (!s.ok()) return s;
  if (!resp.error().empty()) return absl::InternalError(StrCat("etcd lease grant: ", resp.error()));
  return resp.id();
}

absl::Status EtcdClient::KeepAlive(int64_t lease) {
  etcdserverpb::LeaseKeepAliveResponse resp;
  absl::Status s = OnAnyMember("lease keepalive", [&](size_t i, grpc::ClientContext& ctx) {
    // Renewal is a stream in etcd's API; one request and its answer.
    auto stream = lease_[i]->LeaseKeepAlive(&ctx);
    etcdserverpb::LeaseKeepAliveRequest req;
    req.set_id(lease);
    if (stream->Write(req)) stream->Read(&resp);
    stream->WritesDone();
    return stream->Finish();
  });
  if (!s.ok()) return s;
  if (resp.ttl() <= 0) return absl::NotFoundError("etcd lease expired");
  return absl::OkStatus();
}

absl::Status EtcdClient::Revoke(int64_t lease) {
  etcdserverpb::LeaseRevokeRequest req;
  req.set_id(lease);
  etcdserverpb::LeaseRevokeResponse resp;
  return OnAnyMember("lease revoke", [&](size_t i, grpc::ClientContext& ctx) {
    return lease_[i]->LeaseRevoke(&ctx, req, &resp);
  });
}

grpc::Status EtcdClient::Txn(const TxnRequest& req, TxnResponse* resp, absl::Time deadline) {
  const size_t i = current();
  grpc::ClientContext ctx;
  Prepare(ctx, deadline);
  const absl::Time start = absl::Now();
  grpc::Status s = kv_[i]->Txn(&ctx, req, resp);
  Count(start);
  if (MemberGone(s)) MoveOn(i);
  return s;
}

absl::Status EtcdClient::BlindTxn(const TxnRequest& req, TxnResponse* resp) {
  return OnAnyMember(
      "txn", [&](size_t i, grpc::ClientContext& ctx) { return kv_[i]->Txn(&ctx, req, resp); });
}

void EtcdClient::Count(absl::Time start) {
  calls_.fetch_add(1, std::memory_order_relaxed);
  call_micros_.fetch_add(absl::ToInt64Microseconds(absl::Now() - start), std::memory_order_relaxed);
}

absl::StatusOr<std::unique_ptr<EtcdClient>> ConnectEtcd(const EtcdStoreOptions& options) {
  if (options.endpoints.empty()) return absl::InvalidArgumentError("no etcd endpoints");
  if (options.prefix.empty()) return absl::InvalidArgumentError("the etcd prefix is empty");
  if (absl::Status s = CheckEventRetention(options.event_retention); !s.ok()) return s;
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      ChannelCredentials(ClientTlsFiles{options.ca_file, options.cert_file, options.key_file});
  if (!credentials.ok()) return credentials.status();
  if (options.attempt_timeout <= absl::ZeroDuration() ||
      options.attempt_timeout > options.call_timeout) {
    return absl::InvalidArgumentError("the etcd attempt timeout must be within the call timeout");
  }
  return std::make_unique<EtcdClient>(options.endpoints, *credentials, options.call_timeout,
                                      options.attempt_timeout);
}

absl::StatusOr<std::map<std::string, std::string>> ReadAll(EtcdClient& client,
                                                           const std::string& prefix,
                                                           int64_t etcd_revision) {
  std::map<std::string, std::string> all;
  RangeRequest req;
  req.set_key(prefix);
  req.set_range_end(PrefixEnd(prefix));
  req.set_revision(etcd_revision);
  req.set_limit(5000);
  for (;;) {
    RangeResponse resp;
    if (absl::Status s = client.Range(req, &resp); !s.ok()) return s;
    for (const auto& kv : resp.kvs()) all.emplace_hint(all.end(), kv.key(), kv.value());
    if (!resp.more() || resp.kvs_size() == 0) return all;
    req.set_key(StrCat(resp.kvs(resp.kvs_size() - 1).key(), std::string(1, '\0')));
  }
}

absl::StatusOr<int64_t> CountKeys(EtcdClient& client, const std::string& prefix) {
  RangeRequest req;
  req.set_key(prefix);
  req.set_range_end(PrefixEnd(prefix));
  req.set_count_only(true);
  RangeResponse resp;
  if (absl::Status s = client.Range(req, &resp); !s.ok()) return s;
  return resp.count();
}

void RequireAbsent(TxnRequest& txn, const std::string& key) {
  Compare* c = txn.add_compare();
  c->set_key(key);
  c->set_target(Compare::VERSION);
  c->set_result(Compare::EQUAL);
  c->set_version(0);
}

void RequireValue(TxnRequest& txn, const std::string& key, std::string value) {
  Compare* c = txn.add_compare();
  c->set_key(key);
  c->set_target(Compare::VALUE);
  c->set_result(Compare::EQUAL);
  c->set_value(std::move(value));
}

void RequireLease(TxnRequest& txn, const std::string& key, int64_t lease) {
  Compare* c = txn.add_compare();
  c->set_key(key);
  c->set_target(Compare::LEASE);
  c->set_result(Compare::EQUAL);
  c->set_lease(lease);
}

void AddPut(TxnRequest& txn, std::string key, std::string value, int64_t lease) {
  auto* put = txn.add_success()->mutable_request_put();
  put->set_key(std::move(key));
  put->set_value(std::move(value));
  if (lease != 0) put->set_lease(lease);
}

}  // namespace latchkey

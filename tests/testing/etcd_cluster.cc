#include "tests/testing/etcd_cluster.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <cstdlib>

#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"

namespace latchkey::testing {
namespace {

// Debian's etcd binary, found on PATH.
std::string EtcdBinary() {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    const size_t colon = std::min(dirs.find(':', start), dirs.size());
    const std::string candidate = dirs.substr(start, colon - start) + "/etcd";
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    start = colon + 1;
  }
  FAIL("etcd is not installed (apt-get install etcd-server)");
  return "";
}

std::string Url(int port) { return "http://127.0.0.1:" + std::to_string(port); }

// The member's Status, or false when it does not answer in time.
bool Status(const std::string& endpoint, etcdserverpb::StatusResponse* out) {
  auto channel = grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials());
  auto stub = etcdserverpb::Maintenance::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
  return stub->Status(&ctx, etcdserverpb::StatusRequest(), out).ok();
}

}  // namespace

EtcdCluster::EtcdCluster(int members) {
  members_.resize(members);
  for (int i = 0; i < members; ++i) {
    Member& m = members_[i];
    m.name = "m" + std::to_string(i);
    m.client_port = PickFreePort();  // never one port twice
    m.peer_port = PickFreePort();
    if (!initial_cluster_.empty()) initial_cluster_ += ",";
    initial_cluster_ += m.name + "=" + Url(m.peer_port);
  }
  for (int i = 0; i < members; ++i) Start(i, true);
  const bool up = Eventually([&] { return Leader() >= 0; }, std::chrono::seconds(30));
  if (!up) {
    std::string logs;
    for (const Member& m : members_) logs += m.process->Log();
    FAIL("etcd cluster did not elect a leader:\n" << logs);
  }
}

EtcdCluster::~EtcdCluster() {
  for (Member& m : members_) m.process.reset();
}

void EtcdCluster::Start(int member, bool initial) {
  Member& m = members_[member];
  m.process = std::make_unique<Subprocess>(
      std::vector<std::string>{
          EtcdBinary(), "--name", m.name, "--data-dir", dir_ / m.name, "--listen-client-urls",
          Url(m.client_port), "--advertise-client-urls", Url(m.client_port), "--listen-peer-urls",
          Url(m.peer_port), "--initial-advertise-peer-urls", Url(m.peer_port), "--initial-cluster",
          initial_cluster_, "--initial-cluster-state", initial ? "new" : "existing",
          "--initial-cluster-token", "latchkey-test-" + dir_.path(), "--logger", "zap",
          "--log-level", "warn",
          // Loopback: fast heartbeats, so a killed leader is replaced in
          // about a second rather than the default's several.
          "--heartbeat-interval", "50", "--election-timeout", "500"},
      dir_ / (m.name + ".log"));
}

std::string EtcdCluster::endpoint(int member) const {
  return "127.0.0.1:" + std::to_string(members_[member].client_port);
}

std::string EtcdCluster::endpoints() const {
  std::string all;
  for (int i = 0; i < size(); ++i) all += (i > 0 ? "," : "") + endpoint(i);
  return all;
}

int EtcdCluster::Leader() const {
  for (int i = 0; i < size(); ++i) {
    if (!members_[i].process || !members_[i].process->running()) continue;
    etcdserverpb::StatusResponse status;
    if (Status(endpoint(i), &status) && status.leader() != 0 &&
        status.leader() == status.header().member_id()) {
      return i;
    }
  }
  return -1;
}

void EtcdCluster::Kill(int member) {
  members_[member].process->Signal(SIGKILL);
  members_[member].process->Wait();
}

void EtcdCluster::Restart(int member) { Start(member, false); }

void EtcdCluster::Pause(int member) { members_[member].process->Signal(SIGSTOP); }

void EtcdCluster::Resume(int member) { members_[member].process->Signal(SIGCONT); }

void EtcdCluster::Compact(int member) {
  auto kv = etcdserverpb::KV::NewStub(
      grpc::CreateChannel(endpoint(member), grpc::InsecureChannelCredentials()));
  etcdserverpb::RangeRequest any;
  any.set_key("/");
  any.set_count_only(true);
  etcdserverpb::RangeResponse now;
  grpc::ClientContext read_ctx;
  REQUIRE(kv->Range(&read_ctx, any, &now).ok());
  etcdserverpb::CompactionRequest compact;
  compact.set_revision(now.header().revision());
  compact.set_physical(true);
  etcdserverpb::CompactionResponse done;
  grpc::ClientContext compact_ctx;
  REQUIRE(kv->Compact(&compact_ctx, compact, &done).ok());
}

EtcdCluster& EtcdCluster::Shared() {
  static EtcdCluster cluster(3);  // stopped when the test binary exits
  return cluster;
}

}  // namespace latchkey::testing

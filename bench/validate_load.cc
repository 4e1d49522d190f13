#include "bench/validate_load.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <fstream>
#include <random>
#include <thread>

#include "common/grpc_server.h"
#include "common/key_format.h"
#include "latchkey/v1/validator.grpc.pb.h"

namespace latchkey::bench {
namespace {

using Clock = std::chrono::steady_clock;

// A fixed deck of requests drawn from the mix, dealt round robin.
struct Deck {
  std::vector<v1::ValidateRequest> single;
  std::vector<v1::ValidateBatchRequest> batches;
  std::vector<v1::Verdict> expected;  // for single requests
  std::vector<std::vector<v1::Verdict>> batch_expected;
};

absl::StatusOr<Deck> MakeDeck(const LoadOptions& o) {
  std::vector<std::string> valid, revoked;
  std::ifstream in(o.keys_file);
  std::string verdict, key;
  while (in >> verdict >> key) (verdict == "VALID" ? valid : revoked).push_back(key);
  if (valid.empty() || revoked.empty()) {
    return absl::InvalidArgumentError(
        "--keys-file needs VALID and REVOKED keys (latchkey-bench seed)");
  }
  std::mt19937_64 rng(7);
  std::discrete_distribution<int> pick(
      {o.mix.valid, o.mix.revoked, o.mix.unknown, o.mix.malformed});
  auto draw = [&](std::string* k) {
    switch (pick(rng)) {
      case 0:
        *k = valid[rng() % valid.size()];
        return v1::VALID;
      case 1:
        *k = revoked[rng() % revoked.size()];
        return v1::REVOKED;
      case 2:
        *k = GenerateKey(v1::API_KEY);
        return v1::UNKNOWN;
      default:
        *k = GenerateKey(v1::API_KEY);
        (*k)[10] = (*k)[10] == 'x' ? 'y' : 'x';  // checksum no longer matches
        return v1::MALFORMED;
    }
  };
  Deck d;
  constexpr int kDeck = 4096;
  for (int i = 0; i < kDeck; ++i) {
    if (o.batch == 0) {
      d.expected.push_back(draw(d.single.emplace_back().mutable_key()));
    } else {
      v1::ValidateBatchRequest& b = d.batches.emplace_back();
      std::vector<v1::Verdict>& e = d.batch_expected.emplace_back();
      for (int j = 0; j < o.batch; ++j) e.push_back(draw(b.add_keys()));
      if (i >= 64) break;  // batches are big: a smaller deck is enough
    }
  }
  return d;
}

std::vector<std::unique_ptr<v1::Validator::Stub>> Stubs(const LoadOptions& o) {
  std::vector<std::unique_ptr<v1::Validator::Stub>> stubs;
  for (int i = 0; i < o.connections; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // one TCP connection per channel
    args.SetInt("latchkey.bench.connection", i);
    stubs.push_back(v1::Validator::NewStub(
        grpc::CreateCustomChannel(o.target, grpc::InsecureChannelCredentials(), args)));
  }
  return stubs;
}

// Shared by every call of one run.
struct Run {
  const LoadOptions& o;
  const Deck& deck;
  std::vector<std::unique_ptr<v1::Validator::Stub>> stubs;
  Histogram& latency;
  Clock::time_point measure_from, stop_at;
  std::atomic<uint64_t> next{0}, calls{0}, errors{0}, wrong{0}, outstanding{0};
};

struct Call {
  grpc::ClientContext ctx;
  v1::ValidateResponse resp;
  v1::ValidateBatchResponse batch_resp;
  Clock::time_point due;
  size_t card = 0;
};

void Finish(Run& run, Call* call, const grpc::Status& status) {
  const auto now = Clock::now();
  if (call->due >= run.measure_from && now <= run.stop_at + std::chrono::seconds(1)) {
    run.latency.Record(
        std::chrono::duration_cast<std::chrono::nanoseconds>(now - call->due).count());
    run.calls.fetch_add(1, std::memory_order_relaxed);
    if (!status.ok()) {
      run.errors.fetch_add(1, std::memory_order_relaxed);
    } else if (run.o.check_verdicts) {
      if (run.o.batch == 0) {
        if (call->resp.verdict() != run.deck.expected[call->card]) run.wrong.fetch_add(1);
      } else {
        const auto& want = run.deck.batch_expected[call->card];
        for (int i = 0; i < call->batch_resp.results_size(); ++i) {
          if (call->batch_resp.results(i).verdict() != want[i]) run.wrong.fetch_add(1);
        }
      }
    }
  }
}

// Sends one call on connection `c`; `again` decides whether its completion sends the next.
void Send(Run& run, int c, Clock::time_point due, bool again) {
  auto* call = new Call;
  call->due = due;
  const uint64_t n = run.next.fetch_add(1, std::memory_order_relaxed);
  run.outstanding.fetch_add(1);
  auto done = [&run, call, c, again](grpc::Status status) {
    Finish(run, call, status);
    delete call;
    run.outstanding.fetch_sub(1);
    if (again && Clock::now() < run.stop_at) Send(run, c, Clock::now(), true);
  };
  if (run.o.batch == 0) {
    call->card = n % run.deck.single.size();
    run.stubs[c]->async()->Validate(&call->ctx, &run.deck.single[call->card], &call->resp, done);
  } else {
    call->card = n % run.deck.batches.size();
    run.stubs[c]->async()->ValidateBatch(&call->ctx, &run.deck.batches[call->card],
                                         &call->batch_resp, done);
  }
}

}  // namespace

absl::StatusOr<LoadResult> RunLoad(const LoadOptions& o, Histogram& latency) {
  absl::StatusOr<Deck> deck = MakeDeck(o);
  if (!deck.ok()) return deck.status();
  Run run{o, *deck, Stubs(o), latency, {}, {}, {}, {}, {}, {}, {}};
  const auto start = Clock::now();
  run.measure_from = start + std::chrono::duration_cast<Clock::duration>(
                                 std::chrono::duration<double>(o.warmup_seconds));
  run.stop_at = run.measure_from + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(o.seconds));
  if (o.rate <= 0) {
    for (int c = 0; c < o.connections; ++c) {
      for (int i = 0; i < o.inflight; ++i) Send(run, c, Clock::now(), true);
    }
    std::this_thread::sleep_until(run.stop_at);
  } else {
    // Open loop: calls are due every 1/rate s whether or not earlier ones
    // returned. The pacer wakes every 100 us and sends every call due by
    // then, each timed from its own due time (as wrk2 does): one wakeup per
    // call would mostly measure the timer slack of a busy 2-core machine.
    const auto gap =
        std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / o.rate));
    auto due = start;
    uint64_t i = 0;
    for (auto tick = start; due < run.stop_at; tick += std::chrono::microseconds(100)) {
      std::this_thread::sleep_until(tick);
      for (const auto now = Clock::now(); due <= now && due < run.stop_at; due += gap, ++i) {
        if (run.outstanding.load() < 100000)
          Send(run, static_cast<int>(i % o.connections), due, false);
      }
    }
  }
  while (run.outstanding.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  LoadResult r;
  r.calls = run.calls.load();
  r.errors = run.errors.load();
  r.wrong_verdicts = run.wrong.load();
  r.calls_per_second = r.calls / o.seconds;
  r.keys_per_second = r.calls_per_second * (o.batch == 0 ? 1 : o.batch);
  r.latency = &latency;
  return r;
}

namespace {

class EmptyValidator final : public v1::Validator::CallbackService {
  grpc::ServerUnaryReactor* Validate(grpc::CallbackServerContext* ctx, const v1::ValidateRequest*,
                                     v1::ValidateResponse*) override {
    auto* r = ctx->DefaultReactor();
    r->Finish(grpc::Status::OK);
    return r;
  }
  grpc::ServerUnaryReactor* ValidateBatch(grpc::CallbackServerContext* ctx,
                                          const v1::ValidateBatchRequest*,
                                          v1::ValidateBatchResponse*) override {
    auto* r = ctx->DefaultReactor();
    r->Finish(grpc::Status::OK);
    return r;
  }
};

}  // namespace

int ServeEmptyValidator(const std::string& listen) {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  // The same server setup as latchkey-sidecar: only the handler differs.
  EnableServerPlugins();
  ListenOptions options({listen});
  grpc::ServerBuilder builder;
  std::vector<int> ports;
  if (!AddListeners(builder, options, ports).ok()) return 2;
  EmptyValidator service;
  builder.RegisterService(&service);
  absl::StatusOr<std::unique_ptr<grpc::Server>> server = StartServer(builder, options, ports);
  if (!server.ok()) return 1;
  std::printf("empty validator serving on %s\n", listen.c_str());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop, &sig);
  (*server)->Shutdown();
  return 0;
}

}  // namespace latchkey::bench

#include "bench/validate_load.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>
#include <grpcpp/generic/generic_stub.h>
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

// A fixed deck of requests drawn from the mix, dealt round robin. Batches are
// serialized once: the load generator shares two cores with the server, so
// it sends and reads them as bytes (ReadVerdicts) rather than building and
// parsing a thousand-message response with protobuf on every call.
struct Deck {
  std::vector<v1::ValidateRequest> single;
  std::vector<grpc::ByteBuffer> batches;
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
      v1::ValidateBatchRequest b;
      std::vector<v1::Verdict>& e = d.batch_expected.emplace_back();
      for (int j = 0; j < o.batch; ++j) e.push_back(draw(b.add_keys()));
      grpc::Slice bytes(b.SerializeAsString());
      d.batches.emplace_back(&bytes, 1);
      if (i >= 64) break;  // batches are big: a smaller deck is enough
    }
  }
  return d;
}

// The verdicts of a serialized ValidateBatchResponse, in order; false when
// it is not one.
bool ReadVerdicts(const grpc::ByteBuffer& response, std::vector<v1::Verdict>* verdicts) {
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return false;
  std::string bytes;
  for (const grpc::Slice& s : slices)
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            static_cast<int>(bytes.size()));
  using Wire = google::protobuf::internal::WireFormatLite;
  for (uint32_t tag; (tag = in.ReadTag()) != 0;) {
    if (tag != Wire::MakeTag(1, Wire::WIRETYPE_LENGTH_DELIMITED)) {  // results
      if (!Wire::SkipField(&in, tag)) return false;
      continue;
    }
    uint32_t length;
    if (!in.ReadVarint32(&length)) return false;
    const auto limit = in.PushLimit(static_cast<int>(length));
    uint32_t verdict = 0;
    for (uint32_t field; (field = in.ReadTag()) != 0;) {
      if (field == Wire::MakeTag(1, Wire::WIRETYPE_VARINT)) {  // verdict
        if (!in.ReadVarint32(&verdict)) return false;
      } else if (!Wire::SkipField(&in, field)) {
        return false;
      }
    }
    if (!in.ConsumedEntireMessage()) return false;
    in.PopLimit(limit);
    verdicts->push_back(static_cast<v1::Verdict>(verdict));
  }
  return in.ConsumedEntireMessage();
}

std::vector<std::shared_ptr<grpc::Channel>> Channels(const LoadOptions& o) {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < o.connections; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // one TCP connection per channel
    args.SetInt("latchkey.bench.connection", i);
    channels.push_back(
        grpc::CreateCustomChannel(o.target, grpc::InsecureChannelCredentials(), args));
  }
  return channels;
}

// One connection: the typed stub for Validate, bytes for ValidateBatch.
struct Connection {
  explicit Connection(std::shared_ptr<grpc::Channel> channel)
      : stub(v1::Validator::NewStub(channel)), generic(channel) {}
  std::unique_ptr<v1::Validator::Stub> stub;
  grpc::GenericStub generic;
};

// Shared by every call of one run.
struct Run {
  const LoadOptions& o;
  const Deck& deck;
  std::vector<std::unique_ptr<Connection>> connections;
  Histogram& latency;
  Clock::time_point measure_from, stop_at;
  std::atomic<uint64_t> next{0}, calls{0}, errors{0}, wrong{0}, outstanding{0};
};

struct Call {
  grpc::ClientContext ctx;
  v1::ValidateResponse resp;
  grpc::ByteBuffer batch_resp;
  std::vector<v1::Verdict> verdicts;
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
        if (!ReadVerdicts(call->batch_resp, &call->verdicts) ||
            call->verdicts.size() != want.size()) {
          run.wrong.fetch_add(want.size());
        } else {
          for (size_t i = 0; i < want.size(); ++i) {
            if (call->verdicts[i] != want[i]) run.wrong.fetch_add(1);
          }
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
    run.connections[c]->stub->async()->Validate(&call->ctx, &run.deck.single[call->card],
                                                &call->resp, done);
  } else {
    call->card = n % run.deck.batches.size();
    run.connections[c]->generic.UnaryCall(&call->ctx, "/latchkey.v1.Validator/ValidateBatch", {},
                                          &run.deck.batches[call->card], &call->batch_resp, done);
  }
}

}  // namespace

absl::StatusOr<LoadResult> RunLoad(const LoadOptions& o, Histogram& latency) {
  absl::StatusOr<Deck> deck = MakeDeck(o);
  if (!deck.ok()) return deck.status();
  std::vector<std::unique_ptr<Connection>> connections;
  for (auto& channel : Channels(o)) connections.push_back(std::make_unique<Connection>(channel));
  Run run{o, *deck, std::move(connections), latency, {}, {}, {}, {}, {}, {}, {}};
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

// The alternative to the callback API, measured beside it: a
// completion-queue server whose threads each poll a queue of their own and run
// the handler where they find the call. One call object per call, re-armed
// before it answers, as gRPC's async examples do.
class QueuedCall {
 public:
  QueuedCall(v1::Validator::AsyncService* service, grpc::ServerCompletionQueue* cq)
      : service_(service), cq_(cq), responder_(&ctx_) {
    service_->RequestValidate(&ctx_, &req_, &responder_, cq_, cq_, this);
  }
  // The call's next step: it arrived (answer it), or it was answered or
  // cancelled (free it).
  void Proceed(bool ok) {
    if (ok && !answered_) {
      new QueuedCall(service_, cq_);  // ready for the next call
      answered_ = true;
      responder_.Finish(resp_, grpc::Status::OK, this);
      return;
    }
    delete this;
  }

 private:
  v1::Validator::AsyncService* const service_;
  grpc::ServerCompletionQueue* const cq_;
  grpc::ServerContext ctx_;
  v1::ValidateRequest req_;
  v1::ValidateResponse resp_;
  grpc::ServerAsyncResponseWriter<v1::ValidateResponse> responder_;
  bool answered_ = false;
};

}  // namespace

int ServeEmptyValidator(const std::string& listen, int queue_threads) {
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
  EmptyValidator callback_service;
  v1::Validator::AsyncService queued_service;
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> queues;
  if (queue_threads == 0) {
    builder.RegisterService(&callback_service);
  } else {
    builder.RegisterService(&queued_service);
    for (int i = 0; i < queue_threads; ++i) queues.push_back(builder.AddCompletionQueue());
  }
  absl::StatusOr<std::unique_ptr<grpc::Server>> server = StartServer(builder, options, ports);
  if (!server.ok()) return 1;
  std::vector<std::thread> pollers;
  for (auto& queue : queues) {
    for (int i = 0; i < 64; ++i) new QueuedCall(&queued_service, queue.get());
    pollers.emplace_back([queue = queue.get()] {
      void* tag;
      bool ok;
      while (queue->Next(&tag, &ok)) static_cast<QueuedCall*>(tag)->Proceed(ok);
    });
  }
  std::printf("empty validator serving on %s\n", listen.c_str());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop, &sig);
  (*server)->Shutdown();
  for (auto& queue : queues) queue->Shutdown();
  for (std::thread& t : pollers) t.join();
  return 0;
}

}  // namespace latchkey::bench

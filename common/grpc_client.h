// Blocking gRPC client calls whose waiting thread does not poll.
//
// A thread blocked in a synchronous call (ClientReader::Read, Stub::Method)
// waits inside grpc_pollset_work, and gRPC's epoll engine keeps one epoll set
// for the whole process: the waiting thread becomes one of its pollers and
// runs I/O for every other call of the process. In the sidecar that made the
// watch client's reader thread serve part of the Validate traffic, with a
// hand-off (futex wake and context switch) for most calls it picked up
// (docs/design.md, "Who polls"). The calls here go through gRPC's callback
// API instead: gRPC's own callback threads do the I/O and the caller sleeps
// on a condition variable of its own until the answer is there.
#ifndef LATCHKEY_COMMON_GRPC_CLIENT_H_
#define LATCHKEY_COMMON_GRPC_CLIENT_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/client_callback.h>

#include <functional>
#include <memory>

#include "common/mutex.h"

namespace latchkey {

// Makes one unary call and waits for its status. `start` starts the call
// with the callback it is given, as in
//   CallAndWait([&](auto done) { stub->async()->Method(&ctx, &req, &resp, done); });
// `ctx`, `req` and `resp` must outlive the call, as with the synchronous API.
grpc::Status CallAndWait(const std::function<void(std::function<void(grpc::Status)>)>& start);

// Reads a server stream one message at a time, the way ClientReader does.
// Use through Open():
//   auto stream = StreamReader<Resp>::Open(
//       [&](grpc::ClientContext* ctx, grpc::ClientReadReactor<Resp>* r) {
//         ctx->AddMetadata(...);
//         stub->async()->Method(ctx, &req, r);
//       });
//   while (stream->Read(&msg)) ...;
//   grpc::Status s = stream->Finish();
// context() may be cancelled from any thread. The reader lives until both the
// caller's reference and gRPC are done with it.
template <typename Response>
class StreamReader final : public grpc::ClientReadReactor<Response> {
 public:
  using Start = std::function<void(grpc::ClientContext*, grpc::ClientReadReactor<Response>*)>;

  static std::shared_ptr<StreamReader> Open(const Start& start) {
    std::shared_ptr<StreamReader> reader(new StreamReader);
    reader->self_ = reader;  // gRPC's reference, dropped by OnDone
    start(&reader->ctx_, reader.get());
    // Held until the caller has seen the end: without the hold gRPC could
    // finish the call (OnDone) between two reads, and the next StartRead
    // would touch a finished call.
    reader->AddHold();
    reader->StartRead(&reader->incoming_);
    reader->StartCall();
    return reader;
  }

  grpc::ClientContext* context() { return &ctx_; }

  // The next message into `msg`; false when the stream has ended (then call
  // Finish for its status).
  bool Read(Response* msg) {
    bool more;
    {
      MutexLock lock(&mu_);
      changed_.Wait(&mu_, [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return ready_ || ended_; });
      more = ready_;
      if (more) {
        ready_ = false;
        msg->Swap(&incoming_);
      }
    }
    if (!more) {
      ReleaseHold();
      return false;
    }
    this->StartRead(&incoming_);
    return true;
  }

  // Waits for the stream's final status: call it after Read returned false,
  // or after cancelling context() to stop early.
  grpc::Status Finish() {
    ReleaseHold();
    MutexLock lock(&mu_);
    changed_.Wait(&mu_, [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_; });
    return status_;
  }

 private:
  StreamReader() = default;

  void ReleaseHold() {
    {
      MutexLock lock(&mu_);
      if (!held_) return;
      held_ = false;
    }
    this->RemoveHold();  // may run OnDone here, which takes mu_
  }

  void OnReadDone(bool ok) override {
    MutexLock lock(&mu_);
    (ok ? ready_ : ended_) = true;
    changed_.SignalAll();
  }

  void OnDone(const grpc::Status& status) override {
    // The last reaction: after it gRPC never touches this object again, so
    // it may be the one to free it.
    std::shared_ptr<StreamReader> last = std::move(self_);
    MutexLock lock(&mu_);
    status_ = status;
    done_ = true;
    ended_ = true;
    changed_.SignalAll();
  }

  grpc::ClientContext ctx_;
  std::shared_ptr<StreamReader> self_;
  Response incoming_;  // gRPC's between StartRead and OnReadDone
  Mutex mu_;
  CondVar changed_;
  bool ready_ ABSL_GUARDED_BY(mu_) = false;  // incoming_ holds a message
  bool ended_ ABSL_GUARDED_BY(mu_) = false;  // no message will come
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool held_ ABSL_GUARDED_BY(mu_) = true;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace latchkey

#endif  // LATCHKEY_COMMON_GRPC_CLIENT_H_

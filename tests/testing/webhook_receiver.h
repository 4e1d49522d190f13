// A webhook receiver for tests: an HTTP server on a free loopback port that
// records every POST to /hook and answers it as the test says.
#ifndef LATCHKEY_TESTS_TESTING_WEBHOOK_RECEIVER_H_
#define LATCHKEY_TESTS_TESTING_WEBHOOK_RECEIVER_H_

#include <httplib.h>

#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "common/http.h"
#include "common/mutex.h"

namespace latchkey::testing {

class WebhookReceiver {
 public:
  WebhookReceiver() {
    server_.Post("/hook", [this](const httplib::Request& req, httplib::Response& res) {
      MutexLock lock(&mu_);
      ++arrived_;
      // Held: the request waits, unanswered, until Release (or 20 s).
      released_.WaitFor(&mu_, absl::Seconds(20),
                        [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !hold_; });
      got_.push_back({req.body, req.get_header_value("Latchkey-Signature"), status_});
      res.status = status_;
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = ServeInBackground(&server_);
  }
  ~WebhookReceiver() {
    Release();
    server_.stop();
    thread_.join();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook"; }
  // The status later requests get.
  void Answer(int status) {
    MutexLock lock(&mu_);
    status_ = status;
  }
  // Requests from now on wait unanswered until Release.
  void Hold() {
    MutexLock lock(&mu_);
    hold_ = true;
  }
  void Release() {
    MutexLock lock(&mu_);
    hold_ = false;
    released_.SignalAll();
  }
  // Requests that reached the handler, answered or held.
  int arrived() {
    MutexLock lock(&mu_);
    return arrived_;
  }

  struct Request {
    std::string body;
    std::string signature;
    int answered = 0;  // the status the handler answered with
  };
  std::vector<Request> got() {
    MutexLock lock(&mu_);
    return got_;
  }
  // The bodies answered 2xx, parsed, in the order they came.
  std::vector<nlohmann::json> delivered() {
    std::vector<nlohmann::json> out;
    for (const Request& r : got()) {
      if (r.answered >= 200 && r.answered < 300) out.push_back(nlohmann::json::parse(r.body));
    }
    return out;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  Mutex mu_;
  CondVar released_;
  bool hold_ ABSL_GUARDED_BY(mu_) = false;
  int status_ ABSL_GUARDED_BY(mu_) = 200;
  int arrived_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<Request> got_ ABSL_GUARDED_BY(mu_);
};

}  // namespace latchkey::testing

#endif  // LATCHKEY_TESTS_TESTING_WEBHOOK_RECEIVER_H_

// Helpers for latchkey tests: temp dirs, child processes, polling.
#ifndef LATCHKEY_TESTS_TESTING_TESTING_H_
#define LATCHKEY_TESTS_TESTING_TESTING_H_

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/net.h"

namespace latchkey::testing {

// A fresh directory under $TMPDIR, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A child process with stdout and stderr appended to `log_path`. Killed with
// SIGKILL on destruction if still running.
class Subprocess {
 public:
  Subprocess(std::vector<std::string> argv, std::string log_path);
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  void Signal(int sig);
  // Waits for exit; returns the exit code, or 128 + signal number.
  int Wait();
  bool running();
  std::string Log() const;
  // Polls the log for `needle`; true when it appears within `timeout`.
  bool WaitForLog(const std::string& needle, std::chrono::milliseconds timeout) const;

 private:
  pid_t pid_ = -1;
  int status_ = -1;
  std::string log_path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs a command to completion with no terminal on stdin (it reads `input`).
CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& input = "",
                         const std::vector<std::string>& env = {});

// Polls `done` every millisecond until it is true or `timeout` passes.
bool Eventually(const std::function<bool()>& done,
                std::chrono::milliseconds timeout = std::chrono::seconds(10));

using latchkey::PickFreePort;  // common/net.h

// A client context carrying "authorization: Bearer <token>" and a deadline.
std::unique_ptr<grpc::ClientContext> AuthContext(
    const std::string& token, std::chrono::milliseconds deadline = std::chrono::seconds(10));

std::string ReadFile(const std::string& path);

// Every byte of every regular file under `dir`, for "no plaintext at rest".
std::vector<std::string> FilesContaining(const std::string& dir, const std::string& needle);

// Path of a built binary, from the LATCHKEY_BIN_DIR compile definition.
std::string Binary(const std::string& name);

}  // namespace latchkey::testing

#endif  // LATCHKEY_TESTS_TESTING_TESTING_H_

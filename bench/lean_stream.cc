#include "bench/lean_stream.h"

#include <cstdio>

#include "common/daemon.h"
#include "common/files.h"

namespace latchkey::bench {

int LeanSidecar(const std::string& authority, const std::string& token_file,
                const std::string& sidecar_id) {
  const sigset_t stop = BlockStopSignals();
  absl::StatusOr<std::string> token = ReadTokenFile(token_file);
  if (!token.ok()) {
    std::fprintf(stderr, "lean-sidecar: %s\n", token.status().ToString().c_str());
    return 1;
  }
  Tally tally;
  auto stub = v1::KeySync::NewStub(OwnChannel(authority, 0));
  LeanStream stream(*stub, *token, sidecar_id, nullptr, &tally);
  AwaitStopSignal(stop);
  stream.Cancel();
  stream.WaitDone();
  return tally.broken.load() == 0 ? 0 : 1;
}

}  // namespace latchkey::bench

// Any bytes as a sequence of WatchResponse messages applied to a sidecar key
// set, as the sync client would: no crash, and the set stays usable.
#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/time/clock.h"
#include "common/key_format.h"
#include "sidecar/key_set.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  latchkey::KeySet keys;
  std::unique_ptr<latchkey::KeySet::Builder> building;
  // Length-prefixed messages: one byte of length, then the message.
  size_t at = 0;
  while (at < size) {
    const size_t len = std::min<size_t>(data[at], size - at - 1);
    latchkey::v1::WatchResponse msg;
    const bool parsed = msg.ParseFromArray(data + at + 1, static_cast<int>(len));
    at += 1 + len;
    if (!parsed) continue;
    if (msg.has_snapshot_chunk()) {
      if (!building) building = std::make_unique<latchkey::KeySet::Builder>();
      for (const auto& e : msg.snapshot_chunk().entries()) (void)building->Add(e);
      for (const auto& p : msg.snapshot_chunk().disabled_project_ids()) {
        (void)building->AddDisabledProject(p);
      }
    } else if (msg.has_snapshot_end() && building) {
      keys.Replace(*building);
      building.reset();
    } else if (msg.has_event()) {
      (void)keys.Apply(msg.event());
    }
  }
  (void)keys.Validate(latchkey::GenerateKey(latchkey::v1::API_KEY), absl::Now());
  (void)keys.Dump();
  return 0;
}

// Any bytes as a sequence of WatchResponse messages applied to a sidecar key
// set, as the sync client would: no crash, and the set stays usable.
//
// Each message is also read as the sync client reads it (sidecar/
// watch_message.h: snapshot chunks decoded in place) into a second key set;
// the two readings must agree on every message: whether it parses, the
// message but its chunk, whether the chunk's entries are taken, and the keys
// they leave. A disagreement aborts.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "common/key_format.h"
#include "sidecar/key_set.h"
#include "sidecar/watch_message.h"

namespace {

// How a reading of one message went.
struct Reading {
  bool parsed = false;  // the message parsed
  bool taken = false;   // and its chunk's entries, if any, were taken
  std::string text;     // the message but its chunk, as text
};

void Disagree(const char* what) {
  std::fprintf(stderr, "the two readings of a watch message disagree: %s\n", what);
  std::abort();
}

// The sync client's reading of one message.
Reading ApplyInPlace(const uint8_t* data, size_t len, latchkey::KeySet& keys,
                     std::unique_ptr<latchkey::KeySet::Builder>& building) {
  Reading out;
  latchkey::WatchMessage msg;
  if (!latchkey::ParseWatchMessage(grpc::Slice(data, len), msg)) return out;
  out.parsed = true;
  out.text = msg.response().ShortDebugString();
  if (msg.is_snapshot_chunk()) {
    if (!building) building = std::make_unique<latchkey::KeySet::Builder>();
    for (size_t i = 0; i < msg.chunk_parts(); ++i) {
      if (!latchkey::AddSnapshotChunk(msg.chunk_part(i), *building).ok()) return out;
    }
  } else if (msg.response().has_snapshot_end() && building) {
    keys.Replace(*building);
    building.reset();
  } else if (msg.response().has_event()) {
    (void)keys.Apply(msg.response().event());
  }
  out.taken = true;
  return out;
}

// The same with protobuf parsing the whole message.
Reading ApplyParsed(const uint8_t* data, size_t len, latchkey::KeySet& keys,
                    std::unique_ptr<latchkey::KeySet::Builder>& building) {
  Reading out;
  latchkey::v1::WatchResponse msg;
  if (!msg.ParseFromArray(data, static_cast<int>(len))) return out;
  out.parsed = true;
  latchkey::v1::WatchResponse but_chunk = msg;
  but_chunk.clear_snapshot_chunk();
  out.text = but_chunk.ShortDebugString();
  if (msg.has_snapshot_chunk()) {
    if (!building) building = std::make_unique<latchkey::KeySet::Builder>();
    for (const auto& e : msg.snapshot_chunk().entries()) {
      if (!building->Add(e).ok()) return out;
    }
    for (const auto& p : msg.snapshot_chunk().disabled_project_ids()) {
      if (!building->AddDisabledProject(p).ok()) return out;
    }
  } else if (msg.has_snapshot_end() && building) {
    keys.Replace(*building);
    building.reset();
  } else if (msg.has_event()) {
    (void)keys.Apply(msg.event());
  }
  out.taken = true;
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  latchkey::KeySet parsed_keys, in_place_keys;
  std::unique_ptr<latchkey::KeySet::Builder> parsed_building, in_place_building;
  // Length-prefixed messages: one byte of length, then the message. A
  // message not taken drops the snapshot in progress, as the stream it
  // breaks would.
  size_t at = 0;
  while (at < size) {
    const size_t len = std::min<size_t>(data[at], size - at - 1);
    const uint8_t* msg = data + at + 1;
    at += 1 + len;
    const Reading parsed = ApplyParsed(msg, len, parsed_keys, parsed_building);
    const Reading in_place = ApplyInPlace(msg, len, in_place_keys, in_place_building);
    if (parsed.parsed != in_place.parsed) Disagree("whether the message parses");
    if (parsed.text != in_place.text) Disagree("the message but its chunk");
    if (parsed.taken != in_place.taken) Disagree("whether the chunk is taken");
    if (!parsed.taken) {
      parsed_building.reset();
      in_place_building.reset();
      continue;
    }
    if ((parsed_building == nullptr) != (in_place_building == nullptr) ||
        (parsed_building && parsed_building->size() != in_place_building->size())) {
      Disagree("snapshot in progress");
    }
  }
  if (parsed_keys.Dump() != in_place_keys.Dump()) Disagree("keys");
  if (parsed_keys.DisabledProjects() != in_place_keys.DisabledProjects()) {
    Disagree("disabled projects");
  }
  (void)parsed_keys.Validate(latchkey::GenerateKey(latchkey::v1::API_KEY), absl::Now());
  return 0;
}

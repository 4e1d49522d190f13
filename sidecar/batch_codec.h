// ValidateBatch's wire format, read and written by hand so that a batch costs
// no allocation per key: the request's keys are views into its bytes, and the
// response is one buffer of ValidateResponse records appended in order. The
// bytes are exactly what protobuf would read and write for
// v1::ValidateBatchRequest and v1::ValidateBatchResponse
// (proto/latchkey/v1/validator.proto); tests/sidecar/batch_codec_test.cc
// checks both directions against protobuf itself.
#ifndef LATCHKEY_SIDECAR_BATCH_CODEC_H_
#define LATCHKEY_SIDECAR_BATCH_CODEC_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "sidecar/key_set.h"

namespace latchkey {

// Appends the keys of a serialized ValidateBatchRequest to `keys`, as views
// into `bytes`. Unknown fields are skipped, as protobuf does. INVALID_ARGUMENT
// when protobuf would not parse `bytes` or they hold more than `max_keys`
// keys; the one difference is that a key which is not UTF-8 is taken (and
// is MALFORMED) where protobuf would refuse its whole batch.
absl::Status ParseBatchRequest(std::string_view bytes, size_t max_keys,
                               std::vector<std::string_view>* keys);

// Appends `v` to `out` as one `results` entry of a serialized
// ValidateBatchResponse.
void AppendBatchResult(const Validation& v, std::string* out);

// The most bytes AppendBatchResult writes for one result.
inline constexpr size_t kMaxBatchResultBytes = 48;

}  // namespace latchkey

#endif  // LATCHKEY_SIDECAR_BATCH_CODEC_H_

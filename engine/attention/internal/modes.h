// The modes behind the registry (attention_mode.cc): one Parse and one Make per mode, each
// defined in the mode's own file (dense_mode.cc, sliding_window_mode.cc, hip_mode.cc).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "engine/attention/attention_mode.h"

namespace longview::attention_internal {

// InvalidArgument "<prefix><field> <message>": messages start with the field they are about.
inline absl::Status FieldError(const std::string& prefix, const std::string& field,
                               const std::string& message) {
  return absl::InvalidArgumentError(absl::StrCat(prefix, field, " ", message));
}

absl::StatusOr<AttentionSpec> ParseDense(const AttentionRequest& request, const std::string& prefix);
absl::StatusOr<std::shared_ptr<const AttentionMode>> MakeMode(const DenseAttention& spec,
                                                              const std::string& prefix);

absl::StatusOr<AttentionSpec> ParseSlidingWindow(const AttentionRequest& request,
                                                 const std::string& prefix);
absl::StatusOr<std::shared_ptr<const AttentionMode>> MakeMode(const SlidingWindowAttention& spec,
                                                              const std::string& prefix);

absl::StatusOr<AttentionSpec> ParseHip(const AttentionRequest& request, const std::string& prefix);
absl::StatusOr<std::shared_ptr<const AttentionMode>> MakeMode(const HipAttention& spec,
                                                              const std::string& prefix);

// InvalidArgument when the request names a parameter of HiP's (top_k, block_size, stages) for
// another mode.
absl::Status RejectHipParameters(const AttentionRequest& request, const std::string& prefix,
                                 std::string_view mode);

}  // namespace longview::attention_internal

// Limits shared by the HTTP and gRPC frontends.
#pragma once

#include <algorithm>
#include <cstdint>

namespace longview {

// The default cap on a prompt's text, in bytes, checked before tokenizing (`--max-prompt-bytes`
// 0): 32 bytes per context position (tokens average 3-5 bytes of text; 32 leaves room for long
// ones), at least 64 KiB. Tokenizing costs a few hundred bytes of memory per input byte.
inline int64_t DefaultMaxPromptBytes(int64_t context_tokens) {
  return std::max<int64_t>(64 << 10, 32 * context_tokens);
}

}  // namespace longview

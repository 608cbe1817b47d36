// The `embeddings` body of a session append (docs/sessions.md): rows of the model's hidden size
// in float32, float16 or bfloat16, as base64 of their little-endian bytes or as nested arrays of
// numbers, with optional frames (a block id and a timestamp per run of rows).
//
//   {"embeddings": {"dtype": "bf16", "shape": [8, 384], "data": "<base64>",
//                   "frames": [{"block_id": "f0", "timestamp": 0.0, "rows": 4},
//                              {"block_id": "f1", "timestamp": 0.5, "rows": 4}]}}
//   {"embeddings": {"data": [[0.1, ...], [0.3, ...]]}}      // float32 by default
//
//   ASSIGN_OR_RETURN(SessionEmbeddings e, ParseSessionEmbeddings(body["embeddings"], 384));
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "nlohmann/json.hpp"
#include "server/session_store.h"

namespace longview {

struct SessionEmbeddings {
  int64_t rows = 0;
  std::vector<float> values;         // [rows][hidden]
  std::vector<SessionFrame> frames;  // start relative to the first row; cover every row
};

// InvalidArgument naming the field (`embeddings.shape`, `embeddings.frames[2].rows`, ...).
// Without frames, the rows are one frame at timestamp 0 with an empty block_id (the store names
// it "pos-<its first row's session position>").
absl::StatusOr<SessionEmbeddings> ParseSessionEmbeddings(const nlohmann::ordered_json& value,
                                                         int64_t hidden);

}  // namespace longview

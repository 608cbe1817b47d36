// `longview serve`: loads a model, starts the engine loop, the OpenAI-compatible HTTP server
// and (with --grpc-port > 0) the gRPC server, and runs until SIGINT or SIGTERM.
//
//   longview serve [--model DIR] [--host 127.0.0.1] [--port 8000] [--grpc-port 50051]
//                  [--api-key KEY] [--device auto|cpu|cuda] [--served-model-name NAME]
//                  [--max-num-seqs N] [--max-num-batched-tokens N] [--num-kv-pages N]
//                  [--max-queue N] [--max-body-bytes N] [--max-connections N]
//                  [--max-inflight-body-bytes N] [--write-timeout S]
//                  [--chat-template llama2|llama3|mistral|chatml]
//
// The API key comes from --api-key, else from $LONGVIEW_API_KEY; an empty key either way is
// refused at startup.
//
// `--port 0` / `--grpc-port 0` for the HTTP port picks a free port; the bound addresses are
// printed on stderr ("longview: HTTP on http://127.0.0.1:PORT").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "kvcache/kv_policy.h"

namespace longview {

struct ServeArgs {
  std::string model;
  std::string host = "127.0.0.1";
  int port = 8000;
  int grpc_port = 50051;  // <= 0: no gRPC server
  std::vector<std::string> api_keys;  // each --api-key given (perhaps empty), in order
  std::string api_key_file;           // --api-key-file: more keys, one per line
  std::string device = "auto";
  double gpu_memory_utilization = 0.9;
  std::string dtype = "bf16";     // CUDA: bf16 | fp16
  bool model_given = false;  // --model was on the command line
  std::string served_model_name;  // default: the --model argument as given
  int64_t max_num_seqs = 256;
  int64_t max_num_batched_tokens = 2048;
  int64_t num_kv_pages = 0;  // 0 = CPU: 4096, CUDA: from free GPU memory
  int64_t max_queue = 1024;
  int64_t max_seqs_per_request = 256;
  double health_stall_seconds = 60;
  bool metrics_require_key = false;
  double stats_interval = 10;  // seconds between stats lines; 0: none
  double shutdown_timeout = 30;  // seconds open requests get after SIGTERM
  int64_t max_prompt_bytes = 0;  // 0: derived from the context
  int64_t max_sessions_per_key = 64;
  int64_t session_max_tokens = int64_t{1} << 24;
  int64_t session_max_embedding_bytes = int64_t{1} << 30;
  int64_t session_max_append_bytes = int64_t{1} << 20;
  int frontend_threads = 4;
  int64_t max_body_bytes = 8 << 20;
  int max_connections = 1024;                            // HTTP only
  int64_t max_inflight_body_bytes = int64_t{256} << 20;  // request bodies being read, in all
  int write_timeout_seconds = 60;
  int64_t page_size = 16;
  double kv_host_memory_gib = 0;  // host tier below the device pool; 0: none
  bool kv_host_verify = true;     // host tier checks checksums on lookups
  bool kv_write_back = false;     // full pages copied to the tiers at once, not at eviction
  std::string kv_disk_path;       // RocksDB tier; empty: none
  double kv_disk_gib = 0;
  KvPolicyRequest kv_policy;  // the default KV policy of requests that name none
  std::string chat_template;  // empty: from tokenizer_config.json
  int io_threads = 2;
  int pump_threads = 2;
  int threads = 0;  // CPU compute threads, 0 = all cores
};

// Registers the `serve` subcommand, writing its options into `*args` (whose current values are
// the defaults shown).
CLI::App* AddServeCommand(CLI::App& app, ServeArgs* args);

// Registers --kv-policy, --kv-budget, --kv-sinks, --kv-window, --kv-interval, --kv-kernel and
// --kv-alpha (kvcache/kv_policy.h) on `cmd`, writing what is given into `*r`.
void AddKvPolicyFlags(CLI::App* cmd, KvPolicyRequest* r);

// Returns the process exit code: 0 after a clean shutdown, 1 with a message on stderr when the
// model, an option or a port is bad.
int RunServe(const ServeArgs& args);

}  // namespace longview

// Prometheus text exposition (format 0.0.4) of the engine's metrics for GET /metrics.
//
// Names follow vLLM's, prefixed `longview:` instead of `vllm:`, each sample labelled with
// model_name: histograms time_to_first_token_seconds, inter_token_latency_seconds,
// e2e_request_latency_seconds; gauges num_requests_running, num_requests_waiting,
// kv_cache_usage_perc; counters prefix_cache_queries_total, prefix_cache_hits_total,
// prompt_tokens_total, generation_tokens_total, num_preemptions_total.
//
//   std::string text = RenderMetricsText(loop.Snapshot(), "llama");
// Thread-safety: a pure function.
#pragma once

#include <string>

#include "scheduler/engine_loop.h"

namespace longview {

// The content type to send with the text.
inline constexpr char kMetricsContentType[] = "text/plain; version=0.0.4; charset=utf-8";

std::string RenderMetricsText(const EngineMetrics& metrics, const std::string& model_name);

// A number as Prometheus reads it: shortest round-trip form, "+Inf", "-Inf" or "NaN".
std::string FormatMetricValue(double value);

}  // namespace longview

// Prometheus text rendering of EngineMetrics.
#include "server/metrics_text.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>

namespace longview {
namespace {

// Label values escape backslash, double quote and newline.
std::string EscapeLabel(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

class Writer {
 public:
  explicit Writer(const std::string& model_name)
      : label_("model_name=\"" + EscapeLabel(model_name) + "\"") {}

  void Header(const std::string& name, const char* type, const char* help) {
    out_ += "# HELP longview:" + name + " " + help + "\n";
    out_ += "# TYPE longview:" + name + " " + type + "\n";
  }
  void Sample(const std::string& name, double value, const std::string& extra_label = "") {
    out_ +=
        "longview:" + name + "{" + label_ + extra_label + "} " + FormatMetricValue(value) + "\n";
  }
  void Gauge(const std::string& name, double value, const char* help) {
    Header(name, "gauge", help);
    Sample(name, value);
  }
  void Counter(const std::string& name, int64_t value, const char* help) {
    Header(name, "counter", help);
    Sample(name, static_cast<double>(value));
  }
  void Histo(const std::string& name, const Histogram& h, const char* help) {
    Header(name, "histogram", help);
    int64_t cumulative = 0;
    for (size_t i = 0; i < h.bounds.size(); ++i) {
      if (i < h.counts.size()) cumulative += h.counts[i];
      Sample(name + "_bucket", static_cast<double>(cumulative),
             ",le=\"" + FormatMetricValue(h.bounds[i]) + "\"");
    }
    // +Inf holds every observation, whatever the per-bucket counts say.
    Sample(name + "_bucket", static_cast<double>(h.count), ",le=\"+Inf\"");
    Sample(name + "_sum", h.sum);
    Sample(name + "_count", static_cast<double>(h.count));
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string label_;
  std::string out_;
};

}  // namespace

std::string FormatMetricValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  if (ec != std::errc()) return "NaN";
  return std::string(buf, end);
}

std::string RenderMetricsText(const EngineMetrics& m, const std::string& model_name) {
  Writer w(model_name);
  w.Gauge("num_requests_running", static_cast<double>(m.num_requests_running),
          "Number of requests in model execution batches.");
  w.Gauge("num_requests_waiting", static_cast<double>(m.num_requests_waiting),
          "Number of requests waiting to be processed.");
  w.Gauge("kv_cache_usage_perc", m.kv_cache_usage_perc,
          "KV-cache usage. 1 means 100 percent usage.");
  w.Counter("prefix_cache_queries_total", m.prefix_cache_queries,
            "Prefix cache queries, in terms of number of queried tokens.");
  w.Counter("prefix_cache_hits_total", m.prefix_cache_hits,
            "Prefix cache hits, in terms of number of cached tokens.");
  w.Counter("prompt_tokens_total", m.prompt_tokens_total, "Number of prefill tokens processed.");
  w.Counter("generation_tokens_total", m.generation_tokens_total,
            "Number of generation tokens processed.");
  w.Counter("num_preemptions_total", m.num_preemptions_total,
            "Cumulative number of preemptions from the engine.");
  // Tiers below the device pool, one sample per tier (label tier="host" | "disk").
  if (!m.kv_tiers.empty()) {
    struct Field {
      const char* name;
      const char* type;
      const char* help;
      double (*get)(const TierReport&);
    };
    static const Field kFields[] = {
        {"kv_tier_pages", "gauge", "KV pages held by the tier.",
         [](const TierReport& t) { return static_cast<double>(t.stats.pages); }},
        {"kv_tier_bytes", "gauge", "Bytes held by the tier.",
         [](const TierReport& t) { return static_cast<double>(t.stats.bytes); }},
        {"kv_tier_capacity_bytes", "gauge", "Capacity of the tier in bytes.",
         [](const TierReport& t) { return static_cast<double>(t.stats.capacity_bytes); }},
        {"kv_tier_demoted_pages_total", "counter", "Pages inserted into the tier.",
         [](const TierReport& t) { return static_cast<double>(t.stats.inserted_pages); }},
        {"kv_tier_demoted_bytes_total", "counter", "Bytes inserted into the tier.",
         [](const TierReport& t) { return static_cast<double>(t.stats.inserted_bytes); }},
        {"kv_tier_declined_pages_total", "counter",
         "Inserts the tier declined (full, disk error).",
         [](const TierReport& t) { return static_cast<double>(t.stats.declined_pages); }},
        {"kv_tier_evicted_pages_total", "counter", "Pages the tier pushed out.",
         [](const TierReport& t) { return static_cast<double>(t.stats.evicted_pages); }},
        {"kv_tier_lookups_total", "counter", "Pages asked of the tier.",
         [](const TierReport& t) { return static_cast<double>(t.stats.lookups); }},
        {"kv_tier_hits_total", "counter", "Pages the tier returned.",
         [](const TierReport& t) { return static_cast<double>(t.stats.hits); }},
        {"kv_tier_promoted_pages_total", "counter",
         "Pages from the tier written back into the device pool by prefix hits.",
         [](const TierReport& t) { return static_cast<double>(t.promoted_pages); }},
        {"kv_tier_promoted_bytes_total", "counter", "Bytes of those pages.",
         [](const TierReport& t) { return static_cast<double>(t.promoted_bytes); }},
        {"kv_tier_checksum_failures_total", "counter",
         "Pages found corrupt or truncated (dropped, never served).",
         [](const TierReport& t) { return static_cast<double>(t.stats.checksum_failures); }},
        {"kv_tier_io_errors_total", "counter", "Failed reads and writes of the tier.",
         [](const TierReport& t) { return static_cast<double>(t.stats.io_errors); }},
    };
    for (const Field& f : kFields) {
      w.Header(f.name, f.type, f.help);
      for (const TierReport& t : m.kv_tiers) {
        w.Sample(f.name, f.get(t), ",tier=\"" + EscapeLabel(t.name) + "\"");
      }
    }
  }
  if (!m.kv_host_memory_kind.empty()) {
    const std::string kind = ",kind=\"" + EscapeLabel(m.kv_host_memory_kind) + "\"";
    w.Header("kv_host_memory_bytes", "gauge",
             "Host memory of the KV tiers (pinned on the CUDA backend), allocated at start-up.");
    w.Sample("kv_host_memory_bytes", static_cast<double>(m.kv_host_memory_bytes), kind);
    w.Header("kv_host_memory_used_bytes", "gauge",
             "Of it, blocks held by tier pages and pages in flight.");
    w.Sample("kv_host_memory_used_bytes", static_cast<double>(m.kv_host_memory_used_bytes), kind);
    w.Header("kv_host_memory_fallbacks_total", "counter",
             "Page buffers that found no free block and came from the heap.");
    w.Sample("kv_host_memory_fallbacks_total", static_cast<double>(m.kv_host_memory_fallbacks),
             kind);
  }
  // KV policies, one sample per policy (label policy="streaming" | "h2o" | "snapkv" | "lazy").
  if (!m.kv_policies.empty()) {
    w.Header("kv_policy_tokens_evicted_total", "counter",
             "Tokens whose KV a policy dropped (kvcache/kv_policy.h).");
    for (const EngineMetrics::KvPolicyCounts& p : m.kv_policies) {
      w.Sample("kv_policy_tokens_evicted_total", static_cast<double>(p.tokens_evicted),
               ",policy=\"" + EscapeLabel(p.policy) + "\"");
    }
    w.Header("kv_policy_pages_freed_total", "counter",
             "KV pages a policy's compactions gave back to the pool.");
    for (const EngineMetrics::KvPolicyCounts& p : m.kv_policies) {
      w.Sample("kv_policy_pages_freed_total", static_cast<double>(p.pages_freed),
               ",policy=\"" + EscapeLabel(p.policy) + "\"");
    }
  }
  w.Histo("time_to_first_token_seconds", m.time_to_first_token,
          "Histogram of time to first token in seconds.");
  w.Histo("inter_token_latency_seconds", m.inter_token_latency,
          "Histogram of inter-token latency in seconds.");
  w.Histo("e2e_request_latency_seconds", m.e2e_request_latency,
          "Histogram of e2e request latency in seconds.");
  return w.Take();
}

}  // namespace longview

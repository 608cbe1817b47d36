// Prometheus text of the engine metrics: names, labels, types, cumulative histogram buckets.
#include "server/metrics_text.h"

#include <limits>
#include <string>

#include "gtest/gtest.h"

namespace longview {
namespace {

bool Has(const std::string& text, const std::string& line) {
  return text.find(line + "\n") != std::string::npos;
}

TEST(MetricsTextTest, GaugesCountersAndLabels) {
  EngineMetrics m;
  m.num_requests_running = 3;
  m.num_requests_waiting = 1;
  m.kv_cache_usage_perc = 0.25;
  m.prefix_cache_queries = 100;
  m.prefix_cache_hits = 40;
  m.prompt_tokens_total = 1234;
  m.generation_tokens_total = 56;
  m.num_preemptions_total = 2;
  std::string t = RenderMetricsText(m, "my\"model");
  const std::string l = "{model_name=\"my\\\"model\"}";
  EXPECT_TRUE(Has(t, "# TYPE longview:num_requests_running gauge")) << t;
  EXPECT_TRUE(Has(t, "longview:num_requests_running" + l + " 3")) << t;
  EXPECT_TRUE(Has(t, "longview:num_requests_waiting" + l + " 1"));
  EXPECT_TRUE(Has(t, "longview:kv_cache_usage_perc" + l + " 0.25"));
  EXPECT_TRUE(Has(t, "# TYPE longview:prefix_cache_queries_total counter"));
  EXPECT_TRUE(Has(t, "longview:prefix_cache_queries_total" + l + " 100"));
  EXPECT_TRUE(Has(t, "longview:prefix_cache_hits_total" + l + " 40"));
  EXPECT_TRUE(Has(t, "longview:prompt_tokens_total" + l + " 1234"));
  EXPECT_TRUE(Has(t, "longview:generation_tokens_total" + l + " 56"));
  EXPECT_TRUE(Has(t, "longview:num_preemptions_total" + l + " 2"));
  EXPECT_TRUE(Has(t,
                  "# HELP longview:num_preemptions_total "
                  "Cumulative number of preemptions from the engine."));
}

TEST(MetricsTextTest, HistogramBucketsAreCumulative) {
  EngineMetrics m;
  m.time_to_first_token.bounds = {0.001, 0.5, 2.5};
  m.time_to_first_token.counts = {1, 2, 0, 4};  // last: above 2.5
  m.time_to_first_token.sum = 21.5;
  m.time_to_first_token.count = 7;
  std::string t = RenderMetricsText(m, "m");
  EXPECT_TRUE(Has(t, "# TYPE longview:time_to_first_token_seconds histogram")) << t;
  EXPECT_TRUE(Has(t, R"(longview:time_to_first_token_seconds_bucket{model_name="m",le="0.001"} 1)"))
      << t;
  EXPECT_TRUE(Has(t, R"(longview:time_to_first_token_seconds_bucket{model_name="m",le="0.5"} 3)"));
  EXPECT_TRUE(Has(t, R"(longview:time_to_first_token_seconds_bucket{model_name="m",le="2.5"} 3)"));
  EXPECT_TRUE(Has(t, R"(longview:time_to_first_token_seconds_bucket{model_name="m",le="+Inf"} 7)"));
  EXPECT_TRUE(Has(t, R"(longview:time_to_first_token_seconds_sum{model_name="m"} 21.5)"));
  EXPECT_TRUE(Has(t, R"(longview:time_to_first_token_seconds_count{model_name="m"} 7)"));
  EXPECT_TRUE(Has(t, "# TYPE longview:inter_token_latency_seconds histogram"));
  EXPECT_TRUE(Has(t, "# TYPE longview:e2e_request_latency_seconds histogram"));
  EXPECT_TRUE(Has(t, R"(longview:e2e_request_latency_seconds_count{model_name="m"} 0)"));
}

TEST(MetricsTextTest, EveryLineIsACommentOrASample) {
  EngineMetrics m;
  m.inter_token_latency.bounds = {0.01, 0.1};
  m.inter_token_latency.counts = {5, 0, 0};
  m.inter_token_latency.count = 5;
  std::string t = RenderMetricsText(m, "m");
  ASSERT_FALSE(t.empty());
  EXPECT_EQ(t.back(), '\n');
  size_t pos = 0;
  while (pos < t.size()) {
    size_t end = t.find('\n', pos);
    std::string line = t.substr(pos, end - pos);
    pos = end + 1;
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) continue;
    EXPECT_EQ(line.rfind("longview:", 0), 0u) << line;
    size_t close = line.find("} ");
    ASSERT_NE(close, std::string::npos) << line;
    std::string value = line.substr(close + 2);
    EXPECT_FALSE(value.empty()) << line;
    EXPECT_EQ(value.find(' '), std::string::npos) << line;
  }
}

TEST(MetricsTextTest, FormatsValues) {
  EXPECT_EQ(FormatMetricValue(0), "0");
  EXPECT_EQ(FormatMetricValue(3), "3");
  EXPECT_EQ(FormatMetricValue(0.1), "0.1");
  EXPECT_EQ(FormatMetricValue(std::numeric_limits<double>::infinity()), "+Inf");
}

TEST(MetricsTextTest, KvPoliciesCountEvictionsPerPolicy) {
  EngineMetrics m;
  EXPECT_EQ(RenderMetricsText(m, "m").find("kv_policy"), std::string::npos);
  m.kv_policies = {{.policy = "h2o", .tokens_evicted = 1200, .pages_freed = 70},
                   {.policy = "lazy", .tokens_evicted = 0, .pages_freed = 0}};
  const std::string t = RenderMetricsText(m, "m");
  EXPECT_TRUE(Has(t, "# TYPE longview:kv_policy_tokens_evicted_total counter")) << t;
  EXPECT_TRUE(Has(t, "longview:kv_policy_tokens_evicted_total{model_name=\"m\",policy=\"h2o\"} 1200"))
      << t;
  EXPECT_TRUE(Has(t, "longview:kv_policy_pages_freed_total{model_name=\"m\",policy=\"h2o\"} 70"))
      << t;
  EXPECT_TRUE(Has(t, "longview:kv_policy_pages_freed_total{model_name=\"m\",policy=\"lazy\"} 0"))
      << t;
}

TEST(MetricsTextTest, TiersHostMemoryIsAccounted) {
  EngineMetrics m;
  std::string t = RenderMetricsText(m, "m");
  EXPECT_EQ(t.find("kv_host_memory"), std::string::npos);  // no tiers: no samples
  m.kv_host_memory_kind = "pinned";
  m.kv_host_memory_bytes = 1 << 30;
  m.kv_host_memory_used_bytes = 1 << 20;
  m.kv_host_memory_fallbacks = 3;
  t = RenderMetricsText(m, "m");
  const std::string l = "{model_name=\"m\",kind=\"pinned\"}";
  EXPECT_TRUE(Has(t, "# TYPE longview:kv_host_memory_bytes gauge")) << t;
  EXPECT_TRUE(Has(t, "longview:kv_host_memory_bytes" + l + " 1073741824")) << t;
  EXPECT_TRUE(Has(t, "longview:kv_host_memory_used_bytes" + l + " 1048576")) << t;
  EXPECT_TRUE(Has(t, "longview:kv_host_memory_fallbacks_total" + l + " 3")) << t;
}

}  // namespace
}  // namespace longview

// End-to-end tests of the `longview` binary: `generate` prints the transformers greedy
// continuation of each golden model, and every malformed checkpoint exits non-zero with a
// message naming the problem.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace longview {
namespace {

namespace fs = std::filesystem;
const std::string kBinary = std::string(LONGVIEW_BINARY_DIR) + "/server/longview";
const std::string kGolden = std::string(LONGVIEW_TEST_DATA_DIR) + "/golden";

struct RunResult {
  int exit_code;
  std::string out;  // stdout
  std::string err;  // stderr
};

std::string Quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// `prefix`: words before the binary ("env NAME=value timeout 30"), or "".
RunResult RunCli(const std::string& args, const std::string& err_file,
                 const std::string& prefix = "") {
  std::string cmd =
      (prefix.empty() ? "" : prefix + " ") + kBinary + " " + args + " 2>" + err_file;
  FILE* p = popen(cmd.c_str(), "r");
  RunResult r{-1, "", ""};
  if (p == nullptr) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream ef(err_file);
  r.err.assign(std::istreambuf_iterator<char>(ef), {});
  return r;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("lv_cli_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  // A copy of a golden model folder to corrupt.
  std::string CopyModel(const std::string& name) {
    fs::path dst = dir_ / name;
    fs::copy(kGolden + "/" + name, dst, fs::copy_options::recursive);
    return dst.string();
  }
  RunResult Generate(const std::string& model) {
    return RunCli("generate --model " + Quote(model) + " --prompt hello --max-tokens 2",
               (dir_ / "stderr.txt").string());
  }
  fs::path dir_;
};

TEST_F(CliTest, GeneratePrintsTheTransformersGreedyContinuation) {
  for (std::string model : {"llama", "mistral", "qwen2"}) {
    std::ifstream jf(kGolden + "/" + model + "/golden.json");
    auto meta = nlohmann::json::parse(jf);
    for (const auto& p : meta["prompts"]) {
      RunResult r = RunCli("generate --model " + Quote(kGolden + "/" + model) + " --prompt " +
                            Quote(p["prompt"].get<std::string>()) +
                            " --max-tokens 64 --temperature 0 --ignore-eos",
                        (dir_ / "stderr.txt").string());
      ASSERT_EQ(r.exit_code, 0) << r.err;
      EXPECT_EQ(r.out, p["continuation_text"].get<std::string>() + "\n") << model;
      EXPECT_NE(r.err.find("64 generated"), std::string::npos) << r.err;
    }
  }
}

TEST_F(CliTest, SeededSamplingIsReproducible) {
  const std::string args = "generate --model " + Quote(kGolden + "/llama") +
                           " --prompt 'In the' --max-tokens 20 --temperature 0.9 --seed 5 "
                           "--ignore-eos --print-ids";
  RunResult a = RunCli(args, (dir_ / "a.txt").string());
  RunResult b = RunCli(args, (dir_ / "b.txt").string());
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(a.err, b.err);  // includes the token ids
}

TEST_F(CliTest, MissingModelFolder) {
  RunResult r = Generate((dir_ / "nope").string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("config.json"), std::string::npos) << r.err;
}

TEST_F(CliTest, InvalidConfigJson) {
  std::string m = CopyModel("llama");
  std::ofstream(m + "/config.json") << "{\"architectures\": [\"LlamaForCausalLM\",";
  RunResult r = Generate(m);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("config.json"), std::string::npos) << r.err;
}

TEST_F(CliTest, UnknownArchitecture) {
  std::string m = CopyModel("llama");
  std::ifstream in(m + "/config.json");
  auto cfg = nlohmann::json::parse(in);
  cfg["architectures"] = {"GPT2LMHeadModel"};
  cfg["model_type"] = "gpt2";
  std::ofstream(m + "/config.json") << cfg.dump();
  RunResult r = Generate(m);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("GPT2LMHeadModel"), std::string::npos) << r.err;
}

TEST_F(CliTest, TruncatedWeights) {
  std::string m = CopyModel("llama");
  fs::resize_file(m + "/model.safetensors", fs::file_size(m + "/model.safetensors") / 2);
  RunResult r = Generate(m);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("model.safetensors"), std::string::npos) << r.err;
}

TEST_F(CliTest, MissingShard) {
  std::string m = CopyModel("qwen2");
  fs::remove(m + "/model-00003-of-00008.safetensors");
  RunResult r = Generate(m);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("model-00003-of-00008.safetensors"), std::string::npos) << r.err;
}

TEST_F(CliTest, MissingTokenizer) {
  std::string m = CopyModel("mistral");
  fs::remove(m + "/tokenizer.model");
  RunResult r = Generate(m);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("tokenizer.model"), std::string::npos) << r.err;
}

TEST_F(CliTest, BadSamplingValueNamesTheField) {
  RunResult r = RunCli("generate --model " + Quote(kGolden + "/llama") +
                        " --prompt hi --top-p 1.5",
                    (dir_ / "stderr.txt").string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("top_p"), std::string::npos) << r.err;
}

TEST_F(CliTest, PromptBeyondContextIsAClearError) {
  RunResult r = RunCli("generate --model " + Quote(kGolden + "/llama") +
                        " --prompt hi --max-tokens 100000",
                    (dir_ / "stderr.txt").string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("exceeds the model's context"), std::string::npos) << r.err;
}

TEST_F(CliTest, ServeRefusesUnknownDeviceAndDtype) {
  for (const auto& [flags, field] :
       {std::pair<std::string, std::string>{"--device tpu", "--device"},
        std::pair<std::string, std::string>{"--dtype fp8", "--dtype"}}) {
    RunResult r = RunCli("serve --model " + Quote(kGolden + "/llama") + " --port 0 " + flags,
                         (dir_ / "stderr.txt").string());
    EXPECT_NE(r.exit_code, 0) << flags;
    EXPECT_NE(r.err.find(field), std::string::npos) << r.err;
  }
}

TEST_F(CliTest, ServeRefusesAnEmptyApiKey) {
  // A server that starts anyway is stopped after 30 s (exit code 124).
  // Given explicitly on the command line: refused, even with a key in the environment.
  RunResult r = RunCli(
      "serve --model " + Quote(kGolden + "/llama") + " --port 0 --grpc-port 0 --api-key ''",
      (dir_ / "stderr.txt").string(), "env LONGVIEW_API_KEY=from-env timeout 30");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--api-key is empty"), std::string::npos) << r.err;
  // Empty in the environment: refused too, naming the variable.
  r = RunCli("serve --model " + Quote(kGolden + "/llama") + " --port 0 --grpc-port 0",
             (dir_ / "stderr.txt").string(), "env LONGVIEW_API_KEY= timeout 30");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("LONGVIEW_API_KEY is set but empty"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace longview

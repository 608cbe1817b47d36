// End-to-end tests of `longview serve` on the golden Llama over loopback: how the API key is
// taken and checked (from $LONGVIEW_API_KEY, the Bearer scheme in any case, refusals logged
// without the key), the router's HEAD and 405 answers, and the --max-connections flag.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

extern char** environ;

namespace longview {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const std::string kBinary = std::string(LONGVIEW_BINARY_DIR) + "/server/longview";
const std::string kModel = std::string(LONGVIEW_TEST_DATA_DIR) + "/golden/llama";
constexpr char kKey[] = "sk-serve-test-4242";

// `longview serve --port 0 --grpc-port 0 ARGS` with stderr in a file; the constructor waits
// (at most 60 s) until the server prints its port, the destructor sends SIGTERM and reaps it.
class ServeProcess {
 public:
  ServeProcess(const std::vector<std::string>& args, const std::vector<std::string>& env,
               const fs::path& log)
      : log_(log) {
    std::vector<std::string> argv = {kBinary, "serve",       "--model", kModel,      "--port",
                                     "0",     "--grpc-port", "0",       "--threads", "1"};
    argv.insert(argv.end(), args.begin(), args.end());
    // Built before fork: the child may only make async-signal-safe calls.
    std::vector<std::string> envs = env;
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::strncmp(*e, "LONGVIEW_API_KEY=", 17) != 0) envs.emplace_back(*e);
    }
    std::vector<char*> cargv, cenv;
    for (std::string& s : argv) cargv.push_back(s.data());
    for (std::string& s : envs) cenv.push_back(s.data());
    cargv.push_back(nullptr);
    cenv.push_back(nullptr);
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      execve(cargv[0], cargv.data(), cenv.data());
      _exit(127);
    }
    close(fd);
    auto deadline = std::chrono::steady_clock::now() + 60s;
    const std::string marker = "HTTP on http://127.0.0.1:";
    while (std::chrono::steady_clock::now() < deadline) {
      std::string text = Log();
      if (size_t p = text.find(marker); p != std::string::npos && text.find('\n', p) != text.npos) {
        port_ = std::stoi(text.substr(p + marker.size()));
        return;
      }
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(20ms);
    }
  }
  ~ServeProcess() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 500; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(20ms);
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  int port() const { return port_; }  // 0 if the server did not start
  std::string Log() const {
    std::ifstream in(log_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  fs::path log_;
  pid_t pid_ = -1;
  int port_ = 0;
};

int Connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Reads until EOF (or the 10 s timeout).
std::string ReadAll(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, n);
  return out;
}

// One request on its own connection ("Connection: close"); the raw response.
std::string Request(int port, const std::string& method, const std::string& path,
                    const std::string& authorization = "") {
  int fd = Connect(port);
  if (fd < 0) return "";
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: h\r\nConnection: close\r\n";
  if (!authorization.empty()) req += "Authorization: " + authorization + "\r\n";
  req += "\r\n";
  if (write(fd, req.data(), req.size()) != ssize_t(req.size())) {
    close(fd);
    return "";
  }
  std::string out = ReadAll(fd);
  close(fd);
  return out;
}

int StatusOf(const std::string& response) {
  if (response.rfind("HTTP/1.1 ", 0) != 0 || response.size() < 12) return -1;
  return std::stoi(response.substr(9, 3));
}

class ServeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("lv_serve_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    server_.reset();
    fs::remove_all(dir_);
  }
  // Starts the server with the key in $LONGVIEW_API_KEY (no --api-key) and `args`.
  ServeProcess& Start(const std::vector<std::string>& args = {}) {
    server_ = std::make_unique<ServeProcess>(
        args, std::vector<std::string>{std::string("LONGVIEW_API_KEY=") + kKey}, dir_ / "log.txt");
    EXPECT_GT(server_->port(), 0) << server_->Log();
    return *server_;
  }
  fs::path dir_;
  std::unique_ptr<ServeProcess> server_;
};

TEST_F(ServeTest, KeyFromTheEnvironmentGuardsTheApi) {
  ServeProcess& s = Start();
  ASSERT_GT(s.port(), 0);
  EXPECT_EQ(StatusOf(Request(s.port(), "GET", "/v1/models")), 401);
  EXPECT_EQ(StatusOf(Request(s.port(), "GET", "/v1/models", std::string("Bearer ") + kKey)), 200);
  EXPECT_EQ(StatusOf(Request(s.port(), "GET", "/health")), 200);  // open
}

TEST_F(ServeTest, MetricsRequireKeyGuardsMetricsAndStartupSaysAuthIsOn) {
  ServeProcess& s = Start({"--metrics-require-key"});
  ASSERT_GT(s.port(), 0);
  EXPECT_EQ(StatusOf(Request(s.port(), "GET", "/metrics")), 401);
  EXPECT_EQ(StatusOf(Request(s.port(), "GET", "/metrics", std::string("Bearer ") + kKey)), 200);
  EXPECT_EQ(StatusOf(Request(s.port(), "GET", "/health")), 200);  // probes stay open
  EXPECT_NE(s.Log().find("longview: auth on, /metrics included"), std::string::npos) << s.Log();
}

TEST_F(ServeTest, ServedModelNameDefaultsToTheModelArgument) {
  ServeProcess& s = Start();
  ASSERT_GT(s.port(), 0);
  const std::string r =
      Request(s.port(), "GET", "/v1/models/" + std::string(kModel), std::string("Bearer ") + kKey);
  EXPECT_EQ(StatusOf(r), 200) << r;
}

TEST_F(ServeTest, StartupSummaryAndPeriodicStatsAreLogged) {
  ServeProcess& s = Start({"--stats-interval", "0.1"});
  ASSERT_GT(s.port(), 0);
  std::string log;
  for (int i = 0; i < 100; ++i) {
    log = s.Log();
    if (log.find("longview: stats: ") != std::string::npos) break;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_NE(log.find("longview: model "), std::string::npos) << log;
  EXPECT_NE(log.find("context 512 tokens"), std::string::npos) << log;
  EXPECT_NE(log.find("loaded in "), std::string::npos) << log;
  EXPECT_NE(log.find("longview: stats: prompt "), std::string::npos) << log;
  EXPECT_NE(log.find("KV usage"), std::string::npos) << log;
}

TEST_F(ServeTest, MetricsStayOpenByDefault) {
  ServeProcess& s = Start();
  ASSERT_GT(s.port(), 0);
  EXPECT_EQ(StatusOf(Request(s.port(), "GET", "/metrics")), 200);
  EXPECT_NE(s.Log().find("longview: auth on\n"), std::string::npos) << s.Log();
}

TEST_F(ServeTest, BearerSchemeIsCaseInsensitive) {
  ServeProcess& s = Start();
  ASSERT_GT(s.port(), 0);
  for (const char* scheme : {"bearer ", "BEARER ", "BeArEr  "}) {
    EXPECT_EQ(StatusOf(Request(s.port(), "GET", "/v1/models", scheme + std::string(kKey))), 200)
        << scheme;
  }
  EXPECT_EQ(StatusOf(Request(s.port(), "GET", "/v1/models", std::string("Basic ") + kKey)), 401);
  // The key itself stays case-sensitive.
  std::string upper = kKey;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(StatusOf(Request(s.port(), "GET", "/v1/models", "Bearer " + upper)), 401);
}

TEST_F(ServeTest, FailedAuthIsLoggedWithoutTheKey) {
  ServeProcess& s = Start();
  ASSERT_GT(s.port(), 0);
  const std::string guess = "sk-wrong-guess-7777";
  EXPECT_EQ(StatusOf(Request(s.port(), "POST", "/v1/completions", "Bearer " + guess)), 401);
  EXPECT_EQ(StatusOf(Request(s.port(), "GET", "/v1/models")), 401);
  std::string log;
  for (int i = 0; i < 250; ++i) {  // stderr is written before the answer; allow for the file
    log = s.Log();
    if (log.find("(no Authorization header)") != std::string::npos) break;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_NE(log.find("unauthorized POST /v1/completions from 127.0.0.1:"), std::string::npos)
      << log;
  EXPECT_NE(log.find("(wrong key)"), std::string::npos) << log;
  EXPECT_NE(log.find("unauthorized GET /v1/models from 127.0.0.1:"), std::string::npos) << log;
  EXPECT_EQ(log.find(guess), std::string::npos) << log;
  EXPECT_EQ(log.find(kKey), std::string::npos) << log;
}

TEST_F(ServeTest, HeadOnGetRoutesAnswersHeadersOnly) {
  ServeProcess& s = Start();
  ASSERT_GT(s.port(), 0);
  std::string get = Request(s.port(), "GET", "/health");
  std::string head = Request(s.port(), "HEAD", "/health");
  ASSERT_EQ(StatusOf(head), 200) << head;
  size_t end = head.find("\r\n\r\n");
  ASSERT_NE(end, std::string::npos) << head;
  EXPECT_EQ(head.size(), end + 4) << head;  // nothing after the headers
  // The same headers as GET, Content-Length included.
  EXPECT_EQ(get.substr(0, get.find("\r\n\r\n") + 4), head) << get;
  std::string models = Request(s.port(), "HEAD", "/v1/models", std::string("Bearer ") + kKey);
  EXPECT_EQ(StatusOf(models), 200) << models;
  EXPECT_EQ(models.size(), models.find("\r\n\r\n") + 4) << models;
  EXPECT_EQ(StatusOf(Request(s.port(), "HEAD", "/metrics")), 200);
}

TEST_F(ServeTest, WrongMethodGets405WithAllow) {
  ServeProcess& s = Start();
  ASSERT_GT(s.port(), 0);
  const std::string auth = std::string("Bearer ") + kKey;
  struct Case {
    const char* method;
    const char* path;
    const char* allow;
  };
  for (const Case& c :
       {Case{"POST", "/health", "GET, HEAD"}, Case{"DELETE", "/metrics", "GET, HEAD"},
        Case{"POST", "/v1/models", "GET, HEAD"}, Case{"GET", "/v1/completions", "POST"},
        Case{"HEAD", "/v1/chat/completions", "POST"}}) {
    std::string r = Request(s.port(), c.method, c.path, auth);
    EXPECT_EQ(StatusOf(r), 405) << c.method << " " << c.path << "\n" << r;
    EXPECT_NE(r.find(std::string("\r\nAllow: ") + c.allow + "\r\n"), std::string::npos)
        << c.method << " " << c.path << "\n"
        << r;
    if (std::string(c.method) != "HEAD") {  // HEAD's answer has no body
      EXPECT_NE(r.find("\"code\":\"method_not_allowed\""), std::string::npos) << r;
      EXPECT_EQ(r.find("\"code\":400"), std::string::npos) << r;
    }
  }
  EXPECT_EQ(StatusOf(Request(s.port(), "GET", "/v1/nothing-here", auth)), 404);
}

TEST_F(ServeTest, MaxConnectionsFlagCapsOpenConnections) {
  ServeProcess& s = Start({"--max-connections", "2"});
  ASSERT_GT(s.port(), 0);
  std::vector<int> held;
  for (int i = 0; i < 2; ++i) {  // answered, so accepted and counted, and kept open
    int fd = Connect(s.port());
    ASSERT_GE(fd, 0);
    const std::string req = "GET /health HTTP/1.1\r\nHost: h\r\n\r\n";
    ASSERT_EQ(write(fd, req.data(), req.size()), ssize_t(req.size()));
    char buf[512];
    ASSERT_GT(read(fd, buf, sizeof(buf)), 0);
    held.push_back(fd);
  }
  int extra = Connect(s.port());
  ASSERT_GE(extra, 0);
  std::string refused = ReadAll(extra);
  close(extra);
  EXPECT_EQ(StatusOf(refused), 503) << refused;
  EXPECT_NE(refused.find("too many open connections (limit 2)"), std::string::npos) << refused;
  for (int fd : held) close(fd);
}

}  // namespace
}  // namespace longview

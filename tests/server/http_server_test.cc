// The HTTP transport over real loopback sockets: keep-alive, pipelining, chunked streaming from
// another thread, the body limit (413), malformed requests (400), and disconnect detection.
#include "server/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <mutex>
#include <string>
#include <thread>

#include "gtest/gtest.h"

namespace longview {
namespace {

using namespace std::chrono_literals;

class Client {
 public:
  explicit Client(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    timeval tv{5, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~Client() { Close(); }
  bool connected() const { return connected_; }
  void Send(const std::string& s) { ASSERT_EQ(write(fd_, s.data(), s.size()), ssize_t(s.size())); }
  // Reads until `marker` has appeared `times` times (or EOF / 5 s timeout).
  std::string ReadUntil(const std::string& marker, int times = 1) {
    while (Count(marker) < times) {
      char buf[4096];
      ssize_t n = read(fd_, buf, sizeof(buf));
      if (n <= 0) break;
      data_.append(buf, n);
    }
    return data_;
  }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int Count(const std::string& marker) const {
    int n = 0;
    for (size_t p = data_.find(marker); p != std::string::npos; p = data_.find(marker, p + 1)) ++n;
    return n;
  }
  int fd_ = -1;
  bool connected_ = false;
  std::string data_;
};

std::unique_ptr<HttpServer> StartEcho(HttpServerOptions opt = {}) {
  opt.port = 0;
  auto server = HttpServer::Start(opt, [](HttpRequest req, std::shared_ptr<HttpResponder> w) {
    w->Respond(200, "text/plain", req.method + " " + req.path + " " + req.body);
  });
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? std::move(*server) : nullptr;
}

TEST(HttpServerTest, KeepAliveServesRequestsOnOneConnection) {
  auto server = StartEcho();
  ASSERT_NE(server, nullptr);
  Client c(server->port());
  ASSERT_TRUE(c.connected());
  c.Send("GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\n");
  std::string first = c.ReadUntil("GET /a ");
  EXPECT_EQ(first.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << first;
  EXPECT_NE(first.find("Content-Length: 7\r\n"), std::string::npos) << first;
  c.Send("POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz");
  std::string both = c.ReadUntil("POST /b xyz");
  EXPECT_NE(both.find("POST /b xyz"), std::string::npos) << both;
}

TEST(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  HttpServerOptions opt;
  opt.port = 0;
  auto server = HttpServer::Start(opt, [](HttpRequest req, std::shared_ptr<HttpResponder> w) {
    // Answer the first late, from another thread, so the second waits in the buffer.
    std::thread([req, w] {
      if (req.path == "/slow") std::this_thread::sleep_for(100ms);
      w->Respond(200, "text/plain", req.path);
    }).detach();
  });
  ASSERT_TRUE(server.ok());
  Client c((*server)->port());
  c.Send("GET /slow HTTP/1.1\r\nHost: h\r\n\r\nGET /fast HTTP/1.1\r\nHost: h\r\n\r\n");
  std::string out = c.ReadUntil("HTTP/1.1 200", 2);
  out = c.ReadUntil("/fast");
  size_t slow = out.find("/slow"), fast = out.find("/fast");
  ASSERT_NE(slow, std::string::npos) << out;
  ASSERT_NE(fast, std::string::npos) << out;
  EXPECT_LT(slow, fast);
}

TEST(HttpServerTest, ChunkedStreamFromAnotherThread) {
  HttpServerOptions opt;
  opt.port = 0;
  auto server = HttpServer::Start(opt, [](HttpRequest, std::shared_ptr<HttpResponder> w) {
    w->StartStream(200, "text/event-stream", {"Cache-Control: no-cache"});
    std::thread([w] {
      w->Write("data: 1\n\n");
      w->Write("hello");
      w->EndStream();
    }).detach();
  });
  ASSERT_TRUE(server.ok());
  Client c((*server)->port());
  c.Send("GET /s HTTP/1.1\r\nHost: h\r\n\r\n");
  std::string out = c.ReadUntil("0\r\n\r\n");
  EXPECT_NE(out.find("Transfer-Encoding: chunked\r\n"), std::string::npos) << out;
  EXPECT_NE(out.find("Cache-Control: no-cache\r\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\r\n\r\n9\r\ndata: 1\n\n\r\n5\r\nhello\r\n0\r\n\r\n"), std::string::npos)
      << out;
  // The connection stays usable.
  c.Send("GET /again HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_NE(c.ReadUntil("0\r\n\r\n", 2).find("hello\r\n0\r\n\r\nHTTP/1.1 200"), std::string::npos);
}

TEST(HttpServerTest, BodyOverTheLimitGets413) {
  HttpServerOptions opt;
  opt.max_body_bytes = 10;
  auto server = StartEcho(opt);
  ASSERT_NE(server, nullptr);
  Client c(server->port());
  c.Send("POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n0123456789");
  std::string out = c.ReadUntil("}}");
  EXPECT_EQ(out.rfind("HTTP/1.1 413", 0), 0u) << out;
  EXPECT_NE(out.find("request_too_large"), std::string::npos) << out;
}

TEST(HttpServerTest, MalformedRequestGets400) {
  auto server = StartEcho();
  ASSERT_NE(server, nullptr);
  Client c(server->port());
  c.Send("THIS IS NOT HTTP\r\n\r\n");
  std::string out = c.ReadUntil("}}");
  EXPECT_EQ(out.rfind("HTTP/1.1 400", 0), 0u) << out;
}

TEST(HttpServerTest, ClientDisconnectIsSeenWhileTheResponseIsPending) {
  std::mutex mu;
  std::shared_ptr<HttpResponder> pending;
  HttpServerOptions opt;
  opt.port = 0;
  auto server = HttpServer::Start(opt, [&](HttpRequest, std::shared_ptr<HttpResponder> w) {
    std::lock_guard<std::mutex> lock(mu);
    pending = w;  // never answered
  });
  ASSERT_TRUE(server.ok());
  {
    Client c((*server)->port());
    c.Send("GET /wait HTTP/1.1\r\nHost: h\r\n\r\n");
    for (int i = 0; i < 500; ++i) {
      std::lock_guard<std::mutex> lock(mu);
      if (pending) break;
      std::this_thread::sleep_for(10ms);
    }
  }  // the client hangs up
  bool closed = false;
  for (int i = 0; i < 500 && !closed; ++i) {
    {
      std::lock_guard<std::mutex> lock(mu);
      ASSERT_NE(pending, nullptr);
      closed = pending->closed();
    }
    if (!closed) std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(closed);
  std::lock_guard<std::mutex> lock(mu);
  pending->Respond(200, "text/plain", "late");  // ignored, must not crash
}

TEST(HttpServerTest, ManyConcurrentConnectionsOnFewThreads) {
  std::mutex mu;
  std::vector<std::shared_ptr<HttpResponder>> pending;
  HttpServerOptions opt;
  opt.port = 0;
  opt.num_io_threads = 1;
  auto server = HttpServer::Start(opt, [&](HttpRequest, std::shared_ptr<HttpResponder> w) {
    w->StartStream(200, "text/event-stream", {});
    std::lock_guard<std::mutex> lock(mu);
    pending.push_back(w);
  });
  ASSERT_TRUE(server.ok());
  constexpr int kClients = 200;
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<Client>((*server)->port()));
    clients.back()->Send("GET /s HTTP/1.1\r\nHost: h\r\n\r\n");
  }
  auto count = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return pending.size();
  };
  for (int i = 0; i < 500 && count() < size_t{kClients}; ++i) std::this_thread::sleep_for(10ms);
  {
    std::lock_guard<std::mutex> lock(mu);
    ASSERT_EQ(pending.size(), size_t{kClients});
    for (auto& w : pending) {
      w->Write("x");
      w->EndStream();
    }
  }
  for (auto& c : clients)
    EXPECT_NE(c->ReadUntil("0\r\n\r\n").find("1\r\nx\r\n0\r\n\r\n"), std::string::npos);
}

}  // namespace
}  // namespace longview

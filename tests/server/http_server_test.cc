// The HTTP transport over real loopback sockets: keep-alive, pipelining, HEAD, half-close,
// chunked streaming from another thread, the body limit (413), malformed requests (400),
// disconnect detection, and the limits that protect the process: the connection cap, the
// in-flight body budget and the write timeout.
#include "server/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
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
  // `rcvbuf` > 0: the socket's receive buffer (set before connecting, so that the window stays
  // small), for a client that stops reading.
  explicit Client(int port, int rcvbuf = 0) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    if (rcvbuf > 0) setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
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
  // Reads until the server closes the connection (or a 5 s timeout); true on EOF or reset.
  bool ReadToEnd() {
    for (;;) {
      char buf[4096];
      ssize_t n = read(fd_, buf, sizeof(buf));
      if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
      if (n < 0) return false;
      data_.append(buf, n);
    }
  }
  const std::string& data() const { return data_; }
  void ShutdownWrite() { shutdown(fd_, SHUT_WR); }
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
  opt.port = 0;
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

// A client that pipelines megabytes behind a pending request and then leaves is still seen to
// leave (detection used to stop at 1 MiB of unread bytes); past one whole next request of
// pipelined bytes the connection is closed.
TEST(HttpServerTest, DisconnectIsSeenBehindMegabytesOfPipelinedBytes) {
  for (const bool overflow : {false, true}) {
    SCOPED_TRACE(overflow ? "beyond one next request" : "2 MiB, then hang up");
    std::mutex mu;
    std::shared_ptr<HttpResponder> pending;
    HttpServerOptions opt;
    opt.port = 0;
    opt.max_body_bytes = overflow ? (1 << 20) : (8 << 20);
    auto server = HttpServer::Start(opt, [&](HttpRequest, std::shared_ptr<HttpResponder> w) {
      std::lock_guard<std::mutex> lock(mu);
      if (pending == nullptr) pending = w;  // never answered
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
      const std::string body(2 << 20, 'x');
      c.Send("POST /next HTTP/1.1\r\nHost: h\r\nContent-Length: " +
             std::to_string(body.size()) + "\r\n\r\n" + body);
      std::this_thread::sleep_for(200ms);
    }  // the client hangs up (or was already cut off)
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
  }
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

// Polls `done` every 10 ms for at most `limit`.
template <typename Fn>
bool WaitFor(Fn done, std::chrono::milliseconds limit = 5000ms) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

TEST(HttpServerTest, ConnectionsBeyondTheCapAreRefused) {
  HttpServerOptions opt;
  opt.port = 0;
  opt.max_connections = 3;
  auto server = StartEcho(opt);
  ASSERT_NE(server, nullptr);
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 3; ++i) {  // each answered, so each is accepted and counted
    clients.push_back(std::make_unique<Client>(server->port()));
    clients.back()->Send("GET /k HTTP/1.1\r\nHost: h\r\n\r\n");
    ASSERT_NE(clients.back()->ReadUntil("GET /k ").find("GET /k "), std::string::npos) << i;
  }
  // The fourth is answered before it sends anything, and closed.
  Client extra(server->port());
  ASSERT_TRUE(extra.connected());
  EXPECT_TRUE(extra.ReadToEnd());
  EXPECT_EQ(extra.data().rfind("HTTP/1.1 503", 0), 0u) << extra.data();
  EXPECT_NE(extra.data().find("Content-Type: text/plain\r\n"), std::string::npos);
  EXPECT_NE(extra.data().find("too many open connections (limit 3)"), std::string::npos);
  // Freeing one lets a new connection in (once the server has seen the close).
  clients[0]->Close();
  std::string last;
  EXPECT_TRUE(WaitFor([&] {
    Client c(server->port());
    c.Send("GET /again HTTP/1.1\r\nHost: h\r\n\r\n");
    last = c.ReadUntil("GET /again ");
    return last.rfind("HTTP/1.1 200", 0) == 0;
  })) << last;
  // The others were never disturbed.
  clients[1]->Send("GET /still HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_NE(clients[1]->ReadUntil("GET /still ").find("GET /still "), std::string::npos);
}

TEST(HttpServerTest, BodiesBeyondTheInflightBudgetGet503) {
  HttpServerOptions opt;
  opt.port = 0;
  opt.max_body_bytes = 1000;
  opt.max_inflight_body_bytes = 100;
  auto server = StartEcho(opt);
  ASSERT_NE(server, nullptr);
  // A alone exceeds the budget.
  {
    Client big(server->port());
    big.Send("POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n" +
             std::string(101, 'b'));
    EXPECT_TRUE(big.ReadToEnd());
    EXPECT_EQ(big.data().rfind("HTTP/1.1 503", 0), 0u) << big.data();
    EXPECT_NE(big.data().find("Retry-After: 1\r\n"), std::string::npos) << big.data();
    EXPECT_NE(big.data().find("server_busy"), std::string::npos) << big.data();
  }
  // A holds 80 bytes of the budget while its body trickles in ...
  Client a(server->port());
  a.Send("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 80\r\n\r\n0123456789");
  // ... so 50 more do not fit (retried until the server has read A's header) ...
  std::string refused;
  EXPECT_TRUE(WaitFor([&] {
    Client b(server->port());
    b.Send("POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 50\r\n\r\n" + std::string(50, 'x'));
    b.ReadToEnd();
    refused = b.data();
    return refused.rfind("HTTP/1.1 503", 0) == 0;
  })) << refused;
  EXPECT_NE(refused.find("Retry-After: 1\r\n"), std::string::npos) << refused;
  EXPECT_NE(refused.find("Connection: close\r\n"), std::string::npos) << refused;
  // ... nor does a chunked body whose chunks would exceed it.
  {
    Client chunked(server->port());
    chunked.Send("POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n32\r\n" +
                 std::string(50, 'y') + "\r\n0\r\n\r\n");
    chunked.ReadToEnd();
    EXPECT_EQ(chunked.data().rfind("HTTP/1.1 503", 0), 0u) << chunked.data();
  }
  // When A's body is complete the budget is free again.
  a.Send(std::string(70, 'a'));
  EXPECT_NE(a.ReadUntil("POST /a 0123456789aaa").find("HTTP/1.1 200"), std::string::npos);
  Client c(server->port());
  c.Send("POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n32\r\n" +
         std::string(50, 'y') + "\r\n0\r\n\r\n");
  EXPECT_NE(c.ReadUntil("POST /c yyy").find("HTTP/1.1 200"), std::string::npos) << c.data();
}

TEST(HttpServerTest, ClientThatStopsReadingIsCutOffAfterTheWriteTimeout) {
  struct Writer {
    std::atomic<bool> done{false};
    std::atomic<int64_t> closed_after_ms{-1};
  };
  auto writer = std::make_shared<Writer>();  // shared with the writer thread, which may outlive
  HttpServerOptions opt;
  opt.port = 0;
  opt.write_timeout_seconds = 1;
  auto server = HttpServer::Start(opt, [writer](HttpRequest, std::shared_ptr<HttpResponder> w) {
    w->StartStream(200, "text/event-stream", {});
    std::thread([w, writer] {
      auto start = std::chrono::steady_clock::now();
      const std::string chunk(16 << 10, 'z');
      // 8 MB/s for at most 10 s: far more than the socket buffers hold.
      while (!w->closed() && std::chrono::steady_clock::now() - start < 10s) {
        w->Write(chunk);
        std::this_thread::sleep_for(2ms);
      }
      if (w->closed()) {
        writer->closed_after_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                      std::chrono::steady_clock::now() - start)
                                      .count();
      }
      writer->done = true;
    }).detach();
  });
  ASSERT_TRUE(server.ok());
  Client c((*server)->port(), /*rcvbuf=*/4096);
  c.Send("GET /stream HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_NE(c.ReadUntil("\r\n\r\n").find("HTTP/1.1 200"), std::string::npos);
  // The client stops reading; the writer sees closed() once a write has stalled for 1 s.
  EXPECT_TRUE(WaitFor([&] { return writer->done.load(); }, 15000ms));
  EXPECT_GE(writer->closed_after_ms.load(), 1000);
  EXPECT_LT(writer->closed_after_ms.load(), 9000);
  EXPECT_TRUE(c.ReadToEnd());  // what was in flight, then the end of the connection
}

TEST(HttpServerTest, HalfClosedClientStillGetsTheResponse) {
  HttpServerOptions opt;
  opt.port = 0;
  auto closed_seen = std::make_shared<std::atomic<bool>>(false);
  auto server =
      HttpServer::Start(opt, [closed_seen](HttpRequest req, std::shared_ptr<HttpResponder> w) {
        // Answer late, so the client's shutdown is seen while the response is pending.
        std::thread([req, w, closed_seen] {
          std::this_thread::sleep_for(300ms);
          if (w->closed()) *closed_seen = true;
          if (req.path == "/stream") {
            w->StartStream(200, "text/event-stream", {});
            w->Write("data: 1\n\n");
            w->EndStream();
          } else {
            w->Respond(200, "text/plain", "late " + req.path);
          }
        }).detach();
      });
  ASSERT_TRUE(server.ok());
  {
    Client c((*server)->port());
    c.Send("GET /plain HTTP/1.1\r\nHost: h\r\n\r\n");
    c.ShutdownWrite();
    EXPECT_TRUE(c.ReadToEnd());
    EXPECT_NE(c.data().find("HTTP/1.1 200 OK\r\n"), std::string::npos) << c.data();
    EXPECT_NE(c.data().find("late /plain"), std::string::npos) << c.data();
  }
  {
    Client c((*server)->port());
    c.Send("GET /stream HTTP/1.1\r\nHost: h\r\n\r\n");
    c.ShutdownWrite();
    EXPECT_TRUE(c.ReadToEnd());
    EXPECT_NE(c.data().find("9\r\ndata: 1\n\n\r\n0\r\n\r\n"), std::string::npos) << c.data();
  }
  // Two pipelined requests and then the shutdown: both answered, in order.
  Client c((*server)->port());
  c.Send("GET /one HTTP/1.1\r\nHost: h\r\n\r\nGET /two HTTP/1.1\r\nHost: h\r\n\r\n");
  c.ShutdownWrite();
  EXPECT_TRUE(c.ReadToEnd());
  size_t one = c.data().find("late /one"), two = c.data().find("late /two");
  ASSERT_NE(one, std::string::npos) << c.data();
  ASSERT_NE(two, std::string::npos) << c.data();
  EXPECT_LT(one, two);
  EXPECT_FALSE(closed_seen->load());  // no responder saw its half-closed client as gone
}

TEST(HttpServerTest, PipelinedRequestsWithBodiesInOneWrite) {
  auto server = StartEcho();
  ASSERT_NE(server, nullptr);
  Client c(server->port());
  c.Send(
      "POST /1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
      "GET /2 HTTP/1.1\r\nHost: h\r\n\r\n"
      "POST /3 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n");
  std::string out = c.ReadUntil("POST /3 xy");
  size_t p1 = out.find("POST /1 abc"), p2 = out.find("GET /2 "), p3 = out.find("POST /3 xy");
  ASSERT_NE(p1, std::string::npos) << out;
  ASSERT_NE(p2, std::string::npos) << out;
  ASSERT_NE(p3, std::string::npos) << out;
  EXPECT_LT(p1, p2);
  EXPECT_LT(p2, p3);
}

TEST(HttpServerTest, HeadAnswersHeadersWithoutBody) {
  HttpServerOptions opt;
  opt.port = 0;
  auto server = HttpServer::Start(opt, [](HttpRequest req, std::shared_ptr<HttpResponder> w) {
    if (req.path == "/stream") {
      w->StartStream(200, "text/event-stream", {});
      w->Write("data: never\n\n");  // ignored for HEAD
      w->EndStream();
      return;
    }
    w->Respond(200, "text/plain", req.method + " " + req.path);
  });
  ASSERT_TRUE(server.ok());
  Client c((*server)->port());
  // Pipelined behind each HEAD, a GET: a body after HEAD's headers would be read as its answer.
  c.Send(
      "HEAD /h HTTP/1.1\r\nHost: h\r\n\r\nGET /after HTTP/1.1\r\nHost: h\r\n\r\n"
      "HEAD /stream HTTP/1.1\r\nHost: h\r\n\r\nGET /end HTTP/1.1\r\nHost: h\r\n\r\n");
  std::string out = c.ReadUntil("GET /end");
  const std::string head_answer =
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n\r\n";
  EXPECT_EQ(out.rfind(head_answer + "HTTP/1.1 200 OK\r\n", 0), 0u) << out;
  const std::string stream_head =
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
  EXPECT_NE(out.find("GET /after" + stream_head + "HTTP/1.1 200 OK"), std::string::npos) << out;
  EXPECT_EQ(out.find("never"), std::string::npos) << out;
}

TEST(HttpServerTest, RequestsCarryTheClientAddress) {
  std::mutex mu;
  std::string remote;
  HttpServerOptions opt;
  opt.port = 0;
  auto server = HttpServer::Start(opt, [&](HttpRequest req, std::shared_ptr<HttpResponder> w) {
    {
      std::lock_guard<std::mutex> lock(mu);
      remote = req.remote_address;
    }
    w->Respond(200, "text/plain", "ok");
  });
  ASSERT_TRUE(server.ok());
  Client c((*server)->port());
  c.Send("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  c.ReadUntil("ok");
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(remote.rfind("127.0.0.1:", 0), 0u) << remote;
  EXPECT_GT(remote.size(), std::string("127.0.0.1:").size());
}

}  // namespace
}  // namespace longview

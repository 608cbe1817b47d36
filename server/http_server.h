// An asynchronous HTTP/1.1 server on Boost.Beast/Asio: a small fixed pool of io threads serves
// every connection (no thread per connection), with keep-alive, Content-Length and chunked
// responses (used for server-sent events), a request-body limit (413), and detection of clients
// that go away while their response is pending (HttpResponder::closed()).
//
//   HttpServerOptions opt; opt.host = "127.0.0.1"; opt.port = 0;   // 0: any free port
//   ASSIGN_OR_RETURN(auto server, HttpServer::Start(opt, [](HttpRequest req, auto responder) {
//     responder->Respond(200, "text/plain", "hello");
//   }));
//   std::cout << server->port();
//   server->Stop();
//
// The handler runs on an io thread and must not block: long work (waiting for generation)
// happens elsewhere and reports through the responder, whose methods are thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace longview {

struct HttpRequest {
  std::string method;                                        // "GET", "POST", ...
  std::string path;                                          // target without the query string
  std::string query;                                         // after '?', or ""
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  // The value of a header (name lower-case), or "".
  std::string Header(const std::string& name) const;
};

// Sends the response to one request. Either Respond once, or StartStream, Write* and EndStream.
// Calls out of that order, and calls after the client has gone, are ignored.
// Thread-safety: every method is safe from any thread.
class HttpResponder {
 public:
  virtual ~HttpResponder() = default;
  // A complete response with Content-Length.
  virtual void Respond(int status, const std::string& content_type, std::string body) = 0;
  // A chunked response; `extra_headers` are "Name: value" lines without CRLF.
  virtual void StartStream(int status, const std::string& content_type,
                           const std::vector<std::string>& extra_headers) = 0;
  virtual void Write(std::string data) = 0;
  virtual void EndStream() = 0;
  // True once the client has disconnected (or the connection failed).
  virtual bool closed() const = 0;
};

using HttpHandler = std::function<void(HttpRequest, std::shared_ptr<HttpResponder>)>;

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;  // 0: the kernel picks a free port
  int num_io_threads = 2;
  int64_t max_body_bytes = 8 << 20;  // larger bodies get 413
  int idle_timeout_seconds = 120;    // for reading a request
};

class HttpServer {
 public:
  // Binds and listens; UnavailableError naming host:port if that fails.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                           HttpHandler handler);
  ~HttpServer();  // Stop()
  // The bound port.
  int port() const;
  // Stops accepting and running handlers, and joins the io threads. Idempotent.
  void Stop();

 private:
  struct Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace longview

// An asynchronous HTTP/1.1 server on Boost.Beast/Asio: a small fixed pool of io threads serves
// every connection (no thread per connection), with keep-alive, pipelining, HEAD, Content-Length
// and chunked responses (used for server-sent events), and detection of clients that go away
// while their response is pending (HttpResponder::closed()).
//
// Limits, so that no client can exhaust the process: a request-body limit (413), a cap on open
// connections (beyond it a connection gets a plain-text 503 and is closed before anything is
// read), a budget for the sum of request bodies being read at once (beyond it 503 with
// Retry-After, the body unread), a read timeout for requests and a write timeout for responses
// (a client that stops reading is disconnected, and closed() turns true).
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
  std::string remote_address;  // "127.0.0.1:54321" or "[::1]:54321": the client, for logs
  // The value of a header (name lower-case), or "".
  std::string Header(const std::string& name) const;
};

// Sends the response to one request. Either Respond once, or StartStream, Write* and EndStream.
// Calls out of that order, and calls after the client has gone, are ignored.
// Thread-safety: every method is safe from any thread.
class HttpResponder {
 public:
  virtual ~HttpResponder() = default;
  // A complete response with Content-Length; `extra_headers` are "Name: value" lines without
  // CRLF. The answer to a HEAD request carries the headers only.
  virtual void Respond(int status, const std::string& content_type, std::string body,
                       const std::vector<std::string>& extra_headers) = 0;
  void Respond(int status, const std::string& content_type, std::string body) {
    Respond(status, content_type, std::move(body), {});
  }
  // A chunked response; `extra_headers` are "Name: value" lines without CRLF.
  virtual void StartStream(int status, const std::string& content_type,
                           const std::vector<std::string>& extra_headers) = 0;
  virtual void Write(std::string data) = 0;
  virtual void EndStream() = 0;
  // True once the client has disconnected, the connection failed, or a write outlasted the write
  // timeout. A client that only shuts down its sending side (a half-close) still gets the
  // response: closed() stays false for it.
  virtual bool closed() const = 0;
};

using HttpHandler = std::function<void(HttpRequest, std::shared_ptr<HttpResponder>)>;

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;  // 0: the kernel picks a free port
  int num_io_threads = 2;
  int64_t max_body_bytes = 8 << 20;  // larger bodies get 413
  int idle_timeout_seconds = 120;    // for reading a request
  // Open connections at most; a connection beyond it is answered 503 (plain text) and closed.
  // <= 0: no limit.
  int max_connections = 1024;
  // The sum of request bodies being read at once (a body counts from its header, by its
  // Content-Length or chunk by chunk, until the handler has been called); a request that would
  // exceed it is answered 503 with Retry-After without reading its body. <= 0: no limit.
  int64_t max_inflight_body_bytes = int64_t{256} << 20;
  // A response write (one flush of queued data) that takes longer closes the connection, and the
  // responder's closed() turns true. <= 0: no timeout.
  int write_timeout_seconds = 60;
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

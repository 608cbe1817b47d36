// HTTP/1.1 transport on Boost.Beast: one strand per connection, requests parsed by Beast,
// responses serialised here (status line, headers, Content-Length or chunked framing).
//
// A request is read in two steps: its header, then (once its Content-Length fits the in-flight
// body budget; chunked bodies reserve chunk by chunk) its body.
//
// While a request is being answered, a one-shot "monitor" read stays posted on the socket: it
// completes with pipelined bytes, which are kept for the next request, or with EOF when the
// client shuts down its sending side; more pipelined bytes than one whole next request can hold
// close the connection (the pending request sees closed()). EOF alone cannot tell a half-close (the client still reads)
// from a hang-up, so the session then waits for a reset and, if nothing of the response has been
// sent yet, provokes one with an interim "100 Continue": a closed socket answers it with a reset
// (closed() turns true, so the producer can cancel generation), a half-closed one reads it and
// gets the response. When the response is done the monitor is cancelled and the next request is
// read.
#include "server/http_server.h"

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <deque>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"

namespace longview {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

class Session;

struct Shared {
  HttpServerOptions options;
  HttpHandler handler;
  // Live sessions, so that Stop() can close them.
  std::mutex mu;
  std::vector<std::weak_ptr<Session>> sessions;
  // Sessions whose socket is still open (max_connections).
  std::atomic<int64_t> num_connections{0};
  // Bytes reserved by request bodies being read (max_inflight_body_bytes).
  std::atomic<int64_t> inflight_body_bytes{0};

  bool TryReserveBody(int64_t n) {
    const int64_t limit = options.max_inflight_body_bytes;
    int64_t used = inflight_body_bytes.load();
    do {
      if (limit > 0 && n > limit - used) return false;
    } while (!inflight_body_bytes.compare_exchange_weak(used, used + n));
    return true;
  }
};

std::string StatusLine(int status) {
  std::string reason(http::obsolete_reason(static_cast<http::status>(status)));
  return absl::StrCat("HTTP/1.1 ", status, " ", reason, "\r\n");
}

std::string RemoteAddress(const tcp::socket& socket) {
  beast::error_code ec;
  tcp::endpoint ep = socket.remote_endpoint(ec);
  if (ec) return "unknown";
  std::string addr = ep.address().to_string();
  if (ep.address().is_v6()) addr = absl::StrCat("[", addr, "]");
  return absl::StrCat(addr, ":", ep.port());
}

// Answers a connection beyond max_connections without reading a request, and closes it. The
// socket is fresh, so the short answer fits its send buffer and a non-blocking write suffices.
void RefuseConnection(tcp::socket socket, int max_connections) {
  std::string body = absl::StrCat("server busy: too many open connections (limit ", max_connections,
                                  "); retry later\n");
  std::string response =
      absl::StrCat(StatusLine(503), "Content-Type: text/plain\r\nContent-Length: ", body.size(),
                   "\r\nRetry-After: 1\r\nConnection: close\r\n\r\n", body);
  beast::error_code ec;
  socket.non_blocking(true, ec);
  socket.write_some(net::buffer(response), ec);
  // Discard what the client has already sent: closing with unread bytes sends a reset, which can
  // destroy the answer before the client reads it.
  char scratch[4096];
  for (int i = 0; i < 16; ++i) {
    ec.clear();
    if (socket.read_some(net::buffer(scratch), ec) == 0 || ec) break;
  }
  socket.shutdown(tcp::socket::shutdown_both, ec);
  socket.close(ec);
}

std::string ErrorBody(const std::string& message, const std::string& type,
                      const std::string& code) {
  return absl::StrCat("{\"error\":{\"message\":\"", message, "\",\"type\":\"", type,
                      "\",\"param\":null,\"code\":", code, "}}");
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  // `ioc` is kept alive by every session: a session may outlive the server (a producer still
  // holds its responder), and its socket must be destroyed before the io_context.
  Session(std::shared_ptr<net::io_context> ioc, tcp::socket socket, std::shared_ptr<Shared> shared)
      : ioc_(std::move(ioc)),
        remote_(RemoteAddress(socket)),
        stream_(std::move(socket)),
        shared_(std::move(shared)) {
    shared_->num_connections.fetch_add(1);
    on_chunk_header_ = [this](uint64_t size, beast::string_view, beast::error_code& ec) {
      if (!ReserveBody(size)) {
        over_budget_ = true;
        ec = net::error::no_buffer_space;
      }
    };
  }
  ~Session() {
    ReleaseBody();
    ReleaseConnection();
  }

  void CloseOnStrand() {
    net::post(stream_.get_executor(), [self = shared_from_this()] { self->CloseSocket(); });
  }

  void Run() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->ReadRequest(); });
  }
  bool closed() const { return closed_.load(); }

  // Runs `fn` on the connection's strand if `seq` is still the current request.
  template <typename Fn>
  void OnStrand(uint64_t seq, Fn fn) {
    net::post(stream_.get_executor(),
              [self = shared_from_this(), seq, fn = std::move(fn)]() mutable {
                if (seq != self->seq_ || self->closed_.load()) return;
                fn(*self);
              });
  }

  void DoRespond(int status, const std::string& content_type, std::string body,
                 const std::vector<std::string>& extra_headers) {
    if (state_ != State::kNone) return;
    state_ = State::kDone;
    std::string head = StatusLine(status);
    absl::StrAppend(&head, "Content-Type: ", content_type, "\r\nContent-Length: ", body.size(),
                    "\r\n");
    for (const std::string& h : extra_headers) absl::StrAppend(&head, h, "\r\n");
    absl::StrAppend(&head, keep_alive_ ? "" : "Connection: close\r\n", "\r\n");
    if (!head_request_) head += body;
    Enqueue(std::move(head), /*last=*/true);
  }
  void DoStartStream(int status, const std::string& content_type,
                     const std::vector<std::string>& extra_headers) {
    if (state_ != State::kNone) return;
    state_ = head_request_ ? State::kDone : State::kStreaming;
    std::string head = StatusLine(status);
    absl::StrAppend(&head, "Content-Type: ", content_type, "\r\nTransfer-Encoding: chunked\r\n");
    for (const std::string& h : extra_headers) absl::StrAppend(&head, h, "\r\n");
    absl::StrAppend(&head, keep_alive_ ? "" : "Connection: close\r\n", "\r\n");
    Enqueue(std::move(head), /*last=*/head_request_);  // HEAD: no body follows
  }
  void DoWrite(const std::string& data) {
    if (state_ != State::kStreaming || data.empty()) return;
    char size[32];
    std::snprintf(size, sizeof(size), "%zx\r\n", data.size());
    Enqueue(absl::StrCat(size, data, "\r\n"), false);
  }
  void DoEndStream() {
    if (state_ != State::kStreaming) return;
    state_ = State::kDone;
    Enqueue("0\r\n\r\n", true);
  }

 private:
  enum class State { kNone, kStreaming, kDone };

  void ReadRequest() {
    if (probing_) {  // a read must not wait behind the probe's error wait (see ProbePeer)
      probing_ = false;
      beast::error_code ignored;
      stream_.socket().cancel(ignored);
    }
    if (peer_eof_ && buffer_.size() == 0) {  // nothing more can arrive
      CloseSocket();
      return;
    }
    parser_.emplace();
    parser_->body_limit(
        static_cast<uint64_t>(std::max<int64_t>(0, shared_->options.max_body_bytes)));
    parser_->header_limit(64 * 1024);
    parser_->on_chunk_header(on_chunk_header_);
    stream_.expires_after(std::chrono::seconds(shared_->options.idle_timeout_seconds));
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&Session::OnHeader, shared_from_this()));
  }

  void OnHeader(beast::error_code ec, size_t) {
    if (!ec) {
      auto length = parser_->content_length();  // boost::optional
      if (length && *length > 0 && !ReserveBody(*length)) {
        over_budget_ = true;
        ec = net::error::no_buffer_space;
      }
    }
    if (ec) {
      OnRead(ec, 0);
      return;
    }
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::OnRead, shared_from_this()));
  }

  void OnRead(beast::error_code ec, size_t) {
    stream_.expires_never();
    ++seq_;
    state_ = State::kNone;
    response_done_ = false;
    head_request_ = false;
    if (ec) ReleaseBody();
    if (over_budget_) {
      over_budget_ = false;
      keep_alive_ = false;
      linger_ = true;
      DoRespond(503, "application/json",
                ErrorBody(absl::StrCat("the server is reading too many request bodies at once "
                                       "(limit ",
                                       shared_->options.max_inflight_body_bytes,
                                       " bytes in all); retry later"),
                          "server_error", "\"server_busy\""),
                {"Retry-After: 1"});
      return;
    }
    if (ec == http::error::body_limit) {
      keep_alive_ = false;
      linger_ = true;
      DoRespond(413, "application/json",
                ErrorBody(absl::StrCat("request body exceeds the limit of ",
                                       shared_->options.max_body_bytes, " bytes"),
                          "invalid_request_error", "\"request_too_large\""),
                {});
      return;
    }
    if (ec && ec.category() == http::make_error_code(http::error::bad_target).category() &&
        ec != http::error::end_of_stream && ec != http::error::partial_message) {
      keep_alive_ = false;
      linger_ = true;
      DoRespond(400, "application/json",
                ErrorBody(absl::StrCat("malformed HTTP request: ", ec.message()),
                          "invalid_request_error", "400"),
                {});
      return;
    }
    if (ec) {
      CloseSocket();
      return;
    }
    http::request<http::string_body> msg = parser_->release();
    keep_alive_ = msg.keep_alive();
    head_request_ = msg.method() == http::verb::head;
    http11_ = msg.version() >= 11;
    HttpRequest req;
    req.method = std::string(msg.method_string());
    std::string target(msg.target());
    size_t q = target.find('?');
    req.path = target.substr(0, q);
    if (q != std::string::npos) req.query = target.substr(q + 1);
    for (const auto& field : msg) {
      std::string name(field.name_string());
      std::transform(name.begin(), name.end(), name.begin(),
                     [](unsigned char c) { return std::tolower(c); });
      req.headers.emplace_back(std::move(name), std::string(field.value()));
    }
    req.body = std::move(msg.body());
    req.remote_address = remote_;
    StartMonitor();
    auto responder = MakeResponder();
    try {
      shared_->handler(std::move(req), responder);
    } catch (...) {
      DoRespond(500, "application/json", ErrorBody("internal error", "server_error", "500"), {});
    }
    ReleaseBody();  // the handler has taken the body
  }

  std::shared_ptr<HttpResponder> MakeResponder();

  bool ReserveBody(uint64_t n) {
    if (n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
    if (!shared_->TryReserveBody(static_cast<int64_t>(n))) return false;
    reserved_body_ += static_cast<int64_t>(n);
    return true;
  }
  void ReleaseBody() {
    if (reserved_body_ == 0) return;
    shared_->inflight_body_bytes.fetch_sub(reserved_body_);
    reserved_body_ = 0;
  }
  void ReleaseConnection() {
    if (released_) return;
    released_ = true;
    shared_->num_connections.fetch_sub(1);
  }

  // Bytes a client may send ahead while its request is answered: one next request.
  int64_t MaxPipelinedBytes() const { return shared_->options.max_body_bytes + (64 << 10); }

  void StartMonitor() {
    if (monitoring_ || closed_.load() || peer_eof_) return;
    monitoring_ = true;
    stream_.socket().async_read_some(
        buffer_.prepare(4096), beast::bind_front_handler(&Session::OnMonitor, shared_from_this()));
  }

  void OnMonitor(beast::error_code ec, size_t n) {
    monitoring_ = false;
    if (!ec) {
      buffer_.commit(n);
      if (response_done_ && !writing_) {
        ReadRequest();
      } else if (static_cast<int64_t>(buffer_.size()) <= MaxPipelinedBytes()) {
        StartMonitor();  // keeps watching for a hang-up however much is pipelined
      } else {
        // More than one whole next request (its largest body and headers) queued behind the
        // one being answered: the client is not waiting for answers. Close rather than stop
        // watching (which would leave a generation running for a client that left).
        closed_.store(true);
        if (!writing_) CloseSocket();
      }
      return;
    }
    if (ec == net::error::operation_aborted && !closed_.load() && response_done_ && !writing_) {
      ReadRequest();
      return;
    }
    if (ec == net::error::eof && !closed_.load()) {
      peer_eof_ = true;
      if (response_done_) {
        if (!writing_) ReadRequest();  // OnWritten reads otherwise
      } else {
        ProbePeer();
      }
      return;
    }
    closed_.store(true);  // reset or error: the client is gone.
    if (!writing_) CloseSocket();
  }

  // The client has shut down its sending side; tell a hang-up from a half-close (see the top of
  // this file). HTTP/1.0 clients may not be sent 1xx answers: for them the reset comes with the
  // response's first bytes.
  void ProbePeer() {
    probing_ = true;
    // Posted before the probe is written: on loopback the reset arrives within the write.
    stream_.socket().async_wait(
        tcp::socket::wait_error,
        beast::bind_front_handler(&Session::OnPeerError, shared_from_this()));
    if (state_ == State::kNone && http11_) Enqueue("HTTP/1.1 100 Continue\r\n\r\n", false);
  }

  void OnPeerError(beast::error_code ec) {
    if (ec == net::error::operation_aborted) return;  // cancelled by ReadRequest, or closed
    probing_ = false;
    closed_.store(true);
    if (!writing_) CloseSocket();
  }

  void Enqueue(std::string data, bool last) {
    if (closed_.load()) return;
    out_.push_back(std::move(data));
    if (last) response_done_ = true;
    if (!writing_) Flush();
  }

  void Flush() {
    writing_ = true;
    in_flight_.assign(std::make_move_iterator(out_.begin()), std::make_move_iterator(out_.end()));
    out_.clear();
    std::vector<net::const_buffer> buffers;
    buffers.reserve(in_flight_.size());
    for (const std::string& s : in_flight_) buffers.push_back(net::buffer(s));
    // A client that stops reading fills the socket's buffers and the write stalls: the stream's
    // timer then closes the socket and the write fails with a timeout.
    if (shared_->options.write_timeout_seconds > 0) {
      stream_.expires_after(std::chrono::seconds(shared_->options.write_timeout_seconds));
    }
    net::async_write(stream_, buffers,
                     beast::bind_front_handler(&Session::OnWritten, shared_from_this()));
  }

  void OnWritten(beast::error_code ec, size_t) {
    stream_.expires_never();
    writing_ = false;
    in_flight_.clear();
    if (ec) {
      closed_.store(true);
      CloseSocket();
      return;
    }
    if (!out_.empty()) {
      Flush();
      return;
    }
    if (closed_.load()) {
      CloseSocket();
      return;
    }
    if (!response_done_) return;
    if (!keep_alive_) {
      if (linger_) {
        LingerClose();
      } else {
        CloseSocket();
      }
    } else if (monitoring_) {
      beast::error_code ignored;
      stream_.socket().cancel(ignored);  // OnMonitor then reads the next request
    } else {
      ReadRequest();
    }
  }

  // After refusing a request whose body is unread: stop sending, and read and discard what the
  // client still sends for a moment before closing. Closing with unread bytes sends a reset,
  // which can destroy the refusal before the client reads it.
  void LingerClose() {
    closed_.store(true);
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    buffer_.clear();
    stream_.expires_after(std::chrono::seconds(1));
    stream_.async_read_some(buffer_.prepare(16384),
                            beast::bind_front_handler(&Session::OnLinger, shared_from_this()));
  }
  void OnLinger(beast::error_code ec, size_t n) {
    lingered_ += n;
    if (!ec && lingered_ < (4 << 20)) {
      stream_.async_read_some(buffer_.prepare(16384),
                              beast::bind_front_handler(&Session::OnLinger, shared_from_this()));
      return;
    }
    stream_.expires_never();
    CloseSocket();
  }

  void CloseSocket() {
    closed_.store(true);
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
    ReleaseConnection();
  }

  std::shared_ptr<net::io_context> ioc_;  // first: destroyed after the socket
  const std::string remote_;
  beast::tcp_stream stream_;
  std::shared_ptr<Shared> shared_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::function<void(uint64_t, beast::string_view, beast::error_code&)> on_chunk_header_;
  // Strand state.
  uint64_t seq_ = 0;  // current request
  State state_ = State::kNone;
  bool keep_alive_ = false;
  bool head_request_ = false;  // the current request is HEAD: headers only
  bool http11_ = true;
  bool response_done_ = false;  // the whole response is queued
  bool writing_ = false;
  bool monitoring_ = false;
  bool peer_eof_ = false;     // the client shut down its sending side
  bool probing_ = false;      // an error wait is posted (ProbePeer)
  bool over_budget_ = false;  // the body did not fit max_inflight_body_bytes
  bool linger_ = false;       // close with LingerClose
  bool released_ = false;     // num_connections no longer counts this session
  int64_t reserved_body_ = 0;
  int64_t lingered_ = 0;
  std::deque<std::string> out_;
  std::vector<std::string> in_flight_;
  std::atomic<bool> closed_{false};
};

class Responder final : public HttpResponder {
 public:
  using HttpResponder::Respond;
  Responder(std::shared_ptr<Session> session, uint64_t seq)
      : session_(std::move(session)), seq_(seq) {}
  void Respond(int status, const std::string& content_type, std::string body,
               const std::vector<std::string>& extra_headers) override {
    session_->OnStrand(
        seq_, [status, content_type, body = std::move(body), extra_headers](Session& s) mutable {
          s.DoRespond(status, content_type, std::move(body), extra_headers);
        });
  }
  void StartStream(int status, const std::string& content_type,
                   const std::vector<std::string>& extra_headers) override {
    session_->OnStrand(seq_, [status, content_type, extra_headers](Session& s) {
      s.DoStartStream(status, content_type, extra_headers);
    });
  }
  void Write(std::string data) override {
    session_->OnStrand(seq_, [data = std::move(data)](Session& s) { s.DoWrite(data); });
  }
  void EndStream() override {
    session_->OnStrand(seq_, [](Session& s) { s.DoEndStream(); });
  }
  bool closed() const override { return session_->closed(); }

 private:
  std::shared_ptr<Session> session_;
  uint64_t seq_;
};

std::shared_ptr<HttpResponder> Session::MakeResponder() {
  return std::make_shared<Responder>(shared_from_this(), seq_);
}

}  // namespace

std::string HttpRequest::Header(const std::string& name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return "";
}

struct HttpServer::Impl {
  std::shared_ptr<net::io_context> ioc_owner = std::make_shared<net::io_context>();
  net::io_context& ioc = *ioc_owner;
  net::executor_work_guard<net::io_context::executor_type> work{ioc.get_executor()};
  tcp::acceptor acceptor{ioc};
  net::steady_timer retry{ioc};
  std::shared_ptr<Shared> shared;
  std::vector<std::thread> threads;
  int port = 0;
  bool stopped = false;

  void Accept() {
    acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
      if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
      if (ec) {
        // Out of descriptors or similar: back off instead of spinning.
        retry.expires_after(std::chrono::milliseconds(50));
        retry.async_wait([this](beast::error_code wec) {
          if (!wec) Accept();
        });
        return;
      }
      const int max_connections = shared->options.max_connections;
      if (max_connections > 0 && shared->num_connections.load() >= max_connections) {
        RefuseConnection(std::move(socket), max_connections);
        Accept();
        return;
      }
      auto session = std::make_shared<Session>(ioc_owner, std::move(socket), shared);
      {
        std::lock_guard<std::mutex> lock(shared->mu);
        auto& all = shared->sessions;
        if (all.size() >= 64 && all.size() == all.capacity()) {
          all.erase(std::remove_if(all.begin(), all.end(),
                                   [](const std::weak_ptr<Session>& w) { return w.expired(); }),
                    all.end());
        }
        all.push_back(session);
      }
      session->Run();
      Accept();
    });
  }
};

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpServer::~HttpServer() { Stop(); }
int HttpServer::port() const { return impl_->port; }

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                              HttpHandler handler) {
  auto impl = std::make_unique<Impl>();
  impl->shared = std::make_shared<Shared>();
  impl->shared->options = options;
  impl->shared->handler = std::move(handler);
  std::string where = absl::StrCat(options.host, ":", options.port);
  beast::error_code ec;
  tcp::resolver resolver(impl->ioc);
  auto results =
      resolver.resolve(options.host, std::to_string(options.port), tcp::resolver::passive, ec);
  if (ec || results.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--host: cannot resolve '", options.host, "': ", ec.message()));
  }
  tcp::endpoint endpoint = results.begin()->endpoint();
  impl->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(endpoint, ec);
  if (!ec) impl->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", where, ": ", ec.message()));
  }
  impl->port = impl->acceptor.local_endpoint().port();
  impl->Accept();
  int n = std::max(1, options.num_io_threads);
  for (int i = 0; i < n; ++i) {
    impl->threads.emplace_back([ioc = &impl->ioc] { ioc->run(); });
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

void HttpServer::Stop() {
  if (impl_ == nullptr || impl_->stopped) return;
  impl_->stopped = true;
  net::post(impl_->ioc, [impl = impl_.get()] {
    beast::error_code ignored;
    impl->acceptor.close(ignored);
    impl->retry.cancel();
  });
  {
    std::lock_guard<std::mutex> lock(impl_->shared->mu);
    for (auto& w : impl_->shared->sessions) {
      if (auto session = w.lock()) session->CloseOnStrand();
    }
    impl_->shared->sessions.clear();
  }
  // With the acceptor and every socket closed, pending operations complete with errors and the
  // io threads run out of work.
  impl_->work.reset();
  for (std::thread& t : impl_->threads) t.join();
  impl_->threads.clear();
}

}  // namespace longview

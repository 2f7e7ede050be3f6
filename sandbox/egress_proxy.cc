// The egress proxy on Boost.Asio (C++20 coroutines) and Boost.Beast's HTTP parser. Everything
// runs on one io thread; the public calls post to it. The only file that sees Asio; its
// exceptions stop here.
#include "sandbox/egress_proxy.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <openssl/ssl.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "sandbox/proxy_target.h"

namespace corral::sandbox {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using asio::awaitable;
using asio::use_awaitable;
using Clock = std::chrono::steady_clock;

constexpr auto kConnectTimeout = std::chrono::seconds(15);
constexpr size_t kHeaderLimit = size_t{64} * 1024;
// A request inside an intercepted tunnel is read whole before it is sent on (an API call is small).
constexpr uint64_t kInterceptBodyLimit = uint64_t{64} << 20;

int64_t MsSince(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

// Loopback, private, link-local, unspecified, shared (CGNAT) and multicast addresses: what a
// name must not resolve to unless the policy names such a host itself.
bool IsInternal(const asio::ip::address& a) {
  if (a.is_v6()) {
    asio::ip::address_v6 v6 = a.to_v6();
    if (v6.is_v4_mapped()) return IsInternal(asio::ip::make_address_v4(asio::ip::v4_mapped, v6));
    auto b = v6.to_bytes();
    return v6.is_loopback() || v6.is_unspecified() || v6.is_link_local() || v6.is_site_local() ||
           v6.is_multicast() || (b[0] & 0xfe) == 0xfc;
  }
  auto b = a.to_v4().to_bytes();
  return b[0] == 127 || b[0] == 10 || b[0] == 0 || (b[0] == 172 && (b[1] & 0xf0) == 16) ||
         (b[0] == 192 && b[1] == 168) || (b[0] == 169 && b[1] == 254) ||
         (b[0] == 100 && (b[1] & 0xc0) == 64) || b[0] >= 224;
}

constexpr size_t kPipeSize = 1 << 20;
// What a connection's direction copies through a buffer before it turns to splice(2).
constexpr size_t kCopySize = size_t{16} * 1024;

// Replaces, in every header value of `fields` (a request or a response), each pair's first
// string by its second.
template <class Fields>
void ReplaceInHeaders(Fields& fields, const std::vector<std::pair<std::string, std::string>>& pairs) {
  std::vector<std::pair<std::string, std::string>> changed;
  for (const auto& field : fields) {
    std::string value(field.value());
    bool found = false;
    for (const auto& [from, to] : pairs) {
      for (size_t at = 0; (at = value.find(from, at)) != std::string::npos; at += to.size()) {
        value.replace(at, from.size(), to);
        found = true;
      }
    }
    if (found) changed.emplace_back(std::string(field.name_string()), std::move(value));
  }
  for (const auto& [name, value] : changed) fields.set(name, value);
}

// A pipe between two sockets for splice(2).
struct Pipe {
  int in = -1, out = -1;
  Pipe() {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return;
    out = fds[0];
    in = fds[1];
    fcntl(in, F_SETPIPE_SZ, static_cast<int>(kPipeSize));  // a bigger pipe, when allowed
  }
  ~Pipe() { Close(); }
  bool ok() const { return in >= 0; }
  void Close() {
    if (in >= 0) close(in);
    if (out >= 0) close(out);
    in = out = -1;
  }
};

std::string Response(int status, std::string_view reason, const std::string& body) {
  std::ostringstream os;
  os << "HTTP/1.1 " << status << ' ' << reason << "\r\nContent-Type: text/plain\r\n"
     << "Content-Length: " << body.size() << "\r\nConnection: close\r\n\r\n"
     << body;
  return os.str();
}

// A token bucket whose tokens may go negative: each request reserves one and waits until it is
// paid for, so waiting requests keep their order.
struct Budget {
  double capacity = 0;
  double per_ms = 0;  // tokens added per millisecond
  double tokens = 0;
  Clock::time_point last = Clock::now();

  std::chrono::milliseconds Reserve() {
    Clock::time_point now = Clock::now();
    tokens = std::min(
        capacity, tokens + per_ms * std::chrono::duration<double, std::milli>(now - last).count());
    last = now;
    tokens -= 1;
    if (tokens >= 0) return std::chrono::milliseconds(0);
    return std::chrono::milliseconds(static_cast<int64_t>(-tokens / per_ms) + 1);
  }
};

}  // namespace

struct EgressProxy::Impl {
  struct Server {
    uint64_t id;
    EgressClient client;
    std::unique_ptr<tcp::acceptor> acceptor;
    std::set<std::shared_ptr<tcp::socket>> sockets;  // open connections, both sides
    int active = 0;                                  // connection coroutines still running
    bool stopped = false;
  };

  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(io);
  Sink sink;
  std::map<std::string, Budget> budgets;
  std::map<uint64_t, std::shared_ptr<Server>> servers;
  uint64_t next_id = 1;
  std::mutex mu;  // guards next_id and the stop handshake
  std::condition_variable stopped;
  std::thread thread;

  awaitable<void> Accept(std::shared_ptr<Server> server);
  awaitable<void> Handle(std::shared_ptr<Server> server, std::shared_ptr<tcp::socket> client);
  awaitable<void> Pump(std::shared_ptr<tcp::socket> from, std::shared_ptr<tcp::socket> to,
                       uint64_t* count, int* status);
  // A CONNECT tunnel to a secrets.inject host: TLS ends here on both sides, and each request's
  // headers get the secrets' values in place of their placeholders.
  awaitable<void> Intercept(std::shared_ptr<Server> server, std::shared_ptr<tcp::socket> client,
                            std::shared_ptr<tcp::socket> upstream, std::string host,
                            uint16_t port, std::vector<std::pair<std::string, std::string>> swaps,
                            EgressRecord* rec);
  void Finish(Server& server, const EgressRecord& record);
};

// Coroutines take their shared_ptrs by value: the frame must own what it uses across awaits.
// NOLINTNEXTLINE(performance-unnecessary-value-param)
awaitable<void> EgressProxy::Impl::Accept(std::shared_ptr<Server> server) {
  while (!server->stopped) {
    auto socket = std::make_shared<tcp::socket>(io);
    try {
      co_await server->acceptor->async_accept(*socket, use_awaitable);
    } catch (const std::exception&) {
      co_return;  // the listener was closed
    }
    server->sockets.insert(socket);
    boost::system::error_code ignored;
    (void)socket->set_option(tcp::no_delay(true), ignored);
    {
      std::lock_guard lock(mu);
      ++server->active;
    }
    asio::co_spawn(io, Handle(server, socket), asio::detached);
  }
}

awaitable<void> EgressProxy::Impl::Pump(
    std::shared_ptr<tcp::socket> from,  // NOLINT(performance-unnecessary-value-param)
    std::shared_ptr<tcp::socket> to,    // NOLINT(performance-unnecessary-value-param)
    uint64_t* count, int* status) {
  try {
    // Small exchanges (a request, its answer) go through a buffer: one read and one write each.
    // A read that fills the buffer starts a bulk transfer, and the rest moves through a pipe with
    // splice(2): the kernel hands the pages from one socket to the other without copying them
    // through this process. A pipe per direction costs four system calls, so only bulk gets one.
    std::vector<char> data(kCopySize);
    std::string head;  // plain HTTP: the response's first bytes, for its status
    for (;;) {
      size_t n = co_await from->async_read_some(asio::buffer(data), use_awaitable);
      if (status && *status == 0 && head.size() < 16) {
        head.append(data.data(), std::min(n, 16 - head.size()));
        // "HTTP/1.1 200 ..."
        if (head.size() >= 12 && head.starts_with("HTTP/")) *status = std::atoi(head.c_str() + 9);
      }
      co_await asio::async_write(*to, asio::buffer(data, n), use_awaitable);
      *count += n;
      if (n == data.size() && (!status || *status != 0 || head.size() >= 16)) break;
    }
    Pipe pipe;
    from->native_non_blocking(true);
    to->native_non_blocking(true);
    while (pipe.ok()) {
      ssize_t n = splice(from->native_handle(), nullptr, pipe.in, nullptr, kPipeSize,
                         SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n == 0) break;
      if (n < 0 && errno == EAGAIN) {
        co_await from->async_wait(tcp::socket::wait_read, use_awaitable);
        continue;
      }
      if (n < 0) {
        if (errno != EINVAL && errno != ENOSYS) break;
        pipe.Close();  // this kernel cannot splice these sockets: copy instead
        break;
      }
      for (ssize_t left = n; left > 0;) {
        ssize_t m = splice(pipe.out, nullptr, to->native_handle(), nullptr,
                           static_cast<size_t>(left), SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (m < 0 && errno == EAGAIN) {
          co_await to->async_wait(tcp::socket::wait_write, use_awaitable);
          continue;
        }
        if (m <= 0) co_return;  // the other side is gone
        left -= m;
      }
      *count += static_cast<uint64_t>(n);
    }
    if (!pipe.ok()) {
      data.resize(kPipeSize);
      for (;;) {
        size_t n = co_await from->async_read_some(asio::buffer(data), use_awaitable);
        co_await asio::async_write(*to, asio::buffer(data, n), use_awaitable);
        *count += n;
      }
    }
  } catch (const std::exception&) {
  }
  boost::system::error_code ec;
  (void)to->shutdown(tcp::socket::shutdown_send, ec);
}

// NOLINTBEGIN(performance-unnecessary-value-param): the frame owns what it uses across awaits
awaitable<void> EgressProxy::Impl::Intercept(
    std::shared_ptr<Server> server, std::shared_ptr<tcp::socket> client,
    std::shared_ptr<tcp::socket> upstream, std::string host, uint16_t port,
    std::vector<std::pair<std::string, std::string>> swaps, EgressRecord* rec) {
  // NOLINTEND(performance-unnecessary-value-param)
  namespace ssl = asio::ssl;
  try {
    auto native = server->client.ca->ServerContext(host);
    if (!native) {
      rec->reason = native.error().message;
      co_return;
    }
    co_await asio::async_write(
        *client, asio::buffer(std::string_view("HTTP/1.1 200 Connection established\r\n\r\n")),
        use_awaitable);
    SSL_CTX_up_ref(*native);  // the asio context below takes a reference of its own
    ssl::context down_ctx(*native);
    ssl::stream<tcp::socket&> down(*client, down_ctx);
    co_await down.async_handshake(ssl::stream_base::server, use_awaitable);

    ssl::context up_ctx(ssl::context::tls_client);
    up_ctx.set_default_verify_paths();
    up_ctx.set_verify_mode(ssl::verify_peer);
    ssl::stream<tcp::socket&> up(*upstream, up_ctx);
    SSL_set_tlsext_host_name(up.native_handle(), host.c_str());
    static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    SSL_set_alpn_protos(up.native_handle(), kHttp11, sizeof(kHttp11));
    up.set_verify_callback(ssl::host_name_verification(host));
    boost::system::error_code hs;
    co_await up.async_handshake(ssl::stream_base::client, asio::redirect_error(use_awaitable, hs));
    if (hs) {
      long verify = SSL_get_verify_result(up.native_handle());
      rec->reason = "TLS to " + host + ": " +
                    (verify != X509_V_OK ? X509_verify_cert_error_string(verify) : hs.message());
      co_return;
    }

    std::vector<std::pair<std::string, std::string>> unswaps;  // value -> placeholder
    unswaps.reserve(swaps.size());
    for (const auto& [placeholder, secret] : swaps) unswaps.emplace_back(secret, placeholder);
    boost::beast::flat_buffer down_buf, up_buf;
    for (;;) {
      http::request_parser<http::string_body> reqp;
      reqp.header_limit(kHeaderLimit);
      reqp.body_limit(kInterceptBodyLimit);
      boost::system::error_code ec;
      co_await http::async_read(down, down_buf, reqp, asio::redirect_error(use_awaitable, ec));
      if (ec) break;  // the client is done (or sent what is not HTTP/1.1)
      http::request<http::string_body> req = reqp.release();
      // The request goes to the host of the tunnel and no other: an absolute-form target or
      // another Host header could route it (and the value) elsewhere behind a shared front.
      if (req.target().empty() || req.target()[0] != '/') {
        rec->reason = "intercepted tunnel: a request target that is not a path";
        break;
      }
      req.set(http::field::host, port == 443 ? host : host + ":" + std::to_string(port));
      // The body is sent whole; a 100 Continue would put the exchange out of step.
      req.erase(http::field::expect);
      ReplaceInHeaders(req, swaps);
      std::ostringstream head;
      head << req.base();
      rec->bytes_up += head.str().size() + req.body().size();
      co_await http::async_write(up, req, use_awaitable);

      // The response streams back as it comes (server-sent events included). Interim (1xx)
      // responses go back as they are, and the final one is read after them.
      std::optional<http::response_parser<http::buffer_body>> parser;
      for (;;) {
        parser.emplace();
        parser->body_limit(std::numeric_limits<std::uint64_t>::max());  // none: Beast 1.74 reads it as 0
        parser->skip(req.method() == http::verb::head);
        co_await http::async_read_header(up, up_buf, *parser, use_awaitable);
        unsigned status = parser->get().result_int();
        if (status < 100 || status >= 200 || status == 101) break;
        std::ostringstream interim;
        interim << parser->get().base();
        co_await asio::async_write(down, asio::buffer(interim.str()), use_awaitable);
      }
      http::response_parser<http::buffer_body>& resp = *parser;
      rec->status = resp.get().result_int();
      // A server that echoes a header (CORS, an error message) does not hand the agent a value:
      // it gets the placeholder back.
      ReplaceInHeaders(resp.get(), unswaps);
      http::serializer<false, http::buffer_body> sr{resp.get()};
      std::array<char, 16384> chunk;
      do {
        if (!resp.is_done()) {
          resp.get().body().data = chunk.data();
          resp.get().body().size = chunk.size();
          co_await http::async_read(up, up_buf, resp, asio::redirect_error(use_awaitable, ec));
          if (ec == http::error::need_buffer) ec = {};
          if (ec) throw boost::system::system_error(ec);
          resp.get().body().size = chunk.size() - resp.get().body().size;
          resp.get().body().data = chunk.data();
          resp.get().body().more = !resp.is_done();
          rec->bytes_down += resp.get().body().size;
        } else {
          resp.get().body().data = nullptr;
          resp.get().body().size = 0;
        }
        co_await http::async_write(down, sr, asio::redirect_error(use_awaitable, ec));
        if (ec == http::error::need_buffer) ec = {};
        if (ec) throw boost::system::system_error(ec);
      } while (!resp.is_done() && !sr.is_done());
      if (!req.keep_alive() || !resp.get().keep_alive()) break;
    }
    boost::system::error_code ignored;
    co_await down.async_shutdown(asio::redirect_error(use_awaitable, ignored));
  } catch (const std::exception& e) {
    if (rec->reason.empty()) rec->reason = std::string("intercepted tunnel: ") + e.what();
  }
}

void EgressProxy::Impl::Finish(Server& server, const EgressRecord& record) {
  if (sink) sink(record);
  std::lock_guard lock(mu);
  --server.active;
  stopped.notify_all();
}

awaitable<void> EgressProxy::Impl::Handle(
    std::shared_ptr<Server> server,         // NOLINT(performance-unnecessary-value-param)
    std::shared_ptr<tcp::socket> client) {  // NOLINT(performance-unnecessary-value-param)
  Clock::time_point start = Clock::now();
  EgressRecord rec;
  rec.client = server->client.name;
  auto refuse = [&](int status, std::string_view reason,
                    const std::string& why) -> awaitable<void> {
    rec.reason = why;
    std::string body = "corral: " + why + "\n";
    try {
      co_await asio::async_write(*client, asio::buffer(Response(status, reason, body)),
                                 use_awaitable);
    } catch (const std::exception&) {
    }
  };
  boost::beast::flat_buffer buffer;
  http::request_parser<http::empty_body> parser;
  parser.header_limit(kHeaderLimit);
  bool parsed = true;
  try {
    co_await http::async_read_header(*client, buffer, parser, use_awaitable);
  } catch (const std::exception&) {
    parsed = false;
  }
  if (!parsed) {
    // Not HTTP (a direct TLS hello, garbage) or closed before a request: said and recorded.
    co_await refuse(400, "Bad Request", "not an HTTP proxy request");
  } else {
    http::request<http::empty_body> req = parser.release();
    rec.method = std::string(req.method_string().data(), req.method_string().size());
    bool tunnel = req.method() == http::verb::connect;
    ProxyTarget target =
        ParseProxyTarget(req.method() == http::verb::connect,
                         std::string_view(req.target().data(), req.target().size()));
    rec.host = target.host;
    rec.port = target.port;
    std::optional<bool> verdict;
    if (target.error.empty()) verdict = server->client.check(target.host, target.port);
    tcp::resolver resolver(io);
    auto upstream = std::make_shared<tcp::socket>(io);
    std::vector<tcp::endpoint> endpoints;
    std::string failure;
    int status = 403;
    if (!target.error.empty()) {
      failure = target.error;
      status = 400;
    } else if (!verdict) {
      failure = "the policy '" + server->client.policy + "' does not allow " + target.host + ":" +
                std::to_string(target.port) + " (network.egress)";
    } else {
      if (auto it = budgets.find(target.host); it != budgets.end()) {
        auto wait = it->second.Reserve();
        if (wait.count() > 0) {
          asio::steady_timer timer(io, wait);
          try {
            co_await timer.async_wait(use_awaitable);
          } catch (const std::exception&) {
          }
          rec.waited_ms = wait.count();
        }
      }
      boost::system::error_code ec;
      asio::ip::address literal = asio::ip::make_address(target.host, ec);
      std::string internal;
      if (!ec) {
        endpoints.emplace_back(literal, target.port);
      } else {
        try {
          auto results = co_await resolver.async_resolve(target.host, std::to_string(target.port),
                                                         use_awaitable);
          for (const auto& r : results) endpoints.push_back(r.endpoint());
        } catch (const std::exception&) {
          failure = "cannot resolve " + target.host;
          status = 502;
        }
      }
      if (!*verdict) {
        std::erase_if(endpoints, [&](const tcp::endpoint& e) {
          if (!IsInternal(e.address())) return false;
          internal = e.address().to_string();
          return true;
        });
      }
      if (failure.empty() && endpoints.empty()) {
        failure = target.host + " resolves to an internal address (" + internal +
                  "), which the policy does not name (network.egress)";
      }
    }
    if (failure.empty()) {
      // Connects to the first address that answers, within kConnectTimeout.
      asio::steady_timer deadline(io, kConnectTimeout);
      deadline.async_wait([upstream](boost::system::error_code e) {
        if (!e) upstream->close();
      });
      try {
        tcp::endpoint e = co_await asio::async_connect(*upstream, endpoints, use_awaitable);
        rec.address = e.address().to_string();
        boost::system::error_code ignored;
        (void)upstream->set_option(tcp::no_delay(true), ignored);
      } catch (const std::exception& e) {
        failure = "cannot connect to " + target.host + ":" + std::to_string(target.port) + ": " +
                  e.what();
        status = 502;
      }
      deadline.cancel();
    }
    if (!failure.empty()) {
      co_await refuse(status,
                      status == 403   ? "Forbidden"
                      : status == 400 ? "Bad Request"
                                      : "Bad Gateway",
                      failure);
      rec.allowed = false;
    } else {
      rec.allowed = true;
      server->sockets.insert(upstream);
      std::vector<std::pair<std::string, std::string>> swaps;
      if (tunnel && server->client.inject && server->client.ca) {
        swaps = server->client.inject(target.host, target.port);
      }
      if (!swaps.empty()) {
        co_await Intercept(server, client, upstream, target.host, target.port, std::move(swaps),
                           &rec);
        boost::system::error_code ignored;
        (void)upstream->close(ignored);
        server->sockets.erase(upstream);
        (void)client->close(ignored);
        server->sockets.erase(client);
        rec.ms = MsSince(start);
        Finish(*server, rec);
        co_return;
      }
      std::string first;
      if (tunnel) {
        first = "HTTP/1.1 200 Connection established\r\n\r\n";
      } else {
        // Origin form to the server, one request per connection.
        req.target(target.path);
        req.erase(http::field::proxy_authorization);
        req.erase("Proxy-Connection");
        req.set(http::field::connection, "close");
        std::ostringstream os;
        os << req.base();
        first = os.str();
      }
      try {
        if (tunnel) {
          co_await asio::async_write(*client, asio::buffer(first), use_awaitable);
        } else {
          co_await asio::async_write(*upstream, asio::buffer(first), use_awaitable);
          rec.bytes_up += first.size();
        }
        // What the client sent beyond the request head.
        if (buffer.size() > 0) {
          co_await asio::async_write(*upstream, buffer.data(), use_awaitable);
          rec.bytes_up += buffer.size();
        }
      } catch (const std::exception&) {
      }
      // Both directions until each side has finished sending.
      auto up_done = std::make_shared<asio::steady_timer>(io, Clock::time_point::max());
      auto up_finished = std::make_shared<bool>(false);
      asio::co_spawn(io, Pump(client, upstream, &rec.bytes_up, nullptr),
                     [up_done, up_finished](const std::exception_ptr&) {
                       *up_finished = true;
                       up_done->cancel();
                     });
      co_await Pump(upstream, client, &rec.bytes_down, tunnel ? nullptr : &rec.status);
      if (!tunnel) {
        // The response has ended (the request said Connection: close): so has the exchange.
        boost::system::error_code ec;
        (void)client->shutdown(tcp::socket::shutdown_both, ec);
        (void)upstream->close(ec);
      }
      if (!*up_finished) {
        try {
          co_await up_done->async_wait(use_awaitable);
        } catch (const std::exception&) {
        }
      }
      server->sockets.erase(upstream);
    }
  }
  boost::system::error_code ec;
  (void)client->close(ec);
  server->sockets.erase(client);
  rec.ms = MsSince(start);
  Finish(*server, rec);
}

EgressProxy::EgressProxy(Sink sink) : impl_(std::make_unique<Impl>()) {
  impl_->sink = std::move(sink);
  impl_->thread = std::thread([impl = impl_.get()] { impl->io.run(); });
}

EgressProxy::~EgressProxy() {
  impl_->work.reset();
  impl_->io.stop();
  impl_->thread.join();
}

void EgressProxy::SetRate(const std::string& host, uint32_t requests,
                          std::chrono::milliseconds per) {
  if (requests == 0 || per.count() <= 0) return;
  asio::post(impl_->io, [impl = impl_.get(), host, requests, per] {
    Budget b;
    b.capacity = requests;
    b.tokens = requests;
    b.per_ms = static_cast<double>(requests) / static_cast<double>(per.count());
    auto [it, fresh] = impl->budgets.try_emplace(host, b);
    // Two policies budgeting one host: the stricter budget holds for both.
    if (!fresh && b.per_ms < it->second.per_ms) it->second = b;
  });
}

uint64_t EgressProxy::Serve(int listener, EgressClient client) {
  uint64_t id;
  {
    std::lock_guard lock(impl_->mu);
    id = impl_->next_id++;
  }
  asio::post(impl_->io, [impl = impl_.get(), id, listener, client = std::move(client)]() mutable {
    auto server = std::make_shared<Impl::Server>();
    server->id = id;
    server->client = std::move(client);
    server->acceptor = std::make_unique<tcp::acceptor>(impl->io);
    boost::system::error_code ec;
    (void)server->acceptor->assign(tcp::v4(), listener, ec);
    impl->servers[id] = server;
    if (ec) return;
    asio::co_spawn(impl->io, impl->Accept(server), asio::detached);
  });
  return id;
}

void EgressProxy::Stop(uint64_t id) {
  std::shared_ptr<Impl::Server> server;
  std::mutex done_mu;
  std::condition_variable done_cv;
  bool closed = false;
  asio::post(impl_->io, [&] {
    auto it = impl_->servers.find(id);
    if (it != impl_->servers.end()) {
      server = it->second;
      impl_->servers.erase(it);
      server->stopped = true;
      boost::system::error_code ec;
      (void)server->acceptor->close(ec);
      for (const auto& s : server->sockets) (void)s->close(ec);
    }
    std::lock_guard lock(done_mu);
    closed = true;
    done_cv.notify_all();
  });
  {
    std::unique_lock lock(done_mu);
    done_cv.wait(lock, [&] { return closed; });
  }
  if (!server) return;
  // The connections end on the io thread and report themselves; wait for the last one.
  std::unique_lock lock(impl_->mu);
  impl_->stopped.wait_for(lock, std::chrono::seconds(5), [&] { return server->active == 0; });
}

}  // namespace corral::sandbox

#include "launcher/trace.h"

#include <fcntl.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <utility>  // Boost 1.74's Asio uses std::exchange without it

#include "launcher/crypto.h"
#include "launcher/version.h"
#include "sandbox/proxy_target.h"

namespace corral::launcher {
namespace {

using nlohmann::json;

std::string RandomHex(size_t bytes) {
  std::random_device rd;
  std::string raw;
  while (raw.size() < bytes) {
    uint32_t v = rd();
    for (int i = 0; i < 4 && raw.size() < bytes; ++i) raw += static_cast<char>(v >> (8 * i));
  }
  std::string hex = ToHex(raw);
  // All zeros is not a valid id.
  if (hex.find_first_not_of('0') == std::string::npos) hex.back() = '1';
  return hex;
}

}  // namespace

Tracer::Tracer(std::string path, std::string trace_id, std::string endpoint)
    : path_(std::move(path)), trace_id_(std::move(trace_id)), endpoint_(std::move(endpoint)) {
  while (!endpoint_.empty() && endpoint_.back() == '/') endpoint_.pop_back();
}

std::string Tracer::NewTraceId() { return RandomHex(16); }
std::string Tracer::NewSpanId() { return RandomHex(8); }

uint64_t Tracer::NowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

Span Tracer::Start(const std::string& name, const std::string& parent_id,
                   std::map<std::string, std::string> attributes) const {
  return Span{name, NewSpanId(), parent_id, NowNs(), std::move(attributes)};
}

std::string Tracer::TraceParent(const Span& span) const {
  return "00-" + trace_id_ + "-" + span.span_id + "-01";
}

std::string Tracer::Encode(const std::string& trace_id, const Span& span, uint64_t end_ns,
                           const std::string& error) {
  json attributes = json::array();
  for (const auto& [key, value] : span.attributes) {
    attributes.push_back({{"key", key}, {"value", {{"stringValue", value}}}});
  }
  // The OTLP/JSON rules: ids in hex, 64-bit integers as strings, enums as their numbers.
  json s = {{"traceId", trace_id},
            {"spanId", span.span_id},
            {"name", span.name},
            {"kind", 1},  // SPAN_KIND_INTERNAL
            {"startTimeUnixNano", std::to_string(span.start_ns)},
            {"endTimeUnixNano", std::to_string(end_ns)},
            {"attributes", attributes},
            {"status", error.empty() ? json{{"code", 1}}  // STATUS_CODE_OK
                                     : json{{"code", 2}, {"message", error}}}};
  if (!span.parent_id.empty()) s["parentSpanId"] = span.parent_id;
  json request = {
      {"resourceSpans",
       {{{"resource",
          {{"attributes", {{{"key", "service.name"}, {"value", {{"stringValue", "corral"}}}}}}}},
         {"scopeSpans",
          {{{"scope", {{"name", "corral"}, {"version", kVersion}}}, {"spans", {s}}}}}}}}};
  return request.dump(-1, ' ', false, json::error_handler_t::replace);
}

void Tracer::End(const Span& span, const std::string& error) {
  std::string line = Encode(trace_id_, span, NowNs(), error);
  std::lock_guard lock(mu_);
  int fd = open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd >= 0) {
    std::string l = line + "\n";
    (void)!write(fd, l.data(), l.size());
    close(fd);
  }
  if (endpoint_.empty()) return;
  std::string failure = PostJson(endpoint_ + "/v1/traces", line);
  if (!failure.empty() && !warned_) {
    warned_ = true;
    std::fprintf(stderr, "corral: OTEL_EXPORTER_OTLP_ENDPOINT: %s (spans stay in %s)\n",
                 failure.c_str(), path_.c_str());
  }
}

std::string PostJson(const std::string& url, const std::string& body) {
  namespace asio = boost::asio;
  namespace http = boost::beast::http;
  sandbox::ProxyTarget t = sandbox::ParseProxyTarget(false, url);
  if (!t.error.empty()) return url + ": only http://host[:port]/path endpoints are supported";
  try {
    asio::io_context io;
    asio::ip::tcp::resolver resolver(io);
    boost::beast::tcp_stream stream(io);
    stream.expires_after(std::chrono::seconds(5));
    stream.connect(resolver.resolve(t.host, std::to_string(t.port)));
    http::request<http::string_body> req(http::verb::post, t.path, 11);
    req.set(http::field::host, t.host + ":" + std::to_string(t.port));
    req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    http::write(stream, req);
    boost::beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(stream, buffer, res);
    boost::system::error_code ec;
    (void)stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    if (res.result_int() / 100 != 2) return url + ": HTTP " + std::to_string(res.result_int());
  } catch (const std::exception& e) {
    return url + ": " + e.what();
  }
  return "";
}

}  // namespace corral::launcher

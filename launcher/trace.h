// OpenTelemetry traces of a run: spans for the run, each task and try, and their steps
// (worktree, setup, agent, commit, merge), written to trace.otlp.jsonl as OTLP/JSON (one
// ExportTraceServiceRequest per line, as the Collector's otlpjsonfile receiver reads it) and,
// with OTEL_EXPORTER_OTLP_ENDPOINT set, POSTed to its /v1/traces (OTLP/HTTP, JSON; http only).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace corral::launcher {

struct Span {
  std::string name;
  std::string span_id;    // 16 hex digits
  std::string parent_id;  // empty for the root
  uint64_t start_ns = 0;  // Unix time
  std::map<std::string, std::string> attributes;
};

class Tracer {
 public:
  // `trace_id` (32 hex digits) ties every span of a run together, across resumes.
  Tracer(std::string path, std::string trace_id, std::string endpoint);

  static std::string NewTraceId();
  static std::string NewSpanId();
  static uint64_t NowNs();

  const std::string& trace_id() const { return trace_id_; }
  Span Start(const std::string& name, const std::string& parent_id,
             std::map<std::string, std::string> attributes = {}) const;
  // Ends the span now (error: status ERROR with that message) and writes it. Thread-safe.
  void End(const Span& span, const std::string& error = {});
  // W3C traceparent for a process that continues `span`.
  std::string TraceParent(const Span& span) const;

  // One span as one ExportTraceServiceRequest in OTLP/JSON.
  static std::string Encode(const std::string& trace_id, const Span& span, uint64_t end_ns,
                            const std::string& error);

 private:
  std::string path_, trace_id_, endpoint_;
  std::mutex mu_;
  bool warned_ = false;
};

// Posts `body` (JSON) to `url` (http://host[:port][/path]); an error message, or "".
std::string PostJson(const std::string& url, const std::string& body);

}  // namespace corral::launcher

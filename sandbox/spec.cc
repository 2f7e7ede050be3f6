// Spec and Result as JSON, the format corral and its helper process exchange. The only file of
// corral::sandbox that sees nlohmann::json; its exceptions stop here.
#include <csignal>
#include <cstring>

#include <nlohmann/json.hpp>

#include "sandbox/spec.h"

namespace corral::sandbox {

using nlohmann::json;

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Bind, path, writable)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Protected, path, directory)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(FileBind, path, source)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ArgCompare, index, op, mask, value)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(SyscallRule, name, error, args)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Denial, syscall, count)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ExecRecord, pid, ppid, path, argv, cwd, at_ms, end, exit_code,
                                   signal)

namespace {

json Ms(const std::optional<std::chrono::milliseconds>& d) {
  return d ? json(d->count()) : json(nullptr);
}
std::optional<std::chrono::milliseconds> MsFrom(const json& j) {
  if (j.is_null()) return std::nullopt;
  return std::chrono::milliseconds(j.get<int64_t>());
}
json Opt(const std::optional<uint64_t>& v) { return v ? json(*v) : json(nullptr); }
std::optional<uint64_t> OptFrom(const json& j) {
  if (j.is_null()) return std::nullopt;
  return j.get<uint64_t>();
}

}  // namespace

std::string ToJson(const Spec& s) {
  json limits = {{"wall_time", Ms(s.limits.wall_time)},   {"cpu_time", Ms(s.limits.cpu_time)},
                 {"memory", Opt(s.limits.memory)},        {"pids", Opt(s.limits.pids)},
                 {"file_size", Opt(s.limits.file_size)},  {"open_files", Opt(s.limits.open_files)},
                 {"tmp_size", s.limits.tmp_size},         {"kill_grace", s.limits.kill_grace.count()}};
  json j = {{"argv", s.argv},          {"env", s.env},
            {"workspace", s.workspace}, {"workspace_read_only", s.workspace_read_only},
            {"workspace_lower", s.workspace_lower},
            {"workspace_overlay_work", s.workspace_overlay_work},
            {"cwd", s.cwd},
            {"binds", s.binds},        {"protect", s.protect},
            {"hide", s.hide},          {"files", s.files},
            {"share_network", s.share_network},
            {"exec_allow", s.exec_allow ? json(*s.exec_allow) : json(nullptr)},
            {"limits", limits},        {"syscalls", s.syscalls},
            {"hostname", s.hostname},
            {"observe_exec", s.observe_exec},
            {"proxy_port", s.proxy_port},
            {"kvm", s.kvm}};
  return j.dump();
}

Expected<Spec> SpecFromJson(const std::string& text) {
  try {
    json j = json::parse(text);
    Spec s;
    j.at("argv").get_to(s.argv);
    j.at("env").get_to(s.env);
    j.at("workspace").get_to(s.workspace);
    j.at("workspace_read_only").get_to(s.workspace_read_only);
    j.at("workspace_lower").get_to(s.workspace_lower);
    j.at("workspace_overlay_work").get_to(s.workspace_overlay_work);
    j.at("cwd").get_to(s.cwd);
    j.at("binds").get_to(s.binds);
    j.at("protect").get_to(s.protect);
    j.at("hide").get_to(s.hide);
    j.at("files").get_to(s.files);
    j.at("share_network").get_to(s.share_network);
    if (!j.at("exec_allow").is_null()) s.exec_allow = j.at("exec_allow").get<std::vector<std::string>>();
    const json& l = j.at("limits");
    s.limits.wall_time = MsFrom(l.at("wall_time"));
    s.limits.cpu_time = MsFrom(l.at("cpu_time"));
    s.limits.memory = OptFrom(l.at("memory"));
    s.limits.pids = OptFrom(l.at("pids"));
    s.limits.file_size = OptFrom(l.at("file_size"));
    s.limits.open_files = OptFrom(l.at("open_files"));
    l.at("tmp_size").get_to(s.limits.tmp_size);
    s.limits.kill_grace = std::chrono::milliseconds(l.at("kill_grace").get<int64_t>());
    j.at("syscalls").get_to(s.syscalls);
    j.at("observe_exec").get_to(s.observe_exec);
    j.at("proxy_port").get_to(s.proxy_port);
    j.at("hostname").get_to(s.hostname);
    j.at("kvm").get_to(s.kvm);
    return s;
  } catch (const json::exception& e) {
    return Fail(std::string("bad sandbox spec: ") + e.what());
  }
}

std::string ToJson(const Result& r) {
  json j = {{"exited", r.exited},
            {"exit_code", r.exit_code},
            {"signal", r.signal},
            {"exec_errno", r.exec_errno},
            {"timed_out", r.timed_out},
            {"cpu_limit_hit", r.cpu_limit_hit},
            {"oom_killed", r.oom_killed},
            {"stop_signal", r.stop_signal},
            {"denials", r.denials},
            {"last_denied", r.last_denied},
            {"wall_time_ms", r.wall_time.count()},
            {"cpu_time_ms", r.cpu_time.count()},
            {"peak_memory", r.peak_memory},
            {"notes", r.notes},
            {"execs", r.execs},
            {"execs_dropped", r.execs_dropped}};
  // Arguments need not be UTF-8; the odd byte becomes U+FFFD rather than an exception.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Expected<Result> ResultFromJson(const std::string& text) {
  try {
    json j = json::parse(text);
    Result r;
    j.at("exited").get_to(r.exited);
    j.at("exit_code").get_to(r.exit_code);
    j.at("signal").get_to(r.signal);
    j.at("exec_errno").get_to(r.exec_errno);
    j.at("timed_out").get_to(r.timed_out);
    j.at("cpu_limit_hit").get_to(r.cpu_limit_hit);
    j.at("oom_killed").get_to(r.oom_killed);
    j.at("stop_signal").get_to(r.stop_signal);
    j.at("denials").get_to(r.denials);
    j.at("last_denied").get_to(r.last_denied);
    r.wall_time = std::chrono::milliseconds(j.at("wall_time_ms").get<int64_t>());
    r.cpu_time = std::chrono::milliseconds(j.at("cpu_time_ms").get<int64_t>());
    j.at("peak_memory").get_to(r.peak_memory);
    j.at("notes").get_to(r.notes);
    j.at("execs").get_to(r.execs);
    j.at("execs_dropped").get_to(r.execs_dropped);
    return r;
  } catch (const json::exception& e) {
    return Fail(std::string("bad sandbox result: ") + e.what());
  }
}

int Result::ExitStatus() const {
  if (timed_out) return 124;
  if (exec_errno != 0) return exec_errno == ENOENT ? 127 : 126;
  if (exited) return exit_code;
  return 128 + signal;
}

std::string Result::Describe() const {
  std::string out;
  if (exec_errno != 0) {
    out = std::string("could not execute the command: ") + std::strerror(exec_errno);
  } else if (exited) {
    out = "exited with status " + std::to_string(exit_code);
  } else {
    const char* name = sigabbrev_np(signal);
    out = std::string("killed by SIG") + (name ? name : std::to_string(signal).c_str());
  }
  if (timed_out) out += " (wall-time limit: limits.wall_time)";
  if (cpu_limit_hit) out += " (cpu-time limit: limits.cpu_time)";
  if (oom_killed) out += " (out of memory: limits.memory)";
  if (!exited && signal == SIGSYS) out += " (seccomp refused a foreign-architecture system call)";
  if (!denials.empty()) {
    out += "; the sandbox denied ";
    for (size_t i = 0; i < denials.size(); ++i) {
      out += (i ? ", " : "") + denials[i].syscall + " (" + std::to_string(denials[i].count) + "x)";
    }
  }
  return out;
}

}  // namespace corral::sandbox

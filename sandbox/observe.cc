#include "sandbox/observe.h"

#include <sys/uio.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace corral::sandbox::observe {
namespace {

constexpr size_t kMaxArgs = 1024;
constexpr size_t kMaxArgBytes = 8192;
constexpr uint64_t kPage = 4096;

// Reads up to `len` bytes at `addr` of process `pid`, never across a page it cannot read.
size_t ReadMemory(int pid, uint64_t addr, char* out, size_t len) {
  size_t done = 0;
  while (done < len) {
    size_t chunk = std::min<uint64_t>(len - done, kPage - (addr + done) % kPage);
    iovec local = {out + done, chunk};
    // An address in the other process, never dereferenced here.
    iovec remote = {reinterpret_cast<void*>(addr + done), chunk};  // NOLINT(performance-no-int-to-ptr)
    ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

std::string ReadString(int pid, uint64_t addr) {
  std::string out;
  char buf[256];
  while (addr != 0 && out.size() < kMaxArgBytes) {
    size_t want = std::min<uint64_t>(sizeof(buf), kPage - addr % kPage);
    size_t n = ReadMemory(pid, addr, buf, want);
    if (n == 0) break;
    size_t end = 0;
    while (end < n && buf[end] != '\0') ++end;
    out.append(buf, end);
    if (end < n) return out;
    addr += n;
  }
  return out;
}

std::vector<std::string> ReadArgv(int pid, uint64_t addr) {
  std::vector<std::string> argv;
  while (addr != 0 && argv.size() < kMaxArgs) {
    uint64_t ptr = 0;
    if (ReadMemory(pid, addr, reinterpret_cast<char*>(&ptr), sizeof(ptr)) != sizeof(ptr)) break;
    if (ptr == 0) break;
    argv.push_back(ReadString(pid, ptr));
    addr += sizeof(ptr);
  }
  return argv;
}

// A field of /proc/PID/status ("PPid:", "NSpid:"), its words.
std::vector<std::string> StatusField(int pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (!line.starts_with(field)) continue;
    std::istringstream words(line.substr(field.size()));
    std::vector<std::string> out;
    for (std::string w; words >> w;) out.push_back(w);
    return out;
  }
  return {};
}

// The pid in the sandbox's namespace: the last NSpid; 0 when the process is not in a nested
// namespace (the supervisor, for the sandbox's own pid 1).
int InnerPid(int pid) {
  std::vector<std::string> ns = StatusField(pid, "NSpid:");
  return ns.size() > 1 ? std::atoi(ns.back().c_str()) : 0;
}

}  // namespace

ExecRecord ReadExec(const seccomp::Call& call, std::chrono::steady_clock::time_point start) {
  ExecRecord r;
  r.at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start)
                .count();
  bool at = call.name == "execveat";
  r.path = ReadString(call.pid, call.args[at ? 1 : 0]);
  r.argv = ReadArgv(call.pid, call.args[at ? 2 : 1]);
  char cwd[PATH_MAX];
  ssize_t n = readlink(("/proc/" + std::to_string(call.pid) + "/cwd").c_str(), cwd, sizeof(cwd));
  if (n > 0) r.cwd.assign(cwd, static_cast<size_t>(n));
  r.pid = InnerPid(call.pid);
  std::vector<std::string> ppid = StatusField(call.pid, "PPid:");
  if (!ppid.empty()) r.ppid = InnerPid(std::atoi(ppid[0].c_str()));
  return r;
}

}  // namespace corral::sandbox::observe

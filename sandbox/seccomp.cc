#include "sandbox/seccomp.h"

#include <linux/seccomp.h>
#include <seccomp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <iterator>

namespace corral::sandbox::seccomp {

bool KnownSyscall(std::string_view name) {
  std::string n(name);
  return seccomp_syscall_resolve_name_arch(SCMP_ARCH_NATIVE, n.c_str()) != __NR_SCMP_ERROR;
}

std::string SyscallName(unsigned arch, int nr) {
  char* name = seccomp_syscall_resolve_num_arch(arch, nr);
  if (!name) return "syscall " + std::to_string(nr);
  std::string out(name);
  free(name);
  return out;
}

Expected<Filter> Filter::Build(const std::vector<SyscallRule>& rules, bool observe_exec,
                               bool notify) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (!ctx) return Fail("seccomp_init failed");
  auto fail = [&](const std::string& what, int rc) {
    seccomp_release(ctx);
    return ErrnoError(what, -rc);
  };
  // Only the native architecture is in the filter; anything else (int 0x80, x32) is killed.
  if (int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS); rc != 0) {
    return fail("seccomp bad-arch action", rc);
  }
  if (int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0); rc != 0)
    return fail("seccomp nnp", rc);
  bool notifies = false;
  for (const SyscallRule& rule : rules) {
    int nr = seccomp_syscall_resolve_name(rule.name.c_str());
    if (nr == __NR_SCMP_ERROR) continue;  // not on this architecture
    uint32_t action = rule.error == DenyErrno::kEnosys ? SCMP_ACT_ERRNO(ENOSYS)
                      : notify                         ? SCMP_ACT_NOTIFY
                                                       : SCMP_ACT_ERRNO(EPERM);
    notifies |= action == SCMP_ACT_NOTIFY;
    std::vector<scmp_arg_cmp> cmps;
    for (const ArgCompare& a : rule.args) {
      if (a.op == ArgCompare::Op::kNe) {
        cmps.push_back(scmp_arg_cmp{a.index, SCMP_CMP_NE, a.value, 0});
      } else {
        cmps.push_back(SCMP_CMP(a.index, SCMP_CMP_MASKED_EQ, a.mask, a.value));
      }
    }
    int rc = seccomp_rule_add_array(ctx, action, nr, cmps.size(), cmps.data());
    if (rc != 0) return fail("seccomp rule for " + rule.name, rc);
  }
  if (observe_exec) {
    for (const char* name : {"execve", "execveat"}) {
      bool ruled = std::any_of(rules.begin(), rules.end(),
                               [&](const SyscallRule& r) { return r.name == name; });
      if (ruled) continue;  // the policy denies it already, and the denial is recorded
      int rc = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, seccomp_syscall_resolve_name(name), 0);
      if (rc != 0) return fail(std::string("seccomp rule for ") + name, rc);
      notifies = true;
    }
  }
  return Filter(ctx, notifies);
}

Filter::Filter(Filter&& other) noexcept : ctx_(other.ctx_), notifies_(other.notifies_) {
  other.ctx_ = nullptr;
}

Filter::~Filter() {
  if (ctx_) seccomp_release(ctx_);
}

Expected<int> Filter::Load() {
  if (int rc = seccomp_load(ctx_); rc != 0) return ErrnoError("seccomp_load", -rc);
  if (!notifies_) return -1;
  int fd = seccomp_notify_fd(ctx_);
  if (fd < 0) return ErrnoError("seccomp notify fd", -fd);
  return fd;
}

Expected<std::string> Filter::ExportBpf() const {
  int fds[2];
  if (pipe(fds) != 0) return ErrnoError("pipe");
  int rc = seccomp_export_bpf(ctx_, fds[1]);
  close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof(buf))) > 0) out.append(buf, n);
  close(fds[0]);
  if (rc != 0) return ErrnoError("seccomp_export_bpf", -rc);
  return out;
}

Expected<Call> Receive(int listener) {
  seccomp_notif* req = nullptr;
  seccomp_notif_resp* resp = nullptr;
  if (int rc = seccomp_notify_alloc(&req, &resp); rc != 0) {
    return ErrnoError("seccomp_notify_alloc", -rc);
  }
  int rc = seccomp_notify_receive(listener, req);
  if (rc != 0) {
    seccomp_notify_free(req, resp);
    return ErrnoError("seccomp_notify_receive", -rc);
  }
  Call call;
  call.id = req->id;
  call.pid = static_cast<int>(req->pid);
  call.name = SyscallName(req->data.arch, req->data.nr);
  call.exec = call.name == "execve" || call.name == "execveat";
  std::copy(std::begin(req->data.args), std::end(req->data.args), std::begin(call.args));
  seccomp_notify_free(req, resp);
  return call;
}

bool StillWaiting(int listener, uint64_t id) { return seccomp_notify_id_valid(listener, id) == 0; }

namespace {

void Respond(int listener, uint64_t id, int error, uint32_t flags) {
  seccomp_notif_resp resp = {};
  resp.id = id;
  resp.error = error;
  resp.flags = flags;
  // ENOENT: the caller was killed meanwhile; nothing to answer.
  seccomp_notify_respond(listener, &resp);
}

}  // namespace

void Deny(int listener, uint64_t id, int error) { Respond(listener, id, -error, 0); }

void Continue(int listener, uint64_t id) {
  Respond(listener, id, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE);
}

}  // namespace corral::sandbox::seccomp

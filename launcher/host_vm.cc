#include "launcher/host_vm.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace corral::launcher {
namespace {

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

bool CpuFlag(const std::string& root, const std::string& flag) {
  std::ifstream in(root + "/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (!line.starts_with("flags")) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    for (std::string w; words >> w;) {
      if (w == flag) return true;
    }
    return false;
  }
  return false;
}

// Runs a command and returns its output (stdout and stderr), or "" when it could not run.
std::string Capture(const std::string& command) {
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (!p) return "";
  std::string out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), p)) > 0;) out.append(buf, n);
  pclose(p);
  return out;
}

sandbox::HostCheck Kvm(const std::string& root) {
  sandbox::HostCheck c{"KVM", false, false, "", ""};
  std::string dev = root + "/dev/kvm";
  if (!Exists(dev)) {
    c.detail = "no /dev/kvm";
    c.fix =
        "load kvm_intel or kvm_amd (and enable virtualization in the firmware); without KVM a "
        "VM target runs under QEMU's software emulation (TCG), much slower";
    return c;
  }
  if (root != "/") {
    c.ok = true;
    c.detail = "/dev/kvm is there";
    return c;
  }
  int fd = open(dev.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    c.detail = "/dev/kvm: " + std::string(std::strerror(errno));
    c.fix = errno == EACCES ? "add your user to the kvm group" : "check /dev/kvm's permissions";
    return c;
  }
  int api = ioctl(fd, KVM_GET_API_VERSION, 0);
  int vm = ioctl(fd, KVM_CREATE_VM, 0);
  int vcpu = vm >= 0 ? ioctl(vm, KVM_CREATE_VCPU, 0) : -1;
  int err = errno;
  if (vcpu >= 0) close(vcpu);
  if (vm >= 0) close(vm);
  close(fd);
  c.ok = api == KVM_API_VERSION && vcpu >= 0;
  c.detail = "/dev/kvm API " + std::to_string(api) +
             (c.ok ? ", creates a VM and a vCPU"
                   : ", cannot create a VM: " + std::string(std::strerror(err)));
  if (!c.ok) c.fix = "a VM target falls back to software emulation (TCG)";
  return c;
}

sandbox::HostCheck TdxHost(const std::string& root) {
  sandbox::HostCheck c{"Intel TDX host", false, false, "", ""};
  std::string module = root + "/sys/module/kvm_intel";
  if (!Exists(module)) {
    c.detail = CpuFlag(root, "vmx") ? "kvm_intel is not loaded" : "not an Intel VT-x host";
    c.fix = "TDX needs an Intel CPU with TDX, a TDX-enabled firmware and kvm_intel.tdx=1";
    return c;
  }
  std::string tdx = Read(module + "/parameters/tdx");
  if (tdx.empty()) {
    c.detail = "kvm_intel has no tdx parameter: this kernel has no TDX host support";
    c.fix = "Linux 6.16 or newer built with CONFIG_INTEL_TDX_HOST";
    return c;
  }
  if (tdx != "Y" && tdx != "1") {
    c.detail = "kvm_intel.tdx = " + tdx + ": TDX is off, or its module failed to initialize";
    c.fix =
        "enable TDX in the firmware, boot with kvm_intel.tdx=1, and check dmesg for "
        "'virt/tdx' errors";
    return c;
  }
  c.ok = true;
  c.detail = "kvm_intel.tdx = Y";
  return c;
}

sandbox::HostCheck TdxGuest(const std::string& root) {
  sandbox::HostCheck c{"inside an Intel TD (guest)", false, false, "", ""};
  bool flag = CpuFlag(root, "tdx_guest");
  bool tsm = Exists(root + "/sys/kernel/config/tsm/report");
  c.ok = flag;
  c.detail = !flag ? "no: this is not a trust domain"
             : tsm ? "yes; quotes through configfs-tsm (/sys/kernel/config/tsm/report)"
                   : "yes, but configfs-tsm is missing";
  if (flag && !tsm) c.fix = "mount configfs and load tdx_guest (CONFIG_TSM_REPORTS) to get quotes";
  return c;
}

}  // namespace

std::vector<sandbox::HostCheck> ProbeVirtualization(const std::string& root) {
  return {Kvm(root), TdxHost(root), TdxGuest(root)};
}

sandbox::HostCheck ProbeQemu(const std::string& qemu) {
  sandbox::HostCheck c{"QEMU", false, false, "", ""};
  std::string program = qemu.empty() ? "qemu-system-x86_64" : qemu;
  std::string version = Capture(program + " --version");
  if (version.find("QEMU emulator version") == std::string::npos) {
    c.detail = program + " not found";
    c.fix = "apt-get install qemu-system-x86 (VM targets only)";
    return c;
  }
  c.ok = true;
  c.detail = version.substr(0, version.find('\n'));
  std::string accel = Capture(program + " -accel help");
  for (const char* a : {"kvm", "tcg"}) {
    if (accel.find(std::string("\n") + a) != std::string::npos) c.detail += std::string(", ") + a;
  }
  bool tdx = Capture(program + " -object help").find("tdx-guest") != std::string::npos;
  c.detail += tdx ? ", has tdx-guest" : ", no tdx-guest object (TDX needs QEMU 10.1+)";
  return c;
}

std::vector<std::string> MissingForTdx(const std::string& root, const std::string& qemu,
                                       std::string* firmware) {
  std::vector<std::string> missing;
  sandbox::HostCheck host = TdxHost(root);
  if (!host.ok) missing.push_back("TDX host support (" + host.detail + ")");
  if (!Exists(root + "/dev/kvm")) missing.push_back("/dev/kvm");
  firmware->clear();
  for (const char* path : kTdvfPaths) {
    if (Exists(root + path)) {
      *firmware = root == "/" ? path : root + path;
      break;
    }
  }
  if (firmware->empty()) {
    missing.push_back("TDVF firmware (OVMF.inteltdx.fd in /usr/share/ovmf, /usr/share/OVMF, "
                      "/usr/share/qemu or /usr/share/edk2/ovmf)");
  }
  std::string program = qemu.empty() ? "qemu-system-x86_64" : qemu;
  std::string version = Capture(program + " --version");
  int major = 0, minor = 0;
  auto at = version.find("QEMU emulator version ");
  if (at == std::string::npos ||
      std::sscanf(version.c_str() + at + 22, "%d.%d", &major, &minor) != 2) {
    missing.push_back("QEMU 10.1 or newer (" + program + " not found)");
  } else if (major < 10 || (major == 10 && minor < 1)) {
    missing.push_back("QEMU 10.1 or newer (" + program + " is " + std::to_string(major) + "." +
                      std::to_string(minor) + ")");
  } else if (Capture(program + " -object help").find("tdx-guest") == std::string::npos) {
    missing.push_back("QEMU's tdx-guest object (" + program + " was built without it)");
  }
  return missing;
}

}  // namespace corral::launcher

// Launching a task as an Intel TDX trust domain: what the host must have, and the QEMU argument
// vector or libvirt domain XML that starts the TD. Generated as data, never as a shell string.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace corral::launcher::tdx {

struct Launch {
  std::string name;       // the domain's name (a task)
  std::string qemu = "qemu-system-x86_64";
  std::string firmware;   // TDVF (OVMF built for TDX)
  std::string kernel;     // the guest kernel and initramfs (with corral's agent-side helper)
  std::string initrd;
  std::string append;     // the kernel command line
  uint64_t memory_mib = 2048;
  unsigned cpus = 1;
  std::string workspace;  // the worktree, shared read-write into the guest (virtio-9p, tag "workspace")
  uint32_t vsock_cid = 3; // the guest's vsock address, for the quote generation service
  std::string qgs_socket; // libvirt: the host's quote generation service socket (empty: default)
};

// QEMU 10.1+: -accel kvm, a tdx-guest object as the machine's confidential-guest-support, split
// irqchip, TDVF as -bios, the quote generation service on vsock port 4050 of the host (CID 2).
std::vector<std::string> QemuArgv(const Launch& l);

// libvirt 11.6+: <launchSecurity type='tdx'> with the quote generation service.
std::string LibvirtXml(const Launch& l);

}  // namespace corral::launcher::tdx

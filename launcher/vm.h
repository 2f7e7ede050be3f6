// The VM target (policy `target = "vm"`): the agent runs inside a QEMU virtual machine.
//
// The guest boots a Debian kernel with an initramfs corral writes per launch: corral-vm-init
// (launcher/vm_init.cc) as /init, the kernel modules 9p needs, and spec.json saying what to run.
// The host paths the local sandbox would bind are shared over virtio-9p instead, read-only unless
// granted read-write. QEMU itself runs in the local sandbox the same Spec describes (so it sees
// only what the policy grants, plus its own files), and KVM is used when it really runs a guest,
// TCG otherwise. The command's output comes back over virtio ports, its status over a third.
#pragma once

#include <cstdint>
#include <expected>
#include <string>
#include <vector>

#include "sandbox/host_probe.h"
#include "sandbox/sandbox.h"

namespace corral::launcher::vm {

// The modules the guest's init loads, in this order (Debian's 6.1 kernel builds them as modules).
inline constexpr const char* kModules[] = {
    "virtio_ring.ko", "virtio.ko", "virtio_pci_legacy_dev.ko", "virtio_pci_modern_dev.ko",
    "virtio_pci.ko",  "9pnet.ko",  "9pnet_virtio.ko",          "netfs.ko",
    "fscache.ko",     "9p.ko",     "virtio_console.ko",        "failover.ko",
    "net_failover.ko", "virtio_net.ko"};

// A folder with `vmlinuz` and `modules/` holding kModules, all from one Debian linux-image
// package (the build extracts it into build/vm; `cmake --install` puts it in share/corral/vm).
// Looked for in $CORRAL_VM_DIR, then next to corral's binary (the build tree), then in
// ../share/corral/vm. Errors say which folders were tried and what is missing.
std::expected<std::string, std::string> FindGuestDir();

// A value inside QEMU's comma-separated option syntax: commas are doubled.
std::string QemuOptionValue(const std::string& value);

// One file of a newc ("070701") cpio archive, the initramfs format.
struct CpioEntry {
  std::string name;  // relative, no leading '/'
  uint32_t mode = 0; // with the file type bits (S_IFREG, S_IFDIR, S_IFCHR)
  std::string data;  // a regular file's contents
  uint32_t rdev_major = 0, rdev_minor = 0;
};
std::string NewcArchive(const std::vector<CpioEntry>& entries);

// A host folder shared into the guest at the same path.
struct Share {
  std::string tag;  // the 9p mount tag
  std::string path;
  bool writable = false;
};

struct Launch {
  std::string qemu;  // absolute path of qemu-system-x86_64
  bool kvm = false;  // else TCG
  std::string kernel, initrd;
  uint64_t memory_mib = 512;
  unsigned cpus = 1;
  std::vector<Share> shares;
  std::string console;  // a file for the serial console (the guest kernel's messages)
  // Unix sockets corral listens on, for the corral.stdin, corral.stdout, corral.stderr and
  // corral.status ports.
  std::string stdin_socket, stdout_socket, stderr_socket, status_socket;
  // With an egress allow-list: QEMU's user network, restricted (no route anywhere), forwarding
  // the guest's 10.0.2.100:proxy_port to `connector --connect 127.0.0.1 proxy_port`, started per
  // connection inside QEMU's sandbox, where the egress proxy listens.
  uint16_t proxy_port = 0;
  std::string connector;
  // egress = "host": QEMU's user network unrestricted, NAT to wherever the host reaches (the
  // host's own loopback as 10.0.2.2), DNS at 10.0.2.3. Not with proxy_port.
  bool host_network = false;
};

// The QEMU argument vector: q35, no default devices, no network device unless a proxy or the
// host's network, no
// reboot, QEMU's own seccomp sandbox on (spawning allowed only for the proxy's connector),
// the virtio ports corral.stdin, corral.stdout, corral.stderr and corral.status (to the
// sockets), and one virtio-9p device per share.
std::vector<std::string> QemuArgv(const Launch& l);

// Whether KVM runs a guest here: the sandbox's user may open /dev/kvm, QEMU started with
// -accel kvm -cpu host gets as far as its monitor, and the guest kernel boots under it to its
// no-root panic within 5 s (a /dev/kvm that opens is not enough: some nested hosts fail at the
// first vCPU, others hang at the switch to protected mode). Asked once per process.
// CORRAL_VM_ACCEL=tcg or kvm overrides.
bool KvmWorks(const std::string& qemu);

// corral doctor's line for the vm target: QEMU, the guest kernel, corral-vm-init, and whether
// guests run on KVM or on TCG here.
sandbox::HostCheck Probe();

// What the VM target cannot honour in `spec` (made for the local sandbox), as a message naming
// the policy key; empty when it can.
std::string Unsupported(const sandbox::Spec& spec);

// Runs the Spec's command in a VM. `options` as for sandbox::Run (the helper runs QEMU).
// Result: the command's status as the guest reported it; the wall time, CPU time and peak
// memory are QEMU's. An Error when the VM could not start or stopped without a status (with
// the console's last lines).
sandbox::Expected<sandbox::Result> Run(const sandbox::Spec& spec,
                                       const sandbox::RunOptions& options);

}  // namespace corral::launcher::vm

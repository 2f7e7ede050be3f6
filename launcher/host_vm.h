// What this host offers the VM and Intel TDX targets, read from /dev, /sys and /proc under a
// root folder (so tests can point it at fixture trees), and from QEMU itself.
#pragma once

#include <string>
#include <vector>

#include "sandbox/host_probe.h"

namespace corral::launcher {

// KVM, TDX host and guest support under `root` ("/" on a real host; there /dev/kvm is also
// opened and asked for its API version and a VM).
std::vector<sandbox::HostCheck> ProbeVirtualization(const std::string& root = "/");

// QEMU: its version, its accelerators and whether it has the tdx-guest object. `qemu` is the
// program to ask (default: qemu-system-x86_64 found in PATH).
sandbox::HostCheck ProbeQemu(const std::string& qemu = "");

// What this host lacks to launch an Intel TDX trust domain, one item per missing piece (empty:
// nothing): kvm_intel's tdx parameter, /dev/kvm, TDVF firmware (under `root`), and QEMU 10.1+
// with the tdx-guest object (`qemu` is asked). `firmware` is set to the TDVF found.
std::vector<std::string> MissingForTdx(const std::string& root, const std::string& qemu,
                                       std::string* firmware);

// TDVF where distributions install it, relative to the root.
inline constexpr const char* kTdvfPaths[] = {
    "/usr/share/ovmf/OVMF.inteltdx.fd", "/usr/share/OVMF/OVMF.inteltdx.fd",
    "/usr/share/qemu/OVMF.inteltdx.fd", "/usr/share/edk2/ovmf/OVMF.inteltdx.fd",
    "/usr/share/ovmf/OVMF.tdx.fd"};

}  // namespace corral::launcher

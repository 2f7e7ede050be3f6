#include "launcher/tdx_launch.h"

#include "launcher/escape.h"
#include "launcher/vm.h"

namespace corral::launcher::tdx {
namespace {

std::string Escape(const std::string& s) { return EscapeMarkup(s); }

}  // namespace

// The tdx-guest object; the quote generation service listens on the host's vsock port 4050.
constexpr const char* kTdxGuest =
    R"({"qom-type":"tdx-guest","id":"tdx0","quote-generation-socket":)"
    R"({"type":"vsock","cid":"2","port":"4050"}})";

std::vector<std::string> QemuArgv(const Launch& l) {
  std::string mem = std::to_string(l.memory_mib) + "M";
  return {
      l.qemu,
      "-name", vm::QemuOptionValue(l.name),
      "-accel", "kvm",
      "-cpu", "host",
      "-smp", std::to_string(l.cpus),
      "-m", mem,
      "-object", kTdxGuest,
      "-machine", "q35,kernel-irqchip=split,confidential-guest-support=tdx0,hpet=off",
      "-bios", l.firmware,
      "-kernel", l.kernel,
      "-initrd", l.initrd,
      "-append", l.append,
      "-nodefaults",
      "-nographic",
      "-serial", "stdio",
      "-no-reboot",
      "-device", "vhost-vsock-pci,guest-cid=" + std::to_string(l.vsock_cid),
      "-fsdev",
      "local,id=workspace,security_model=none,path=" + vm::QemuOptionValue(l.workspace),
      "-device", "virtio-9p-pci,fsdev=workspace,mount_tag=workspace",
  };
}

std::string LibvirtXml(const Launch& l) {
  std::string qgs = l.qgs_socket.empty()
                        ? "<quoteGenerationService/>"
                        : "<quoteGenerationService path='" + Escape(l.qgs_socket) + "'/>";
  return "<domain type='kvm'>\n"
         "  <name>" + Escape(l.name) + "</name>\n"
         "  <memory unit='MiB'>" + std::to_string(l.memory_mib) + "</memory>\n"
         "  <vcpu>" + std::to_string(l.cpus) + "</vcpu>\n"
         "  <os>\n"
         "    <type arch='x86_64' machine='q35'>hvm</type>\n"
         "    <loader type='rom' stateless='yes'>" + Escape(l.firmware) + "</loader>\n"
         "    <kernel>" + Escape(l.kernel) + "</kernel>\n"
         "    <initrd>" + Escape(l.initrd) + "</initrd>\n"
         "    <cmdline>" + Escape(l.append) + "</cmdline>\n"
         "  </os>\n"
         "  <features>\n"
         "    <acpi/>\n"
         "    <apic/>\n"
         "    <ioapic driver='qemu'/>\n"
         "  </features>\n"
         "  <cpu mode='host-passthrough'/>\n"
         "  <on_reboot>destroy</on_reboot>\n"
         "  <devices>\n"
         "    <filesystem type='mount' accessmode='passthrough'>\n"
         "      <source dir='" + Escape(l.workspace) + "'/>\n"
         "      <target dir='workspace'/>\n"
         "    </filesystem>\n"
         "    <vsock model='virtio'>\n"
         "      <cid auto='no' address='" + std::to_string(l.vsock_cid) + "'/>\n"
         "    </vsock>\n"
         "    <console type='pty'/>\n"
         "  </devices>\n"
         "  <launchSecurity type='tdx'>\n"
         "    <policy>0x10000000</policy>\n"
         "    " + qgs + "\n"
         "  </launchSecurity>\n"
         "</domain>\n";
}

}  // namespace corral::launcher::tdx

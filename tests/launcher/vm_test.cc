// The vm target's pieces that need no boot: the initramfs archive, QEMU's argument vector, the
// guest kernel's discovery and what the target refuses. tests/e2e/vm_test.sh boots real guests.
#include "launcher/vm.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "sandbox/sandbox.h"
#include "tests/testing.h"

namespace corral::launcher::vm {
namespace {

struct Parsed {
  std::string name;
  uint32_t fields[13];
  std::string data;
};

// Reads a newc archive back the way the kernel's initramfs unpacker does (init/initramfs.c).
std::vector<Parsed> ReadNewc(const std::string& a) {
  std::vector<Parsed> out;
  size_t pos = 0;
  auto align = [&] { pos = (pos + 3) & ~size_t{3}; };
  while (pos + 110 <= a.size()) {
    Parsed p;
    EXPECT_EQ(a.substr(pos, 6), "070701") << "at " << pos;
    for (int i = 0; i < 13; ++i) {
      p.fields[i] = static_cast<uint32_t>(std::stoul(a.substr(pos + 6 + 8 * i, 8), nullptr, 16));
    }
    pos += 110;
    uint32_t namesize = p.fields[11];
    p.name = a.substr(pos, namesize - 1);
    EXPECT_EQ(a[pos + namesize - 1], '\0');
    pos += namesize;
    align();
    p.data = a.substr(pos, p.fields[6]);
    pos += p.fields[6];
    align();
    out.push_back(p);
    if (p.name == "TRAILER!!!") break;
  }
  return out;
}

TEST(VmTest, NewcArchiveReadsBackAsWritten) {
  std::string archive = NewcArchive({{"init", S_IFREG | 0755, "#!/bin/sh\n"},
                                     {"corral", S_IFDIR | 0755, ""},
                                     {"corral/spec.json", S_IFREG | 0600, "{}"},
                                     {"dev/console", S_IFCHR | 0600, "", 5, 1}});
  EXPECT_EQ(archive.size() % 512, 0u);
  std::vector<Parsed> p = ReadNewc(archive);
  ASSERT_EQ(p.size(), 5u);
  EXPECT_EQ(p[0].name, "init");
  EXPECT_EQ(p[0].fields[1], static_cast<uint32_t>(S_IFREG | 0755));
  EXPECT_EQ(p[0].data, "#!/bin/sh\n");
  EXPECT_EQ(p[1].name, "corral");
  EXPECT_EQ(p[1].fields[1], static_cast<uint32_t>(S_IFDIR | 0755));
  EXPECT_EQ(p[1].fields[4], 2u);  // nlink of a folder
  EXPECT_EQ(p[2].data, "{}");
  EXPECT_EQ(p[3].name, "dev/console");
  EXPECT_EQ(p[3].fields[9], 5u);   // rdevmajor
  EXPECT_EQ(p[3].fields[10], 1u);  // rdevminor
  EXPECT_EQ(p[4].name, "TRAILER!!!");
  // Inode numbers are distinct: the unpacker links entries with the same (ino, dev) as hard links.
  EXPECT_NE(p[0].fields[0], p[2].fields[0]);
  // Every name and body starts on a 4-byte boundary, whatever the lengths.
  std::vector<Parsed> odd = ReadNewc(NewcArchive({{"a", S_IFREG | 0644, "x"},
                                                  {"bb", S_IFREG | 0644, "yy"},
                                                  {"ccc", S_IFREG | 0644, "zzz"}}));
  ASSERT_EQ(odd.size(), 4u);
  EXPECT_EQ(odd[1].data, "yy");
  EXPECT_EQ(odd[2].data, "zzz");
}

TEST(VmTest, QemuArgvIsTheGoldenVector) {
  Launch l;
  l.qemu = "/usr/bin/qemu-system-x86_64";
  l.kernel = "/k/vmlinuz";
  l.initrd = "/t/initrd.cpio";
  l.memory_mib = 608;
  l.console = "/t/console.log";
  l.status_socket = "/t/status.sock";
  l.stdin_socket = "/t/stdin.sock";
  l.stdout_socket = "/t/stdout.sock";
  l.stderr_socket = "/t/stderr.sock";
  l.shares = {{"s0", "/tmp/ws", true}, {"s1", "/usr", false}};
  std::vector<std::string> golden = {
      "/usr/bin/qemu-system-x86_64", "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
      "-sandbox", "on,obsolete=deny,resourcecontrol=deny,elevateprivileges=deny,spawn=deny",
      "-M", "q35", "-m", "608", "-smp", "1", "-nic", "none",
      "-accel", "tcg,tb-size=64", "-cpu", "max",
      "-kernel", "/k/vmlinuz", "-initrd", "/t/initrd.cpio", "-append",
      "console=ttyS0 quiet loglevel=3 panic=-1 oops=panic rdinit=/init",
      "-serial", "file:/t/console.log",
      "-device", "virtio-serial-pci,id=ports",
      "-chardev", "socket,id=in,path=/t/stdin.sock",
      "-device", "virtserialport,bus=ports.0,chardev=in,name=corral.stdin",
      "-chardev", "socket,id=out,path=/t/stdout.sock",
      "-device", "virtserialport,bus=ports.0,chardev=out,name=corral.stdout",
      "-chardev", "socket,id=err,path=/t/stderr.sock",
      "-device", "virtserialport,bus=ports.0,chardev=err,name=corral.stderr",
      "-chardev", "socket,id=status,path=/t/status.sock",
      "-device", "virtserialport,bus=ports.0,chardev=status,name=corral.status",
      "-fsdev", "local,id=fs0,path=/tmp/ws,security_model=none,multidevs=remap",
      "-device", "virtio-9p-pci,fsdev=fs0,mount_tag=s0",
      "-fsdev", "local,id=fs1,path=/usr,security_model=none,multidevs=remap,readonly=on",
      "-device", "virtio-9p-pci,fsdev=fs1,mount_tag=s1"};
  EXPECT_EQ(QemuArgv(l), golden);
  l.kvm = true;
  std::vector<std::string> kvm = QemuArgv(l);
  auto at = std::find(kvm.begin(), kvm.end(), "-accel");
  ASSERT_NE(at, kvm.end());
  EXPECT_EQ(*(at + 1), "kvm");
  EXPECT_EQ(*(at + 3), "host");
}

TEST(VmTest, QemuArgvWithAProxyHasOnlyTheRestrictedForward) {
  Launch l;
  l.proxy_port = 3128;
  l.connector = "/opt/corral/libexec/corral/corral-vm-init";
  std::vector<std::string> argv = QemuArgv(l);
  EXPECT_EQ(std::find(argv.begin(), argv.end(), "none"), argv.end());  // no "-nic none"
  auto netdev = std::find(argv.begin(), argv.end(), "-netdev");
  ASSERT_NE(netdev, argv.end());
  EXPECT_EQ(*(netdev + 1),
            "user,id=net,restrict=on,ipv6=off,net=10.0.2.0/24,guestfwd=tcp:10.0.2.100:3128-cmd:"
            "/opt/corral/libexec/corral/corral-vm-init --connect 127.0.0.1 3128");
  EXPECT_EQ(*(netdev + 2), "-device");
  EXPECT_EQ(*(netdev + 3), "virtio-net-pci,netdev=net,romfile=");
  auto sandbox = std::find(argv.begin(), argv.end(), "-sandbox");
  ASSERT_NE(sandbox, argv.end());
  EXPECT_EQ(*(sandbox + 1),
            "on,obsolete=deny,resourcecontrol=deny,elevateprivileges=allow,spawn=allow");
}

TEST(VmTest, QemuArgvWithTheHostsNetworkIsUnrestrictedAndSpawnsNothing) {
  Launch l;
  l.host_network = true;
  std::vector<std::string> argv = QemuArgv(l);
  auto netdev = std::find(argv.begin(), argv.end(), "-netdev");
  ASSERT_NE(netdev, argv.end());
  EXPECT_EQ(*(netdev + 1), "user,id=net,ipv6=off,net=10.0.2.0/24");
  EXPECT_EQ(*(netdev + 3), "virtio-net-pci,netdev=net,romfile=");
  EXPECT_EQ(std::find(argv.begin(), argv.end(), "none"), argv.end());  // no "-nic none"
  auto sandbox = std::find(argv.begin(), argv.end(), "-sandbox");
  ASSERT_NE(sandbox, argv.end());
  EXPECT_EQ(*(sandbox + 1),
            "on,obsolete=deny,resourcecontrol=deny,elevateprivileges=deny,spawn=deny");
}

TEST(VmTest, QemuArgvEscapesCommasInPaths) {
  // QEMU splits option values at commas: a path with one must not add options of its own.
  Launch l;
  l.shares = {{"s0", "/tmp/a,readonly=off,x", false}};
  std::vector<std::string> argv = QemuArgv(l);
  auto at = std::find(argv.begin(), argv.end(), "-fsdev");
  ASSERT_NE(at, argv.end());
  EXPECT_EQ(*(at + 1),
            "local,id=fs0,path=/tmp/a,,readonly=off,,x,security_model=none,multidevs=remap,"
            "readonly=on");
}

TEST(VmTest, FindGuestDirSaysWhatIsMissing) {
  testing::ScratchDir dir("corral-vm-guest");
  setenv("CORRAL_VM_DIR", dir.path().c_str(), 1);
  auto missing = FindGuestDir();
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().find(dir.path() + "/vmlinuz"), std::string::npos) << missing.error();
  EXPECT_NE(missing.error().find("CORRAL_VM_DIR"), std::string::npos);
  testing::WriteFile(dir.path() + "/vmlinuz", "k");
  std::filesystem::create_directories(dir.path() + "/modules");
  for (const char* m : kModules) {
    if (std::string(m) != "9p.ko") testing::WriteFile(dir.path() + "/modules/" + m, "m");
  }
  missing = FindGuestDir();
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().find("modules/9p.ko"), std::string::npos) << missing.error();
  testing::WriteFile(dir.path() + "/modules/9p.ko", "m");
  auto found = FindGuestDir();
  unsetenv("CORRAL_VM_DIR");
  ASSERT_TRUE(found) << found.error();
  EXPECT_EQ(*found, dir.path());
}

TEST(VmTest, UnsupportedNamesThePolicyKey) {
  sandbox::Spec spec;
  spec.workspace = "/tmp";
  EXPECT_EQ(Unsupported(spec), "");
  spec.proxy_port = 3128;  // an allow-list goes through the proxy
  EXPECT_EQ(Unsupported(spec), "");
  spec.proxy_port = 0;
  spec.share_network = true;  // egress = "host": QEMU's unrestricted user network
  EXPECT_EQ(Unsupported(spec), "");
  spec.share_network = false;
  spec.exec_allow = std::vector<std::string>{"/usr/bin/git"};  // Landlock and init in the guest
  EXPECT_EQ(Unsupported(spec), "");
  spec.exec_allow.reset();
  testing::ScratchDir dir("corral-vm-file");
  testing::WriteFile(dir.path() + "/f", "x");
  spec.binds.emplace_back(dir.path() + "/f", false);
  EXPECT_EQ(Unsupported(spec), "") << "a read-only file travels in the initramfs";
  spec.binds.back().writable = true;
  EXPECT_NE(Unsupported(spec).find(dir.path() + "/f is a file granted read-write"),
            std::string::npos);
  spec.binds.back().writable = false;
  // A writable link is shared as its target: a link to a file is a file granted read-write.
  std::filesystem::create_symlink(dir.path() + "/f", dir.path() + "/link");
  sandbox::Spec linked;
  linked.workspace = "/tmp";
  linked.binds.emplace_back(dir.path() + "/link", true);
  EXPECT_NE(Unsupported(linked).find("is a file granted read-write"), std::string::npos);
  testing::WriteFile(dir.path() + "/big", std::string((4 << 20) + 1, 'x'));
  spec.binds.emplace_back(dir.path() + "/big", false);
  EXPECT_NE(Unsupported(spec).find("up to 4 MiB"), std::string::npos) << Unsupported(spec);
}

// QEMU opens /dev/kvm as the sandbox's user, which as root is an id that owns nothing and holds
// no groups: the KVM probe must ask for that user, not for the caller.
TEST(VmTest, SandboxMayOpenAsksForTheSandboxUser) {
  testing::ScratchDir dir("corral-vm-dev");
  std::string f = dir.path() + "/dev";
  testing::WriteFile(f, "");
  bool root = geteuid() == 0;
  struct Case {
    mode_t mode;
    bool unprivileged, as_root;
  };
  // The file is the caller's: unprivileged, its owner bits count; as root, its "other" bits.
  for (Case c : {Case{0600, true, false}, Case{0660, true, false}, Case{0666, true, true},
                 Case{0644, true, false}, Case{0606, true, true}, Case{0400, false, false},
                 Case{0066, false, true}}) {
    ASSERT_EQ(chmod(f.c_str(), c.mode), 0);
    EXPECT_EQ(sandbox::SandboxMayOpen(f), root ? c.as_root : c.unprivileged)
        << std::oct << c.mode;
  }
  EXPECT_FALSE(sandbox::SandboxMayOpen(dir.path() + "/missing"));
}

}  // namespace
}  // namespace corral::launcher::vm

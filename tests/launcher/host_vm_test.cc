// KVM and TDX detection against fixture trees of /dev, /sys and /proc.
#include "launcher/host_vm.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "tests/testing.h"

namespace corral::launcher {
namespace {

class HostVmTest : public ::testing::Test {
 protected:
  void Put(const std::string& path, const std::string& content) {
    std::filesystem::create_directories(std::filesystem::path(root_.path() + path).parent_path());
    testing::WriteFile(root_.path() + path, content);
  }
  std::vector<sandbox::HostCheck> Probe() { return ProbeVirtualization(root_.path()); }
  testing::ScratchDir root_{"corral-fixture-root"};
};

TEST_F(HostVmTest, NoKvm) {
  Put("/proc/cpuinfo", "flags\t\t: fpu sse2 svm\n");
  auto c = Probe();
  ASSERT_EQ(c.size(), 3u);
  EXPECT_FALSE(c[0].ok);
  EXPECT_EQ(c[0].detail, "no /dev/kvm");
  EXPECT_NE(c[0].fix.find("software emulation (TCG)"), std::string::npos);
  EXPECT_FALSE(c[1].ok);
  EXPECT_EQ(c[1].detail, "not an Intel VT-x host");
  EXPECT_FALSE(c[2].ok);
}

TEST_F(HostVmTest, KvmWithoutTdx) {
  Put("/dev/kvm", "");
  Put("/proc/cpuinfo", "flags\t\t: fpu vmx\n");
  Put("/sys/module/kvm_intel/parameters/tdx", "N\n");
  auto c = Probe();
  EXPECT_TRUE(c[0].ok);
  EXPECT_FALSE(c[1].ok);
  EXPECT_EQ(c[1].detail, "kvm_intel.tdx = N: TDX is off, or its module failed to initialize");
  EXPECT_NE(c[1].fix.find("kvm_intel.tdx=1"), std::string::npos);
}

TEST_F(HostVmTest, KernelWithoutTdxHostSupport) {
  Put("/dev/kvm", "");
  Put("/proc/cpuinfo", "flags\t\t: fpu vmx\n");
  Put("/sys/module/kvm_intel/parameters/nested", "Y\n");
  auto c = Probe();
  EXPECT_FALSE(c[1].ok);
  EXPECT_EQ(c[1].detail, "kvm_intel has no tdx parameter: this kernel has no TDX host support");
}

TEST_F(HostVmTest, KvmIntelNotLoaded) {
  Put("/proc/cpuinfo", "flags\t\t: fpu vmx\n");
  EXPECT_EQ(Probe()[1].detail, "kvm_intel is not loaded");
}

TEST_F(HostVmTest, TdxReady) {
  Put("/dev/kvm", "");
  Put("/proc/cpuinfo", "flags\t\t: fpu vmx tdx_host_platform\n");
  Put("/sys/module/kvm_intel/parameters/tdx", "Y\n");
  auto c = Probe();
  EXPECT_TRUE(c[1].ok);
  EXPECT_EQ(c[1].detail, "kvm_intel.tdx = Y");
  EXPECT_FALSE(c[2].ok);
}

TEST_F(HostVmTest, InsideATdGuest) {
  Put("/proc/cpuinfo", "processor\t: 0\nflags\t\t: fpu tdx_guest\n");
  std::filesystem::create_directories(root_.path() + "/sys/kernel/config/tsm/report");
  auto c = Probe();
  EXPECT_TRUE(c[2].ok);
  EXPECT_EQ(c[2].detail, "yes; quotes through configfs-tsm (/sys/kernel/config/tsm/report)");
  // Without configfs-tsm: a guest, but no way to get a quote.
  std::filesystem::remove_all(root_.path() + "/sys/kernel/config");
  c = Probe();
  EXPECT_TRUE(c[2].ok);
  EXPECT_EQ(c[2].detail, "yes, but configfs-tsm is missing");
  EXPECT_NE(c[2].fix.find("CONFIG_TSM_REPORTS"), std::string::npos);
}

TEST(QemuProbeTest, MissingQemuIsSaid) {
  sandbox::HostCheck c = ProbeQemu("/nonexistent/qemu-system-x86_64");
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(c.detail, "/nonexistent/qemu-system-x86_64 not found");
}

}  // namespace
}  // namespace corral::launcher

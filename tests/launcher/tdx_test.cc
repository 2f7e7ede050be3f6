// Intel TDX without TDX hardware: the quote parser on public sample quotes
// (tests/testdata/tdx, see its PROVENANCE.md) and on truncated and corrupted copies; the
// configfs-tsm client against a fake tree that acts as the kernel; the launch argument vector
// and libvirt XML; host readiness against fixture trees.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "launcher/crypto.h"
#include "launcher/host_vm.h"
#include "launcher/tdx_launch.h"
#include "launcher/tdx_quote.h"
#include "launcher/tsm.h"
#include "tests/testing.h"

namespace corral::launcher::tdx {
namespace {

std::vector<uint8_t> Sample(const std::string& name) {
  std::ifstream in(std::string(TDX_TESTDATA) + "/" + name, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

TEST(TdxQuote, AVersion4ProductionQuote) {
  auto bytes = Sample("tdx_prod_quote_SPR_E4.dat");
  ASSERT_EQ(bytes.size(), 4974u);
  auto q = ParseQuote(bytes);
  ASSERT_TRUE(q) << q.error();
  EXPECT_EQ(q->version, 4);
  EXPECT_EQ(q->tee_type, 0x81u);
  EXPECT_EQ(q->body_type, 2);
  EXPECT_EQ(q->size, 4935u);  // the sample carries 39 bytes after the quote
  EXPECT_EQ(q->signed_bytes.size(), 48u + 584u);
  EXPECT_EQ(Hex(q->report_data).substr(0, 16), "6c62dec1b8191749");
  EXPECT_NE(q->pck_chain.find("-----BEGIN CERTIFICATE-----"), std::string::npos);
  auto v = VerifySignatures(*q);
  EXPECT_TRUE(v) << v.error();
}

TEST(TdxQuote, AVersion5QuoteWithATdx15Body) {
  auto bytes = Sample("quote_v5_sample.dat");
  auto q = ParseQuote(bytes);
  ASSERT_TRUE(q) << q.error();
  EXPECT_EQ(q->version, 5);
  EXPECT_EQ(q->body_type, 3);
  EXPECT_EQ(q->size, bytes.size());
  EXPECT_EQ(q->signed_bytes.size(), 48u + 6u + 648u);
  EXPECT_EQ(Hex(q->report_data).substr(0, 16), "945eaacf5abc1f71");
  auto v = VerifySignatures(*q);
  EXPECT_TRUE(v) << v.error();
}

TEST(TdxQuote, TheReportDataOfAGuestsQuoteIsItsNonce) {
  auto bytes = Sample("cos-113-tdx-quote.dat");
  auto nonce = Sample("nonce.dat");
  auto q = ParseQuote(bytes);
  ASSERT_TRUE(q) << q.error();
  EXPECT_EQ(q->size, 4935u);  // zero padding up to 8000 bytes is not part of it
  ASSERT_EQ(nonce.size(), 64u);
  EXPECT_TRUE(std::equal(nonce.begin(), nonce.end(), q->report_data.begin()));
  auto v = VerifySignatures(*q);
  EXPECT_TRUE(v) << v.error();
}

TEST(TdxQuote, EveryTruncationIsRefusedAndSaysWhere) {
  for (const char* name : {"tdx_prod_quote_SPR_E4.dat", "quote_v5_sample.dat"}) {
    auto bytes = Sample(name);
    size_t size = ParseQuote(bytes)->size;
    for (size_t n = 0; n < size; ++n) {
      auto q = ParseQuote(std::span(bytes.data(), n));
      ASSERT_FALSE(q) << name << " cut at " << n;
      ASSERT_TRUE(q.error().starts_with("quote: truncated in ")) << q.error();
    }
  }
  auto bytes = Sample("tdx_prod_quote_SPR_E4.dat");
  EXPECT_EQ(ParseQuote(std::span(bytes.data(), 100)).error(),
            "quote: truncated in the TD report body (offset 48, needs 584 bytes, has 52)");
}

TEST(TdxQuote, CorruptedFieldsAreNamed) {
  auto bytes = Sample("tdx_prod_quote_SPR_E4.dat");
  auto with = [&](size_t offset, uint8_t value) {
    auto copy = bytes;
    copy[offset] = value;
    return ParseQuote(copy);
  };
  EXPECT_EQ(with(0, 3).error(), "quote: version 3 is not 4 or 5");
  EXPECT_EQ(with(2, 3).error(), "quote: attestation key type 3 is not 2 (ECDSA-256 with P-256)");
  EXPECT_EQ(with(4, 0).error(), "quote: TEE type 0 is not 0x81 (TDX)");
  // The signature data length, made larger than what follows.
  EXPECT_TRUE(with(48 + 584 + 3, 0x7f).error().starts_with("quote: truncated in the signature data"));
  // The certification data type.
  EXPECT_EQ(with(48 + 584 + 4 + 128, 5).error(),
            "quote: certification data type 5 is not 6 (QE report)");
  auto v5 = Sample("quote_v5_sample.dat");
  v5[48] = 9;
  EXPECT_EQ(ParseQuote(v5).error(), "quote: body type 9 is not 2 (TDX 1.0) or 3 (TDX 1.5)");
}

TEST(TdxQuote, AChangedByteBreaksTheSignatures) {
  auto bytes = Sample("tdx_prod_quote_SPR_E4.dat");
  auto verify_with = [&](size_t offset) {
    auto copy = bytes;
    copy[offset] ^= 1;
    auto q = ParseQuote(copy);
    EXPECT_TRUE(q) << offset;
    return VerifySignatures(*q);
  };
  size_t sig = 48 + 584 + 4;
  EXPECT_EQ(verify_with(48 + 520).error(),  // REPORTDATA
            "quote: the signature over header and body does not verify");
  EXPECT_EQ(verify_with(sig + 10).error(),  // the signature itself
            "quote: the signature over header and body does not verify");
  // The QE report (after the 6-byte certification data header): its body, then its signature.
  EXPECT_EQ(verify_with(sig + 134 + 20).error(),
            "quote: the QE report's signature does not verify with the PCK key");
  EXPECT_EQ(verify_with(sig + 134 + 384 + 5).error(),
            "quote: the QE report's signature does not verify with the PCK key");
  // The QE authentication data, which the QE report binds.
  EXPECT_EQ(verify_with(sig + 134 + 384 + 64 + 2 + 3).error(),
            "quote: the QE report does not bind the attestation key");
}

TEST(TdxQuote, ReportDataBindsThePolicyAndTheAuditHead) {
  std::string policy = Sha256Hex("policy"), head = Sha256Hex("head");
  auto rd = ReportDataFor(policy, head);
  ASSERT_TRUE(rd);
  EXPECT_EQ(Hex(*rd), policy + head);
  EXPECT_EQ(ReportDataFor("abc", head).error(), "policy sha256: not 64 hex digits");
  EXPECT_EQ(ReportDataFor(policy, std::string(64, 'g')).error(), "audit head: not lower-case hex");
}

// The kernel's side of configfs-tsm, on a plain folder: a new entry gets provider and
// generation; writing inblob bumps generation and makes outblob a quote for it.
class FakeKernel : public Configfs {
 public:
  FakeKernel(const std::string& root, std::string provider)
      : Configfs(root), provider_(std::move(provider)) {
    std::filesystem::create_directories(root + "/report");
  }
  std::expected<void, std::string> MakeEntry(const std::string& name) override {
    auto r = Configfs::MakeEntry(name);
    if (!r) return r;
    testing::WriteFile(PathOf(name, "provider"), provider_ + "\n");
    testing::WriteFile(PathOf(name, "generation"), "0\n");
    testing::WriteFile(PathOf(name, "inblob"), "");
    testing::WriteFile(PathOf(name, "outblob"), "");
    entries_.push_back(name);
    return r;
  }
  std::expected<void, std::string> Write(const std::string& name, const std::string& attribute,
                                         const std::string& bytes) override {
    auto r = Configfs::Write(name, attribute, bytes);
    if (!r) return r;
    Bump(name);
    auto quote = Sample("tdx_prod_quote_SPR_E4.dat");
    std::copy(bytes.begin(), bytes.end(), quote.begin() + 48 + 520);
    testing::WriteFile(PathOf(name, "outblob"), std::string(quote.begin(), quote.end()));
    return r;
  }
  std::expected<std::string, std::string> Read(const std::string& name,
                                               const std::string& attribute) override {
    if (attribute == "outblob" && concurrent_writer_) Bump(name);
    return Configfs::Read(name, attribute);
  }
  void RemoveEntry(const std::string& name) override {
    std::filesystem::remove_all(PathOf(name));  // configfs removes the attributes itself
  }
  void Bump(const std::string& name) {
    int g = std::stoi(*Configfs::Read(name, "generation"));
    testing::WriteFile(PathOf(name, "generation"), std::to_string(g + 1) + "\n");
  }

  bool concurrent_writer_ = false;
  std::vector<std::string> entries_;

 private:
  std::string provider_;
};

TEST(ConfigfsTsm, AQuoteCarriesTheReportDataAndTheEntryIsRemoved) {
  testing::ScratchDir dir("corral-tsm");
  FakeKernel kernel(dir.path(), "tdx_guest");
  auto rd = ReportDataFor(Sha256Hex("policy"), Sha256Hex("head"));
  auto quote = GetQuote(&kernel, *rd);
  ASSERT_TRUE(quote) << quote.error();
  auto q = ParseQuote(*quote);
  ASSERT_TRUE(q) << q.error();
  EXPECT_EQ(q->report_data, *rd);
  ASSERT_EQ(kernel.entries_.size(), 1u);
  EXPECT_FALSE(std::filesystem::exists(kernel.PathOf(kernel.entries_[0])));
}

TEST(ConfigfsTsm, AnotherWriterMeanwhileIsRefused) {
  testing::ScratchDir dir("corral-tsm");
  FakeKernel kernel(dir.path(), "tdx_guest");
  kernel.concurrent_writer_ = true;
  auto quote = GetQuote(&kernel, {});
  ASSERT_FALSE(quote);
  EXPECT_EQ(quote.error(),
            "configfs-tsm: generation went 0, 1, 2: another writer changed the report; not using it");
  EXPECT_FALSE(std::filesystem::exists(kernel.PathOf(kernel.entries_[0])));
}

TEST(ConfigfsTsm, AnotherProviderIsRefused) {
  testing::ScratchDir dir("corral-tsm");
  FakeKernel kernel(dir.path(), "sev_guest");
  auto quote = GetQuote(&kernel, {});
  ASSERT_FALSE(quote);
  EXPECT_EQ(quote.error(), "configfs-tsm: the provider is 'sev_guest', not tdx_guest");
}

TEST(ConfigfsTsm, NoConfigfsIsSaid) {
  testing::ScratchDir dir("corral-tsm");
  Configfs fs(dir.path() + "/missing");
  auto quote = GetQuote(&fs, {});
  ASSERT_FALSE(quote);
  EXPECT_TRUE(quote.error().starts_with("mkdir " + dir.path() + "/missing/report/corral-"))
      << quote.error();
}

Launch Golden() {
  Launch l;
  l.name = "run1-task,a";
  l.firmware = "/usr/share/ovmf/OVMF.inteltdx.fd";
  l.kernel = "/var/lib/corral/vmlinuz";
  l.initrd = "/var/lib/corral/initrd.img";
  l.append = "console=ttyS0 corral.task=a";
  l.memory_mib = 4096;
  l.cpus = 2;
  l.workspace = "/repo/.git/corral/worktrees/run1/a,b";
  return l;
}

TEST(TdxLaunch, QemuArgumentVector) {
  std::vector<std::string> expected = {
      "qemu-system-x86_64", "-name", "run1-task,,a", "-accel", "kvm", "-cpu", "host", "-smp", "2",
      "-m", "4096M", "-object",
      R"({"qom-type":"tdx-guest","id":"tdx0","quote-generation-socket":{"type":"vsock","cid":"2","port":"4050"}})",
      "-machine", "q35,kernel-irqchip=split,confidential-guest-support=tdx0,hpet=off",
      "-bios", "/usr/share/ovmf/OVMF.inteltdx.fd", "-kernel", "/var/lib/corral/vmlinuz",
      "-initrd", "/var/lib/corral/initrd.img", "-append", "console=ttyS0 corral.task=a",
      "-nodefaults", "-nographic", "-serial", "stdio", "-no-reboot",
      "-device", "vhost-vsock-pci,guest-cid=3",
      "-fsdev", "local,id=workspace,security_model=none,path=/repo/.git/corral/worktrees/run1/a,,b",
      "-device", "virtio-9p-pci,fsdev=workspace,mount_tag=workspace"};
  EXPECT_EQ(QemuArgv(Golden()), expected);
}

TEST(TdxLaunch, LibvirtXml) {
  Launch l = Golden();
  l.name = "a<b>&'c'";
  l.qgs_socket = "/var/run/tdx-qgs/qgs.socket";
  std::string xml = LibvirtXml(l);
  EXPECT_NE(xml.find("<name>a&lt;b&gt;&amp;&#39;c&#39;</name>"), std::string::npos) << xml;
  EXPECT_NE(xml.find("  <launchSecurity type='tdx'>\n    <policy>0x10000000</policy>\n"
                     "    <quoteGenerationService path='/var/run/tdx-qgs/qgs.socket'/>\n"
                     "  </launchSecurity>\n"),
            std::string::npos)
      << xml;
  EXPECT_NE(xml.find("<loader type='rom' stateless='yes'>/usr/share/ovmf/OVMF.inteltdx.fd</loader>"),
            std::string::npos);
  EXPECT_NE(xml.find("<memory unit='MiB'>4096</memory>"), std::string::npos);
  EXPECT_NE(xml.find("<ioapic driver='qemu'/>"), std::string::npos);
}

class TdxReadiness : public ::testing::Test {
 protected:
  void Put(const std::string& path, const std::string& content) {
    std::filesystem::create_directories(std::filesystem::path(root_.path() + path).parent_path());
    testing::WriteFile(root_.path() + path, content);
  }
  // A stand-in for qemu-system-x86_64 that prints `version` and, when asked, its objects.
  std::string FakeQemu(const std::string& version, bool tdx) {
    std::string path = root_.path() + "/qemu-" + version + (tdx ? "-tdx" : "");
    testing::WriteFile(path, "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'QEMU emulator version " +
                                 version + "'; else echo 'memory-backend-file'; " +
                                 (tdx ? "echo tdx-guest; " : "") + "fi\n");
    chmod(path.c_str(), 0755);
    return path;
  }
  std::vector<std::string> Missing(const std::string& qemu) {
    return MissingForTdx(root_.path(), qemu, &firmware_);
  }
  testing::ScratchDir root_{"corral-fixture-root"};
  std::string firmware_;
};

TEST_F(TdxReadiness, AHostWithNothingNamesEveryPiece) {
  Put("/proc/cpuinfo", "flags\t\t: fpu svm\n");
  auto m = Missing(root_.path() + "/no-qemu");
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m[0], "TDX host support (not an Intel VT-x host)");
  EXPECT_EQ(m[1], "/dev/kvm");
  EXPECT_TRUE(m[2].starts_with("TDVF firmware (OVMF.inteltdx.fd in /usr/share/ovmf"));
  EXPECT_EQ(m[3], "QEMU 10.1 or newer (" + root_.path() + "/no-qemu not found)");
}

TEST_F(TdxReadiness, AReadyHostLacksNothing) {
  Put("/dev/kvm", "");
  Put("/proc/cpuinfo", "flags\t\t: fpu vmx tdx_host_platform\n");
  Put("/sys/module/kvm_intel/parameters/tdx", "Y\n");
  Put("/usr/share/ovmf/OVMF.inteltdx.fd", "tdvf");
  EXPECT_EQ(Missing(FakeQemu("10.1.0", true)), std::vector<std::string>{});
  EXPECT_EQ(firmware_, root_.path() + "/usr/share/ovmf/OVMF.inteltdx.fd");
}

TEST_F(TdxReadiness, AnOldQemuOrOneWithoutTdxIsNamed) {
  Put("/dev/kvm", "");
  Put("/proc/cpuinfo", "flags\t\t: fpu vmx\n");
  Put("/sys/module/kvm_intel/parameters/tdx", "N\n");
  Put("/usr/share/qemu/OVMF.inteltdx.fd", "tdvf");
  std::string old = FakeQemu("7.2.19", false);
  auto m = Missing(old);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0],
            "TDX host support (kvm_intel.tdx = N: TDX is off, or its module failed to initialize)");
  EXPECT_EQ(m[1], "QEMU 10.1 or newer (" + old + " is 7.2)");
  std::string plain = FakeQemu("10.2.0", false);
  EXPECT_EQ(Missing(plain).back(), "QEMU's tdx-guest object (" + plain + " was built without it)");
}

}  // namespace
}  // namespace corral::launcher::tdx

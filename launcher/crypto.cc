#include "launcher/crypto.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace corral::launcher {
namespace {

constexpr size_t kRawKeySize = 32;
constexpr size_t kSignatureSize = 64;

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

std::string RawPublic(EVP_PKEY* key) {
  unsigned char raw[kRawKeySize];
  size_t len = sizeof(raw);
  if (EVP_PKEY_get_raw_public_key(key, raw, &len) != 1 || len != kRawKeySize) return "";
  return ToHex(std::string_view(reinterpret_cast<char*>(raw), len));
}

Pkey ReadPem(const std::string& path, bool* is_private) {
  FILE* f = std::fopen(path.c_str(), "re");
  if (!f) return nullptr;
  Pkey key(PEM_read_PrivateKey(f, nullptr, nullptr, nullptr));
  *is_private = key != nullptr;
  if (!key) {
    if (std::fseek(f, 0, SEEK_SET) != 0) {
      std::fclose(f);
      return nullptr;
    }
    key.reset(PEM_read_PUBKEY(f, nullptr, nullptr, nullptr));
  }
  std::fclose(f);
  if (key && EVP_PKEY_get_id(key.get()) != EVP_PKEY_ED25519) return nullptr;
  return key;
}

// Writes a new key to `path` atomically: a private temporary file, then link(2), which fails
// when another corral made the key first (then that key is used).
std::expected<void, std::string> CreateKey(const std::string& path) {
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (!std::filesystem::exists(dir)) {
    std::filesystem::create_directories(dir, ec);
    if (ec) return std::unexpected("create " + dir.string() + ": " + ec.message());
    chmod(dir.c_str(), 0700);
  }
  Pkey key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  if (!key) return std::unexpected("could not generate an Ed25519 key");
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return std::unexpected(Errno("create " + tmp));
  FILE* f = fdopen(fd, "w");
  bool ok = f && PEM_write_PrivateKey(f, key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1;
  ok = ok && std::fflush(f) == 0 && fsync(fd) == 0;
  if (f) std::fclose(f);
  if (!ok) {
    unlink(tmp.c_str());
    return std::unexpected("write " + tmp);
  }
  int linked = link(tmp.c_str(), path.c_str());
  int saved = errno;
  unlink(tmp.c_str());
  if (linked != 0 && saved != EEXIST) {
    errno = saved;
    return std::unexpected(Errno("create " + path));
  }
  return {};
}

}  // namespace

std::string ToHex(std::string_view bytes) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

std::string FromHex(std::string_view hex) {
  auto nibble = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (hex.size() % 2 != 0) return "";
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return "";
    out += static_cast<char>(hi << 4 | lo);
  }
  return out;
}

std::string Sha256Raw(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(digest), len);
}

std::string Sha256Hex(std::string_view data) { return ToHex(Sha256Raw(data)); }

struct SigningKey::Impl {
  Pkey key;
  bool can_sign = false;
};

SigningKey::SigningKey(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)), public_hex_(RawPublic(impl_->key.get())) {}
SigningKey::SigningKey(SigningKey&&) noexcept = default;
SigningKey& SigningKey::operator=(SigningKey&&) noexcept = default;
SigningKey::~SigningKey() = default;

std::string SigningKey::DefaultPath() {
  if (const char* p = std::getenv("CORRAL_AUDIT_KEY"); p && *p) return p;
  std::string config;
  if (const char* x = std::getenv("XDG_CONFIG_HOME"); x && *x == '/') {
    config = x;
  } else {
    const char* home = std::getenv("HOME");
    if (!home || *home != '/') {
      struct passwd* pw = getpwuid(geteuid());
      home = pw ? pw->pw_dir : "/";
    }
    config = std::string(home) + "/.config";
  }
  return config + "/corral/audit-ed25519.pem";
}

std::expected<SigningKey, std::string> SigningKey::LoadOrCreate(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) return std::unexpected(Errno("audit key " + path));
    if (auto r = CreateKey(path); !r) return std::unexpected("audit key: " + r.error());
    if (lstat(path.c_str(), &st) != 0) return std::unexpected(Errno("audit key " + path));
  }
  if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
    return std::unexpected("audit key " + path +
                           ": must be a regular file of yours with mode 0600 (it signs the "
                           "audit logs; fix it with chmod 600 or remove it to make a new one)");
  }
  auto impl = std::make_unique<Impl>();
  bool is_private = false;
  impl->key = ReadPem(path, &is_private);
  if (!impl->key || !is_private) {
    return std::unexpected("audit key " + path + ": not an Ed25519 private key in PEM");
  }
  impl->can_sign = true;
  return SigningKey(std::move(impl));
}

std::expected<SigningKey, std::string> SigningKey::LoadPublic(const std::string& hex_or_path) {
  auto impl = std::make_unique<Impl>();
  std::string raw = FromHex(hex_or_path);
  if (raw.size() == kRawKeySize) {
    impl->key.reset(EVP_PKEY_new_raw_public_key(
        EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(raw.data()), raw.size()));
  } else {
    bool is_private = false;
    impl->key = ReadPem(hex_or_path, &is_private);
  }
  if (!impl->key) {
    return std::unexpected(hex_or_path +
                           ": neither 64 hex digits nor a PEM file with an Ed25519 key");
  }
  return SigningKey(std::move(impl));
}

std::string SigningKey::Sign(std::string_view message) const {
  if (!impl_->can_sign) return "";
  MdCtx ctx(EVP_MD_CTX_new());
  unsigned char sig[kSignatureSize];
  size_t len = sizeof(sig);
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, impl_->key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), sig, &len, reinterpret_cast<const unsigned char*>(message.data()),
                     message.size()) != 1) {
    return "";
  }
  return ToHex(std::string_view(reinterpret_cast<char*>(sig), len));
}

bool SigningKey::Verify(const std::string& public_hex, std::string_view message,
                        const std::string& signature_hex) {
  std::string raw = FromHex(public_hex);
  std::string sig = FromHex(signature_hex);
  if (raw.size() != kRawKeySize || sig.size() != kSignatureSize) return false;
  Pkey key(EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(raw.data()), raw.size()));
  MdCtx ctx(EVP_MD_CTX_new());
  if (!key || !ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1) {
    return false;
  }
  return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                          reinterpret_cast<const unsigned char*>(message.data()),
                          message.size()) == 1;
}

}  // namespace corral::launcher

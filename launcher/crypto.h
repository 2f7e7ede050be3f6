// The two primitives of the audit trail, from OpenSSL: SHA-256 and Ed25519 signatures with a key
// kept under the user's config directory.
#pragma once

#include <expected>
#include <memory>
#include <string>
#include <string_view>

namespace corral::launcher {

// SHA-256 of `data`, as 32 raw bytes or 64 lower-case hex digits.
std::string Sha256Raw(std::string_view data);
std::string Sha256Hex(std::string_view data);

std::string ToHex(std::string_view bytes);
// Empty when `hex` is not an even-length string of hex digits.
std::string FromHex(std::string_view hex);

// An Ed25519 key pair (or, loaded from a public key, one that can only verify).
class SigningKey {
 public:
  // The user's audit key: $CORRAL_AUDIT_KEY, else $XDG_CONFIG_HOME/corral/audit-ed25519.pem, else
  // ~/.config/corral/audit-ed25519.pem.
  static std::string DefaultPath();
  // Loads the private key at `path`, making it (mode 0600, its folder 0700) when it does not
  // exist. Refuses a key file that another user owns or that others may read.
  static std::expected<SigningKey, std::string> LoadOrCreate(const std::string& path);
  // Loads a key to check signatures with: 64 hex digits, or a PEM file (public or private key).
  static std::expected<SigningKey, std::string> LoadPublic(const std::string& hex_or_path);

  SigningKey(SigningKey&&) noexcept;
  SigningKey& operator=(SigningKey&&) noexcept;
  ~SigningKey();

  // The raw 32-byte public key in hex: what the log records and what auditors compare.
  const std::string& public_hex() const { return public_hex_; }
  // A 64-byte signature in hex; empty when this key cannot sign.
  std::string Sign(std::string_view message) const;
  // Checks a signature made by the holder of `public_hex`.
  static bool Verify(const std::string& public_hex, std::string_view message,
                     const std::string& signature_hex);

 private:
  struct Impl;
  explicit SigningKey(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::string public_hex_;
};

}  // namespace corral::launcher

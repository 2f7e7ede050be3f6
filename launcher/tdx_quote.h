// Intel TDX quotes: the parser and the checks corral makes of a quote a TD guest obtained.
//
// Layouts (Intel TDX DCAP Quote Generation Library and Quote Verification Library): version 4 is
// a 48-byte header, a 584-byte TD report body, a 4-byte signature data length and the signature
// data; version 5 puts a body descriptor (type 2: the 584-byte TDX 1.0 body; type 3: the 648-byte
// TDX 1.5 body) between header and body. The signature data (ECDSA-256 with P-256) holds the
// quote's signature, the attestation key, and certification data of type 6: the quoting
// enclave's report, its signature, its authentication data, and the PCK certificate chain
// (type 5, PEM). The parser stops at the lengths the quote declares; bytes after them (samples
// carry padding) are not part of it.
#pragma once

#include <array>
#include <cstdint>
#include <expected>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace corral::launcher::tdx {

using Measurement = std::array<uint8_t, 48>;

struct Quote {
  uint16_t version = 0;         // 4 or 5
  uint16_t key_type = 0;        // 2: ECDSA-256 with P-256
  uint32_t tee_type = 0;        // 0x81: TDX
  uint16_t body_type = 2;       // 2: TDX 1.0 body, 3: TDX 1.5 body
  std::array<uint8_t, 16> tee_tcb_svn{};
  Measurement mr_seam{}, mr_signer_seam{};
  uint64_t seam_attributes = 0, td_attributes = 0, xfam = 0;
  Measurement mr_td{}, mr_config_id{}, mr_owner{}, mr_owner_config{};
  std::array<Measurement, 4> rtmr{};
  std::array<uint8_t, 64> report_data{};

  std::vector<uint8_t> signed_bytes;         // header and body, what the attestation key signed
  std::array<uint8_t, 64> signature{};       // r || s
  std::array<uint8_t, 64> attestation_key{}; // x || y
  std::vector<uint8_t> qe_report;            // 384 bytes, signed by the PCK key
  std::array<uint8_t, 64> qe_report_signature{};
  std::vector<uint8_t> qe_auth_data;
  std::string pck_chain;  // PEM certificates, leaf first
  size_t size = 0;        // the bytes the quote declares; the input may hold more
};

// Parses a quote. Errors name the field and offset: "quote: truncated in the TD report body
// (offset 48, needs 584 bytes, has 100)", "quote: version 3 is not 4 or 5", ...
std::expected<Quote, std::string> ParseQuote(std::span<const uint8_t> bytes);

// The cryptographic links inside a quote: the attestation key signed the header and body; the
// quoting enclave's report binds that key (its REPORTDATA starts with SHA-256(key || auth data));
// the PCK leaf certificate signed the QE report; each certificate of the chain is signed by the
// next, and the last by itself. Not checked here: that the root is Intel's, revocation, TCB
// status (those need Intel's collateral).
std::expected<void, std::string> VerifySignatures(const Quote& quote);

// The REPORTDATA corral asks for: SHA-256 of the task's policy file, then the audit log's head
// hash (both 32 bytes, from hex).
std::expected<std::array<uint8_t, 64>, std::string> ReportDataFor(std::string_view policy_sha256_hex,
                                                                  std::string_view audit_head_hex);

std::string Hex(std::span<const uint8_t> bytes);

}  // namespace corral::launcher::tdx

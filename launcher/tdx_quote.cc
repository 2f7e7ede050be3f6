#include "launcher/tdx_quote.h"

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstring>
#include <memory>

#include "launcher/crypto.h"

namespace corral::launcher::tdx {
namespace {

constexpr size_t kHeaderSize = 48;
constexpr size_t kBody10Size = 584;
constexpr size_t kBody15Size = 648;
constexpr size_t kQeReportSize = 384;
constexpr uint16_t kCertQeReport = 6;
constexpr uint16_t kCertPckChain = 5;

// Reads little-endian fields in order, and says where it ran out.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> b) : b_(b) {}

  bool Need(size_t n, const char* what, std::string* error) const {
    if (b_.size() - pos_ >= n) return true;
    *error = std::string("quote: truncated in ") + what + " (offset " + std::to_string(pos_) +
             ", needs " + std::to_string(n) + " bytes, has " + std::to_string(b_.size() - pos_) + ")";
    return false;
  }
  uint64_t Le(size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(b_[pos_ + i]) << (8 * i);
    pos_ += n;
    return v;
  }
  template <size_t N>
  void Copy(std::array<uint8_t, N>* out) {
    std::memcpy(out->data(), b_.data() + pos_, N);
    pos_ += N;
  }
  std::span<const uint8_t> Take(size_t n) {
    auto s = b_.subspan(pos_, n);
    pos_ += n;
    return s;
  }
  size_t pos() const { return pos_; }

 private:
  std::span<const uint8_t> b_;
  size_t pos_ = 0;
};

void ReadBody(Reader* r, Quote* q) {
  r->Copy(&q->tee_tcb_svn);
  r->Copy(&q->mr_seam);
  r->Copy(&q->mr_signer_seam);
  q->seam_attributes = r->Le(8);
  q->td_attributes = r->Le(8);
  q->xfam = r->Le(8);
  r->Copy(&q->mr_td);
  r->Copy(&q->mr_config_id);
  r->Copy(&q->mr_owner);
  r->Copy(&q->mr_owner_config);
  for (Measurement& m : q->rtmr) r->Copy(&m);
  r->Copy(&q->report_data);
}

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;

// An EVP_PKEY for the P-256 point x || y.
PkeyPtr P256Key(std::span<const uint8_t, 64> xy) {
  uint8_t point[65];
  point[0] = 0x04;  // uncompressed
  std::memcpy(point + 1, xy.data(), 64);
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
  OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point));
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
  EVP_PKEY* key = nullptr;
  if (ctx && params && EVP_PKEY_fromdata_init(ctx) == 1) {
    EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params);
  }
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  return PkeyPtr(key);
}

// Whether `key` signed SHA-256(data) with the raw ECDSA signature r || s.
bool VerifyEcdsa(EVP_PKEY* key, std::span<const uint8_t> data, std::span<const uint8_t, 64> rs) {
  ECDSA_SIG* sig = ECDSA_SIG_new();
  BIGNUM* r = BN_bin2bn(rs.data(), 32, nullptr);
  BIGNUM* s = BN_bin2bn(rs.data() + 32, 32, nullptr);
  ECDSA_SIG_set0(sig, r, s);
  unsigned char* der = nullptr;
  int der_len = i2d_ECDSA_SIG(sig, &der);
  ECDSA_SIG_free(sig);
  if (der_len <= 0) return false;
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  bool ok = EVP_DigestVerifyInit(md, nullptr, EVP_sha256(), nullptr, key) == 1 &&
            EVP_DigestVerify(md, der, static_cast<size_t>(der_len), data.data(), data.size()) == 1;
  EVP_MD_CTX_free(md);
  OPENSSL_free(der);
  return ok;
}

std::expected<std::vector<uint8_t>, std::string> FromHex(std::string_view hex, const char* what) {
  std::vector<uint8_t> out;
  if (hex.size() != 64) return std::unexpected(std::string(what) + ": not 64 hex digits");
  for (size_t i = 0; i < hex.size(); i += 2) {
    auto nibble = [](char c) {
      return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    };
    int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::unexpected(std::string(what) + ": not lower-case hex");
    out.push_back(static_cast<uint8_t>(hi * 16 + lo));
  }
  return out;
}

}  // namespace

std::string Hex(std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

std::expected<Quote, std::string> ParseQuote(std::span<const uint8_t> bytes) {
  Quote q;
  Reader r(bytes);
  std::string error;
  if (!r.Need(kHeaderSize, "the header", &error)) return std::unexpected(error);
  q.version = static_cast<uint16_t>(r.Le(2));
  q.key_type = static_cast<uint16_t>(r.Le(2));
  q.tee_type = static_cast<uint32_t>(r.Le(4));
  if (q.version != 4 && q.version != 5) {
    return std::unexpected("quote: version " + std::to_string(q.version) + " is not 4 or 5");
  }
  if (q.key_type != 2) {
    return std::unexpected("quote: attestation key type " + std::to_string(q.key_type) +
                           " is not 2 (ECDSA-256 with P-256)");
  }
  if (q.tee_type != 0x81) {
    return std::unexpected("quote: TEE type " + std::to_string(q.tee_type) + " is not 0x81 (TDX)");
  }
  r.Take(kHeaderSize - 8);  // QE and PCE SVNs, QE vendor id, user data
  size_t body_size = kBody10Size;
  if (q.version == 5) {
    if (!r.Need(6, "the body descriptor", &error)) return std::unexpected(error);
    q.body_type = static_cast<uint16_t>(r.Le(2));
    uint64_t size = r.Le(4);
    size_t expected = q.body_type == 2 ? kBody10Size : q.body_type == 3 ? kBody15Size : 0;
    if (expected == 0) {
      return std::unexpected("quote: body type " + std::to_string(q.body_type) +
                             " is not 2 (TDX 1.0) or 3 (TDX 1.5)");
    }
    if (size != expected) {
      return std::unexpected("quote: body size " + std::to_string(size) + " for body type " +
                             std::to_string(q.body_type) + " is not " + std::to_string(expected));
    }
    body_size = expected;
  }
  if (!r.Need(body_size, "the TD report body", &error)) return std::unexpected(error);
  size_t body_start = r.pos();
  ReadBody(&r, &q);
  r.Take(body_size - (r.pos() - body_start));  // TDX 1.5: TEE_TCB_SVN2, MRSERVICETD
  q.signed_bytes.assign(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(r.pos()));

  if (!r.Need(4, "the signature data length", &error)) return std::unexpected(error);
  uint64_t sig_len = r.Le(4);
  if (!r.Need(sig_len, "the signature data", &error)) return std::unexpected(error);
  q.size = r.pos() + sig_len;
  Reader s(r.Take(sig_len));
  if (!s.Need(128 + 6, "the signature and attestation key", &error)) {
    return std::unexpected(error);
  }
  s.Copy(&q.signature);
  s.Copy(&q.attestation_key);
  uint64_t cert_type = s.Le(2);
  uint64_t cert_size = s.Le(4);
  if (cert_type != kCertQeReport) {
    return std::unexpected("quote: certification data type " + std::to_string(cert_type) +
                           " is not 6 (QE report)");
  }
  if (!s.Need(cert_size, "the QE report certification data", &error)) return std::unexpected(error);
  Reader c(s.Take(cert_size));
  if (!c.Need(kQeReportSize + 64 + 2, "the QE report", &error)) return std::unexpected(error);
  auto report = c.Take(kQeReportSize);
  q.qe_report.assign(report.begin(), report.end());
  c.Copy(&q.qe_report_signature);
  uint64_t auth_size = c.Le(2);
  if (!c.Need(auth_size, "the QE authentication data", &error)) return std::unexpected(error);
  auto auth = c.Take(auth_size);
  q.qe_auth_data.assign(auth.begin(), auth.end());
  if (!c.Need(6, "the PCK certification data header", &error)) return std::unexpected(error);
  uint64_t pck_type = c.Le(2);
  uint64_t pck_size = c.Le(4);
  if (pck_type != kCertPckChain) {
    return std::unexpected("quote: PCK certification data type " + std::to_string(pck_type) +
                           " is not 5 (PCK certificate chain)");
  }
  if (!c.Need(pck_size, "the PCK certificate chain", &error)) return std::unexpected(error);
  auto chain = c.Take(pck_size);
  q.pck_chain.assign(chain.begin(), chain.end());
  while (!q.pck_chain.empty() && q.pck_chain.back() == '\0') q.pck_chain.pop_back();
  return q;
}

std::expected<void, std::string> VerifySignatures(const Quote& q) {
  PkeyPtr att = P256Key(q.attestation_key);
  if (!att) return std::unexpected("quote: the attestation key is not a P-256 point");
  if (!VerifyEcdsa(att.get(), q.signed_bytes, q.signature)) {
    return std::unexpected("quote: the signature over header and body does not verify");
  }
  // The QE report's REPORTDATA (offset 320) starts with SHA-256(attestation key || auth data).
  std::string bound(q.attestation_key.begin(), q.attestation_key.end());
  bound.append(q.qe_auth_data.begin(), q.qe_auth_data.end());
  std::string digest = Sha256Raw(bound);
  if (std::memcmp(q.qe_report.data() + 320, digest.data(), 32) != 0) {
    return std::unexpected("quote: the QE report does not bind the attestation key");
  }
  // The PCK chain, leaf first.
  std::vector<X509Ptr> certs;
  BIO* bio = BIO_new_mem_buf(q.pck_chain.data(), static_cast<int>(q.pck_chain.size()));
  while (X509* c = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) certs.emplace_back(c);
  BIO_free(bio);
  if (certs.empty()) return std::unexpected("quote: the PCK certificate chain holds no certificate");
  PkeyPtr pck(X509_get_pubkey(certs[0].get()));
  if (!pck || !VerifyEcdsa(pck.get(), q.qe_report, q.qe_report_signature)) {
    return std::unexpected("quote: the QE report's signature does not verify with the PCK key");
  }
  for (size_t i = 0; i < certs.size(); ++i) {
    X509* issuer = certs[i + 1 < certs.size() ? i + 1 : i].get();
    PkeyPtr key(X509_get_pubkey(issuer));
    if (!key || X509_verify(certs[i].get(), key.get()) != 1) {
      return std::unexpected("quote: PCK certificate " + std::to_string(i) +
                             " is not signed by the next one in the chain");
    }
  }
  return {};
}

std::expected<std::array<uint8_t, 64>, std::string> ReportDataFor(std::string_view policy_sha256_hex,
                                                                  std::string_view audit_head_hex) {
  auto policy = FromHex(policy_sha256_hex, "policy sha256");
  if (!policy) return std::unexpected(policy.error());
  auto head = FromHex(audit_head_hex, "audit head");
  if (!head) return std::unexpected(head.error());
  std::array<uint8_t, 64> out{};
  std::memcpy(out.data(), policy->data(), 32);
  std::memcpy(out.data() + 32, head->data(), 32);
  return out;
}

}  // namespace corral::launcher::tdx

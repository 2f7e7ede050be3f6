#include "sandbox/tls_intercept.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstring>

namespace corral::sandbox {
namespace {

std::unexpected<Error> SslError(const std::string& what) {
  unsigned long e = ERR_get_error();
  char buf[256] = "unknown error";
  if (e != 0) ERR_error_string_n(e, buf, sizeof(buf));
  ERR_clear_error();
  return Fail(what + ": " + buf);
}

EVP_PKEY* NewKey() { return EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"); }

// Adds an X.509v3 extension, `issuer` signing.
bool AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (!ext) return false;
  bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

// A certificate valid from an hour ago for a week, with a random serial number.
X509* NewCert(EVP_PKEY* key, const std::string& common_name) {
  X509* cert = X509_new();
  if (!cert) return nullptr;
  unsigned char serial[16];
  RAND_bytes(serial, sizeof(serial));
  serial[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  bool ok = X509_set_version(cert, 2) == 1 && bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) &&
            X509_gmtime_adj(X509_getm_notBefore(cert), -3600) &&
            X509_gmtime_adj(X509_getm_notAfter(cert), 7L * 24 * 3600) &&
            X509_set_pubkey(cert, key) == 1;
  BN_free(bn);
  X509_NAME* name = X509_get_subject_name(cert);
  ok = ok && X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                        reinterpret_cast<const unsigned char*>(common_name.c_str()),
                                        -1, -1, 0) == 1;
  if (!ok) {
    X509_free(cert);
    return nullptr;
  }
  return cert;
}

// Prefers HTTP/1.1 (the proxy reads requests as HTTP/1.1); a client that offers no ALPN still
// gets it.
int SelectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void*) {
  static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kHttp11, sizeof(kHttp11), in, inlen) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

Expected<std::shared_ptr<InterceptCa>> InterceptCa::Create(const std::vector<std::string>& domains) {
  std::shared_ptr<InterceptCa> ca(new InterceptCa());
  ca->key_ = NewKey();
  ca->leaf_key_ = NewKey();
  if (!ca->key_ || !ca->leaf_key_) return SslError("make a key");
  ca->cert_ = NewCert(ca->key_, "corral run CA (secrets.inject)");
  if (!ca->cert_) return SslError("make the CA certificate");
  X509_set_issuer_name(ca->cert_, X509_get_subject_name(ca->cert_));
  // Name constraints: these DNS subtrees and no IP address at all.
  std::string permitted;
  for (const std::string& d : domains) permitted += (permitted.empty() ? "" : ",") + ("permitted;DNS:" + d);
  if (permitted.empty()) return Fail("a CA for secrets.inject needs at least one host name");
  permitted += ",excluded;IP:0.0.0.0/0.0.0.0,excluded;IP:0:0:0:0:0:0:0:0/0:0:0:0:0:0:0:0";
  if (!AddExtension(ca->cert_, ca->cert_, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
      !AddExtension(ca->cert_, ca->cert_, NID_key_usage, "critical,keyCertSign,cRLSign") ||
      !AddExtension(ca->cert_, ca->cert_, NID_subject_key_identifier, "hash") ||
      !AddExtension(ca->cert_, ca->cert_, NID_name_constraints, "critical," + permitted)) {
    return SslError("CA certificate extensions");
  }
  if (X509_sign(ca->cert_, ca->key_, EVP_sha256()) == 0) return SslError("sign the CA certificate");
  BIO* bio = BIO_new(BIO_s_mem());
  if (!bio || PEM_write_bio_X509(bio, ca->cert_) != 1) {
    BIO_free(bio);
    return SslError("write the CA certificate");
  }
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  ca->cert_pem_.assign(data, static_cast<size_t>(n));
  BIO_free(bio);
  return ca;
}

InterceptCa::~InterceptCa() {
  for (auto& [host, ctx] : contexts_) SSL_CTX_free(ctx);
  X509_free(cert_);
  EVP_PKEY_free(leaf_key_);
  EVP_PKEY_free(key_);
}

Expected<ssl_ctx_st*> InterceptCa::ServerContext(const std::string& host) {
  std::lock_guard lock(mu_);
  if (auto it = contexts_.find(host); it != contexts_.end()) return it->second;
  X509* leaf = NewCert(leaf_key_, host);
  if (!leaf) return SslError("make a certificate for " + host);
  X509_set_issuer_name(leaf, X509_get_subject_name(cert_));
  bool ok = AddExtension(leaf, cert_, NID_basic_constraints, "critical,CA:FALSE") &&
            AddExtension(leaf, cert_, NID_key_usage, "critical,digitalSignature") &&
            AddExtension(leaf, cert_, NID_ext_key_usage, "serverAuth") &&
            AddExtension(leaf, cert_, NID_authority_key_identifier, "keyid:always") &&
            AddExtension(leaf, cert_, NID_subject_alt_name, "DNS:" + host) &&
            X509_sign(leaf, key_, EVP_sha256()) != 0;
  if (!ok) {
    X509_free(leaf);
    return SslError("sign a certificate for " + host);
  }
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  ok = ctx && SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) == 1 &&
       SSL_CTX_use_certificate(ctx, leaf) == 1 && SSL_CTX_use_PrivateKey(ctx, leaf_key_) == 1 &&
       SSL_CTX_add1_chain_cert(ctx, cert_) == 1;
  X509_free(leaf);
  if (!ok) {
    SSL_CTX_free(ctx);
    return SslError("TLS context for " + host);
  }
  SSL_CTX_set_alpn_select_cb(ctx, SelectAlpn, nullptr);
  contexts_[host] = ctx;
  return ctx;
}

}  // namespace corral::sandbox

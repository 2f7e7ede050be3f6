// The certificate authority of one run, for the hosts whose TLS the egress proxy terminates to
// put secrets into requests (secrets.inject). Only the run's sandboxes trust it (their CA bundle
// names it); its name constraints permit only the listed hosts, so a certificate it signed is
// worth nothing for any other host, inside the sandbox or out. The key never leaves memory.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "sandbox/error.h"

struct evp_pkey_st;
struct x509_st;
struct ssl_ctx_st;

namespace corral::sandbox {

class InterceptCa {
 public:
  // `domains`: DNS names whose subtrees the CA may vouch for ("api.github.com", "github.com").
  static Expected<std::shared_ptr<InterceptCa>> Create(const std::vector<std::string>& domains);
  ~InterceptCa();
  InterceptCa(const InterceptCa&) = delete;
  InterceptCa& operator=(const InterceptCa&) = delete;

  const std::string& cert_pem() const { return cert_pem_; }

  // A TLS server context (SSL_CTX, owned by this) that presents a certificate for `host`,
  // signed by the CA: made at the first call for the host, then reused. Thread-safe.
  Expected<ssl_ctx_st*> ServerContext(const std::string& host);

 private:
  InterceptCa() = default;
  evp_pkey_st* key_ = nullptr;       // the CA's, and (one per run) the leaves'
  evp_pkey_st* leaf_key_ = nullptr;
  x509_st* cert_ = nullptr;
  std::string cert_pem_;
  std::mutex mu_;
  std::map<std::string, ssl_ctx_st*> contexts_;
};

}  // namespace corral::sandbox

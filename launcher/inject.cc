#include "launcher/inject.h"

#include <openssl/rand.h>
#include <openssl/x509.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace corral::launcher {
namespace {

namespace fs = std::filesystem;

// The host's trust store: Debian's and Ubuntu's, Fedora's and RHEL's, else OpenSSL's default.
std::string SystemBundle() {
  for (const char* path : {"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
                           X509_get_default_cert_file()}) {
    std::ifstream in(path, std::ios::binary);
    if (!in) continue;
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
  return "";
}

std::string RandomHex(size_t bytes) {
  std::vector<unsigned char> raw(bytes);
  RAND_bytes(raw.data(), static_cast<int>(raw.size()));
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

bool WriteWhole(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  return static_cast<bool>(out.flush());
}

}  // namespace

std::expected<std::unique_ptr<Injector>, std::string> Injector::Create(
    const std::vector<const policy::Policy*>& policies, const HostEnv& host,
    const std::string& dir) {
  std::set<std::string> domains;
  std::map<std::string, std::string> values;
  for (const policy::Policy* p : policies) {
    if (p->secrets.inject.empty()) continue;
    if (p->network.egress != policy::EgressKind::kAllowList) {
      return std::unexpected("secrets.inject: needs network.egress to be an allow-list (only the "
                             "egress proxy can put the values into requests)");
    }
    for (const auto& [name, hosts] : p->secrets.inject) {
      auto secret = host.secrets.find(name);
      auto var = host.vars.find(name);
      if (secret == host.secrets.end() && var == host.vars.end()) {
        return std::unexpected("secrets.inject." + name +
                               ": is not set in corral's environment or --secrets-file");
      }
      values[name] = secret != host.secrets.end() ? secret->second : var->second;
      for (const std::string& text : hosts) {
        auto pattern = policy::ParseHostPattern(text);
        if (pattern) domains.insert(pattern->host);
      }
    }
  }
  if (values.empty()) return nullptr;
  auto ca = sandbox::InterceptCa::Create({domains.begin(), domains.end()});
  if (!ca) return std::unexpected("secrets.inject: " + ca.error().message);
  std::unique_ptr<Injector> in(new Injector());
  in->ca_ = *ca;
  in->dir_ = dir;
  in->ca_file_ = dir + "/corral-ca.pem";
  in->bundle_ = dir + "/ca-bundle.pem";
  in->values_ = std::move(values);
  for (const auto& [name, value] : in->values_) {
    in->placeholders_[name] = "corral-inject-" + name + "-" + RandomHex(12);
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  // The sandbox's user reads it (a mkdtemp folder is the caller's alone). A folder of someone
  // else's that others may read already (a pod's emptyDir) stays as it is.
  if (!ec) {
    std::error_code chmod_ec;
    fs::permissions(dir, fs::perms(0755), chmod_ec);
    constexpr auto kOthersRead = fs::perms::others_read | fs::perms::others_exec;
    if (chmod_ec && (fs::status(dir, ec).permissions() & kOthersRead) != kOthersRead) ec = chmod_ec;
  }
  std::string bundle = SystemBundle();
  if (!bundle.empty() && bundle.back() != '\n') bundle += '\n';
  if (ec || !WriteWhole(in->ca_file_, (*ca)->cert_pem()) ||
      !WriteWhole(in->bundle_, bundle + (*ca)->cert_pem())) {
    return std::unexpected("secrets.inject: cannot write the run's CA under " + dir);
  }
  return in;
}

std::map<std::string, std::string> Injector::Env(const policy::Policy& policy) const {
  if (policy.secrets.inject.empty()) return {};
  std::map<std::string, std::string> set = {
      {"SSL_CERT_FILE", bundle_},     {"CURL_CA_BUNDLE", bundle_},
      {"REQUESTS_CA_BUNDLE", bundle_}, {"GIT_SSL_CAINFO", bundle_},
      {"NODE_EXTRA_CA_CERTS", ca_file_}};
  for (const auto& [name, hosts] : policy.secrets.inject) set[name] = placeholders_.at(name);
  return set;
}

void Injector::Apply(const policy::Policy& policy, sandbox::Spec* spec) const {
  if (policy.secrets.inject.empty()) return;
  std::map<std::string, std::string> set = Env(policy);
  std::erase_if(spec->env, [&](const std::string& kv) {
    return set.count(kv.substr(0, kv.find('='))) > 0;
  });
  for (const auto& [name, value] : set) spec->env.push_back(name + "=" + value);
  spec->binds.emplace_back(dir_, false);
}

void Injector::Apply(const policy::Policy& policy, sandbox::EgressClient* client) const {
  if (policy.secrets.inject.empty()) return;
  std::vector<std::pair<policy::HostPattern, std::pair<std::string, std::string>>> rules;
  for (const auto& [name, hosts] : policy.secrets.inject) {
    for (const std::string& text : hosts) {
      if (auto pattern = policy::ParseHostPattern(text)) {
        rules.push_back({*pattern, {placeholders_.at(name), values_.at(name)}});
      }
    }
  }
  client->ca = ca_;
  client->inject = [rules = std::move(rules)](const std::string& host, uint16_t port) {
    std::vector<std::pair<std::string, std::string>> swaps;
    for (const auto& [pattern, swap] : rules) {
      if (pattern.Matches(host, port)) swaps.push_back(swap);
    }
    return swaps;
  };
}

}  // namespace corral::launcher

// The egress proxy end to end: real clients (curl, Python's urllib, git) inside real sandboxes
// reach test servers on the host's loopback through corral's proxy, or are refused by it.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <sstream>
#include <thread>

#include "tests/testing.h"

namespace corral::testing {
namespace {

// Servers shared by every test: plain HTTP and HTTPS, serving one folder.
class EgressTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    site_ = new ScratchDir("corral-site");
    const std::string& root = site_->path();
    WriteFile(root + "/index.html", "hello through the proxy\n");
    // A repository that git can clone over "dumb" HTTP.
    std::string repo = root + "/repo.git";
    RunCommand({"/usr/bin/git", "init", "-q", "--bare", repo});
    ScratchDir work("corral-site-work");
    RunCommand({"/usr/bin/git", "clone", "-q", repo, work.path() + "/c"});
    WriteFile(work.path() + "/c/README", "cloned through the proxy\n");
    RunCommand({"/usr/bin/git", "-C", work.path() + "/c", "add", "README"});
    RunCommand({"/usr/bin/git", "-C", work.path() + "/c", "-c", "user.name=t", "-c",
                "user.email=t@example.com", "commit", "-q", "-m", "one"});
    RunCommand({"/usr/bin/git", "-C", work.path() + "/c", "push", "-q", "origin", "HEAD:master"});
    RunCommand({"/usr/bin/git", "-C", repo, "symbolic-ref", "HEAD", "refs/heads/master"});
    RunCommand({"/usr/bin/git", "-C", repo, "update-server-info"});
    Output cert = RunCommand({"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                              "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                              "-days", "1", "-keyout", root + "/key.pem", "-out",
                              root + "/cert.pem"});
    ASSERT_EQ(cert.status, 0) << cert.err;
    http_ = Start({}, "http");
    https_ = Start({"--tls", root + "/cert.pem", root + "/key.pem"}, "https");
  }

  static void TearDownTestSuite() {
    for (pid_t pid : {http_pid_, https_pid_}) {
      if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, nullptr, 0);
      }
    }
    delete site_;
  }

  static int Start(const std::vector<std::string>& extra, const std::string& name) {
    std::string port_file = site_->path() + "/" + name + ".port";
    std::vector<std::string> argv = {"/usr/bin/python3", HTTP_SERVER, "--root", site_->path(),
                                     "--port-file", port_file};
    argv.insert(argv.end(), extra.begin(), extra.end());
    pid_t pid = Spawn(argv, site_->path() + "/" + name + ".log");
    (name == "http" ? http_pid_ : https_pid_) = pid;
    for (int i = 0; i < 200 && !std::filesystem::exists(port_file); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return std::atoi(ReadFile(port_file).c_str());
  }

  void SetUp() override {
    ASSERT_GT(http_, 0);
    ASSERT_GT(https_, 0);
    std::filesystem::copy_file(site_->path() + "/cert.pem", ws_.path() + "/cert.pem");
    chmod((ws_.path() + "/cert.pem").c_str(), 0644);
  }

  std::string Policy(const std::string& egress, const std::string& extra = "") {
    return "[filesystem]\nread_only = [\"/usr\", \"/bin\", \"/lib\", \"/lib64\", \"/sbin\", "
           "\"/etc\"]\n[network]\negress = " + egress + "\n" + extra +
           "\n[env]\npass = [\"PATH\"]\nset = { HOME = \"/tmp\" }\n";
  }

  std::string AllowServers() {
    return "[\"localhost:" + std::to_string(http_) + "\", \"localhost:" + std::to_string(https_) +
           "\"]";
  }

  Output Exec(const std::string& script, const std::string& policy,
              const std::vector<std::string>& env = {}) {
    std::string file = scratch_.path() + "/egress.toml";
    WriteFile(file, policy);
    return RunCommand({CORRAL_BIN, "exec", "-v", "--policy", file, "--cwd", ws_.path(), "--", "sh",
                       "-c", script},
                      env);
  }

  std::string Url(bool tls, const std::string& path = "/index.html", const std::string& host = "localhost") {
    return std::string(tls ? "https" : "http") + "://" + host + ":" +
           std::to_string(tls ? https_ : http_) + path;
  }

  static ScratchDir* site_;
  static int http_, https_;
  static pid_t http_pid_, https_pid_;
  ScratchDir ws_{"corral-egress-ws"};
  ScratchDir scratch_{"corral-egress"};
};

ScratchDir* EgressTest::site_ = nullptr;
int EgressTest::http_ = 0;
int EgressTest::https_ = 0;
pid_t EgressTest::http_pid_ = -1;
pid_t EgressTest::https_pid_ = -1;

TEST_F(EgressTest, CurlReachesAnAllowedHostOverHttpAndHttps) {
  Output o = Exec("curl -sS " + Url(false) + " && curl -sS --cacert cert.pem " + Url(true),
                  Policy(AllowServers()));
  EXPECT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(o.out, "hello through the proxy\nhello through the proxy\n") << o.err;
  EXPECT_NE(o.err.find("corral: egress: GET localhost:" + std::to_string(http_) + " allowed ("),
            std::string::npos) << o.err;
  EXPECT_NE(o.err.find(", HTTP 200)"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("corral: egress: CONNECT localhost:" + std::to_string(https_) + " allowed ("),
            std::string::npos) << o.err;
}

TEST_F(EgressTest, InjectedSecretsReachOnlyTheirHostsAndNeverTheSandbox) {
  // API_KEY is injected for the https server only; the agent holds a placeholder, and sends it
  // to both servers. corral trusts the test server's certificate through SSL_CERT_FILE.
  const std::string value = "inj-7c1e55d0a9b2";
  std::string https = "localhost:" + std::to_string(https_);
  std::string policy =
      Policy(AllowServers(), "[secrets]\ninject = { API_KEY = [\"" + https + "\"] }");
  std::string script =
      "echo in=$API_KEY; "
      "curl -sS -H \"Authorization: Bearer $API_KEY\" " + Url(true, "/index.html?curl") + "; "
      "curl -sS -H \"Authorization: Bearer $API_KEY\" " + Url(false, "/index.html?plain") + "; "
      "python3 -c \"import os, urllib.request as u; print(u.urlopen(u.Request('" +
      Url(true, "/index.html?python") +
      "', headers={'Authorization': os.environ['API_KEY']})).read().decode(), end='')\"; "
      "curl -sS -D - -o /dev/null -H 'Host: elsewhere.example' -H \"Authorization: $API_KEY\" " +
      Url(true, "/echo") + " | grep -i '^x-echo'";
  std::string log = site_->path() + "/headers.log";
  std::filesystem::remove(log);
  Output o = Exec(script, policy,
                  {"API_KEY=" + value, "SSL_CERT_FILE=" + site_->path() + "/cert.pem"});
  EXPECT_EQ(o.status, 0) << o.out << o.err;
  EXPECT_EQ(o.out.find(value), std::string::npos) << "the sandbox saw the value";
  EXPECT_EQ(o.err.find(value), std::string::npos);
  ASSERT_EQ(o.out.substr(0, 25), "in=corral-inject-API_KEY-") << o.out;
  std::string placeholder = o.out.substr(3, o.out.find('\n') - 3);
  EXPECT_EQ(o.out, "in=" + placeholder + "\n" +
                       "hello through the proxy\nhello through the proxy\nhello through the proxy\n" +
                       "X-Echo: " + placeholder + "\r\n")
      << "an echoed value comes back as the placeholder";
  std::string seen = ReadFile(log);
  EXPECT_NE(seen.find("/index.html?curl Bearer " + value + "\n"), std::string::npos) << seen;
  EXPECT_NE(seen.find("/index.html?python " + value + "\n"), std::string::npos) << seen;
  EXPECT_NE(seen.find("/index.html?plain Bearer " + placeholder + "\n"), std::string::npos)
      << "another host gets the placeholder:\n" << seen;
  EXPECT_NE(seen.find("/echo " + value + "\n"), std::string::npos) << seen;
  EXPECT_NE(seen.find("/echo host localhost:" + std::to_string(https_) + "\n"), std::string::npos)
      << "the Host header names the tunnel's host, whatever the agent wrote:\n" << seen;
  EXPECT_NE(o.err.find("corral: egress: CONNECT " + https + " allowed ("), std::string::npos)
      << o.err;
}

TEST_F(EgressTest, InjectNeedsAnAllowListAndAValue) {
  std::string inject = "[secrets]\ninject = { API_KEY = [\"localhost\"] }";
  Output none = Exec("true", Policy("\"none\"", inject), {"API_KEY=x"});
  EXPECT_EQ(none.status, 125);
  EXPECT_NE(none.err.find("secrets.inject.API_KEY: needs network.egress to be an allow-list"),
            std::string::npos)
      << none.err;
  Output unset = Exec("true", Policy(AllowServers(), inject));
  EXPECT_EQ(unset.status, 125);
  EXPECT_NE(unset.err.find("secrets.inject.API_KEY: is not set in corral's environment"),
            std::string::npos)
      << unset.err;
}

TEST_F(EgressTest, TheProxyVariablesAreSet) {
  Output o = Exec("echo $HTTP_PROXY $https_proxy $ALL_PROXY $NO_PROXY", Policy(AllowServers()));
  EXPECT_EQ(o.out, "http://127.0.0.1:3128 http://127.0.0.1:3128 http://127.0.0.1:3128\n")
      << "localhost is named by the allow-list, so it goes through the proxy";
  o = Exec("echo $HTTP_PROXY $NO_PROXY", Policy("[\"example.com\"]"));
  EXPECT_EQ(o.out, "http://127.0.0.1:3128 localhost,127.0.0.1,::1\n")
      << "the sandbox's own loopback stays direct";
}

TEST_F(EgressTest, PythonAndGitWorkThroughIt) {
  std::string py =
      "python3 -c \"import ssl, urllib.request as u; "
      "print(u.urlopen('" + Url(false) + "').read().decode(), end=''); "
      "c = ssl.create_default_context(cafile='cert.pem'); "
      "print(u.urlopen('" + Url(true) + "', context=c).read().decode(), end='')\"";
  std::string git = "git clone -q " + Url(false, "/repo.git") +
                    " /tmp/c1 && cat /tmp/c1/README && GIT_SSL_CAINFO=$PWD/cert.pem git clone -q " +
                    Url(true, "/repo.git") + " /tmp/c2 && cat /tmp/c2/README";
  Output o = Exec(py + " && " + git, Policy(AllowServers()));
  EXPECT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(o.out,
            "hello through the proxy\nhello through the proxy\ncloned through the proxy\n"
            "cloned through the proxy\n")
      << o.err;
}

TEST_F(EgressTest, ARefusalIsA403NamingThePolicyAndTheHost) {
  int other = http_ == 65535 ? http_ - 1 : http_ + 1;
  std::string plain = "curl -sS -w ' %{http_code}' http://localhost:" + std::to_string(other) + "/";
  Output o = Exec(plain + "; echo; curl -sS --cacert cert.pem https://example.org/; echo \" exit $?\"",
                  Policy(AllowServers()));
  EXPECT_EQ(o.out,
            "corral: the policy 'egress' does not allow localhost:" + std::to_string(other) +
                " (network.egress)\n 403\n exit 56\n")
      << o.err;
  EXPECT_NE(o.err.find("CONNECT tunnel failed, response 403"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("corral: egress: CONNECT example.org:443 refused: the policy 'egress' does "
                       "not allow example.org:443 (network.egress)"),
            std::string::npos)
      << o.err;
}

TEST_F(EgressTest, NoDirectRouteAndNoDns) {
  // Around the proxy: a direct connection to an address, and a name lookup of our own.
  Output o = Exec(
      "curl -sS --noproxy '*' --connect-timeout 5 http://192.0.2.1/; echo \"curl $?\"; "
      "getent hosts corral-test.example.org; echo \"getent $?\"; "
      "curl -sS --noproxy '*' http://127.0.0.1:" + std::to_string(http_) + "/; echo \"loopback $?\"",
      Policy(AllowServers()));
  EXPECT_NE(o.out.find("curl 7\n"), std::string::npos) << o.out << o.err;
  EXPECT_NE(o.out.find("getent 2\n"), std::string::npos) << o.out << o.err;
  EXPECT_NE(o.out.find("loopback 7\n"), std::string::npos)
      << "the sandbox's loopback is its own: " << o.out << o.err;
}

// A name other than "localhost" that this host resolves to a loopback address, as a hostile DNS
// answer would resolve an allowed name: from /etc/hosts (Debian names the host itself there).
std::string LoopbackAlias() {
  std::istringstream hosts(ReadFile("/etc/hosts"));
  std::string line;
  while (std::getline(hosts, line)) {
    std::istringstream words(line);
    std::string address, name;
    if (!(words >> address) || !address.starts_with("127.")) continue;
    while (words >> name) {
      if (name.starts_with("#")) break;
      if (name != "localhost" && name.find("localhost") == std::string::npos) return name;
    }
  }
  return "";
}

TEST_F(EgressTest, InternalAddressesMustBeNamedByThePolicy) {
  std::string alias = LoopbackAlias();
  ASSERT_FALSE(alias.empty()) << "/etc/hosts names no host but localhost on 127.0.0.0/8";
  std::string policy = Policy("[\"" + alias + ":" + std::to_string(http_) + "\", \"127.0.0.1:" +
                              std::to_string(http_) + "\"]");
  Output o = Exec("curl -sS http://" + alias + ":" + std::to_string(http_) +
                      "/index.html; curl -sS http://127.0.0.1:" + std::to_string(http_) +
                      "/index.html",
                  policy);
  EXPECT_EQ(o.out, "corral: " + alias +
                       " resolves to an internal address (127.0.0.1), which the policy does not "
                       "name (network.egress)\nhello through the proxy\n")
      << o.err;
}

TEST_F(EgressTest, ARateBudgetHoldsRequestsBack) {
  std::string script = "for i in 1 2 3 4 5 6; do curl -sS -o /dev/null " + Url(false) +
                       " & done; wait; echo done";
  Output o = Exec(script, Policy(AllowServers(), "rate = { \"localhost\" = \"2/s\" }"));
  EXPECT_EQ(o.out, "done\n");
  size_t allowed = 0;
  for (size_t at = 0; (at = o.err.find(" allowed (", at)) != std::string::npos; ++at) ++allowed;
  EXPECT_EQ(allowed, 6u) << o.err;
  EXPECT_NE(o.err.find(" ms by a rate budget"), std::string::npos)
      << "six at once against a budget of two: some wait\n" << o.err;
}

TEST_F(EgressTest, NotHttpIsRefusedAndRecorded) {
  Output o = Exec("printf 'garbage\\r\\n\\r\\n' | curl -sS --noproxy '*' telnet://127.0.0.1:3128 | head -1",
                  Policy(AllowServers()));
  EXPECT_EQ(o.out, "HTTP/1.1 400 Bad Request\r\n") << o.err;
  EXPECT_NE(o.err.find("refused: not an HTTP proxy request"), std::string::npos) << o.err;
}

}  // namespace
}  // namespace corral::testing

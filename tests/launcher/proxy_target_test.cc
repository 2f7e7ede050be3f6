// The egress proxy's request targets.
#include "sandbox/proxy_target.h"

#include <gtest/gtest.h>

namespace corral::sandbox {
namespace {

TEST(ProxyTargetTest, ConnectNeedsHostAndPort) {
  ProxyTarget t = ParseProxyTarget(true, "API.Example.COM.:443");
  EXPECT_EQ(t.error, "");
  EXPECT_EQ(t.host, "api.example.com");
  EXPECT_EQ(t.port, 443);
  t = ParseProxyTarget(true, "[::1]:8080");
  EXPECT_EQ(t.host, "::1");
  EXPECT_EQ(t.port, 8080);
  for (const char* bad : {"example.com", "example.com:0", "example.com:65536", ":443", "a b:80",
                          "user@host:443", "[::1", "host:80x", ".:443"}) {
    EXPECT_NE(ParseProxyTarget(true, bad).error, "") << bad;
  }
  EXPECT_EQ(ParseProxyTarget(true, "x y").error, "CONNECT needs host:port, not 'x y'");
}

TEST(ProxyTargetTest, PlainHttpNeedsAnAbsoluteUrl) {
  ProxyTarget t = ParseProxyTarget(false, "http://localhost:8080/v1/x?y=1#frag");
  EXPECT_EQ(t.error, "");
  EXPECT_EQ(t.host, "localhost");
  EXPECT_EQ(t.port, 8080);
  EXPECT_EQ(t.path, "/v1/x?y=1");
  t = ParseProxyTarget(false, "http://example.com");
  EXPECT_EQ(t.port, 80);
  EXPECT_EQ(t.path, "/");
  EXPECT_EQ(ParseProxyTarget(false, "https://example.com/").error, "https goes through CONNECT");
  EXPECT_EQ(ParseProxyTarget(false, "/index.html").error,
            "a proxy request needs an absolute http:// URL, not '/index.html'");
  EXPECT_EQ(ParseProxyTarget(false, "http://a@b/").error, "bad host in 'http://a@b/'");
  std::string long_target = "http://" + std::string(1000, 'a') + "\x01/";
  EXPECT_LT(ParseProxyTarget(false, long_target).error.size(), 300u) << "quoted, not echoed";
}

}  // namespace
}  // namespace corral::sandbox

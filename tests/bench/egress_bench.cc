// The egress proxy against a direct connection, on loopback, in one run: the latency of many
// small HTTP requests (a new connection each, as agents' HTTP clients often make) and the
// throughput of one large transfer through a CONNECT tunnel. Prints medians and ratios.
//
//   build/tests/bench/egress_bench [REQUESTS] [MEGABYTES]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "sandbox/egress_proxy.h"

using Clock = std::chrono::steady_clock;

namespace {

int Listen(uint16_t* port) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(s, 512) != 0) {
    std::perror("listen");
    std::exit(1);
  }
  socklen_t len = sizeof(a);
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return s;
}

int Connect(uint16_t port) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    std::perror("connect");
    std::exit(1);
  }
  int one = 1;
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return s;
}

void SendAll(int s, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(s, data.data() + done, data.size() - done);
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

// Reads until the end of the head ("\r\n\r\n").
std::string ReadHead(int s) {
  std::string head;
  char c;
  while (head.find("\r\n\r\n") == std::string::npos && read(s, &c, 1) == 1) head += c;
  return head;
}

uint64_t ReadToEnd(int s) {
  static char buf[1 << 16];
  uint64_t total = 0;
  ssize_t n;
  while ((n = read(s, buf, sizeof(buf))) > 0) total += static_cast<uint64_t>(n);
  return total;
}

// The server: a small answer, or `big` bytes for /big; one request per connection.
void Serve(int listener, uint64_t big, std::atomic<bool>* stop) {
  std::string chunk(1 << 16, 'x');
  while (!stop->load()) {
    int c = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    std::thread([c, big, &chunk] {
      std::string head = ReadHead(c);
      // Keep-alive: answers requests on the connection until the client closes it.
      while (head.find("GET /alive ") != std::string::npos) {
        SendAll(c, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n");
        head = ReadHead(c);
      }
      if (head.empty()) {
        close(c);
        return;
      }
      if (head.find(" /big ") != std::string::npos) {
        SendAll(c, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(big) +
                       "\r\nConnection: close\r\n\r\n");
        for (uint64_t sent = 0; sent < big; sent += chunk.size()) SendAll(c, chunk);
      } else {
        SendAll(c, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n");
      }
      close(c);
    }).detach();
  }
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int requests = argc > 1 ? std::atoi(argv[1]) : 2000;
  uint64_t megabytes = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1024;
  uint16_t server_port = 0, proxy_port = 0;
  int server = Listen(&server_port);
  std::atomic<bool> stop{false};
  std::thread server_thread(Serve, server, megabytes << 20, &stop);
  server_thread.detach();

  corral::sandbox::EgressProxy proxy(nullptr);
  corral::sandbox::EgressClient client;
  client.name = "bench";
  client.policy = "bench";
  client.check = [](const std::string&, uint16_t) -> std::optional<bool> { return true; };
  proxy.Serve(Listen(&proxy_port), client);

  std::string target = "127.0.0.1:" + std::to_string(server_port);
  auto small = [&](bool via_proxy) {
    std::vector<double> us;
    for (int i = 0; i < requests; ++i) {
      Clock::time_point t = Clock::now();
      int s = Connect(via_proxy ? proxy_port : server_port);
      SendAll(s, std::string("GET ") + (via_proxy ? "http://" + target : "") +
                     "/ HTTP/1.1\r\nHost: " + target + "\r\nConnection: close\r\n\r\n");
      uint64_t got = ReadToEnd(s);
      close(s);
      if (got == 0) std::fprintf(stderr, "empty answer\n");
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t).count());
    }
    return Median(us);
  };
  // Many requests on one connection, as an agent's client talks to its API through a tunnel.
  auto alive = [&](bool via_proxy) {
    int s = Connect(via_proxy ? proxy_port : server_port);
    if (via_proxy) {
      SendAll(s, "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\n");
      ReadHead(s);
    }
    std::vector<double> us;
    char body[3];
    for (int i = 0; i < requests; ++i) {
      Clock::time_point t = Clock::now();
      SendAll(s, "GET /alive HTTP/1.1\r\nHost: " + target + "\r\n\r\n");
      ReadHead(s);
      if (read(s, body, 3) != 3) std::fprintf(stderr, "short answer\n");
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t).count());
    }
    close(s);
    return Median(us);
  };
  auto large = [&](bool via_proxy) {
    Clock::time_point t = Clock::now();
    int s = Connect(via_proxy ? proxy_port : server_port);
    if (via_proxy) {
      SendAll(s, "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\n");
      ReadHead(s);
    }
    SendAll(s, "GET /big HTTP/1.1\r\nHost: " + target + "\r\nConnection: close\r\n\r\n");
    ReadHead(s);
    uint64_t got = ReadToEnd(s);
    close(s);
    double secs = std::chrono::duration<double>(Clock::now() - t).count();
    return static_cast<double>(got) / secs / 1e6;
  };
  small(false);  // warm up
  small(true);
  double direct_us = small(false), proxy_us = small(true);
  double direct_alive = alive(false), proxy_alive = alive(true);
  double direct_mbs = large(false), proxy_mbs = large(true);
  std::printf("egress proxy vs direct on loopback, one run\n");
  std::printf("  small requests (%d each, a connection each), median latency:\n", requests);
  std::printf("    direct %8.1f us, through the proxy %8.1f us: %.2fx (target: at most 1.2x)\n",
              direct_us, proxy_us, proxy_us / direct_us);
  std::printf("  small requests (%d each) on one kept-alive connection (a CONNECT tunnel):\n",
              requests);
  std::printf("    direct %8.1f us, through the proxy %8.1f us: %.2fx (target: at most 1.2x)\n",
              direct_alive, proxy_alive, proxy_alive / direct_alive);
  std::printf("  one %llu MiB transfer (CONNECT tunnel), throughput:\n",
              static_cast<unsigned long long>(megabytes));
  std::printf(
      "    direct %8.0f MB/s, through the proxy %8.0f MB/s: %.2fx (target: at least 0.8x)\n",
      direct_mbs, proxy_mbs, proxy_mbs / direct_mbs);
  stop = true;
  return 0;
}

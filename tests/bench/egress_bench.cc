// The egress proxy against a direct connection and against a plain relay (the cost of any hop),
// on loopback, in one run: the latency of many small HTTP requests (a new connection each, as
// agents' HTTP clients often make, and many on one kept-alive tunnel) and the throughput of a
// large transfer through a CONNECT tunnel. Samples of the three paths alternate. Prints medians
// and ratios.
//
//   build/tests/bench/egress_bench [REQUESTS] [MEGABYTES]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
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

// Reads until the end of a head ("\r\n\r\n"), in chunks as a real client or server does;
// returns the head and leaves what came after it in `rest`.
std::string ReadHead(int s, std::string* rest) {
  std::string data = std::move(*rest);
  rest->clear();
  char buf[4096];
  size_t end;
  while ((end = data.find("\r\n\r\n")) == std::string::npos) {
    ssize_t n = read(s, buf, sizeof(buf));
    if (n <= 0) return "";
    data.append(buf, static_cast<size_t>(n));
  }
  *rest = data.substr(end + 4);
  return data.substr(0, end + 4);
}

// Reads a response of a small body of `length` bytes.
bool ReadSmall(int s, size_t length, std::string* rest) {
  if (ReadHead(s, rest).empty()) return false;
  char buf[4096];
  while (rest->size() < length) {
    ssize_t n = read(s, buf, sizeof(buf));
    if (n <= 0) return false;
    rest->append(buf, static_cast<size_t>(n));
  }
  rest->erase(0, length);
  return true;
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
      std::string rest;
      std::string head = ReadHead(c, &rest);
      // Keep-alive: answers requests on the connection until the client closes it.
      while (head.find("GET /alive ") != std::string::npos) {
        SendAll(c, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n");
        head = ReadHead(c, &rest);
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

// The floor of any hop on this machine: a relay that only copies bytes to the server, with a
// thread per direction and blocking reads and writes; no parsing beyond the first head, no
// checks, no records. It answers a CONNECT itself and passes any other request on.
void Relay(int listener, uint16_t server_port) {
  for (;;) {
    int c = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    std::thread([c, server_port] {
      int one = 1;
      setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      std::string rest;
      std::string head = ReadHead(c, &rest);
      int u = Connect(server_port);
      if (head.starts_with("CONNECT ")) {
        SendAll(c, "HTTP/1.1 200 Connection established\r\n\r\n");
      } else {
        SendAll(u, head);
      }
      SendAll(u, rest);
      auto copy = [](int from, int to) {
        char buf[1 << 16];
        ssize_t n;
        while ((n = read(from, buf, sizeof(buf))) > 0) {
          SendAll(to, std::string(buf, static_cast<size_t>(n)));
        }
        shutdown(to, SHUT_WR);
      };
      std::thread up(copy, c, u);
      copy(u, c);
      up.join();
      close(u);
      close(c);
    }).detach();
  }
}

// What one wake-up of another thread costs: a byte sent back and forth over two pipes between
// two threads, both on CPU 0 or one on each of CPUs 0 and 1, as microseconds per round trip
// (two wake-ups). A hop in the path of a request adds at least two wake-ups to its round trip.
// -1 when a thread could not be pinned where asked (a cpuset without CPU 0 or 1).
double WakeRoundTrip(int peer_cpu, int rounds) {
  int there[2], back[2];
  if (pipe(there) != 0 || pipe(back) != 0) return -1;
  auto pin = [](int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
  };
  std::atomic<bool> pinned{true};
  std::thread peer([&] {
    if (!pin(peer_cpu)) pinned = false;
    char c;
    while (read(there[0], &c, 1) == 1) {
      if (write(back[1], &c, 1) != 1) break;
    }
  });
  cpu_set_t saved;
  pthread_getaffinity_np(pthread_self(), sizeof(saved), &saved);
  if (!pin(0)) pinned = false;
  char c = 'x';
  Clock::time_point t = Clock::now();
  for (int i = 0; i < rounds; ++i) {
    if (write(there[1], &c, 1) != 1 || read(back[0], &c, 1) != 1) break;
  }
  double us = std::chrono::duration<double, std::micro>(Clock::now() - t).count() / rounds;
  close(there[1]);
  peer.join();
  pthread_setaffinity_np(pthread_self(), sizeof(saved), &saved);
  for (int fd : {there[0], back[0], back[1]}) close(fd);
  return pinned ? us : -1;
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

  uint16_t relay_port = 0;
  std::thread(Relay, Listen(&relay_port), server_port).detach();

  std::string target = "127.0.0.1:" + std::to_string(server_port);
  // The three ways to the server: directly, through the plain relay, through corral's proxy.
  enum Path { kDirect, kRelay, kProxy, kPaths };
  const uint16_t ports[kPaths] = {server_port, relay_port, proxy_port};
  auto one_small = [&](Path path) {
    Clock::time_point t = Clock::now();
    int s = Connect(ports[path]);
    SendAll(s, std::string("GET ") + (path == kDirect ? "" : "http://" + target) +
                   "/ HTTP/1.1\r\nHost: " + target + "\r\nConnection: close\r\n\r\n");
    uint64_t got = ReadToEnd(s);
    close(s);
    if (got == 0) std::fprintf(stderr, "empty answer\n");
    return std::chrono::duration<double, std::micro>(Clock::now() - t).count();
  };
  // Many requests on one connection, as an agent's client talks to its API through a tunnel.
  auto open_tunnel = [&](Path path) {
    int s = Connect(ports[path]);
    if (path != kDirect) {
      SendAll(s, "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\n");
      std::string rest;
      ReadHead(s, &rest);
    }
    return s;
  };
  auto one_alive = [&](int s, std::string* rest) {
    Clock::time_point t = Clock::now();
    SendAll(s, "GET /alive HTTP/1.1\r\nHost: " + target + "\r\n\r\n");
    if (!ReadSmall(s, 3, rest)) std::fprintf(stderr, "short answer\n");
    return std::chrono::duration<double, std::micro>(Clock::now() - t).count();
  };
  auto large = [&](Path path) {
    Clock::time_point t = Clock::now();
    int s = open_tunnel(path);
    SendAll(s, "GET /big HTTP/1.1\r\nHost: " + target + "\r\nConnection: close\r\n\r\n");
    std::string rest;
    ReadHead(s, &rest);
    uint64_t got = rest.size() + ReadToEnd(s);
    close(s);
    double secs = std::chrono::duration<double>(Clock::now() - t).count();
    return static_cast<double>(got) / secs / 1e6;
  };
  // Samples of the three paths alternate, so all see the same machine: on a shared host the load
  // of the moment moves every path, not one of them.
  for (int i = 0; i < 100; ++i) one_small(static_cast<Path>(i % kPaths));  // warm up
  std::vector<double> small[kPaths], kept[kPaths], rate[kPaths];
  for (int i = 0; i < requests; ++i) {
    for (int p = 0; p < kPaths; ++p) small[p].push_back(one_small(static_cast<Path>(p)));
  }
  int tunnels[kPaths];
  std::string rests[kPaths];
  for (int p = 0; p < kPaths; ++p) tunnels[p] = open_tunnel(static_cast<Path>(p));
  for (int i = 0; i < requests; ++i) {
    for (int p = 0; p < kPaths; ++p) kept[p].push_back(one_alive(tunnels[p], &rests[p]));
  }
  for (int tunnel : tunnels) close(tunnel);
  constexpr int kTransfers = 3;
  for (int i = 0; i < kTransfers; ++i) {
    for (int p = 0; p < kPaths; ++p) rate[p].push_back(large(static_cast<Path>(p)));
  }
  auto row = [](const char* what, std::vector<double>* v, const char* unit, const char* target) {
    double direct = Median(v[kDirect]), relay = Median(v[kRelay]), proxy = Median(v[kProxy]);
    std::printf("  %s\n    direct %8.1f %s, plain relay %8.1f %s (%.2fx), corral's proxy %8.1f %s:"
                " %.2fx direct, %.2fx the relay (target: %s)\n",
                what, direct, unit, relay, unit, relay / direct, proxy, unit, proxy / direct,
                proxy / relay, target);
  };
  std::printf("egress proxy vs direct and vs a plain relay (a thread per direction, no checks)"
              " on loopback, one run\n");
  std::string what = "small requests, a connection each (median of " + std::to_string(requests) +
                     "), latency:";
  row(what.c_str(), small, "us", "at most 1.2x direct");
  what = "small requests on one kept-alive connection, a CONNECT tunnel (median of " +
         std::to_string(requests) + "), latency:";
  row(what.c_str(), kept, "us", "at most 1.2x direct");
  what = "a " + std::to_string(megabytes) + " MiB transfer through a CONNECT tunnel (median of " +
         std::to_string(kTransfers) + "), throughput in MB/s:";
  row(what.c_str(), rate, "MB/s", "at least 0.8x direct");
  double one_cpu = WakeRoundTrip(0, 20000), two_cpus = WakeRoundTrip(1, 20000);
  if (one_cpu >= 0 && two_cpus >= 0) {
    std::printf("  a wake-up's cost (pipe round trip between two threads, two wake-ups): "
                "%.1f us on one CPU, %.1f us across two\n",
                one_cpu, two_cpus);
  } else {
    std::printf("  a wake-up's cost: not measured (cannot pin threads to CPUs 0 and 1)\n");
  }
  stop = true;
  return 0;
}

#include "sandbox/fdio.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace corral::sandbox {

Expected<> WriteFile(const std::string& path, const std::string& content) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open " + path);
  ssize_t n = write(fd, content.data(), content.size());
  int err = errno;
  close(fd);
  if (n != static_cast<ssize_t>(content.size())) return ErrnoError("write " + path, err);
  return {};
}

Expected<> ReplaceFile(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  Expected<> r = fd < 0 ? ErrnoError("create") : WriteAll(fd, content, "write");
  if (r && fdatasync(fd) != 0) r = ErrnoError("sync");
  if (fd >= 0) close(fd);
  if (r && rename(tmp.c_str(), path.c_str()) != 0) r = ErrnoError("rename");
  if (!r) unlink(tmp.c_str());
  return r;
}

namespace {

template <typename Write>
Expected<> WriteAllWith(const std::string& data, const std::string& what, Write write_some) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write_some(data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) errno = ENOSPC;  // a write that takes nothing: no room
    if (n <= 0) return ErrnoError(what);
    done += n;
  }
  return {};
}

}  // namespace

Expected<> WriteAll(int fd, const std::string& data, const std::string& what) {
  return WriteAllWith(data, what, [fd](const char* p, size_t n) { return write(fd, p, n); });
}

Expected<> SendAll(int sock, const std::string& data, const std::string& what) {
  return WriteAllWith(data, what,
                      [sock](const char* p, size_t n) { return send(sock, p, n, MSG_NOSIGNAL); });
}

std::string ReadAll(int fd) {
  std::string out;
  char buf[8192];
  while (true) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, n);
  }
  return out;
}

bool SendProxyListener(int sock, int listener) { return SendFd(sock, listener, 'L'); }

namespace {

// A message of one byte with room for one descriptor. Not copyable: it points into itself.
struct OneFdMessage {
  explicit OneFdMessage(char tag) : byte(tag) {
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
  }
  OneFdMessage(const OneFdMessage&) = delete;
  OneFdMessage& operator=(const OneFdMessage&) = delete;

  char byte;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
};

}  // namespace

int ReceiveFd(int sock) {
  OneFdMessage m(0);
  ssize_t n;
  do {
    n = recvmsg(sock, &m.msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  cmsghdr* c = n == 1 ? CMSG_FIRSTHDR(&m.msg) : nullptr;
  if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) return -1;
  int fd = -1;
  std::memcpy(&fd, CMSG_DATA(c), sizeof(int));
  return fd;
}

bool SendFd(int sock, int fd, char tag) {
  OneFdMessage m(tag);
  cmsghdr* cmsg = CMSG_FIRSTHDR(&m.msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
  ssize_t n;
  do {
    n = sendmsg(sock, &m.msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  return n == 1;
}

std::string ReadReply(int sock, const std::function<void(int)>& on_socket) {
  std::string out;
  char buf[8192];
  while (true) {
    iovec iov = {buf, sizeof(buf)};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        if (on_socket) {
          on_socket(fd);
        } else {
          close(fd);
        }
      }
    }
    out.append(buf, n);
  }
  // The 'L' bytes that carried sockets come first; the reply follows them.
  size_t start = out.find_first_not_of('L');
  return start == std::string::npos ? "" : out.substr(start);
}

}  // namespace corral::sandbox

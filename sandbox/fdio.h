// Small file-descriptor I/O shared by corral and its helper.
#pragma once

#include <functional>
#include <string>

#include "sandbox/error.h"

namespace corral::sandbox {

// Writes `content` to the file at `path` with one write(2), as kernel interface files
// (/proc/PID/uid_map, cgroup knobs) require. Errors name the path.
Expected<> WriteFile(const std::string& path, const std::string& content);

// Replaces the file at `path` with `content` whole or not at all: a temporary file beside it
// (mode 0644, synced with its data) renamed over it. Errors say which step failed.
Expected<> ReplaceFile(const std::string& path, const std::string& content);

// Writes all of `data` to `fd`, retrying short writes and EINTR. Errors say `what` failed.
Expected<> WriteAll(int fd, const std::string& data, const std::string& what);

// As WriteAll, to a socket whose peer may be gone: that is an error (EPIPE), never a SIGPIPE.
Expected<> SendAll(int sock, const std::string& data, const std::string& what);

// Reads `fd` until end of file (or an error, which ends the data).
std::string ReadAll(int fd);

// One descriptor over a unix socket, with one byte (`tag`). ReceiveFd returns it (close-on-exec),
// or -1 when the peer sent none or closed.
bool SendFd(int sock, int fd, char tag = 0);
int ReceiveFd(int sock);

// Between corral and its helper (a stream socket): the helper sends the byte 'L' carrying the
// egress proxy's listening socket before its reply; corral's reader hands such sockets to
// `on_socket` (which owns them) and returns the rest of the data.
bool SendProxyListener(int sock, int listener);
std::string ReadReply(int sock, const std::function<void(int)>& on_socket);

}  // namespace corral::sandbox

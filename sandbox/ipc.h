// Messages between the helper (outside) and the sandbox's init and agent (inside), over a
// SOCK_SEQPACKET socket pair: one message per packet, optionally carrying file descriptors.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace corral::sandbox::ipc {

enum class Type : uint32_t {
  kGo = 1,          // helper -> init: maps are written, cgroups joined; carries detached mounts
  kSetupError,      // init/agent -> helper: text says what failed; the sandbox did not start
  kListener,        // agent -> helper: the seccomp notification fd
  kExecFailed,      // agent -> helper: value is the errno of execve
  kAgentExited,     // init -> helper: value is the agent's wait status
  kProxyListener,   // init -> helper: the egress proxy's listening socket, inside the sandbox
};

struct Message {
  Type type{};
  int32_t value = 0;
  char text[1000] = {};
};

// Sends one message and `fds` with it. Async-signal-safe. Returns false on failure.
bool Send(int sock, Type type, int32_t value, std::string_view text = {},
          const std::vector<int>& fds = {});

// Receives one message; received descriptors are appended to `fds` (close-on-exec). Returns
// false on EOF or error (errno set; 0 on EOF).
bool Receive(int sock, Message* message, std::vector<int>* fds);

}  // namespace corral::sandbox::ipc

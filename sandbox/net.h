// Network namespace setup.
#pragma once

#include <cstdint>

#include "sandbox/error.h"

namespace corral::sandbox::net {

// Child side, in a new network namespace: brings the loopback interface up (the kernel adds
// 127.0.0.1 and ::1 to it). No other interface exists, so nothing leaves the sandbox.
Expected<> BringUpLoopback();

// In the sandbox's network namespace: a TCP socket listening on 127.0.0.1:port (close-on-exec).
Expected<int> ListenLoopback(uint16_t port);

}  // namespace corral::sandbox::net

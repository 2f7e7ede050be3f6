// The error vocabulary of corral::sandbox: a message that already says what failed and why,
// e.g. "mount /proc: Operation not permitted".
#pragma once

#include <cerrno>
#include <cstring>
#include <expected>
#include <string>

namespace corral::sandbox {

struct Error {
  std::string message;
};

template <typename T = void>
using Expected = std::expected<T, Error>;

// The one place errno becomes an Error: "what: strerror(errno)".
inline std::unexpected<Error> ErrnoError(const std::string& what, int err = errno) {
  return std::unexpected(Error{what + ": " + std::strerror(err)});
}

inline std::unexpected<Error> Fail(std::string message) {
  return std::unexpected(Error{std::move(message)});
}

}  // namespace corral::sandbox

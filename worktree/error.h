// The error vocabulary of corral::worktree.
#pragma once

#include <expected>
#include <string>

namespace corral::worktree {

struct Error {
  std::string message;
};

template <typename T = void>
using Expected = std::expected<T, Error>;

// The one place libgit2 errors become an Error: "what: <git_error_last() message>".
std::unexpected<Error> GitError(const std::string& what);

inline std::unexpected<Error> Fail(std::string message) {
  return std::unexpected(Error{std::move(message)});
}

}  // namespace corral::worktree

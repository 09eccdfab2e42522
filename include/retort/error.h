// retort::Error: the one exception type the library throws. Its message carries the context a user
// needs to act (the file, the tensor name, expected vs actual); the CLI prints it on one line.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace retort {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
inline void append(std::ostringstream&) {}
template <typename T, typename... Rest>
void append(std::ostringstream& os, T&& first, Rest&&... rest) {
  os << std::forward<T>(first);
  append(os, std::forward<Rest>(rest)...);
}
}  // namespace detail

// Concatenates its arguments with operator<< into an Error message.
template <typename... Args>
[[noreturn]] void fail(Args&&... args) {
  std::ostringstream os;
  detail::append(os, std::forward<Args>(args)...);
  throw Error(os.str());
}

// Throws Error(args...) when cond is false.
template <typename... Args>
void check(bool cond, Args&&... args) {
  if (!cond) fail(std::forward<Args>(args)...);
}

}  // namespace retort

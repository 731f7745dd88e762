// Shared by the fuzz harnesses: the rule that a parser may only fail in its documented ways.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "host/idx.h"
#include "host/safetensors.h"

namespace fmnist::fuzz {

[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz harness: %s\n", what.c_str());
  std::abort();
}

inline bool one_line(const std::string& text) {
  return !text.empty() && text.find('\n') == std::string::npos && text.find('\r') == std::string::npos;
}

// A file error must be one line "PATH: problem".
inline void check_file_error(const std::exception& e, const std::string& path) {
  const std::string message = e.what();
  if (!one_line(message)) fail("error message is not one line: [" + message + "]");
  if (message.compare(0, path.size() + 2, path + ": ") != 0)
    fail("error message does not start with the file's name: [" + message + "]");
}

// Runs `body`. DataError and FormatError (one line, naming `path`) and std::invalid_argument (one
// line) are the documented failures and pass; anything else propagates, and libFuzzer reports an
// uncaught exception as a crash.
template <typename Body>
void expect_documented_errors(const std::string& path, Body&& body) {
  try {
    body();
  } catch (const DataError& e) {
    check_file_error(e, path);
  } catch (const FormatError& e) {
    check_file_error(e, path);
  } catch (const std::invalid_argument& e) {
    if (!one_line(e.what())) fail(std::string("invalid_argument message is not one line: [") + e.what() + "]");
  }
}

}  // namespace fmnist::fuzz

// Error messages that quote what a file, a flag or a variable held stay one line whatever it held:
// the one escaping of control characters that every reader and the command line use.
#pragma once

#include <string>

namespace fmnist {

// `text` with each control character written as an escape: \n, \r, \t, else \xNN (DEL too).
std::string one_line(const std::string& text);

// strerror(error) as a string, for "PATH: cannot write (No space left on device)".
std::string errno_text(int error);

}  // namespace fmnist

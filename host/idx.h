// Reading and writing IDX files (the format of the Fashion-MNIST distribution), raw or gzip-compressed,
// from a file or from memory, with every malformation reported as a one-line DataError naming the
// file and the problem.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace fmnist {

// Thrown for any bad data file; what() is one line, "PATH: problem".
class DataError : public std::runtime_error {
  using runtime_error::runtime_error;
};

struct IdxImages {
  int count = 0, rows = 0, cols = 0;
  std::vector<std::uint8_t> pixels;  // count * rows * cols, row-major
};

// The largest payload a reader accepts; anything bigger is taken for a corrupt header.
constexpr std::uint64_t kMaxIdxDataBytes = 1000000000;

// Both read raw or gzip files (zlib tells them apart).
IdxImages read_idx_images(const std::string& path);
std::vector<std::uint8_t> read_idx_labels(const std::string& path);

// The same checks on a whole file's bytes already in memory (raw or gzip, read exactly as
// read_idx_* read a file); `path` only names the file in messages.
IdxImages decode_idx_images(const std::vector<std::uint8_t>& bytes, const std::string& path);
std::vector<std::uint8_t> decode_idx_labels(const std::vector<std::uint8_t>& bytes, const std::string& path);

// For tests and tools: write IDX files, gzip-compressed when gzip is true.
void write_idx_images(const std::string& path, int count, int rows, int cols, const std::uint8_t* pixels,
                      bool gzip);
void write_idx_labels(const std::string& path, const std::vector<std::uint8_t>& labels, bool gzip);

}  // namespace fmnist

// IDX reading and writing through zlib's gz* functions, which read raw and gzip files alike; every
// header field is checked before it sizes anything, and data is read in bounded chunks.
#include "host/idx.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace fmnist {
namespace {

constexpr std::uint8_t kUnsignedByteType = 0x08;
constexpr std::size_t kReadChunkBytes = std::size_t{1} << 20;
constexpr std::size_t kMaxTrailingBytesCounted = std::size_t{64} << 20;

// What one kind of IDX file must look like.
struct IdxKind {
  int dimensions;
  const char* description;                     // "IDX uint8 images"
  std::array<const char*, 3> dimension_names;  // for messages, first `dimensions` used
  std::uint32_t magic() const { return (std::uint32_t{kUnsignedByteType} << 8) | std::uint32_t(dimensions); }
  std::size_t header_bytes() const { return 4 + 4 * std::size_t(dimensions); }
};

constexpr IdxKind kImagesKind{3, "IDX uint8 images", {"image count", "rows", "columns"}};
constexpr IdxKind kLabelsKind{1, "IDX uint8 labels", {"label count", "", ""}};

// A file opened with gzopen; read errors come back as DataError naming the file.
class GzInput {
 public:
  explicit GzInput(const std::string& path) : path_(path) {
    errno = 0;
    file_ = gzopen(path.c_str(), "rb");
    if (file_ == nullptr) throw error(fmt::format("cannot open: {}", errno ? std::strerror(errno) : "out of memory"));
    gzbuffer(file_, 256 * 1024);
  }
  GzInput(const GzInput&) = delete;
  GzInput& operator=(const GzInput&) = delete;
  ~GzInput() { gzclose(file_); }

  // Reads up to `size` bytes; fewer only at the end of the data.
  std::size_t read(std::uint8_t* out, std::size_t size) {
    std::size_t total = 0;
    while (total < size) {
      unsigned request = static_cast<unsigned>(std::min(size - total, kReadChunkBytes));
      int got = gzread(file_, out + total, request);
      int zlib_status = Z_OK;
      const char* zlib_message = gzerror(file_, &zlib_status);
      if (got < 0 || zlib_status != Z_OK) throw read_failure(zlib_status, zlib_message);
      if (got == 0) break;
      total += static_cast<std::size_t>(got);
    }
    return total;
  }

  DataError error(const std::string& problem) const { return DataError(path_ + ": " + problem); }

 private:
  DataError read_failure(int zlib_status, const char* zlib_message) const {
    std::string message = zlib_message ? zlib_message : "unknown error";
    std::string own_prefix = path_ + ": ";  // gzerror prefixes the path itself
    if (message.compare(0, own_prefix.size(), own_prefix) == 0) message.erase(0, own_prefix.size());
    switch (zlib_status) {
      case Z_ERRNO: return error(fmt::format("read error: {}", message));
      case Z_BUF_ERROR: return error(fmt::format("truncated gzip stream (zlib: {})", message));
      case Z_DATA_ERROR: return error(fmt::format("corrupt gzip stream (zlib: {})", message));
      case Z_MEM_ERROR: return error("out of memory while decompressing");
      default: return error(fmt::format("gzip read error (zlib: {})", message));
    }
  }

  std::string path_;
  gzFile file_;
};

std::uint32_t read_big_endian_u32(const std::uint8_t* bytes) {
  return (std::uint32_t{bytes[0]} << 24) | (std::uint32_t{bytes[1]} << 16) | (std::uint32_t{bytes[2]} << 8) |
         std::uint32_t{bytes[3]};
}

void check_magic(const GzInput& input, const IdxKind& kind, const std::uint8_t* bytes) {
  std::uint32_t magic = read_big_endian_u32(bytes);
  std::string mismatch = fmt::format("bad magic number 0x{:08X}, expected 0x{:08X} ({})", magic, kind.magic(),
                                     kind.description);
  if (bytes[0] != 0 || bytes[1] != 0) throw input.error(mismatch + ": first two bytes are not zero, not an IDX file");
  if (bytes[2] != kUnsignedByteType)
    throw input.error(mismatch + fmt::format(": element type 0x{:02X} is not 0x08 (unsigned byte)", bytes[2]));
  if (bytes[3] != kind.dimensions)
    throw input.error(mismatch + fmt::format(": {} dimensions instead of {}", bytes[3], kind.dimensions));
}

// Reads the header's sizes, each checked non-zero, whose product must stay within kMaxIdxDataBytes.
std::vector<std::uint32_t> read_sizes(GzInput& input, const IdxKind& kind) {
  std::array<std::uint8_t, 16> header{};
  std::size_t got = input.read(header.data(), 4);
  if (got == 0) throw input.error("file is empty");
  if (got < 4) throw input.error(fmt::format("truncated header: expected {} bytes, found {}", kind.header_bytes(), got));
  check_magic(input, kind, header.data());
  got += input.read(header.data() + 4, 4 * std::size_t(kind.dimensions));
  if (got < kind.header_bytes())
    throw input.error(fmt::format("truncated header: expected {} bytes, found {}", kind.header_bytes(), got));

  std::vector<std::uint32_t> sizes;
  for (int d = 0; d < kind.dimensions; ++d) {
    sizes.push_back(read_big_endian_u32(header.data() + 4 + 4 * d));
    if (sizes.back() == 0) throw input.error(fmt::format("{} is 0 in the header", kind.dimension_names[d]));
  }
  std::uint64_t data_bytes = 1;
  for (std::uint32_t size : sizes) {
    if (size > kMaxIdxDataBytes / data_bytes)
      throw input.error(fmt::format("header sizes {} are too large (over {} bytes)", fmt::join(sizes, "x"),
                                    kMaxIdxDataBytes));
    data_bytes *= size;
  }
  return sizes;
}

// Reads exactly `data_bytes` after the header, then makes sure nothing follows.
std::vector<std::uint8_t> read_data(GzInput& input, const IdxKind& kind, const std::vector<std::uint32_t>& sizes,
                                    std::size_t data_bytes) {
  std::vector<std::uint8_t> data;
  data.reserve(std::min(data_bytes, std::size_t{64} << 20));
  while (data.size() < data_bytes) {
    std::size_t chunk = std::min(kReadChunkBytes, data_bytes - data.size());
    std::size_t old_size = data.size();
    data.resize(old_size + chunk);
    std::size_t got = input.read(data.data() + old_size, chunk);
    data.resize(old_size + got);
    if (got < chunk)
      throw input.error(fmt::format("truncated data: expected {} bytes ({}-byte header + {} for {}), found {}",
                                    kind.header_bytes() + data_bytes, kind.header_bytes(), data_bytes,
                                    fmt::join(sizes, "x"), kind.header_bytes() + data.size()));
  }
  std::vector<std::uint8_t> scratch(kReadChunkBytes);
  std::size_t trailing = 0;
  while (trailing < kMaxTrailingBytesCounted) {
    std::size_t got = input.read(scratch.data(), scratch.size());
    if (got == 0) break;
    trailing += got;
  }
  if (trailing > 0)
    throw input.error(fmt::format("trailing garbage: {}{} bytes after the {} the header accounts for",
                                  trailing >= kMaxTrailingBytesCounted ? "at least " : "", trailing,
                                  kind.header_bytes() + data_bytes));
  return data;
}

void write_idx(const std::string& path, const IdxKind& kind, const std::vector<std::uint32_t>& sizes,
               const std::uint8_t* data, std::size_t data_bytes, bool gzip) {
  errno = 0;
  gzFile file = gzopen(path.c_str(), gzip ? "wb" : "wbT");
  if (file == nullptr)
    throw DataError(fmt::format("{}: cannot open for writing: {}", path, errno ? std::strerror(errno) : "out of memory"));
  std::vector<std::uint8_t> header{0, 0, kUnsignedByteType, static_cast<std::uint8_t>(kind.dimensions)};
  for (std::uint32_t size : sizes)
    for (int shift = 24; shift >= 0; shift -= 8) header.push_back(static_cast<std::uint8_t>(size >> shift));
  bool ok = gzwrite(file, header.data(), static_cast<unsigned>(header.size())) == int(header.size());
  for (std::size_t offset = 0; ok && offset < data_bytes; offset += kReadChunkBytes) {
    unsigned chunk = static_cast<unsigned>(std::min(kReadChunkBytes, data_bytes - offset));
    ok = gzwrite(file, data + offset, chunk) == int(chunk);
  }
  int close_status = gzclose(file);
  if (!ok || close_status != Z_OK) throw DataError(fmt::format("{}: write failed", path));
}

}  // namespace

IdxImages read_idx_images(const std::string& path) {
  GzInput input(path);
  std::vector<std::uint32_t> sizes = read_sizes(input, kImagesKind);
  IdxImages images;
  images.count = static_cast<int>(sizes[0]);
  images.rows = static_cast<int>(sizes[1]);
  images.cols = static_cast<int>(sizes[2]);
  images.pixels = read_data(input, kImagesKind, sizes, std::size_t(sizes[0]) * sizes[1] * sizes[2]);
  return images;
}

std::vector<std::uint8_t> read_idx_labels(const std::string& path) {
  GzInput input(path);
  std::vector<std::uint32_t> sizes = read_sizes(input, kLabelsKind);
  return read_data(input, kLabelsKind, sizes, sizes[0]);
}

void write_idx_images(const std::string& path, int count, int rows, int cols, const std::uint8_t* pixels,
                      bool gzip) {
  if (count < 0 || rows < 0 || cols < 0) throw std::invalid_argument("write_idx_images: negative size");
  std::vector<std::uint32_t> sizes{std::uint32_t(count), std::uint32_t(rows), std::uint32_t(cols)};
  write_idx(path, kImagesKind, sizes, pixels, std::size_t(count) * std::size_t(rows) * std::size_t(cols), gzip);
}

void write_idx_labels(const std::string& path, const std::vector<std::uint8_t>& labels, bool gzip) {
  write_idx(path, kLabelsKind, {std::uint32_t(labels.size())}, labels.data(), labels.size(), gzip);
}

}  // namespace fmnist

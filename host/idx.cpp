// IDX reading (raw or gzip, from a file or from memory, through zlib's inflate) and writing (through
// zlib's gz* functions); every header field is checked before it sizes anything, and data is read in
// bounded chunks.
#include "host/idx.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <memory>
#include <utility>

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

// Where an IdxInput's bytes come from: a file or a buffer in memory.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Reads up to `size` bytes, as read(2) does: 0 at the end, -1 with errno set on an error.
  virtual std::ptrdiff_t read(std::uint8_t* out, std::size_t size) = 0;
};

class FileSource : public ByteSource {
 public:
  explicit FileSource(int fd) : fd_(fd) {}
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;
  ~FileSource() override { ::close(fd_); }
  std::ptrdiff_t read(std::uint8_t* out, std::size_t size) override {
    for (;;) {
      const ssize_t n = ::read(fd_, out, size);
      if (n >= 0 || errno != EINTR) return n;
    }
  }

 private:
  int fd_;
};

class MemorySource : public ByteSource {
 public:
  MemorySource(const std::uint8_t* data, std::size_t size) : data_(data), left_(size) {}
  std::ptrdiff_t read(std::uint8_t* out, std::size_t size) override {
    const std::size_t n = std::min(size, left_);
    if (n > 0) std::memcpy(out, data_, n);
    data_ += n;
    left_ -= n;
    return static_cast<std::ptrdiff_t>(n);
  }

 private:
  const std::uint8_t* data_;
  std::size_t left_;
};

// The bytes of a raw or gzip IDX file, decompressed as zlib's gzread does with a 256 KiB buffer
// (the algorithm of zlib 1.2.13's gzread.c: a gzip member is detected by its magic bytes, members
// may follow one another, bytes after the last member are ignored, anything else is read as is), so
// a file on disk and the same bytes in memory give the same data and the same errors. Every error
// throws a DataError naming the file.
class IdxInput {
 public:
  IdxInput(std::string path, ByteSource& source) : path_(std::move(path)), source_(source) {}
  IdxInput(const IdxInput&) = delete;
  IdxInput& operator=(const IdxInput&) = delete;
  ~IdxInput() {
    if (inflating_) inflateEnd(&strm_);
  }

  // Reads up to `size` bytes; fewer only at the end of the data.
  std::size_t read(std::uint8_t* out, std::size_t size) {
    std::size_t total = 0;
    while (total < size) {
      std::size_t n = size - total;
      if (have_ > 0) {  // first what is already decoded
        n = std::min(n, have_);
        std::memcpy(out + total, next_, n);
        next_ += n;
        have_ -= n;
      } else if (eof_ && strm_.avail_in == 0) {
        break;
      } else if (how_ == How::Look || n < kOutBytes) {  // small reads go through the buffer
        fetch();
        continue;
      } else if (how_ == How::Copy) {  // large reads straight into `out`
        n = load(out + total, n);
      } else {
        n = decompress(out + total, n);
      }
      total += n;
    }
    return total;
  }

  DataError error(const std::string& problem) const { return DataError(path_ + ": " + problem); }

 private:
  enum class How { Look, Copy, Gzip };
  static constexpr std::size_t kInBytes = 256 * 1024;
  static constexpr std::size_t kOutBytes = 2 * kInBytes;

  // Reads up to `size` bytes of the source, noting its end.
  std::size_t load(std::uint8_t* out, std::size_t size) {
    std::size_t got = 0;
    while (got < size) {
      const std::ptrdiff_t n = source_.read(out + got, size - got);
      if (n < 0) throw error(fmt::format("read error: {}", std::strerror(errno)));
      if (n == 0) {
        eof_ = true;
        break;
      }
      got += static_cast<std::size_t>(n);
    }
    return got;
  }

  // Tops up the input buffer, keeping what inflate has not consumed yet.
  void fill_input() {
    if (eof_) return;
    if (strm_.avail_in > 0) std::memmove(in_.get(), strm_.next_in, strm_.avail_in);
    strm_.avail_in += static_cast<uInt>(load(in_.get() + strm_.avail_in, kInBytes - strm_.avail_in));
    strm_.next_in = in_.get();
  }

  // At the start of the file or after a gzip member: decide how to read what follows.
  void look() {
    if (!inflating_) {
      in_.reset(new std::uint8_t[kInBytes]);  // not zero-filled: only what is read is used
      out_.reset(new std::uint8_t[kOutBytes]);
      if (inflateInit2(&strm_, 15 + 16) != Z_OK) throw error("out of memory while decompressing");
      inflating_ = true;
    }
    if (strm_.avail_in < 2) {
      fill_input();
      if (strm_.avail_in == 0) return;
    }
    if (strm_.avail_in > 1 && strm_.next_in[0] == 0x1f && strm_.next_in[1] == 0x8b) {
      inflateReset(&strm_);
      how_ = How::Gzip;
      direct_ = false;
      return;
    }
    if (!direct_) {  // bytes after a gzip member are ignored, as gzread does
      strm_.avail_in = 0;
      eof_ = true;
      have_ = 0;
      return;
    }
    std::memcpy(out_.get(), strm_.next_in, strm_.avail_in);
    next_ = out_.get();
    have_ = strm_.avail_in;
    strm_.avail_in = 0;
    how_ = How::Copy;
  }

  // Inflates into `out` until it is full or the gzip member ends; returns the bytes written.
  std::size_t decompress(std::uint8_t* out, std::size_t size) {
    strm_.next_out = out;
    strm_.avail_out = static_cast<uInt>(size);
    int status = Z_OK;
    do {
      if (strm_.avail_in == 0) fill_input();
      if (strm_.avail_in == 0) throw error("truncated gzip stream (zlib: unexpected end of file)");
      status = inflate(&strm_, Z_NO_FLUSH);
      if (status == Z_STREAM_ERROR || status == Z_NEED_DICT)
        throw error("gzip read error (zlib: internal error: inflate stream corrupt)");
      if (status == Z_MEM_ERROR) throw error("out of memory while decompressing");
      if (status == Z_DATA_ERROR)
        throw error(fmt::format("corrupt gzip stream (zlib: {})", strm_.msg ? strm_.msg : "compressed data error"));
    } while (strm_.avail_out > 0 && status != Z_STREAM_END);
    if (status == Z_STREAM_END) how_ = How::Look;
    return size - strm_.avail_out;
  }

  // Decodes into the output buffer until it holds something or the input ends.
  void fetch() {
    do {
      switch (how_) {
        case How::Look:
          look();
          if (how_ == How::Look) return;
          break;
        case How::Copy:
          have_ = load(out_.get(), kOutBytes);
          next_ = out_.get();
          return;
        case How::Gzip:
          have_ = decompress(out_.get(), kOutBytes);
          next_ = out_.get();
          break;
      }
    } while (have_ == 0 && (!eof_ || strm_.avail_in > 0));
  }

  std::string path_;
  ByteSource& source_;
  z_stream strm_{};
  bool inflating_ = false;
  std::unique_ptr<std::uint8_t[]> in_, out_;
  How how_ = How::Look;
  bool direct_ = true;  // no gzip member seen yet
  bool eof_ = false;    // the source has no more bytes
  const std::uint8_t* next_ = nullptr;  // decoded bytes waiting in out_
  std::size_t have_ = 0;
};

std::uint32_t read_big_endian_u32(const std::uint8_t* bytes) {
  return (std::uint32_t{bytes[0]} << 24) | (std::uint32_t{bytes[1]} << 16) | (std::uint32_t{bytes[2]} << 8) |
         std::uint32_t{bytes[3]};
}

void check_magic(const IdxInput& input, const IdxKind& kind, const std::uint8_t* bytes) {
  std::uint32_t magic = read_big_endian_u32(bytes);
  std::string mismatch = fmt::format("bad magic number 0x{:08X}, expected 0x{:08X} ({})", magic, kind.magic(),
                                     kind.description);
  if (bytes[0] != 0 || bytes[1] != 0) throw input.error(mismatch + ": first two bytes are not zero, not an IDX file");
  if (bytes[2] != kUnsignedByteType)
    throw input.error(mismatch + fmt::format(": element type 0x{:02X} is not 0x08 (unsigned byte)", bytes[2]));
  if (bytes[3] != kind.dimensions) {
    // The other kind of Fashion-MNIST file: the image and label files are mixed up.
    const char* other = bytes[3] == kImagesKind.dimensions ? "an IDX image file"
                        : bytes[3] == kLabelsKind.dimensions ? "an IDX label file" : nullptr;
    const char* expected = kind.dimensions == kImagesKind.dimensions ? "images" : "labels";
    if (other != nullptr)
      throw input.error(mismatch + fmt::format(": {} dimensions instead of {}: this is {}, expected {} (image and "
                                               "label files mixed up?)", bytes[3], kind.dimensions, other, expected));
    throw input.error(mismatch + fmt::format(": {} dimensions instead of {}", bytes[3], kind.dimensions));
  }
}

// Reads the header's sizes, each checked non-zero, whose product must stay within kMaxIdxDataBytes.
std::vector<std::uint32_t> read_sizes(IdxInput& input, const IdxKind& kind) {
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
std::vector<std::uint8_t> read_data(IdxInput& input, const IdxKind& kind, const std::vector<std::uint32_t>& sizes,
                                    std::size_t data_bytes) {
  std::vector<std::uint8_t> data;
  data.reserve(std::min(data_bytes, std::size_t{64} << 20));
  // Read through a scratch buffer, so memory grows with the bytes found, not the sizes claimed.
  const std::unique_ptr<std::uint8_t[]> scratch(new std::uint8_t[kReadChunkBytes]);
  while (data.size() < data_bytes) {
    std::size_t chunk = std::min(kReadChunkBytes, data_bytes - data.size());
    std::size_t got = input.read(scratch.get(), chunk);
    data.insert(data.end(), scratch.get(), scratch.get() + got);
    if (got < chunk)
      throw input.error(fmt::format("truncated data: expected {} bytes ({}-byte header + {} for {}), found {}",
                                    kind.header_bytes() + data_bytes, kind.header_bytes(), data_bytes,
                                    fmt::join(sizes, "x"), kind.header_bytes() + data.size()));
  }
  std::size_t trailing = 0;
  while (trailing < kMaxTrailingBytesCounted) {
    std::size_t got = input.read(scratch.get(), kReadChunkBytes);
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

int open_for_reading(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw DataError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  return fd;
}

IdxImages decode_images(const std::string& path, ByteSource& source) {
  IdxInput input(path, source);
  std::vector<std::uint32_t> sizes = read_sizes(input, kImagesKind);
  IdxImages images;
  images.count = static_cast<int>(sizes[0]);
  images.rows = static_cast<int>(sizes[1]);
  images.cols = static_cast<int>(sizes[2]);
  images.pixels = read_data(input, kImagesKind, sizes, std::size_t(sizes[0]) * sizes[1] * sizes[2]);
  return images;
}

std::vector<std::uint8_t> decode_labels(const std::string& path, ByteSource& source) {
  IdxInput input(path, source);
  std::vector<std::uint32_t> sizes = read_sizes(input, kLabelsKind);
  return read_data(input, kLabelsKind, sizes, sizes[0]);
}

}  // namespace

IdxImages read_idx_images(const std::string& path) {
  FileSource source(open_for_reading(path));
  return decode_images(path, source);
}

std::vector<std::uint8_t> read_idx_labels(const std::string& path) {
  FileSource source(open_for_reading(path));
  return decode_labels(path, source);
}

IdxImages decode_idx_images(const std::vector<std::uint8_t>& bytes, const std::string& path) {
  MemorySource source(bytes.data(), bytes.size());
  return decode_images(path, source);
}

std::vector<std::uint8_t> decode_idx_labels(const std::vector<std::uint8_t>& bytes, const std::string& path) {
  MemorySource source(bytes.data(), bytes.size());
  return decode_labels(path, source);
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

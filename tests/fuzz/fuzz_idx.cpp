// libFuzzer harness: the IDX reader (images and labels, raw or gzip) on arbitrary bytes, in memory
// through decode_idx_* (the code read_idx_* runs on a file). Besides "no crash, documented one-line
// errors only", two exact properties: the bytes gzip-compressed read exactly like the bytes
// themselves (same data or same message), and gzip-compressed then cut short they are refused as a
// truncated gzip stream; and read_idx_* reading them from a file (a memfd) agree with decode_idx_*.
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "host/idx.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/memory_file.h"

namespace {

const std::string kPath = "fuzz.idx";

// What decoding gives: the data, or the error message.
template <typename Decode>
std::string outcome(Decode&& decode, const std::vector<std::uint8_t>& bytes) {
  std::string result;
  fmnist::fuzz::expect_documented_errors(kPath, [&] {
    try {
      result = "ok:" + decode(bytes);
    } catch (const std::exception& e) {
      result = std::string("error:") + e.what();
      throw;
    }
  });
  return result;
}

std::string images(const std::vector<std::uint8_t>& bytes) {
  const fmnist::IdxImages images = fmnist::decode_idx_images(bytes, kPath);
  if (images.count <= 0 || images.rows <= 0 || images.cols <= 0 ||
      images.pixels.size() != std::size_t(images.count) * std::size_t(images.rows) * std::size_t(images.cols))
    fmnist::fuzz::fail("decode_idx_images returned sizes that do not match its pixels");
  return std::to_string(images.count) + "x" + std::to_string(images.rows) + "x" + std::to_string(images.cols) +
         ":" + std::string(images.pixels.begin(), images.pixels.end());
}

std::string labels(const std::vector<std::uint8_t>& bytes) {
  const std::vector<std::uint8_t> labels = fmnist::decode_idx_labels(bytes, kPath);
  if (labels.empty()) fmnist::fuzz::fail("decode_idx_labels returned no labels");
  return std::string(labels.begin(), labels.end());
}

std::string file_images(const std::string& path) {
  const fmnist::IdxImages images = fmnist::read_idx_images(path);
  return std::to_string(images.count) + "x" + std::to_string(images.rows) + "x" + std::to_string(images.cols) +
         ":" + std::string(images.pixels.begin(), images.pixels.end());
}

std::string file_labels(const std::string& path) {
  const std::vector<std::uint8_t> labels = fmnist::read_idx_labels(path);
  return std::string(labels.begin(), labels.end());
}

// What reading the memfd gives, its /proc path in a message replaced by kPath.
std::string outcome_of_file(std::string (*read)(const std::string&), const fmnist::fuzz::MemoryFile& file) {
  try {
    return "ok:" + read(file.path());
  } catch (const fmnist::DataError& e) {
    fmnist::fuzz::check_file_error(e, file.path());
    return "error:" + kPath + std::string(e.what()).substr(file.path().size());
  }
}

// `bytes` as one gzip member (zlib's deflate, the fastest level).
std::vector<std::uint8_t> gzip(const std::vector<std::uint8_t>& bytes) {
  z_stream stream{};
  if (deflateInit2(&stream, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) fmnist::fuzz::fail("deflateInit2");
  std::vector<std::uint8_t> out(deflateBound(&stream, bytes.size()));
  stream.next_in = const_cast<std::uint8_t*>(bytes.data());
  stream.avail_in = static_cast<uInt>(bytes.size());
  stream.next_out = out.data();
  stream.avail_out = static_cast<uInt>(out.size());
  if (deflate(&stream, Z_FINISH) != Z_STREAM_END) fmnist::fuzz::fail("deflate");
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::vector<std::uint8_t> bytes(data, data + size);
  const std::vector<std::uint8_t> compressed = gzip(bytes);
  // Cut inside the 8-byte trailer (CRC-32 and length): every byte of data is there, the stream is not.
  const std::vector<std::uint8_t> cut(compressed.begin(), compressed.end() - 1 - std::ptrdiff_t(size % 8));
  const std::string truncated = "error:" + kPath + ": truncated gzip stream (zlib: unexpected end of file)";
  const fmnist::fuzz::MemoryFile file(bytes);
  for (auto decode : {images, labels}) {
    const std::string raw = outcome(decode, bytes);
    if (outcome_of_file(decode == images ? file_images : file_labels, file) != raw)
      fmnist::fuzz::fail("read_idx_* on a file and decode_idx_* on its bytes disagree");
    // A raw file starting with the gzip magic is read as gzip: no comparison for those.
    if (!(size >= 2 && data[0] == 0x1f && data[1] == 0x8b) && outcome(decode, compressed) != raw)
      fmnist::fuzz::fail("the gzip-compressed bytes do not read like the raw bytes");
    // Below 512 KiB the reader has inflated the whole member before it checks anything.
    if (size < (std::size_t{512} << 10) && outcome(decode, cut) != truncated)
      fmnist::fuzz::fail("gzip data cut short is not refused as a truncated gzip stream: " + outcome(decode, cut));
  }
  return 0;
}

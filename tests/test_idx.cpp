// IDX reading and writing: round trips, and every malformed file (written here, raw and gzip) rejected
// with a one-line DataError that names the file and the problem, directly or through load_fashion_mnist.
#include <catch2/catch.hpp>
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "host/dataset.h"
#include "host/idx.h"
#include "models/rng.h"

namespace {

using Bytes = std::vector<std::uint8_t>;

// Checks that `expression` throws a DataError whose one-line message contains `path` and `problem`.
#define REQUIRE_DATA_ERROR(expression, path, problem)                                                         \
  do {                                                                                                        \
    REQUIRE_THROWS_AS(expression, fmnist::DataError);                                                         \
    REQUIRE_THROWS_WITH(expression, Catch::Contains(path) && Catch::Contains(problem) && !Catch::Contains("\n")); \
  } while (false)

std::string scratch_path(const std::string& name) {
  std::filesystem::path dir = std::filesystem::path(FMNIST_TEST_TMP_DIR) / "idx";
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

void write_bytes(const std::string& path, const Bytes& bytes, bool gzip) {
  gzFile file = gzopen(path.c_str(), gzip ? "wb" : "wbT");
  REQUIRE(file != nullptr);
  if (!bytes.empty()) REQUIRE(gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())) == int(bytes.size()));
  REQUIRE(gzclose(file) == Z_OK);
}

Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// An IDX file: the four magic bytes, big-endian sizes, then `data`.
Bytes idx_bytes(const Bytes& magic, const std::vector<std::uint32_t>& sizes, const Bytes& data) {
  Bytes bytes = magic;
  for (std::uint32_t size : sizes)
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<std::uint8_t>(size >> shift));
  bytes.insert(bytes.end(), data.begin(), data.end());
  return bytes;
}

Bytes random_bytes(std::size_t count, std::uint64_t seed) {
  fmnist::SplitMix64 rng(seed);
  Bytes bytes(count);
  for (std::uint8_t& byte : bytes) byte = static_cast<std::uint8_t>(rng.next());
  return bytes;
}

const Bytes kImagesMagic{0x00, 0x00, 0x08, 0x03};
const Bytes kLabelsMagic{0x00, 0x00, 0x08, 0x01};

// A well-formed IDX image file of `count` images of 28x28.
Bytes good_images(std::uint32_t count) { return idx_bytes(kImagesMagic, {count, 28, 28}, random_bytes(count * 784, count)); }

// A directory holding a small valid Fashion-MNIST-shaped dataset (gzip), for breaking one file of it.
std::string write_small_dataset(const std::string& name) {
  std::filesystem::path dir = scratch_path(name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  for (const char* prefix : {"train", "t10k"}) {
    Bytes labels{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    write_bytes((dir / (std::string(prefix) + "-images-idx3-ubyte.gz")).string(), good_images(10), true);
    write_bytes((dir / (std::string(prefix) + "-labels-idx1-ubyte.gz")).string(), idx_bytes(kLabelsMagic, {10}, labels),
                true);
  }
  return dir.string();
}

}  // namespace

TEST_CASE("IDX images and labels survive a write/read round trip, raw and gzip", "[idx]") {
  for (bool gzip : {false, true}) {
    INFO("gzip " << gzip);
    Bytes pixels = random_bytes(7 * 5 * 3, 11);
    std::string images_path = scratch_path(gzip ? "round-images.gz" : "round-images");
    fmnist::write_idx_images(images_path, 7, 5, 3, pixels.data(), gzip);
    fmnist::IdxImages images = fmnist::read_idx_images(images_path);
    CHECK(images.count == 7);
    CHECK(images.rows == 5);
    CHECK(images.cols == 3);
    CHECK(images.pixels == pixels);

    Bytes labels = random_bytes(1000, 12);
    std::string labels_path = scratch_path(gzip ? "round-labels.gz" : "round-labels");
    fmnist::write_idx_labels(labels_path, labels, gzip);
    CHECK(fmnist::read_idx_labels(labels_path) == labels);

    Bytes on_disk = read_bytes(labels_path);
    REQUIRE(on_disk.size() >= 4);
    if (gzip) {
      CHECK((on_disk[0] == 0x1f && on_disk[1] == 0x8b));
    } else {
      CHECK(Bytes(on_disk.begin(), on_disk.begin() + 8) == Bytes{0, 0, 8, 1, 0, 0, 0x03, 0xe8});
    }
  }
}

TEST_CASE("IDX: a bad magic number is rejected", "[idx]") {
  std::string path = scratch_path("bad-magic");
  write_bytes(path, idx_bytes({0x12, 0x34, 0x08, 0x03}, {1, 28, 28}, Bytes(784)), false);
  REQUIRE_DATA_ERROR(fmnist::read_idx_images(path), path,
                     "bad magic number 0x12340803, expected 0x00000803 (IDX uint8 images): first two bytes are not zero");
}

TEST_CASE("IDX: an element type other than uint8 is rejected", "[idx]") {
  std::string path = scratch_path("float-type.gz");
  write_bytes(path, idx_bytes({0x00, 0x00, 0x0D, 0x03}, {1, 28, 28}, Bytes(4 * 784)), true);
  REQUIRE_DATA_ERROR(fmnist::read_idx_images(path), path, "element type 0x0D is not 0x08");
}

TEST_CASE("IDX: a wrong dimension count is rejected", "[idx]") {
  std::string images_path = scratch_path("two-dims");
  write_bytes(images_path, idx_bytes({0x00, 0x00, 0x08, 0x02}, {1, 784}, Bytes(784)), false);
  REQUIRE_DATA_ERROR(fmnist::read_idx_images(images_path), images_path,
                     "bad magic number 0x00000802, expected 0x00000803 (IDX uint8 images): 2 dimensions instead of 3");

  std::string images_as_labels = scratch_path("images-as-labels.gz");
  write_bytes(images_as_labels, good_images(2), true);
  REQUIRE_DATA_ERROR(fmnist::read_idx_labels(images_as_labels), images_as_labels,
                     "expected 0x00000801 (IDX uint8 labels): 3 dimensions instead of 1");
}

TEST_CASE("IDX: zero sizes in the header are rejected", "[idx]") {
  std::string zero_count = scratch_path("zero-count");
  write_bytes(zero_count, idx_bytes(kImagesMagic, {0, 28, 28}, {}), false);
  REQUIRE_DATA_ERROR(fmnist::read_idx_images(zero_count), zero_count, "image count is 0 in the header");

  std::string zero_rows = scratch_path("zero-rows.gz");
  write_bytes(zero_rows, idx_bytes(kImagesMagic, {5, 0, 28}, {}), true);
  REQUIRE_DATA_ERROR(fmnist::read_idx_images(zero_rows), zero_rows, "rows is 0 in the header");

  std::string zero_labels = scratch_path("zero-labels");
  write_bytes(zero_labels, idx_bytes(kLabelsMagic, {0}, {}), false);
  REQUIRE_DATA_ERROR(fmnist::read_idx_labels(zero_labels), zero_labels, "label count is 0 in the header");
}

TEST_CASE("IDX: absurd header sizes are rejected before any allocation", "[idx]") {
  std::string path = scratch_path("absurd-sizes");
  write_bytes(path, idx_bytes(kImagesMagic, {4000000000u, 100000, 28}, Bytes(16)), false);
  REQUIRE_DATA_ERROR(fmnist::read_idx_images(path), path, "header sizes 4000000000x100000x28 are too large (over 1000000000 bytes)");
}

TEST_CASE("IDX: a truncated header is rejected, raw and gzip", "[idx]") {
  Bytes header = idx_bytes(kImagesMagic, {1, 28, 28}, {});
  for (bool gzip : {false, true}) {
    std::string path = scratch_path(gzip ? "short-header.gz" : "short-header");
    write_bytes(path, Bytes(header.begin(), header.begin() + 9), gzip);
    REQUIRE_DATA_ERROR(fmnist::read_idx_images(path), path, "truncated header: expected 16 bytes, found 9");
  }
  std::string two_bytes = scratch_path("two-bytes");
  write_bytes(two_bytes, {0, 0}, false);
  REQUIRE_DATA_ERROR(fmnist::read_idx_labels(two_bytes), two_bytes, "truncated header: expected 8 bytes, found 2");
}

TEST_CASE("IDX: truncated data is rejected with the expected and found sizes, raw and gzip", "[idx]") {
  Bytes whole = good_images(10);
  Bytes cut(whole.begin(), whole.begin() + 7016);
  for (bool gzip : {false, true}) {
    std::string path = scratch_path(gzip ? "short-data.gz" : "short-data");
    write_bytes(path, cut, gzip);
    REQUIRE_DATA_ERROR(fmnist::read_idx_images(path), path,
                       "truncated data: expected 7856 bytes (16-byte header + 7840 for 10x28x28), found 7016");
  }
}

TEST_CASE("IDX: a gzip file cut short is rejected as a truncated gzip stream", "[idx]") {
  std::string whole_path = scratch_path("whole.gz");
  write_bytes(whole_path, good_images(10), true);
  Bytes compressed = read_bytes(whole_path);
  std::string path = scratch_path("cut-stream.gz");
  write_bytes(path, Bytes(compressed.begin(), compressed.begin() + compressed.size() / 2), false);
  REQUIRE_DATA_ERROR(fmnist::read_idx_images(path), path, "truncated gzip stream (zlib: unexpected end of file)");
}

TEST_CASE("IDX: trailing bytes are rejected, raw and gzip", "[idx]") {
  Bytes with_trailing = idx_bytes(kLabelsMagic, {4}, {1, 2, 3, 4, 0xAA, 0xBB, 0xCC});
  for (bool gzip : {false, true}) {
    std::string path = scratch_path(gzip ? "trailing.gz" : "trailing");
    write_bytes(path, with_trailing, gzip);
    REQUIRE_DATA_ERROR(fmnist::read_idx_labels(path), path,
                       "trailing garbage: 3 bytes after the 12 the header accounts for");
  }
}

TEST_CASE("IDX: a corrupt gzip stream is rejected with zlib's message", "[idx]") {
  std::string whole_path = scratch_path("to-corrupt.gz");
  write_bytes(whole_path, good_images(10), true);
  Bytes compressed = read_bytes(whole_path);
  REQUIRE(compressed.size() > 20);

  Bytes bad_block = compressed;
  bad_block[10] = 0xFF;  // first deflate block header: final block of reserved type 3
  std::string bad_block_path = scratch_path("bad-block.gz");
  write_bytes(bad_block_path, bad_block, false);
  REQUIRE_DATA_ERROR(fmnist::read_idx_images(bad_block_path), bad_block_path,
                     "corrupt gzip stream (zlib: invalid block type)");

  Bytes bad_checksum = compressed;
  bad_checksum[bad_checksum.size() - 8] ^= 0xFF;  // the CRC-32 in the gzip trailer
  std::string bad_checksum_path = scratch_path("bad-checksum.gz");
  write_bytes(bad_checksum_path, bad_checksum, false);
  REQUIRE_DATA_ERROR(fmnist::read_idx_images(bad_checksum_path), bad_checksum_path,
                     "corrupt gzip stream (zlib: incorrect data check)");
}

TEST_CASE("IDX: an empty file is rejected, raw and gzip", "[idx]") {
  for (bool gzip : {false, true}) {
    std::string path = scratch_path(gzip ? "empty.gz" : "empty");
    write_bytes(path, {}, gzip);
    REQUIRE_DATA_ERROR(fmnist::read_idx_labels(path), path, "file is empty");
  }
}

TEST_CASE("IDX: a missing file is rejected", "[idx]") {
  std::string path = scratch_path("does-not-exist.gz");
  std::filesystem::remove(path);
  REQUIRE_DATA_ERROR(fmnist::read_idx_images(path), path, "cannot open: No such file or directory");
}

TEST_CASE("load_fashion_mnist rejects labels outside 0-9", "[idx][dataset]") {
  std::string dir = write_small_dataset("labels-over-9");
  std::string path = dir + "/train-labels-idx1-ubyte.gz";
  write_bytes(path, idx_bytes(kLabelsMagic, {10}, {0, 1, 2, 10, 4, 5, 6, 7, 8, 9}), true);
  REQUIRE_DATA_ERROR(fmnist::load_fashion_mnist(dir), path, "label 10 at index 3 is outside 0-9");
}

TEST_CASE("load_fashion_mnist rejects an image/label count mismatch", "[idx][dataset]") {
  std::string dir = write_small_dataset("count-mismatch");
  std::string path = dir + "/t10k-labels-idx1-ubyte.gz";
  write_bytes(path, idx_bytes(kLabelsMagic, {9}, {0, 1, 2, 3, 4, 5, 6, 7, 8}), true);
  REQUIRE_DATA_ERROR(fmnist::load_fashion_mnist(dir), path,
                     "image/label count mismatch, 9 labels for the 10 images of " + dir + "/t10k-images-idx3-ubyte.gz");
}

TEST_CASE("load_fashion_mnist rejects images that are not 28x28", "[idx][dataset]") {
  std::string dir = write_small_dataset("27x28");
  std::string path = dir + "/train-images-idx3-ubyte.gz";
  write_bytes(path, idx_bytes(kImagesMagic, {10, 27, 28}, Bytes(10 * 27 * 28)), true);
  REQUIRE_DATA_ERROR(fmnist::load_fashion_mnist(dir), path, "images are 27x28, expected 28x28");
}

TEST_CASE("load_fashion_mnist names the missing file or directory", "[idx][dataset]") {
  std::string dir = write_small_dataset("missing-file");
  std::filesystem::remove(dir + "/t10k-labels-idx1-ubyte.gz");
  REQUIRE_DATA_ERROR(fmnist::load_fashion_mnist(dir), dir,
                     "missing data file, tried t10k-labels-idx1-ubyte.gz and t10k-labels-idx1-ubyte");

  std::string missing_dir = scratch_path("no-such-directory");
  REQUIRE_DATA_ERROR(fmnist::load_fashion_mnist(missing_dir), missing_dir, "data directory not found");
}

TEST_CASE("load_fashion_mnist passes on IDX errors with the bad file's path", "[idx][dataset]") {
  std::string dir = write_small_dataset("bad-idx-inside");
  std::string path = dir + "/t10k-images-idx3-ubyte.gz";
  Bytes whole = good_images(10);
  write_bytes(path, Bytes(whole.begin(), whole.begin() + 100), true);
  REQUIRE_DATA_ERROR(fmnist::load_fashion_mnist(dir), path, "truncated data");
}

// The safetensors reader and writer: round trips, the byte layout, malformed files refused with a
// one-line "PATH: problem", and atomic writes that leave no temp file and no torn file behind.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "host/safetensors.h"

namespace fs = std::filesystem;
using namespace fmnist;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

fs::path scratch_dir() {
  fs::path dir = fs::path(FMNIST_TEST_TMP_DIR) / "safetensors";
  fs::create_directories(dir);
  return dir;
}

struct OneLine : Catch::MatcherBase<std::string> {
  bool match(const std::string& s) const override { return s.find('\n') == std::string::npos; }
  std::string describe() const override { return "is one line"; }
};

std::vector<std::uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }

void write_bytes(const fs::path& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::vector<std::uint8_t> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A file with the given header text and `data_bytes` zero bytes of data; header_length overrides N.
std::vector<std::uint8_t> raw_file(const std::string& header, std::size_t data_bytes,
                                   std::uint64_t header_length = UINT64_MAX) {
  const std::uint64_t n = header_length == UINT64_MAX ? header.size() : header_length;
  std::vector<std::uint8_t> bytes;
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<std::uint8_t>(n >> (8 * i)));
  bytes.insert(bytes.end(), header.begin(), header.end());
  bytes.insert(bytes.end(), data_bytes, 0);
  return bytes;
}

template <typename T>
Tensor tensor_of(const std::string& name, const std::string& dtype, std::vector<std::int64_t> shape,
                 const std::vector<T>& values) {
  Tensor t{name, dtype, std::move(shape), std::vector<std::uint8_t>(values.size() * sizeof(T))};
  if (!values.empty()) std::memcpy(t.data.data(), values.data(), t.data.size());
  return t;
}

SafetensorsFile sample_file() {
  SafetensorsFile f;
  f.metadata = {{"format", "pt"}, {"note", "several dtypes"}};
  f.tensors.push_back(tensor_of<float>("weights", "F32", {2, 3}, {1.5f, -2.0f, 0.0f, 3.25f, 1e-30f, -0.0f}));
  f.tensors.push_back(tensor_of<double>("doubles", "F64", {3}, {3.141592653589793, -1e300, 0.5}));
  f.tensors.push_back(tensor_of<std::int64_t>("counts", "I64", {2, 2}, {1, -2, INT64_MAX, INT64_MIN}));
  f.tensors.push_back(tensor_of<std::int32_t>("ints", "I32", {4}, {7, -7, 0, 123456}));
  f.tensors.push_back(tensor_of<std::uint8_t>("pixels", "U8", {5}, {0, 1, 127, 128, 255}));
  f.tensors.push_back(tensor_of<float>("scalar", "F32", {}, {42.0f}));
  f.tensors.push_back(tensor_of<float>("empty", "F32", {0, 3}, {}));
  return f;
}

}  // namespace

TEST_CASE("safetensors round trip keeps dtypes, shapes, data, order and metadata", "[safetensors]") {
  const std::string path = (scratch_dir() / "round_trip.safetensors").string();
  const SafetensorsFile written = sample_file();
  write_safetensors(path, written);
  const SafetensorsFile read = read_safetensors(path);
  CHECK(read.metadata == written.metadata);
  REQUIRE(read.tensors.size() == written.tensors.size());
  for (std::size_t i = 0; i < written.tensors.size(); ++i) {
    INFO(written.tensors[i].name);
    CHECK(read.tensors[i].name == written.tensors[i].name);
    CHECK(read.tensors[i].dtype == written.tensors[i].dtype);
    CHECK(read.tensors[i].shape == written.tensors[i].shape);
    CHECK(read.tensors[i].data == written.tensors[i].data);
  }
  REQUIRE(read.find("pixels") != nullptr);
  CHECK(read.find("pixels")->data[4] == 255);
  CHECK(read.find("missing") == nullptr);
  CHECK_FALSE(fs::exists(safetensors_temp_path(path)));
}

TEST_CASE("safetensors byte layout: LE u64 header length, aligned JSON, contiguous offsets", "[safetensors]") {
  const std::string path = (scratch_dir() / "layout.safetensors").string();
  const SafetensorsFile written = sample_file();
  write_safetensors(path, written);
  const auto bytes = read_bytes(path);
  REQUIRE(bytes.size() >= 8);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  REQUIRE(8 + n <= bytes.size());
  CHECK((8 + n) % 8 == 0);
  CHECK(bytes[8] == '{');
  const std::string header_text(bytes.begin() + 8, bytes.begin() + 8 + static_cast<long>(n));
  const auto header = nlohmann::json::parse(header_text);
  REQUIRE(header.is_object());
  CHECK(header["__metadata__"]["note"] == "several dtypes");
  std::uint64_t offset = 0;
  for (const auto& t : written.tensors) {
    INFO(t.name);
    const auto& entry = header.at(t.name);
    CHECK(entry["dtype"] == t.dtype);
    CHECK(entry["shape"].get<std::vector<std::int64_t>>() == t.shape);
    CHECK(entry["data_offsets"][0].get<std::uint64_t>() == offset);
    offset += t.data.size();
    CHECK(entry["data_offsets"][1].get<std::uint64_t>() == offset);
    const std::vector<std::uint8_t> stored(bytes.begin() + 8 + static_cast<long>(n + offset - t.data.size()),
                                           bytes.begin() + 8 + static_cast<long>(n + offset));
    CHECK(stored == t.data);
  }
  CHECK(8 + n + offset == bytes.size());
  // F32 is little-endian: 1.5f = 0x3FC00000 starts the data section.
  CHECK(bytes[8 + n] == 0x00);
  CHECK(bytes[8 + n + 3] == 0x3F);
}

TEST_CASE("safetensors reader refuses malformed files with a one-line PATH: problem", "[safetensors]") {
  const std::string f32_4 = R"("a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]})";
  struct Case {
    std::string name;
    std::vector<std::uint8_t> bytes;
    std::string problem;
  };
  std::vector<std::uint8_t> cut = encode_safetensors(sample_file(), "sample");
  cut.resize(cut.size() - 3);
  const std::vector<Case> cases = {
      {"truncated_real_file", cut, "out of range"},
      {"empty", {}, "file too short (0 bytes)"},
      {"five_bytes", {1, 0, 0, 0, 0}, "file too short (5 bytes)"},
      {"header_past_end", raw_file("{}", 0, 1000), "header length 1000 runs past the end of the file (10 bytes)"},
      {"header_absurd", raw_file("{}", 0, std::uint64_t(1) << 62), "is absurd"},
      {"truncated_data", raw_file("{" + f32_4 + "}", 10), "data_offsets [0, 16] out of range (data section is 10 bytes)"},
      {"bad_json", raw_file(R"({"a":{"dtype":"F32",,}})", 0), "header is not valid JSON"},
      {"not_object", raw_file("[1, 2, 3]", 0), "header is not a JSON object"},
      {"unknown_dtype", raw_file(R"({"a":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}})", 16), "tensor 'a': unknown dtype 'F128'"},
      {"overlap", raw_file("{" + f32_4 + R"(,"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", 16), "tensors 'a' and 'b' overlap"},
      {"gap", raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", 12), "bytes [4, 8) belong to no tensor"},
      {"not_covering", raw_file("{" + f32_4 + "}", 20), "bytes [16, 20) belong to no tensor"},
      {"shape_size_mismatch", raw_file(R"({"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", 20), "shape [2, 3] of F32 needs 24 bytes but data_offsets [0, 20] hold 20"},
      {"duplicate_key", raw_file("{" + f32_4 + "," + f32_4 + "}", 16), "duplicate tensor name 'a'"},
      {"offsets_wrong_type", raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":"0-4"}})", 4), "data_offsets must be an array [begin, end]"},
      {"offsets_negative", raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", 4), "data_offsets must be non-negative integers"},
      {"offsets_reversed", raw_file(R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}})", 4), "end before they begin"},
      {"shape_negative", raw_file(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4), "shape dimensions must be non-negative integers"},
      {"missing_dtype", raw_file(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", 4), "tensor 'a': missing \"dtype\""},
      {"entry_not_object", raw_file(R"({"a":[1,2]})", 0), "tensor 'a': entry is not a JSON object"},
      {"metadata_not_string", raw_file(R"({"__metadata__":{"epoch":3}})", 0), "__metadata__ value for 'epoch' is not a string"},
  };
  for (const auto& c : cases) {
    const std::string path = (scratch_dir() / ("bad_" + c.name + ".safetensors")).string();
    write_bytes(path, c.bytes);
    INFO(c.name);
    REQUIRE_THROWS_AS(read_safetensors(path), FormatError);
    REQUIRE_THROWS_WITH(read_safetensors(path), StartsWith(path + ": ") && Contains(c.problem) && OneLine());
  }
  const std::string missing = (scratch_dir() / "does_not_exist.safetensors").string();
  REQUIRE_THROWS_WITH(read_safetensors(missing), StartsWith(missing + ": cannot open: No such file"));
}

TEST_CASE("safetensors writer refuses tensors whose data does not match their shape", "[safetensors]") {
  const std::string path = (scratch_dir() / "inconsistent.safetensors").string();
  fs::remove(path);
  SafetensorsFile f;
  f.tensors.push_back(tensor_of<float>("a", "F32", {2, 2}, {1, 2, 3}));
  REQUIRE_THROWS_WITH(write_safetensors(path, f), StartsWith(path + ": ") && Contains("needs 16 bytes, has 12"));
  f.tensors = {tensor_of<float>("a", "F32", {1}, {1}), tensor_of<float>("a", "F32", {1}, {2})};
  REQUIRE_THROWS_WITH(write_safetensors(path, f), Contains("tensor 'a' twice"));
  CHECK_FALSE(fs::exists(path));
  CHECK_FALSE(fs::exists(safetensors_temp_path(path)));
}

TEST_CASE("safetensors writer: failed writes name the path, remove the temp file, keep the old file", "[safetensors]") {
  const fs::path dir = scratch_dir() / "write_failures";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const SafetensorsFile file = sample_file();

  SECTION("the parent directory does not exist") {
    const std::string path = (dir / "no_such_dir" / "w.safetensors").string();
    REQUIRE_THROWS_WITH(write_safetensors(path, file),
                        StartsWith(path + ": cannot create temporary file") && Contains("No such file or directory") && OneLine());
    CHECK_FALSE(fs::exists(dir / "no_such_dir"));
  }
  SECTION("the parent is a regular file (unwritable even for root)") {
    write_bytes(dir / "plain_file", bytes_of("not a directory"));
    const std::string path = (dir / "plain_file" / "w.safetensors").string();
    REQUIRE_THROWS_WITH(write_safetensors(path, file),
                        StartsWith(path + ": cannot create temporary file") && Contains("Not a directory"));
    CHECK(read_bytes(dir / "plain_file") == bytes_of("not a directory"));
  }
  // An old checkpoint at PATH, which every failure below must leave as it was.
  const std::string path = (dir / "old.safetensors").string();
  write_safetensors(path, file);
  const auto old_bytes = read_bytes(path);
  const std::string temp = safetensors_temp_path(path);

  SECTION("the temp path cannot be created (a directory is in the way)") {
    fs::create_directories(fs::path(temp) / "occupied");
    REQUIRE_THROWS_WITH(write_safetensors(path, SafetensorsFile{}),
                        StartsWith(path + ": cannot create temporary file " + temp) && Contains("Is a directory"));
    CHECK(read_bytes(path) == old_bytes);
    fs::remove_all(temp);
  }
  SECTION("the disk is full (the temp path leads to /dev/full)") {
    REQUIRE(fs::exists("/dev/full"));
    fs::create_symlink("/dev/full", temp);
    REQUIRE_THROWS_WITH(write_safetensors(path, SafetensorsFile{}),
                        StartsWith(path + ": cannot write temporary file " + temp) &&
                            Contains("No space left on device") && Contains("removed it") && OneLine());
    CHECK_FALSE(fs::exists(fs::symlink_status(temp)));
    CHECK(read_bytes(path) == old_bytes);
    CHECK(read_safetensors(path).tensors.size() == file.tensors.size());
  }
  SECTION("the rename fails (PATH is a non-empty directory)") {
    const std::string dir_path = (dir / "a_directory").string();
    fs::create_directories(fs::path(dir_path) / "child");
    REQUIRE_THROWS_WITH(write_safetensors(dir_path, file),
                        StartsWith(dir_path + ": cannot rename " + safetensors_temp_path(dir_path)));
    CHECK_FALSE(fs::exists(safetensors_temp_path(dir_path)));
    CHECK(fs::is_directory(fs::path(dir_path) / "child"));
  }
  SECTION("a successful write replaces the old file whole") {
    SafetensorsFile smaller;
    smaller.tensors.push_back(tensor_of<float>("only", "F32", {1}, {9.0f}));
    write_safetensors(path, smaller);
    const auto read = read_safetensors(path);
    REQUIRE(read.tensors.size() == 1);
    CHECK(read.tensors[0].name == "only");
    CHECK_FALSE(fs::exists(fs::symlink_status(temp)));
  }
}

TEST_CASE("safetensors checksum: written with every file, verified on load, optional for others", "[safetensors]") {
  const std::string path = (scratch_dir() / "checksummed.safetensors").string();
  SafetensorsFile f = sample_file();
  f.metadata[kChecksumKey] = "deadbeef";  // whatever is given, the writer computes its own
  write_safetensors(path, f);
  const auto bytes = read_bytes(path);
  const std::string text(bytes.begin(), bytes.end());
  char expected[9];
  std::snprintf(expected, sizeof expected, "%08x", content_crc32(sample_file()));
  CHECK(text.find(std::string("\"fmnist.crc32\":\"") + expected + "\"") != std::string::npos);
  const SafetensorsFile read = read_safetensors(path);
  CHECK(read.checksum_verified);
  CHECK(read.metadata == sample_file().metadata);  // the checksum is not handed on

  auto refused = [&](std::vector<std::uint8_t> damaged, const std::string& problem) {
    const std::string bad = (scratch_dir() / "damaged.safetensors").string();
    write_bytes(bad, damaged);
    REQUIRE_THROWS_WITH(read_safetensors(bad), StartsWith(bad + ": ") && Contains(problem) && OneLine());
  };
  SECTION("every single flipped bit in the data section is caught") {
    const std::size_t header = 8 + (bytes[0] | (bytes[1] << 8));
    for (std::size_t i = header; i < bytes.size(); i += 3) {
      auto damaged = bytes;
      damaged[i] ^= static_cast<std::uint8_t>(1u << (i % 8));
      INFO("byte " << i);
      refused(damaged, "checksum mismatch");
    }
  }
  SECTION("a changed metadata value is caught") {
    auto damaged = bytes;
    damaged[text.find("several dtypes")] = 'S';
    refused(damaged, "checksum mismatch: fmnist.crc32 says " + std::string(expected));
  }
  SECTION("a truncated file is refused as truncated") {
    auto damaged = bytes;
    damaged.resize(damaged.size() - 1);
    refused(damaged, "truncated file: tensor");
  }
  SECTION("a checksum that is not 8 hex digits") {
    auto damaged = bytes;
    damaged[text.find(expected)] = 'g';
    refused(damaged, "is '");
  }
  SECTION("a file without a checksum (PyTorch's) loads unchecked") {
    const std::string header = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
    const std::string plain = (scratch_dir() / "plain.safetensors").string();
    write_bytes(plain, raw_file(header, 4));
    const SafetensorsFile p = read_safetensors(plain);
    CHECK_FALSE(p.checksum_verified);
    CHECK(p.metadata.empty());
  }
  SECTION("the checksum does not depend on the header's spacing or key order") {
    const std::string header = R"({ "b" : {"shape":[1],"dtype":"U8","data_offsets":[1,2]}, "__metadata__":{"k":"v",)"
                               R"( "fmnist.crc32":"CRC"}, "a":{"data_offsets":[0,1],"dtype":"U8","shape":[1]}})";
    SafetensorsFile same;
    same.metadata = {{"k", "v"}};
    same.tensors = {tensor_of<std::uint8_t>("a", "U8", {1}, {7}), tensor_of<std::uint8_t>("b", "U8", {1}, {9})};
    char crc[9];
    std::snprintf(crc, sizeof crc, "%08x", content_crc32(same));
    std::string h = header;
    h.replace(h.find("CRC"), 3, crc);
    auto file = raw_file(h, 0);
    file.push_back(7);
    file.push_back(9);
    const std::string spaced = (scratch_dir() / "spaced.safetensors").string();
    write_bytes(spaced, file);
    CHECK(read_safetensors(spaced).checksum_verified);
  }
}

// The corpus of crafted bad files in tests/corpus/: every file listed in its README.md, run through
// the reader the README names, must be refused with one line "PATH: problem" holding the README's
// expected fragment; every file in the directory must be listed. The fuzzers take these files as
// seeds. `fmnist_tests "[.corpus-generate]"` rewrites the corpus (deterministically).
#include <catch2/catch.hpp>
#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "host/checkpoint.h"
#include "host/idx.h"
#include "host/safetensors.h"
#include "models/network.h"

namespace fs = std::filesystem;
using namespace fmnist;

namespace {

using Bytes = std::vector<std::uint8_t>;

const fs::path kCorpus = fs::path(FMNIST_SOURCE_DIR) / "tests" / "corpus";

// The readers a corpus file can be sent through, by the name the README uses.
const std::map<std::string, std::function<void(const std::string&)>>& readers() {
  static const std::map<std::string, std::function<void(const std::string&)>> r = {
      {"idx-images", [](const std::string& p) { read_idx_images(p); }},
      {"idx-labels", [](const std::string& p) { read_idx_labels(p); }},
      {"safetensors", [](const std::string& p) { read_safetensors(p); }},
      // What `fmnist eval --checkpoint` does with a weights file.
      {"weights", [](const std::string& p) { infer_model_config(read_safetensors(p), p); }},
      // What `fmnist train --resume` does with the state of an AE(16) run.
      {"state-ae16",
       [](const std::string& p) {
         load_training_state(p, build_network(ModelConfig{ModelKind::Autoencoder, 16}));
       }},
  };
  return r;
}

struct Entry {
  std::string file, reader, expected;
};

// The README's table rows: | `file` | reader | `expected fragment` |
std::vector<Entry> manifest() {
  std::ifstream in(kCorpus / "README.md");
  REQUIRE(in);
  const std::regex row(R"(^\| `([^`]+)` \| ([a-z0-9-]+) \| `([^`]+)` \|)");
  std::vector<Entry> entries;
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_search(line, m, row)) entries.push_back({m[1], m[2], m[3]});
  }
  return entries;
}

// ---- the generator -------------------------------------------------------------------------------

Bytes idx(const Bytes& magic, const std::vector<std::uint32_t>& sizes, std::size_t data_bytes) {
  Bytes b = magic;
  for (std::uint32_t s : sizes)
    for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<std::uint8_t>(s >> shift));
  for (std::size_t i = 0; i < data_bytes; ++i) b.push_back(static_cast<std::uint8_t>((i * 37 + 11) % 256));
  return b;
}

Bytes gzip(const Bytes& data) {
  z_stream z{};
  REQUIRE(deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  Bytes out(deflateBound(&z, data.size()) + 64);
  z.next_in = const_cast<Bytef*>(data.data());
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

// A safetensors file with the given header text and `data_bytes` zero bytes; header_length overrides.
Bytes raw_st(const std::string& header, std::size_t data_bytes, std::uint64_t header_length = UINT64_MAX) {
  const std::uint64_t n = header_length == UINT64_MAX ? header.size() : header_length;
  Bytes b;
  for (int i = 0; i < 8; ++i) b.push_back(static_cast<std::uint8_t>(n >> (8 * i)));
  b.insert(b.end(), header.begin(), header.end());
  b.insert(b.end(), data_bytes, 0);
  return b;
}

Tensor f32(const std::string& name, std::vector<std::int64_t> shape) {
  std::vector<float> values(element_count(shape));
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = 0.001f * static_cast<float>(i % 97);
  return make_f32_tensor(name, shape, values.data());
}

// A small valid fmnist-written (checksummed) file.
Bytes checksummed() {
  SafetensorsFile f;
  f.metadata = {{"format", "pt"}, {"note", "a small checksummed file"}};
  f.tensors = {f32("a", {4, 4}), f32("b", {8})};
  return encode_safetensors(f, "corpus");
}

std::map<std::string, Bytes> corpus_files() {
  const Bytes images{0x00, 0x00, 0x08, 0x03}, labels{0x00, 0x00, 0x08, 0x01};
  std::map<std::string, Bytes> c;
  // IDX
  c["idx-empty.idx"] = {};
  c["idx-bad-magic.idx"] = idx({0x12, 0x34, 0x08, 0x03}, {1, 28, 28}, 784);
  c["idx-float-element-type.idx"] = idx({0x00, 0x00, 0x0D, 0x03}, {1, 28, 28}, 4 * 784);
  c["idx-labels-given-as-images.idx"] = idx(labels, {10}, 10);
  c["idx-images-given-as-labels.idx.gz"] = gzip(idx(images, {2, 28, 28}, 2 * 784));
  c["idx-two-dimensions.idx"] = idx({0x00, 0x00, 0x08, 0x02}, {1, 784}, 784);
  c["idx-zero-images.idx"] = idx(images, {0, 28, 28}, 0);
  c["idx-zero-rows.idx"] = idx(images, {1, 0, 28}, 0);
  c["idx-absurd-sizes.idx"] = idx(images, {0xFFFFFFFF, 0xFFFF, 0xFFFF}, 0);
  Bytes header_cut = idx(images, {2, 28, 28}, 0);
  header_cut.resize(10);
  c["idx-truncated-header.idx"] = header_cut;
  c["idx-truncated-data.idx"] = idx(images, {2, 28, 28}, 784 + 100);
  c["idx-trailing-garbage.idx"] = idx(images, {1, 28, 28}, 784 + 5);
  c["idx-zero-labels.idx"] = idx(labels, {0}, 0);
  c["idx-labels-truncated.idx.gz"] = gzip(idx(labels, {100}, 60));
  Bytes gz_cut = gzip(idx(images, {2, 28, 28}, 2 * 784));
  gz_cut.resize(gz_cut.size() / 2);
  c["idx-gzip-cut-short.idx.gz"] = gz_cut;
  Bytes gz_bad = gzip(idx(images, {2, 28, 28}, 2 * 784));
  for (std::size_t i = 12; i < 40 && i < gz_bad.size(); ++i) gz_bad[i] ^= 0xA5;
  c["idx-gzip-corrupt.idx.gz"] = gz_bad;
  // safetensors: the format
  const std::string a16 = R"("a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]})";
  c["st-empty.safetensors"] = {};
  c["st-five-bytes.safetensors"] = {1, 0, 0, 0, 0};
  c["st-header-past-end.safetensors"] = raw_st("{}", 0, 1000);
  c["st-header-length-absurd.safetensors"] = raw_st("{}", 0, std::uint64_t(1) << 62);
  c["st-header-bad-json.safetensors"] = raw_st(R"({"a":{"dtype":"F32",,}})", 0);
  c["st-header-not-object.safetensors"] = raw_st("[1, 2, 3]", 0);
  c["st-unknown-dtype.safetensors"] = raw_st(R"({"a":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}})", 16);
  c["st-overlapping-tensors.safetensors"] =
      raw_st("{" + a16 + R"(,"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", 16);
  c["st-gap-between-tensors.safetensors"] = raw_st(
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", 12);
  c["st-shape-size-mismatch.safetensors"] = raw_st(R"({"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", 20);
  c["st-duplicate-name.safetensors"] = raw_st("{" + a16 + "," + a16 + "}", 16);
  c["st-negative-offset.safetensors"] = raw_st(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", 4);
  c["st-metadata-not-string.safetensors"] = raw_st(R"({"__metadata__":{"epoch":3}})", 0);
  // safetensors: checksummed files damaged after writing
  Bytes cut = checksummed();
  cut.resize(cut.size() - 9);
  c["st-truncated.safetensors"] = cut;
  Bytes flipped = checksummed();
  flipped[flipped.size() - 7] ^= 0x10;
  c["st-flipped-data-byte.safetensors"] = flipped;
  Bytes meta = checksummed();
  const std::string text(meta.begin(), meta.end());
  meta[text.find("a small checksummed file") + 2] = 'S';
  c["st-flipped-metadata-byte.safetensors"] = meta;
  Bytes bad_crc = checksummed();
  const std::size_t crc_at = std::string(bad_crc.begin(), bad_crc.end()).find("\"fmnist.crc32\":\"") + 16;
  bad_crc[crc_at] = 'X';
  c["st-checksum-not-hex.safetensors"] = bad_crc;
  // weights: the wrong model
  auto weights = [](std::vector<Tensor> tensors, std::map<std::string, std::string> metadata = {}) {
    SafetensorsFile f;
    f.metadata = std::move(metadata);
    f.tensors = std::move(tensors);
    return encode_safetensors(f, "corpus");
  };
  c["weights-no-encoder.safetensors"] = weights({f32("decoder.0.weight", {2, 2})});
  c["weights-decoder-and-classifier.safetensors"] =
      weights({f32("encoder.0.weight", {2}), f32("decoder.0.weight", {2}), f32("clasiffier.0.weight", {2})});
  c["weights-latent-wrong-shape.safetensors"] = weights({f32("encoder.7.weight", {4, 7}), f32("decoder.0.weight", {2})});
  c["weights-missing-tensors.safetensors"] = weights({f32("encoder.7.weight", {2, 800}), f32("decoder.0.weight", {2})});
  c["weights-config-disagrees.safetensors"] =
      weights({f32("encoder.7.weight", {2, 800}), f32("decoder.0.weight", {2})},
              {{"fmnist.config", R"({"kind":"autoencoder","latent":64})"}});
  // training states of another model, or not states at all
  c["state-of-another-model.safetensors"] = weights(
      {}, {{"fmnist.kind", "training_state"}, {"fmnist.config", R"({"kind":"autoencoder","latent":64})"},
           {"fmnist.train", R"({"epoch":1,"step":10,"seed":1})"}});
  c["state-not-a-state.safetensors"] = weights({f32("encoder.7.weight", {2, 800})}, {{"format", "pt"}});
  c["state-bad-counters.safetensors"] = weights(
      {}, {{"fmnist.kind", "training_state"}, {"fmnist.config", R"({"kind":"autoencoder","latent":16})"},
           {"fmnist.train", R"({"epoch":"one","step":10,"seed":1})"}});
  return c;
}

}  // namespace

TEST_CASE("every crafted bad file in tests/corpus is refused with its documented one-line error", "[corpus]") {
  const std::vector<Entry> entries = manifest();
  CHECK(entries.size() >= 20);
  std::map<std::string, bool> listed;
  for (const Entry& e : entries) {
    INFO(e.file << " through " << e.reader);
    listed[e.file] = true;
    const auto reader = readers().find(e.reader);
    REQUIRE(reader != readers().end());
    const std::string path = (kCorpus / e.file).string();
    REQUIRE(fs::exists(path));
    std::string what;
    try {
      reader->second(path);
      FAIL("accepted");
    } catch (const FormatError& error) {
      what = error.what();
    } catch (const DataError& error) {
      what = error.what();
    }
    INFO(what);
    CHECK(what.rfind(path + ": ", 0) == 0);
    CHECK(what.find('\n') == std::string::npos);
    CHECK(what.find(e.expected) != std::string::npos);
  }
  for (const auto& item : fs::directory_iterator(kCorpus)) {
    const std::string name = item.path().filename().string();
    if (name == "README.md") continue;
    INFO(name << " is in tests/corpus but not in its README.md");
    CHECK(listed.count(name) == 1);
  }
}

TEST_CASE("regenerate tests/corpus", "[.corpus-generate]") {
  for (const auto& [name, bytes] : corpus_files()) {
    std::ofstream out(kCorpus / name, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    REQUIRE(out);
  }
}

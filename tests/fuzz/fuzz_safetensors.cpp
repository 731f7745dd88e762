// libFuzzer harness: the safetensors reader (decode_safetensors) on arbitrary bytes; what it accepts
// must survive an encode/decode round trip unchanged, and the checkpoint layer above it
// (infer_model_config, load_weights) must refuse a bad model only in its documented ways.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "host/checkpoint.h"
#include "host/safetensors.h"
#include "models/network.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

bool same_file(const fmnist::SafetensorsFile& a, const fmnist::SafetensorsFile& b) {
  if (a.metadata != b.metadata || a.tensors.size() != b.tensors.size()) return false;
  for (std::size_t i = 0; i < a.tensors.size(); ++i) {
    const auto &x = a.tensors[i], &y = b.tensors[i];
    if (x.name != y.name || x.dtype != y.dtype || x.shape != y.shape || x.data != y.data) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace fmnist;
  const std::vector<std::uint8_t> bytes(data, data + size);
  const std::string path = "fuzz.safetensors";
  fuzz::expect_documented_errors(path, [&] {
    const SafetensorsFile file = decode_safetensors(bytes, path);
    for (const Tensor& t : file.tensors)
      if (t.data.size() != element_count(t.shape) * dtype_size(t.dtype))
        fuzz::fail("decoded tensor '" + t.name + "' has a data size that does not match its shape");

    // What was read can be written (unless a name is one the writer refuses) and reads back the same.
    std::vector<std::uint8_t> encoded;
    fuzz::expect_documented_errors(path, [&] { encoded = encode_safetensors(file, path); });
    if (!encoded.empty()) {
      try {
        if (!same_file(decode_safetensors(encoded, path), file))
          fuzz::fail("encode_safetensors(decode_safetensors(x)) does not decode to the same file");
      } catch (const std::exception& e) {
        fuzz::fail(std::string("encode_safetensors(decode_safetensors(x)) does not decode: ") + e.what());
      }
    }

    const ModelConfig config = infer_model_config(file, path);
    const NetworkSpec spec = build_network(config);
    std::vector<float> params(spec.param_count);
    load_weights(file, path, spec, params.data());
  });
  return 0;
}

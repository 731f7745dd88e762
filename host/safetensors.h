// Reads and writes the safetensors format (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length, a JSON header naming each tensor's dtype, shape and byte range, then
// the raw little-endian data. Reading validates everything; writing is atomic (temp file + rename).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace fmnist {

// A file that is not what it should be, or an I/O failure on it. what() is one line: "PATH: problem".
class FormatError : public std::runtime_error {
 public:
  using runtime_error::runtime_error;
};

struct Tensor {
  std::string name;
  std::string dtype;  // "F32", "F64", "I64", "I32", "U8", ... (see dtype_size)
  std::vector<std::int64_t> shape;
  std::vector<std::uint8_t> data;  // little-endian, row-major
};

struct SafetensorsFile {
  std::map<std::string, std::string> metadata;  // the header's "__metadata__"
  std::vector<Tensor> tensors;                  // in file order of data offsets
  const Tensor* find(const std::string& name) const;
};

// Bytes per element of a safetensors dtype; 0 for a dtype this reader does not know.
std::size_t dtype_size(const std::string& dtype);

// Product of the dimensions (1 for a scalar); throws std::invalid_argument on a negative dimension
// or an overflow.
std::uint64_t element_count(const std::vector<std::int64_t>& shape);

// An F32 tensor holding count() floats copied from `values`.
Tensor make_f32_tensor(const std::string& name, const std::vector<std::int64_t>& shape,
                       const float* values);

// The file's bytes: header length, header (space-padded so the data starts 8-byte aligned), data.
// Tensors are stored in vector order. Throws FormatError("PATH: ...") when a tensor's data does not
// match its dtype and shape, names repeat or are empty, or a name is "__metadata__"; `path` only
// names the file in messages.
std::vector<std::uint8_t> encode_safetensors(const SafetensorsFile& file, const std::string& path);

// Parses and validates a whole file's bytes: length, header JSON, dtypes, shapes, offsets (which must
// be in range, match the shapes, not overlap, and cover the data exactly), duplicate names, metadata
// (string values only). Throws FormatError("PATH: problem"); `path` only names the file in messages.
SafetensorsFile decode_safetensors(const std::vector<std::uint8_t>& bytes, const std::string& path);

// Where write_safetensors stages the file before renaming it over `path`: "PATH.tmp-<pid>".
std::string safetensors_temp_path(const std::string& path);

// Writes to PATH.tmp-<pid>, fsyncs, renames over PATH, then fsyncs the directory: a reader never
// sees a torn file. Throws FormatError naming the path on any I/O failure (full disk, missing or
// unwritable directory), after removing the temp file; an existing file at PATH is then untouched.
void write_safetensors(const std::string& path, const SafetensorsFile& file);

// Reads and validates (see decode_safetensors). Throws FormatError("PATH: problem").
SafetensorsFile read_safetensors(const std::string& path);

}  // namespace fmnist

// Reads and writes the safetensors format (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length, a JSON header naming each tensor's dtype, shape and byte range, then
// the raw little-endian data. Reading validates everything; writing is atomic (temp file + rename).
//
// Checksums: every file fmnist writes carries "fmnist.crc32" in its __metadata__: 8 lowercase hex
// digits, the CRC-32 (zlib's) of a canonical form of the whole content, so a flipped bit anywhere in
// the tensor table, the other metadata or the data section is caught on load (see content_crc32).
// A file without it (PyTorch's, Python's safetensors) still loads, unchecked.
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

// The metadata key of the checksum. The reader removes it from `metadata` once it has checked it
// (and sets `checksum_verified`); the writer replaces any value given with the one it computes.
inline constexpr const char* kChecksumKey = "fmnist.crc32";

struct SafetensorsFile {
  std::map<std::string, std::string> metadata;  // the header's "__metadata__" (less fmnist.crc32)
  std::vector<Tensor> tensors;                  // in file order of data offsets
  bool checksum_verified = false;               // read: the file had fmnist.crc32 and it matched
  const Tensor* find(const std::string& name) const;
};

// The CRC-32 that "fmnist.crc32" holds: over, in order, each metadata entry but fmnist.crc32 (by
// key: key, value), then each tensor by name (name, dtype, shape, data), every string and
// byte run preceded by its length as 8 little-endian bytes and every dimension as 8 LE bytes. It
// depends on the content only, not on the JSON's spacing or key order.
std::uint32_t content_crc32(const SafetensorsFile& file);

// Bytes per element of a safetensors dtype; 0 for a dtype this reader does not know.
std::size_t dtype_size(const std::string& dtype);

// Product of the dimensions (1 for a scalar); throws std::invalid_argument on a negative dimension
// or an overflow.
std::uint64_t element_count(const std::vector<std::int64_t>& shape);

// An F32 tensor holding count() floats copied from `values`.
Tensor make_f32_tensor(const std::string& name, const std::vector<std::int64_t>& shape,
                       const float* values);

// The file's bytes: header length, header (space-padded so the data starts 8-byte aligned), data.
// Tensors are stored in vector order; the metadata gains "fmnist.crc32" (content_crc32). Throws
// FormatError("PATH: ...") when a tensor's data does not match its dtype and shape, names repeat or
// are empty, or a name is "__metadata__"; `path` only names the file in messages.
std::vector<std::uint8_t> encode_safetensors(const SafetensorsFile& file, const std::string& path);

// Parses and validates a whole file's bytes: length, header JSON, dtypes, shapes, offsets (which must
// be in range, match the shapes, not overlap, and cover the data exactly), duplicate names, metadata
// (string values only), and the checksum when the file has one (a mismatch: "checksum mismatch ...
// the file is corrupt"). Throws FormatError("PATH: problem"); `path` only names the file in messages.
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

// The safetensors reader (validating every rule of the format) and the atomic writer.
#include "host/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <set>
#include <string_view>

#include <nlohmann/json.hpp>

#include "host/one_line.h"

namespace fmnist {
namespace {

constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;  // the limit of the reference implementation

[[noreturn]] void fail(const std::string& path, const std::string& problem) {
  throw FormatError(one_line(path + ": " + problem));
}

std::string describe_shape(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::uint64_t tensor_bytes(const std::vector<std::int64_t>& shape, const std::string& dtype) {
  const std::uint64_t count = element_count(shape);
  const std::uint64_t size = dtype_size(dtype);
  if (size != 0 && count > std::numeric_limits<std::uint64_t>::max() / size)
    throw std::invalid_argument("tensor size overflows 64 bits");
  return count * size;
}

// A non-negative integer from the header, or a FormatError saying what `what` should have been.
std::uint64_t header_uint(const nlohmann::json& value, const std::string& path,
                          const std::string& what) {
  if (!value.is_number_unsigned())
    fail(path, what + " must be non-negative integers, got " + value.dump());
  return value.get<std::uint64_t>();
}

struct Entry {
  std::string name, dtype;
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0, end = 0;
};

Entry parse_entry(const std::string& name, const nlohmann::json& info, const std::string& path) {
  const std::string where = "tensor '" + name + "'";
  if (!info.is_object()) fail(path, where + ": entry is not a JSON object");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!info.contains(key)) fail(path, where + ": missing \"" + key + "\"");
  Entry e;
  e.name = name;
  const auto& dtype = info["dtype"];
  if (!dtype.is_string()) fail(path, where + ": dtype is not a string");
  e.dtype = dtype.get<std::string>();
  if (dtype_size(e.dtype) == 0) fail(path, where + ": unknown dtype '" + e.dtype + "'");
  const auto& shape = info["shape"];
  if (!shape.is_array()) fail(path, where + ": shape is not an array");
  for (const auto& d : shape) {
    const std::uint64_t dim = header_uint(d, path, where + ": shape dimensions");
    if (dim > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      fail(path, where + ": shape dimension " + std::to_string(dim) + " is too large");
    e.shape.push_back(static_cast<std::int64_t>(dim));
  }
  const auto& offsets = info["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2)
    fail(path, where + ": data_offsets must be an array [begin, end], got " + offsets.dump());
  e.begin = header_uint(offsets[0], path, where + ": data_offsets");
  e.end = header_uint(offsets[1], path, where + ": data_offsets");
  const std::string range = "[" + std::to_string(e.begin) + ", " + std::to_string(e.end) + "]";
  if (e.end < e.begin) fail(path, where + ": data_offsets " + range + " end before they begin");
  std::uint64_t needed = 0;
  try {
    needed = tensor_bytes(e.shape, e.dtype);
  } catch (const std::invalid_argument&) {
    fail(path, where + ": shape " + describe_shape(e.shape) + " is too large");
  }
  if (needed != e.end - e.begin)
    fail(path, where + ": shape " + describe_shape(e.shape) + " of " + e.dtype + " needs " +
                   std::to_string(needed) + " bytes but data_offsets " + range + " hold " +
                   std::to_string(e.end - e.begin));
  return e;
}

std::map<std::string, std::string> parse_metadata(const nlohmann::json& meta, const std::string& path) {
  if (!meta.is_object()) fail(path, "__metadata__ is not a JSON object");
  std::map<std::string, std::string> out;
  for (auto it = meta.begin(); it != meta.end(); ++it) {
    if (!it.value().is_string())
      fail(path, "__metadata__ value for '" + it.key() + "' is not a string");
    out[it.key()] = it.value().get<std::string>();
  }
  return out;
}

// The header as JSON, refusing repeated top-level keys (which JSON parsers silently merge).
nlohmann::json parse_header(std::string_view text, const std::string& path) {
  std::set<std::string> seen;
  auto no_duplicates = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    if (event == nlohmann::json::parse_event_t::key && depth == 1 &&
        !seen.insert(parsed.get<std::string>()).second)
      fail(path, "duplicate tensor name '" + parsed.get<std::string>() + "' in the header");
    return true;
  };
  try {
    return nlohmann::json::parse(text.begin(), text.end(), no_duplicates);
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("header is not valid JSON: ") + e.what());
  }
}

// CRC-32 accumulation over the canonical form that content_crc32 documents.
class Crc {
 public:
  void bytes(const std::uint8_t* data, std::size_t size) {
    number(size);
    raw(data, size);
  }
  void text(const std::string& s) { bytes(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()); }
  void number(std::uint64_t v) {
    std::uint8_t le[8];
    for (int i = 0; i < 8; ++i) le[i] = static_cast<std::uint8_t>(v >> (8 * i));
    raw(le, 8);
  }
  std::uint32_t value() const { return static_cast<std::uint32_t>(crc_); }

 private:
  void raw(const std::uint8_t* data, std::size_t size) {
    if (size > 0) crc_ = crc32_z(crc_, data, size);
  }
  uLong crc_ = crc32_z(0L, Z_NULL, 0);
};

std::string crc_text(std::uint32_t crc) {
  static const char* digits = "0123456789abcdef";
  std::string s(8, '0');
  for (int i = 7; i >= 0; --i, crc >>= 4) s[static_cast<std::size_t>(i)] = digits[crc & 0xF];
  return s;
}

// Checks the file's "fmnist.crc32" when it has one, then removes it from the metadata.
void verify_checksum(SafetensorsFile& file, const std::string& path) {
  const auto it = file.metadata.find(kChecksumKey);
  if (it == file.metadata.end()) return;
  const std::string stored = it->second;
  const bool well_formed = stored.size() == 8 && std::all_of(stored.begin(), stored.end(), [](char c) {
                             return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                           });
  if (!well_formed)
    fail(path, std::string("checksum ") + kChecksumKey + " is '" + stored +
                   "', not 8 lowercase hex digits: the file is corrupt");
  const std::string actual = crc_text(content_crc32(file));
  if (actual != stored)
    fail(path, std::string("checksum mismatch: ") + kChecksumKey + " says " + stored +
                   " but the contents give " + actual + ": the file is corrupt (a changed byte in its "
                   "header or data)");
  file.metadata.erase(it);
  file.checksum_verified = true;
}

void write_all(int fd, const std::uint8_t* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      throw std::system_error(errno, std::generic_category());
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

void sync_parent_directory(const std::string& path) {
  const auto slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // the file is already in place; this only hardens it against power loss
  (void)::fsync(fd);
  ::close(fd);
}

}  // namespace

const Tensor* SafetensorsFile::find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

std::uint32_t content_crc32(const SafetensorsFile& file) {
  Crc crc;
  for (const auto& [key, value] : file.metadata) {
    if (key == kChecksumKey) continue;
    crc.text(key);
    crc.text(value);
  }
  std::vector<const Tensor*> by_name;
  for (const auto& t : file.tensors) by_name.push_back(&t);
  std::sort(by_name.begin(), by_name.end(), [](const Tensor* a, const Tensor* b) { return a->name < b->name; });
  for (const Tensor* p : by_name) {
    const Tensor& t = *p;
    crc.text(t.name);
    crc.text(t.dtype);
    crc.number(t.shape.size());
    for (const auto d : t.shape) crc.number(static_cast<std::uint64_t>(d));
    crc.bytes(t.data.data(), t.data.size());
  }
  return crc.value();
}

std::size_t dtype_size(const std::string& dtype) {
  static const std::map<std::string, std::size_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"I16", 2}, {"U16", 2},
      {"F16", 2},  {"BF16", 2}, {"I32", 4}, {"U32", 4},     {"F32", 4},     {"I64", 8}, {"U64", 8},
      {"F64", 8}};
  const auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

std::uint64_t element_count(const std::vector<std::int64_t>& shape) {
  std::uint64_t count = 1;
  for (const auto d : shape) {
    if (d < 0) throw std::invalid_argument("negative dimension " + std::to_string(d));
    const auto dim = static_cast<std::uint64_t>(d);
    if (dim != 0 && count > std::numeric_limits<std::uint64_t>::max() / dim)
      throw std::invalid_argument("element count overflows 64 bits");
    count *= dim;
  }
  return count;
}

Tensor make_f32_tensor(const std::string& name, const std::vector<std::int64_t>& shape,
                       const float* values) {
  Tensor t{name, "F32", shape, {}};
  t.data.resize(element_count(shape) * sizeof(float));
  if (!t.data.empty()) std::memcpy(t.data.data(), values, t.data.size());
  return t;
}

std::vector<std::uint8_t> encode_safetensors(const SafetensorsFile& file, const std::string& path) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  std::map<std::string, std::string> metadata = file.metadata;
  metadata[kChecksumKey] = crc_text(content_crc32(file));
  header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  std::set<std::string> names;
  for (const auto& t : file.tensors) {
    if (t.name.empty() || t.name == "__metadata__")
      fail(path, "cannot write a tensor named '" + t.name + "'");
    if (!names.insert(t.name).second) fail(path, "cannot write tensor '" + t.name + "' twice");
    if (dtype_size(t.dtype) == 0) fail(path, "tensor '" + t.name + "': unknown dtype '" + t.dtype + "'");
    std::uint64_t needed = 0;
    try {
      needed = tensor_bytes(t.shape, t.dtype);
    } catch (const std::invalid_argument& e) {
      fail(path, "tensor '" + t.name + "': shape " + describe_shape(t.shape) + ": " + e.what());
    }
    if (needed != t.data.size())
      fail(path, "tensor '" + t.name + "': shape " + describe_shape(t.shape) + " of " + t.dtype +
                     " needs " + std::to_string(needed) + " bytes, has " + std::to_string(t.data.size()));
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + needed}}};
    offset += needed;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::type_error& e) {  // 316: a string that is not valid UTF-8
    fail(path, std::string("tensor names and metadata must be valid UTF-8: ") + e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // the data section starts 8-byte aligned
  std::vector<std::uint8_t> bytes;
  bytes.reserve(8 + text.size() + offset);
  const std::uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<std::uint8_t>(n >> (8 * i)));
  bytes.insert(bytes.end(), text.begin(), text.end());
  for (const auto& t : file.tensors) bytes.insert(bytes.end(), t.data.begin(), t.data.end());
  return bytes;
}

SafetensorsFile decode_safetensors(const std::vector<std::uint8_t>& bytes, const std::string& path) {
  if (bytes.size() < 8)
    fail(path, "file too short (" + std::to_string(bytes.size()) +
                   " bytes) to hold the 8-byte header length");
  std::uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | bytes[i];
  if (header_size > kMaxHeaderBytes)
    fail(path, "header length " + std::to_string(header_size) + " is absurd (limit " +
                   std::to_string(kMaxHeaderBytes) + ")");
  if (header_size > bytes.size() - 8)
    fail(path, "header length " + std::to_string(header_size) + " runs past the end of the file (" +
                   std::to_string(bytes.size()) + " bytes)");
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()) + 8, header_size);
  if (text.empty() || text.front() != '{') fail(path, "header is not a JSON object (must start with '{')");
  const nlohmann::json header = parse_header(text, path);
  if (!header.is_object()) fail(path, "header is not a JSON object");

  SafetensorsFile file;
  std::vector<Entry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__")
      file.metadata = parse_metadata(it.value(), path);
    else
      entries.push_back(parse_entry(it.key(), it.value(), path));
  }
  const std::uint64_t data_size = bytes.size() - 8 - header_size;
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  std::uint64_t covered = 0;
  const Entry* previous = nullptr;
  for (const auto& e : entries) {
    if (e.end > data_size)
      fail(path, "truncated file: tensor '" + e.name + "': data_offsets [" + std::to_string(e.begin) + ", " +
                     std::to_string(e.end) + "] out of range (data section is " +
                     std::to_string(data_size) + " bytes)");
    if (e.begin < covered)
      fail(path, "tensors '" + previous->name + "' and '" + e.name + "' overlap in the data section");
    if (e.begin > covered)
      fail(path, "data section bytes [" + std::to_string(covered) + ", " + std::to_string(e.begin) +
                     ") belong to no tensor (offsets must be contiguous)");
    covered = e.end;
    previous = &e;
  }
  if (covered != data_size)
    fail(path, "data section bytes [" + std::to_string(covered) + ", " + std::to_string(data_size) +
                   ") belong to no tensor (offsets must cover the data exactly)");
  const std::uint8_t* data = bytes.data() + 8 + header_size;
  for (auto& e : entries)
    file.tensors.push_back({e.name, e.dtype, e.shape, {data + e.begin, data + e.end}});
  verify_checksum(file, path);
  return file;
}

std::string safetensors_temp_path(const std::string& path) {
  return path + ".tmp-" + std::to_string(static_cast<long>(::getpid()));
}

void write_safetensors(const std::string& path, const SafetensorsFile& file) {
  const std::vector<std::uint8_t> bytes = encode_safetensors(file, path);
  const std::string temp = safetensors_temp_path(path);
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(path, "cannot create temporary file " + temp + ": " + errno_text(errno));
  std::string step = "write";
  try {
    write_all(fd, bytes.data(), bytes.size());
    step = "fsync";
    if (::fsync(fd) != 0) throw std::system_error(errno, std::generic_category());
  } catch (const std::system_error& e) {
    ::close(fd);
    ::unlink(temp.c_str());
    fail(path, "cannot " + step + " temporary file " + temp + ": " + errno_text(e.code().value()) +
                   " (removed it)");
  }
  if (::close(fd) != 0) {
    const int error = errno;
    ::unlink(temp.c_str());
    fail(path, "cannot close temporary file " + temp + ": " + errno_text(error) + " (removed it)");
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(temp.c_str());
    fail(path, "cannot rename " + temp + " over it: " + errno_text(error) + " (removed the temporary file)");
  }
  sync_parent_directory(path);
}

SafetensorsFile read_safetensors(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, "cannot open: " + errno_text(errno));
  std::vector<std::uint8_t> bytes;
  struct stat info {};
  if (::fstat(fd, &info) == 0 && S_ISREG(info.st_mode)) bytes.reserve(static_cast<std::size_t>(info.st_size));
  std::uint8_t chunk[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      ::close(fd);
      fail(path, "cannot read: " + errno_text(error));
    }
    if (n == 0) break;
    bytes.insert(bytes.end(), chunk, chunk + n);
  }
  ::close(fd);
  return decode_safetensors(bytes, path);
}

}  // namespace fmnist

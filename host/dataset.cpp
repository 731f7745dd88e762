// Loading Fashion-MNIST from its directory with the checks that make it usable (28x28 images, one label
// in 0-9 per image), and the seeded index lists the trainers draw from.
#include "host/dataset.h"

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <stdexcept>

#include <fmt/format.h>

#include "models/rng.h"

namespace fmnist {
namespace {

constexpr std::uint64_t kSplitSeedPurpose = 2;
constexpr std::uint64_t kEpochOrderSeedPurpose = 3;

// The path of `base_name` in dir, ".gz" preferred over raw.
std::string find_data_file(const std::filesystem::path& dir, const std::string& base_name) {
  for (const std::string& name : {base_name + ".gz", base_name}) {
    std::filesystem::path candidate = dir / name;
    if (std::filesystem::exists(candidate)) return candidate.string();
  }
  throw DataError(fmt::format("{}: missing data file, tried {}.gz and {}", dir.string(), base_name, base_name));
}

Dataset load_set(const std::filesystem::path& dir, const std::string& prefix) {
  std::string images_path = find_data_file(dir, prefix + "-images-idx3-ubyte");
  std::string labels_path = find_data_file(dir, prefix + "-labels-idx1-ubyte");
  IdxImages images = read_idx_images(images_path);
  if (images.rows != kImageRows || images.cols != kImageCols)
    throw DataError(fmt::format("{}: images are {}x{}, expected {}x{}", images_path, images.rows, images.cols,
                                kImageRows, kImageCols));
  Dataset set;
  set.labels = read_idx_labels(labels_path);
  if (set.labels.size() != static_cast<std::size_t>(images.count))
    throw DataError(fmt::format("{}: image/label count mismatch, {} labels for the {} images of {}", labels_path,
                                set.labels.size(), images.count, images_path));
  for (std::size_t i = 0; i < set.labels.size(); ++i)
    if (set.labels[i] >= kClassCount)
      throw DataError(fmt::format("{}: label {} at index {} is outside 0-{}", labels_path, set.labels[i], i,
                                  kClassCount - 1));
  set.images = std::move(images.pixels);
  return set;
}

std::vector<std::int32_t> iota_indices(int count) {
  std::vector<std::int32_t> indices(static_cast<std::size_t>(count));
  std::iota(indices.begin(), indices.end(), 0);
  return indices;
}

}  // namespace

std::string default_data_dir() {
  const char* from_environment = std::getenv("FMNIST_DATA_DIR");
  if (from_environment != nullptr && from_environment[0] != '\0') return from_environment;
  return FMNIST_DEFAULT_DATA_DIR;
}

FashionMnist load_fashion_mnist(const std::string& dir) {
  std::error_code status_error;
  if (!std::filesystem::is_directory(dir, status_error))
    throw DataError(fmt::format("{}: data directory not found", dir));
  FashionMnist data;
  data.directory = dir;
  data.train = load_set(dir, "train");
  data.t10k = load_set(dir, "t10k");
  return data;
}

Splits make_splits(const FashionMnist& data, std::uint64_t seed, int validation_count) {
  int t10k_count = data.t10k.count();
  if (validation_count < 1 || validation_count > t10k_count - 1)
    throw std::invalid_argument(fmt::format("validation count {} is not in [1, {}]", validation_count,
                                            t10k_count - 1));
  Splits splits;
  splits.train = iota_indices(data.train.count());
  splits.t10k = iota_indices(t10k_count);
  std::vector<std::int32_t> shuffled = splits.t10k;
  SplitMix64 rng(derive_seed(seed, kSplitSeedPurpose));
  shuffle_in_place(shuffled, rng);
  splits.validation.assign(shuffled.begin(), shuffled.begin() + validation_count);
  splits.test.assign(shuffled.begin() + validation_count, shuffled.end());
  return splits;
}

std::vector<std::int32_t> epoch_order(const std::vector<std::int32_t>& indices, std::uint64_t seed, int epoch) {
  std::vector<std::int32_t> order = indices;
  SplitMix64 rng(derive_seed(seed, kEpochOrderSeedPurpose, static_cast<std::uint64_t>(epoch)));
  shuffle_in_place(order, rng);
  return order;
}

void gather_batch(const Dataset& set, const std::int32_t* indices, int count, std::uint8_t* images,
                  std::uint8_t* labels) {
  for (int i = 0; i < count; ++i) {
    if (indices[i] < 0 || indices[i] >= set.count())
      throw std::out_of_range(fmt::format("gather_batch: index {} outside 0..{}", indices[i], set.count() - 1));
    std::memcpy(images + static_cast<std::size_t>(i) * kImagePixels, set.image(indices[i]), kImagePixels);
    labels[i] = set.labels[static_cast<std::size_t>(indices[i])];
  }
}

}  // namespace fmnist

// Fashion-MNIST in memory: loading the four IDX files, the train/validation/test index splits,
// the per-epoch training order, and gathering a batch into contiguous buffers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "host/idx.h"

namespace fmnist {

constexpr int kImageRows = 28;
constexpr int kImageCols = 28;
constexpr int kImagePixels = kImageRows * kImageCols;
constexpr int kClassCount = 10;

// One image set with its labels, 28x28 images.
struct Dataset {
  std::vector<std::uint8_t> images;  // count * 784, row-major
  std::vector<std::uint8_t> labels;  // count, each 0..9
  int count() const { return static_cast<int>(labels.size()); }
  const std::uint8_t* image(int i) const { return images.data() + static_cast<std::size_t>(i) * kImagePixels; }
};

struct FashionMnist {
  Dataset train, t10k;
  std::string directory;
};

// $FMNIST_DATA_DIR if set and non-empty, else FMNIST_DEFAULT_DATA_DIR.
std::string default_data_dir();

// Loads {train,t10k}-images-idx3-ubyte and -labels-idx1-ubyte from dir, each with ".gz" or raw (".gz"
// preferred). Throws DataError (one line naming the file or directory) for a missing directory or file,
// an image/label count mismatch, images other than 28x28, labels outside 0-9, or any bad IDX file.
FashionMnist load_fashion_mnist(const std::string& dir);

// Index lists into FashionMnist: train indexes .train; validation, test and t10k index .t10k.
struct Splits {
  std::vector<std::int32_t> train, validation, test, t10k;
};

// train = all training images in order; the t10k indices shuffled with a generator seeded from `seed`,
// the first validation_count to validation and the rest to test; t10k = all t10k images in order.
// Throws std::invalid_argument unless 1 <= validation_count <= t10k count - 1.
Splits make_splits(const FashionMnist& data, std::uint64_t seed, int validation_count);

// The training order of one epoch: `indices` shuffled, deterministic for (seed, epoch) and different
// for every epoch.
std::vector<std::int32_t> epoch_order(const std::vector<std::int32_t>& indices, std::uint64_t seed, int epoch);

// Copies `count` images (784 bytes each) and labels, selected by indices, into contiguous buffers;
// throws std::out_of_range for an index outside the set.
void gather_batch(const Dataset& set, const std::int32_t* indices, int count, std::uint8_t* images,
                  std::uint8_t* labels);

}  // namespace fmnist

// The Fashion-MNIST loader on the real files and on small written ones, the seeded validation/test
// splits, the per-epoch training order, batch gathering, and where the data directory comes from.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <numeric>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "host/dataset.h"
#include "host/idx.h"
#include "real_data.h"

using fmnist::testing::real_data;

namespace {

// A FashionMnist with the real set sizes and no pixels: enough for the index lists.
fmnist::FashionMnist sized_data() {
  fmnist::FashionMnist data;
  data.train.labels.resize(60000);
  data.t10k.labels.resize(10000);
  return data;
}

std::vector<std::int32_t> iota_indices(int count) {
  std::vector<std::int32_t> indices(static_cast<std::size_t>(count));
  std::iota(indices.begin(), indices.end(), 0);
  return indices;
}

std::vector<std::int32_t> sorted(std::vector<std::int32_t> indices) {
  std::sort(indices.begin(), indices.end());
  return indices;
}

// Sets or clears an environment variable for the life of the object, then puts the old value back.
class ScopedEnvironment {
 public:
  explicit ScopedEnvironment(const char* name) : name_(name) {
    if (const char* old = std::getenv(name)) old_value_ = old;
  }
  ScopedEnvironment(const ScopedEnvironment&) = delete;
  ScopedEnvironment& operator=(const ScopedEnvironment&) = delete;
  ~ScopedEnvironment() {
    if (old_value_) setenv(name_, old_value_->c_str(), 1);
    else unsetenv(name_);
  }
  void set(const char* value) { setenv(name_, value, 1); }
  void clear() { unsetenv(name_); }

 private:
  const char* name_;
  std::optional<std::string> old_value_;
};

}  // namespace

TEST_CASE("The real Fashion-MNIST loads with its known sizes and labels", "[dataset]") {
  const fmnist::FashionMnist& data = real_data();
  REQUIRE(data.train.count() == 60000);
  REQUIRE(data.t10k.count() == 10000);
  CHECK(data.train.images.size() == 60000u * 784u);
  CHECK(data.t10k.images.size() == 10000u * 784u);
  CHECK(data.train.labels[0] == 9);  // Ankle boot
  CHECK(data.t10k.labels[0] == 9);

  std::array<int, 10> train_per_class{}, t10k_per_class{};
  for (std::uint8_t label : data.train.labels) ++train_per_class.at(label);
  for (std::uint8_t label : data.t10k.labels) ++t10k_per_class.at(label);
  for (int c = 0; c < 10; ++c) {
    INFO("class " << c);
    CHECK(train_per_class[std::size_t(c)] == 6000);
    CHECK(t10k_per_class[std::size_t(c)] == 1000);
  }
  // Real images, not blanks: the first has both black background and bright pixels.
  const std::uint8_t* first = data.train.image(0);
  CHECK(*std::min_element(first, first + 784) == 0);
  CHECK(*std::max_element(first, first + 784) > 200);
}

TEST_CASE("load_fashion_mnist reads raw files and prefers .gz when both exist", "[dataset]") {
  std::filesystem::path dir = std::filesystem::path(FMNIST_TEST_TMP_DIR) / "dataset" / "raw-and-gz";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::vector<std::uint8_t> pixels(3 * 784);
  std::iota(pixels.begin(), pixels.end(), std::uint8_t{0});
  for (const char* prefix : {"train", "t10k"}) {
    std::string stem = (dir / prefix).string();
    fmnist::write_idx_images(stem + "-images-idx3-ubyte", 3, 28, 28, pixels.data(), false);
    fmnist::write_idx_labels(stem + "-labels-idx1-ubyte", {1, 2, 3}, false);
  }
  fmnist::FashionMnist raw = fmnist::load_fashion_mnist(dir.string());
  CHECK(raw.directory == dir.string());
  CHECK(raw.train.images == pixels);
  CHECK(raw.t10k.labels == std::vector<std::uint8_t>{1, 2, 3});

  fmnist::write_idx_labels((dir / "t10k-labels-idx1-ubyte.gz").string(), {7, 8, 9}, true);
  CHECK(fmnist::load_fashion_mnist(dir.string()).t10k.labels == std::vector<std::uint8_t>{7, 8, 9});
}

TEST_CASE("make_splits divides t10k into disjoint validation and test sets", "[dataset]") {
  fmnist::FashionMnist data = sized_data();
  for (int validation_count : {9900, 9000}) {
    INFO("validation " << validation_count);
    fmnist::Splits splits = fmnist::make_splits(data, 42, validation_count);
    CHECK(splits.train == iota_indices(60000));
    CHECK(splits.t10k == iota_indices(10000));
    REQUIRE(splits.validation.size() == std::size_t(validation_count));
    REQUIRE(splits.test.size() == std::size_t(10000 - validation_count));
    std::vector<std::int32_t> both = splits.validation;
    both.insert(both.end(), splits.test.begin(), splits.test.end());
    CHECK(sorted(both) == iota_indices(10000));  // disjoint, and together exactly 0..9999
    CHECK(splits.validation != sorted(splits.validation));  // shuffled, not a prefix
  }
}

TEST_CASE("make_splits is deterministic for a seed and differs between seeds", "[dataset]") {
  fmnist::FashionMnist data = sized_data();
  fmnist::Splits first = fmnist::make_splits(data, 7, 9900);
  fmnist::Splits again = fmnist::make_splits(data, 7, 9900);
  fmnist::Splits other = fmnist::make_splits(data, 8, 9900);
  CHECK(first.validation == again.validation);
  CHECK(first.test == again.test);
  CHECK(first.test != other.test);
  // The validation/test boundary moves; the shuffle itself depends on the seed only.
  fmnist::Splits wider = fmnist::make_splits(data, 7, 9000);
  CHECK(std::equal(wider.validation.begin(), wider.validation.end(), first.validation.begin()));
}

TEST_CASE("make_splits rejects validation counts that leave either set empty", "[dataset]") {
  fmnist::FashionMnist data = sized_data();
  for (int bad : {-1, 0, 10000, 10001}) {
    INFO("validation " << bad);
    CHECK_THROWS_AS(fmnist::make_splits(data, 1, bad), std::invalid_argument);
  }
  CHECK(fmnist::make_splits(data, 1, 1).validation.size() == 1);
  CHECK(fmnist::make_splits(data, 1, 9999).test.size() == 1);
}

TEST_CASE("epoch_order is a seeded permutation that changes every epoch", "[dataset]") {
  std::vector<std::int32_t> indices = iota_indices(60000);
  std::vector<std::int32_t> epoch0 = fmnist::epoch_order(indices, 5, 0);
  std::vector<std::int32_t> epoch1 = fmnist::epoch_order(indices, 5, 1);
  CHECK(sorted(epoch0) == indices);
  CHECK(sorted(epoch1) == indices);
  CHECK(epoch0 != indices);
  CHECK(epoch0 != epoch1);
  CHECK(fmnist::epoch_order(indices, 5, 1) == epoch1);
  CHECK(fmnist::epoch_order(indices, 6, 1) != epoch1);

  std::set<std::vector<std::int32_t>> firsts;  // 100 epochs, 100 different starts of the order
  for (int epoch = 0; epoch < 100; ++epoch) {
    std::vector<std::int32_t> order = fmnist::epoch_order(indices, 5, epoch);
    firsts.insert(std::vector<std::int32_t>(order.begin(), order.begin() + 100));
  }
  CHECK(firsts.size() == 100);

  std::vector<std::int32_t> subset{40, 3, 17, 9};  // permutes the given indices, whatever they are
  CHECK(sorted(fmnist::epoch_order(subset, 5, 0)) == sorted(subset));
}

TEST_CASE("gather_batch copies the selected images and labels", "[dataset]") {
  fmnist::Dataset set;
  for (int i = 0; i < 20; ++i) {
    for (int p = 0; p < 784; ++p) set.images.push_back(static_cast<std::uint8_t>(i * 31 + p));
    set.labels.push_back(static_cast<std::uint8_t>(i % 10));
  }
  std::vector<std::int32_t> picks{19, 0, 7, 7, 3};
  std::vector<std::uint8_t> images(picks.size() * 784, 0xEE), labels(picks.size(), 0xEE);
  fmnist::gather_batch(set, picks.data(), int(picks.size()), images.data(), labels.data());
  for (std::size_t b = 0; b < picks.size(); ++b) {
    INFO("batch slot " << b);
    CHECK(std::equal(images.begin() + std::ptrdiff_t(b * 784), images.begin() + std::ptrdiff_t((b + 1) * 784),
                     set.image(picks[b])));
    CHECK(labels[b] == picks[b] % 10);
  }
  std::int32_t outside = 20;
  CHECK_THROWS_AS(fmnist::gather_batch(set, &outside, 1, images.data(), labels.data()), std::out_of_range);
}

TEST_CASE("default_data_dir honours FMNIST_DATA_DIR", "[dataset]") {
  ScopedEnvironment environment("FMNIST_DATA_DIR");
  environment.set("/tmp/somewhere-else");
  CHECK(fmnist::default_data_dir() == "/tmp/somewhere-else");
  environment.set("");
  CHECK(fmnist::default_data_dir() == FMNIST_DEFAULT_DATA_DIR);
  environment.clear();
  CHECK(fmnist::default_data_dir() == FMNIST_DEFAULT_DATA_DIR);
  CHECK(std::string(FMNIST_DEFAULT_DATA_DIR) == "/usr/share/datasets/fashion-mnist");
}

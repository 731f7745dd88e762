// The real Fashion-MNIST (default_data_dir(): $FMNIST_DATA_DIR, else Debian's dataset-fashion-mnist),
// loaded once per test binary for every test case that trains on it or looks at it.
#pragma once

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

#include "host/dataset.h"

namespace fmnist::testing {

inline const FashionMnist& real_data() {
  static const FashionMnist data = [] {
    const std::string dir = default_data_dir();
    INFO("Fashion-MNIST is missing from " << dir
                                          << "; install the Debian package dataset-fashion-mnist (tools/setup.sh)");
    REQUIRE(std::filesystem::is_directory(dir));
    return load_fashion_mnist(dir);
  }();
  return data;
}

}  // namespace fmnist::testing

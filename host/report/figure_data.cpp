// The parts of figures.h that need no cairo, built in every configuration: the palette, the class
// names and the pixel conversions shared by the drawing and by figures.json.
#include <algorithm>
#include <cmath>

#include "host/report/figures.h"

namespace fmnist::report {

Rgb palette(std::size_t index) {
  static const Rgb colours[] = {
      {0.0, 0.447, 0.698},    // blue
      {0.835, 0.369, 0.0},    // vermillion
      {0.0, 0.620, 0.451},    // bluish green
      {0.800, 0.475, 0.655},  // reddish purple
      {0.902, 0.624, 0.0},    // orange
      {0.337, 0.706, 0.914},  // sky blue
      {0.5, 0.5, 0.5},        // grey
      {0.941, 0.894, 0.259},  // yellow
  };
  return colours[index % (sizeof colours / sizeof colours[0])];
}

const std::vector<std::string>& class_names() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

std::vector<float> to_unit(const std::uint8_t* image) {
  constexpr int kPixels = 28 * 28;
  std::vector<float> v(kPixels);
  for (int i = 0; i < kPixels; ++i) v[i] = image[i] / 255.0f;
  return v;
}

std::uint8_t grey_level(float v) {
  return static_cast<std::uint8_t>(std::lround(std::clamp(std::isfinite(v) ? v : 0.0f, 0.0f, 1.0f) * 255));
}

}  // namespace fmnist::report

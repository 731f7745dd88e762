// The report's figures, drawn with cairo (lines, text, antialiasing) and written as PNG through
// cairo's libpng writer: line plots with ticks, axis titles and a legend; grids of 28x28 images
// with row labels and captions; a confusion matrix with counts and class names.
// The descriptions (LinePlot, ImageGrid, ConfusionFigure), palette(), class_names(), to_unit() and
// grey_level() need no cairo (figure_data.cpp, in every build); Figure, the draw_* functions,
// nice_ticks() and tick_label() are figures.cpp's, built only with cairo (CMake's FMNIST_REPORT).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

typedef struct _cairo cairo_t;
typedef struct _cairo_surface cairo_surface_t;

namespace fmnist::report {

// A colour, each channel in [0, 1].
struct Rgb {
  double r = 0, g = 0, b = 0;
  // The 8-bit value of each channel as a PNG stores it: 0xRRGGBB.
  std::uint32_t hex() const;
};

// Distinct colours for series (Okabe-Ito, readable by colour-blind viewers), cycled by index.
Rgb palette(std::size_t index);

// The ten Fashion-MNIST class names, "T-shirt/top" ... "Ankle boot".
const std::vector<std::string>& class_names();

// An RGB image being drawn on: white when made. Move-only.
class Figure {
 public:
  Figure(int width, int height);
  ~Figure();
  Figure(Figure&& other) noexcept;
  Figure& operator=(Figure&& other) noexcept;
  Figure(const Figure&) = delete;
  Figure& operator=(const Figure&) = delete;

  int width() const { return width_; }
  int height() const { return height_; }
  cairo_t* context() const { return cr_; }

  // The pixel at (x, y) as 0xRRGGBB.
  std::uint32_t pixel(int x, int y) const;
  // The PNG file's bytes; write_png throws std::runtime_error naming the path on failure.
  std::vector<std::uint8_t> png() const;
  void write_png(const std::string& path) const;

 private:
  void release() noexcept;
  int width_ = 0, height_ = 0;
  cairo_surface_t* surface_ = nullptr;
  cairo_t* cr_ = nullptr;
};

// ---- line plots ------------------------------------------------------------------------------------
struct Series {
  std::string name;  // in the legend
  Rgb colour;
  bool dashed = false;
  std::vector<double> x, y;  // same length; non-finite y values are left out
};

struct LinePlot {
  std::string title, x_label, y_label;
  std::vector<Series> series;
  int width = 960, height = 540;
  bool integer_x = true;  // x ticks at whole numbers only (epochs)
};

// Where a plot's data went, in pixels: the frame of the plotting area and its data ranges.
struct PlotArea {
  double left = 0, top = 0, right = 0, bottom = 0;
  double x_min = 0, x_max = 1, y_min = 0, y_max = 1;
  double px(double x) const { return left + (x - x_min) / (x_max - x_min) * (right - left); }
  double py(double y) const { return bottom - (y - y_min) / (y_max - y_min) * (bottom - top); }
};

// Draws the series with markers at each point when there are few, the axes with tick labels, the
// axis titles, the title and a legend right of the plot. Throws std::invalid_argument when a series'
// x and y differ in length. `area`, when given, receives the plotting area.
Figure draw_line_plot(const LinePlot& plot, PlotArea* area = nullptr);

// About `target` round tick values covering [lo, hi] (steps of 1, 2, 2.5 or 5 times a power of ten),
// every tick inside [lo, hi]; `integer` keeps steps >= 1.
std::vector<double> nice_ticks(double lo, double hi, int target, bool integer = false);

// A tick label with as many decimals as the step between ticks needs ("0.05", "1.5", "20").
std::string tick_label(double value, double step);

// ---- image grids -----------------------------------------------------------------------------------
struct GridCell {
  std::vector<float> pixels;  // 784 values in [0, 1]; empty draws nothing
  std::vector<std::string> caption;  // lines under the image
  std::optional<Rgb> frame;          // a coloured frame around the image
  std::optional<Rgb> caption_colour;
};

struct ImageGrid {
  std::string title;
  int rows = 1, cols = 1;
  std::vector<GridCell> cells;           // rows * cols, row-major
  std::vector<std::string> row_labels;   // empty, or one per row (left of the row)
  std::vector<std::string> column_labels;  // empty, or one per column (above the grid)
  int scale = 4;                         // each pixel drawn as scale x scale
};

// The pixel rectangle of cell (row, col)'s image in draw_image_grid's output.
struct CellRect {
  int x = 0, y = 0, size = 0;
};

// Throws std::invalid_argument when cells, labels or pixels do not fit rows x cols x 784.
Figure draw_image_grid(const ImageGrid& grid, std::vector<CellRect>* rects = nullptr);

// 784 bytes of a 28x28 image as [0, 1] floats.
std::vector<float> to_unit(const std::uint8_t* image);

// The grey level (0..255) an image grid paints for a [0, 1] value: round(clamp(v, 0, 1) * 255),
// NaN as 0. to_unit() of it paints the same level again, so images kept as these bytes
// (figures.json) redraw identically.
std::uint8_t grey_level(float v);

// ---- confusion matrix ------------------------------------------------------------------------------
struct ConfusionFigure {
  std::string title;
  std::vector<std::int64_t> counts;  // classes x classes, [true label][prediction]
  std::vector<std::string> labels;   // class names, one per class
};

// Cells shaded by the share of their row (their true class), each with its count, class names on
// both axes, axis titles. Throws std::invalid_argument on a matrix that is not labels^2.
Figure draw_confusion_matrix(const ConfusionFigure& figure, std::vector<CellRect>* cells = nullptr);

}  // namespace fmnist::report

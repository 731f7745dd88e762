// The report's figures with cairo: see figures.h (the parts without cairo: figure_data.cpp).
#include "host/report/figures.h"

#include <cairo.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <utility>

namespace fmnist::report {
namespace {

constexpr const char* kFont = "DejaVu Sans";
constexpr int kPixels = 28 * 28;

void set_colour(cairo_t* cr, const Rgb& c) { cairo_set_source_rgb(cr, c.r, c.g, c.b); }

void set_font(cairo_t* cr, double size, bool bold = false) {
  cairo_select_font_face(cr, kFont, CAIRO_FONT_SLANT_NORMAL,
                         bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, size);
}

double text_width(cairo_t* cr, const std::string& text) {
  cairo_text_extents_t e;
  cairo_text_extents(cr, text.c_str(), &e);
  return e.x_advance;
}

// Draws `text` anchored at (x, y), then turned by `angle` about that point: halign 0 puts the
// anchor at the text's left end, 0.5 its middle, 1 its right end; valign 0 at the top of its
// capitals, 0.5 their middle, 1 the baseline.
void draw_text(cairo_t* cr, const std::string& text, double x, double y, double halign, double valign,
               double angle = 0) {
  cairo_text_extents_t cap;
  cairo_text_extents(cr, "H", &cap);
  const double w = text_width(cr, text);
  cairo_save(cr);
  cairo_translate(cr, x, y);
  cairo_rotate(cr, angle);
  cairo_move_to(cr, -halign * w, cap.height * (1.0 - valign));
  cairo_show_text(cr, text.c_str());
  cairo_restore(cr);
}

cairo_status_t append_bytes(void* closure, const unsigned char* data, unsigned int length) {
  auto* out = static_cast<std::vector<std::uint8_t>*>(closure);
  out->insert(out->end(), data, data + length);
  return CAIRO_STATUS_SUCCESS;
}

const Rgb kBlack{0, 0, 0};
const Rgb kGrid{0.88, 0.88, 0.88};
const Rgb kAxis{0.2, 0.2, 0.2};

}  // namespace

std::uint32_t Rgb::hex() const {
  auto channel = [](double v) {
    return static_cast<std::uint32_t>(std::lround(std::clamp(v, 0.0, 1.0) * 255.0));
  };
  return channel(r) << 16 | channel(g) << 8 | channel(b);
}

// ---- Figure ----------------------------------------------------------------------------------------

Figure::Figure(int width, int height) : width_(width), height_(height) {
  if (width < 1 || height < 1 || width > 20000 || height > 20000)
    throw std::invalid_argument("figure: size " + std::to_string(width) + "x" + std::to_string(height));
  surface_ = cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
  cr_ = cairo_create(surface_);
  if (cairo_surface_status(surface_) != CAIRO_STATUS_SUCCESS || cairo_status(cr_) != CAIRO_STATUS_SUCCESS) {
    release();
    throw std::runtime_error("figure: cairo could not create a surface");
  }
  cairo_set_source_rgb(cr_, 1, 1, 1);
  cairo_paint(cr_);
}

Figure::~Figure() { release(); }

Figure::Figure(Figure&& o) noexcept
    : width_(o.width_), height_(o.height_), surface_(std::exchange(o.surface_, nullptr)),
      cr_(std::exchange(o.cr_, nullptr)) {}

Figure& Figure::operator=(Figure&& o) noexcept {
  if (this != &o) {
    release();
    width_ = o.width_;
    height_ = o.height_;
    surface_ = std::exchange(o.surface_, nullptr);
    cr_ = std::exchange(o.cr_, nullptr);
  }
  return *this;
}

void Figure::release() noexcept {
  if (cr_) cairo_destroy(cr_);
  if (surface_) cairo_surface_destroy(surface_);
  cr_ = nullptr;
  surface_ = nullptr;
}

std::uint32_t Figure::pixel(int x, int y) const {
  if (x < 0 || y < 0 || x >= width_ || y >= height_) throw std::out_of_range("figure: pixel outside");
  cairo_surface_flush(surface_);
  const unsigned char* data = cairo_image_surface_get_data(surface_);
  const int stride = cairo_image_surface_get_stride(surface_);
  std::uint32_t v;
  std::copy_n(data + static_cast<std::size_t>(y) * stride + static_cast<std::size_t>(x) * 4, 4,
              reinterpret_cast<unsigned char*>(&v));
  return v & 0xFFFFFFu;  // native-endian xRGB
}

std::vector<std::uint8_t> Figure::png() const {
  cairo_surface_flush(surface_);
  std::vector<std::uint8_t> bytes;
  if (cairo_surface_write_to_png_stream(surface_, append_bytes, &bytes) != CAIRO_STATUS_SUCCESS)
    throw std::runtime_error("figure: PNG encoding failed");
  return bytes;
}

void Figure::write_png(const std::string& path) const {
  cairo_surface_flush(surface_);
  const cairo_status_t s = cairo_surface_write_to_png(surface_, path.c_str());
  if (s != CAIRO_STATUS_SUCCESS)
    throw std::runtime_error(path + ": cannot write PNG (" + cairo_status_to_string(s) + ")");
}

// ---- ticks -----------------------------------------------------------------------------------------

namespace {
std::string fmt_significant(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.12g", v);
  return buf;
}
}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int target, bool integer) {
  if (!(hi > lo) || !std::isfinite(lo) || !std::isfinite(hi) || target < 1) return {lo};
  const double rough = (hi - lo) / target;
  const double magnitude = std::pow(10.0, std::floor(std::log10(rough)));
  double step = 10 * magnitude;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (m * magnitude >= rough) {
      step = m * magnitude;
      break;
    }
  }
  if (integer) step = std::max(1.0, std::round(step));
  std::vector<double> ticks;
  const double eps = step * 1e-9;
  // k * step, not a running sum, so that error does not accumulate; snapped to 12 significant digits
  for (auto k = static_cast<long long>(std::ceil((lo - eps) / step)); k * step <= hi + eps; ++k) {
    const double t = k * step;
    ticks.push_back(k == 0 ? 0.0 : std::stod(fmt_significant(t)));
  }
  return ticks;
}

std::string tick_label(double value, double step) {
  int decimals = 0;
  if (step > 0 && step < 1) {
    decimals = static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
    // a step like 0.25 or 0.025 needs one more digit than its magnitude
    const double scaled = step * std::pow(10.0, decimals);
    if (std::abs(scaled - std::round(scaled)) > 1e-6) ++decimals;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

// ---- line plot -------------------------------------------------------------------------------------

Figure draw_line_plot(const LinePlot& plot, PlotArea* area_out) {
  double x_min = INFINITY, x_max = -INFINITY, y_min = INFINITY, y_max = -INFINITY;
  std::size_t most_points = 0;
  for (const Series& s : plot.series) {
    if (s.x.size() != s.y.size())
      throw std::invalid_argument("line plot: series '" + s.name + "' has x and y of different lengths");
    most_points = std::max(most_points, s.x.size());
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      x_min = std::min(x_min, s.x[i]);
      x_max = std::max(x_max, s.x[i]);
      y_min = std::min(y_min, s.y[i]);
      y_max = std::max(y_max, s.y[i]);
    }
  }
  if (!std::isfinite(x_min)) {  // no data: an empty frame
    x_min = 0, x_max = 1, y_min = 0, y_max = 1;
  }
  if (x_max - x_min < 1e-12) x_min -= 0.5, x_max += 0.5;
  if (y_max - y_min < 1e-12) {
    const double pad = std::max(std::abs(y_min) * 0.05, 1e-3);
    y_min -= pad, y_max += pad;
  }
  const double y_pad = (y_max - y_min) * 0.06;
  y_min -= y_pad;
  y_max += y_pad;

  Figure fig(plot.width, plot.height);
  cairo_t* cr = fig.context();

  // Legend width decides the right margin.
  set_font(cr, 14);
  double legend_text = 0;
  for (const Series& s : plot.series) legend_text = std::max(legend_text, text_width(cr, s.name));
  const double legend_w = plot.series.empty() ? 0 : legend_text + 70;

  PlotArea a;
  a.left = 92;
  a.top = 52;
  a.right = plot.width - 24 - legend_w;
  a.bottom = plot.height - 66;
  a.x_min = x_min, a.x_max = x_max, a.y_min = y_min, a.y_max = y_max;
  if (plot.integer_x) {  // half a step of air either side, so end points are not on the frame
    const double pad = std::max(0.25, (x_max - x_min) * 0.03);
    a.x_min -= pad, a.x_max += pad;
  }

  // Title.
  set_colour(cr, kBlack);
  set_font(cr, 19, true);
  draw_text(cr, plot.title, (a.left + a.right) / 2, 16, 0.5, 0);

  // Grid and ticks.
  const auto y_ticks = nice_ticks(a.y_min, a.y_max, 6);
  const auto x_ticks = nice_ticks(a.x_min, a.x_max, 8, plot.integer_x);
  const double y_step = y_ticks.size() > 1 ? y_ticks[1] - y_ticks[0] : 1;
  const double x_step = x_ticks.size() > 1 ? x_ticks[1] - x_ticks[0] : 1;
  cairo_set_line_width(cr, 1);
  set_colour(cr, kGrid);
  for (double t : y_ticks) {
    const double y = std::round(a.py(t)) + 0.5;
    cairo_move_to(cr, a.left, y);
    cairo_line_to(cr, a.right, y);
  }
  for (double t : x_ticks) {
    const double x = std::round(a.px(t)) + 0.5;
    cairo_move_to(cr, x, a.top);
    cairo_line_to(cr, x, a.bottom);
  }
  cairo_stroke(cr);

  set_font(cr, 13);
  set_colour(cr, kAxis);
  for (double t : y_ticks) draw_text(cr, tick_label(t, y_step), a.left - 8, a.py(t), 1, 0.5);
  for (double t : x_ticks) draw_text(cr, tick_label(t, x_step), a.px(t), a.bottom + 8, 0.5, 0);

  // Frame.
  cairo_set_line_width(cr, 1.2);
  cairo_rectangle(cr, a.left, a.top, a.right - a.left, a.bottom - a.top);
  cairo_stroke(cr);

  // Axis titles.
  set_font(cr, 15);
  set_colour(cr, kBlack);
  draw_text(cr, plot.x_label, (a.left + a.right) / 2, plot.height - 16, 0.5, 1);
  draw_text(cr, plot.y_label, 22, (a.top + a.bottom) / 2, 0.5, 0.5, -M_PI / 2);

  // Series, clipped to the plotting area.
  const bool markers = most_points <= 30;
  cairo_save(cr);
  cairo_rectangle(cr, a.left, a.top, a.right - a.left, a.bottom - a.top);
  cairo_clip(cr);
  for (const Series& s : plot.series) {
    set_colour(cr, s.colour);
    cairo_set_line_width(cr, 2.5);
    const double dash[] = {9.0, 5.0};
    cairo_set_dash(cr, dash, s.dashed ? 2 : 0, 0);
    bool pen_down = false;
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) {
        pen_down = false;
        continue;
      }
      if (pen_down)
        cairo_line_to(cr, a.px(s.x[i]), a.py(s.y[i]));
      else
        cairo_move_to(cr, a.px(s.x[i]), a.py(s.y[i]));
      pen_down = true;
    }
    cairo_stroke(cr);
    cairo_set_dash(cr, nullptr, 0, 0);
    if (markers) {
      for (std::size_t i = 0; i < s.x.size(); ++i) {
        if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
        if (s.dashed) {  // hollow squares for dashed series, filled discs for solid ones
          cairo_rectangle(cr, a.px(s.x[i]) - 4.5, a.py(s.y[i]) - 4.5, 9, 9);
          cairo_set_line_width(cr, 2);
          cairo_stroke(cr);
        } else {
          cairo_arc(cr, a.px(s.x[i]), a.py(s.y[i]), 5, 0, 2 * M_PI);
          cairo_fill(cr);
        }
      }
    }
  }
  cairo_restore(cr);

  // Legend.
  if (!plot.series.empty()) {
    const double lx = a.right + 18, ly = a.top;
    const double row = 24;
    set_colour(cr, {0.97, 0.97, 0.97});
    cairo_rectangle(cr, lx, ly, legend_w - 8, row * plot.series.size() + 12);
    cairo_fill_preserve(cr);
    set_colour(cr, kGrid);
    cairo_set_line_width(cr, 1);
    cairo_stroke(cr);
    set_font(cr, 14);
    for (std::size_t i = 0; i < plot.series.size(); ++i) {
      const Series& s = plot.series[i];
      const double y = ly + 6 + row * i + row / 2;
      set_colour(cr, s.colour);
      cairo_set_line_width(cr, 2.5);
      const double dash[] = {7.0, 4.0};
      cairo_set_dash(cr, dash, s.dashed ? 2 : 0, 0);
      cairo_move_to(cr, lx + 8, y);
      cairo_line_to(cr, lx + 44, y);
      cairo_stroke(cr);
      cairo_set_dash(cr, nullptr, 0, 0);
      set_colour(cr, kBlack);
      draw_text(cr, s.name, lx + 52, y, 0, 0.5);
    }
  }
  if (area_out) *area_out = a;
  return fig;
}

// ---- image grid ------------------------------------------------------------------------------------

namespace {

// Paints a 28x28 image of [0, 1] values as grey levels, each pixel a scale x scale square.
void paint_image(cairo_t* cr, const std::vector<float>& pixels, int x, int y, int scale) {
  cairo_surface_t* img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 28, 28);
  cairo_surface_flush(img);
  unsigned char* data = cairo_image_surface_get_data(img);
  const int stride = cairo_image_surface_get_stride(img);
  for (int r = 0; r < 28; ++r) {
    auto* row = reinterpret_cast<std::uint32_t*>(data + r * stride);
    for (int c = 0; c < 28; ++c) {
      const std::uint32_t g = grey_level(pixels[r * 28 + c]);
      row[c] = g << 16 | g << 8 | g;
    }
  }
  cairo_surface_mark_dirty(img);
  cairo_save(cr);
  cairo_translate(cr, x, y);
  cairo_scale(cr, scale, scale);
  cairo_set_source_surface(cr, img, 0, 0);
  cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
  cairo_rectangle(cr, 0, 0, 28, 28);
  cairo_fill(cr);
  cairo_restore(cr);
  cairo_surface_destroy(img);
}

}  // namespace

Figure draw_image_grid(const ImageGrid& g, std::vector<CellRect>* rects) {
  if (g.rows < 1 || g.cols < 1 || g.cells.size() != static_cast<std::size_t>(g.rows) * g.cols)
    throw std::invalid_argument("image grid: expected rows x cols cells");
  if (!g.row_labels.empty() && g.row_labels.size() != static_cast<std::size_t>(g.rows))
    throw std::invalid_argument("image grid: one row label per row");
  if (!g.column_labels.empty() && g.column_labels.size() != static_cast<std::size_t>(g.cols))
    throw std::invalid_argument("image grid: one column label per column");
  std::size_t caption_lines = 0;
  for (const GridCell& c : g.cells) {
    if (!c.pixels.empty() && c.pixels.size() != static_cast<std::size_t>(kPixels))
      throw std::invalid_argument("image grid: a cell's image must have 784 pixels");
    caption_lines = std::max(caption_lines, c.caption.size());
  }
  const int cell = 28 * g.scale;
  const int gap = 12;
  const int line_h = 16;

  // Measure labels with a scratch surface.
  double row_label_w = 0, column_label_w = 0, title_w = 0;
  {
    Figure scratch(8, 8);
    set_font(scratch.context(), 19, true);
    title_w = text_width(scratch.context(), g.title);
    set_font(scratch.context(), 15, true);
    for (const auto& l : g.row_labels) row_label_w = std::max(row_label_w, text_width(scratch.context(), l));
    set_font(scratch.context(), 12);
    for (const GridCell& c : g.cells)
      for (const auto& l : c.caption) column_label_w = std::max(column_label_w, text_width(scratch.context(), l));
  }
  const int col_w = std::max(cell, static_cast<int>(std::ceil(column_label_w)) + 4);
  int left = 16 + (g.row_labels.empty() ? 0 : static_cast<int>(std::ceil(row_label_w)) + 14);
  const int title_h = g.title.empty() ? 10 : 44;
  const int column_h = g.column_labels.empty() ? 0 : 24;
  const int row_h = cell + 6 + static_cast<int>(caption_lines) * line_h + gap;
  const int content_w = left + g.cols * col_w + (g.cols - 1) * gap + 16;
  const int width = std::max(content_w, static_cast<int>(std::ceil(title_w)) + 32);
  left += (width - content_w) / 2;  // a title wider than the grid: centre the grid under it
  const int height = title_h + column_h + g.rows * row_h + 6;

  Figure fig(width, height);
  cairo_t* cr = fig.context();
  if (!g.title.empty()) {
    set_colour(cr, kBlack);
    set_font(cr, 19, true);
    draw_text(cr, g.title, width / 2.0, 12, 0.5, 0);
  }
  std::vector<CellRect> out;
  for (int r = 0; r < g.rows; ++r) {
    const int y = title_h + column_h + r * row_h;
    if (!g.row_labels.empty()) {
      set_colour(cr, kBlack);
      set_font(cr, 15, true);
      draw_text(cr, g.row_labels[r], left - 14, y + cell / 2.0, 1, 0.5);
    }
    for (int c = 0; c < g.cols; ++c) {
      const int x = left + c * (col_w + gap) + (col_w - cell) / 2;
      if (r == 0 && !g.column_labels.empty()) {
        set_colour(cr, kBlack);
        set_font(cr, 14);
        draw_text(cr, g.column_labels[c], x + cell / 2.0, title_h + 2, 0.5, 0);
      }
      const GridCell& cellspec = g.cells[static_cast<std::size_t>(r) * g.cols + c];
      if (!cellspec.pixels.empty()) paint_image(cr, cellspec.pixels, x, y, g.scale);
      if (cellspec.frame) {
        set_colour(cr, *cellspec.frame);
        cairo_set_line_width(cr, 4);
        cairo_rectangle(cr, x - 2, y - 2, cell + 4, cell + 4);
        cairo_stroke(cr);
      }
      set_colour(cr, cellspec.caption_colour.value_or(kBlack));
      set_font(cr, 12, cellspec.caption_colour.has_value());
      for (std::size_t i = 0; i < cellspec.caption.size(); ++i)
        draw_text(cr, cellspec.caption[i], x + cell / 2.0, y + cell + 6 + i * line_h, 0.5, 0);
      out.push_back({x, y, cell});
    }
  }
  if (rects) *rects = std::move(out);
  return fig;
}

// ---- confusion matrix ------------------------------------------------------------------------------

Figure draw_confusion_matrix(const ConfusionFigure& f, std::vector<CellRect>* cells_out) {
  const std::size_t n = f.labels.size();
  if (n == 0 || f.counts.size() != n * n)
    throw std::invalid_argument("confusion matrix: expected labels^2 counts");
  const int cell = 52;
  double label_w = 0;
  {
    Figure scratch(8, 8);
    set_font(scratch.context(), 14);
    for (const auto& l : f.labels) label_w = std::max(label_w, text_width(scratch.context(), l));
  }
  const int left = 40 + static_cast<int>(std::ceil(label_w)) + 12;  // "true label" title, then names
  const int top = 60;
  const int bottom_labels = static_cast<int>(std::ceil(label_w * 0.72)) + 56;  // names at 45 degrees
  const int width = left + static_cast<int>(n) * cell + 40 + static_cast<int>(label_w * 0.72);
  const int height = top + static_cast<int>(n) * cell + bottom_labels;

  Figure fig(width, height);
  cairo_t* cr = fig.context();
  set_colour(cr, kBlack);
  set_font(cr, 19, true);
  draw_text(cr, f.title, left + n * cell / 2.0, 16, 0.5, 0);

  std::vector<CellRect> rects;
  for (std::size_t t = 0; t < n; ++t) {
    std::int64_t row_total = 0;
    for (std::size_t p = 0; p < n; ++p) row_total += f.counts[t * n + p];
    for (std::size_t p = 0; p < n; ++p) {
      const std::int64_t count = f.counts[t * n + p];
      const double share = row_total > 0 ? static_cast<double>(count) / row_total : 0.0;
      const int x = left + static_cast<int>(p) * cell, y = top + static_cast<int>(t) * cell;
      // white -> dark blue; off-diagonal mistakes in the same scale
      const Rgb fill{1.0 - 0.92 * share, 1.0 - 0.75 * share, 1.0 - 0.38 * share};
      set_colour(cr, fill);
      cairo_rectangle(cr, x, y, cell, cell);
      cairo_fill(cr);
      set_colour(cr, share > 0.5 ? Rgb{1, 1, 1} : (count == 0 ? Rgb{0.7, 0.7, 0.7} : kBlack));
      set_font(cr, count >= 1000 ? 12 : 14, t == p);
      draw_text(cr, std::to_string(count), x + cell / 2.0, y + cell / 2.0, 0.5, 0.5);
      rects.push_back({x, y, cell});
    }
  }
  // Grid lines and frame.
  set_colour(cr, {0.75, 0.75, 0.75});
  cairo_set_line_width(cr, 1);
  for (std::size_t i = 0; i <= n; ++i) {
    cairo_move_to(cr, left + i * cell + 0.5, top);
    cairo_line_to(cr, left + i * cell + 0.5, top + n * cell);
    cairo_move_to(cr, left, top + i * cell + 0.5);
    cairo_line_to(cr, left + n * cell, top + i * cell + 0.5);
  }
  cairo_stroke(cr);

  set_colour(cr, kBlack);
  set_font(cr, 14);
  for (std::size_t i = 0; i < n; ++i) {
    draw_text(cr, f.labels[i], left - 8, top + i * cell + cell / 2.0, 1, 0.5);
    draw_text(cr, f.labels[i], left + i * cell + cell / 2.0 + 4, top + n * cell + 10, 0, 0.5, M_PI / 4);
  }
  set_font(cr, 16, true);
  draw_text(cr, "true label", 18, top + n * cell / 2.0, 0.5, 0.5, -M_PI / 2);
  draw_text(cr, "predicted label", left + n * cell / 2.0, height - 14, 0.5, 1);
  if (cells_out) *cells_out = std::move(rects);
  return fig;
}

}  // namespace fmnist::report

// The report's planned figures drawn with cairo: see report.h. Built only with cairo (CMake's
// FMNIST_REPORT); a build without it keeps the plan and draws nothing (report.cpp, make_document).
#include <type_traits>
#include <utility>

#include "host/report/figures.h"
#include "host/report/report.h"

namespace fmnist::report {

ReportFigure draw_figure(const PlannedFigure& f) {
  const Figure drawn = std::visit(
      [](const auto& content) -> Figure {
        using T = std::decay_t<decltype(content)>;
        if constexpr (std::is_same_v<T, LinePlot>)
          return draw_line_plot(content);
        else if constexpr (std::is_same_v<T, ImageGrid>)
          return draw_image_grid(content);
        else
          return draw_confusion_matrix(content);
      },
      f.content);
  return {f.id, f.title, f.caption, drawn.png(), {}};
}

std::vector<ReportFigure> make_figures(const ReportInputs& in, std::vector<std::string>* missing) {
  std::vector<ReportFigure> figs;
  for (const PlannedFigure& f : plan_figures(in, missing)) figs.push_back(draw_figure(f));
  return figs;
}

}  // namespace fmnist::report

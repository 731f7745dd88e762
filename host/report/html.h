// The self-contained HTML report: every figure embedded as a base64 PNG data URI (or, in a build
// without cairo, a line in its place saying it was not drawn and how to draw it), the results
// table and the targets, and an inline script that, once the page has loaded, counts the figures
// the browser decoded and writes "figures-loaded N/M" into the title and #figures-status (what
// tools/browser_check.sh reads back from headless Chromium).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fmnist::report {

std::string html_escape(const std::string& text);
std::string base64_encode(const std::vector<std::uint8_t>& bytes);
// The inverse of base64_encode (padding required, no whitespace); false on anything else.
bool base64_decode(const std::string& text, std::vector<std::uint8_t>& bytes);

struct ReportFigure {
  std::string id;       // "fig7": the PNG is figures/<id>.png and the HTML anchor is #<id>
  std::string title;    // "Fig. 7: ..."
  std::string caption;  // plain text
  std::vector<std::uint8_t> png;  // empty: not drawn, and `not_drawn` says why and how to draw it
  std::string not_drawn;          // plain text
};

struct ReportDocument {
  std::string title;
  std::string intro_html;    // settings and provenance
  std::string targets_html;
  std::string results_html;
  std::vector<ReportFigure> figures;
  std::vector<std::string> missing;  // figures not drawn, with the reason (plain text)
};

// The whole page; needs nothing from the network.
std::string render_report_html(const ReportDocument& doc);

}  // namespace fmnist::report

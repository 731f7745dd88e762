// The self-contained HTML report: see html.h.
#include "host/report/html.h"

namespace fmnist::report {

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string base64_encode(const std::vector<std::uint8_t>& bytes) {
  static const char* const kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const std::uint32_t v = bytes[i] << 16 | bytes[i + 1] << 8 | bytes[i + 2];
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += kAlphabet[v >> 6 & 63];
    out += kAlphabet[v & 63];
  }
  if (i < bytes.size()) {
    const bool two = i + 1 < bytes.size();
    const std::uint32_t v = bytes[i] << 16 | (two ? bytes[i + 1] << 8 : 0);
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += two ? kAlphabet[v >> 6 & 63] : '=';
    out += '=';
  }
  return out;
}

std::string render_report_html(const ReportDocument& doc) {
  std::string h;
  h += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  h += "<title>" + html_escape(doc.title) + "</title>\n";
  h += R"(<style>
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 24px auto; max-width: 1340px; color: #222; }
h1 { font-size: 26px; margin-bottom: 4px; } h2 { margin-top: 36px; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
thead th { background: #eef2f7; text-align: center; } tbody th { text-align: left; background: #fafafa; }
table.kv td, table.kv th { text-align: left; }
.pass { color: #0a6b2f; font-weight: bold; } .FAIL { color: #b00020; font-weight: bold; } .na { color: #777; font-weight: bold; }
figure { margin: 18px 0 30px; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 14px; color: #444; max-width: 1100px; margin-top: 6px; }
.note { color: #555; font-size: 13px; } #figures-status { color: #888; font-size: 12px; }
nav a { margin-right: 12px; }
</style>
</head>
<body>
)";
  h += "<h1>" + html_escape(doc.title) + "</h1>\n";
  h += "<p id=\"figures-status\">figures-loading</p>\n";
  if (!doc.figures.empty()) {
    h += "<nav>";
    for (const ReportFigure& f : doc.figures)
      h += "<a href=\"#" + html_escape(f.id) + "\">" + html_escape(f.title.substr(0, f.title.find(':'))) + "</a>";
    h += "</nav>\n";
  }
  h += doc.intro_html;
  h += "<h2>Targets</h2>\n" + doc.targets_html;
  h += "<h2>Results</h2>\n" + doc.results_html;
  h += "<h2>Figures</h2>\n";
  for (const ReportFigure& f : doc.figures) {
    h += "<figure id=\"" + html_escape(f.id) + "\">\n<h3>" + html_escape(f.title) + "</h3>\n";
    h += "<img class=\"figure\" alt=\"" + html_escape(f.title) + "\" src=\"data:image/png;base64," +
         base64_encode(f.png) + "\">\n";
    h += "<figcaption>" + html_escape(f.caption) + "</figcaption>\n</figure>\n";
  }
  if (!doc.missing.empty()) {
    h += "<h3>Figures not drawn</h3>\n<ul>\n";
    for (const std::string& m : doc.missing) h += "<li>" + html_escape(m) + "</li>\n";
    h += "</ul>\n";
  }
  h += R"(<script>
window.addEventListener("load", function () {
  var images = document.querySelectorAll("img");
  var loaded = 0;
  for (var i = 0; i < images.length; ++i)
    if (images[i].complete && images[i].naturalWidth > 0) ++loaded;
  var status = "figures-loaded " + loaded + "/" + images.length;
  var element = document.getElementById("figures-status");
  element.textContent = status;
  element.setAttribute("data-page-height", String(document.documentElement.scrollHeight));
  document.title = status;
});
</script>
</body>
</html>
)";
  return h;
}

}  // namespace fmnist::report

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

bool base64_decode(const std::string& text, std::vector<std::uint8_t>& bytes) {
  bytes.clear();
  if (text.size() % 4 != 0) return false;
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  bytes.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    const int pad = last ? (text[i + 3] == '=') + (text[i + 2] == '=') : 0;
    if (pad == 1 && text[i + 2] == '=') return false;  // "x=y=" is not padding
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const int d = k >= 4 - pad ? 0 : value(text[i + k]);
      if (d < 0) return false;
      v = v << 6 | static_cast<std::uint32_t>(d);
    }
    bytes.push_back(static_cast<std::uint8_t>(v >> 16));
    if (pad < 2) bytes.push_back(static_cast<std::uint8_t>(v >> 8 & 0xFF));
    if (pad < 1) bytes.push_back(static_cast<std::uint8_t>(v & 0xFF));
  }
  return true;
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
.note { color: #555; font-size: 13px; } .not-drawn { color: #8a5a00; background: #fff8e6; padding: 6px 10px; } #figures-status { color: #888; font-size: 12px; }
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
    if (f.png.empty())
      h += "<p class=\"not-drawn\">" + html_escape(f.not_drawn) + "</p>\n";
    else
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

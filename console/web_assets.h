// The page's static files, built into the binary from console/web/ by
// console/embed_assets.cmake, so the console needs no files and no network.
#ifndef LATCHKEY_CONSOLE_WEB_ASSETS_H_
#define LATCHKEY_CONSOLE_WEB_ASSETS_H_

#include <string_view>

namespace latchkey::console {

struct WebAsset {
  std::string_view path;  // "/index.html"
  std::string_view content_type;
  std::string_view body;
};

// The asset served at `path`, or nullptr. Lives as long as the program.
const WebAsset* FindWebAsset(std::string_view path);

}  // namespace latchkey::console

#endif  // LATCHKEY_CONSOLE_WEB_ASSETS_H_

// Host preprocessing with the rules of edgedet/runtime/preprocess.py, so C++ and Python feed an engine
// the same bytes: INTER_LINEAR resize, stretch or letterbox (image top-left, padding bottom/right), and
// letterbox sizes rounded half-to-even (Python's round(); std::nearbyint in the default rounding mode).
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include <opencv2/core.hpp>

namespace edgedet {

enum class Color;

//! How one image was fitted: network coords = original coords * (sx, sy).
struct Fit {
  double sx = 1;
  double sy = 1;
  int width = 0;  //!< original image size
  int height = 0;
  //! One x1y1x2y2 box in network pixels → original pixels, clipped to the image (float32 arithmetic, as numpy).
  std::array<float, 4> to_original(const float* box) const;
};

//! The letterboxed image size inside an H×W input: (width, height).
cv::Size letterbox_size(int width, int height, int net_w, int net_h);

//! Resizes an 8-bit RGB/BGR/gray/BGRA `image` into `out` (H×W CV_8UC3 over the engine's input buffer), as RGB.
Fit resize_into(const cv::Mat& image, Color color, cv::Mat& out, const std::string& mode,
                const std::array<uint8_t, 3>& pad_value);

//! 16-bit → 8-bit with Python's rule: (v * 255 + 32767) / 65535, so 65535 → 255 and 257 → 1.
cv::Mat scale_16_to_8(const cv::Mat& image16);

}  // namespace edgedet

#include "edgedet/preprocess.hpp"

#include <algorithm>
#include <cmath>

#include <opencv2/imgproc.hpp>

#include "edgedet/detector.hpp"

namespace edgedet {

std::array<float, 4> Fit::to_original(const float* box) const {
  const float fx = static_cast<float>(sx), fy = static_cast<float>(sy);
  const float w = static_cast<float>(width), h = static_cast<float>(height);
  return {std::clamp(box[0] / fx, 0.f, w), std::clamp(box[1] / fy, 0.f, h), std::clamp(box[2] / fx, 0.f, w),
          std::clamp(box[3] / fy, 0.f, h)};
}

cv::Size letterbox_size(int width, int height, int net_w, int net_h) {
  const double scale = std::min(static_cast<double>(net_w) / width, static_cast<double>(net_h) / height);
  const auto fitted = [scale](int side, int limit) {
    return std::max(1, std::min(limit, static_cast<int>(std::nearbyint(side * scale))));
  };
  return {fitted(width, net_w), fitted(height, net_h)};
}

cv::Mat scale_16_to_8(const cv::Mat& image16) {
  cv::Mat out(image16.size(), CV_MAKETYPE(CV_8U, image16.channels()));
  const int n = image16.cols * image16.channels();
  for (int y = 0; y < image16.rows; ++y) {
    const uint16_t* src = image16.ptr<uint16_t>(y);
    uint8_t* dst = out.ptr<uint8_t>(y);
    for (int i = 0; i < n; ++i) dst[i] = static_cast<uint8_t>((static_cast<uint32_t>(src[i]) * 255u + 32767u) / 65535u);
  }
  return out;
}

namespace {

//! Resizes `image` (any channel count) into `dst` (CV_8UC3, RGB), converting colour after the resize so
//! the interpolation sees the same per-channel values as Python's RGB resize.
void resize_rgb(const cv::Mat& image, Color color, cv::Mat dst) {
  const int channels = image.channels();
  if (channels == 3) {
    cv::resize(image, dst, dst.size(), 0, 0, cv::INTER_LINEAR);
    if (color == Color::BGR) cv::cvtColor(dst, dst, cv::COLOR_BGR2RGB);
    return;
  }
  cv::Mat resized;
  cv::resize(image, resized, dst.size(), 0, 0, cv::INTER_LINEAR);
  if (channels == 1) {
    cv::cvtColor(resized, dst, cv::COLOR_GRAY2RGB);
  } else {  // 4: alpha dropped, as Python does
    cv::cvtColor(resized, dst, color == Color::BGR ? cv::COLOR_BGRA2RGB : cv::COLOR_RGBA2RGB);
  }
}

}  // namespace

Fit resize_into(const cv::Mat& image, Color color, cv::Mat& out, const std::string& mode,
                const std::array<uint8_t, 3>& pad_value) {
  if (image.empty()) throw Error("empty image (did cv::imread fail to read the file?)");
  if (image.dims != 2 || (image.channels() != 1 && image.channels() != 3 && image.channels() != 4))
    throw Error("expected an image with 1, 3 or 4 channels, got " + std::to_string(image.channels()));
  cv::Mat src = image;
  if (image.depth() == CV_16U) {
    src = scale_16_to_8(image);
  } else if (image.depth() != CV_8U) {
    throw Error("expected an 8- or 16-bit image, got OpenCV depth " + std::to_string(image.depth()));
  }
  const int w = src.cols, h = src.rows, W = out.cols, H = out.rows;
  if (mode == "stretch") {
    resize_rgb(src, color, out);
    return {static_cast<double>(W) / w, static_cast<double>(H) / h, w, h};
  }
  if (mode != "letterbox") throw Error("resize mode must be stretch or letterbox, not '" + mode + "'");
  const cv::Size fitted = letterbox_size(w, h, W, H);
  out.setTo(cv::Scalar(pad_value[0], pad_value[1], pad_value[2]));
  resize_rgb(src, color, out(cv::Rect(0, 0, fitted.width, fitted.height)));
  return {static_cast<double>(fitted.width) / w, static_cast<double>(fitted.height) / h, w, h};
}

}  // namespace edgedet

// Host preprocessing rules shared with edgedet/runtime/preprocess.py (the pixel-level comparison with
// Python's OpenCV is tests/test_cpp_runtime.py).
#include <gtest/gtest.h>

#include <opencv2/imgproc.hpp>

#include "edgedet/detector.hpp"
#include "edgedet/preprocess.hpp"

using edgedet::Color;

TEST(Letterbox, RoundsHalfToEvenLikePython) {
  // 10 * 0.25 = 2.5: Python's round() gives 2 (half to even), round-half-up would give 3.
  EXPECT_EQ(edgedet::letterbox_size(10, 20, 100, 5), cv::Size(2, 5));
  // 14 * 0.25 = 3.5 → 4 (even), again unlike truncation.
  EXPECT_EQ(edgedet::letterbox_size(14, 20, 100, 5), cv::Size(4, 5));
  EXPECT_EQ(edgedet::letterbox_size(640, 480, 320, 320), cv::Size(320, 240));
  EXPECT_EQ(edgedet::letterbox_size(1, 1000, 320, 320), cv::Size(1, 320));  // never 0 wide
}

TEST(Letterbox, ImageTopLeftPaddingBottomRight) {
  cv::Mat image(50, 100, CV_8UC3, cv::Scalar(10, 20, 30));  // BGR
  cv::Mat out(64, 64, CV_8UC3, cv::Scalar(0, 0, 0));
  const auto fit = edgedet::resize_into(image, Color::BGR, out, "letterbox", {124, 116, 104});
  EXPECT_DOUBLE_EQ(fit.sx, 64.0 / 100);
  EXPECT_DOUBLE_EQ(fit.sy, 32.0 / 50);
  EXPECT_EQ(out.at<cv::Vec3b>(0, 0), cv::Vec3b(30, 20, 10));    // RGB now
  EXPECT_EQ(out.at<cv::Vec3b>(31, 63), cv::Vec3b(30, 20, 10));
  EXPECT_EQ(out.at<cv::Vec3b>(32, 0), cv::Vec3b(124, 116, 104));  // padding, RGB pad value
  EXPECT_EQ(out.at<cv::Vec3b>(63, 63), cv::Vec3b(124, 116, 104));
}

TEST(Stretch, BgrInputGivesTheRgbResizeOfTheSameImage) {
  cv::Mat bgr(37, 53, CV_8UC3);
  cv::randu(bgr, 0, 256);
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  cv::Mat a(32, 32, CV_8UC3), b(32, 32, CV_8UC3), expected;
  edgedet::resize_into(bgr, Color::BGR, a, "stretch", {0, 0, 0});
  edgedet::resize_into(rgb, Color::RGB, b, "stretch", {0, 0, 0});
  cv::resize(rgb, expected, {32, 32}, 0, 0, cv::INTER_LINEAR);
  EXPECT_EQ(cv::norm(a, b, cv::NORM_INF), 0);
  EXPECT_EQ(cv::norm(a, expected, cv::NORM_INF), 0);
}

TEST(Stretch, GrayAndBgraBecomeRgb) {
  cv::Mat gray(20, 20, CV_8UC1, cv::Scalar(77)), bgra(20, 20, CV_8UC4, cv::Scalar(1, 2, 3, 4));
  cv::Mat out(10, 10, CV_8UC3);
  edgedet::resize_into(gray, Color::BGR, out, "stretch", {0, 0, 0});
  EXPECT_EQ(out.at<cv::Vec3b>(5, 5), cv::Vec3b(77, 77, 77));
  edgedet::resize_into(bgra, Color::BGR, out, "stretch", {0, 0, 0});
  EXPECT_EQ(out.at<cv::Vec3b>(5, 5), cv::Vec3b(3, 2, 1));
}

TEST(Scale16, RoundsLikePython) {
  cv::Mat wide = (cv::Mat_<uint16_t>(1, 5) << 0, 128, 129, 257, 65535);
  const cv::Mat narrow = edgedet::scale_16_to_8(wide);
  EXPECT_EQ(narrow.at<uint8_t>(0, 0), 0);
  EXPECT_EQ(narrow.at<uint8_t>(0, 1), 0);
  EXPECT_EQ(narrow.at<uint8_t>(0, 2), 1);
  EXPECT_EQ(narrow.at<uint8_t>(0, 3), 1);
  EXPECT_EQ(narrow.at<uint8_t>(0, 4), 255);
}

TEST(Fit, MapsBackAndClips) {
  const edgedet::Fit fit{0.5, 0.25, 200, 400};
  const float box[4] = {10, 20, 150, 120};
  const auto out = fit.to_original(box);
  EXPECT_FLOAT_EQ(out[0], 20);
  EXPECT_FLOAT_EQ(out[1], 80);
  EXPECT_FLOAT_EQ(out[2], 200);  // 300, clipped to the width
  EXPECT_FLOAT_EQ(out[3], 400);  // 480, clipped to the height
}

TEST(BadImages, AreOneLineErrors) {
  cv::Mat out(10, 10, CV_8UC3);
  EXPECT_THROW(edgedet::resize_into(cv::Mat(), Color::BGR, out, "stretch", {0, 0, 0}), edgedet::Error);
  EXPECT_THROW(edgedet::resize_into(cv::Mat(5, 5, CV_8UC2), Color::BGR, out, "stretch", {0, 0, 0}), edgedet::Error);
  EXPECT_THROW(edgedet::resize_into(cv::Mat(5, 5, CV_32FC3), Color::BGR, out, "stretch", {0, 0, 0}), edgedet::Error);
  EXPECT_THROW(edgedet::resize_into(cv::Mat(5, 5, CV_8UC3), Color::BGR, out, "fill", {0, 0, 0}), edgedet::Error);
}

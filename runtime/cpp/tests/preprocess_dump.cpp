// Test helper: resizes IMAGE into an H×W buffer the way the Detector does and writes the raw RGB bytes, for
// tests/test_cpp_runtime.py to compare with Python's preprocessing.  preprocess_dump IMAGE H W MODE OUT
#include <cstdio>
#include <fstream>
#include <iostream>

#include <opencv2/imgcodecs.hpp>

#include "edgedet/detector.hpp"
#include "edgedet/preprocess.hpp"

int main(int argc, char** argv) {
  if (argc != 6) {
    std::cerr << "usage: preprocess_dump IMAGE H W MODE OUT\n";
    return 1;
  }
  try {
    const cv::Mat image = cv::imread(argv[1], cv::IMREAD_ANYCOLOR | cv::IMREAD_ANYDEPTH);
    cv::Mat out(std::stoi(argv[2]), std::stoi(argv[3]), CV_8UC3);
    const auto fit = edgedet::resize_into(image, edgedet::Color::BGR, out, argv[4], {124, 116, 104});
    std::ofstream(argv[5], std::ios::binary).write(reinterpret_cast<const char*>(out.data), out.total() * 3);
    std::printf("%.17g %.17g\n", fit.sx, fit.sy);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

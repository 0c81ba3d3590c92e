// Embedding edgedet in a C++ application: load an export, detect on one image, print and draw the boxes.
//   detect MODEL.onnx|MODEL.plan IMAGE [OUT.jpg]
#include <edgedet/detector.hpp>
#include <iostream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: detect MODEL IMAGE [OUT.jpg]\n";
    return 1;
  }
  try {
    edgedet::Detector detector(argv[1]);  // metadata from the sidecar or the ONNX file
    cv::Mat image = cv::imread(argv[2]);  // BGR
    if (image.empty()) throw edgedet::Error(std::string("cannot read image ") + argv[2]);
    for (const auto& d : detector.detect(image)) {
      if (d.score < 0.25f) continue;
      std::cout << d.class_name << " " << d.score << " [" << d.box[0] << ", " << d.box[1] << ", " << d.box[2]
                << ", " << d.box[3] << "]\n";
      cv::rectangle(image, cv::Point2f(d.box[0], d.box[1]), cv::Point2f(d.box[2], d.box[3]), {0, 255, 0}, 2);
    }
    if (argc > 3 && !cv::imwrite(argv[3], image)) throw edgedet::Error(std::string("cannot write ") + argv[3]);
  } catch (const std::exception& e) {  // edgedet::Error, and what OpenCV may throw
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

// The Detector on real exports and on bad ones. The assets (a trained fixture export, its corrupted and
// mismatched variants, a graph outside the contract) are written by tests/test_cpp_runtime.py into the folder
// named by EDGEDET_TEST_ASSETS; without it these tests skip, and that run of pytest fails on any skip.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "edgedet/detector.hpp"

namespace {

std::string asset(const std::string& name) {
  const char* dir = std::getenv("EDGEDET_TEST_ASSETS");
  return dir ? std::string(dir) + "/" + name : "";
}

#define NEED_ASSETS() \
  if (!std::getenv("EDGEDET_TEST_ASSETS")) GTEST_SKIP() << "EDGEDET_TEST_ASSETS is not set"

std::string error_of(const std::string& path, const std::string& backend = "auto") {
  try {
    edgedet::Options o;
    o.backend = backend;
    edgedet::Detector det(path, o);
  } catch (const edgedet::Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    return message;
  }
  return "(no error)";
}

}  // namespace

TEST(BadEngines, MissingOrUnknown) {
  EXPECT_NE(error_of("/nonexistent/model.onnx").find("engine not found"), std::string::npos);
  EXPECT_NE(error_of("/nonexistent/model.plan", "openvino").find("engine not found"), std::string::npos);
  EXPECT_NE(error_of("model.pt").find("unknown engine type"), std::string::npos);
  EXPECT_NE(error_of("model.onnx", "cuda").find("backend must be one of"), std::string::npos);
}

TEST(BadEngines, CorruptMismatchedOrOutsideTheContract) {
  NEED_ASSETS();
  EXPECT_NE(error_of(asset("corrupt.onnx")).find("not valid JSON"), std::string::npos);
  EXPECT_NE(error_of(asset("newer.onnx")).find("upgrade edgedet"), std::string::npos);
  EXPECT_NE(error_of(asset("mismatch.onnx")).find("belongs to another export"), std::string::npos);
  EXPECT_NE(error_of(asset("mismatch_batch.onnx")).find("belongs to another export"), std::string::npos);
  EXPECT_NE(error_of(asset("noncontract.onnx")).find("does not follow the edgedet engine contract"), std::string::npos);
  EXPECT_NE(error_of(asset("garbage.onnx")).find("OpenVINO cannot read"), std::string::npos);
  EXPECT_NE(error_of(asset("empty.onnx")).find("is empty"), std::string::npos);
  EXPECT_NE(error_of(asset("plugin.onnx")).find("--nms onnx"), std::string::npos);
  EXPECT_NE(error_of(asset("good.plan"), "openvino").find("is a TensorRT plan"), std::string::npos);
  EXPECT_NE(error_of(asset("good.onnx"), "tensorrt").find("build a TensorRT plan first"), std::string::npos);
  const std::string trt = error_of(asset("good.plan"));
  EXPECT_TRUE(trt.find("without TensorRT") != std::string::npos || trt.find("rebuild it") != std::string::npos) << trt;
}

TEST(Detector, ReadsTheSidecarOrTheEmbeddedMetadata) {
  NEED_ASSETS();
  edgedet::Detector side(asset("good.onnx"));
  edgedet::Detector embedded(asset("embedded.onnx"));
  EXPECT_EQ(side.backend(), "openvino");
  EXPECT_NE(side.metadata().source.find("good.json"), std::string::npos);
  EXPECT_NE(embedded.metadata().source.find("metadata_props"), std::string::npos);
  EXPECT_EQ(side.metadata().classes, embedded.metadata().classes);
  EXPECT_FALSE(side.metadata().classes.empty());
  EXPECT_EQ(side.metadata().height, embedded.metadata().height);
}

TEST(Detector, DetectsOnTheFixtureImageInEveryLayout) {
  NEED_ASSETS();
  edgedet::Detector det(asset("good.onnx"));
  const cv::Mat bgr = cv::imread(asset("image.png"), cv::IMREAD_COLOR);
  ASSERT_FALSE(bgr.empty());
  const auto dets = det.detect(bgr);
  ASSERT_GT(dets.size(), 0u);
  for (const auto& d : dets) {
    EXPECT_GE(d.box[0], 0);
    EXPECT_LE(d.box[2], bgr.cols);
    EXPECT_LE(d.box[3], bgr.rows);
    EXPECT_EQ(d.class_name, det.metadata().classes.at(d.label));
  }
  // The same image as RGB, and twice in one batch call, gives the same detections.
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  const auto as_rgb = det.detect(rgb, edgedet::Color::RGB);
  const auto batch = det.detect(std::vector<cv::Mat>{bgr, bgr});
  ASSERT_EQ(batch.size(), 2u);
  for (const auto* other : {&as_rgb, &batch[0], &batch[1]}) {
    ASSERT_EQ(other->size(), dets.size());
    for (size_t i = 0; i < dets.size(); ++i) {
      EXPECT_EQ((*other)[i].label, dets[i].label);
      EXPECT_FLOAT_EQ((*other)[i].score, dets[i].score);
      EXPECT_EQ((*other)[i].box, dets[i].box);
    }
  }
}

TEST(Detector, BadImagesAndBatchesAreErrorsNotCrashes) {
  NEED_ASSETS();
  edgedet::Detector det(asset("good.onnx"));
  EXPECT_THROW(det.detect(cv::Mat()), edgedet::Error);
  EXPECT_THROW(det.detect(cv::Mat(10, 10, CV_8UC2)), edgedet::Error);
  EXPECT_THROW(det.raw(nullptr, 1), edgedet::Error);
  std::vector<uint8_t> buf(static_cast<size_t>(det.metadata().height) * det.metadata().width * 3 * (det.batch_size() + 1));
  EXPECT_THROW(det.raw(buf.data(), det.batch_size() + 1), edgedet::Error);
  EXPECT_TRUE(det.detect(std::vector<cv::Mat>{}).empty());
  // A black image: the contract still holds (a count within K, zero rows past it). Whether the model finds
  // anything in black is the model's business: a better-trained fixture found 2 boxes at score 0.05.
  const auto raw = det.raw(buf.data(), 1);
  ASSERT_GT(raw.max_dets, 0);
  const int n = raw.num_dets.at(0);
  EXPECT_GE(n, 0);
  EXPECT_LE(n, raw.max_dets);
  for (int i = n; i < raw.max_dets; ++i) EXPECT_EQ(raw.scores.at(static_cast<size_t>(i)), 0.0f) << i;
}

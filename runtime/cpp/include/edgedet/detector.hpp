// edgedet C++ runtime: the same engine contract, metadata and detections as edgedet.runtime.Detector.
//
//   edgedet::Detector det("model.onnx");          // OpenVINO on the CPU; model.plan runs on TensorRT
//   for (const auto& d : det.detect(cv::imread("street.jpg")))   // BGR, as OpenCV reads it
//       std::cout << d.class_name << " " << d.score << "\n";
//
// Host work is resize only (stretch or letterbox, as the metadata says) into the backend's preallocated
// input buffer; the graph casts and normalises. Boxes come back in original-image pixels.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "edgedet/metadata.hpp"

namespace edgedet {

//! Every failure of the runtime: a one-line message naming the file or input at fault.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Detection {
  std::array<float, 4> box;  //!< x1, y1, x2, y2 in original-image pixels
  float score;
  int label;               //!< 0-based index into metadata().classes
  std::string class_name;  //!< the class's name, or the label as text when the metadata has no names
};

//! Channel order of the images given to detect(): OpenCV reads BGR, most other sources give RGB.
enum class Color { BGR, RGB };

struct Options {
  std::string backend = "auto";  //!< auto (by suffix: .onnx → openvino, .plan/.engine/.trt → tensorrt), openvino, tensorrt
  int device = 0;                //!< CUDA ordinal (TensorRT)
  int threads = 0;               //!< CPU inference threads (OpenVINO); 0: the backend's default
};

//! The four contract tensors of one batch, copied out of the backend.
struct RawOutputs {
  int batch = 0;
  int max_dets = 0;               //!< K
  std::vector<int32_t> num_dets;  //!< [batch]
  std::vector<float> boxes;       //!< [batch, K, 4] network pixels
  std::vector<float> scores;      //!< [batch, K]
  std::vector<int32_t> labels;    //!< [batch, K]
};

//! Milliseconds spent in the last detect() call, host work apart from the backend's inference call.
struct Timing {
  double preprocess_ms = 0;
  double inference_ms = 0;
  double postprocess_ms = 0;
};

namespace detail {
class Backend;
}

//! Not thread-safe: one Detector per thread (or serialised calls); it owns one inference request and buffer.
class Detector {
 public:
  //! Loads the engine and its metadata (the <stem>.json sidecar, else the ONNX metadata_props, else the
  //! engine's own shapes with a warning on stderr). Throws edgedet::Error.
  explicit Detector(const std::string& path, const Options& options = {});
  ~Detector();
  Detector(Detector&&) noexcept;
  Detector& operator=(Detector&&) noexcept;
  Detector(const Detector&) = delete;
  Detector& operator=(const Detector&) = delete;

  //! Detections of one image (8- or 16-bit; 1, 3 or 4 channels), in its own pixels.
  std::vector<Detection> detect(const cv::Mat& image, Color color = Color::BGR);
  //! Detections of each image, run in batches of batch_size().
  std::vector<std::vector<Detection>> detect(const std::vector<cv::Mat>& images, Color color = Color::BGR);
  //! The contract tensors for `batch` already-resized RGB images, uint8 NHWC, contiguous.
  RawOutputs raw(const uint8_t* images, int batch);

  const Metadata& metadata() const;
  const std::string& backend() const;  //!< "openvino" or "tensorrt"
  const std::string& path() const;
  int batch_size() const;               //!< the most images one inference call takes
  bool dynamic_batch() const;
  int max_detections() const;           //!< K: the most detections one image can get
  const Timing& last_timing() const;
  std::string class_name(int label) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace edgedet

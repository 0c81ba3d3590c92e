// The DeepStream nvinfer bounding-box parser's logic, kept free of DeepStream (and of OpenCV and the backends)
// so that it builds and is tested everywhere; deepstream/nvdsinfer_edgedet.cpp only converts nvinfer's types.
//
// nvinfer calls the parser once per frame with that frame's slice of every output (dims without the batch), in
// any order. The engine contract per frame: num_dets int32 [1], boxes float32 [K, 4] (x1, y1, x2, y2 in network
// input pixels), scores float32 [K] (best first), labels int32 [K] (0-based); the first num_dets rows are valid.
#pragma once

#include <string>
#include <vector>

namespace edgedet::nvinfer {

enum class DataType { Float32, Int32, Other };

//! One output of one frame: `data` points at dims' product elements of `dtype`.
struct Layer {
  std::string name;
  const void* data = nullptr;
  DataType dtype = DataType::Other;
  std::vector<int> dims;
};

//! nvinfer's NvDsInferParseDetectionParams: nvinfer sizes the threshold vector to num_classes_configured.
struct Params {
  unsigned num_classes_configured = 0;
  std::vector<float> per_class_precluster_threshold;
};

//! A detection as nvinfer wants it, in network input pixels (nvinfer maps it back to the frame itself).
struct Object {
  unsigned class_id = 0;
  float left = 0, top = 0, width = 0, height = 0, confidence = 0;
};

//! Appends the frame's detections to `out`, in engine order. Rows are dropped whose label is outside
//! 0..num_classes_configured-1 or whose score is not >= the class's threshold (no threshold for the class: 0;
//! a NaN score never passes). num_dets is clamped to 0..K, as the C++ Detector does, so a bad count cannot read
//! past the outputs. Returns false with a one-line `error` (and `out` untouched) when a layer is missing or its
//! type or shape is not the contract's.
bool parse(const std::vector<Layer>& layers, const Params& params, std::vector<Object>& out, std::string& error);

}  // namespace edgedet::nvinfer

// The nvinfer parser's logic over plain arrays (see nvinfer_parse.hpp): find the contract's four outputs by name,
// refuse any whose type or shape is not the contract's (a wrong engine would otherwise pair boxes with another
// row's scores, or read past a buffer), and turn the valid rows into nvinfer's left/top/width/height objects.
#include "edgedet/nvinfer_parse.hpp"

#include <algorithm>
#include <cstdint>

namespace edgedet::nvinfer {
namespace {

//! "float32 [3, 4]", "int32 [1]" or "[3, 4] of another type".
std::string describe(const Layer& l) {
  std::string dims = "[";
  for (size_t i = 0; i < l.dims.size(); ++i) dims += (i ? ", " : "") + std::to_string(l.dims[i]);
  dims += "]";
  switch (l.dtype) {
    case DataType::Float32: return "float32 " + dims;
    case DataType::Int32: return "int32 " + dims;
    case DataType::Other: break;
  }
  return dims + " of a type other than float32 and int32";
}

const Layer* find(const std::vector<Layer>& layers, const std::string& name, std::string& error) {
  const auto it = std::find_if(layers.begin(), layers.end(), [&](const Layer& l) { return l.name == name; });
  if (it != layers.end()) return &*it;
  std::string got;
  for (const auto& l : layers) got += (got.empty() ? "" : ", ") + l.name;
  error = "no output layer named '" + name + "' (got: " + (got.empty() ? "none" : got) + "): not an edgedet export";
  return nullptr;
}

//! True when `l` is `dtype` of exactly `dims` (all >= 0) with data behind it; else a one-line `error`.
bool check(const Layer& l, DataType dtype, const std::vector<int>& dims, const std::string& contract,
           std::string& error) {
  const bool known = std::all_of(dims.begin(), dims.end(), [](int d) { return d >= 0; });
  if (l.dtype != dtype || l.dims != dims || !known) {
    error = "output '" + l.name + "' is " + describe(l) + ", not " + contract + " (the edgedet engine contract)";
    return false;
  }
  const bool empty = std::find(dims.begin(), dims.end(), 0) != dims.end();
  if (!l.data && !empty) {
    error = "output '" + l.name + "' has no data";
    return false;
  }
  return true;
}

}  // namespace

bool parse(const std::vector<Layer>& layers, const Params& params, std::vector<Object>& out, std::string& error) {
  const Layer *num = find(layers, "num_dets", error), *boxes = num ? find(layers, "boxes", error) : nullptr;
  const Layer *scores = boxes ? find(layers, "scores", error) : nullptr;
  const Layer* labels = scores ? find(layers, "labels", error) : nullptr;
  if (!labels) return false;
  const int K = boxes->dims.size() == 2 ? boxes->dims[0] : -1;
  const std::string with_k = " with K = " + std::to_string(K) + " (boxes' rows)";
  if (!check(*num, DataType::Int32, {1}, "int32 [1]", error) ||
      !check(*boxes, DataType::Float32, {K, 4}, "float32 [K, 4]", error) ||
      !check(*scores, DataType::Float32, {K}, "float32 [K]" + with_k, error) ||
      !check(*labels, DataType::Int32, {K}, "int32 [K]" + with_k, error))
    return false;

  const int n = std::clamp(*static_cast<const int32_t*>(num->data), 0, K);
  const auto* box = static_cast<const float*>(boxes->data);
  const auto* score = static_cast<const float*>(scores->data);
  const auto* label = static_cast<const int32_t*>(labels->data);
  const auto& thresholds = params.per_class_precluster_threshold;
  for (int i = 0; i < n; ++i) {
    if (label[i] < 0 || static_cast<unsigned>(label[i]) >= params.num_classes_configured) continue;
    const auto c = static_cast<unsigned>(label[i]);
    if (!(score[i] >= (c < thresholds.size() ? thresholds[c] : 0.0f))) continue;
    const float* b = box + 4 * i;
    out.push_back({c, b[0], b[1], b[2] - b[0], b[3] - b[1], score[i]});
  }
  return true;
}

}  // namespace edgedet::nvinfer

// libnvdsinfer_edgedet.so: DeepStream nvinfer's bounding-box parser for edgedet exports (parse-bbox-func-name=
// NvDsInferParseEdgedet). NMS is inside the engine, so this only converts nvinfer's layers to the DeepStream-free
// core (src/nvinfer_parse.cpp, where the rules and their tests live) and its objects back.
#include <cstdio>
#include <exception>

#include "edgedet/nvinfer_parse.hpp"
#include "nvdsinfer_custom_impl.h"

namespace {

edgedet::nvinfer::Layer to_layer(const NvDsInferLayerInfo& info) {
  edgedet::nvinfer::Layer layer;
  layer.name = info.layerName ? info.layerName : "";
  layer.data = info.buffer;
  layer.dtype = info.dataType == FLOAT   ? edgedet::nvinfer::DataType::Float32
                : info.dataType == INT32 ? edgedet::nvinfer::DataType::Int32
                                         : edgedet::nvinfer::DataType::Other;
  const unsigned rank = info.inferDims.numDims < NVDSINFER_MAX_DIMS ? info.inferDims.numDims : NVDSINFER_MAX_DIMS;
  for (unsigned i = 0; i < rank; ++i) layer.dims.push_back(static_cast<int>(info.inferDims.d[i]));
  return layer;
}

bool parse(std::vector<NvDsInferLayerInfo> const& outputLayersInfo, NvDsInferParseDetectionParams const& params,
           std::vector<NvDsInferObjectDetectionInfo>& objectList) {
  std::vector<edgedet::nvinfer::Layer> layers;
  for (const auto& info : outputLayersInfo) layers.push_back(to_layer(info));
  std::vector<edgedet::nvinfer::Object> objects;
  std::string error;
  if (!edgedet::nvinfer::parse(layers, {params.numClassesConfigured, params.perClassPreclusterThreshold}, objects,
                               error)) {
    std::fprintf(stderr, "edgedet nvinfer parser: %s\n", error.c_str());
    return false;
  }
  for (const auto& o : objects) {
    NvDsInferObjectDetectionInfo info{};
    info.classId = o.class_id;
    info.left = o.left;
    info.top = o.top;
    info.width = o.width;
    info.height = o.height;
    info.detectionConfidence = o.confidence;
    objectList.push_back(info);
  }
  return true;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) bool NvDsInferParseEdgedet(
    std::vector<NvDsInferLayerInfo> const& outputLayersInfo, NvDsInferNetworkInfo const& /*networkInfo*/,
    NvDsInferParseDetectionParams const& detectionParams, std::vector<NvDsInferObjectDetectionInfo>& objectList) {
  try {  // nothing may unwind into nvinfer's C caller
    return parse(outputLayersInfo, detectionParams, objectList);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "edgedet nvinfer parser: %s\n", e.what());
    return false;
  }
}

CHECK_CUSTOM_PARSE_FUNC_PROTOTYPE(NvDsInferParseEdgedet);

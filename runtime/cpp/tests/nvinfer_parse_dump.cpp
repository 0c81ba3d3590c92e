// Test helper: runs the nvinfer parser's core on one frame's outputs saved by tests/test_cpp_runtime.py, so the
// Python side can check it against Detector.raw on real exports.  nvinfer_parse_dump DIR
// DIR/layers.json: {"layers": [{"name", "dtype": "float32"|"int32"|other, "dims": [..], "file"}, ..],
// "num_classes_configured": N, "per_class_precluster_threshold": [..]}; each file is raw little-endian data.
// Prints the objects as a JSON list, or exits 1 with one line on a parse error.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "edgedet/nvinfer_parse.hpp"

namespace nv = edgedet::nvinfer;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: nvinfer_parse_dump DIR\n";
    return 1;
  }
  try {
    const std::filesystem::path dir = argv[1];
    const auto spec = nlohmann::json::parse(std::ifstream(dir / "layers.json"));
    std::vector<std::vector<char>> buffers;  // each from new[]: aligned for float and int32
    std::vector<nv::Layer> layers;
    for (const auto& l : spec.at("layers")) {
      std::ifstream file(dir / l.at("file").get<std::string>(), std::ios::binary);
      if (!file) throw std::runtime_error("cannot read " + l.at("file").get<std::string>());
      buffers.emplace_back(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
      const auto dtype = l.at("dtype").get<std::string>();
      layers.push_back({l.at("name"), buffers.back().data(),
                        dtype == "float32" ? nv::DataType::Float32
                        : dtype == "int32" ? nv::DataType::Int32
                                           : nv::DataType::Other,
                        l.at("dims").get<std::vector<int>>()});
    }
    const nv::Params params{spec.at("num_classes_configured"), spec.at("per_class_precluster_threshold")};
    std::vector<nv::Object> objects;
    std::string error;
    if (!nv::parse(layers, params, objects, error)) {
      std::cerr << "error: " << error << "\n";
      return 1;
    }
    auto out = nlohmann::json::array();
    for (const auto& o : objects)
      out.push_back({{"class_id", o.class_id}, {"left", o.left}, {"top", o.top}, {"width", o.width},
                     {"height", o.height}, {"confidence", o.confidence}});
    std::cout << out.dump() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

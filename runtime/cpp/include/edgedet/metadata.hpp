// The metadata every edgedet export carries (a <stem>.json sidecar and the ONNX metadata_props key "edgedet"),
// read with the same rules as edgedet/runtime/metadata.py.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace edgedet {

constexpr int kSchemaVersion = 1;  //!< the newest metadata schema this runtime reads

struct Metadata {
  int height = 0;  //!< network input size
  int width = 0;
  std::string resize = "stretch";          //!< "stretch" (SSD) or "letterbox" (Faster R-CNN)
  std::array<uint8_t, 3> pad_value{0, 0, 0};  //!< RGB fill of letterbox padding
  std::vector<std::string> classes;
  std::vector<int> category_ids;  //!< COCO category id of each class (1..N when the metadata has none)
  bool dynamic_batch = false;
  int batch_size = 1;    //!< fixed batch, or the most a dynamic engine takes
  std::string model;     //!< zoo name, "" when unknown
  std::string precision;  //!< fp32, fp16, int8, "" when unknown
  std::string source;    //!< where it was read from (sidecar path, "<onnx> metadata_props", or "engine shapes")
};

//! "model.fp16.onnx" → "model.fp16.json"; "model.plan" → "model.json".
std::string sidecar_path(const std::string& artifact);

//! Parses metadata text; throws edgedet::Error naming `source` when it is not JSON, not an object, of a newer
//! schema, or lacks what a Detector needs (input.size [H, W], classes).
Metadata parse_metadata(const std::string& text, const std::string& source);

//! The sidecar's text when the sidecar exists.
std::optional<std::string> read_sidecar(const std::string& artifact);

}  // namespace edgedet

// One small interface over the inference SDKs; each backend is compiled only where its SDK is found.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "edgedet/detector.hpp"

namespace edgedet::detail {

//! "dir/model.onnx" → "model.onnx": how messages name an engine.
inline std::string file_name(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

//! What the engine itself declares about its input and outputs (after the contract check).
struct EngineShape {
  int height = 0;
  int width = 0;
  int fixed_batch = 0;  //!< 0: the batch dimension is dynamic
  int max_batch = 0;    //!< dynamic engines: the most the engine takes (TensorRT profile), 0 when unbounded
  int min_batch = 1;    //!< dynamic engines: the least the engine takes (TensorRT profile)
  int max_dets = 0;     //!< K of boxes [B, K, 4]
};

//! Pointers into the backend's output buffers, `batch` rows each; valid until the next infer().
struct OutputView {
  const int32_t* num_dets = nullptr;  //!< [batch] (the contract's [batch, 1])
  const float* boxes = nullptr;       //!< [batch, K, 4]
  const float* scores = nullptr;      //!< [batch, K]
  const int32_t* labels = nullptr;    //!< [batch, K]
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  virtual EngineShape shape() const = 0;
  //! Metadata embedded in the engine file (ONNX metadata_props "edgedet"), where the backend exposes it.
  virtual std::optional<std::string> embedded_metadata() const { return std::nullopt; }
  //! Allocates input and output buffers for up to `max_batch` images; called once before input()/infer().
  virtual void reserve(int max_batch) = 0;
  //! The host buffer the caller writes resized RGB images into: uint8 [max_batch, H, W, 3], reused every call.
  virtual uint8_t* input() = 0;
  //! Runs the first `batch` images of input() (batch ≤ max_batch); throws edgedet::Error.
  virtual OutputView infer(int batch) = 0;
};

std::unique_ptr<Backend> make_openvino_backend(const std::string& path, const Options& options);
std::unique_ptr<Backend> make_tensorrt_backend(const std::string& path, const Options& options);

}  // namespace edgedet::detail

// A TensorRT plan run as edgedet/runtime/trt_engine.py runs it, with the contract check of trt_contract.py
// (same one-line messages): name-based I/O only, so one source serves TensorRT 10.x (JetPack 6) and 11.x (the
// bindings API removed in 10 is never used); one pinned host and one device buffer per tensor, sized once by
// reserve() and reused on one stream; fixed engines and profiles whose minimum exceeds the batch run extra
// rows whose outputs are dropped.

// TensorRT's headers warn about themselves under -Wall -Wextra (11.x: deprecated plugin and allocator interfaces
// used inline; 10.x: unused parameters of default plugin methods); that is silenced for them alone.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include <NvInfer.h>
#include <NvInferPlugin.h>
#pragma GCC diagnostic pop
#include <cuda_runtime_api.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <vector>

#include "backend.hpp"

namespace edgedet::detail {
namespace {

using nvinfer1::DataType;
using nvinfer1::Dims;

// TensorRT wants a logger that outlives every runtime, and the plugin registry keeps it too: one per process.
class Logger final : public nvinfer1::ILogger {
 public:
  void log(Severity severity, const char* msg) noexcept override {
    if (severity > Severity::kWARNING && !verbose_) return;  // INFO and VERBOSE
    std::fprintf(stderr, "edgedet: TensorRT: %s\n", msg);
  }

 private:
  const bool verbose_ = [] {
    const char* v = std::getenv("EDGEDET_VERBOSE");
    return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
  }();
};

Logger& logger() {
  static Logger* const instance = new Logger;  // never freed, so nothing TensorRT holds can outlive it
  return *instance;
}

void init_plugins() {  // registers EfficientNMS_TRT and the other standard plugins, once per process
  static std::once_flag once;
  std::call_once(once, [] {
    if (!initLibNvInferPlugins(&logger(), ""))
      std::fprintf(stderr, "edgedet: TensorRT: the plugin library did not initialise; engines with plugins will not load\n");
  });
}

// MAJOR.MINOR of the TensorRT library loaded at run time. TensorRT 10 and 11 encode major*10000 + minor*100 +
// patch (NvInferRuntimeBase.h), TensorRT 8 major*1000 + minor*100 + patch.
std::string library_version() {
  const int v = getInferLibVersion();
  const int major = v >= 10000 ? v / 10000 : v / 1000;
  const int minor = v >= 10000 ? v / 100 % 100 : v / 100 % 10;
  return std::to_string(major) + "." + std::to_string(minor);
}

// numpy's name of a TensorRT type, as trt_contract.py reports it; others keep TensorRT's name, lower-cased.
std::string dtype_name(DataType type) {
  switch (type) {
    case DataType::kFLOAT: return "float32";
    case DataType::kHALF: return "float16";
    case DataType::kINT8: return "int8";
    case DataType::kINT32: return "int32";
    case DataType::kINT64: return "int64";
    case DataType::kUINT8: return "uint8";
    case DataType::kBOOL: return "bool";
    case DataType::kFP8: return "fp8";
    case DataType::kBF16: return "bf16";
    case DataType::kINT4: return "int4";
    default: return "datatype " + std::to_string(static_cast<int>(type));  // e.g. TensorRT 11's kFP4, kE8M0
  }
}

std::string dims_text(const Dims& dims) {  // as Python prints list(shape): [-1, 640, 640, 3]
  std::string text = "[";
  for (int32_t i = 0; i < dims.nbDims; ++i) text += (i ? ", " : "") + std::to_string(dims.d[i]);
  return text + "]";
}

std::string repr(const std::string& name) { return "'" + name + "'"; }

std::string names_text(const std::vector<std::string>& names) {  // as Python prints a list of str
  std::string text = "[";
  for (size_t i = 0; i < names.size(); ++i) text += (i ? ", " : "") + repr(names[i]);
  return text + "]";
}

struct Io {
  std::string name;
  Dims shape;
  std::string dtype;
};

// The contract's outputs in OutputView's order; a tail dimension of 0 stands for K.
struct OutputSpec {
  const char* name;
  const char* dtype;
  std::vector<int64_t> tail;
  const char* want;
};
const std::array<OutputSpec, 4> kOutputs = {{{"num_dets", "int32", {1}, "B, 1"},
                                             {"boxes", "float32", {0, 4}, "B, K, 4"},
                                             {"scores", "float32", {0}, "B, K"},
                                             {"labels", "int32", {0}, "B, K"}}};

struct Layout {
  std::string input;
  bool float_nchw = false;  // --input-format float-nchw: float32 [B, 3, H, W] RGB 0..255 (DeepStream's input)
  bool dynamic = false;
  EngineShape shape;
  std::array<size_t, 4> row_elems{};  // elements per image of each output (all 4 bytes wide)
};

// check_contract of trt_contract.py over the engine's own I/O description.
Layout check_contract(const nvinfer1::ICudaEngine& engine, const std::string& source) {
  std::vector<Io> inputs, outputs;
  for (int32_t i = 0; i < engine.getNbIOTensors(); ++i) {
    const char* name = engine.getIOTensorName(i);
    Io io{name, engine.getTensorShape(name), dtype_name(engine.getTensorDataType(name))};
    (engine.getTensorIOMode(name) == nvinfer1::TensorIOMode::kINPUT ? inputs : outputs).push_back(io);
  }
  if (inputs.size() != 1) {
    std::string names;
    for (const auto& t : inputs) names += (names.empty() ? "" : ", ") + t.name;
    throw Error(source + " has " + std::to_string(inputs.size()) + " inputs (" + (names.empty() ? "none" : names) +
                "); the engine contract has one, uint8 [B, H, W, 3]");
  }
  const Io& in = inputs[0];
  const int64_t* d = in.shape.d;
  const bool nhwc = in.dtype == "uint8" && in.shape.nbDims == 4 && d[3] == 3;
  const bool nchw = in.dtype == "float32" && in.shape.nbDims == 4 && d[1] == 3;
  if (!nhwc && !nchw)
    throw Error(source + " input " + repr(in.name) + " is " + in.dtype + " " + dims_text(in.shape) +
                ", not uint8 [B, H, W, 3] or float32 [B, 3, H, W] (the engine contract); was it built from an edgedet "
                "export?");
  const int64_t height = nhwc ? d[1] : d[2], width = nhwc ? d[2] : d[3];
  if (height <= 0 || width <= 0)
    throw Error(source + " input " + repr(in.name) + " has a dynamic height or width " + dims_text(in.shape) +
                "; the engine contract fixes H x W per export");
  Layout lay;
  lay.input = in.name;
  lay.float_nchw = nchw;
  lay.dynamic = d[0] < 0;
  int64_t lo = d[0], hi = d[0];
  if (lay.dynamic) {
    const Dims mn = engine.getProfileShape(in.name.c_str(), 0, nvinfer1::OptProfileSelector::kMIN);
    const Dims mx = engine.getProfileShape(in.name.c_str(), 0, nvinfer1::OptProfileSelector::kMAX);
    if (mn.nbDims < 1 || mx.nbDims < 1)
      throw Error(source + " input " + repr(in.name) + " has a dynamic batch but no optimization profile");
    lo = mn.d[0];
    hi = mx.d[0];
  }
  if (lo < 1 || lo > hi || hi > std::numeric_limits<int>::max())
    throw Error(source + " input " + repr(in.name) + " has an unusable batch range " + std::to_string(lo) + ".." +
                std::to_string(hi));

  std::vector<std::string> got, want;
  for (const auto& t : outputs) got.push_back(t.name);
  for (const auto& spec : kOutputs) want.push_back(spec.name);
  std::sort(got.begin(), got.end());
  std::vector<std::string> want_sorted = want;
  std::sort(want_sorted.begin(), want_sorted.end());
  if (got != want_sorted)
    throw Error(source + " outputs " + names_text(got) + ", not the engine contract's " + names_text(want));
  auto output = [&](const std::string& name) -> const Io& {
    return *std::find_if(outputs.begin(), outputs.end(), [&](const Io& t) { return t.name == name; });
  };
  const Io& scores = output("scores");
  if (scores.shape.nbDims != 2 || scores.shape.d[1] <= 0)
    throw Error(source + " output 'scores' is " + scores.dtype + " " + dims_text(scores.shape) +
                ", not float32 [B, K] with a static K (the engine contract)");
  const int64_t k = scores.shape.d[1];
  for (size_t i = 0; i < kOutputs.size(); ++i) {
    const OutputSpec& spec = kOutputs[i];
    const Io& t = output(spec.name);
    bool ok = t.dtype == spec.dtype && t.shape.nbDims == 1 + static_cast<int32_t>(spec.tail.size()) &&
              (t.shape.d[0] == hi || (lay.dynamic && t.shape.d[0] == -1));
    size_t elems = 1;
    for (size_t j = 0; ok && j < spec.tail.size(); ++j) {
      const int64_t dim = spec.tail[j] ? spec.tail[j] : k;
      ok = t.shape.d[j + 1] == dim;
      elems *= static_cast<size_t>(dim);
    }
    if (!ok)
      throw Error(source + " output " + repr(t.name) + " is " + t.dtype + " " + dims_text(t.shape) + ", not " +
                  spec.dtype + " [" + spec.want + "] (the engine contract, with one static K for all outputs)");
    lay.row_elems[i] = elems;
  }
  lay.shape.height = static_cast<int>(height);
  lay.shape.width = static_cast<int>(width);
  lay.shape.fixed_batch = lay.dynamic ? 0 : static_cast<int>(hi);
  lay.shape.min_batch = static_cast<int>(lo);  // fixed engines: min = max = the fixed batch, as in trt_contract.py
  lay.shape.max_batch = static_cast<int>(hi);
  lay.shape.max_dets = static_cast<int>(k);
  return lay;
}

class TensorRtBackend final : public Backend {
 public:
  TensorRtBackend(const std::string& path, const Options& options)
      : path_(path), name_(file_name(path)), device_(options.device) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) throw Error("engine not found: " + path);
    std::string suffix = std::filesystem::path(path).extension().string();
    for (char& c : suffix) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (suffix == ".onnx")
      throw Error(name_ + " is an ONNX file; build a TensorRT plan first with `edgedet build --engine " + path + "`");
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in) throw Error("engine not found: " + path);
    std::vector<char> plan(static_cast<size_t>(std::max<std::streamoff>(0, in.tellg())));
    in.seekg(0);
    if (!in.read(plan.data(), static_cast<std::streamsize>(plan.size()))) throw Error("engine not found: " + path);

    init_plugins();
    const DeviceScope scope(*this);  // deserialize, allocate and bind on the chosen device
    runtime_.reset(nvinfer1::createInferRuntime(logger()));
    if (!runtime_) throw Error("cannot create a TensorRT runtime for " + path_ + " (see the TensorRT log)");
    engine_.reset(runtime_->deserializeCudaEngine(plan.data(), plan.size()));
    if (!engine_)
      throw Error("cannot load " + path_ + ": built with another TensorRT version or GPU (this is TensorRT " +
                  library_version() + "); rebuild it on this device with `edgedet build`");
    layout_ = check_contract(*engine_, path_);
  }

  ~TensorRtBackend() override {  // no throwing here: errors while freeing are ignored
    int previous = -1;
    if (cudaGetDevice(&previous) != cudaSuccess) previous = -1;
    cudaSetDevice(device_);
    if (stream_) cudaStreamSynchronize(stream_);  // no copy or kernel may still use the buffers
    context_.reset();  // TensorRT objects before the memory they use
    engine_.reset();
    runtime_.reset();
    for (Buffer& b : buffers_) {
      if (b.device) cudaFree(b.device);
      if (b.host) cudaFreeHost(b.host);
    }
    if (stream_) cudaStreamDestroy(stream_);
    if (previous >= 0) cudaSetDevice(previous);
  }

  TensorRtBackend(const TensorRtBackend&) = delete;
  TensorRtBackend& operator=(const TensorRtBackend&) = delete;

  const char* name() const override { return "tensorrt"; }
  EngineShape shape() const override { return layout_.shape; }

  void reserve(int max_batch) override {
    const EngineShape& s = layout_.shape;
    if (context_) throw Error("TensorRT engine " + name_ + ": reserve() called twice");
    if (max_batch < 1 || max_batch > s.max_batch) throw batch_error(max_batch, s.max_batch);
    const DeviceScope scope(*this);
    context_.reset(engine_->createExecutionContext());
    if (!context_) throw Error("cannot create a TensorRT execution context for " + path_ + " (out of GPU memory?)");
    check(cudaStreamCreate(&stream_), "cudaStreamCreate");
    limit_ = max_batch;
    capacity_ = layout_.dynamic ? std::max(max_batch, s.min_batch) : s.fixed_batch;  // the rows a run may need
    const size_t pixels = static_cast<size_t>(s.height) * s.width * 3;
    buffers_[0] = {layout_.input, pixels * (layout_.float_nchw ? sizeof(float) : 1)};
    if (layout_.float_nchw) staging_.assign(pixels * capacity_, 0);  // what the Detector resizes into
    for (size_t i = 0; i < kOutputs.size(); ++i) buffers_[i + 1] = {kOutputs[i].name, layout_.row_elems[i] * 4};
    for (Buffer& b : buffers_) {
      const size_t bytes = b.row_bytes * capacity_;
      check(cudaMalloc(&b.device, bytes), "cudaMalloc");
      check(cudaMallocHost(&b.host, bytes), "cudaMallocHost");
      if (!context_->setTensorAddress(b.name.c_str(), b.device))
        throw Error("TensorRT refused the buffer for " + repr(b.name) + " of " + path_);
    }
    std::memset(buffers_[0].host, 0, buffers_[0].row_bytes * capacity_);  // padding rows start out defined
  }

  uint8_t* input() override {
    return layout_.float_nchw ? staging_.data() : static_cast<uint8_t*>(buffers_[0].host);
  }

  OutputView infer(int batch) override {
    if (!context_) throw Error("TensorRT engine " + name_ + ": infer() before reserve()");
    if (batch < 1 || batch > limit_)
      throw Error("TensorRT engine " + name_ + ": batch " + std::to_string(batch) + " outside 1.." + std::to_string(limit_));
    // A fixed-batch engine (or a profile whose minimum exceeds the batch) runs its full batch; rows past `batch`
    // hold stale bytes from earlier calls and their outputs are dropped.
    const int run = layout_.dynamic ? std::max(batch, layout_.shape.min_batch) : layout_.shape.fixed_batch;
    const DeviceScope scope(*this);
    if (layout_.dynamic && run != bound_) {
      Dims dims{};
      dims.nbDims = 4;
      const int64_t h = layout_.shape.height, w = layout_.shape.width;
      dims.d[0] = run;
      dims.d[1] = layout_.float_nchw ? 3 : h;
      dims.d[2] = layout_.float_nchw ? h : w;
      dims.d[3] = layout_.float_nchw ? w : 3;
      if (!context_->setInputShape(layout_.input.c_str(), dims))
        throw Error("TensorRT refused batch " + std::to_string(run) + " for " + name_);
      bound_ = run;
    }
    const Buffer& in = buffers_[0];
    if (layout_.float_nchw) to_float_nchw(batch);
    check(cudaMemcpyAsync(in.device, in.host, in.row_bytes * run, cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync");
    if (!context_->enqueueV3(stream_)) throw Error("TensorRT failed to run " + name_ + " (see the TensorRT log)");
    for (size_t i = 1; i < buffers_.size(); ++i) {  // the first `batch` rows only
      const Buffer& b = buffers_[i];
      check(cudaMemcpyAsync(b.host, b.device, b.row_bytes * batch, cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync");
    }
    check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    OutputView view;
    view.num_dets = static_cast<const int32_t*>(buffers_[1].host);
    view.boxes = static_cast<const float*>(buffers_[2].host);
    view.scores = static_cast<const float*>(buffers_[3].host);
    view.labels = static_cast<const int32_t*>(buffers_[4].host);
    return view;
  }

 private:
  struct Buffer {
    std::string name;
    size_t row_bytes = 0;  // per image
    void* device = nullptr;
    void* host = nullptr;  // pinned
  };

  //! The engine's device for one call, and the caller's device back afterwards (as the Python runtime's
  //! activate/deactivate do): an application using CUDA on another GPU keeps its current device.
  class DeviceScope {
   public:
    explicit DeviceScope(const TensorRtBackend& b) {
      if (cudaGetDevice(&previous_) != cudaSuccess) previous_ = -1;
      const cudaError_t status = cudaSetDevice(b.device_);
      if (status != cudaSuccess)
        throw Error("cannot use CUDA device " + std::to_string(b.device_) + " for " + b.path_ + ": " + cudaGetErrorString(status));
    }
    ~DeviceScope() {
      if (previous_ >= 0) cudaSetDevice(previous_);
    }
    DeviceScope(const DeviceScope&) = delete;
    DeviceScope& operator=(const DeviceScope&) = delete;

   private:
    int previous_ = -1;
  };

  //! uint8 [B, H, W, 3] staging rows → float32 [B, 3, H, W] in the pinned input buffer (values 0..255).
  void to_float_nchw(int batch) {
    const size_t plane = static_cast<size_t>(layout_.shape.height) * layout_.shape.width;
    float* dst = static_cast<float*>(buffers_[0].host);
    for (size_t b = 0; b < static_cast<size_t>(batch); ++b)
      for (size_t p = 0; p < plane; ++p)
        for (size_t c = 0; c < 3; ++c) dst[(b * 3 + c) * plane + p] = staging_[(b * plane + p) * 3 + c];
  }

  void check(cudaError_t status, const char* call) const {
    if (status != cudaSuccess) throw Error(std::string(call) + " failed for " + path_ + ": " + cudaGetErrorString(status));
  }

  Error batch_error(int batch, int most) const {  // check_images' message
    return Error("batch of " + std::to_string(batch) + " images; this engine takes 1 to " + std::to_string(most) +
                 " per call (split the batch, or rebuild the engine with a larger max batch)");
  }

  std::string path_;
  std::string name_;
  int device_ = 0;
  // Declared in this order so that, should the constructor throw, the engine goes before the runtime.
  std::unique_ptr<nvinfer1::IRuntime> runtime_;
  std::unique_ptr<nvinfer1::ICudaEngine> engine_;
  std::unique_ptr<nvinfer1::IExecutionContext> context_;
  Layout layout_;
  std::array<Buffer, 5> buffers_;  // the input, then the outputs in OutputView's order
  std::vector<uint8_t> staging_;   // float-nchw engines: the uint8 NHWC rows input() hands out
  cudaStream_t stream_ = nullptr;
  int limit_ = 0;     // the most images infer() takes (reserve's max_batch)
  int capacity_ = 0;  // rows each buffer holds: limit_, or more where the engine runs more
  int bound_ = 0;     // the batch the dynamic input shape is set to
};

}  // namespace

std::unique_ptr<Backend> make_tensorrt_backend(const std::string& path, const Options& options) {
  return std::make_unique<TensorRtBackend>(path, options);
}

}  // namespace edgedet::detail

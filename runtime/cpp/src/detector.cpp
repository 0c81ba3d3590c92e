// edgedet::Detector: metadata, preprocessing into the backend's buffer, box mapping — the steps of
// edgedet/runtime/detector.py, with the same checks and messages.
#include "edgedet/detector.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "backend.hpp"
#include "edgedet/preprocess.hpp"

namespace edgedet {
namespace {

using Clock = std::chrono::steady_clock;
using detail::file_name;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::string lower_suffix(const std::string& path) {
  const auto slash = path.find_last_of('/');
  const auto dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  std::string s = path.substr(dot);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool is_trt_suffix(const std::string& s) { return s == ".plan" || s == ".engine" || s == ".trt"; }

std::unique_ptr<detail::Backend> open_backend(const std::string& path, const Options& options, std::string& chosen) {
  const std::string suffix = lower_suffix(path);
  if (suffix != ".onnx" && !is_trt_suffix(suffix))
    throw Error("unknown engine type '" + file_name(path) + "': expected .onnx (OpenVINO) or .plan/.engine (TensorRT)");
  if (options.backend != "auto" && options.backend != "openvino" && options.backend != "tensorrt")
    throw Error("backend must be one of auto, openvino, tensorrt, not '" + options.backend + "'");
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw Error("engine not found: " + path);
  if (std::filesystem::file_size(path, ec) == 0)
    throw Error(path + " is empty (an interrupted export or copy?); export it again");
  chosen = options.backend == "auto" ? (is_trt_suffix(suffix) ? "tensorrt" : "openvino") : options.backend;
  if (chosen == "tensorrt" && suffix == ".onnx")
    throw Error(file_name(path) + " is an ONNX file; build a TensorRT plan first with `edgedet build --engine " + path + "`");
  if (chosen == "openvino" && is_trt_suffix(suffix))
    throw Error(file_name(path) + " is a TensorRT plan; openvino runs .onnx files");
  if (chosen == "tensorrt") {
#ifdef EDGEDET_WITH_TENSORRT
    return detail::make_tensorrt_backend(path, options);
#else
    throw Error("this edgedet C++ runtime was built without TensorRT; rebuild it where TensorRT is installed "
                "(cmake -DEDGEDET_TENSORRT=ON -DTENSORRT_ROOT=...)");
#endif
  }
#ifdef EDGEDET_WITH_OPENVINO
  return detail::make_openvino_backend(path, options);
#else
  throw Error("this edgedet C++ runtime was built without OpenVINO; rebuild it with OpenVINO_DIR set");
#endif
}

}  // namespace

struct Detector::Impl {
  std::string path;
  std::string backend_name;
  std::unique_ptr<detail::Backend> backend;
  detail::EngineShape shape;
  Metadata meta;
  Timing timing;
  std::vector<Fit> fits;

  Metadata load_metadata() const {
    if (auto text = read_sidecar(path)) return parse_metadata(*text, sidecar_path(path));
    if (auto text = backend->embedded_metadata()) return parse_metadata(*text, path + " metadata_props");
    std::cerr << "edgedet: warning: no metadata for " << file_name(path) << " (no sidecar JSON, no ONNX metadata_props): "
              << "using the engine's own input size " << shape.height << "x" << shape.width
              << ", stretch resize and numeric class names\n";
    Metadata m;
    m.height = shape.height;
    m.width = shape.width;
    m.dynamic_batch = shape.fixed_batch == 0;
    m.batch_size = shape.fixed_batch ? shape.fixed_batch : std::max(1, shape.max_batch);
    m.source = "engine shapes";
    return m;
  }

  //! A sidecar from another export (another size or batch) would feed the engine the wrong tensor.
  void check_metadata_matches_engine() const {
    const std::string name = file_name(path);
    if (meta.height != shape.height || meta.width != shape.width)
      throw Error(name + ": its metadata says input " + std::to_string(meta.height) + "x" + std::to_string(meta.width) +
                  " but the engine takes " + std::to_string(shape.height) + "x" + std::to_string(shape.width) +
                  ": the sidecar belongs to another export");
    if (shape.fixed_batch && (meta.dynamic_batch || meta.batch_size != shape.fixed_batch))
      throw Error(name + ": its metadata says batch " + std::to_string(meta.batch_size) + (meta.dynamic_batch ? " (dynamic)" : "") +
                  " but the engine takes " + std::to_string(shape.fixed_batch) + ": the sidecar belongs to another export");
    if (!shape.fixed_batch && !meta.dynamic_batch && meta.batch_size != 1)
      throw Error(name + ": its metadata says a fixed batch of " + std::to_string(meta.batch_size) +
                  " but the engine's batch is dynamic: the sidecar belongs to another export");
    if (!shape.fixed_batch && shape.max_batch && meta.batch_size > shape.max_batch)
      throw Error(name + ": its metadata says batch up to " + std::to_string(meta.batch_size) + " but the engine takes at most " +
                  std::to_string(shape.max_batch) + ": the sidecar belongs to another export");
  }

  size_t image_bytes() const { return static_cast<size_t>(meta.height) * meta.width * 3; }

  //! Runs the first `n` images already in the backend's input buffer; fixed-batch engines get the first image
  //! repeated into the unused rows (a copy of a real image, as Python feeds them).
  detail::OutputView run(int n) {
    uint8_t* in = backend->input();
    for (int b = n; b < shape.fixed_batch; ++b) std::memcpy(in + b * image_bytes(), in, image_bytes());
    return backend->infer(n);
  }

  std::vector<std::vector<Detection>> postprocess(const detail::OutputView& out, int n) const {
    std::vector<std::vector<Detection>> all(n);
    const int K = shape.max_dets;
    for (int b = 0; b < n; ++b) {
      const int k = std::clamp(out.num_dets[b], 0, K);
      auto& dets = all[b];
      dets.reserve(k);
      for (int i = 0; i < k; ++i) {
        const int idx = b * K + i;
        const int label = out.labels[idx];
        if (!meta.classes.empty() && (label < 0 || label >= static_cast<int>(meta.classes.size())))
          throw Error(file_name(path) + " returned class " + std::to_string(label) + " but its metadata lists " +
                      std::to_string(meta.classes.size()) + " classes: the sidecar belongs to another export");
        dets.push_back({fits[b].to_original(out.boxes + 4 * idx), out.scores[idx], label, name_of(label)});
      }
    }
    return all;
  }

  std::string name_of(int label) const {
    return label >= 0 && label < static_cast<int>(meta.classes.size()) ? meta.classes[label] : std::to_string(label);
  }
};

Detector::Detector(const std::string& path, const Options& options) : impl_(std::make_unique<Impl>()) {
  impl_->path = path;
  impl_->backend = open_backend(path, options, impl_->backend_name);
  impl_->shape = impl_->backend->shape();
  impl_->meta = impl_->load_metadata();
  impl_->check_metadata_matches_engine();
  impl_->backend->reserve(impl_->meta.batch_size);
  impl_->fits.resize(impl_->meta.batch_size);
}

Detector::~Detector() = default;
Detector::Detector(Detector&&) noexcept = default;
Detector& Detector::operator=(Detector&&) noexcept = default;

std::vector<Detection> Detector::detect(const cv::Mat& image, Color color) {
  return std::move(detect(std::vector<cv::Mat>{image}, color).front());
}

std::vector<std::vector<Detection>> Detector::detect(const std::vector<cv::Mat>& images, Color color) {
  Impl& d = *impl_;
  std::vector<std::vector<Detection>> all;
  all.reserve(images.size());
  Timing total;
  for (size_t start = 0; start < images.size(); start += d.meta.batch_size) {
    const int n = static_cast<int>(std::min<size_t>(d.meta.batch_size, images.size() - start));
    auto t0 = Clock::now();
    for (int b = 0; b < n; ++b) {
      cv::Mat slot(d.meta.height, d.meta.width, CV_8UC3, d.backend->input() + b * d.image_bytes());
      d.fits[b] = resize_into(images[start + b], color, slot, d.meta.resize, d.meta.pad_value);
    }
    total.preprocess_ms += ms_since(t0);
    t0 = Clock::now();
    const detail::OutputView out = d.run(n);
    total.inference_ms += ms_since(t0);
    t0 = Clock::now();
    for (auto& dets : d.postprocess(out, n)) all.push_back(std::move(dets));
    total.postprocess_ms += ms_since(t0);
  }
  d.timing = total;
  return all;
}

RawOutputs Detector::raw(const uint8_t* images, int batch) {
  Impl& d = *impl_;
  if (images == nullptr || batch < 1 || batch > d.meta.batch_size)
    throw Error("raw() takes 1.." + std::to_string(d.meta.batch_size) + " resized images, got " + std::to_string(batch));
  std::memcpy(d.backend->input(), images, batch * d.image_bytes());
  const auto t0 = Clock::now();
  const detail::OutputView out = d.run(batch);
  d.timing = {0, ms_since(t0), 0};
  const int K = d.shape.max_dets;
  RawOutputs r;
  r.batch = batch;
  r.max_dets = K;
  r.num_dets.assign(out.num_dets, out.num_dets + batch);
  r.boxes.assign(out.boxes, out.boxes + static_cast<size_t>(batch) * K * 4);
  r.scores.assign(out.scores, out.scores + static_cast<size_t>(batch) * K);
  r.labels.assign(out.labels, out.labels + static_cast<size_t>(batch) * K);
  return r;
}

const Metadata& Detector::metadata() const { return impl_->meta; }
const std::string& Detector::backend() const { return impl_->backend_name; }
const std::string& Detector::path() const { return impl_->path; }
int Detector::batch_size() const { return impl_->meta.batch_size; }
bool Detector::dynamic_batch() const { return impl_->shape.fixed_batch == 0; }
int Detector::max_detections() const { return impl_->shape.max_dets; }
const Timing& Detector::last_timing() const { return impl_->timing; }
std::string Detector::class_name(int label) const { return impl_->name_of(label); }

}  // namespace edgedet

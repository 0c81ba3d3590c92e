// The exported ONNX run by OpenVINO on the CPU, as edgedet/runtime/openvino_engine.py does: the contract is
// checked on the model OpenVINO reads, FP32 graphs run in f32 (OpenVINO would pick bf16 on AMX CPUs), and
// the engine's input tensor wraps the buffer the Detector resizes into, so no copy precedes inference. A
// --input-format float-nchw export (DeepStream's input) gets OpenVINO's own preprocessing in front: uint8 NHWC
// in, converted and transposed inside the compiled model, so the rest of the runtime is the same for both.
#include <cstring>
#include <openvino/frontend/manager.hpp>
#include <openvino/openvino.hpp>

#include "backend.hpp"

namespace edgedet::detail {
namespace {

std::string first_line(const std::string& text) {
  // OpenVINO's messages carry "Exception from src/...cpp:N:" and "Check '...' failed at" lines before the reason,
  // and a reason that ends in ':' continues on the next line.
  std::string out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    start = end + 1;
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos) continue;
    line = line.substr(first);
    if (line.rfind("Exception from", 0) == 0 || line.rfind("Check ", 0) == 0) continue;
    out += out.empty() ? line : " " + line;
    if (out.back() != ':') return out;
  }
  return out.empty() ? "unknown OpenVINO error" : out;
}

struct OutputSpec {
  const char* name;
  ov::element::Type type;
  size_t rank;
};

// The order of OutputView: num_dets [B, 1] int32, boxes [B, K, 4] f32, scores [B, K] f32, labels [B, K] int32.
const OutputSpec kOutputs[] = {{"num_dets", ov::element::i32, 2},
                               {"boxes", ov::element::f32, 3},
                               {"scores", ov::element::f32, 2},
                               {"labels", ov::element::i32, 2}};

class OpenVinoBackend final : public Backend {
 public:
  OpenVinoBackend(const std::string& path, const Options& options) : name_(file_name(path)) {
    try {
      // The ONNX frontend alone: Core::read_model would probe every frontend (TensorFlow, Paddle, IR, ...) on a
      // file that is not ONNX, printing their parsers' complaints before the one error that matters.
      frontend_ = frontends_.load_by_framework("onnx");
      model_ = frontend_->convert(frontend_->load(path));
    } catch (const std::exception& e) {
      const std::string what = e.what();
      if (what.find("EfficientNMS_TRT") != std::string::npos)
        throw Error(name_ + " uses the TensorRT plugin EfficientNMS_TRT, which OpenVINO cannot run; export with --nms onnx");
      throw Error("OpenVINO cannot read " + path + ": " + first_line(what));
    }
    check_contract();
    if (model_->has_rt_info("framework", "edgedet"))
      embedded_ = model_->get_rt_info<std::string>("framework", "edgedet");
    config_ = {{ov::hint::inference_precision.name(), ov::element::f32}};
    if (options.threads > 0) config_.emplace(ov::inference_num_threads.name(), options.threads);
  }

  const char* name() const override { return "openvino"; }
  EngineShape shape() const override { return shape_; }
  std::optional<std::string> embedded_metadata() const override { return embedded_; }

  void reserve(int max_batch) override {
    if (shape_.fixed_batch && max_batch != shape_.fixed_batch)
      throw Error(name_ + ": batch " + std::to_string(max_batch) + " asked of an engine that takes " +
                  std::to_string(shape_.fixed_batch));
    // Compiled here, after the Detector has checked the metadata against the engine: a mismatched sidecar
    // fails before the (slow) compilation.
    try {
      compiled_ = core_.compile_model(model_, "CPU", config_);
      request_ = compiled_.create_infer_request();
      for (size_t i = 0; i < 4; ++i) ports_[i] = compiled_.output(kOutputs[i].name);
    } catch (const std::exception& e) {
      throw Error("OpenVINO cannot compile " + name_ + ": " + first_line(e.what()));
    }
    capacity_ = max_batch;
    input_.assign(static_cast<size_t>(max_batch) * shape_.height * shape_.width * 3, 0);
  }

  uint8_t* input() override { return input_.data(); }

  OutputView infer(int batch) override {
    if (batch < 1 || batch > capacity_) throw Error(name_ + ": batch " + std::to_string(batch) + " outside 1.." + std::to_string(capacity_));
    const int run = shape_.fixed_batch ? shape_.fixed_batch : batch;
    try {
      request_.set_input_tensor(ov::Tensor(ov::element::u8, ov::Shape{static_cast<size_t>(run),
                                           static_cast<size_t>(shape_.height), static_cast<size_t>(shape_.width), 3},
                                           input_.data()));
      request_.infer();
      OutputView view;
      view.num_dets = request_.get_tensor(ports_[0]).data<const int32_t>();
      view.boxes = request_.get_tensor(ports_[1]).data<const float>();
      view.scores = request_.get_tensor(ports_[2]).data<const float>();
      view.labels = request_.get_tensor(ports_[3]).data<const int32_t>();
      return view;
    } catch (const std::exception& e) {
      throw Error("OpenVINO inference failed on " + name_ + ": " + first_line(e.what()));
    }
  }

 private:
  [[noreturn]] void refuse(const std::string& what) const {
    throw Error(name_ + " does not follow the edgedet engine contract: " + what + "; export it with edgedet export");
  }

  //! float32 [B, 3, H, W] input → a model that takes uint8 [B, H, W, 3] (exact: u8 → f32, then a transpose).
  void accept_uint8_nhwc() {
    if (model_->inputs().size() != 1) return;
    const ov::Output<ov::Node> in = model_->input(0);
    const ov::PartialShape ps = in.get_partial_shape();
    if (in.get_element_type() != ov::element::f32 || ps.rank().is_dynamic() || ps.rank().get_length() != 4 ||
        ps[1].is_dynamic() || ps[1].get_length() != 3)
      return;
    ov::preprocess::PrePostProcessor ppp(model_);
    ppp.input().tensor().set_element_type(ov::element::u8).set_layout("NHWC");
    ppp.input().model().set_layout("NCHW");
    ppp.input().preprocess().convert_element_type(ov::element::f32);
    model_ = ppp.build();
  }

  void check_contract() {
    if (model_->inputs().size() != 1) refuse("expected one input, found " + std::to_string(model_->inputs().size()));
    accept_uint8_nhwc();
    const ov::Output<ov::Node> in = model_->input(0);
    const ov::PartialShape ps = in.get_partial_shape();
    if (in.get_element_type() != ov::element::u8 || ps.rank().is_dynamic() || ps.rank().get_length() != 4 ||
        ps[1].is_dynamic() || ps[2].is_dynamic() || ps[3].is_dynamic() || ps[3].get_length() != 3)
      refuse("input must be uint8 [B, H, W, 3] or float32 [B, 3, H, W] with fixed H and W, not " + in.get_element_type().get_type_name() + " " +
             ps.to_string());
    shape_.height = static_cast<int>(ps[1].get_length());
    shape_.width = static_cast<int>(ps[2].get_length());
    shape_.fixed_batch = ps[0].is_static() ? static_cast<int>(ps[0].get_length()) : 0;
    // Every output's trailing dims, with one static K: the Detector indexes them as [B, 1], [B, K, 4], [B, K].
    std::vector<ov::PartialShape> shapes;
    for (const auto& spec : kOutputs) {
      std::optional<ov::Output<ov::Node>> found;
      for (const auto& out : model_->outputs())
        if (out.get_names().count(spec.name)) found = out;
      if (!found) refuse(std::string("no output named '") + spec.name + "'");
      const ov::PartialShape os = found->get_partial_shape();
      if (found->get_element_type() != spec.type || os.rank().is_dynamic() ||
          os.rank().get_length() != static_cast<int64_t>(spec.rank))
        refuse(std::string("output '") + spec.name + "' must be " + spec.type.get_type_name() + " of rank " +
               std::to_string(spec.rank) + ", not " + found->get_element_type().get_type_name() + " " + os.to_string());
      shapes.push_back(os);
    }
    const auto fixed = [](const ov::Dimension& d, int64_t want) { return d.is_static() && (want < 0 || d.get_length() == want); };
    if (!fixed(shapes[2][1], -1) || shapes[2][1].get_length() < 1) refuse("scores must be [B, K] with a fixed K");
    const int64_t k = shapes[2][1].get_length();
    if (!fixed(shapes[0][1], 1) || !fixed(shapes[1][1], k) || !fixed(shapes[1][2], 4) || !fixed(shapes[3][1], k))
      refuse("outputs must be num_dets [B, 1], boxes [B, K, 4], scores [B, K], labels [B, K] with one K, not " +
             shapes[0].to_string() + ", " + shapes[1].to_string() + ", " + shapes[2].to_string() + ", " + shapes[3].to_string());
    for (const auto& os : shapes)
      if (os[0].is_static() != ps[0].is_static() || (os[0].is_static() && os[0].get_length() != ps[0].get_length()))
        refuse("every output's batch must be the input's, not " + os.to_string() + " for input " + ps.to_string());
    shape_.max_dets = static_cast<int>(k);
  }

  std::string name_;
  ov::frontend::FrontEndManager frontends_;
  ov::frontend::FrontEnd::Ptr frontend_;  // the library the model's operations come from: outlives the model
  ov::Core core_;
  std::shared_ptr<ov::Model> model_;
  ov::CompiledModel compiled_;
  ov::InferRequest request_;
  ov::Output<const ov::Node> ports_[4];
  EngineShape shape_;
  std::optional<std::string> embedded_;
  ov::AnyMap config_;
  std::vector<uint8_t> input_;
  int capacity_ = 0;
};

}  // namespace

std::unique_ptr<Backend> make_openvino_backend(const std::string& path, const Options& options) {
  return std::make_unique<OpenVinoBackend>(path, options);
}

}  // namespace edgedet::detail

// edgedet-cpp bench: the statistics of `edgedet bench` (model-call latency mean/p50/p90/p99, throughput, host
// pre- and post-processing per batch), plus the end-to-end time of detect(), measured inside the same calls.
#include <chrono>
#include <cstdio>
#include <numeric>
#include <random>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "args.hpp"

namespace edgedet::cli {
namespace {

//! Camera-sized frames with some structure (not all zeros, which some kernels shortcut).
std::vector<cv::Mat> synthetic_frames(int n) {
  std::mt19937 rng(0);
  cv::Mat base(60, 80, CV_8UC3);
  for (int y = 0; y < base.rows; ++y)
    for (int x = 0; x < base.cols * 3; ++x) base.ptr<uint8_t>(y)[x] = static_cast<uint8_t>(rng() % 255);
  std::vector<cv::Mat> frames;
  for (int i = 0; i < n; ++i) {
    cv::Mat shifted, frame;
    cv::Mat m = (cv::Mat_<double>(2, 3) << 1, 0, i, 0, 1, 0);
    cv::warpAffine(base, shifted, m, base.size(), cv::INTER_NEAREST, cv::BORDER_WRAP);
    cv::resize(shifted, frame, cv::Size(640, 480), 0, 0, cv::INTER_LINEAR);
    frames.push_back(frame);
  }
  return frames;
}

double mean(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0) / v.size(); }

}  // namespace

int bench(const Args& args) {
  const std::string json_path = args.str("--json");
  const bool force = args.has("--force");
  if (!json_path.empty() && json_path != "-") refuse_existing(json_path, force);
  const int iters = args.positive_int("--iters", 100);
  const int warmup = args.non_negative_int("--warmup", 10);
  Detector det(args.required("--engine"), args.engine_options());
  const int batch = args.positive_int("--batch", det.batch_size());
  if (batch > det.batch_size())
    throw UsageError("--batch " + std::to_string(batch) + ": the engine takes at most " + std::to_string(det.batch_size()));
  const auto frames = synthetic_frames(batch);
  for (int i = 0; i < warmup; ++i) det.detect(frames, Color::BGR);
  std::vector<double> model, pre, post, e2e;
  for (int i = 0; i < iters; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    det.detect(frames, Color::BGR);
    e2e.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    const Timing& t = det.last_timing();
    model.push_back(t.inference_ms);
    pre.push_back(t.preprocess_ms);
    post.push_back(t.postprocess_ms);
  }
  const nlohmann::json result = {
      {"engine", det.path()}, {"backend", det.backend()}, {"batch", batch}, {"iters", iters},
      {"mean_ms", mean(model)}, {"p50_ms", percentile(model, 50)}, {"p90_ms", percentile(model, 90)},
      {"p99_ms", percentile(model, 99)}, {"throughput_ips", 1000.0 * batch / mean(model)},
      {"preprocess_ms", mean(pre)}, {"postprocess_ms", mean(post)},
      {"e2e_mean_ms", mean(e2e)}, {"e2e_p50_ms", percentile(e2e, 50)}, {"runtime", "c++"}};
  if (json_path == "-") {
    std::printf("%s\n", result.dump().c_str());
  } else {
    std::printf("%s (%s, batch %d, %d iters): model %.2f ms mean, p50 %.2f, p90 %.2f, p99 %.2f; %.1f images/s; "
                "host pre %.3f ms, post %.3f ms; end to end %.2f ms\n",
                det.path().c_str(), det.backend().c_str(), batch, iters, mean(model), percentile(model, 50),
                percentile(model, 90), percentile(model, 99), 1000.0 * batch / mean(model), mean(pre), mean(post), mean(e2e));
    if (!json_path.empty()) atomic_write(json_path, result.dump(2), force);
  }
  return 0;
}

}  // namespace edgedet::cli

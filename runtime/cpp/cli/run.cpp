// edgedet-cpp run: a camera (camN) or a video file through the Detector, boxes drawn as edgedet's draw.py does,
// in a window and/or an annotated video written atomically (a temporary file renamed when complete).
#include <cmath>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <regex>

#include <opencv2/highgui.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include "args.hpp"

namespace edgedet::cli {
namespace {

//! A stable, well-separated colour per class (golden-ratio hue steps), as BGR.
cv::Scalar class_color(int label) {
  const double frac = std::fmod(label * 0.618033988749895, 1.0);
  cv::Mat hsv(1, 1, CV_8UC3, cv::Scalar(static_cast<int>(frac * 179), 200, 255)), bgr;
  cv::cvtColor(hsv, bgr, cv::COLOR_HSV2BGR);
  const auto p = bgr.at<cv::Vec3b>(0, 0);
  return {static_cast<double>(p[0]), static_cast<double>(p[1]), static_cast<double>(p[2])};
}

void draw(cv::Mat& bgr, const std::vector<Detection>& dets, double score_thresh) {
  const int thick = std::max(1, static_cast<int>(std::nearbyint(std::min(bgr.rows, bgr.cols) / 320.0)));
  for (const auto& d : dets) {
    if (d.score < score_thresh) continue;
    const cv::Scalar color = class_color(d.label);
    const cv::Point p1(static_cast<int>(std::nearbyint(d.box[0])), static_cast<int>(std::nearbyint(d.box[1])));
    const cv::Point p2(static_cast<int>(std::nearbyint(d.box[2])), static_cast<int>(std::nearbyint(d.box[3])));
    cv::rectangle(bgr, p1, p2, color, thick, cv::LINE_AA);
    char text[256];
    std::snprintf(text, sizeof text, "%s %.2f", d.class_name.c_str(), d.score);
    int base = 0;
    const cv::Size ts = cv::getTextSize(text, cv::FONT_HERSHEY_SIMPLEX, 0.4 * thick, thick, &base);
    const int ty = std::max(p1.y, ts.height + base);
    cv::rectangle(bgr, {p1.x, ty - ts.height - base}, {p1.x + ts.width, ty}, color, cv::FILLED);
    cv::putText(bgr, text, {p1.x, ty - base}, cv::FONT_HERSHEY_SIMPLEX, 0.4 * thick, {0, 0, 0}, thick, cv::LINE_AA);
  }
}

}  // namespace

int run(const Args& args) {
  const std::string source = args.required("--video");
  const std::string save = args.str("--save");
  const bool force = args.has("--force");
  const bool headless = args.has("--headless") || std::getenv("DISPLAY") == nullptr;
  const double score_thresh = args.fraction("--score-thresh", 0.4);
  const int max_frames = args.positive_int("--max-frames", 0x7fffffff);
  if (!save.empty()) refuse_existing(save, force);
  std::smatch cam;
  const bool live = std::regex_match(source, cam, std::regex("cam(\\d+)"));
  if (!live && !std::filesystem::is_regular_file(source))
    throw Error("video source not found: " + source + " (use camN or a video file)");
  Detector det(args.required("--engine"), args.engine_options());
  cv::VideoCapture cap = live ? cv::VideoCapture(std::stoi(cam[1].str())) : cv::VideoCapture(source);
  if (!cap.isOpened()) throw Error("cannot open video source " + source);

  cv::VideoWriter writer;
  std::filesystem::path tmp;
  struct RemovePartial {  // an interrupted or failed run leaves no partial video behind
    std::filesystem::path* path;
    ~RemovePartial() {
      std::error_code ignored;
      if (!path->empty()) std::filesystem::remove(*path, ignored);
    }
  } cleanup{&tmp};
  cv::Mat frame;
  int frames = 0;
  double model_ms = 0;
  const auto start = std::chrono::steady_clock::now();
  while (frames < max_frames && cap.read(frame) && !frame.empty()) {
    auto dets = det.detect(frame, Color::BGR);
    model_ms += det.last_timing().inference_ms;
    draw(frame, dets, score_thresh);
    if (!save.empty()) {
      if (!writer.isOpened()) {
        const std::filesystem::path target(save);
        tmp = target.parent_path() / ("." + target.stem().string() + ".partial" + target.extension().string());
        const double fps = cap.get(cv::CAP_PROP_FPS);
        writer.open(tmp.string(), cv::VideoWriter::fourcc('m', 'p', '4', 'v'), fps > 0 && fps < 1000 ? fps : 30.0, frame.size());
        if (!writer.isOpened()) throw Error("cannot write video " + save + " (is this OpenCV built with a video writer?)");
      }
      writer.write(frame);
    }
    ++frames;
    if (!headless) {
      cv::imshow("edgedet", frame);
      const int key = cv::waitKey(1);
      if (key == 'q' || key == 27) break;
    }
  }
  if (frames == 0) throw Error("no frames could be read from " + source);
  if (writer.isOpened()) {
    writer.release();
    std::error_code ec;
    std::filesystem::rename(tmp, save, ec);
    if (ec) throw Error("cannot write " + save + ": " + ec.message());
    tmp.clear();
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cerr << "edgedet-cpp: run: " << frames << " frames, " << frames / secs << " FPS, model " << model_ms / frames
            << " ms/frame (" << det.backend() << ")" << (save.empty() ? "" : "; video " + save) << "\n";
  return 0;
}

}  // namespace edgedet::cli

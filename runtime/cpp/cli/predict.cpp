// edgedet-cpp predict: images in, the COCO results JSON of `edgedet predict --engine` out (image ids 1..N in
// file order, bbox x, y, w, h rounded to 3 decimals, score to 5, and the file name).
#include <glob.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "args.hpp"

namespace edgedet::cli {
namespace {

namespace fs = std::filesystem;

bool is_image(const fs::path& p) {
  std::string s = p.extension().string();
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const char* ext : {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
    if (s == ext) return true;
  return false;
}

//! A file, a folder (its images, sorted) or a glob pattern, as edgedet.predict.resolve_source.
std::vector<fs::path> resolve_source(const std::string& source) {
  std::vector<fs::path> files;
  std::error_code ec;
  if (fs::is_regular_file(source, ec)) return {fs::path(source)};
  if (fs::is_directory(source, ec)) {
    for (const auto& entry : fs::directory_iterator(source, ec))
      if (entry.is_regular_file(ec) && is_image(entry.path())) files.push_back(entry.path());
    if (files.empty()) throw Error("no images (.bmp, .jpeg, .jpg, .png, .tif, .tiff, .webp) in " + source);
  } else if (source.find_first_of("*?[") != std::string::npos) {
    glob_t g{};
    if (glob(source.c_str(), 0, nullptr, &g) == 0)
      for (size_t i = 0; i < g.gl_pathc; ++i)
        if (is_image(g.gl_pathv[i])) files.emplace_back(g.gl_pathv[i]);
    globfree(&g);
    if (files.empty()) throw Error("no images match " + source);
  } else {
    throw Error("source not found: " + source);
  }
  std::sort(files.begin(), files.end());
  return files;
}

double rounded(double v, double scale) { return std::nearbyint(v * scale) / scale; }

}  // namespace

int predict(const Args& args) {
  const std::string json_path = args.str("--json");
  const bool force = args.has("--force");
  const double score_thresh = args.fraction("--score-thresh", 0.25);
  const std::string bad = args.str("--bad-images", "skip");
  if (bad != "skip" && bad != "fail") throw UsageError("argument --bad-images: invalid choice '" + bad + "' (choose from skip, fail)");
  if (!json_path.empty() && json_path != "-") refuse_existing(json_path, force);
  std::vector<fs::path> files = resolve_source(args.required("--images"));
  if (args.has("--max-images")) files.resize(std::min<size_t>(files.size(), args.positive_int("--max-images", 1)));

  Detector det(args.required("--engine"), args.engine_options());
  const int batch = args.positive_int("--batch", det.batch_size());
  if (batch > det.batch_size())
    throw UsageError("--batch " + std::to_string(batch) + ": the engine takes at most " + std::to_string(det.batch_size()));
  const auto& ids = det.metadata().category_ids;

  nlohmann::json results = nlohmann::json::array();
  size_t done = 0, next = 0;
  while (next < files.size()) {
    std::vector<cv::Mat> images;
    std::vector<size_t> which;
    while (next < files.size() && static_cast<int>(images.size()) < batch) {
      cv::Mat image = cv::imread(files[next].string(), cv::IMREAD_ANYCOLOR | cv::IMREAD_ANYDEPTH);
      if (image.empty()) {
        if (bad == "fail") throw Error("cannot read image " + files[next].string());
        std::cerr << "edgedet-cpp: warning: skipped: cannot read image " << files[next].string() << "\n";
      } else {
        images.push_back(std::move(image));
        which.push_back(next);
      }
      ++next;
    }
    if (images.empty()) continue;
    const auto all = det.detect(images, Color::BGR);
    for (size_t i = 0; i < all.size(); ++i) {
      const fs::path& path = files[which[i]];
      size_t shown = 0;
      for (const auto& d : all[i]) {
        if (d.score < score_thresh) continue;
        ++shown;
        const int category = d.label >= 0 && d.label < static_cast<int>(ids.size()) ? ids[d.label] : d.label + 1;
        results.push_back({{"image_id", which[i] + 1}, {"category_id", category},
                           {"bbox", {rounded(d.box[0], 1e3), rounded(d.box[1], 1e3), rounded(d.box[2] - d.box[0], 1e3),
                                     rounded(d.box[3] - d.box[1], 1e3)}},
                           {"score", rounded(d.score, 1e5)}, {"file_name", path.string()}});
      }
      if (json_path.empty()) {
        std::cout << path.string() << ": " << shown << " detections\n";
        for (const auto& d : all[i])
          if (d.score >= score_thresh)
            std::printf("  %s %.2f [%.1f, %.1f, %.1f, %.1f]\n", d.class_name.c_str(), d.score, d.box[0], d.box[1], d.box[2], d.box[3]);
      }
      ++done;
    }
  }
  if (done == 0) throw Error("none of the " + std::to_string(files.size()) + " images could be read");
  const std::string text = results.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (json_path == "-") {
    std::cout << text << "\n";
  } else if (!json_path.empty()) {
    atomic_write(json_path, text, force);
  }
  std::cerr << "edgedet-cpp: predict: " << done << " images, " << results.size() << " detections"
            << (json_path.empty() || json_path == "-" ? "" : "; JSON " + json_path) << " (" << det.backend() << ")\n";
  return 0;
}

}  // namespace edgedet::cli

// The C API over edgedet::Detector: exceptions become status codes and a per-thread message.
#include "edgedet/edgedet.h"

#include <deque>
#include <string>

#include "edgedet/detector.hpp"

struct edgedet_detector {
  edgedet::Detector detector;
  std::deque<std::string> names;  // class_name strings handed out: stable until edgedet_free (a deque never moves them)

  const char* name_of(const edgedet::Detection& d) {
    const auto& classes = detector.metadata().classes;
    if (d.label >= 0 && d.label < static_cast<int>(classes.size())) return classes[d.label].c_str();
    for (const auto& n : names)  // labels outside the class list (no metadata names): the label as text, kept
      if (n == d.class_name) return n.c_str();
    return names.emplace_back(d.class_name).c_str();
  }
};

namespace {

thread_local std::string g_last_error;

edgedet_status fail(edgedet_status status, const std::string& message) {
  g_last_error = message;
  return status;
}

template <typename F>
edgedet_status guarded(F&& body) {
  try {
    g_last_error.clear();
    return body();
  } catch (const std::bad_alloc&) {
    return fail(EDGEDET_ERROR, "out of memory");
  } catch (const std::exception& e) {
    return fail(EDGEDET_ERROR, e.what());
  } catch (...) {
    return fail(EDGEDET_ERROR, "unknown error");
  }
}

}  // namespace

extern "C" {

edgedet_status edgedet_create(const char* path, const edgedet_options* options, edgedet_detector** out) {
  if (out == nullptr) return fail(EDGEDET_INVALID_ARGUMENT, "edgedet_create: out is NULL");
  *out = nullptr;
  if (path == nullptr) return fail(EDGEDET_INVALID_ARGUMENT, "edgedet_create: path is NULL");
  return guarded([&] {
    edgedet::Options opts;
    if (options != nullptr) {
      if (options->backend != nullptr) opts.backend = options->backend;
      opts.device = options->device;
      opts.threads = options->threads;
    }
    *out = new edgedet_detector{edgedet::Detector(path, opts), {}};
    return EDGEDET_OK;
  });
}

edgedet_status edgedet_detect(edgedet_detector* detector, const uint8_t* pixels, int width, int height, size_t stride,
                              int channels, edgedet_color color, edgedet_detection* out, int capacity, int* count) {
  if (count != nullptr) *count = 0;
  if (detector == nullptr || pixels == nullptr || count == nullptr || (out == nullptr && capacity > 0))
    return fail(EDGEDET_INVALID_ARGUMENT, "edgedet_detect: detector, pixels, out and count must not be NULL");
  if (width <= 0 || height <= 0 || capacity < 0)
    return fail(EDGEDET_INVALID_ARGUMENT, "edgedet_detect: width, height must be positive and capacity >= 0");
  if (channels != 1 && channels != 3 && channels != 4)
    return fail(EDGEDET_INVALID_ARGUMENT, "edgedet_detect: channels must be 1, 3 or 4, not " + std::to_string(channels));
  if (stride < static_cast<size_t>(width) * channels)
    return fail(EDGEDET_INVALID_ARGUMENT, "edgedet_detect: stride is smaller than width * channels");
  if (color != EDGEDET_BGR && color != EDGEDET_RGB)
    return fail(EDGEDET_INVALID_ARGUMENT, "edgedet_detect: color must be EDGEDET_BGR or EDGEDET_RGB");
  return guarded([&] {
    const cv::Mat image(height, width, CV_8UC(channels), const_cast<uint8_t*>(pixels), stride);
    const auto dets = detector->detector.detect(image, color == EDGEDET_RGB ? edgedet::Color::RGB : edgedet::Color::BGR);
    const int n = std::min(capacity, static_cast<int>(dets.size()));
    for (int i = 0; i < n; ++i) {
      const auto& d = dets[i];
      out[i] = {d.box[0], d.box[1], d.box[2], d.box[3], d.score, d.label, detector->name_of(d)};
    }
    *count = n;
    return EDGEDET_OK;
  });
}

int edgedet_max_detections(const edgedet_detector* detector) {
  return detector ? detector->detector.max_detections() : -1;
}

int edgedet_class_count(const edgedet_detector* detector) {
  return detector ? static_cast<int>(detector->detector.metadata().classes.size()) : -1;
}

void edgedet_free(edgedet_detector* detector) { delete detector; }

const char* edgedet_last_error(void) { return g_last_error.c_str(); }

}  // extern "C"

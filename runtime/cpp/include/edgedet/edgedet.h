/* edgedet C API: the C++ Detector behind plain C types, so C, Go, Rust or C# applications embed it without
 * C++ ABI trouble. Every call returns EDGEDET_OK or an error code; edgedet_last_error() says why, in one line
 * (per thread). Nothing here throws or aborts on bad input. One detector serves one thread at a time: give each
 * thread its own, or serialise the calls.
 *
 *   edgedet_detector* det = NULL;
 *   if (edgedet_create("model.onnx", NULL, &det) != EDGEDET_OK) { puts(edgedet_last_error()); return 1; }
 *   edgedet_detection dets[100]; int n = 0;
 *   edgedet_detect(det, pixels, width, height, width * 3, 3, EDGEDET_BGR, dets, 100, &n);
 *   edgedet_free(det);
 */
#ifndef EDGEDET_EDGEDET_H
#define EDGEDET_EDGEDET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  EDGEDET_OK = 0,
  EDGEDET_INVALID_ARGUMENT = 1, /* a NULL pointer, a size or channel count out of range */
  EDGEDET_ERROR = 2             /* the engine, its metadata or inference failed: see edgedet_last_error() */
} edgedet_status;

typedef enum { EDGEDET_BGR = 0, EDGEDET_RGB = 1 } edgedet_color;

typedef struct edgedet_detector edgedet_detector;

typedef struct {
  float x1, y1, x2, y2; /* original-image pixels */
  float score;
  int label;              /* 0-based class index */
  const char* class_name; /* owned by the detector; valid until edgedet_free */
} edgedet_detection;

typedef struct {
  const char* backend; /* "auto" (NULL), "openvino", "tensorrt" */
  int device;          /* CUDA ordinal (TensorRT) */
  int threads;         /* CPU inference threads (OpenVINO); 0: the backend's default */
} edgedet_options;

/* Loads an engine and its metadata; options may be NULL. On failure *out is NULL. */
edgedet_status edgedet_create(const char* path, const edgedet_options* options, edgedet_detector** out);

/* Detects objects in one 8-bit image of `channels` (1, 3 or 4) interleaved channels, rows `stride` bytes apart.
 * Writes at most `capacity` detections (highest scores first) and their number to *count. */
edgedet_status edgedet_detect(edgedet_detector* detector, const uint8_t* pixels, int width, int height, size_t stride,
                              int channels, edgedet_color color, edgedet_detection* out, int capacity, int* count);

/* The most detections one image can get (the engine's K), or -1 for a NULL detector. */
int edgedet_max_detections(const edgedet_detector* detector);
/* The number of classes in the metadata, or -1 for a NULL detector. */
int edgedet_class_count(const edgedet_detector* detector);

/* Frees the detector; NULL is allowed. */
void edgedet_free(edgedet_detector* detector);

/* The last error on this thread ("" when none). Valid until the next edgedet call on this thread. */
const char* edgedet_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* EDGEDET_EDGEDET_H */

/* The C API from plain C: errors come back as codes with a message, detections from a PPM image.
 * Assets come from EDGEDET_TEST_ASSETS (tests/test_cpp_runtime.py); without them the asset checks are skipped
 * (exit 77, which ctest reports as skipped). With them, the detections are printed one per line for the
 * Python side to compare: "label score x1 y1 x2 y2". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgedet/edgedet.h"

static int failures = 0;
#define CHECK(cond)                                                   \
  do {                                                                \
    if (!(cond)) {                                                    \
      fprintf(stderr, "c_api_test:%d: CHECK failed: %s\n", __LINE__, #cond); \
      ++failures;                                                     \
    }                                                                 \
  } while (0)

static unsigned char* read_ppm(const char* path, int* w, int* h) {
  FILE* f = fopen(path, "rb");
  if (!f) return NULL;
  int maxval = 0;
  unsigned char* pixels = NULL;
  if (fscanf(f, "P6 %d %d %d", w, h, &maxval) == 3 && maxval == 255 && fgetc(f) != EOF) {
    size_t n = (size_t)(*w) * (size_t)(*h) * 3;
    pixels = malloc(n);
    if (pixels && fread(pixels, 1, n, f) != n) {
      free(pixels);
      pixels = NULL;
    }
  }
  fclose(f);
  return pixels;
}

int main(void) {
  edgedet_detector* det = (edgedet_detector*)1;
  edgedet_detection dets[256];
  int count = -1;

  CHECK(edgedet_create("/nonexistent/model.onnx", NULL, &det) == EDGEDET_ERROR);
  CHECK(det == NULL);
  CHECK(strstr(edgedet_last_error(), "engine not found") != NULL);
  CHECK(edgedet_create(NULL, NULL, &det) == EDGEDET_INVALID_ARGUMENT);
  CHECK(edgedet_create("x.onnx", NULL, NULL) == EDGEDET_INVALID_ARGUMENT);
  CHECK(edgedet_detect(NULL, (const uint8_t*)"", 1, 1, 3, 3, EDGEDET_RGB, dets, 1, &count) == EDGEDET_INVALID_ARGUMENT);
  CHECK(count == 0);
  CHECK(edgedet_max_detections(NULL) == -1 && edgedet_class_count(NULL) == -1);
  edgedet_free(NULL);

  const char* dir = getenv("EDGEDET_TEST_ASSETS");
  if (!dir) {
    fprintf(stderr, "c_api_test: EDGEDET_TEST_ASSETS not set: asset checks skipped\n");
    return failures ? 1 : 77;
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/corrupt.onnx", dir);
  CHECK(edgedet_create(path, NULL, &det) == EDGEDET_ERROR && strstr(edgedet_last_error(), "not valid JSON"));
  snprintf(path, sizeof path, "%s/good.onnx", dir);
  edgedet_options opts = {"openvino", 0, 1};
  CHECK(edgedet_create(path, &opts, &det) == EDGEDET_OK);
  if (!det) return 1;
  CHECK(edgedet_max_detections(det) > 0 && edgedet_class_count(det) > 0);

  int w = 0, h = 0;
  snprintf(path, sizeof path, "%s/image.ppm", dir);
  unsigned char* rgb = read_ppm(path, &w, &h);
  CHECK(rgb != NULL);
  if (rgb) {
    CHECK(edgedet_detect(det, rgb, w, h, (size_t)w * 3, 2, EDGEDET_RGB, dets, 256, &count) == EDGEDET_INVALID_ARGUMENT);
    CHECK(edgedet_detect(det, rgb, w, h, 1, 3, EDGEDET_RGB, dets, 256, &count) == EDGEDET_INVALID_ARGUMENT);
    CHECK(edgedet_detect(det, rgb, w, h, (size_t)w * 3, 3, EDGEDET_RGB, dets, 0, &count) == EDGEDET_OK && count == 0);
    CHECK(edgedet_detect(det, rgb, w, h, (size_t)w * 3, 3, EDGEDET_RGB, dets, 256, &count) == EDGEDET_OK);
    CHECK(count > 0);
    edgedet_detection again[256];
    int count2 = 0;
    CHECK(edgedet_detect(det, rgb, w, h, (size_t)w * 3, 3, EDGEDET_RGB, again, 256, &count2) == EDGEDET_OK);
    CHECK(count2 == count);
    for (int i = 0; i < count; ++i) {  /* the first call's names stay valid after the second call */
      CHECK(dets[i].class_name != NULL && dets[i].class_name[0] != '\0');
      CHECK(strcmp(dets[i].class_name, again[i].class_name) == 0);
      printf("%d %.6f %.4f %.4f %.4f %.4f\n", dets[i].label, dets[i].score, dets[i].x1, dets[i].y1, dets[i].x2, dets[i].y2);
    }
    free(rgb);
  }
  edgedet_free(det);
  return failures ? 1 : 0;
}

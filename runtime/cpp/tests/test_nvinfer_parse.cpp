// The DeepStream parser's rules (edgedet/nvinfer_parse.hpp) on hand-made outputs: what nvinfer gets from each
// frame, and the one-line errors for outputs that are not the engine contract's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "edgedet/nvinfer_parse.hpp"

namespace nv = edgedet::nvinfer;

namespace {

//! One frame's outputs with K = 3 rows; the layers point into this struct, so keep it alive while parsing.
struct Frame {
  int32_t num_dets[1] = {3};
  float boxes[12] = {10, 20, 50, 60, 0, 0, 5, 5, 1.5f, 2.5f, 3.5f, 4.5f};
  float scores[3] = {0.9f, 0.6f, 0.3f};
  int32_t labels[3] = {1, 0, 2};

  std::vector<nv::Layer> layers() const {
    return {{"num_dets", num_dets, nv::DataType::Int32, {1}},
            {"boxes", boxes, nv::DataType::Float32, {3, 4}},
            {"scores", scores, nv::DataType::Float32, {3}},
            {"labels", labels, nv::DataType::Int32, {3}}};
  }
};

const nv::Params kAll{3, {0.0f, 0.0f, 0.0f}};

std::vector<nv::Object> parse_ok(const std::vector<nv::Layer>& layers, const nv::Params& params = kAll) {
  std::vector<nv::Object> out;
  std::string error;
  EXPECT_TRUE(nv::parse(layers, params, out, error)) << error;
  EXPECT_EQ(error, "");
  return out;
}

std::string parse_error(const std::vector<nv::Layer>& layers) {
  std::vector<nv::Object> out;
  std::string error;
  EXPECT_FALSE(nv::parse(layers, kAll, out, error));
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  return error;
}

std::vector<unsigned> classes(const std::vector<nv::Object>& objects) {
  std::vector<unsigned> ids;
  for (const auto& o : objects) ids.push_back(o.class_id);
  return ids;
}

}  // namespace

TEST(NvinferParse, AllRowsInEngineOrderAsLeftTopWidthHeight) {
  const Frame f;
  const auto out = parse_ok(f.layers());
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(classes(out), (std::vector<unsigned>{1, 0, 2}));
  EXPECT_EQ(out[0].left, 10);
  EXPECT_EQ(out[0].top, 20);
  EXPECT_EQ(out[0].width, 40);
  EXPECT_EQ(out[0].height, 40);
  EXPECT_EQ(out[0].confidence, 0.9f);
  EXPECT_EQ(out[2].left, 1.5f);
  EXPECT_EQ(out[2].width, 2.0f);
  EXPECT_EQ(out[2].confidence, 0.3f);
}

TEST(NvinferParse, NoDetections) {
  Frame f;
  f.num_dets[0] = 0;
  EXPECT_TRUE(parse_ok(f.layers()).empty());
}

TEST(NvinferParse, OnlyTheFirstNumDetsRows) {
  Frame f;
  f.num_dets[0] = 2;
  EXPECT_EQ(classes(parse_ok(f.layers())), (std::vector<unsigned>{1, 0}));
}

TEST(NvinferParse, LayersInAnyOrder) {
  const Frame f;
  auto layers = f.layers();
  std::reverse(layers.begin(), layers.end());
  std::swap(layers[0], layers[2]);
  layers.push_back({"images", nullptr, nv::DataType::Other, {3, 160, 160}});  // a layer the parser ignores
  EXPECT_EQ(classes(parse_ok(layers)), (std::vector<unsigned>{1, 0, 2}));
}

TEST(NvinferParse, NumDetsOutOfRangeIsClamped) {
  Frame f;
  f.num_dets[0] = 1000;  // past K: no read past the outputs
  EXPECT_EQ(parse_ok(f.layers()).size(), 3u);
  f.num_dets[0] = -5;
  EXPECT_TRUE(parse_ok(f.layers()).empty());
}

TEST(NvinferParse, ClassesNotConfiguredAreDropped) {
  const Frame f;
  EXPECT_EQ(classes(parse_ok(f.layers(), {2, {0.0f, 0.0f}})), (std::vector<unsigned>{1, 0}));
  EXPECT_TRUE(parse_ok(f.layers(), {0, {}}).empty());
  Frame negative;
  negative.labels[1] = -1;
  EXPECT_EQ(classes(parse_ok(negative.layers())), (std::vector<unsigned>{1, 2}));
}

TEST(NvinferParse, PerClassPreclusterThreshold) {
  const Frame f;
  // class 1 needs 0.95 (row 0 at 0.9 goes), class 0 needs exactly its 0.6 (>= keeps it), class 2 needs 0.31
  EXPECT_EQ(classes(parse_ok(f.layers(), {3, {0.6f, 0.95f, 0.31f}})), (std::vector<unsigned>{0}));
  // no threshold for a class (a vector shorter than nvinfer makes it): 0
  EXPECT_EQ(classes(parse_ok(f.layers(), {3, {0.7f}})), (std::vector<unsigned>{1, 2}));
  Frame nan;
  nan.scores[0] = std::nanf("");
  EXPECT_EQ(classes(parse_ok(nan.layers())), (std::vector<unsigned>{0, 2}));
}

TEST(NvinferParse, MissingLayerIsNamed) {
  const Frame f;
  for (const std::string name : {"num_dets", "boxes", "scores", "labels"}) {
    auto layers = f.layers();
    layers.erase(std::find_if(layers.begin(), layers.end(), [&](const nv::Layer& l) { return l.name == name; }));
    const auto error = parse_error(layers);
    EXPECT_NE(error.find("no output layer named '" + name + "'"), std::string::npos) << error;
  }
  EXPECT_NE(parse_error({}).find("(got: none)"), std::string::npos);
}

TEST(NvinferParse, WrongTypesAndShapesAreRefused) {
  const Frame f;
  const std::vector<std::tuple<size_t, nv::DataType, std::vector<int>, std::string>> cases{
      {1, nv::DataType::Float32, {3, 5}, "output 'boxes' is float32 [3, 5], not float32 [K, 4]"},
      {1, nv::DataType::Float32, {12}, "output 'boxes' is float32 [12], not float32 [K, 4]"},
      {1, nv::DataType::Float32, {1, 3, 4}, "not float32 [K, 4]"},  // a batch dimension nvinfer should have removed
      {1, nv::DataType::Float32, {-1, 4}, "output 'boxes' is float32 [-1, 4]"},
      {1, nv::DataType::Other, {3, 4}, "'boxes' is [3, 4] of a type other than float32 and int32, not float32 [K, 4]"},
      {2, nv::DataType::Float32, {2}, "output 'scores' is float32 [2], not float32 [K] with K = 3"},
      {3, nv::DataType::Float32, {3}, "output 'labels' is float32 [3], not int32 [K] with K = 3"},
      {3, nv::DataType::Int32, {4}, "output 'labels' is int32 [4], not int32 [K] with K = 3"},
      {0, nv::DataType::Int32, {2}, "output 'num_dets' is int32 [2], not int32 [1]"},
      {0, nv::DataType::Float32, {1}, "output 'num_dets' is float32 [1], not int32 [1]"},
  };
  for (const auto& [index, dtype, dims, fragment] : cases) {
    auto layers = f.layers();
    layers[index].dtype = dtype;
    layers[index].dims = dims;
    const auto error = parse_error(layers);
    EXPECT_NE(error.find(fragment), std::string::npos) << error;
  }
  auto layers = f.layers();
  layers[2].data = nullptr;
  EXPECT_EQ(parse_error(layers), "output 'scores' has no data");
}

TEST(NvinferParse, NoRowsAtAll) {
  const int32_t zero[1] = {0};
  const std::vector<nv::Layer> layers{{"num_dets", zero, nv::DataType::Int32, {1}},
                                      {"boxes", nullptr, nv::DataType::Float32, {0, 4}},
                                      {"scores", nullptr, nv::DataType::Float32, {0}},
                                      {"labels", nullptr, nv::DataType::Int32, {0}}};
  EXPECT_TRUE(parse_ok(layers).empty());
}

TEST(NvinferParse, AppendsToWhatIsThere) {
  const Frame f;
  std::vector<nv::Object> out(2);
  std::string error;
  ASSERT_TRUE(nv::parse(f.layers(), kAll, out, error)) << error;
  EXPECT_EQ(out.size(), 5u);
}

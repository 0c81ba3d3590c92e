#include <gtest/gtest.h>

#include "edgedet/detector.hpp"
#include "edgedet/metadata.hpp"

namespace {
std::string error_of(const std::string& text) {
  try {
    edgedet::parse_metadata(text, "m.json");
  } catch (const edgedet::Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Metadata, SidecarPath) {
  EXPECT_EQ(edgedet::sidecar_path("a/model.fp16.onnx"), "a/model.fp16.json");
  EXPECT_EQ(edgedet::sidecar_path("model.plan"), "model.json");
  EXPECT_EQ(edgedet::sidecar_path("dir.v2/model"), "dir.v2/model.json");
}

TEST(Metadata, ParsesWhatTheDetectorNeeds) {
  const auto m = edgedet::parse_metadata(
      R"({"schema_version": 1, "classes": ["a", "b"], "input": {"size": [160, 192], "resize": "letterbox",
          "pad_value": [124, 116, 104]}, "batch": {"dynamic": true, "max": 8}, "precision": "int8"})", "m.json");
  EXPECT_EQ(m.height, 160);
  EXPECT_EQ(m.width, 192);
  EXPECT_EQ(m.resize, "letterbox");
  EXPECT_EQ(m.pad_value[2], 104);
  EXPECT_TRUE(m.dynamic_batch);
  EXPECT_EQ(m.batch_size, 8);
  EXPECT_EQ(m.category_ids, (std::vector<int>{1, 2}));  // 1..N, as Python's predict
  EXPECT_EQ(m.precision, "int8");
}

TEST(Metadata, BadMetadataIsOneLineNamingTheFile) {
  for (const auto& [text, fragment] : std::vector<std::pair<std::string, std::string>>{
           {"{not json", "not valid JSON"},
           {"[1, 2]", "not a JSON object"},
           {R"({"schema_version": 2, "classes": [], "input": {"size": [1, 1]}})", "schema version 2"},
           {R"({"classes": []})", "lacks 'input'"},
           {R"({"input": {"size": [1, 1]}})", "lacks 'classes'"},
           {R"({"classes": [], "input": {"size": [0, 5]}})", "input.size"},
           {R"({"classes": [], "input": {"size": [5]}})", "input.size"},
           {R"({"classes": [], "input": {"size": [5, 5], "resize": "crop"}})", "resize mode"},
           {R"({"classes": [1], "input": {"size": [5, 5]}})", "classes must be strings"},
           {R"({"classes": [], "input": {"size": [5, 5]}, "batch": {"size": -1}})", "batch.size"},
           {R"({"classes": [], "input": {"size": [5, 5], "resize": null}})", "wrong type"},
           {R"({"classes": [], "input": {"size": [5, 5]}, "batch": {"dynamic": "yes"}})", "wrong type"},
       }) {
    const std::string message = error_of(text);
    EXPECT_NE(message.find(fragment), std::string::npos) << text << " → " << message;
    EXPECT_NE(message.find("m.json"), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

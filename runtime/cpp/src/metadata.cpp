// Metadata parsing with the rules of edgedet/runtime/metadata.py: one-line errors naming the file.
#include "edgedet/metadata.hpp"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "edgedet/detector.hpp"

namespace edgedet {

std::string sidecar_path(const std::string& artifact) {
  const auto slash = artifact.find_last_of('/');
  const auto dot = artifact.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash) || dot == slash + 1)
    return artifact + ".json";
  return artifact.substr(0, dot) + ".json";
}

std::optional<std::string> read_sidecar(const std::string& artifact) {
  const std::string side = sidecar_path(artifact);
  std::ifstream in(side, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

namespace {

[[noreturn]] void fail(const std::string& source, const std::string& what) {
  throw Error("metadata of " + source + ": " + what + "; re-export the model");
}

int positive_int(const nlohmann::json& v, const std::string& source, const std::string& key) {
  if (!v.is_number_integer() || v.get<long long>() <= 0 || v.get<long long>() > (1 << 20))
    fail(source, key + " must be a positive integer, not " + v.dump());
  return v.get<int>();
}

}  // namespace

static Metadata parse_fields(const nlohmann::json& j, const std::string& source);

Metadata parse_metadata(const std::string& text, const std::string& source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error("metadata " + source + " is not valid JSON (at byte " + std::to_string(e.byte) +
                "); re-export, or delete the sidecar to use the engine's own shapes");
  }
  if (!j.is_object()) throw Error("metadata " + source + " is not a JSON object");
  try {
    return parse_fields(j, source);
  } catch (const nlohmann::json::exception& e) {  // a field of the wrong type (null, a number for a string, ...)
    fail(source, std::string("a field has the wrong type (") + e.what() + ")");
  }
}

static Metadata parse_fields(const nlohmann::json& j, const std::string& source) {
  const auto version = j.value("schema_version", nlohmann::json(kSchemaVersion));
  if (!version.is_number_integer() || version.get<long long>() > kSchemaVersion)
    throw Error("metadata " + source + " has schema version " + version.dump() + "; this edgedet reads up to " +
                std::to_string(kSchemaVersion) + ": upgrade edgedet");
  if (!j.contains("input") || !j["input"].is_object()) fail(source, "it lacks 'input' (or it is not an object)");
  if (!j.contains("classes") || !j["classes"].is_array()) fail(source, "it lacks 'classes' (or it is not a list)");
  const auto& in = j["input"];
  const auto size = in.value("size", nlohmann::json());
  if (!size.is_array() || size.size() != 2 || !size[0].is_number_integer() || !size[1].is_number_integer() ||
      size[0].get<long long>() <= 0 || size[1].get<long long>() <= 0)
    fail(source, "input.size must be [H, W], not " + size.dump());

  Metadata m;
  m.source = source;
  m.height = positive_int(size[0], source, "input.size[0]");
  m.width = positive_int(size[1], source, "input.size[1]");
  m.resize = in.value("resize", std::string("stretch"));
  if (m.resize != "stretch" && m.resize != "letterbox") fail(source, "unknown resize mode '" + m.resize + "'");
  if (in.contains("pad_value")) {
    const auto& pad = in["pad_value"];
    if (!pad.is_array() || pad.size() != 3) fail(source, "input.pad_value must be [R, G, B]");
    for (int c = 0; c < 3; ++c) {
      if (!pad[c].is_number_integer() || pad[c].get<int>() < 0 || pad[c].get<int>() > 255)
        fail(source, "input.pad_value must hold 0..255");
      m.pad_value[c] = static_cast<uint8_t>(pad[c].get<int>());
    }
  }
  for (const auto& name : j["classes"]) {
    if (!name.is_string()) fail(source, "classes must be strings");
    m.classes.push_back(name.get<std::string>());
  }
  if (j.contains("category_ids") && j["category_ids"].is_array() && !j["category_ids"].empty()) {
    for (const auto& id : j["category_ids"]) {
      if (!id.is_number_integer()) fail(source, "category_ids must be integers");
      m.category_ids.push_back(id.get<int>());
    }
    if (m.category_ids.size() != m.classes.size()) fail(source, "category_ids and classes differ in length");
  } else {
    for (size_t i = 0; i < m.classes.size(); ++i) m.category_ids.push_back(static_cast<int>(i) + 1);
  }
  const auto batch = j.value("batch", nlohmann::json::object());
  if (!batch.is_object()) fail(source, "batch must be an object");
  m.dynamic_batch = batch.value("dynamic", false);
  m.batch_size = positive_int(batch.value(m.dynamic_batch ? "max" : "size", nlohmann::json(1)), source,
                              m.dynamic_batch ? "batch.max" : "batch.size");
  m.model = j.value("model", std::string());
  m.precision = j.value("precision", std::string());
  return m;
}

}  // namespace edgedet

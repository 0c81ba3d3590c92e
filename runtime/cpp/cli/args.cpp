#include "args.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace edgedet::cli {

Args::Args(int argc, char** argv, int first, const std::set<std::string>& valued, const std::set<std::string>& switches) {
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    const auto eq = arg.find('=');
    const bool inline_value = arg.rfind("--", 0) == 0 && eq != std::string::npos;
    if (inline_value) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    if (valued.count(arg)) {
      if (!inline_value) {
        if (i + 1 >= argc) throw UsageError("argument " + arg + ": expected a value");
        value = argv[++i];
      }
      values_[arg] = value;
    } else if (switches.count(arg) && !inline_value) {
      values_[arg] = "1";
    } else {
      throw UsageError("unrecognized argument: " + arg);
    }
  }
}

std::string Args::str(const std::string& flag, const std::string& fallback) const {
  const auto it = values_.find(flag);
  return it == values_.end() ? fallback : it->second;
}

std::string Args::required(const std::string& flag) const {
  if (!has(flag) || str(flag).empty()) throw UsageError("the following argument is required: " + flag);
  return str(flag);
}

namespace {
long parse_long(const std::string& flag, const std::string& text) {
  size_t used = 0;
  long v = 0;
  try {
    v = std::stol(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size()) throw UsageError("argument " + flag + ": expected an integer, got '" + text + "'");
  return v;
}
}  // namespace

int Args::positive_int(const std::string& flag, int fallback) const {
  if (!has(flag)) return fallback;
  const long v = parse_long(flag, str(flag));
  if (v < 1 || v > 1000000) throw UsageError("argument " + flag + ": expected a positive integer, got " + str(flag));
  return static_cast<int>(v);
}

int Args::non_negative_int(const std::string& flag, int fallback) const {
  if (!has(flag)) return fallback;
  const long v = parse_long(flag, str(flag));
  if (v < 0 || v > 1000000) throw UsageError("argument " + flag + ": expected an integer >= 0, got " + str(flag));
  return static_cast<int>(v);
}

double Args::fraction(const std::string& flag, double fallback) const {
  if (!has(flag)) return fallback;
  size_t used = 0;
  double v = NAN;
  try {
    v = std::stod(str(flag), &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != str(flag).size() || !(v >= 0 && v <= 1))
    throw UsageError("argument " + flag + ": expected a number in [0, 1], got '" + str(flag) + "'");
  return v;
}

Options Args::engine_options() const {
  Options o;
  o.backend = str("--backend", "auto");
  if (o.backend != "auto" && o.backend != "openvino" && o.backend != "tensorrt")
    throw UsageError("argument --backend: invalid choice '" + o.backend + "' (choose from auto, openvino, tensorrt)");
  const std::string device = str("--device", "");
  if (device == "cpu") {
    if (o.backend == "tensorrt") throw UsageError("--device cpu: TensorRT runs on a CUDA GPU");
    if (o.backend == "auto") o.backend = "openvino";
  } else if (device.rfind("cuda:", 0) == 0) {
    o.device = static_cast<int>(parse_long("--device", device.substr(5)));
  } else if (device == "cuda" || device.empty()) {
    o.device = 0;
  } else {
    o.device = static_cast<int>(parse_long("--device", device));
  }
  if (o.device < 0) throw UsageError("argument --device: must be cpu, cuda, cuda:N or a CUDA ordinal");
  o.threads = non_negative_int("--threads", 0);
  return o;
}

void refuse_existing(const std::string& path, bool force) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw UsageError(path + " is a folder; give a file name");
  if (!force && std::filesystem::exists(path, ec)) throw UsageError(path + " exists; pass --force to overwrite it");
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty() && !std::filesystem::is_directory(parent, ec) && !std::filesystem::create_directories(parent, ec))
    throw UsageError("cannot create the folder of " + path + (ec ? ": " + ec.message() : ""));
}

void atomic_write(const std::string& path, const std::string& text, bool force) {
  refuse_existing(path, force);
  const std::filesystem::path target(path);
  const std::filesystem::path tmp = target.parent_path() / ("." + target.filename().string() + ".tmp" + std::to_string(getpid()));
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) {
      std::error_code ignored;
      std::filesystem::remove(tmp, ignored);
      throw Error("cannot write " + path + " (disk full or not writable?)");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, target, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw Error("cannot write " + path + ": " + ec.message());
  }
}

double percentile(std::vector<double> values, double q) {
  if (values.empty()) return NAN;
  std::sort(values.begin(), values.end());
  const double pos = q / 100.0 * (values.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (values[hi] - values[lo]) * (pos - lo);
}

}  // namespace edgedet::cli

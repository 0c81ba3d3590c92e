// Command-line parsing for edgedet-cpp with the flag vocabulary of the Python CLI (edgedet/cli/_vocabulary.py):
// --engine, --backend, --device, --threads, --images, --json, --score-thresh, --batch, --force, ...
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "edgedet/detector.hpp"

namespace edgedet::cli {

//! A usage or input error: printed as one "edgedet-cpp VERB: error: ..." line, exit 1.
struct UsageError : Error {
  using Error::Error;
};

class Args {
 public:
  //! `valued`: flags that take a value; `switches`: flags that do not.
  Args(int argc, char** argv, int first, const std::set<std::string>& valued, const std::set<std::string>& switches);
  bool has(const std::string& flag) const { return values_.count(flag) > 0; }
  std::string str(const std::string& flag, const std::string& fallback = "") const;
  std::string required(const std::string& flag) const;
  int positive_int(const std::string& flag, int fallback) const;
  int non_negative_int(const std::string& flag, int fallback) const;
  double fraction(const std::string& flag, double fallback) const;  //!< a value in [0, 1]
  Options engine_options() const;  //!< --backend, --device, --threads

 private:
  std::map<std::string, std::string> values_;
};

//! Writes `text` to `path` through a temporary file in the same folder and a rename; refuses to replace an
//! existing file unless `force`.
void atomic_write(const std::string& path, const std::string& text, bool force);
//! Refuses early (before any work) when `path` exists and `force` is not given.
void refuse_existing(const std::string& path, bool force);

//! Percentile with numpy's default (linear) interpolation.
double percentile(std::vector<double> values, double q);

int predict(const Args& args);
int run(const Args& args);
int bench(const Args& args);

}  // namespace edgedet::cli

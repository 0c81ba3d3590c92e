// edgedet-cpp: predict, run and bench with the C++ runtime, the counterparts of `edgedet predict --engine`,
// `edgedet run` and `edgedet bench`. Errors are one line on stderr and exit code 1.
#include <cstring>
#include <iostream>

#include "args.hpp"

namespace {

const char* kUsage =
    "usage: edgedet-cpp {predict,run,bench} [options]\n"
    "  predict --engine FILE --images FILE|DIR|GLOB [--json OUT|-] [--score-thresh S] [--batch N]\n"
    "          [--max-images N] [--bad-images skip|fail] [--force]\n"
    "  run     --engine FILE --video PATH|camN [--score-thresh S] [--save OUT.mp4] [--force] [--headless]\n"
    "          [--max-frames N]\n"
    "  bench   --engine FILE [--batch N] [--iters N] [--warmup N] [--json OUT] [--force]\n"
    "  every verb: [--backend auto|openvino|tensorrt] [--device cpu|cuda|cuda:N] [--threads N]\n";

const std::set<std::string> kEngine = {"--engine", "--backend", "--device", "--threads"};

std::set<std::string> with_engine(std::set<std::string> flags) {
  flags.insert(kEngine.begin(), kEngine.end());
  return flags;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace edgedet::cli;
  if (argc < 2 || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help")) {
    std::cout << kUsage;
    return argc < 2 ? 1 : 0;
  }
  const std::string verb = argv[1];
  for (int i = 2; i < argc; ++i)
    if (!std::strcmp(argv[i], "-h") || !std::strcmp(argv[i], "--help")) {
      std::cout << kUsage;
      return 0;
    }
  try {
    if (verb == "predict")
      return predict(Args(argc, argv, 2,
                          with_engine({"--images", "--json", "--score-thresh", "--batch", "--max-images", "--bad-images"}),
                          {"--force"}));
    if (verb == "run")
      return run(Args(argc, argv, 2, with_engine({"--video", "--score-thresh", "--save", "--max-frames"}),
                      {"--force", "--headless"}));
    if (verb == "bench")
      return bench(Args(argc, argv, 2, with_engine({"--batch", "--iters", "--warmup", "--json"}), {"--force"}));
    std::cerr << "edgedet-cpp: error: unknown verb '" << verb << "' (choose from predict, run, bench)\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "edgedet-cpp " << verb << ": error: " << e.what() << "\n";
    return 1;
  }
}

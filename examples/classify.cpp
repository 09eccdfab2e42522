// Classify text with a fine-tuned model, linking Retort as a library:
//
//   build/example_classify runs/sst2/best int8 "a gripping, funny film" "a dull, lifeless remake"
//
// prints one line per text: the label, its probability and the text.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "retort/runtime.h"
#include "retort/serving.h"

int main(int argc, char** argv) {
  // OpenMP/OpenBLAS settings that only apply at start-up (runtime.h); re-executes once when needed.
  retort::reexec_with_recommended_environment(argc, argv);
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s MODEL_DIR fp32|bf16|int8 TEXT...\n", argv[0]);
    return 2;
  }
  try {
    retort::ServingOptions opt;
    opt.precision = argv[2];
    const retort::Classifier classifier(argv[1], opt);
    const std::vector<std::string> texts(argv + 3, argv + argc);
    const auto predictions = classifier.classify_batch(texts);
    for (size_t i = 0; i < texts.size(); ++i) {
      std::printf("%s\t%.4f\t%s\n", predictions[i].label.c_str(), predictions[i].score, texts[i].c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}

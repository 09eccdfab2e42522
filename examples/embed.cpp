// Sentence embeddings and cosine similarity with any BERT or DistilBERT directory:
//
//   build/example_embed runs/distilled/final "A man is playing a guitar." "Someone plays an instrument."
//
// prints the embedding size and the cosine similarity of the first text with each of the others.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "retort/runtime.h"
#include "retort/serving.h"

int main(int argc, char** argv) {
  // OpenMP/OpenBLAS settings that only apply at start-up (runtime.h); re-executes once when needed.
  retort::reexec_with_recommended_environment(argc, argv);
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s MODEL_DIR TEXT TEXT...\n", argv[0]);
    return 2;
  }
  try {
    const retort::Encoder encoder(argv[1]);  // mean pooling, unit-length vectors, fp32
    const std::vector<std::string> texts(argv + 2, argv + argc);
    const torch::Tensor e = encoder.embed_batch(texts);  // (N, H)
    std::printf("dimension %lld\n", static_cast<long long>(encoder.dim()));
    for (size_t i = 1; i < texts.size(); ++i) {
      const double cosine = (e[0] * e[static_cast<int64_t>(i)]).sum().item<double>();
      std::printf("%.4f\t%s\n", cosine, texts[i].c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}

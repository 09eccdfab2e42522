// Masked-token prediction, the first thing a user tries with a BERT: for each [MASK] in a text, the
// k most probable vocabulary tokens with their probabilities.
#pragma once

#include <string>
#include <vector>

#include "retort/heads.h"

namespace retort {

class Tokenizer;

struct MaskPrediction {
  int64_t position = 0;  // index of the [MASK] token in the encoded sequence
  std::vector<std::pair<std::string, double>> candidates;  // (token, probability), best first
  std::vector<int32_t> ids;                                // the same candidates' ids
};

// Throws Error when the text has no [MASK] or the model has no masked-LM head.
std::vector<MaskPrediction> fill_mask(ModelImpl& model, const Tokenizer& tokenizer, const std::string& text,
                                      int top_k = 5);

}  // namespace retort

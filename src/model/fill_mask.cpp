// fill_mask: the top-k tokens (and probabilities) the masked-LM head predicts at each [MASK].
// Vocabulary logits are computed only at the masked positions.
//
// Dimensions: T sequence, H hidden, V vocabulary, M masked positions, K top-k.
#include <torch/torch.h>

#include "retort/error.h"
#include "retort/fill_mask.h"
#include "retort/tokenizer.h"

namespace retort {

std::vector<MaskPrediction> fill_mask(ModelImpl& model, const Tokenizer& tokenizer, const std::string& text,
                                      int top_k) {
  check(model.head == HeadKind::MaskedLM, "fill-mask needs a masked-LM model (architectures *ForMaskedLM), got ",
        architecture_name(model.config.model_type, model.head));
  check(top_k > 0, "--top-k must be positive, got ", top_k);
  EncodeOptions eo;
  eo.max_length = static_cast<size_t>(model.config.max_position_embeddings);
  const Encoding enc = tokenizer.encode(text, eo);
  const int32_t mask_id = tokenizer.mask_id();
  std::vector<int64_t> positions;
  for (size_t i = 0; i < enc.ids.size(); ++i) {
    if (enc.ids[i] == mask_id) positions.push_back(static_cast<int64_t>(i));
  }
  check(!positions.empty(), "the text has no ", tokenizer.id_to_token(mask_id), " token");
  for (int32_t id : enc.ids) {
    check(id < model.config.vocab_size, "token id ", id, " is outside the model's vocabulary (",
          model.config.vocab_size, "): tokenizer and model do not match");
  }

  torch::InferenceMode guard;
  const auto device = model.bert->word_embeddings()->weight.device();
  auto to_tensor = [&](const std::vector<int32_t>& v) {
    return torch::tensor(std::vector<int64_t>(v.begin(), v.end()), torch::kLong).unsqueeze(0).to(device);  // (1, T)
  };
  const auto ids = to_tensor(enc.ids), mask = to_tensor(enc.attention_mask), types = to_tensor(enc.type_ids);
  auto enc_out = model.bert->forward(ids, mask, model.config.type_vocab_size > 0 ? types : torch::Tensor());
  auto pos = torch::tensor(positions, torch::kLong).to(device);                       // (M)
  auto hidden = enc_out.last_hidden_state.index_select(1, pos).squeeze(0);          // (M, H)
  auto probs = torch::softmax(model.mlm_logits(hidden).to(torch::kFloat), -1);      // (M, V)
  const int64_t k = std::min<int64_t>(top_k, probs.size(-1));
  auto [values, indices] = probs.topk(k, -1);                                        // (M, K)
  values = values.to(torch::kCPU).to(torch::kDouble);
  indices = indices.to(torch::kCPU);

  std::vector<MaskPrediction> out;
  for (size_t m = 0; m < positions.size(); ++m) {
    MaskPrediction p;
    p.position = positions[m];
    for (int64_t j = 0; j < k; ++j) {
      const auto id = static_cast<int32_t>(indices[m][j].item<int64_t>());
      p.ids.push_back(id);
      p.candidates.emplace_back(tokenizer.id_to_token(id), values[m][j].item<double>());
    }
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace retort

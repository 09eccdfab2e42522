// Parameter counts per block, for `retort inspect` and the size column of reports.
#include <torch/torch.h>

#include "retort/heads.h"

namespace retort {

std::vector<std::pair<std::string, int64_t>> parameter_blocks(ModelImpl& model) {
  std::vector<std::pair<std::string, int64_t>> blocks;
  auto count = [](torch::nn::Module& m) {
    int64_t n = 0;
    for (const auto& p : m.parameters()) n += p.numel();
    return n;
  };
  auto& bert = *model.bert;
  blocks.emplace_back("embeddings", bert.is_mobile() ? count(*bert.mobile_embeddings) : count(*bert.embeddings));
  const size_t L = bert.is_mobile() ? bert.mobile_encoder->layers.size() : bert.encoder->layers.size();
  for (size_t i = 0; i < L; ++i) {
    blocks.emplace_back("layer " + std::to_string(i), bert.is_mobile() ? count(*bert.mobile_encoder->layers[i])
                                                                       : count(*bert.encoder->layers[i]));
  }
  if (model.bert->pooler) blocks.emplace_back("pooler", count(*model.bert->pooler));
  int64_t head = 0;
  for (const auto& item : model.named_parameters()) {
    if (item.key().compare(0, 5, "bert.") != 0) head += item.value().numel();
  }
  if (model.head != HeadKind::None) blocks.emplace_back("head (" + head_name(model.head) + ")", head);
  return blocks;
}

int64_t parameter_count(ModelImpl& model) {
  int64_t n = 0;
  for (const auto& p : model.parameters()) n += p.numel();
  return n;
}

}  // namespace retort

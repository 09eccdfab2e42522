// Task features: tokenization with truncation, length-grouped batching, padded batches.
#include <algorithm>
#include <numeric>
#include <random>

#include "retort/error.h"
#include "retort/finetune.h"

namespace retort {

TaskFeatures make_features(const Tokenizer& tok, const std::vector<TaskExample>& examples, const FeatureOptions& opt,
                           bool pair) {
  check(opt.max_seq_length >= 8, "max_seq_length must be at least 8, got ", opt.max_seq_length);
  check(opt.truncation == "longest_first" || opt.truncation == "head+tail", "truncation must be longest_first or ",
        "head+tail, got '", opt.truncation, "'");
  TaskFeatures f;
  f.ids.resize(examples.size());
  f.type_ids.resize(examples.size());
  if (examples.empty()) return f;
  const auto max_len = static_cast<size_t>(opt.max_seq_length);

  if (opt.truncation == "head+tail") {
    check(!pair, "head+tail truncation applies to single-text tasks");
    const size_t body = max_len - 2;
    const size_t head = std::min<size_t>(static_cast<size_t>(std::max<int64_t>(opt.head_tokens, 0)), body);
    std::vector<std::string> texts;
    texts.reserve(examples.size());
    for (const auto& e : examples) texts.push_back(e.text_a);
    EncodeOptions eo;
    eo.add_special_tokens = false;
    auto enc = tok.encode_batch(texts, eo);
    for (size_t i = 0; i < enc.size(); ++i) {
      const auto& ids = enc[i].ids;
      std::vector<int32_t> out{tok.cls_id()};
      if (ids.size() <= body) {
        out.insert(out.end(), ids.begin(), ids.end());
      } else {
        out.insert(out.end(), ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(head));
        out.insert(out.end(), ids.end() - static_cast<std::ptrdiff_t>(body - head), ids.end());
      }
      out.push_back(tok.sep_id());
      f.type_ids[i].assign(out.size(), 0);
      f.ids[i] = std::move(out);
    }
    return f;
  }

  EncodeOptions eo;
  eo.max_length = max_len;
  eo.truncation = Truncation::LongestFirst;
  std::vector<Encoding> enc;
  if (pair) {
    std::vector<std::pair<std::string, std::string>> pairs;
    pairs.reserve(examples.size());
    for (const auto& e : examples) pairs.emplace_back(e.text_a, e.text_b);
    enc = tok.encode_pair_batch(pairs, eo);
  } else {
    std::vector<std::string> texts;
    texts.reserve(examples.size());
    for (const auto& e : examples) texts.push_back(e.text_a);
    enc = tok.encode_batch(texts, eo);
  }
  for (size_t i = 0; i < enc.size(); ++i) {
    f.ids[i] = std::move(enc[i].ids);
    f.type_ids[i] = std::move(enc[i].type_ids);
  }
  return f;
}

TaskBatch make_task_batch(const TaskFeatures& f, const std::vector<TaskExample>& examples,
                          const std::vector<size_t>& rows, TaskKind kind, int32_t pad_id, bool labelled,
                          const torch::Device& device) {
  check(!rows.empty(), "make_task_batch: no rows");
  size_t t = 0;
  for (size_t r : rows) t = std::max(t, f.ids.at(r).size());
  const auto b = static_cast<int64_t>(rows.size()), tt = static_cast<int64_t>(t);
  auto ids = torch::full({b, tt}, static_cast<int64_t>(pad_id), torch::kLong);  // (B, T)
  auto types = torch::zeros({b, tt}, torch::kLong);                            // (B, T)
  auto mask = torch::zeros({b, tt}, torch::kLong);                             // (B, T)
  auto pi = ids.accessor<int64_t, 2>();
  auto pt = types.accessor<int64_t, 2>();
  auto pm = mask.accessor<int64_t, 2>();
  TaskBatch batch;
  for (int64_t i = 0; i < b; ++i) {
    const auto& row = f.ids[rows[static_cast<size_t>(i)]];
    const auto& trow = f.type_ids[rows[static_cast<size_t>(i)]];
    for (size_t j = 0; j < row.size(); ++j) {
      pi[i][static_cast<int64_t>(j)] = row[j];
      pt[i][static_cast<int64_t>(j)] = trow[j];
      pm[i][static_cast<int64_t>(j)] = 1;
    }
    batch.tokens += static_cast<int64_t>(row.size());
  }
  if (labelled) {
    if (kind == TaskKind::Regression) {
      auto y = torch::empty({b}, torch::kFloat);  // (B)
      for (int64_t i = 0; i < b; ++i) y[i] = examples[rows[static_cast<size_t>(i)]].score;
      batch.labels = y.to(device);
    } else {
      auto y = torch::empty({b}, torch::kLong);  // (B)
      for (int64_t i = 0; i < b; ++i) {
        const int64_t l = examples[rows[static_cast<size_t>(i)]].label;
        check(l >= 0, "example ", examples[rows[static_cast<size_t>(i)]].guid, " has no label");
        y[i] = l;
      }
      batch.labels = y.to(device);
    }
  }
  batch.input_ids = ids.to(device);
  batch.token_type_ids = types.to(device);
  batch.attention_mask = mask.to(device);
  return batch;
}

std::vector<std::vector<size_t>> length_grouped_batches(const TaskFeatures& f, int64_t batch_size, bool shuffle,
                                                        uint64_t generator_seed) {
  check(batch_size > 0, "batch size must be positive");
  const auto bs = static_cast<size_t>(batch_size);
  std::vector<size_t> order(f.size());
  std::iota(order.begin(), order.end(), 0);
  auto by_length = [&](size_t a, size_t b) { return f.ids[a].size() > f.ids[b].size(); };
  std::mt19937_64 rng(generator_seed);
  if (shuffle) {
    std::shuffle(order.begin(), order.end(), rng);
    const size_t chunk = bs * 50;
    for (size_t s = 0; s < order.size(); s += chunk) {
      auto end = order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), s + chunk));
      std::stable_sort(order.begin() + static_cast<std::ptrdiff_t>(s), end, by_length);
    }
  } else {
    std::stable_sort(order.begin(), order.end(), by_length);
  }
  std::vector<std::vector<size_t>> batches;
  for (size_t s = 0; s < order.size(); s += bs) {
    batches.emplace_back(order.begin() + static_cast<std::ptrdiff_t>(s),
                         order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), s + bs)));
  }
  if (shuffle) std::shuffle(batches.begin(), batches.end(), rng);
  return batches;
}

}  // namespace retort

// TinyBERT's data augmentation (see augment.h): candidates from the teacher's masked-LM head for
// single-piece words and from GloVe neighbours for the others, seeded rewrites, GLUE files out.
//
// Dimensions: W candidate words of a sentence, T tokens, V vocabulary, D word-vector size.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include <torch/torch.h>

#include "retort/augment.h"
#include "retort/checkpoint.h"
#include "retort/error.h"
#include "retort/fs.h"
#include "retort/runtime.h"
#include "retort/tasks.h"

namespace retort {
namespace {

bool has_letter(const std::string& s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u >= 0x80 || std::isalpha(u);
  });
}

// Byte offset of every code point of a UTF-8 string, plus one past the end. (code points + 1)
std::vector<size_t> code_point_bytes(const std::string& s) {
  std::vector<size_t> out;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) out.push_back(i);
  }
  out.push_back(s.size());
  return out;
}

}  // namespace

int64_t default_augment_copies(const std::string& task) {
  if (task == "cola" || task == "mrpc" || task == "stsb" || task == "rte") return 30;
  if (task == "mnli" || task == "qqp") return 10;
  return 20;
}

// ---- word vectors ---------------------------------------------------------------------------------

WordVectors WordVectors::load(const std::string& path, int64_t limit) {
  std::ifstream in(path);
  check(static_cast<bool>(in), path, ": cannot open the word-vector file");
  WordVectors wv;
  std::vector<float> data;
  int64_t dim = -1;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (limit > 0 && static_cast<int64_t>(wv.words_.size()) >= limit) break;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    std::istringstream ls(line);
    std::string word;
    ls >> word;
    std::vector<float> v;
    for (float x; ls >> x;) v.push_back(x);
    check(ls.eof(), path, ":", n, ": expected a word followed by numbers (GloVe's text format)");
    check(!v.empty(), path, ":", n, ": the word '", word, "' has no vector");
    if (dim < 0) dim = static_cast<int64_t>(v.size());
    check(static_cast<int64_t>(v.size()) == dim, path, ":", n, ": ", v.size(), " numbers, the first row had ", dim);
    if (wv.index_.count(word)) continue;  // GloVe files repeat nothing; keep the first if one does
    wv.index_[word] = static_cast<int64_t>(wv.words_.size());
    wv.words_.push_back(word);
    data.insert(data.end(), v.begin(), v.end());
  }
  check(!wv.words_.empty(), path, ": no word vectors");
  auto m = torch::from_blob(data.data(), {static_cast<int64_t>(wv.words_.size()), dim}, torch::kFloat).clone();
  wv.vectors_ = m / m.norm(2, 1, true).clamp_min(1e-12);  // (words, D)
  return wv;
}

std::vector<std::string> WordVectors::nearest(const std::string& word, int64_t k) const {
  auto it = index_.find(word);
  if (it == index_.end() || k <= 0) return {};
  auto sims = vectors_.matmul(vectors_[it->second]);  // (words)
  sims[it->second] = -2.0;                            // never the word itself
  const int64_t n = std::min<int64_t>(k, static_cast<int64_t>(words_.size()) - 1);
  if (n <= 0) return {};
  auto top = std::get<1>(sims.topk(n));  // (n)
  std::vector<std::string> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(words_[static_cast<size_t>(top[i].item<int64_t>())]);
  return out;
}

// ---- the augmenter --------------------------------------------------------------------------------

Augmenter::Augmenter(const std::string& model_dir, const AugmentOptions& opt)
    : opt_(opt), tok_(load_model_tokenizer(model_dir)) {
  check(opt.replace_prob >= 0 && opt.replace_prob <= 1, "augment: the replacement probability must be in [0, 1], got ",
        opt.replace_prob);
  check(opt.top_k > 0, "augment: top_k must be positive");
  check(opt.max_seq_length >= 3, "augment: max_seq_length must be at least 3");
  LoadOptions lo;
  lo.head_from_config = false;
  lo.head = HeadKind::MaskedLM;
  lo.device = parse_device(opt.device);
  LoadReport report;
  model_ = load_model(model_dir, lo, &report);
  check(report.initialised.empty(), model_dir, ": the model has no masked-LM head (", report.initialised.front(),
        " missing); augmentation needs the teacher's masked-LM predictions");
  model_->eval();
  if (!opt.word_vectors.empty()) {
    vectors_ = WordVectors::load(opt.word_vectors, opt.word_vectors_limit);
    have_vectors_ = true;
  }
  // Proposable tokens: whole words with a letter, not special ([CLS], [unused0], ...); the others get a
  // logit penalty so top-k never picks them.
  const auto V = static_cast<int32_t>(tok_.vocab_size());
  std::vector<float> penalty(static_cast<size_t>(model_->config.vocab_size), -1e30f);
  for (int32_t id = 0; id < V && id < model_->config.vocab_size; ++id) {
    const std::string t = tok_.id_to_token(id);
    const bool special = t.size() >= 2 && t.front() == '[' && t.back() == ']';
    if (!special && t.rfind("##", 0) != 0 && has_letter(t)) penalty[static_cast<size_t>(id)] = 0.0f;
  }
  not_proposable_ = torch::tensor(penalty).unsqueeze(0);  // (1, V)
  device_ = lo.device;
}

std::vector<AugmentWord> Augmenter::words(const std::string& text) {
  EncodeOptions eo;
  eo.add_special_tokens = false;
  const Encoding enc = tok_.encode(text, eo);
  const auto bytes = code_point_bytes(text);
  std::vector<AugmentWord> out;
  std::vector<std::vector<size_t>> pieces;  // word -> token positions
  for (size_t i = 0; i < enc.size(); ++i) {
    const int w = enc.word_ids[i];
    if (w < 0) continue;
    if (static_cast<size_t>(w) >= out.size()) {
      out.resize(static_cast<size_t>(w) + 1);
      pieces.resize(static_cast<size_t>(w) + 1);
    }
    pieces[static_cast<size_t>(w)].push_back(i);
  }
  for (size_t w = 0; w < out.size(); ++w) {
    auto& word = out[w];
    if (pieces[w].empty()) continue;
    const size_t b = enc.offsets[pieces[w].front()].first, e = enc.offsets[pieces[w].back()].second;
    word.begin = bytes[std::min(b, bytes.size() - 1)];
    word.end = bytes[std::min(e, bytes.size() - 1)];
    word.text = text.substr(word.begin, word.end - word.begin);
  }
  // Single-piece words: one masked copy of the sentence per word, one forward pass for all of them.
  const int64_t T = std::min<int64_t>(static_cast<int64_t>(enc.size()) + 2, opt_.max_seq_length);
  std::vector<size_t> masked_words;  // words with a masked row
  for (size_t w = 0; w < out.size(); ++w) {
    if (pieces[w].size() != 1 || !has_letter(out[w].text)) continue;
    const size_t pos = pieces[w].front();
    if (static_cast<int64_t>(pos) + 1 >= T - 1) continue;  // cut off by max_seq_length
    if (enc.tokens[pos] == tok_.config().unk_token) continue;
    masked_words.push_back(w);
  }
  if (!masked_words.empty()) {
    const auto W = static_cast<int64_t>(masked_words.size());
    std::vector<int64_t> row(static_cast<size_t>(T));
    row[0] = tok_.cls_id();
    for (int64_t t = 1; t < T - 1; ++t) row[static_cast<size_t>(t)] = enc.ids[static_cast<size_t>(t - 1)];
    row[static_cast<size_t>(T - 1)] = tok_.sep_id();
    auto ids = torch::tensor(row, torch::kLong).repeat({W, 1});  // (W, T)
    std::vector<int64_t> positions;
    for (int64_t i = 0; i < W; ++i) {
      positions.push_back(static_cast<int64_t>(pieces[masked_words[static_cast<size_t>(i)]].front()) + 1);
      ids[i][positions.back()] = tok_.mask_id();
    }
    torch::Tensor top;  // (W, k) token ids, best first
    {
      torch::InferenceMode guard;
      auto hidden = model_->bert->forward(ids.to(device_), torch::ones_like(ids).to(device_), {}).last_hidden_state;
      auto pos = torch::tensor(positions, torch::kLong).to(device_);                      // (W)
      auto at_mask = hidden.index({torch::arange(W, pos.options()), pos});                 // (W, H)
      auto logits = model_->mlm_logits(at_mask).to(torch::kFloat).cpu();                  // (W, V)
      logits = logits + not_proposable_;
      top = std::get<1>(logits.topk(opt_.top_k + 1, -1));  // one extra: the word itself may be among them
    }
    for (int64_t i = 0; i < W; ++i) {
      auto& word = out[masked_words[static_cast<size_t>(i)]];
      const int32_t self = enc.ids[pieces[masked_words[static_cast<size_t>(i)]].front()];
      for (int64_t j = 0; j < top.size(1) && static_cast<int64_t>(word.candidates.size()) < opt_.top_k; ++j) {
        const auto id = static_cast<int32_t>(top[i][j].item<int64_t>());
        if (id != self) word.candidates.push_back(tok_.id_to_token(id));
      }
    }
  }
  // Words of several pieces: nearest neighbours in the word vectors (lowercased, as GloVe's 6B set).
  if (have_vectors_) {
    for (size_t w = 0; w < out.size(); ++w) {
      if (pieces[w].size() < 2 || !has_letter(out[w].text)) continue;
      std::string key = out[w].text;
      std::transform(key.begin(), key.end(), key.begin(), [](unsigned char c) { return std::tolower(c); });
      out[w].candidates = vectors_.nearest(key, opt_.top_k);
    }
  }
  return out;
}

std::vector<std::string> Augmenter::augment(const std::string& text, int64_t copies, std::mt19937_64& rng) {
  const auto ws = words(text);
  std::uniform_real_distribution<double> coin(0.0, 1.0);
  std::set<std::string> seen = {text};
  std::vector<std::string> out;
  for (int64_t c = 0; c < copies; ++c) {
    std::string rewritten;
    size_t cursor = 0;
    for (const auto& w : ws) {
      if (w.candidates.empty()) continue;
      // Draw the candidate first, then the coin, so each word uses the generator the same way.
      std::uniform_int_distribution<size_t> pick(0, w.candidates.size() - 1);
      const std::string& candidate = w.candidates[pick(rng)];
      if (coin(rng) >= opt_.replace_prob) continue;
      rewritten.append(text, cursor, w.begin - cursor);
      rewritten += candidate;
      cursor = w.end;
    }
    rewritten.append(text, cursor, std::string::npos);
    if (seen.insert(rewritten).second) out.push_back(std::move(rewritten));
  }
  return out;
}

// ---- a task file ----------------------------------------------------------------------------------

AugmentReport augment_task(const std::string& task, const std::string& data_dir, const std::string& model_dir,
                           const std::string& out_path, const AugmentOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  const TaskSpec& spec = task_spec(task);
  check(spec.kind != TaskKind::SpanExtraction && spec.name != "imdb", "augment: task ", spec.name,
        " is not a GLUE task in TSV format (augment supports the GLUE tasks)");
  const std::string in_path = task_file(spec, data_dir, spec.train_file);
  const TsvTable table = read_glue_table(spec, in_path, true);
  read_glue_tsv(spec, in_path, true);  // validates every row (labels, field counts) before any work
  Augmenter aug(model_dir, opt);
  const int64_t copies = opt.copies > 0 ? opt.copies : default_augment_copies(spec.name);
  std::mt19937_64 rng(opt.seed);

  std::ostringstream os;
  for (size_t n = 0; n < table.first_row; ++n) os << table.lines[n] << "\n";  // header
  AugmentReport report;
  auto write_row = [&](const std::vector<std::string>& f) {
    for (size_t i = 0; i < f.size(); ++i) os << (i ? "\t" : "") << f[i];
    os << "\n";
    ++report.written;
  };
  for (size_t n = table.first_row; n < table.lines.size(); ++n) {
    const std::string& line = table.lines[n];
    if (std::all_of(line.begin(), line.end(), [](char c) { return c == ' ' || c == '\t'; })) continue;
    if (opt.max_examples > 0 && report.examples >= opt.max_examples) break;
    ++report.examples;
    const auto fields = split_tsv_fields(line);
    write_row(fields);
    for (int col : {table.col_a, table.col_b}) {
      if (col < 0) continue;
      for (auto& text : aug.augment(fields[static_cast<size_t>(col)], copies, rng)) {
        auto f = fields;
        for (char& ch : text) {
          if (ch == '\t' || ch == '\n' || ch == '\r') ch = ' ';
        }
        f[static_cast<size_t>(col)] = std::move(text);
        write_row(f);
      }
    }
    if (report.examples % 200 == 0) {
      std::cerr << "augment: " << report.examples << " examples, " << report.written << " rows\n";
    }
  }
  const auto parent = std::filesystem::path(out_path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  write_file_atomic(out_path, os.str());
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

}  // namespace retort

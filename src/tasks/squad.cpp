// SQuAD: reading, windows, span decoding, scoring, fine-tuning.
#include "retort/squad.h"
#include "retort/inference.h"

#include <algorithm>
#include <functional>
#include <chrono>
#include <filesystem>
#include <limits>
#include <numeric>
#include <random>

#include <torch/nn/functional/loss.h>

#include "retort/checkpoint.h"
#include "retort/distill_step.h"
#include "retort/distributed.h"
#include "retort/error.h"
#include "retort/fs.h"
#include "retort/losses.h"
#include "retort/metrics.h"
#include "retort/runtime.h"
#include "text/unicode.h"

namespace retort {
namespace {

namespace fs = std::filesystem;
namespace F = torch::nn::functional;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

int64_t codepoints(const std::string& s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

const json& field(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  check(it != j.end(), where, ": missing field '", key, "'");
  return *it;
}

// A file of the data directory: an exact name, else the only DIR/<prefix>*.json.
std::string find_json_in(const std::string& dir, const std::string& given, const std::string& prefix) {
  if (!given.empty()) return fs::exists(given) ? given : join_path(dir, given);
  check(fs::is_directory(dir), dir, ": not a directory (SQuAD data: a folder with train*.json and dev*.json)");
  std::vector<std::string> found;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) == 0 && e.path().extension() == ".json") found.push_back(e.path().string());
  }
  check(found.size() == 1, dir, ": expected one ", prefix, "*.json, found ", found.size(), " (name it with ",
        prefix == "train" ? "train_file" : "dev_file", ")");
  return found.front();
}

struct QaLogits {
  torch::Tensor start, end;  // (B, T) fp32
};

QaLogits qa_logits(ModelImpl& model, const torch::Tensor& ids, const torch::Tensor& types, const torch::Tensor& mask,
                   bool bf16, const torch::Device& device) {
  AutocastGuard autocast(bf16, device);
  const auto out = model.forward(ids, mask, model.config.type_vocab_size > 0 ? types : torch::Tensor());
  return {out.start_logits.to(torch::kFloat), out.end_logits.to(torch::kFloat)};
}

struct QaBatch {
  torch::Tensor ids, types, mask, start, end;  // (B, T) x3, (B) x2
};

QaBatch pad_features(const std::vector<SquadFeature>& f, const std::vector<size_t>& rows, int32_t pad_id,
                         const torch::Device& device) {
  size_t t = 0;
  for (size_t r : rows) t = std::max(t, f[r].ids.size());
  const auto b = static_cast<int64_t>(rows.size());
  auto ids = torch::full({b, static_cast<int64_t>(t)}, static_cast<int64_t>(pad_id), torch::kLong);
  auto types = torch::zeros_like(ids), mask = torch::zeros_like(ids);
  auto start = torch::empty({b}, torch::kLong), end = torch::empty({b}, torch::kLong);
  auto pi = ids.accessor<int64_t, 2>(), pt = types.accessor<int64_t, 2>(), pm = mask.accessor<int64_t, 2>();
  for (int64_t i = 0; i < b; ++i) {
    const auto& x = f[rows[static_cast<size_t>(i)]];
    for (size_t j = 0; j < x.ids.size(); ++j) {
      pi[i][static_cast<int64_t>(j)] = x.ids[j];
      pt[i][static_cast<int64_t>(j)] = x.type_ids[j];
      pm[i][static_cast<int64_t>(j)] = 1;
    }
    start[i] = x.start_position;
    end[i] = x.end_position;
  }
  return {ids.to(device), types.to(device), mask.to(device), start.to(device), end.to(device)};
}

std::vector<std::vector<size_t>> feature_batches(const std::vector<SquadFeature>& f, int64_t batch, bool shuffle,
                                                 uint64_t seed) {
  TaskFeatures lengths;
  lengths.ids.reserve(f.size());
  for (const auto& x : f) lengths.ids.push_back(x.ids);
  return length_grouped_batches(lengths, batch, shuffle, seed);
}

}  // namespace

bool squad_has_unanswerable(const std::vector<SquadQuestion>& questions) {
  return std::any_of(questions.begin(), questions.end(), [](const SquadQuestion& q) { return q.impossible; });
}

std::string find_squad_file(const std::string& dir, const std::string& file, const std::string& prefix) {
  return find_json_in(dir, file, prefix);
}

std::vector<SquadQuestion> read_squad(const std::string& path) {
  check(fs::is_regular_file(path), path, ": no such file");
  json doc;
  try {
    doc = json::parse(read_file(path));
  } catch (const json::exception& e) {
    fail(path, ": invalid JSON (", e.what(), ")");
  }
  std::vector<SquadQuestion> out;
  const json& data = field(doc, "data", path);
  check(data.is_array(), path, ": 'data' must be an array of articles");
  for (size_t a = 0; a < data.size(); ++a) {
    const json& paragraphs = field(data[a], "paragraphs", path + ": article " + std::to_string(a));
    for (size_t p = 0; p < paragraphs.size(); ++p) {
      const std::string where = path + ": article " + std::to_string(a) + ", paragraph " + std::to_string(p);
      const std::string context = field(paragraphs[p], "context", where).get<std::string>();
      const int64_t context_len = codepoints(context);
      for (const json& qa : field(paragraphs[p], "qas", where)) {
        SquadQuestion q;
        q.id = field(qa, "id", where).get<std::string>();
        const std::string qwhere = path + ": question " + q.id;
        q.question = field(qa, "question", qwhere).get<std::string>();
        q.context = context;
        q.impossible = qa.value("is_impossible", false);
        for (const json& ans : field(qa, "answers", qwhere)) {
          const std::string text = field(ans, "text", qwhere).get<std::string>();
          const int64_t start = field(ans, "answer_start", qwhere).get<int64_t>();
          check(start >= 0 && start + codepoints(text) <= context_len, qwhere, ": answer_start ", start,
                " + the answer's length is outside the context (", context_len, " characters)");
          q.answers.push_back(text);
          q.answer_starts.push_back(start);
        }
        check(q.impossible || !q.answers.empty(), qwhere, ": no answers (and not marked is_impossible)");
        out.push_back(std::move(q));
      }
    }
  }
  check(!out.empty(), path, ": no questions");
  return out;
}

std::vector<SquadFeature> make_squad_features(const Tokenizer& tok, const std::vector<SquadQuestion>& questions,
                                              const SquadOptions& opt) {
  check(opt.doc_stride > 0 && opt.max_query_length > 0, "doc_stride and max_query_length must be positive");
  EncodeOptions raw;
  raw.add_special_tokens = false;
  std::vector<SquadFeature> out;
  for (size_t qi = 0; qi < questions.size(); ++qi) {
    const SquadQuestion& q = questions[qi];
    std::vector<int32_t> qids = tok.encode(q.question, raw).ids;
    if (static_cast<int64_t>(qids.size()) > opt.max_query_length) qids.resize(static_cast<size_t>(opt.max_query_length));
    const Encoding c = tok.encode(q.context, raw);
    const int64_t n = static_cast<int64_t>(c.size());
    const int64_t room = opt.max_seq_length - static_cast<int64_t>(qids.size()) - 3;
    check(room > 0, "max_seq_length ", opt.max_seq_length, " leaves no room for the context after a ", qids.size(),
          "-token question");
    // The first answer's token span in the context (training target).
    int64_t ans_s = -1, ans_e = -1;
    if (!q.impossible && !q.answers.empty()) {
      const int64_t cs = q.answer_starts[0], ce = cs + codepoints(q.answers[0]);
      for (int64_t i = 0; i < n; ++i) {
        const auto [b, e] = c.offsets[static_cast<size_t>(i)];
        if (ans_s < 0 && static_cast<int64_t>(e) > cs) ans_s = i;
        if (static_cast<int64_t>(b) < ce) ans_e = i;
      }
      if (ans_s > ans_e) ans_s = ans_e = -1;
    }
    for (int64_t start = 0;; start += std::min(room, opt.doc_stride)) {
      const int64_t len = std::min(room, n - start);
      SquadFeature f;
      f.question = qi;
      f.ids.push_back(tok.cls_id());
      f.ids.insert(f.ids.end(), qids.begin(), qids.end());
      f.ids.push_back(tok.sep_id());
      f.type_ids.assign(f.ids.size(), 0);
      f.offsets.assign(f.ids.size(), {-1, -1});
      const int64_t ctx0 = static_cast<int64_t>(f.ids.size());
      for (int64_t i = start; i < start + len; ++i) {
        f.ids.push_back(c.ids[static_cast<size_t>(i)]);
        f.type_ids.push_back(1);
        const auto [b, e] = c.offsets[static_cast<size_t>(i)];
        f.offsets.emplace_back(static_cast<int64_t>(b), static_cast<int64_t>(e));
      }
      f.ids.push_back(tok.sep_id());
      f.type_ids.push_back(1);
      f.offsets.emplace_back(-1, -1);
      if (ans_s >= start && ans_e < start + len && ans_s >= 0) {
        f.start_position = ctx0 + ans_s - start;
        f.end_position = ctx0 + ans_e - start;
      }
      out.push_back(std::move(f));
      if (start + len >= n) break;
    }
  }
  return out;
}

std::map<std::string, std::string> decode_squad(const std::vector<SquadQuestion>& questions,
                                                const std::vector<SquadFeature>& features,
                                                const std::vector<std::vector<float>>& start_logits,
                                                const std::vector<std::vector<float>>& end_logits,
                                                const SquadOptions& opt) {
  check(start_logits.size() == features.size() && end_logits.size() == features.size(),
        "decode_squad: one start/end logit vector per feature expected");
  struct Best {
    double score = -std::numeric_limits<double>::infinity();
    int64_t begin = -1, end = -1;  // code points
    double null_score = std::numeric_limits<double>::infinity();
  };
  std::vector<Best> best(questions.size());
  // The n_best highest of the first n logits (the feature's own tokens; batches pad beyond them).
  auto top = [&](const std::vector<float>& v, size_t n) {
    std::vector<int64_t> idx(n);
    std::iota(idx.begin(), idx.end(), 0);
    const auto k = std::min<size_t>(static_cast<size_t>(opt.n_best), idx.size());
    std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k), idx.end(),
                      [&](int64_t a, int64_t b) { return v[static_cast<size_t>(a)] > v[static_cast<size_t>(b)]; });
    idx.resize(k);
    return idx;
  };
  for (size_t fi = 0; fi < features.size(); ++fi) {
    const SquadFeature& f = features[fi];
    const auto& sl = start_logits[fi];
    const auto& el = end_logits[fi];
    check(sl.size() >= f.ids.size() && el.size() >= f.ids.size(), "decode_squad: feature ", fi, " has ", f.ids.size(),
          " tokens but ", sl.size(), " logits");
    Best& b = best[f.question];
    b.null_score = std::min(b.null_score, static_cast<double>(sl[0]) + el[0]);
    for (int64_t s : top(sl, f.ids.size())) {
      for (int64_t e : top(el, f.ids.size())) {
        const auto& os = f.offsets[static_cast<size_t>(s)];
        const auto& oe = f.offsets[static_cast<size_t>(e)];
        if (os.first < 0 || oe.first < 0 || e < s || e - s + 1 > opt.max_answer_length) continue;
        const double score = static_cast<double>(sl[static_cast<size_t>(s)]) + el[static_cast<size_t>(e)];
        if (score > b.score) {
          b.score = score;
          b.begin = os.first;
          b.end = oe.second;
        }
      }
    }
  }
  std::map<std::string, std::string> out;
  for (size_t qi = 0; qi < questions.size(); ++qi) {
    const Best& b = best[qi];
    std::string text;
    const bool null_wins = opt.version_2 && (b.begin < 0 || b.null_score - b.score > opt.null_score_diff_threshold);
    if (!null_wins && b.begin >= 0) {
      std::vector<char32_t> cps;
      text::decode_utf8(questions[qi].context, cps, "context");
      text = text::to_utf8(cps.data() + b.begin, static_cast<size_t>(b.end - b.begin));
    }
    out[questions[qi].id] = text;
  }
  return out;
}

json SquadEval::to_json() const {
  return {{"exact_match", exact_match}, {"f1", f1}, {"questions", questions}, {"features", features},
          {"seconds", seconds}};
}

SquadEval score_squad(const std::vector<SquadQuestion>& questions, const std::map<std::string, std::string>& predictions,
                      bool version_2) {
  check(!questions.empty(), "score_squad: no questions");
  SquadEval r;
  for (const auto& q : questions) {
    auto it = predictions.find(q.id);
    check(it != predictions.end(), "score_squad: no prediction for question ", q.id);
    r.exact_match += squad_max_over_truths(false, it->second, q.answers, version_2);
    r.f1 += squad_max_over_truths(true, it->second, q.answers, version_2);
  }
  r.questions = static_cast<int64_t>(questions.size());
  r.exact_match /= static_cast<double>(r.questions);
  r.f1 /= static_cast<double>(r.questions);
  r.predictions = predictions;
  return r;
}

Model load_qa_model(const std::string& dir, const torch::Device& device, uint64_t seed) {
  const ModelConfig config = ModelConfig::load(dir);
  const HeadKind head = head_from_architectures(config.architectures);
  check(head != HeadKind::SequenceClassification, dir,
        ": the model has a sequence-classification head; SQuAD needs question answering");
  LoadOptions opt;
  opt.device = device;
  if (head != HeadKind::QuestionAnswering) {
    opt.head_from_config = false;
    opt.head = HeadKind::QuestionAnswering;
  }
  torch::manual_seed(seed);
  Model model = load_model(dir, opt);
  if (head != HeadKind::QuestionAnswering) model->config.extra["finetuning_task"] = "squad";
  return model;
}

namespace {

// The decoding loop behind both answer_squad: `logits` maps a padded batch of windows to fp32 logits.
std::map<std::string, std::string> answer_with(const std::function<QaLogits(const QaBatch&)>& logits,
                                               const Tokenizer& tok, const std::vector<SquadQuestion>& questions,
                                               const SquadOptions& opt, int64_t* n_features) {
  const auto features = make_squad_features(tok, questions, opt);
  const torch::Device device = parse_device(opt.device);
  std::vector<std::vector<float>> starts(features.size()), ends(features.size());
  for (const auto& rows : feature_batches(features, opt.batch_size, false, 0)) {
    const QaLogits l = logits(pad_features(features, rows, tok.pad_id(), device));
    const torch::Tensor s = l.start.cpu().contiguous(), e = l.end.cpu().contiguous();  // (B, T)
    for (size_t i = 0; i < rows.size(); ++i) {
      const float* ps = s[static_cast<int64_t>(i)].data_ptr<float>();
      const float* pe = e[static_cast<int64_t>(i)].data_ptr<float>();
      const auto n = static_cast<std::ptrdiff_t>(features[rows[i]].ids.size());  // drop the batch's padding
      starts[rows[i]].assign(ps, ps + n);
      ends[rows[i]].assign(pe, pe + n);
    }
  }
  if (n_features) *n_features = static_cast<int64_t>(features.size());
  return decode_squad(questions, features, starts, ends, opt);
}

// Answers the first opt.max_questions questions with either kind of model and scores them.
template <class AnyModel>
SquadEval evaluate_any(AnyModel& model, const Tokenizer& tok, const std::vector<SquadQuestion>& all,
                       const SquadOptions& opt) {
  const auto t0 = Clock::now();
  const bool cut = opt.max_questions > 0 && static_cast<size_t>(opt.max_questions) < all.size();
  const std::vector<SquadQuestion> questions(all.begin(), cut ? all.begin() + opt.max_questions : all.end());
  int64_t n_features = 0;
  const auto answers = answer_squad(model, tok, questions, opt, &n_features);
  SquadEval r = score_squad(questions, answers, opt.version_2);
  r.features = n_features;
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return r;
}

}  // namespace

std::map<std::string, std::string> answer_squad(ModelImpl& model, const Tokenizer& tok,
                                                const std::vector<SquadQuestion>& questions, const SquadOptions& opt,
                                                int64_t* n_features) {
  check(model.head == HeadKind::QuestionAnswering, "the model has no question-answering head");
  const torch::Device device = parse_device(opt.device);
  const bool was_training = model.is_training();
  model.eval();
  torch::NoGradGuard no_grad;
  auto answers = answer_with([&](const QaBatch& b) { return qa_logits(model, b.ids, b.types, b.mask, opt.bf16, device); },
                             tok, questions, opt, n_features);
  if (was_training) model.train();
  return answers;
}

std::map<std::string, std::string> answer_squad(const InferenceModel& model, const Tokenizer& tok,
                                                const std::vector<SquadQuestion>& questions, const SquadOptions& opt,
                                                int64_t* n_features) {
  check(model.head() == HeadKind::QuestionAnswering, "the model has no question-answering head");
  const bool types = model.config().type_vocab_size > 0;
  return answer_with(
      [&](const QaBatch& b) {
        const ModelOutput o = model.forward(b.ids, b.mask, types ? b.types : torch::Tensor());
        return QaLogits{o.start_logits, o.end_logits};
      },
      tok, questions, opt, n_features);
}

SquadEval evaluate_squad(ModelImpl& model, const Tokenizer& tok, const std::vector<SquadQuestion>& all,
                         const SquadOptions& opt) {
  return evaluate_any(model, tok, all, opt);
}

SquadEval evaluate_squad(const InferenceModel& model, const Tokenizer& tok, const std::vector<SquadQuestion>& all,
                         const SquadOptions& opt) {
  return evaluate_any(model, tok, all, opt);
}

SquadFinetuneConfig SquadFinetuneConfig::from_json(const json& j) {
  SquadFinetuneConfig c;
  json base = j;
  base["task"] = "squad";
  c.base = FinetuneConfig::from_json(base);
  c.squad.max_seq_length = j.value("max_seq_length", int64_t{384});
  c.squad.doc_stride = j.value("doc_stride", c.squad.doc_stride);
  c.squad.max_query_length = j.value("max_query_length", c.squad.max_query_length);
  c.squad.max_answer_length = j.value("max_answer_length", c.squad.max_answer_length);
  c.squad.version_2 = j.value("version_2", false);
  c.squad.batch_size = c.base.eval_batch_size;
  c.squad.bf16 = c.base.train.bf16;
  c.squad.device = c.base.train.device;
  c.squad.max_questions = c.base.max_eval_examples;
  c.train_file = j.value("train_file", std::string());
  c.dev_file = j.value("dev_file", std::string());
  return c;
}

json SquadFinetuneResult::to_json() const {
  return {{"best_dir", best_dir}, {"best_epoch", best_epoch}, {"best", best.to_json()}, {"epochs", epochs}};
}

SquadFinetuneResult run_squad_finetune(const SquadFinetuneConfig& cfg) {
  const FinetuneConfig& b = cfg.base;
  check(!b.out_dir.empty(), "fine-tuning: no output directory");
  const DistEnv dist = dist_env_from_environment();
  const torch::Device device = rank_device(parse_device(b.train.device), dist);  // data parallel on CUDA: GPU LOCAL_RANK
  const Tokenizer tok = load_model_tokenizer(b.model_dir);
  std::vector<SquadQuestion> train = read_squad(find_squad_file(b.data_dir, cfg.train_file, "train"));
  const std::vector<SquadQuestion> dev = read_squad(find_squad_file(b.data_dir, cfg.dev_file, "dev"));
  if (b.max_train_examples > 0 && static_cast<size_t>(b.max_train_examples) < train.size()) {
    train.resize(static_cast<size_t>(b.max_train_examples));
  }
  Model model = load_qa_model(b.model_dir, device, b.train.seed);
  Model teacher{nullptr};
  if (!b.teacher_dir.empty()) {
    LoadOptions o;
    o.device = device;
    teacher = load_model(b.teacher_dir, o);
    check(teacher->head == HeadKind::QuestionAnswering, b.teacher_dir, ": the teacher needs a question-answering head");
    teacher->eval();
  }
  SquadOptions so = cfg.squad;
  so.version_2 = so.version_2 || squad_has_unanswerable(train) || squad_has_unanswerable(dev);
  const auto features = make_squad_features(tok, train, so);
  fs::create_directories(b.out_dir);
  // Data parallel (distributed.h), as the other tasks: every rank draws the same global batches of
  // batch_size x N features and trains on its own slice; only full global batches are used.
  const std::shared_ptr<DataParallel> dp = data_parallel_from_environment(device);
  const int64_t ranks = dist.world_size, global_batch = b.train.batch_size * ranks;
  const auto n_features = static_cast<int64_t>(features.size());
  const int64_t micro = global_batches(n_features, b.train.batch_size, dist);
  check(micro > 0, "SQuAD fine-tuning: ", n_features, " training features do not fill one batch of ", global_batch,
        " (", ranks, " ranks x ", b.train.batch_size, ")");
  const int64_t total = b.train.max_steps > 0 ? b.train.max_steps
                                              : std::max<int64_t>(1, micro * b.train.n_epoch / b.train.gradient_accumulation_steps);
  Trainer trainer(model, b.train, total, b.out_dir);
  if (dp) trainer.set_data_parallel(dp);
  SquadFinetuneResult result;
  result.best_dir = join_path(b.out_dir, "best");
  const double w_task = teacher ? b.alpha_task : 1.0;
  for (int64_t epoch = 1; !trainer.done(); ++epoch) {
    model->train();
    for (const auto& global : feature_batches(features, global_batch, true, b.train.seed + static_cast<uint64_t>(epoch))) {
      const std::vector<size_t> rows = rank_rows(global, dist, b.train.batch_size);
      if (rows.empty()) continue;
      const QaBatch pb = pad_features(features, rows, tok.pad_id(), device);
      const QaLogits l = qa_logits(*model, pb.ids, pb.types, pb.mask, b.train.bf16, device);
      // Padding never wins, and no gradient reaches it: the loss does not depend on how far a batch is
      // padded (so N ranks with their own padding take the steps of one process with their rows).
      const torch::Tensor pad = (1 - pb.mask).to(torch::kFloat) * -1e4;  // (B, T)
      torch::Tensor task = (F::cross_entropy(l.start + pad, pb.start) + F::cross_entropy(l.end + pad, pb.end)) / 2;
      std::map<std::string, torch::Tensor> terms{{"loss_task", task}};
      torch::Tensor loss = w_task * task;
      if (teacher) {
        QaLogits t;
        {
          torch::NoGradGuard no_grad;
          t = qa_logits(*teacher, pb.ids, pb.types, pb.mask, b.train.bf16, device);
        }
        torch::Tensor ce = (soft_target_loss(l.start + pad, t.start + pad, b.temperature) +
                            soft_target_loss(l.end + pad, t.end + pad, b.temperature)) / 2;
        terms["loss_ce"] = ce;
        loss = loss + b.alpha_ce * ce;
      }
      trainer.accumulate(loss, terms, pb.mask.sum().item<int64_t>());
      if (trainer.done() || trainer.stop_requested()) break;
    }
    if (!trainer.is_main()) {  // rank 0 alone evaluates and saves
      if (trainer.stop_requested()) break;
      continue;
    }
    const SquadEval e = evaluate_squad(*model, tok, dev, so);
    result.epochs.push_back({{"epoch", epoch}, {"step", trainer.step()}, {"eval", e.to_json()}});
    if (result.best_epoch == 0 || e.f1 > result.best.f1) {
      result.best_epoch = epoch;
      result.best = e;
      save_task_model(*model, tok, result.best_dir);
      write_file_atomic(join_path(b.out_dir, "predictions.json"), json(e.predictions).dump(2) + "\n");
    }
    write_file_atomic(join_path(b.out_dir, "eval_results.json"), result.to_json().dump(2) + "\n");
    if (trainer.stop_requested()) break;
  }
  return result;
}

}  // namespace retort

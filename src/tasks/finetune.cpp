// Task models, evaluation and the fine-tuning loop (with optional task-specific distillation).
#include "retort/finetune.h"
#include "retort/inference.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
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

namespace retort {
namespace {

namespace fs = std::filesystem;
namespace F = torch::nn::functional;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::vector<std::string> task_id2label(const TaskSpec& spec) {
  return spec.kind == TaskKind::Regression ? std::vector<std::string>{"LABEL_0"} : spec.labels;
}

// Class logits of a batch in fp32. (B, C)
// The model's forward pass on a batch (logits in fp32), keeping what `fo` asks for.
ModelOutput task_forward(ModelImpl& model, const TaskBatch& b, bool bf16, const torch::Device& device,
                         const ForwardOptions& fo = {}) {
  AutocastGuard autocast(bf16, device);
  const bool types = model.config.type_vocab_size > 0;
  ModelOutput out = model.forward(b.input_ids, b.attention_mask, types ? b.token_type_ids : torch::Tensor(), fo);
  out.logits = out.logits.to(torch::kFloat);  // (B, C)
  return out;
}

torch::Tensor task_logits(ModelImpl& model, const TaskBatch& b, bool bf16, const torch::Device& device) {
  return task_forward(model, b, bf16, device).logits;
}

}  // namespace

void save_task_model(ModelImpl& model, const Tokenizer& tok, const std::string& dir) {
  const std::string tmp = dir + ".tmp";
  fs::remove_all(tmp);
  save_model(model, tmp);
  tok.save(tmp);
  fs::remove_all(dir);
  fs::rename(tmp, dir);
}

void check_head_fits(const ModelImpl& model, const TaskSpec& spec, const std::string& source) {
  check(spec.kind != TaskKind::SpanExtraction || model.head == HeadKind::QuestionAnswering, source,
        ": task ", spec.name, " needs a question-answering head, the model has ", head_name(model.head));
  if (spec.kind == TaskKind::SpanExtraction) return;
  check(model.head == HeadKind::SequenceClassification, source, ": task ", spec.name,
        " needs a sequence-classification head, the model has '", head_name(model.head), "'");
  const int64_t n = model.config.num_labels();
  check(n == spec.num_labels(), source, ": the model's head has ", n, " output", n == 1 ? "" : "s", ", task ",
        spec.name, " needs ", spec.num_labels(),
        spec.kind == TaskKind::Regression ? " (a regression)" : " (one per label)");
  auto it = model.config.extra.find("finetuning_task");
  if (it != model.config.extra.end() && it->is_string()) {
    const std::string trained_for = it->get<std::string>();
    std::string known;
    try {
      known = task_spec(trained_for).name;
    } catch (const Error&) {  // a name we do not know ("mnli-mm", a custom task): nothing to compare
    }
    check(known.empty() || known == spec.name, source, ": the model was fine-tuned for ", trained_for, ", not ",
          spec.name);
  }
  // Label names: transformers' generic LABEL_i say nothing; real names must be the task's, in its order
  // (a model trained with another order would be scored, or distilled from, with permuted classes).
  if (spec.kind == TaskKind::Classification) {
    auto lower = [](std::string s) {
      for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      return s;
    };
    bool generic = true, same = true;
    for (size_t i = 0; i < model.config.id2label.size(); ++i) {
      const std::string& name = model.config.id2label[i];
      generic = generic && name == "LABEL_" + std::to_string(i);
      same = same && lower(name) == lower(spec.labels[i]);
    }
    if (!generic && !same) {
      std::string have, want;
      for (size_t i = 0; i < spec.labels.size(); ++i) {
        have += (i ? ", " : "") + model.config.id2label[i];
        want += (i ? ", " : "") + spec.labels[i];
      }
      fail(source, ": the model's labels (", have, ") are not task ", spec.name, "'s (", want,
           ") in that order; re-label its config.json (id2label) if they mean the same classes");
    }
  }
}

Model load_task_model(const std::string& dir, const TaskSpec& spec, const torch::Device& device, uint64_t seed,
                      std::vector<std::string>* initialised) {
  check(spec.kind != TaskKind::SpanExtraction, "load_task_model: use load_qa_model for ", spec.name);
  const ModelConfig config = ModelConfig::load(dir);
  const HeadKind head = head_from_architectures(config.architectures);
  check(head != HeadKind::QuestionAnswering, dir, ": the model has a question-answering head; task ", spec.name,
        " needs sequence classification");
  LoadOptions opt;
  opt.device = device;
  if (head != HeadKind::SequenceClassification) {  // an encoder or MLM model: a new head for the task
    opt.head_from_config = false;
    opt.head = HeadKind::SequenceClassification;
    opt.id2label = task_id2label(spec);
    opt.problem_type = spec.kind == TaskKind::Regression ? "regression" : "single_label_classification";
  }
  torch::manual_seed(seed);
  LoadReport report;
  Model model = load_model(dir, opt, &report);
  if (head != HeadKind::SequenceClassification) model->config.extra["finetuning_task"] = spec.name;
  check_head_fits(*model, spec, dir);
  if (initialised) *initialised = report.initialised;
  return model;
}

nlohmann::json EvalResult::to_json(bool with_predictions) const {
  nlohmann::json j = {{"split", split}, {"examples", examples}, {"seconds", seconds}};
  if (!metrics.empty()) {
    j["metrics"] = metrics;
    j["score"] = score;
  }
  if (with_predictions) {
    j["predicted_labels"] = predicted_labels;
    j["predicted_scores"] = predicted_scores;
  }
  return j;
}

namespace {

// The evaluation loop behind both evaluate_examples: `logits` maps a padded batch to fp32 (B, C).
EvalResult evaluate_with(const std::function<torch::Tensor(const TaskBatch&)>& logits, const Tokenizer& tok,
                         const TaskSpec& spec, const std::vector<TaskExample>& all_examples, const EvalOptions& opt,
                         bool labelled) {
  const auto t0 = Clock::now();
  std::vector<TaskExample> limited;
  const std::vector<TaskExample>* examples = &all_examples;
  if (opt.max_examples > 0 && static_cast<size_t>(opt.max_examples) < all_examples.size()) {
    limited.assign(all_examples.begin(), all_examples.begin() + opt.max_examples);
    examples = &limited;
  }
  check(!examples->empty(), "task ", spec.name, ": nothing to evaluate");
  const torch::Device device = parse_device(opt.device);
  const TaskFeatures f = make_features(tok, *examples, opt.features, spec.is_pair());
  EvalResult r;
  r.examples = static_cast<int64_t>(examples->size());
  const bool regression = spec.kind == TaskKind::Regression;
  if (regression) {
    r.predicted_scores.resize(examples->size());
  } else {
    r.predicted_labels.resize(examples->size());
    r.probabilities.resize(examples->size());
  }
  for (const auto& rows : length_grouped_batches(f, opt.batch_size, false, 0)) {
    const TaskBatch b = make_task_batch(f, *examples, rows, spec.kind, tok.pad_id(), false, device);
    const torch::Tensor out = logits(b).cpu();  // (B, C)
    if (regression) {
      for (size_t i = 0; i < rows.size(); ++i) r.predicted_scores[rows[i]] = out[static_cast<int64_t>(i)][0].item<double>();
    } else {
      const torch::Tensor probs = torch::softmax(out, -1).contiguous();  // (B, C)
      const int64_t c = probs.size(1);
      const float* p = probs.data_ptr<float>();
      for (size_t i = 0; i < rows.size(); ++i) {
        std::vector<float> row(p + static_cast<int64_t>(i) * c, p + (static_cast<int64_t>(i) + 1) * c);
        r.predicted_labels[rows[i]] = std::max_element(row.begin(), row.end()) - row.begin();
        r.probabilities[rows[i]] = std::move(row);
      }
    }
  }
  if (labelled) {
    std::vector<int64_t> labels;
    std::vector<double> scores;
    for (const auto& e : *examples) {
      if (regression) {
        scores.push_back(e.score);
      } else {
        labels.push_back(e.label);
      }
    }
    r.metrics = task_metrics(spec, r.predicted_labels, labels, r.predicted_scores, scores);
    r.score = task_score(spec, r.metrics);
  }
  r.seconds = seconds_since(t0);
  return r;
}

}  // namespace

EvalResult evaluate_examples(ModelImpl& model, const Tokenizer& tok, const TaskSpec& spec,
                             const std::vector<TaskExample>& examples, const EvalOptions& opt, bool labelled) {
  check_head_fits(model, spec, "model");
  const torch::Device device = parse_device(opt.device);
  const bool was_training = model.is_training();
  model.eval();
  torch::NoGradGuard no_grad;
  EvalResult r = evaluate_with([&](const TaskBatch& b) { return task_logits(model, b, opt.bf16, device); }, tok,
                               spec, examples, opt, labelled);
  if (was_training) model.train();
  return r;
}

EvalResult evaluate_examples(const InferenceModel& model, const Tokenizer& tok, const TaskSpec& spec,
                             const std::vector<TaskExample>& examples, const EvalOptions& opt, bool labelled) {
  check_head_fits(model.model(), spec, "model");
  const bool types = model.config().type_vocab_size > 0;
  return evaluate_with(
      [&](const TaskBatch& b) {
        return model.forward(b.input_ids, b.attention_mask, types ? b.token_type_ids : torch::Tensor()).logits;
      },
      tok, spec, examples, opt, labelled);
}

std::vector<EvalResult> evaluate_task(ModelImpl& model, const Tokenizer& tok, const TaskSpec& spec,
                                      const std::string& data_dir, const EvalOptions& opt) {
  std::vector<EvalResult> out;
  for (const auto& d : spec.dev_sets) {
    EvalResult r = evaluate_examples(model, tok, spec, read_task_split(spec, data_dir, d.name), opt);
    r.split = d.name;
    out.push_back(std::move(r));
  }
  return out;
}

TrainConfig FinetuneConfig::defaults() {
  TrainConfig t;
  t.learning_rate = 5e-5;
  t.adam_epsilon = 1e-8;
  t.adam_beta1 = 0.9;
  t.adam_beta2 = 0.999;
  t.weight_decay = 0.01;
  t.warmup_prop = 0.1;
  t.max_grad_norm = 1.0;
  t.gradient_accumulation_steps = 1;
  t.batch_size = 32;
  t.n_epoch = 3;
  t.log_interval = 50;
  t.checkpoint_interval = 0;
  t.seed = 42;
  return t;
}

FinetuneConfig FinetuneConfig::from_json(const nlohmann::json& j) {
  check(j.is_object(), "fine-tuning config: expected a JSON object");
  FinetuneConfig c;
  nlohmann::json t = defaults().to_json();
  for (const auto& item : t.items()) {
    if (j.contains(item.key())) t[item.key()] = j[item.key()];
  }
  c.train = TrainConfig::from_json(t);
  auto get = [&](const char* k, auto& v) {
    if (j.contains(k) && !j[k].is_null()) {
      try {
        j[k].get_to(v);
      } catch (const nlohmann::json::exception&) {
        fail("fine-tuning config: field '", k, "' has the wrong type");
      }
    }
  };
  get("task", c.task);
  get("model", c.model_dir);
  get("data", c.data_dir);
  get("out", c.out_dir);
  get("teacher", c.teacher_dir);
  get("max_seq_length", c.features.max_seq_length);
  get("truncation", c.features.truncation);
  get("head_tokens", c.features.head_tokens);
  get("alpha_task", c.alpha_task);
  get("alpha_ce", c.alpha_ce);
  get("temperature", c.temperature);
  get("prediction_loss", c.prediction_loss);
  check(c.prediction_loss == "kl" || c.prediction_loss == "soft_ce", "fine-tuning config: prediction_loss must be ",
        "\"kl\" or \"soft_ce\", got \"", c.prediction_loss, "\"");
  check(c.alpha_task >= 0 && c.alpha_ce >= 0, "fine-tuning config: alpha_task and alpha_ce must be >= 0");
  c.intermediate.read(j, "fine-tuning config");
  get("max_train_examples", c.max_train_examples);
  get("max_eval_examples", c.max_eval_examples);
  get("eval_batch_size", c.eval_batch_size);
  return c;
}

nlohmann::json FinetuneConfig::to_json() const {
  nlohmann::json j = train.to_json();
  j["task"] = task;
  j["model"] = model_dir;
  j["data"] = data_dir;
  j["out"] = out_dir;
  j["teacher"] = teacher_dir;
  j["max_seq_length"] = features.max_seq_length;
  j["truncation"] = features.truncation;
  j["head_tokens"] = features.head_tokens;
  j["alpha_task"] = alpha_task;
  j["alpha_ce"] = alpha_ce;
  j["temperature"] = temperature;
  j["prediction_loss"] = prediction_loss;
  intermediate.write(j);
  j["max_train_examples"] = max_train_examples;
  j["max_eval_examples"] = max_eval_examples;
  j["eval_batch_size"] = eval_batch_size;
  return j;
}

FinetuneResult run_finetune(const FinetuneConfig& cfg) {
  const auto t0 = Clock::now();
  const TaskSpec& spec = task_spec(cfg.task);
  check(spec.kind != TaskKind::SpanExtraction, "task ", spec.name, ": use the SQuAD fine-tuning (squad.h)");
  check(!cfg.out_dir.empty(), "fine-tuning: no output directory");
  check(cfg.alpha_task >= 0 && cfg.alpha_ce >= 0 && cfg.temperature > 0,
        "fine-tuning: alpha_task and alpha_ce must be >= 0 and the temperature > 0");
  const DistEnv dist = dist_env_from_environment();
  const torch::Device device = rank_device(parse_device(cfg.train.device), dist);  // data parallel on CUDA: GPU LOCAL_RANK
  const Tokenizer tok = load_model_tokenizer(cfg.model_dir);

  std::vector<TaskExample> train = read_task_split(spec, cfg.data_dir, "train");
  if (cfg.max_train_examples > 0 && static_cast<size_t>(cfg.max_train_examples) < train.size()) {
    std::vector<size_t> idx(train.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::mt19937_64 rng(cfg.train.seed);
    std::shuffle(idx.begin(), idx.end(), rng);
    idx.resize(static_cast<size_t>(cfg.max_train_examples));
    std::sort(idx.begin(), idx.end());
    std::vector<TaskExample> subset;
    for (size_t i : idx) subset.push_back(std::move(train[i]));
    train = std::move(subset);
  }
  std::vector<std::pair<std::string, std::vector<TaskExample>>> dev;
  for (const auto& d : spec.dev_sets) dev.emplace_back(d.name, read_task_split(spec, cfg.data_dir, d.name));

  Model model = load_task_model(cfg.model_dir, spec, device, cfg.train.seed);
  Model teacher{nullptr};
  if (!cfg.teacher_dir.empty()) {
    teacher = load_model(cfg.teacher_dir, [&] {
      LoadOptions o;
      o.device = device;
      return o;
    }());
    check_head_fits(*teacher, spec, cfg.teacher_dir);
    check(teacher->config.vocab_size == model->config.vocab_size, cfg.teacher_dir, ": the teacher's vocabulary (",
          teacher->config.vocab_size, ") differs from the student's (", model->config.vocab_size, ")");
    teacher->eval();
  }
  check(teacher || !cfg.intermediate.enabled(), "fine-tuning: alpha_att, alpha_hidden or alpha_emb needs a teacher");
  check(!teacher || cfg.alpha_task > 0 || cfg.alpha_ce > 0 || cfg.intermediate.enabled(),
        "fine-tuning: alpha_task, alpha_ce and the intermediate terms are all 0: nothing to train");
  IntermediateDistiller inter{nullptr};  // TinyBERT stage 1: projections and the intermediate terms
  if (teacher && cfg.intermediate.enabled()) {
    inter = IntermediateDistiller(model->config, teacher->config, cfg.intermediate, cfg.train.seed);
    inter->to(device);
  }
  const ForwardOptions fo = inter.is_empty() ? ForwardOptions{} : inter->forward_options();
  // Intermediate terms only: the head learns nothing, so the dev score says nothing; keep the last epoch.
  const bool keep_last = teacher && cfg.alpha_task == 0 && cfg.alpha_ce == 0;

  // Data parallel (distributed.h): every rank draws the same global batches of batch_size x N rows and
  // trains on its own slice; only full global batches are used, so every rank has rows.
  const std::shared_ptr<DataParallel> dp = data_parallel_from_environment(device);
  const int64_t ranks = dist.world_size, global_batch = cfg.train.batch_size * ranks;
  fs::create_directories(cfg.out_dir);
  if (!dp || dp->is_main()) write_file_atomic(join_path(cfg.out_dir, "config.json"), cfg.to_json().dump(2) + "\n");
  const TaskFeatures f = make_features(tok, train, cfg.features, spec.is_pair());
  const int64_t micro_per_epoch = global_batches(static_cast<int64_t>(f.size()), cfg.train.batch_size, dist);
  check(micro_per_epoch > 0, "fine-tuning: ", f.size(), " training examples do not fill one batch of ", global_batch,
        " (", ranks, " ranks x ", cfg.train.batch_size, ")");
  const int64_t total = cfg.train.max_steps > 0
                            ? cfg.train.max_steps
                            : std::max<int64_t>(1, micro_per_epoch * cfg.train.n_epoch / cfg.train.gradient_accumulation_steps);
  Trainer trainer(model, cfg.train, total, cfg.out_dir, inter.is_empty() ? nullptr : inter.ptr());
  if (dp) trainer.set_data_parallel(dp);
  EvalOptions eo;
  eo.features = cfg.features;
  eo.batch_size = cfg.eval_batch_size;
  eo.bf16 = cfg.train.bf16;
  eo.device = cfg.train.device;
  eo.max_examples = cfg.max_eval_examples;

  FinetuneResult result;
  result.train_examples = static_cast<int64_t>(train.size());
  result.parameters = parameter_count(*model);
  result.best_dir = join_path(cfg.out_dir, "best");
  result.best_score = -std::numeric_limits<double>::infinity();
  const bool regression = spec.kind == TaskKind::Regression;
  const double w_task = teacher ? cfg.alpha_task : 1.0;
  for (int64_t epoch = 1; !trainer.done(); ++epoch) {
    const auto te = Clock::now();
    model->train();
    double loss_sum = 0;
    int64_t n_micro = 0;
    for (const auto& global : length_grouped_batches(f, global_batch, true, cfg.train.seed + static_cast<uint64_t>(epoch))) {
      const std::vector<size_t> rows = rank_rows(global, dist, cfg.train.batch_size);
      if (rows.empty()) continue;
      const TaskBatch b = make_task_batch(f, train, rows, spec.kind, tok.pad_id(), true, device);
      const ModelOutput so = task_forward(*model, b, cfg.train.bf16, device, fo);
      const torch::Tensor& logits = so.logits;  // (B, C)
      torch::Tensor task_loss = regression ? F::mse_loss(logits.squeeze(-1), b.labels)
                                           : F::cross_entropy(logits, b.labels);
      std::map<std::string, torch::Tensor> terms{{"loss_task", task_loss}};
      torch::Tensor loss = w_task * task_loss;
      if (teacher) {
        ModelOutput to;
        {
          torch::NoGradGuard no_grad;
          to = task_forward(*teacher, b, cfg.train.bf16, device, fo);
        }
        const torch::Tensor& t = to.logits;  // (B, C)
        torch::Tensor ce = regression                          ? F::mse_loss(logits, t)
                           : cfg.prediction_loss == "soft_ce" ? soft_cross_entropy_loss(logits, t, cfg.temperature)
                                                              : soft_target_loss(logits, t, cfg.temperature);
        terms["loss_ce"] = ce;
        loss = loss + cfg.alpha_ce * ce;
        if (!inter.is_empty()) {
          AutocastGuard autocast(cfg.train.bf16, device);
          auto it = inter->losses(so.encoder, to.encoder, b.attention_mask);
          for (const auto& [name, term] : it.terms) terms[name] = term;
          loss = loss + it.total;
        }
      }
      trainer.accumulate(loss, terms, b.tokens);
      loss_sum += loss.item<double>();
      ++n_micro;
      if (trainer.done() || trainer.stop_requested()) break;
    }
    const double train_seconds = seconds_since(te);
    if (!trainer.is_main()) {  // rank 0 alone evaluates and saves
      if (trainer.stop_requested()) break;
      continue;
    }
    std::vector<EvalResult> evals;
    for (const auto& [name, examples] : dev) {
      EvalResult r = evaluate_examples(*model, tok, spec, examples, eo);
      r.split = name;
      evals.push_back(std::move(r));
    }
    const double score = evals.front().score;
    nlohmann::json ej = {{"epoch", epoch}, {"step", trainer.step()}, {"train_loss", loss_sum / std::max<int64_t>(1, n_micro)},
                         {"train_seconds", train_seconds}, {"score", score}};
    for (const auto& r : evals) ej["eval"][r.split] = r.to_json();
    result.epochs.push_back(ej);
    if (keep_last || result.best_epoch == 0 || score > result.best_score) {
      result.best_score = score;
      result.best_epoch = epoch;
      result.best_eval = evals;
      save_task_model(*model, tok, result.best_dir);
    }
    nlohmann::json summary = {{"task", spec.name}, {"best_epoch", result.best_epoch}, {"best_score", result.best_score},
                              {"epochs", result.epochs}, {"train_examples", result.train_examples},
                              {"parameters", result.parameters}};
    for (const auto& r : result.best_eval) summary["best"][r.split] = r.to_json();
    write_file_atomic(join_path(cfg.out_dir, "eval_results.json"), summary.dump(2) + "\n");
    if (trainer.stop_requested()) break;
  }
  result.seconds = seconds_since(t0);
  return result;
}

}  // namespace retort

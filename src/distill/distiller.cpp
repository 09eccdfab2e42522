// The distillation loop (and masked-LM pre-training, the same loop without a teacher): batches from a
// prepared corpus, dynamic masking, the DistilBERT triple loss, the Trainer for optimisation and
// checkpoints. Vocabulary logits are computed only at the rows a loss reads: the masked positions when
// only L_mlm (or restrict_ce_to_mask) needs them, the non-padding positions otherwise.
//
// Dimensions: B batch, T sequence, H hidden, V vocabulary, N selected rows.
#include <cmath>
#include <filesystem>
#include <iostream>

#include <torch/torch.h>

#include "retort/checkpoint.h"
#include "retort/corpus.h"
#include "retort/distill_step.h"
#include "retort/distiller.h"
#include "retort/distributed.h"
#include "retort/error.h"
#include "retort/json_field.h"
#include "retort/fs.h"
#include "retort/runtime.h"
#include "retort/tokenizer.h"

namespace retort {
namespace {

namespace fs = std::filesystem;

template <typename T>
void get_if(const nlohmann::json& j, const char* key, T& out) {
  read_field(j, key, out, "distillation config");
}

}  // namespace

DistillConfig DistillConfig::from_json(const nlohmann::json& j) {
  check(j.is_object(), "distillation config: expected a JSON object");
  DistillConfig c;
  c.train = TrainConfig::from_json(j);
  get_if(j, "mlm_mask_prop", c.masking.mlm_mask_prop);
  get_if(j, "word_mask", c.masking.word_mask);
  get_if(j, "word_keep", c.masking.word_keep);
  get_if(j, "word_rand", c.masking.word_rand);
  get_if(j, "mlm_smoothing", c.masking.mlm_smoothing);
  get_if(j, "mlm", c.masking.mlm);
  get_if(j, "whole_word_mask", c.masking.whole_word_mask);
  get_if(j, "temperature", c.loss.temperature);
  get_if(j, "alpha_ce", c.loss.alpha_ce);
  get_if(j, "alpha_mlm", c.loss.alpha_mlm);
  get_if(j, "alpha_cos", c.loss.alpha_cos);
  get_if(j, "alpha_mse", c.loss.alpha_mse);
  get_if(j, "alpha_clm", c.loss.alpha_clm);
  get_if(j, "restrict_ce_to_mask", c.loss.restrict_ce_to_mask);
  get_if(j, "group_by_size", c.group_by_size);
  get_if(j, "max_tokens", c.max_tokens);
  get_if(j, "teacher_bf16", c.teacher_bf16);
  c.intermediate.read(j, "distillation config");
  get_if(j, "progressive_steps_per_layer", c.progressive.steps_per_layer);
  get_if(j, "progressive_earlier_lr_scale", c.progressive.earlier_lr_scale);
  check(c.progressive.steps_per_layer >= 0, "distillation config: progressive_steps_per_layer must be >= 0");
  check(c.progressive.earlier_lr_scale >= 0 && c.progressive.earlier_lr_scale <= 1,
        "distillation config: progressive_earlier_lr_scale must be in [0, 1]");
  check(c.progressive.steps_per_layer == 0 || c.intermediate.enabled(), "distillation config: progressive transfer ",
        "needs intermediate terms (alpha_hidden and/or alpha_att, alpha_emb)");
  check(c.progressive.steps_per_layer == 0 || c.loss.alpha_ce + c.loss.alpha_mlm + c.loss.alpha_cos + c.loss.alpha_mse > 0,
        "distillation config: the joint stage after progressive transfer needs alpha_ce and/or alpha_mlm (MobileBERT ",
        "used both)");
  c.masking.validate();
  c.loss.validate(c.intermediate.enabled());
  check(c.masking.mlm, "distillation config: mlm must be true (causal LM does not apply to BERT students)");
  return c;
}

nlohmann::json DistillConfig::to_json() const {
  nlohmann::json j = train.to_json();
  j["mlm_mask_prop"] = masking.mlm_mask_prop;
  j["word_mask"] = masking.word_mask;
  j["word_keep"] = masking.word_keep;
  j["word_rand"] = masking.word_rand;
  j["mlm_smoothing"] = masking.mlm_smoothing;
  j["mlm"] = masking.mlm;
  j["whole_word_mask"] = masking.whole_word_mask;
  j["temperature"] = loss.temperature;
  j["alpha_ce"] = loss.alpha_ce;
  j["alpha_mlm"] = loss.alpha_mlm;
  j["alpha_cos"] = loss.alpha_cos;
  j["alpha_mse"] = loss.alpha_mse;
  j["alpha_clm"] = loss.alpha_clm;
  j["restrict_ce_to_mask"] = loss.restrict_ce_to_mask;
  j["group_by_size"] = group_by_size;
  j["max_tokens"] = max_tokens;
  j["teacher_bf16"] = teacher_bf16;
  intermediate.write(j);
  j["progressive_steps_per_layer"] = progressive.steps_per_layer;
  j["progressive_earlier_lr_scale"] = progressive.earlier_lr_scale;
  return j;
}

namespace {

// Student layer index of a parameter name ("bert.encoder.layer.3.attention..." -> 3), -1 outside the layers.
int64_t layer_of(const std::string& name) {
  static const std::string prefix = "bert.encoder.layer.";
  if (name.compare(0, prefix.size(), prefix) != 0) return -1;
  return std::stoll(name.substr(prefix.size()));
}

// Rank 0's answer on every rank (data parallel; a collective): decisions that read the run directory must
// not differ between ranks, whatever each machine's view of it.
bool as_rank0_says(const std::shared_ptr<DataParallel>& dp, bool mine) {
  return dp ? dp->sum({dp->is_main() && mine ? 1.0 : 0.0})[0] > 0 : mine;
}

// One run to its end (or a stop). `dp`: the process group (data parallel) or null; progressive stages
// and their joint run share one, so the ranks rendezvous once.
DistillResult run_one(const DistillJob& job, const std::shared_ptr<DataParallel>& dp);

// MobileBERT's progressive stages, each its own run in run_dir/stage-<l> (finished stages are skipped, so
// --resume continues where a stage stopped). Returns the last stage's student, or "" when stopped early.
std::string run_progressive_stages(const DistillJob& job, const std::shared_ptr<DataParallel>& dp,
                                   DistillResult& result) {
  const DistillConfig& cfg = job.config;
  const int64_t L = ModelConfig::load(job.student_dir).num_hidden_layers;
  std::string student = job.student_dir;
  for (int64_t l = 0; l < L; ++l) {
    DistillJob stage = job;
    stage.run_dir = join_path(job.run_dir, "stage-" + std::to_string(l));
    stage.student_dir = student;
    DistillConfig& c = stage.config;
    c.progressive.steps_per_layer = 0;
    c.train.max_steps = cfg.progressive.steps_per_layer;
    c.loss.alpha_ce = c.loss.alpha_mlm = c.loss.alpha_cos = c.loss.alpha_mse = 0;
    c.intermediate.only_layer = l;
    const double earlier = cfg.progressive.earlier_lr_scale;
    stage.lr_scale = [l, earlier](const std::string& name) {
      // The embeddings train with layer 0 and count as earlier than every later layer.
      const int64_t at = name.compare(0, 16, "bert.embeddings.") == 0 ? 0 : layer_of(name);
      if (at == l) return 1.0;
      if (at >= 0 && at < l) return earlier;
      return 0.0;  // later layers and the head: not in this stage's loss
    };
    const std::string final_dir = join_path(stage.run_dir, "final");
    if (as_rank0_says(dp, path_exists(join_path(final_dir, "config.json")))) {
      student = final_dir;
      continue;
    }
    stage.resume = job.resume && as_rank0_says(dp, !latest_checkpoint(stage.run_dir).empty());
    std::cerr << "progressive transfer: stage " << l + 1 << "/" << L << " (layer " << l << ")\n";
    DistillResult r = run_one(stage, dp);
    if (r.interrupted) {
      result = r;
      return "";
    }
    student = r.final_dir;
  }
  return student;
}

}  // namespace

DistillResult run_distillation(const DistillJob& job) {
  const auto dp = data_parallel_from_environment(rank_device(parse_device(job.config.train.device),
                                                             dist_env_from_environment()));
  if (job.config.progressive.steps_per_layer > 0) {
    check(!job.teacher_dir.empty(), "progressive transfer needs a teacher");
    DistillResult stopped;
    const std::string student = run_progressive_stages(job, dp, stopped);
    if (student.empty()) return stopped;
    DistillJob joint = job;  // the joint stage: the configured alphas, no intermediate terms
    joint.student_dir = student;
    joint.config.progressive.steps_per_layer = 0;
    joint.config.intermediate.alpha_att = joint.config.intermediate.alpha_hidden = joint.config.intermediate.alpha_emb = 0;
    joint.resume = job.resume && as_rank0_says(dp, !latest_checkpoint(job.run_dir).empty());
    std::cerr << "progressive transfer done: joint distillation\n";
    return run_one(joint, dp);
  }
  return run_one(job, dp);
}

namespace {

DistillResult run_one(const DistillJob& job, const std::shared_ptr<DataParallel>& dp) {
  const DistillConfig& cfg = job.config;
  const bool distill = !job.teacher_dir.empty();
  DistillLossWeights w = cfg.loss;
  IntermediateOptions io = cfg.intermediate;
  if (!distill) {  // pre-training: the MLM term alone, unweighted, so the logged loss is the cross-entropy
    w.alpha_ce = w.alpha_cos = w.alpha_mse = 0;
    w.alpha_mlm = 1;
    io.alpha_att = io.alpha_hidden = io.alpha_emb = 0;
  }
  check(w.alpha_mlm + w.alpha_ce + w.alpha_cos + w.alpha_mse > 0 || io.enabled(), "every loss weight is 0: nothing to train");
  const DistEnv dist = dist_env_from_environment();
  const c10::Device device = rank_device(parse_device(cfg.train.device), dist);  // data parallel on CUDA: GPU LOCAL_RANK

  const Tokenizer tok = load_model_tokenizer(job.student_dir);
  CorpusReader reader(job.corpus_dir);
  reader.check_tokenizer(tok);

  BatchSamplerOptions so;
  so.batch_size = static_cast<size_t>(cfg.train.batch_size);
  so.max_tokens = cfg.max_tokens;
  so.seed = cfg.train.seed;
  if (!cfg.group_by_size) so.bucket_width = reader.info().max_seq_len + 1;  // one bucket: no grouping
  BatchSampler sampler(reader, so);
  const auto per_epoch = static_cast<int64_t>(sampler.batches_in_epoch(0));
  // Data parallel: rank r takes micro-batches r, r + N, r + 2N, ... of the one shuffled stream.
  const int64_t ranks = dist.world_size;
  const int64_t total_steps =
      cfg.train.max_steps > 0 ? cfg.train.max_steps
                              : (cfg.train.n_epoch * per_epoch) / (cfg.train.gradient_accumulation_steps * ranks);

  fs::create_directories(job.run_dir);
  std::string resume_from;
  if (job.resume) {
    resume_from = latest_checkpoint(job.run_dir);
    check(!resume_from.empty(), job.run_dir, ": --resume given but the run has no checkpoint");
  }
  nlohmann::json resolved = cfg.to_json();
  resolved["corpus"] = job.corpus_dir;
  resolved["student"] = job.student_dir;
  resolved["teacher"] = job.teacher_dir;
  resolved["total_steps"] = total_steps;
  resolved["world_size"] = dist.world_size;
  if (!dp || dp->is_main()) write_file_atomic(join_path(job.run_dir, "config.json"), resolved.dump(2) + "\n");

  LoadOptions lo;
  lo.head_from_config = false;
  lo.head = HeadKind::MaskedLM;
  LoadReport report;
  Model student = load_model(resume_from.empty() ? job.student_dir : resume_from, lo, &report);
  check(report.initialised.empty() || resume_from.empty(), "checkpoint lacks ", report.initialised.front());
  student->to(device);
  student->train();
  check(student->config.vocab_size >= static_cast<int64_t>(tok.vocab_size()), job.student_dir,
        ": the model's vocabulary (", student->config.vocab_size, ") is smaller than the tokenizer's (",
        tok.vocab_size(), ")");

  Model teacher{nullptr};
  if (distill) {
    LoadReport tr;
    teacher = load_model(job.teacher_dir, lo, &tr);
    check(tr.initialised.empty() || (w.alpha_ce == 0 && w.alpha_mse == 0), job.teacher_dir,
          ": the teacher has no masked-LM head weights for alpha_ce / alpha_mse (",
          tr.initialised.empty() ? "" : tr.initialised.front(), " missing)");
    check(teacher->config.vocab_size == student->config.vocab_size, "teacher and student vocabularies differ (",
          teacher->config.vocab_size, " vs ", student->config.vocab_size, ")");
    check(w.alpha_cos == 0 || teacher->config.hidden_size == student->config.hidden_size,
          "alpha_cos needs equal hidden sizes (teacher ", teacher->config.hidden_size, ", student ",
          student->config.hidden_size, "); set alpha_cos to 0");
    teacher->to(device, cfg.teacher_bf16 ? torch::kBFloat16 : torch::kFloat);
    teacher->eval();
    for (auto& p : teacher->parameters()) p.set_requires_grad(false);
  }

  IntermediateDistiller inter{nullptr};  // TinyBERT's projections and terms; none for DistilBERT
  if (io.enabled()) {
    inter = IntermediateDistiller(student->config, teacher->config, io, cfg.train.seed);
    inter->to(device);
  }
  Masker masker(tok, reader.token_counts(), cfg.masking, cfg.train.seed);
  Trainer trainer(student, cfg.train, total_steps, job.run_dir, inter.is_empty() ? nullptr : inter.ptr(),
                  job.lr_scale);
  if (dp) trainer.set_data_parallel(dp);
  if (!resume_from.empty()) {
    const auto caller = trainer.restore(resume_from);
    sampler.seek({caller.at("epoch").get<uint64_t>(), caller.at("batch").get<uint64_t>()});
    // Rank 0 saved its position after its own last micro-batch; the step ended N - 1 micro-batches later.
    const int64_t written_by = caller.value("ranks", int64_t{1});
    check(written_by == ranks, resume_from, ": the checkpoint was written by ", written_by,
          " data-parallel ranks, this run has ", ranks, "; resume with the same world size");
    for (int64_t i = 0; i + 1 < ranks; ++i) sampler.next();
    const bool per_rank = caller.contains("maskers");
    masker.set_state(per_rank ? caller.at("maskers").at(static_cast<size_t>(dist.rank)).get<std::string>()
                              : caller.at("masker").get<std::string>());
    if (trainer.is_main()) std::cerr << "resumed from " << resume_from << " at step " << trainer.step() << "\n";
  } else {
    torch::manual_seed(cfg.train.seed);  // dropout
  }
  // Every rank calls this at the same points (checkpoints are collective): rank 0 writes it.
  auto caller_state = [&] {
    const auto p = sampler.position();
    nlohmann::json j = {{"epoch", p.epoch}, {"batch", p.batch}, {"masker", masker.state()}, {"ranks", ranks}};
    if (dp) j["maskers"] = dp->gather_strings(masker.state());
    return j;
  };

  install_interrupt_handler();
  DistillResult result;
  std::string last_saved;  // the checkpoint written at the current step, if any
  int64_t micro = 0;  // micro-batches drawn from the stream, every rank's
  while (!trainer.done()) {
    const auto rows = sampler.next();
    if (micro++ % ranks != dist.rank) continue;
    const auto batch = make_padded_batch(reader, rows, tok.pad_id());
    const StepBatch bt = to_step_batch(masker.mask(batch), device);
    StepLoss loss = distillation_step_loss(*student, distill ? teacher.get() : nullptr, bt, w, cfg.train.bf16,
                                            inter.is_empty() ? nullptr : inter.get());
    if (!trainer.accumulate(loss.total, loss.terms, bt.tokens)) continue;
    if (trainer.checkpoint_due()) last_saved = trainer.save_checkpoint(caller_state());
    const bool stop_here = job.stop_at_step > 0 && trainer.step() >= job.stop_at_step && !trainer.done();
    if (trainer.stop_requested() || stop_here) {
      if (!trainer.checkpoint_due()) last_saved = trainer.save_checkpoint(caller_state());
      if (trainer.is_main()) {  // rank 0 wrote it
        std::cerr << "\nstopped at step " << trainer.step() << ": checkpoint saved in " << last_saved
                  << " (continue with --resume)\n";
      }
      result.interrupted = true;
      break;
    }
  }
  clear_interrupt();
  if (!result.interrupted) {
    if (!trainer.checkpoint_due()) trainer.save_checkpoint(caller_state());
    result.final_dir = join_path(job.run_dir, "final");
    if (trainer.is_main()) {
      save_model(*student, result.final_dir);
      tok.save(result.final_dir);
    }
    if (dp) dp->barrier();  // nobody goes on (the next stage loads final/) before rank 0 has written it
  }
  result.steps = trainer.step();
  result.last = trainer.last();
  return result;
}

}  // namespace

MlmEvaluation evaluate_mlm(const std::string& model_dir, const std::string& corpus_dir, uint64_t seed,
                           size_t batch_size, size_t max_sequences, const std::string& device_name) {
  const c10::Device device = parse_device(device_name);
  LoadOptions lo;
  lo.head_from_config = false;
  lo.head = HeadKind::MaskedLM;
  lo.device = device;
  LoadReport report;
  Model model = load_model(model_dir, lo, &report);
  check(report.initialised.empty(), model_dir, ": no masked-LM head weights to evaluate");
  model->eval();
  const Tokenizer tok = load_model_tokenizer(model_dir);
  CorpusReader reader(corpus_dir);
  reader.check_tokenizer(tok);
  MaskingOptions mo;  // the standard 15% / 80-10-10, no smoothing: every model sees the same masks
  mo.mlm_smoothing = 0;
  Masker masker(tok, reader.token_counts(), mo, seed);
  const size_t n = max_sequences > 0 ? std::min(max_sequences, reader.size()) : reader.size();
  torch::InferenceMode guard;
  double loss_sum = 0;
  int64_t correct = 0, predicted = 0;
  for (size_t start = 0; start < n; start += batch_size) {
    std::vector<uint64_t> idx;
    for (size_t i = start; i < std::min(n, start + batch_size); ++i) idx.push_back(i);
    const StepBatch bt = to_step_batch(masker.mask(make_padded_batch(reader, idx, tok.pad_id())), device);
    auto hidden = model->bert->forward(bt.ids, bt.attention, {}).last_hidden_state;  // (B, T, H)
    auto logits = model->mlm_logits(hidden.index({bt.predicted})).to(torch::kFloat);  // (N, V)
    auto labels = bt.labels.index({bt.predicted});                                     // (N)
    loss_sum += torch::nn::functional::cross_entropy(logits, labels,
                                                     torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                    .item<double>();
    correct += (logits.argmax(-1) == labels).sum().item<int64_t>();
    predicted += labels.size(0);
  }
  check(predicted > 0, corpus_dir, ": no tokens to evaluate");
  MlmEvaluation e;
  e.predicted = predicted;
  e.loss = loss_sum / static_cast<double>(predicted);
  e.accuracy = static_cast<double>(correct) / static_cast<double>(predicted);
  e.perplexity = std::exp(e.loss);
  return e;
}

}  // namespace retort

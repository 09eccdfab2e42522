// Trainer: optimizer, schedule, accumulation, clipping, metrics and exact-resume checkpoints.
// See include/retort/train.h for the contract.
#include <unistd.h>

#include <ATen/CPUGeneratorImpl.h>
#include <csignal>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>

#include <torch/torch.h>

#include "retort/checkpoint.h"
#include "retort/distributed.h"
#include "retort/error.h"
#include "retort/json_field.h"
#include "retort/fs.h"
#include "retort/train.h"

namespace retort {
namespace fs = std::filesystem;

namespace {

std::atomic<int> g_interrupt{0};

extern "C" void on_interrupt(int) { g_interrupt.store(1); }

template <typename T>
void get_if(const nlohmann::json& j, const char* key, T& out) {
  read_field(j, key, out, "training config");
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<int64_t>(seconds);
  std::ostringstream os;
  if (s >= 3600) os << s / 3600 << "h" << std::setw(2) << std::setfill('0') << (s % 3600) / 60 << "m";
  else os << s / 60 << "m" << std::setw(2) << std::setfill('0') << s % 60 << "s";
  return os.str();
}

}  // namespace

TrainConfig TrainConfig::from_json(const nlohmann::json& j) {
  check(j.is_object(), "training config: expected a JSON object");
  TrainConfig c;
  get_if(j, "learning_rate", c.learning_rate);
  get_if(j, "adam_epsilon", c.adam_epsilon);
  get_if(j, "adam_beta1", c.adam_beta1);
  get_if(j, "adam_beta2", c.adam_beta2);
  get_if(j, "weight_decay", c.weight_decay);
  get_if(j, "warmup_prop", c.warmup_prop);
  get_if(j, "max_grad_norm", c.max_grad_norm);
  get_if(j, "gradient_accumulation_steps", c.gradient_accumulation_steps);
  get_if(j, "batch_size", c.batch_size);
  get_if(j, "n_epoch", c.n_epoch);
  get_if(j, "max_steps", c.max_steps);
  get_if(j, "log_interval", c.log_interval);
  get_if(j, "checkpoint_interval", c.checkpoint_interval);
  get_if(j, "seed", c.seed);
  get_if(j, "bf16", c.bf16);
  get_if(j, "device", c.device);
  get_if(j, "allreduce_bucket_mb", c.allreduce_bucket_mb);
  get_if(j, "allreduce_overlap", c.allreduce_overlap);
  get_if(j, "allreduce_dtype", c.allreduce_dtype);
  check(c.learning_rate > 0, "training config: learning_rate must be positive");
  check(c.gradient_accumulation_steps > 0, "training config: gradient_accumulation_steps must be positive");
  check(c.batch_size > 0, "training config: batch_size must be positive");
  check(c.warmup_prop >= 0 && c.warmup_prop < 1, "training config: warmup_prop must be in [0, 1)");
  check(c.n_epoch > 0 || c.max_steps > 0, "training config: n_epoch or max_steps must be positive");
  check(c.log_interval > 0, "training config: log_interval must be positive");
  check(c.allreduce_bucket_mb > 0, "training config: allreduce_bucket_mb must be positive");
  check(c.allreduce_dtype == "fp32" || c.allreduce_dtype == "bf16" || c.allreduce_dtype == "fp16",
        "training config: allreduce_dtype must be fp32, bf16 or fp16, got '", c.allreduce_dtype, "'");
  return c;
}

nlohmann::json TrainConfig::to_json() const {
  return {{"learning_rate", learning_rate}, {"adam_epsilon", adam_epsilon}, {"adam_beta1", adam_beta1},
          {"adam_beta2", adam_beta2}, {"weight_decay", weight_decay}, {"warmup_prop", warmup_prop},
          {"max_grad_norm", max_grad_norm}, {"gradient_accumulation_steps", gradient_accumulation_steps},
          {"batch_size", batch_size}, {"n_epoch", n_epoch}, {"max_steps", max_steps},
          {"log_interval", log_interval}, {"checkpoint_interval", checkpoint_interval}, {"seed", seed},
          {"bf16", bf16}, {"device", device}, {"allreduce_bucket_mb", allreduce_bucket_mb},
          {"allreduce_overlap", allreduce_overlap}, {"allreduce_dtype", allreduce_dtype}};
}

double linear_warmup_lr(double peak, int64_t step, int64_t warmup, int64_t total) {
  if (step < warmup) return peak * static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup));
  return peak * std::max(0.0, static_cast<double>(total - step) / static_cast<double>(std::max<int64_t>(1, total - warmup)));
}

void install_interrupt_handler() {
  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);
}
bool interrupt_requested() { return g_interrupt.load() != 0; }
void clear_interrupt() { g_interrupt.store(0); }

torch::optim::AdamWOptions adamw_options(const TrainConfig& config) {
  return torch::optim::AdamWOptions(config.learning_rate)
      .betas({config.adam_beta1, config.adam_beta2})
      .eps(config.adam_epsilon)
      .weight_decay(config.weight_decay);
}

Trainer::Trainer(Model model, const TrainConfig& config, int64_t total_steps, std::string run_dir,
                 std::shared_ptr<torch::nn::Module> extra, const std::function<double(const std::string&)>& lr_scale)
    : model_(std::move(model)),
      extra_(std::move(extra)),
      config_(config),
      total_steps_(total_steps),
      run_dir_(std::move(run_dir)) {
  check(total_steps_ > 0, "nothing to train: 0 optimizer steps (corpus too small for the batch size?)");
  warmup_steps_ = static_cast<int64_t>(std::ceil(config_.warmup_prop * static_cast<double>(total_steps_)));
  // Groups as the HF example (no weight decay on biases and LayerNorm weights), split further by
  // learning-rate factor; a factor of 0 freezes the parameter.
  std::map<std::pair<bool, double>, std::vector<torch::Tensor>> groups_by;  // (decay, scale) -> params
  auto add_params = [&](torch::nn::Module& m, bool scaled) {
    for (const auto& item : m.named_parameters()) {
      params_.push_back(item.value());
      const double scale = scaled && lr_scale ? lr_scale(item.key()) : 1.0;
      check(scale >= 0 && std::isfinite(scale), "learning-rate factor of ", item.key(), " is ", scale);
      if (scale == 0) item.value().set_requires_grad(false);
      if (!item.value().requires_grad()) continue;
      const std::string& n = item.key();
      const bool skip = n.find("bias") != std::string::npos || n.find("LayerNorm.weight") != std::string::npos;
      groups_by[{!skip, scale}].push_back(item.value());
    }
  };
  add_params(*model_, true);
  if (extra_) add_params(*extra_, false);
  check(!groups_by.empty(), "nothing to train: every parameter is frozen");
  const auto opts = adamw_options(config_);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  for (auto decay : {true, false}) {  // decay first, as before: checkpoints keep the group order
    for (auto& [key, params] : groups_by) {
      if (key.first != decay) continue;
      auto o = opts;
      if (!decay) o.weight_decay(0.0);
      groups.emplace_back(params, std::make_unique<torch::optim::AdamWOptions>(o));
      group_scale_.push_back(key.second);
    }
  }
  optimizer_ = std::make_unique<torch::optim::AdamW>(groups, opts);
  fs::create_directories(run_dir_);
  metrics_ = std::make_unique<std::ofstream>(join_path(run_dir_, "metrics.jsonl"), std::ios::app);
  check(static_cast<bool>(*metrics_), join_path(run_dir_, "metrics.jsonl"), ": cannot open for writing");
  tty_ = ::isatty(STDERR_FILENO) != 0;
  window_start_ = started_ = std::chrono::steady_clock::now();
}

Trainer::~Trainer() = default;

bool Trainer::accumulate(const torch::Tensor& loss, const std::map<std::string, torch::Tensor>& terms, int64_t tokens) {
  check(!done(), "training is already complete (", step_, " steps)");
  for (const auto& [name, t] : terms) {
    const double v = t.detach().to(torch::kDouble).item<double>();
    check(std::isfinite(v), "loss term '", name, "' is ", v, " at step ", step_ + 1, " (micro-batch ", micro_ + 1,
          "): stopping; lower the learning rate or check the data");
    term_sums_[name] += v;
  }
  const double lv = loss.detach().to(torch::kDouble).item<double>();
  check(std::isfinite(lv), "loss is ", lv, " at step ", step_ + 1, ": stopping");
  loss_sum_ += lv;
  tokens_ += tokens;
  const bool last_micro = micro_ + 1 == config_.gradient_accumulation_steps;
  if (dp_ && !reducer_) make_reducer();  // here, not in set_data_parallel: after any restore()
  if (reducer_ && last_micro && config_.allreduce_overlap) reducer_->arm();  // all-reduce during backward
  (loss / static_cast<double>(config_.gradient_accumulation_steps)).backward();
  if (++micro_ < config_.gradient_accumulation_steps) return false;
  double allreduce_ms = 0;
  if (dp_) {
    const auto t0 = std::chrono::steady_clock::now();
    reducer_->finish();
    allreduce_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::vector<double> sums = {loss_sum_, static_cast<double>(tokens_)};  // terms: same keys on every rank
    for (const auto& [k, v] : term_sums_) sums.push_back(v);
    sums.push_back(interrupt_requested() ? 1.0 : 0.0);  // last: did any rank get a signal?
    sums = dp_->sum(sums);
    agreed_stop_ = agreed_stop_ || sums.back() > 0;
    sums.pop_back();
    const double ranks = static_cast<double>(dp_->world_size());
    loss_sum_ = sums[0] / ranks;
    tokens_ = static_cast<int64_t>(sums[1]);
    size_t i = 2;
    for (auto& [k, v] : term_sums_) v = sums[i++] / ranks;
  }

  double norm = 0;
  if (config_.max_grad_norm > 0) {
    norm = torch::nn::utils::clip_grad_norm_(params_, config_.max_grad_norm);
  } else {
    double sq = 0;
    for (const auto& p : params_) {
      if (p.grad().defined()) sq += p.grad().to(torch::kDouble).pow(2).sum().item<double>();
    }
    norm = std::sqrt(sq);
  }
  const double lr = linear_warmup_lr(config_.learning_rate, step_ + 1, warmup_steps_, total_steps_);
  auto& pg = optimizer_->param_groups();
  for (size_t i = 0; i < pg.size(); ++i) static_cast<torch::optim::AdamWOptions&>(pg[i].options()).lr(lr * group_scale_[i]);
  optimizer_->step();
  optimizer_->zero_grad();
  ++step_;

  const auto now = std::chrono::steady_clock::now();
  const double secs = std::chrono::duration<double>(now - window_start_).count();
  last_.step = step_;
  last_.loss = loss_sum_ / static_cast<double>(micro_);
  last_.terms.clear();
  for (const auto& [k, v] : term_sums_) last_.terms[k] = v / static_cast<double>(micro_);
  last_.lr = lr;
  last_.grad_norm = norm;
  last_.tokens_per_s = secs > 0 ? static_cast<double>(tokens_) / secs : 0;
  last_.allreduce_ms = allreduce_ms;
  micro_ = 0;
  loss_sum_ = 0;
  tokens_ = 0;
  term_sums_.clear();
  window_start_ = now;
  log_step();
  return true;
}

bool Trainer::checkpoint_due() const {
  return config_.checkpoint_interval > 0 && step_ > 0 && micro_ == 0 && step_ % config_.checkpoint_interval == 0;
}

void Trainer::set_data_parallel(std::shared_ptr<DataParallel> dp) {
  dp_ = std::move(dp);
  reducer_.reset();
  if (!dp_) return;
  dp_->broadcast(params_);
  if (!dp_->is_main()) metrics_.reset();
}

void Trainer::make_reducer() {
  std::vector<torch::Tensor> trainable;
  for (const auto& p : params_) {
    if (p.requires_grad()) trainable.push_back(p);
  }
  const torch::ScalarType wire = config_.allreduce_dtype == "bf16"   ? torch::kBFloat16
                                 : config_.allreduce_dtype == "fp16" ? torch::kHalf
                                                                     : torch::kFloat;
  reducer_ = std::make_unique<GradientReducer>(dp_, trainable, config_.allreduce_bucket_mb << 20, 1 << 20, wire);
}

bool Trainer::is_main() const { return !dp_ || dp_->is_main(); }

bool Trainer::stop_requested() const { return dp_ ? agreed_stop_ : interrupt_requested(); }

void Trainer::log_step() {
  if (!is_main()) return;
  const bool log_now = step_ % config_.log_interval == 0 || step_ == total_steps_ || step_ == 1;
  if (log_now) {
    nlohmann::json j = {{"step", last_.step}, {"loss", last_.loss}, {"lr", last_.lr},
                        {"grad_norm", last_.grad_norm}, {"tokens_per_s", last_.tokens_per_s}};
    if (dp_) j["allreduce_ms"] = last_.allreduce_ms;
    for (const auto& [k, v] : last_.terms) j[k] = v;
    *metrics_ << j.dump() << "\n";
    metrics_->flush();
  }
  std::ostringstream line;
  line << "step " << step_ << "/" << total_steps_ << " loss " << std::fixed << std::setprecision(4) << last_.loss;
  for (const auto& [k, v] : last_.terms) line << " " << k << " " << v;
  line << " lr " << std::scientific << std::setprecision(2) << last_.lr << std::fixed << std::setprecision(0)
       << " tok/s " << last_.tokens_per_s;
  if (tty_) {
    const int width = 24;
    const int filled = static_cast<int>(width * step_ / std::max<int64_t>(1, total_steps_));
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    const int64_t done_here = step_ - start_step_;
    const double remaining =
        done_here > 0 ? elapsed / static_cast<double>(done_here) * static_cast<double>(total_steps_ - step_) : -1;
    std::cerr << "\r[" << std::string(filled, '#') << std::string(width - filled, '.') << "] " << line.str()
              << " ETA " << format_duration(remaining) << "   " << (step_ == total_steps_ ? "\n" : "") << std::flush;
  } else if (log_now) {
    std::cerr << line.str() << "\n";
  }
}

std::string Trainer::save_checkpoint(const nlohmann::json& caller_state) const {
  check(micro_ == 0, "checkpoints are taken between optimizer steps (", micro_, " micro-batches pending)");
  torch::Tensor rng;  // (state bytes) uint8 of the default CPU generator: dropout masks
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    rng = gen.get_state().contiguous();
  }
  // Data parallel: every rank's generator, so a resumed run draws the masks it would have drawn.
  std::vector<std::string> rank_rngs;
  if (dp_) {
    rank_rngs = dp_->gather_strings(std::string(static_cast<const char*>(rng.data_ptr()), static_cast<size_t>(rng.numel())));
  }
  if (!is_main()) return "";
  const std::string name = "checkpoint-" + std::to_string(step_);
  const std::string final_dir = join_path(run_dir_, name);
  const std::string tmp_dir = final_dir + ".tmp";
  fs::remove_all(tmp_dir);
  fs::create_directories(tmp_dir);
  save_model(*model_.ptr(), tmp_dir);
  torch::save(*optimizer_, join_path(tmp_dir, "optimizer.pt"));
  if (extra_) {
    torch::serialize::OutputArchive archive;
    extra_->save(archive);
    archive.save_to(join_path(tmp_dir, "extra.pt"));
  }
  torch::save(rng, join_path(tmp_dir, "rng_state.pt"));
  for (size_t r = 1; r < rank_rngs.size(); ++r) {
    write_file_atomic(join_path(tmp_dir, "rng_state.rank" + std::to_string(r) + ".bin"), rank_rngs[r]);
  }
  nlohmann::json state = {{"step", step_}, {"total_steps", total_steps_}, {"config", config_.to_json()},
                          {"caller", caller_state}};
  write_file_atomic(join_path(tmp_dir, "trainer_state.json"), state.dump(2) + "\n");
  fs::remove_all(final_dir);
  fs::rename(tmp_dir, final_dir);
  write_file_atomic(join_path(run_dir_, "checkpoint-last"), name + "\n");
  return final_dir;
}

nlohmann::json Trainer::restore(const std::string& dir) {
  const std::string state_file = join_path(dir, "trainer_state.json");
  nlohmann::json state;
  try {
    state = nlohmann::json::parse(read_file(state_file));
  } catch (const nlohmann::json::exception& e) {
    fail(state_file, ": invalid JSON (", e.what(), ")");
  }
  check(state.value("total_steps", int64_t{-1}) == total_steps_, state_file, ": checkpoint planned ",
        state.value("total_steps", int64_t{-1}), " steps, this run ", total_steps_,
        " (resume with the same configuration)");
  // Onto this rank's device: a checkpoint written by rank 0 on cuda:0 is read by rank 1 onto cuda:1.
  const torch::Device device = params_.front().device();
  try {
    torch::load(*optimizer_, join_path(dir, "optimizer.pt"), device);
    if (extra_) {
      check(path_exists(join_path(dir, "extra.pt")), dir, ": the checkpoint has no extra.pt (the projections of ",
            "intermediate distillation); resume with the configuration that wrote it");
      torch::serialize::InputArchive archive;
      archive.load_from(join_path(dir, "extra.pt"), device);
      extra_->load(archive);
    }
    torch::Tensor rng;
    torch::load(rng, join_path(dir, "rng_state.pt"));
    if (dp_ && !dp_->is_main()) {  // this rank's own generator, saved by rank 0 at the checkpoint
      const std::string file = join_path(dir, "rng_state.rank" + std::to_string(dp_->rank()) + ".bin");
      check(path_exists(file), dir, ": no dropout generator state for rank ", dp_->rank(),
            " (the checkpoint was written by fewer ranks); resume with the same world size");
      const std::string bytes = read_file(file);
      rng = torch::from_blob(const_cast<char*>(bytes.data()), {static_cast<int64_t>(bytes.size())}, torch::kUInt8).clone();
    }
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(rng);
  } catch (const c10::Error& e) {
    std::string what = e.what();
    fail(dir, ": cannot restore optimizer/RNG state (", what.substr(0, what.find('\n')), ")");
  }
  step_ = start_step_ = state.at("step").get<int64_t>();
  micro_ = 0;
  return state.value("caller", nlohmann::json::object());
}

std::string latest_checkpoint(const std::string& run_dir) {
  const std::string marker = join_path(run_dir, "checkpoint-last");
  if (!path_exists(marker)) return "";
  std::string name = read_file(marker);
  while (!name.empty() && (name.back() == '\n' || name.back() == '\r')) name.pop_back();
  const std::string dir = join_path(run_dir, name);
  check(is_directory(dir), marker, ": points at ", name, ", which does not exist");
  return dir;
}

}  // namespace retort

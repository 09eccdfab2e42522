// Intermediate-layer distillation (TinyBERT, Jiao et al. 2019): the student learns the teacher's
// embedding output, its hidden states and its attention scores layer by layer, through a layer mapping
// and learned projections W (d_student -> d_teacher) when the widths differ, plus TinyBERT's
// prediction-layer soft cross-entropy. One IntermediateDistiller serves general distillation (corpus,
// `retort distill`) and task-specific distillation (`retort finetune` with a teacher).
//
// Dimensions: B batch, T sequence, Hs / Ht student / teacher hidden, N heads, M student layers,
// L teacher layers, C classes, R selected rows.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include "retort/config.h"
#include "retort/model.h"

namespace retort {

// ---- losses -----------------------------------------------------------------------------------------
// As in losses.h: teacher tensors are detached targets; reductions run in fp32 (fp64 kept for tests);
// a selection of zero elements gives a 0 that stays connected to the graph.

// Hidden-state (and embedding) MSE: L = (1/(R*H)) * sum_{r, h} (s[r,h] - t[r,h])^2 over the R non-padding
// positions, i.e. MSELoss(mean) restricted to real tokens. student (already projected to the teacher's
// width) and teacher: (B, T, H) with attention_mask (B, T), or (R, H) with no mask.
at::Tensor hidden_mse_loss(const at::Tensor& student, const at::Tensor& teacher, const at::Tensor& attention_mask = {});

// Attention MSE on pre-softmax scores: L = mean over (b, n, i, j) with both i and j real tokens of
// (s[b,n,i,j] - t[b,n,i,j])^2; padded queries and keys are excluded (TinyBERT zeroed the masked scores).
// student, teacher: (B, N, T, T) scores before the mask is added; attention_mask (B, T) or undefined.
at::Tensor attention_mse_loss(const at::Tensor& student_scores, const at::Tensor& teacher_scores,
                              const at::Tensor& attention_mask = {});

// MobileBERT's attention transfer: L = mean over heads and real query positions i of
// KL(softmax_j(t[b,n,i,:]) || softmax_j(s[b,n,i,:])), both distributions over the real keys only (the
// mask is applied to the scores, as the model does). Inputs as attention_mse_loss.
at::Tensor attention_kl_loss(const at::Tensor& student_scores, const at::Tensor& teacher_scores,
                             const at::Tensor& attention_mask = {});

// TinyBERT's prediction-layer loss: L = -(1/R) * sum_r sum_c softmax(t[r]/T)[c] * log_softmax(s[r]/T)[c]
// (soft cross-entropy, no T^2 factor; it differs from KL(p_t || p_s) by the teacher's entropy only).
// student, teacher: (R, C).
at::Tensor soft_cross_entropy_loss(const at::Tensor& student_logits, const at::Tensor& teacher_logits,
                                   double temperature);

// ---- layer mapping --------------------------------------------------------------------------------

// Which teacher representation each student representation learns. Hidden indices count the embedding
// output as 0 (student 0 <-> teacher 0); attention indices are 0-based layer numbers.
struct LayerMap {
  std::vector<int64_t> hidden;     // M + 1: student hidden state m -> teacher hidden state
  std::vector<int64_t> attention;  // M: student layer m -> teacher layer
};

// Uniform mapping g(m) = m * k with k = L / M (TinyBERT): student hidden m <-> teacher hidden m*k and
// student layer m (0-based) <-> teacher layer (m+1)*k - 1. Refuses M > L and L not a multiple of M.
LayerMap uniform_layer_map(int64_t student_layers, int64_t teacher_layers);
// Explicit mapping: teacher_layers[m] is the 1-based teacher layer (teacher hidden state) that student
// layer m+1 learns; M entries, strictly increasing, within [1, L]. The embeddings map 0 <-> 0.
LayerMap explicit_layer_map(const std::vector<int64_t>& teacher_layers, int64_t student_layers,
                            int64_t teacher_layers_count);

// ---- configuration --------------------------------------------------------------------------------

enum class ProjectionKind { Shared, PerLayer, None };
enum class AttentionLoss { Mse, Kl };  // TinyBERT's MSE on scores, MobileBERT's KL on distributions
ProjectionKind parse_projection(const std::string& s);  // "shared", "per_layer", "none"
std::string projection_name(ProjectionKind p);

// The intermediate terms and how they are computed. JSON fields (flat, beside the other loss weights):
// alpha_att, alpha_hidden, alpha_emb, layer_map ("uniform" or a list of 1-based teacher layers),
// projection ("shared" | "per_layer" | "none"), attention_loss ("mse" | "kl").
struct IntermediateOptions {
  double alpha_att = 0;     // attention-score MSE, summed over the mapped layers
  double alpha_hidden = 0;  // hidden-state MSE, summed over the mapped layers 1..M
  double alpha_emb = 0;     // embedding-output MSE (hidden state 0)
  std::vector<int64_t> layer_map;  // empty: uniform
  ProjectionKind projection = ProjectionKind::Shared;
  AttentionLoss attention_loss = AttentionLoss::Mse;
  // >= 0: only student layer `only_layer` contributes (MobileBERT's progressive transfer: its hidden
  // state and attention, plus the embeddings when it is 0); -1: every mapped layer.
  int64_t only_layer = -1;

  bool enabled() const { return alpha_att > 0 || alpha_hidden > 0 || alpha_emb > 0; }
  void validate() const;  // weights finite and >= 0
  void read(const nlohmann::json& j, const char* context);  // missing fields keep their values
  void write(nlohmann::json& j) const;
  LayerMap map(int64_t student_layers, int64_t teacher_layers) const;
};

// The learned projections (student width -> teacher width) and the loss computation. A torch module so
// the Trainer optimises and checkpoints its parameters with the student's. Registered names:
// "fit_dense.<i>" (one Linear when shared, M + 1 when per layer, none when projection is None).
struct IntermediateDistillerImpl : torch::nn::Module {
  // Throws when the configuration does not fit the two models: a mapping out of range, different head
  // counts with alpha_att > 0, or projection "none" with different widths. `seed` initialises W.
  IntermediateDistillerImpl(const ModelConfig& student, const ModelConfig& teacher, const IntermediateOptions& opt,
                            uint64_t seed);

  // What each forward pass must keep for these losses.
  ForwardOptions forward_options() const;
  // The weighted terms "loss_att", "loss_hidden", "loss_emb" (undefined weights are left out) and their
  // weighted sum in `total` (undefined when nothing is enabled). attention_mask: (B, T) or undefined.
  struct Terms {
    at::Tensor total;
    std::map<std::string, at::Tensor> terms;  // unweighted, with the graph
  };
  Terms losses(const EncoderOutput& student, const EncoderOutput& teacher, const at::Tensor& attention_mask);

  // Student hidden state m projected to the teacher's width: (B, T, Hs) -> (B, T, Ht).
  at::Tensor project(int64_t m, const at::Tensor& hidden);

  IntermediateOptions options;
  LayerMap layer_map;
  torch::nn::ModuleList fit_dense{nullptr};
};
TORCH_MODULE(IntermediateDistiller);

}  // namespace retort

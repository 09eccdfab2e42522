// Builds a DistilBERT (or shallow BERT) student from a teacher: picks the teacher layers to keep,
// derives the student's config, and copies every student tensor from its teacher counterpart by
// canonical name, so a tensor that has no source is an error rather than a silent random init.
//
// Dimensions: H hidden, V vocabulary, L teacher layers, K student layers.
#include <algorithm>
#include <sstream>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "retort/error.h"
#include "retort/student.h"

namespace retort {
namespace {

const std::string kLayerPrefix = "bert.encoder.layer.";
const std::string kTokenTypes = "bert.embeddings.token_type_embeddings.weight";

std::string list_str(const std::vector<int64_t>& v) {
  std::ostringstream os;
  for (size_t i = 0; i < v.size(); ++i) os << (i ? "," : "") << v[i];
  return os.str();
}

void check_layer_list(const std::vector<int64_t>& layers, int64_t teacher_layers) {
  check(!layers.empty(), "student layers: the list of teacher layers is empty");
  const std::string list = list_str(layers);
  for (int64_t l : layers) {
    check(l >= 0 && l < teacher_layers, "student layers ", list, ": layer ", l, " is out of range; the teacher has ",
          teacher_layers, " layers (0..", teacher_layers - 1, ")");
  }
  for (int64_t l : layers) {
    check(std::count(layers.begin(), layers.end(), l) == 1, "student layers ", list, ": layer ", l, " is listed twice");
  }
  for (size_t i = 1; i < layers.size(); ++i) {
    check(layers[i] > layers[i - 1], "student layers ", list, ": layers must be strictly increasing (",
          layers[i - 1], " comes before ", layers[i], ")");
  }
}

// The teacher tensor a student tensor is copied from: the same canonical name, with the student's
// layer index replaced by the teacher layer it takes.
std::string teacher_name(const std::string& student_name, const std::vector<int64_t>& layers) {
  if (student_name.compare(0, kLayerPrefix.size(), kLayerPrefix) != 0) return student_name;
  const size_t dot = student_name.find('.', kLayerPrefix.size());
  const size_t k = std::stoul(student_name.substr(kLayerPrefix.size(), dot - kLayerPrefix.size()));
  check(k < layers.size(), "student tensor '", student_name, "' has no teacher layer assigned");
  return kLayerPrefix + std::to_string(layers[k]) + student_name.substr(dot);
}

}  // namespace

LayerStrategy parse_layer_strategy(const std::string& name) {
  if (name == "every-other") return LayerStrategy::EveryOther;
  if (name == "hf-example") return LayerStrategy::HfExample;
  if (name == "first-k") return LayerStrategy::FirstK;
  if (name == "last-k") return LayerStrategy::LastK;
  fail("unknown layer strategy '", name, "' (every-other, hf-example, first-k, last-k)");
}

std::string layer_strategy_name(LayerStrategy s) {
  switch (s) {
    case LayerStrategy::EveryOther: return "every-other";
    case LayerStrategy::HfExample: return "hf-example";
    case LayerStrategy::FirstK: return "first-k";
    case LayerStrategy::LastK: return "last-k";
  }
  return "every-other";
}

StudentFormat parse_student_format(const std::string& name) {
  if (name == "distilbert") return StudentFormat::DistilBert;
  if (name == "bert") return StudentFormat::Bert;
  if (name == "mobilebert") return StudentFormat::MobileBert;
  fail("unknown student format '", name, "' (distilbert, bert, mobilebert)");
}

std::vector<int64_t> student_layer_indices(const StudentOptions& opt, int64_t L) {
  check(L > 0, "student layers: the teacher has no layers");
  check(!opt.random_init || (!opt.layers && !opt.strategy),
        "student layers: a randomly initialised student copies no teacher layers; give n_layers (--n-layers) "
        "instead of a layer list or strategy");
  if (opt.n_layers) check(*opt.n_layers > 0, "student layers: n_layers must be positive, got ", *opt.n_layers);
  if (opt.random_init) return {};
  if (opt.layers) {
    check(!opt.strategy, "student layers: give either a list of layers or a strategy, not both");
    check_layer_list(*opt.layers, L);
    check(!opt.n_layers || *opt.n_layers == static_cast<int64_t>(opt.layers->size()), "student layers ",
          list_str(*opt.layers), ": n_layers = ", opt.n_layers.value_or(0), " but the list has ",
          opt.layers->size(), " layers");
    return *opt.layers;
  }
  const LayerStrategy strategy = opt.strategy.value_or(LayerStrategy::EveryOther);
  const std::string name = layer_strategy_name(strategy);
  std::vector<int64_t> out;
  switch (strategy) {
    case LayerStrategy::EveryOther: {
      const int64_t max_k = (L + 1) / 2;
      const int64_t k = opt.n_layers.value_or(max_k);
      check(k <= max_k, "student layers: every-other takes at most ", max_k, " layers of a ", L,
            "-layer teacher, asked for ", k);
      for (int64_t i = 0; i < k; ++i) out.push_back(2 * i);
      break;
    }
    case LayerStrategy::HfExample:
      // extract_distilbert.py's hand-picked list; it has no rule that carries over to other depths.
      check(L == 12, "student layers: the hf-example strategy (layers 0,2,4,7,9,11) is defined for a 12-layer "
            "teacher, this one has ", L, "; use every-other or an explicit list of layers");
      check(!opt.n_layers || *opt.n_layers == 6, "student layers: hf-example gives 6 layers, asked for ",
            opt.n_layers.value_or(0));
      out = {0, 2, 4, 7, 9, 11};
      break;
    case LayerStrategy::FirstK:
    case LayerStrategy::LastK: {
      check(opt.n_layers.has_value(), "student layers: the ", name, " strategy needs n_layers (--n-layers)");
      const int64_t k = *opt.n_layers;
      check(k <= L, "student layers: ", name, " asks for ", k, " layers of a ", L, "-layer teacher");
      const int64_t first = strategy == LayerStrategy::FirstK ? 0 : L - k;
      for (int64_t i = 0; i < k; ++i) out.push_back(first + i);
      break;
    }
  }
  return out;
}

ModelConfig student_config(const ModelConfig& teacher, const StudentOptions& opt) {
  const int64_t L = teacher.num_hidden_layers;
  const auto layers = student_layer_indices(opt, L);  // also validates the options
  const int64_t K = opt.random_init ? opt.n_layers.value_or((L + 1) / 2) : static_cast<int64_t>(layers.size());
  const int64_t H = opt.hidden_size.value_or(teacher.hidden_size);
  check(H > 0, "student hidden size must be positive, got ", H);
  check(H == teacher.hidden_size || opt.random_init, "student hidden size ", H, " differs from the teacher's ",
        teacher.hidden_size, ": the student cannot be initialised from teacher layers; use --random-init "
        "(StudentOptions::random_init) to train a student of another width from scratch");
  const ModelType type = opt.format == StudentFormat::DistilBert ? ModelType::DistilBert
                         : opt.format == StudentFormat::Bert     ? ModelType::Bert
                                                                 : ModelType::MobileBert;
  check(type != ModelType::MobileBert || opt.random_init,
        "a MobileBERT student cannot copy teacher layers (its blocks differ); use --random-init");
  ModelConfig c = teacher;  // sizes, activation, dropouts, positions, pad id, tying
  if (c.model_type != type) c.extra = nlohmann::json::object();  // the other type's extra keys mean nothing
  c.model_type = type;
  c.num_hidden_layers = K;
  c.architectures.clear();
  c.id2label.clear();
  c.problem_type.clear();
  c.torch_dtype = "float32";
  if (H != teacher.hidden_size && type != ModelType::MobileBert) {
    check(H % teacher.num_attention_heads == 0, "student hidden size ", H, " is not a multiple of the teacher's ",
          teacher.num_attention_heads, " attention heads");
    // Keep the teacher's head count and FFN ratio (I/H).
    c.hidden_size = H;
    c.intermediate_size = std::max<int64_t>(1, teacher.intermediate_size * H / teacher.hidden_size);
  }
  if (opt.intermediate_size) {
    check(*opt.intermediate_size > 0, "student intermediate size must be positive, got ", *opt.intermediate_size);
    check(*opt.intermediate_size == teacher.intermediate_size || opt.random_init, "student intermediate size ",
          *opt.intermediate_size, " differs from the teacher's ", teacher.intermediate_size,
          ": teacher layers cannot be copied; use --random-init");
    c.intermediate_size = *opt.intermediate_size;
  }
  if (type == ModelType::MobileBert) {
    c.hidden_size = H;
    c.mobile = MobileBertOptions{};
    c.mobile.embedding_size = opt.embedding_size.value_or(std::max<int64_t>(1, H / 4));
    c.mobile.intra_bottleneck_size = opt.bottleneck_size.value_or(std::max<int64_t>(1, H / 4));
    c.mobile.num_feedforward_networks = opt.feedforward_networks.value_or(4);
    c.intermediate_size = opt.intermediate_size.value_or(H);
    c.hidden_act = "relu";
    c.hidden_dropout_prob = 0.0;  // MobileBertConfig's default
    if (c.type_vocab_size == 0) c.type_vocab_size = 2;
    c.sinusoidal_pos_embds = false;
    c.position_embedding_type = "absolute";
    c.validate("student config");
    return c;
  }
  check(!opt.embedding_size && !opt.bottleneck_size && !opt.feedforward_networks,
        "embedding, bottleneck and feed-forward counts apply to MobileBERT students only (--format mobilebert)");
  if (type == ModelType::DistilBert) {
    c.type_vocab_size = 0;
    c.layer_norm_eps = 1e-12;  // fixed in transformers' DistilBERT; a reloaded student would use it anyway
    c.position_embedding_type = "absolute";
  } else {
    // A DistilBERT teacher has no token types; a BERT student gets BERT's two, zeroed (see below).
    if (c.type_vocab_size == 0) c.type_vocab_size = 2;
    c.sinusoidal_pos_embds = false;  // BERT has no fixed positions: a copied table becomes learned
  }
  c.validate("student config");
  return c;
}

Model init_student_from_teacher(ModelImpl& teacher, const StudentOptions& opt) {
  check(opt.random_init || static_cast<bool>(teacher.cls), "the teacher has no masked-LM head (architecture ",
        architecture_name(teacher.config.model_type, teacher.head),
        "); load it as *ForMaskedLM so the student can copy the head");
  check(opt.random_init || teacher.config.model_type != ModelType::MobileBert,
        "init student: a MobileBERT teacher's blocks (bottlenecks, stacked FFNs) do not fit a BERT or DistilBERT "
        "student; use --random-init, or train a MobileBERT student (retort distill with a mobilebert config)");
  const std::vector<int64_t> layers = student_layer_indices(opt, teacher.config.num_hidden_layers);
  Model student(student_config(teacher.config, opt), HeadKind::MaskedLM);
  // Every tensor starts from HF's initialisation (seeded); with random_init that is the whole story.
  init_weights(*student, at::detail::createCPUGenerator(opt.seed));
  if (!opt.random_init) {
    torch::NoGradGuard no_grad;
    auto teacher_params = teacher.named_parameters(/*recurse=*/true);
    for (auto& item : student->named_parameters(/*recurse=*/true)) {
      const std::string& name = item.key();
      torch::Tensor& dst = item.value();
      const std::string src_name = teacher_name(name, layers);
      const torch::Tensor* src = teacher_params.find(src_name);
      if (!src && name == kTokenTypes) {
        // A BERT-format student of a DistilBERT teacher: zero token types add nothing, as the teacher.
        dst.zero_();
        continue;
      }
      // Token types of a DistilBERT student do not exist: the student has no such tensor to fill, so
      // they are dropped, as extract_distilbert.py does (nothing is folded into the embeddings).
      check(src != nullptr, "init student: the teacher has no tensor '", src_name, "' for student tensor '", name, "'");
      check(src->sizes() == dst.sizes(), "init student: teacher tensor '", src_name, "' has shape ", src->sizes(),
            ", student tensor '", name, "' expects ", dst.sizes());
      dst.copy_(*src);
    }
  }
  for (const auto& p : teacher.parameters()) {
    student->to(p.device());  // fp32 master weights, beside the teacher
    break;
  }
  student->train();
  return student;
}

}  // namespace retort

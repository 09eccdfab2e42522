// ONNX export: the same forward pass as src/model/bert.cpp, written as an ONNX graph node by node.
// Built only with Debian's libonnx-dev (RETORT_HAVE_ONNX); otherwise every entry point says so.
//
// Dimensions: B batch, T sequence, H hidden, I intermediate, N heads, D head size, V vocabulary.
#include "retort/onnx_export.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <map>

#include "retort/error.h"
#include "retort/fs.h"

#ifdef RETORT_HAVE_ONNX
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>
#endif

namespace retort {

#ifndef RETORT_HAVE_ONNX

namespace {
[[noreturn]] void no_onnx() {
  fail("ONNX export: this Retort was built without ONNX (install libonnx-dev and rebuild: scripts/setup.sh)");
}
}  // namespace

bool onnx_export_available() { return false; }
void export_onnx(ModelImpl&, const std::string&) { no_onnx(); }
void check_onnx(const std::string&) { no_onnx(); }
OnnxSignature onnx_signature(const std::string&) { no_onnx(); }

#else

bool onnx_export_available() { return true; }

namespace {

constexpr int64_t kOpset = 17;  // LayerNormalization is in 17; onnx 1.12's checker knows up to 17

// Appends nodes and initializers to a graph; every op returns the name of its (first) output.
class GraphBuilder {
 public:
  explicit GraphBuilder(onnx::GraphProto* g) : g_(g) {}

  // An fp32 initializer from a tensor (copied as raw little-endian data).
  std::string weight(const std::string& name, const torch::Tensor& t) {
    const torch::Tensor c = t.detach().to(torch::kCPU, torch::kFloat).contiguous();
    onnx::TensorProto* p = g_->add_initializer();
    p->set_name(name);
    p->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : c.sizes()) p->add_dims(d);
    p->set_raw_data(c.data_ptr(), static_cast<size_t>(c.numel()) * sizeof(float));
    return name;
  }
  // W (out, in) stored as W^T (in, out), for MatMul(x, W^T).
  std::string weight_t(const std::string& name, const torch::Tensor& w) { return weight(name + "_t", w.t()); }

  std::string scalar(float v) {  // rank-0 fp32 constant, one per value
    const std::string key = "const_f" + std::to_string(v);
    if (!made_.count(key)) {
      made_[key] = true;
      onnx::TensorProto* p = g_->add_initializer();
      p->set_name(key);
      p->set_data_type(onnx::TensorProto::FLOAT);
      p->add_float_data(v);
    }
    return key;
  }
  std::string ints(const std::vector<int64_t>& v, bool rank0 = false) {  // int64 constant
    std::string key = rank0 ? "const_i" : "const_is";
    for (int64_t x : v) key += "_" + std::to_string(x);
    if (!made_.count(key)) {
      made_[key] = true;
      onnx::TensorProto* p = g_->add_initializer();
      p->set_name(key);
      p->set_data_type(onnx::TensorProto::INT64);
      if (!rank0) p->add_dims(static_cast<int64_t>(v.size()));
      for (int64_t x : v) p->add_int64_data(x);
    }
    return key;
  }

  struct Attr {
    std::string name;
    int64_t i = 0;
    float f = 0;
    std::vector<int64_t> is;
    enum { Int, Float, Ints } kind = Int;
  };
  static Attr i(const std::string& n, int64_t v) { return Attr{n, v, 0, {}, Attr::Int}; }
  static Attr f(const std::string& n, float v) { return Attr{n, 0, v, {}, Attr::Float}; }
  static Attr is(const std::string& n, std::vector<int64_t> v) { return Attr{n, 0, 0, std::move(v), Attr::Ints}; }

  std::string op(const std::string& type, const std::vector<std::string>& in, const std::vector<Attr>& attrs = {},
                 const std::string& out = "") {
    onnx::NodeProto* n = g_->add_node();
    const std::string id = std::to_string(counter_++);
    n->set_name(type + "_" + id);
    n->set_op_type(type);
    for (const auto& s : in) n->add_input(s);
    const std::string o = out.empty() ? type + "_" + id + "_out" : out;
    n->add_output(o);
    for (const auto& a : attrs) {
      onnx::AttributeProto* p = n->add_attribute();
      p->set_name(a.name);
      if (a.kind == Attr::Int) {
        p->set_type(onnx::AttributeProto::INT);
        p->set_i(a.i);
      } else if (a.kind == Attr::Float) {
        p->set_type(onnx::AttributeProto::FLOAT);
        p->set_f(a.f);
      } else {
        p->set_type(onnx::AttributeProto::INTS);
        for (int64_t x : a.is) p->add_ints(x);
      }
    }
    return o;
  }

  // y = x W^T + b
  std::string linear(const std::string& x, torch::nn::Linear& lin, const std::string& name, float scale = 1.0f,
                     const std::string& out = "") {
    const std::string w = weight_t(name + ".weight", lin->weight * scale);
    const std::string b = weight(name + ".bias", lin->bias * scale);
    return op("Add", {op("MatMul", {x, w}), b}, {}, out);
  }
  std::string layer_norm(const std::string& x, torch::nn::LayerNorm& ln, const std::string& name) {
    return op("LayerNormalization", {x, weight(name + ".weight", ln->weight), weight(name + ".bias", ln->bias)},
              {i("axis", -1), f("epsilon", static_cast<float>(ln->options.eps()))});
  }
  std::string activation(const std::string& act, const std::string& x) {
    if (act == "gelu") {  // 0.5 x (1 + erf(x / sqrt 2))
      const std::string e = op("Erf", {op("Div", {x, scalar(static_cast<float>(std::sqrt(2.0)))})});
      return op("Mul", {op("Mul", {x, op("Add", {e, scalar(1.0f)})}), scalar(0.5f)});
    }
    if (act == "gelu_new" || act == "gelu_pytorch_tanh" || act == "gelu_fast" || act == "gelu_accurate") {
      // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
      const std::string cube = op("Mul", {op("Pow", {x, scalar(3.0f)}), scalar(0.044715f)});
      const std::string inner = op("Mul", {op("Add", {x, cube}), scalar(static_cast<float>(std::sqrt(2.0 / M_PI)))});
      return op("Mul", {op("Mul", {x, op("Add", {op("Tanh", {inner}), scalar(1.0f)})}), scalar(0.5f)});
    }
    if (act == "relu") return op("Relu", {x});
    if (act == "tanh") return op("Tanh", {x});
    if (act == "silu" || act == "swish") return op("Mul", {x, op("Sigmoid", {x})});
    fail("ONNX export: activation '", act, "' is not supported (gelu, gelu_new, relu, tanh, silu)");
  }

  void io(bool input, const std::string& name, int elem, const std::vector<std::string>& dims) {
    onnx::ValueInfoProto* v = input ? g_->add_input() : g_->add_output();
    v->set_name(name);
    auto* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(elem);
    for (const auto& d : dims) {
      auto* dim = t->mutable_shape()->add_dim();
      if (d.find_first_not_of("0123456789") == std::string::npos) {
        dim->set_dim_value(std::stoll(d));
      } else {
        dim->set_dim_param(d);
      }
    }
  }

 private:
  onnx::GraphProto* g_;
  int64_t counter_ = 0;
  std::map<std::string, bool> made_;
};

onnx::ModelProto build_model(ModelImpl& model) {
  torch::NoGradGuard no_grad;
  const ModelConfig& c = model.config;
  const int64_t H = c.hidden_size, N = c.num_attention_heads, D = c.head_dim();
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.set_producer_name("retort");
  m.set_model_version(1);
  auto* opset = m.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOpset);
  onnx::GraphProto* g = m.mutable_graph();
  g->set_name(architecture_name(c.model_type, model.head));
  GraphBuilder b(g);
  using GB = GraphBuilder;
  const bool types = c.type_vocab_size > 0;
  b.io(true, "input_ids", onnx::TensorProto::INT64, {"batch", "sequence"});
  b.io(true, "attention_mask", onnx::TensorProto::INT64, {"batch", "sequence"});
  if (types) b.io(true, "token_type_ids", onnx::TensorProto::INT64, {"batch", "sequence"});

  // Embeddings: words + positions [0, T) (+ segments), LayerNorm.
  auto& emb = model.bert->embeddings;
  const std::string word = b.weight("embeddings.word_embeddings.weight", emb->word_embeddings->weight);  // (V, H)
  const std::string t_len = b.op("Slice", {b.op("Shape", {"input_ids"}), b.ints({1}), b.ints({2})});   // [T]
  const std::string pos = b.op("Slice", {b.weight("embeddings.position_embeddings.weight", emb->position_embeddings->weight),
                                         b.ints({0}), t_len, b.ints({0})});  // (T, H)
  std::string x = b.op("Add", {b.op("Gather", {word, "input_ids"}), pos});   // (B, T, H)
  if (types) {
    const std::string tt = b.weight("embeddings.token_type_embeddings.weight", emb->token_type_embeddings->weight);
    x = b.op("Add", {x, b.op("Gather", {tt, "token_type_ids"})});
  }
  x = b.layer_norm(x, emb->LayerNorm, "embeddings.LayerNorm");

  // (B, T) {0,1} -> (B, 1, 1, T) additive: 0 on tokens, fp32's lowest value on padding.
  const std::string keep = b.op("Cast", {"attention_mask"}, {GB::i("to", onnx::TensorProto::FLOAT)});
  const std::string mask = b.op(
      "Unsqueeze", {b.op("Mul", {b.op("Sub", {b.scalar(1.0f), keep}), b.scalar(std::numeric_limits<float>::lowest())}),
                    b.ints({1, 2})});

  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  const std::string heads_shape = b.ints({0, 0, N, D}), merged_shape = b.ints({0, 0, H});
  for (size_t l = 0; l < model.bert->encoder->layers.size(); ++l) {
    auto& layer = model.bert->encoder->layers[l];
    const std::string p = "encoder.layer." + std::to_string(l) + ".";
    auto& sa = layer->attention->self;
    auto split = [&](const std::string& t, std::vector<int64_t> perm) {  // (B, T, H) -> heads, permuted
      return b.op("Transpose", {b.op("Reshape", {t, heads_shape})}, {GB::is("perm", std::move(perm))});
    };
    const std::string q = split(b.linear(x, sa->query, p + "attention.self.query", scale), {0, 2, 1, 3});  // (B, N, T, D)
    const std::string kt = split(b.linear(x, sa->key, p + "attention.self.key"), {0, 2, 3, 1});           // (B, N, D, T)
    const std::string v = split(b.linear(x, sa->value, p + "attention.self.value"), {0, 2, 1, 3});        // (B, N, T, D)
    const std::string probs = b.op("Softmax", {b.op("Add", {b.op("MatMul", {q, kt}), mask})}, {GB::i("axis", -1)});
    const std::string ctx = b.op(
        "Reshape",
        {b.op("Transpose", {b.op("MatMul", {probs, v})}, {GB::is("perm", {0, 2, 1, 3})}), merged_shape});  // (B, T, H)
    auto& ao = layer->attention->output;
    const std::string h = b.layer_norm(b.op("Add", {b.linear(ctx, ao->dense, p + "attention.output.dense"), x}),
                                       ao->LayerNorm, p + "attention.output.LayerNorm");
    const std::string inner = b.activation(
        layer->intermediate->act, b.linear(h, layer->intermediate->dense, p + "intermediate.dense"));  // (B, T, I)
    x = b.layer_norm(b.op("Add", {b.linear(inner, layer->output->dense, p + "output.dense"), h}),
                     layer->output->LayerNorm, p + "output.LayerNorm");
  }

  const std::string V = std::to_string(c.vocab_size), C = std::to_string(std::max<int64_t>(1, c.num_labels()));
  switch (model.head) {
    case HeadKind::None:
      b.op("Identity", {x}, {}, "last_hidden_state");
      b.io(false, "last_hidden_state", onnx::TensorProto::FLOAT, {"batch", "sequence", std::to_string(H)});
      break;
    case HeadKind::MaskedLM: {
      auto& t = model.cls->predictions->transform;
      std::string y = b.activation(t->act, b.linear(x, t->dense, "cls.predictions.transform.dense"));
      y = b.layer_norm(y, t->LayerNorm, "cls.predictions.transform.LayerNorm");
      const std::string decoder = model.config.tie_word_embeddings
                                      ? b.op("Transpose", {word}, {GB::is("perm", {1, 0})})
                                      : b.weight_t("cls.predictions.decoder.weight", model.decoder_weight());
      b.op("Add", {b.op("MatMul", {y, decoder}), b.weight("cls.predictions.bias", model.cls->predictions->bias)}, {},
           "logits");
      b.io(false, "logits", onnx::TensorProto::FLOAT, {"batch", "sequence", V});
      break;
    }
    case HeadKind::SequenceClassification: {
      const std::string first = b.op("Gather", {x, b.ints({0}, true)}, {GB::i("axis", 1)});  // (B, H)
      std::string pooled;
      if (model.pre_classifier) {
        pooled = b.op("Relu", {b.linear(first, model.pre_classifier, "pre_classifier")});
      } else {
        pooled = b.op("Tanh", {b.linear(first, model.bert->pooler->dense, "pooler.dense")});
      }
      b.linear(pooled, model.classifier, "classifier", 1.0f, "logits");
      b.io(false, "logits", onnx::TensorProto::FLOAT, {"batch", C});
      break;
    }
    case HeadKind::QuestionAnswering: {
      const std::string both = b.linear(x, model.qa_outputs, "qa_outputs");  // (B, T, 2)
      b.op("Gather", {both, b.ints({0}, true)}, {GB::i("axis", 2)}, "start_logits");
      b.op("Gather", {both, b.ints({1}, true)}, {GB::i("axis", 2)}, "end_logits");
      b.io(false, "start_logits", onnx::TensorProto::FLOAT, {"batch", "sequence"});
      b.io(false, "end_logits", onnx::TensorProto::FLOAT, {"batch", "sequence"});
      break;
    }
  }
  return m;
}

void validate(onnx::ModelProto& m, const std::string& what) {
  try {
    onnx::checker::check_model(m);
    onnx::ShapeInferenceOptions opt;
    opt.check_type = true;
    opt.error_mode = 1;  // strict: an op whose inference fails is an error
    onnx::shape_inference::InferShapes(m, onnx::OpSchemaRegistry::Instance(), opt);
  } catch (const std::exception& e) {
    fail(what, ": invalid ONNX model: ", e.what());
  }
}

onnx::ModelProto parse(const std::string& path) {
  const std::string bytes = read_file(path);
  onnx::ModelProto m;
  check(m.ParseFromString(bytes), path, ": not an ONNX model (protobuf parse failed)");
  return m;
}

}  // namespace

void export_onnx(ModelImpl& model, const std::string& path) {
  check(!model.bert->is_mobile(), "export: MobileBERT models cannot be exported to ONNX yet (BERT and DistilBERT can)");
  onnx::ModelProto m = build_model(model);
  validate(m, path);
  std::string bytes;
  check(m.SerializeToString(&bytes), path, ": cannot serialise the ONNX model (over protobuf's 2 GB limit?)");
  write_file_atomic(path, bytes);
}

void check_onnx(const std::string& path) {
  onnx::ModelProto m = parse(path);
  validate(m, path);
}

OnnxSignature onnx_signature(const std::string& path) {
  const onnx::ModelProto m = parse(path);
  OnnxSignature s;
  for (const auto& v : m.graph().input()) s.inputs.push_back(v.name());
  for (const auto& v : m.graph().output()) s.outputs.push_back(v.name());
  return s;
}

#endif

}  // namespace retort

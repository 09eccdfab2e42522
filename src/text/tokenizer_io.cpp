// Loading a Tokenizer from Hugging Face files (a model directory, tokenizer.json, or vocab.txt with
// tokenizer_config.json) and saving one in the same format. Every error names the file and what is
// wrong in it. Files are written to a temporary name and renamed into place.
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "retort/error.h"
#include "retort/tokenizer.h"
#include "text/tokenizer_state.h"

namespace retort {

namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;

namespace {

std::string read_text_file(const fs::path& path) {
  std::error_code ec;
  check(fs::is_regular_file(path, ec), "tokenizer file ", path.string(), " does not exist or is not a file");
  std::ifstream in(path, std::ios::binary);
  check(static_cast<bool>(in), "cannot open tokenizer file ", path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  check(!in.bad(), "cannot read tokenizer file ", path.string());
  return ss.str();
}

json read_json(const fs::path& path) {
  const std::string data = read_text_file(path);
  try {
    return json::parse(data);
  } catch (const json::exception& e) {
    fail("malformed JSON in ", path.string(), ": ", e.what());
  }
}

// Typed field access with the file and key in the error.
template <typename T>
T get_field(const json& obj, const char* key, const T& fallback, const fs::path& file, const char* where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    fail("malformed ", file.string(), ": ", where, ".", key, " has the wrong type (", it->type_name(), ")");
  }
}

// A special token in tokenizer_config.json: a string, or an AddedToken object with "content".
std::optional<std::string> token_string(const json& cfg, const char* key, const fs::path& file) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    return (*it)["content"].get<std::string>();
  }
  fail("malformed ", file.string(), ": ", key, " must be a string or an object with \"content\"");
}

AddedToken parse_added_token(const json& t, const fs::path& file, const char* where) {
  check(t.is_object(), "malformed ", file.string(), ": ", where, " entries must be objects");
  AddedToken a;
  a.content = get_field<std::string>(t, "content", "", file, where);
  a.id = get_field<int32_t>(t, "id", -1, file, where);
  a.special = get_field<bool>(t, "special", false, file, where);
  a.normalized = get_field<bool>(t, "normalized", !a.special, file, where);
  a.lstrip = get_field<bool>(t, "lstrip", false, file, where);
  a.rstrip = get_field<bool>(t, "rstrip", false, file, where);
  a.single_word = get_field<bool>(t, "single_word", false, file, where);
  check(!a.content.empty(), "malformed ", file.string(), ": ", where, " entry without \"content\"");
  return a;
}

// Fields of tokenizer_config.json that apply whichever file defines the pipeline.
void apply_tokenizer_config(const json& cfg, const fs::path& file, TokenizerConfig& c) {
  check(cfg.is_object(), "malformed ", file.string(), ": the top level must be an object");
  if (auto s = token_string(cfg, "unk_token", file)) c.unk_token = *s;
  if (auto s = token_string(cfg, "cls_token", file)) c.cls_token = *s;
  if (auto s = token_string(cfg, "sep_token", file)) c.sep_token = *s;
  if (auto s = token_string(cfg, "pad_token", file)) c.pad_token = *s;
  if (auto s = token_string(cfg, "mask_token", file)) c.mask_token = *s;
  c.never_split = get_field<std::vector<std::string>>(cfg, "never_split", c.never_split, file, "config");
  c.clean_up_tokenization_spaces =
      get_field<bool>(cfg, "clean_up_tokenization_spaces", c.clean_up_tokenization_spaces, file, "config");
  auto it = cfg.find("model_max_length");
  if (it != cfg.end() && it->is_number()) {
    // HF writes int(1e30) for "unbounded"; anything that large means no limit.
    const double v = it->get<double>();
    c.model_max_length = (v > 0 && v < 1e15) ? static_cast<size_t>(v) : 0;
  }
}

std::vector<TemplatePiece> parse_template(const json& arr, const json& specials, const fs::path& file,
                                          const char* name) {
  check(arr.is_array(), "malformed ", file.string(), ": post_processor.", name,
        " must be a list (template strings are not supported)");
  std::vector<TemplatePiece> out;
  for (const json& piece : arr) {
    check(piece.is_object() && piece.size() == 1, "malformed ", file.string(), ": post_processor.", name,
          " entries must be {\"SpecialToken\": ...} or {\"Sequence\": ...}");
    const std::string kind = piece.begin().key();
    const json& body = piece.begin().value();
    TemplatePiece p;
    p.type_id = get_field<int32_t>(body, "type_id", 0, file, "post_processor");
    const std::string id = get_field<std::string>(body, "id", "", file, "post_processor");
    if (kind == "Sequence") {
      check(id == "A" || id == "B", "malformed ", file.string(), ": post_processor sequence id '", id, "'");
      p.sequence = id == "A" ? 0 : 1;
    } else if (kind == "SpecialToken") {
      p.special = id;
      auto sp = specials.find(id);
      check(sp != specials.end() && sp->is_object(), "malformed ", file.string(), ": post_processor special token '",
            id, "' is missing from special_tokens");
      p.ids = get_field<std::vector<int32_t>>(*sp, "ids", {}, file, "post_processor.special_tokens");
      check(!p.ids.empty(), "malformed ", file.string(), ": post_processor special token '", id, "' has no ids");
    } else {
      fail("malformed ", file.string(), ": unknown post_processor template piece '", kind, "'");
    }
    out.push_back(std::move(p));
  }
  return out;
}

void parse_post_processor(const json& pp, const fs::path& file, TokenizerConfig& c) {
  if (pp.is_null()) {
    c.post_processor = false;
    return;
  }
  check(pp.is_object(), "malformed ", file.string(), ": post_processor must be an object or null");
  const std::string type = get_field<std::string>(pp, "type", "", file, "post_processor");
  if (type == "BertProcessing") {
    auto pair_of = [&](const char* key) {
      auto it = pp.find(key);
      check(it != pp.end() && it->is_array() && it->size() == 2 && (*it)[0].is_string() && (*it)[1].is_number_integer(),
            "malformed ", file.string(), ": post_processor.", key, " must be [token, id]");
      return std::make_pair((*it)[0].get<std::string>(), (*it)[1].get<int32_t>());
    };
    const auto [cls, cls_id] = pair_of("cls");
    const auto [sep, sep_id] = pair_of("sep");
    c.cls_token = cls;
    c.sep_token = sep;
    c.single_template = {{cls, {cls_id}, 0, 0}, {"", {}, 0, 0}, {sep, {sep_id}, 0, 0}};
    c.pair_template = {{cls, {cls_id}, 0, 0}, {"", {}, 0, 0}, {sep, {sep_id}, 0, 0}, {"", {}, 1, 1}, {sep, {sep_id}, 0, 1}};
  } else if (type == "TemplateProcessing") {
    const json specials = pp.value("special_tokens", json::object());
    c.single_template = parse_template(pp.value("single", json()), specials, file, "single");
    c.pair_template = parse_template(pp.value("pair", json()), specials, file, "pair");
    // BERT convention: the first special token of the single template is [CLS], the last [SEP].
    for (const auto& p : c.single_template) {
      if (!p.special.empty()) {
        c.cls_token = p.special;
        break;
      }
    }
    for (auto it = c.single_template.rbegin(); it != c.single_template.rend(); ++it) {
      if (!it->special.empty()) {
        c.sep_token = it->special;
        break;
      }
    }
  } else {
    fail("unsupported post_processor type '", type, "' in ", file.string(),
         " (supported: TemplateProcessing, BertProcessing, null)");
  }
}

// Writes `data` to dir/name through a temporary file and a rename.
void write_atomic(const fs::path& path, const std::string& data) {
  fs::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    check(static_cast<bool>(out), "cannot create ", tmp.string());
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    out.flush();
    check(static_cast<bool>(out), "cannot write ", tmp.string());
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    fail("cannot rename ", tmp.string(), " to ", path.string());
  }
}

json strip_accents_json(const std::optional<bool>& v) { return v ? json(*v) : json(nullptr); }

}  // namespace

Tokenizer Tokenizer::from_tokenizer_json(const std::string& path) {
  const fs::path file(path);
  const json j = read_json(file);
  check(j.is_object(), "malformed ", path, ": the top level must be an object");
  TokenizerConfig c;

  auto model_it = j.find("model");
  check(model_it != j.end() && model_it->is_object(), "malformed ", path, ": no \"model\" object");
  const json& model = *model_it;
  const std::string model_type = get_field<std::string>(model, "type", "", file, "model");
  check(model_type == "WordPiece", "unsupported model type '", model_type, "' in ", path, " (only WordPiece)");
  c.unk_token = get_field<std::string>(model, "unk_token", c.unk_token, file, "model");
  c.continuing_subword_prefix =
      get_field<std::string>(model, "continuing_subword_prefix", c.continuing_subword_prefix, file, "model");
  c.max_input_chars_per_word = get_field<size_t>(model, "max_input_chars_per_word", 100, file, "model");
  auto vocab_it = model.find("vocab");
  check(vocab_it != model.end() && vocab_it->is_object(), "malformed ", path, ": model.vocab must be an object");
  std::vector<std::string> vocab(vocab_it->size());
  std::vector<char> seen(vocab.size(), 0);
  for (const auto& [token, idv] : vocab_it->items()) {
    check(idv.is_number_integer(), "malformed ", path, ": model.vocab['", token, "'] is not an integer");
    const auto id = idv.get<int64_t>();
    check(id >= 0 && static_cast<size_t>(id) < vocab.size() && !seen[static_cast<size_t>(id)], "malformed ", path,
          ": model.vocab ids must be 0..", vocab.size() - (vocab.empty() ? 0 : 1), " each used once (token '", token,
          "' has id ", id, ")");
    seen[static_cast<size_t>(id)] = 1;
    vocab[static_cast<size_t>(id)] = token;
  }

  const json normalizer = j.value("normalizer", json());
  if (normalizer.is_null()) {
    c.clean_text = c.handle_chinese_chars = c.lowercase = false;
    c.strip_accents = false;
  } else {
    const std::string type = get_field<std::string>(normalizer, "type", "", file, "normalizer");
    check(type == "BertNormalizer", "unsupported normalizer type '", type, "' in ", path, " (only BertNormalizer)");
    c.clean_text = get_field<bool>(normalizer, "clean_text", true, file, "normalizer");
    c.handle_chinese_chars = get_field<bool>(normalizer, "handle_chinese_chars", true, file, "normalizer");
    c.lowercase = get_field<bool>(normalizer, "lowercase", true, file, "normalizer");
    auto sa = normalizer.find("strip_accents");
    if (sa != normalizer.end() && !sa->is_null()) c.strip_accents = get_field<bool>(normalizer, "strip_accents", false, file, "normalizer");
  }
  const json pre = j.value("pre_tokenizer", json());
  const std::string pre_type = pre.is_object() ? pre.value("type", "") : std::string("null");
  check(pre_type == "BertPreTokenizer", "unsupported pre_tokenizer type '", pre_type, "' in ", path,
        " (only BertPreTokenizer)");
  parse_post_processor(j.value("post_processor", json()), file, c);

  const json added = j.value("added_tokens", json::array());
  check(added.is_array(), "malformed ", path, ": added_tokens must be a list");
  for (const json& t : added) c.added_tokens.push_back(parse_added_token(t, file, "added_tokens"));

  const fs::path cfg_path = file.parent_path() / "tokenizer_config.json";
  std::error_code ec;
  if (fs::is_regular_file(cfg_path, ec)) apply_tokenizer_config(read_json(cfg_path), cfg_path, c);
  return Tokenizer(std::move(vocab), std::move(c), path);
}

Tokenizer Tokenizer::from_vocab_file(const std::string& vocab_path, const std::string& config_path) {
  const fs::path file(vocab_path);
  const std::string data = read_text_file(file);
  {
    std::vector<char32_t> scratch;
    text::decode_utf8(data, scratch, vocab_path);
  }
  // One token per line, as HF's load_vocab (rstrip("\n")); a CRLF file loses its "\r" too.
  std::vector<std::string> vocab;
  size_t pos = 0;
  while (pos < data.size()) {
    size_t nl = data.find('\n', pos);
    if (nl == std::string::npos) nl = data.size();
    std::string line = data.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    vocab.push_back(std::move(line));
    pos = nl + 1;
  }
  check(!vocab.empty(), "tokenizer ", vocab_path, ": the vocabulary is empty");

  TokenizerConfig c;
  fs::path cfg_path = config_path.empty() ? file.parent_path() / "tokenizer_config.json" : fs::path(config_path);
  std::error_code ec;
  json cfg = json::object();
  if (!config_path.empty() || fs::is_regular_file(cfg_path, ec)) cfg = read_json(cfg_path);
  if (!cfg.empty()) {
    apply_tokenizer_config(cfg, cfg_path, c);
    check(get_field<bool>(cfg, "do_basic_tokenize", true, cfg_path, "config"), "unsupported do_basic_tokenize=false in ",
          cfg_path.string(), " (only BERT's basic tokenization followed by WordPiece)");
    c.lowercase = get_field<bool>(cfg, "do_lower_case", true, cfg_path, "config");
    auto sa = cfg.find("strip_accents");
    if (sa != cfg.end() && !sa->is_null()) c.strip_accents = get_field<bool>(cfg, "strip_accents", false, cfg_path, "config");
    c.handle_chinese_chars = get_field<bool>(cfg, "tokenize_chinese_chars", true, cfg_path, "config");
  }

  // Added tokens: those listed in added_tokens_decoder, then the special tokens the vocabulary has.
  std::map<int32_t, AddedToken> added;
  auto dec = cfg.find("added_tokens_decoder");
  if (dec != cfg.end() && dec->is_object()) {
    for (const auto& [key, t] : dec->items()) {
      AddedToken a = parse_added_token(t, cfg_path, "added_tokens_decoder");
      try {
        a.id = std::stoi(key);
      } catch (const std::exception&) {
        fail("malformed ", cfg_path.string(), ": added_tokens_decoder key '", key, "' is not an id");
      }
      added[a.id] = a;
    }
  }
  // additional_special_tokens the vocabulary has; the five BERT special tokens are added by the
  // constructor.
  for (const auto& s : get_field<std::vector<std::string>>(cfg, "additional_special_tokens", {}, cfg_path, "config")) {
    for (size_t id = vocab.size(); id-- > 0;) {  // the last duplicate wins, as in load_vocab
      if (vocab[id] != s) continue;
      if (!added.count(static_cast<int32_t>(id))) added[static_cast<int32_t>(id)] = AddedToken{s, static_cast<int32_t>(id)};
      break;
    }
  }
  for (auto& [id, a] : added) c.added_tokens.push_back(a);
  return Tokenizer(std::move(vocab), std::move(c), vocab_path);
}

Tokenizer Tokenizer::load(const std::string& path) {
  const fs::path p(path);
  std::error_code ec;
  if (fs::is_directory(p, ec)) {
    if (fs::is_regular_file(p / "tokenizer.json", ec)) return from_tokenizer_json((p / "tokenizer.json").string());
    if (fs::is_regular_file(p / "vocab.txt", ec)) return from_vocab_file((p / "vocab.txt").string());
    fail("tokenizer directory ", path, " has neither tokenizer.json nor vocab.txt");
  }
  check(fs::exists(p, ec), "tokenizer path ", path, " does not exist");
  if (p.extension() == ".json") return from_tokenizer_json(path);
  return from_vocab_file(path);
}

void Tokenizer::save(const std::string& dir) const {
  const text::TokenizerState& st = *state_;
  const TokenizerConfig& c = st.config;
  const fs::path d(dir);
  std::error_code ec;
  fs::create_directories(d, ec);
  check(fs::is_directory(d), "cannot create tokenizer directory ", dir, ": ",
        ec ? ec.message() : std::string("a file of that name exists"));

  std::string vocab_txt;
  for (size_t i = 0; i < st.vocab.base_size(); ++i) {
    vocab_txt += st.vocab.token(static_cast<int32_t>(i));
    vocab_txt += '\n';
  }

  std::vector<AddedToken> added = c.added_tokens;
  std::stable_sort(added.begin(), added.end(), [](const AddedToken& x, const AddedToken& y) { return x.id < y.id; });

  // tokenizer.json, keys in the order the Rust library writes them.
  ordered_json tj;
  tj["version"] = "1.0";
  tj["truncation"] = nullptr;
  tj["padding"] = nullptr;
  tj["added_tokens"] = ordered_json::array();
  for (const AddedToken& a : added) {
    tj["added_tokens"].push_back({{"id", a.id}, {"content", a.content}, {"single_word", a.single_word},
                                  {"lstrip", a.lstrip}, {"rstrip", a.rstrip}, {"normalized", a.normalized},
                                  {"special", a.special}});
  }
  tj["normalizer"] = {{"type", "BertNormalizer"}, {"clean_text", c.clean_text},
                      {"handle_chinese_chars", c.handle_chinese_chars},
                      {"strip_accents", c.strip_accents ? ordered_json(*c.strip_accents) : ordered_json(nullptr)},
                      {"lowercase", c.lowercase}};
  tj["pre_tokenizer"] = {{"type", "BertPreTokenizer"}};
  if (c.post_processor) {
    std::map<std::string, std::vector<int32_t>> special_ids;
    auto write_template = [&](const std::vector<text::TemplateStep>& steps, const std::vector<TemplatePiece>& pieces) {
      ordered_json arr = ordered_json::array();
      for (size_t i = 0; i < steps.size(); ++i) {
        if (steps[i].sequence >= 0) {
          arr.push_back({{"Sequence", {{"id", steps[i].sequence == 0 ? "A" : "B"}, {"type_id", steps[i].type_id}}}});
        } else {
          special_ids[pieces[i].special] = steps[i].ids;
          arr.push_back({{"SpecialToken", {{"id", pieces[i].special}, {"type_id", steps[i].type_id}}}});
        }
      }
      return arr;
    };
    ordered_json pp;
    pp["type"] = "TemplateProcessing";
    pp["single"] = write_template(st.single, c.single_template);
    pp["pair"] = write_template(st.pair, c.pair_template);
    ordered_json sp = ordered_json::object();
    for (const auto& [name, ids] : special_ids) {
      ordered_json toks = ordered_json::array();
      for (int32_t id : ids) toks.push_back(st.vocab.token(id));
      sp[name] = {{"id", name}, {"ids", ids}, {"tokens", toks}};
    }
    pp["special_tokens"] = sp;
    tj["post_processor"] = pp;
  } else {
    tj["post_processor"] = nullptr;
  }
  tj["decoder"] = {{"type", "WordPiece"}, {"prefix", c.continuing_subword_prefix}, {"cleanup", true}};
  ordered_json model;
  model["type"] = "WordPiece";
  model["unk_token"] = c.unk_token;
  model["continuing_subword_prefix"] = c.continuing_subword_prefix;
  model["max_input_chars_per_word"] = c.max_input_chars_per_word;
  // The vocabulary is spliced in as text: ordered_json inserts in linear time per key, and HF
  // lists it by id, which a sorted json object would not.
  const std::string vocab_placeholder = "\"@@retort-vocab@@\"";
  model["vocab"] = "@@retort-vocab@@";
  tj["model"] = model;
  std::string vocab_json = "{";
  for (size_t i = 0; i < st.vocab.base_size(); ++i) {
    vocab_json += i ? ",\n      " : "\n      ";
    vocab_json += json(st.vocab.token(static_cast<int32_t>(i))).dump();
    vocab_json += ": ";
    vocab_json += std::to_string(i);
  }
  vocab_json += "\n    }";
  std::string tokenizer_json = tj.dump(2);
  const size_t at = tokenizer_json.rfind(vocab_placeholder);
  tokenizer_json.replace(at, vocab_placeholder.size(), vocab_json);

  // tokenizer_config.json and special_tokens_map.json: sorted keys, as transformers writes them.
  json cfg;
  json decoder = json::object();
  for (const AddedToken& a : added) {
    decoder[std::to_string(a.id)] = {{"content", a.content}, {"lstrip", a.lstrip}, {"normalized", a.normalized},
                                     {"rstrip", a.rstrip}, {"single_word", a.single_word}, {"special", a.special}};
  }
  json special_map;
  auto put_special = [&](const char* key, const std::string& token) {
    if (st.vocab.find(token) < 0) return;  // HF would add a missing one as a new token
    cfg[key] = token;
    special_map[key] = token;
  };
  put_special("cls_token", c.cls_token);
  put_special("mask_token", c.mask_token);
  put_special("pad_token", c.pad_token);
  put_special("sep_token", c.sep_token);
  put_special("unk_token", c.unk_token);
  cfg["added_tokens_decoder"] = decoder;
  cfg["clean_up_tokenization_spaces"] = c.clean_up_tokenization_spaces;
  cfg["do_basic_tokenize"] = true;
  cfg["do_lower_case"] = c.lowercase;
  // Unbounded is written as transformers writes it: int(1e30), too large for a json number here.
  const std::string unbounded_placeholder = "\"@@retort-unbounded@@\"";
  if (c.model_max_length > 0) {
    cfg["model_max_length"] = c.model_max_length;
  } else {
    cfg["model_max_length"] = "@@retort-unbounded@@";
  }
  cfg["never_split"] = c.never_split.empty() ? json(nullptr) : json(c.never_split);
  cfg["strip_accents"] = strip_accents_json(c.strip_accents);
  cfg["tokenize_chinese_chars"] = c.handle_chinese_chars;
  cfg["tokenizer_class"] = "BertTokenizer";

  write_atomic(d / "vocab.txt", vocab_txt);
  std::string cfg_json = cfg.dump(2) + "\n";
  if (const size_t pos = cfg_json.find(unbounded_placeholder); pos != std::string::npos) {
    cfg_json.replace(pos, unbounded_placeholder.size(), "1000000000000000019884624838656");
  }
  write_atomic(d / "tokenizer_config.json", cfg_json);
  write_atomic(d / "special_tokens_map.json", special_map.dump(2) + "\n");
  write_atomic(d / "tokenizer.json", tokenizer_json);
}

}  // namespace retort

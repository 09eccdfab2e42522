// Tests of the checkpoint loaders against transformers' own files: for each golden model the
// pytorch_model.bin holds exactly the keys, shapes and dtypes of state_dict_keys.json, the
// model.safetensors the same tensors with the same values minus the tied aliases; load_state_dict
// picks the weight file in transformers' order. Also pytorch_model.bin errors and sharded .bin indexes.
// Tensors keep the shapes of the checkpoint (no B/T/H dimensions here).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cctype>
#include <nlohmann/json.hpp>
#include <set>

#include "io_test_util.h"
#include "retort/safetensors.h"
#include "retort/state_dict.h"
#include "retort/torch_bin.h"
#include "test_paths.h"

namespace retort {
namespace {

using test::read_bytes;
using test::TempDir;
using test::write_bytes;

std::string golden(const std::string& model, const std::string& file) {
  return test::shared_path("golden/" + model + "/" + file);
}

c10::ScalarType dtype_named(const std::string& name) {
  if (name == "float32") return torch::kFloat;
  if (name == "float16") return torch::kHalf;
  if (name == "int64") return torch::kLong;
  ADD_FAILURE() << "dtype " << name << " not expected in the golden keys";
  return torch::kFloat;
}

class GoldenCheckpoint : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenCheckpoint, BinAndSafetensorsHoldTheListedTensors) {
  const std::string model = GetParam();
  const auto keys = nlohmann::json::parse(read_bytes(golden(model, "state_dict_keys.json")));
  const StateDict bin = load_torch_bin(golden(model, "pytorch_model.bin"));
  const StateDict st = load_safetensors(golden(model, "model.safetensors"));

  // pytorch_model.bin: every listed key, in the listed order, with its shape and dtype.
  const auto& listed = keys["state_dict_keys_in_pytorch_model_bin"];
  ASSERT_EQ(bin.size(), listed.size());
  for (std::size_t i = 0; i < listed.size(); ++i) {
    const std::string name = listed[i]["name"];
    EXPECT_EQ(bin.names()[i], name);
    const torch::Tensor& t = bin.tensor(name);
    EXPECT_EQ(t.sizes(), listed[i]["shape"].get<std::vector<int64_t>>()) << name;
    EXPECT_EQ(t.scalar_type(), dtype_named(listed[i]["dtype"])) << name;
    EXPECT_EQ(bin.source(name), golden(model, "pytorch_model.bin"));
  }
  EXPECT_EQ(bin.files(), std::vector<std::string>{golden(model, "pytorch_model.bin")});

  // model.safetensors: the same names minus the tied aliases, the same values.
  std::set<std::string> aliases;
  for (const auto& a : keys["tied_aliases_omitted_from_model_safetensors"])
    aliases.insert(a.get<std::string>());
  ASSERT_FALSE(aliases.empty());
  EXPECT_EQ(st.size(), listed.size() - aliases.size());
  for (const auto& name : bin.names()) {
    if (aliases.count(name)) {
      EXPECT_FALSE(st.contains(name)) << name;
      continue;
    }
    ASSERT_TRUE(st.contains(name)) << name;
    EXPECT_TRUE(torch::equal(st.tensor(name), bin.tensor(name))) << name;
  }
  // The aliases equal what they are tied to; non-persistent buffers are in neither file.
  for (const auto& [alias, target] : keys["tie_targets"].items()) {
    EXPECT_TRUE(torch::equal(bin.tensor(alias), bin.tensor(target.get<std::string>()))) << alias;
  }
  for (const auto& buffer : keys["non_persistent_buffers_not_saved"]) {
    EXPECT_FALSE(bin.contains(buffer.get<std::string>()));
    EXPECT_FALSE(st.contains(buffer.get<std::string>()));
  }
  EXPECT_EQ(SafetensorsFile(golden(model, "model.safetensors")).metadata(),
            (std::map<std::string, std::string>{{"format", "pt"}}));
}

TEST_P(GoldenCheckpoint, LoadStateDictPrefersSafetensors) {
  const std::string model = GetParam();
  TempDir dir;
  std::filesystem::create_symlink(golden(model, "pytorch_model.bin"), dir.file("pytorch_model.bin"));
  const StateDict from_bin = load_state_dict(dir.path());
  EXPECT_EQ(from_bin.files(), std::vector<std::string>{dir.path() + "/pytorch_model.bin"});
  std::filesystem::create_symlink(golden(model, "model.safetensors"), dir.file("model.safetensors"));
  const StateDict from_st = load_state_dict(dir.path() + "/");
  EXPECT_EQ(from_st.files(), std::vector<std::string>{dir.path() + "/model.safetensors"});
  EXPECT_LT(from_st.size(), from_bin.size());
}

INSTANTIATE_TEST_SUITE_P(Golden, GoldenCheckpoint,
                         ::testing::Values("bert-tiny-random", "distilbert-tiny-random",
                                           "mobilebert-tiny-random"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (auto& c : n) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return n;
                         });

TEST(LoadStateDict, NamesWhatItLookedFor) {
  TempDir dir;
  EXPECT_ERROR(load_state_dict(dir.path()), dir.path(), "no weights found", "model.safetensors",
               "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json");
  EXPECT_ERROR(load_state_dict(dir.file("nope")), dir.file("nope"), "not a directory");
  // A directory under a weight file's name is not a weight file.
  std::filesystem::create_directory(dir.file("model.safetensors"));
  EXPECT_ERROR(load_state_dict(dir.path()), "no weights found");
}

TEST(StateDict, KeepsOrderSourcesAndRejectsDuplicates) {
  StateDict sd;
  sd.add("z", torch::ones({1}), "a.bin");
  sd.add("y", torch::zeros({2}), "b.bin");
  sd.add("x", torch::ones({3}), "a.bin");
  EXPECT_EQ(sd.names(), (std::vector<std::string>{"z", "y", "x"}));
  EXPECT_EQ(sd.files(), (std::vector<std::string>{"a.bin", "b.bin"}));
  EXPECT_EQ(sd.source("y"), "b.bin");
  EXPECT_EQ(sd.tensor("x").size(0), 3);
  EXPECT_ERROR(sd.add("z", torch::ones({1}), "c.bin"), "c.bin", "tensor 'z'", "also in a.bin");
  EXPECT_ERROR(sd.tensor("w"), "'w'", "a.bin", "b.bin");
  EXPECT_ERROR(sd.add("u", torch::Tensor(), "c.bin"), "c.bin", "'u'", "undefined");
  EXPECT_EQ(sd.size(), 3u);
}

// --- pytorch_model.bin -------------------------------------------------------------------------

void save_pickle(const std::string& path, const c10::IValue& value) {
  const std::vector<char> bytes = torch::pickle_save(value);
  write_bytes(path, std::string(bytes.begin(), bytes.end()));
}

TEST(TorchBin, MalformedFilesAreErrorsNamingTheFile) {
  TempDir dir;
  const std::string text = dir.file("text.bin");
  write_bytes(text, "hello, not a checkpoint");
  EXPECT_ERROR(load_torch_bin(text), text, "not a zip archive");
  const std::string empty = dir.file("empty.bin");
  write_bytes(empty, "");
  EXPECT_ERROR(load_torch_bin(empty), empty, "not a zip archive");
  const std::string legacy = dir.file("legacy.bin");
  write_bytes(legacy, std::string("\x80\x02\x8a\x0a", 4) + "lfl");
  EXPECT_ERROR(load_torch_bin(legacy), legacy, "legacy");

  const std::string golden_bin = read_bytes(golden("bert-tiny-random", "pytorch_model.bin"));
  for (std::size_t keep : {std::size_t{100}, golden_bin.size() / 2, golden_bin.size() - 10}) {
    const std::string cut = dir.file("cut" + std::to_string(keep) + ".bin");
    write_bytes(cut, golden_bin.substr(0, keep));
    EXPECT_ERROR(load_torch_bin(cut), cut, "cannot read");
  }
  EXPECT_ERROR(load_torch_bin(dir.file("absent.bin")), "absent.bin", "cannot open");
}

TEST(TorchBin, ContentsMustBeADictOfTensors) {
  TempDir dir;
  const std::string list = dir.file("list.bin");
  save_pickle(list, c10::IValue(std::vector<int64_t>{1, 2, 3}));
  EXPECT_ERROR(load_torch_bin(list), list, "not a dict of tensors");
  c10::Dict<std::string, int64_t> ints;
  ints.insert("a.weight", 3);
  const std::string dict = dir.file("ints.bin");
  save_pickle(dict, ints);
  EXPECT_ERROR(load_torch_bin(dict), dict, "'a.weight'", "not a tensor");
  c10::Dict<int64_t, at::Tensor> int_keys;
  int_keys.insert(1, torch::ones({1}));
  const std::string keys = dir.file("keys.bin");
  save_pickle(keys, int_keys);
  EXPECT_ERROR(load_torch_bin(keys), keys, "not tensor names");
}

TEST(TorchBin, ShardedIndexRoundTrip) {
  TempDir dir;
  torch::manual_seed(3);
  c10::Dict<std::string, at::Tensor> shard1, shard2;
  shard1.insert("enc.weight", torch::randn({4, 4}));   // (4, 4)
  shard1.insert("enc.bias", torch::randn({4}));        // (4)
  shard2.insert("head.weight", torch::randn({2, 4}));  // (2, 4)
  save_pickle(dir.file("pytorch_model-00001-of-00002.bin"), shard1);
  save_pickle(dir.file("pytorch_model-00002-of-00002.bin"), shard2);
  write_bytes(dir.file("pytorch_model.bin.index.json"), R"({
  "metadata": {"total_size": 104},
  "weight_map": {
    "enc.bias": "pytorch_model-00001-of-00002.bin",
    "enc.weight": "pytorch_model-00001-of-00002.bin",
    "head.weight": "pytorch_model-00002-of-00002.bin"
  }
})");
  const StateDict sd = load_state_dict(dir.path());
  EXPECT_EQ(sd.names(), (std::vector<std::string>{"enc.weight", "enc.bias", "head.weight"}));
  EXPECT_TRUE(torch::equal(sd.tensor("enc.weight"), shard1.at("enc.weight")));
  EXPECT_TRUE(torch::equal(sd.tensor("enc.bias"), shard1.at("enc.bias")));
  EXPECT_TRUE(torch::equal(sd.tensor("head.weight"), shard2.at("head.weight")));
  EXPECT_EQ(sd.source("head.weight"), dir.path() + "/pytorch_model-00002-of-00002.bin");
  EXPECT_EQ(sd.files().size(), 2u);

  write_bytes(dir.file("pytorch_model.bin.index.json"),
              R"({"weight_map": {"enc.weight": "pytorch_model-00001-of-00002.bin",)"
              R"( "lost": "pytorch_model-00002-of-00002.bin"}})");
  EXPECT_ERROR(load_state_dict(dir.path()), "pytorch_model.bin.index.json", "tensor 'lost'");
}

}  // namespace
}  // namespace retort

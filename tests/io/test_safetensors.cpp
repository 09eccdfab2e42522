// Tests of the safetensors reader and writer: round trips over every dtype, byte-exact output, zero-copy
// views that outlive their file object, every kind of malformed file (each one Error line naming the
// file and tensor), and sharded checkpoints with model.safetensors.index.json.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "io_test_util.h"
#include "retort/safetensors.h"
#include "retort/state_dict.h"
#include "test_paths.h"

namespace retort {
namespace {

using test::read_bytes;
using test::TempDir;
using test::write_bytes;

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

// A safetensors file made by hand: length, header text as given, then `data`.
std::string make_file(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

std::string floats(std::initializer_list<float> v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), v.begin(), s.size());
  return s;
}

uint64_t header_length(const std::string& bytes) {
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  return n;
}

// One tensor of every dtype the format and libtorch share, plus awkward shapes and names.
std::vector<std::pair<std::string, torch::Tensor>> all_dtypes() {
  torch::manual_seed(7);
  std::vector<std::pair<std::string, torch::Tensor>> t;
  t.emplace_back("f32", torch::randn({3, 5}));                                         // (3, 5)
  t.emplace_back("f64", torch::randn({4}, torch::kDouble));                            // (4)
  t.emplace_back("f16", torch::randn({2, 3}).to(torch::kHalf));                        // (2, 3)
  t.emplace_back("bf16", torch::randn({3, 2}).to(torch::kBFloat16));                   // (3, 2)
  t.emplace_back("i64", torch::arange(-3, 6, torch::kLong));                           // (9)
  t.emplace_back("i32", torch::arange(0, 7, torch::kInt).reshape({7, 1}));             // (7, 1)
  t.emplace_back("i16", torch::tensor({-300, 2, 30000}, torch::kShort));               // (3)
  t.emplace_back("i8", torch::tensor({-128, 0, 127}, torch::kChar));                   // (3)
  t.emplace_back("u8", torch::tensor({0, 200, 255}, torch::kByte));                    // (3)
  t.emplace_back("bool", torch::tensor({true, false, true}));                          // (3)
  t.emplace_back("scalar", torch::tensor(2.5f));                                       // ()
  t.emplace_back("empty", torch::empty({0, 3}));                                       // (0, 3)
  t.emplace_back("transposed", torch::arange(12, torch::kFloat).reshape({3, 4}).t());  // (4, 3), strided
  t.emplace_back("name \"quoted\" \xc3\xa9", torch::ones({2}));                        // (2)
  return t;
}

TEST(Safetensors, RoundTripEveryDtype) {
  TempDir dir;
  const auto tensors = all_dtypes();
  save_safetensors(dir.file("a.safetensors"), tensors, {{"format", "pt"}, {"note", "x\"y"}});
  const SafetensorsFile file(dir.file("a.safetensors"));
  ASSERT_EQ(file.names().size(), tensors.size());
  for (const auto& [name, expected] : tensors) {
    const torch::Tensor got = file.tensor(name);
    EXPECT_EQ(got.scalar_type(), expected.scalar_type()) << name;
    EXPECT_EQ(got.sizes(), expected.sizes()) << name;
    EXPECT_TRUE(torch::equal(got, expected)) << name;
  }
  EXPECT_EQ(file.metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"note", "x\"y"}}));
  EXPECT_EQ(file.info("transposed").shape, (std::vector<int64_t>{4, 3}));
  EXPECT_EQ(file.info("f32").dtype, "F32");
  EXPECT_EQ(file.info("f32").nbytes(), 60u);
  EXPECT_EQ(file.info("scalar").shape, std::vector<int64_t>{});
  EXPECT_EQ(file.info("empty").nbytes(), 0u);
  EXPECT_EQ(file.header_size() % 8, 0u);
  EXPECT_EQ(header_length(read_bytes(dir.file("a.safetensors"))) % 8, 0u);
  EXPECT_FALSE(std::filesystem::exists(dir.file("a.safetensors.tmp")));
}

TEST(Safetensors, WriterOrdersByDtypeAlignmentThenName) {
  TempDir dir;
  save_safetensors(dir.file("a.safetensors"), all_dtypes());
  const SafetensorsFile file(dir.file("a.safetensors"));
  // The safetensors library's Dtype order, descending: I64 F64 F32 I32 BF16 F16 I16 I8 U8 BOOL.
  const std::vector<std::string> expected = {
      "i64", "f64", "empty", "f32", "name \"quoted\" \xc3\xa9", "scalar", "transposed", "i32", "bf16", "f16",
      "i16", "i8",  "u8",    "bool"};
  EXPECT_EQ(file.names(), expected);
  uint64_t offset = 0;
  for (const auto& name : file.names()) {  // back to back, in that order
    EXPECT_EQ(file.info(name).begin, offset) << name;
    offset = file.info(name).end;
  }
}

TEST(Safetensors, RewritingGivesIdenticalBytes) {
  TempDir dir;
  save_safetensors(dir.file("a.safetensors"), all_dtypes());
  const SafetensorsFile file(dir.file("a.safetensors"));
  std::vector<std::pair<std::string, torch::Tensor>> loaded;
  for (auto it = file.names().rbegin(); it != file.names().rend(); ++it)
    loaded.emplace_back(*it, file.tensor(*it));
  save_safetensors(dir.file("b.safetensors"), loaded);
  EXPECT_EQ(read_bytes(dir.file("a.safetensors")), read_bytes(dir.file("b.safetensors")));
}

TEST(Safetensors, ExactBytesOfASmallFile) {
  // The same bytes as the safetensors library's own test_serialization (attn.0, F32 [1,2,3]), plus
  // its empty-dict case: "{}" padded with six spaces.
  TempDir dir;
  save_safetensors(dir.file("a.safetensors"),
                   {{"attn.0", torch::arange(6, torch::kFloat).reshape({1, 2, 3})}}, {});
  const std::string header = R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})";
  ASSERT_EQ(header.size(), 64u);
  EXPECT_EQ(read_bytes(dir.file("a.safetensors")), le64(64) + header + floats({0, 1, 2, 3, 4, 5}));
  save_safetensors(dir.file("empty.safetensors"), {}, {});
  EXPECT_EQ(read_bytes(dir.file("empty.safetensors")), le64(8) + "{}      ");
  EXPECT_TRUE(SafetensorsFile(dir.file("empty.safetensors")).names().empty());
}

TEST(Safetensors, GoldenFileIsReproducedByteForByte) {
  // Re-saving the tensors of transformers' model.safetensors, in another order, gives the same file.
  for (const char* model : {"bert-tiny-random", "distilbert-tiny-random", "mobilebert-tiny-random"}) {
    const std::string path = test::shared_path(std::string("golden/") + model + "/model.safetensors");
    const SafetensorsFile file(path);
    std::vector<std::pair<std::string, torch::Tensor>> tensors;
    for (auto it = file.names().rbegin(); it != file.names().rend(); ++it)
      tensors.emplace_back(*it, file.tensor(*it));
    TempDir dir;
    save_safetensors(dir.file("model.safetensors"), tensors);
    EXPECT_EQ(read_bytes(dir.file("model.safetensors")), read_bytes(path)) << model;
  }
}

TEST(Safetensors, GoldenTensorBytesMatchTheRawFile) {
  const std::string path = test::shared_path("golden/bert-tiny-random/model.safetensors");
  const SafetensorsFile file(path);
  const std::string raw = read_bytes(path);
  const auto& info = file.info("bert.embeddings.LayerNorm.bias");
  EXPECT_EQ(info.file_offset, 8 + header_length(raw) + info.begin);
  const torch::Tensor t = file.tensor("bert.embeddings.LayerNorm.bias");  // (64)
  ASSERT_EQ(t.sizes(), (std::vector<int64_t>{64}));
  EXPECT_EQ(std::memcmp(t.data_ptr(), raw.data() + info.file_offset, 64 * 4), 0);
  EXPECT_GT(t.abs().max().item<float>(), 0.0f);  // perturbed, not the default zeros
}

TEST(Safetensors, ZeroCopyTensorOutlivesTheFileObject) {
  TempDir dir;
  const std::string path = dir.file("a.safetensors");
  const torch::Tensor expected = torch::arange(1000, torch::kFloat).reshape({10, 100});  // (10, 100)
  save_safetensors(path, {{"w", expected}});
  torch::Tensor view;
  {
    const SafetensorsFile file(path);
    view = file.tensor("w");
    // Two calls give the same address only when both are views of the one mapping.
    EXPECT_EQ(view.data_ptr(), file.tensor("w").data_ptr());
  }
  std::filesystem::remove(path);  // the mapping keeps the pages
  EXPECT_TRUE(torch::equal(view, expected));
  // Writing through the view changes this process's copy only, never a file.
  save_safetensors(path, {{"w", expected}});
  SafetensorsFile again(path);
  torch::Tensor w = again.tensor("w");
  w.add_(1);
  EXPECT_TRUE(torch::equal(SafetensorsFile(path).tensor("w"), expected));
}

TEST(Safetensors, MisalignedDataIsCopied) {
  // A 13-byte-longer header than needed puts the data section at an odd address.
  TempDir dir;
  const std::string header = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  ASSERT_NE((8 + header.size() + 1) % 4, 0u);
  write_bytes(dir.file("a.safetensors"), make_file(header + " ", floats({1.5f, -2.0f})));
  const SafetensorsFile file(dir.file("a.safetensors"));
  const torch::Tensor a = file.tensor("w");
  EXPECT_TRUE(torch::equal(a, torch::tensor({1.5f, -2.0f})));
  EXPECT_NE(a.data_ptr(), file.tensor("w").data_ptr());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data_ptr()) % 4, 0u);
}

TEST(Safetensors, ReadsFilesWithoutMetadataAndInAnyOrder) {
  TempDir dir;
  const std::string header = R"({"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},)"
                             R"("a":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}})";
  std::string data(8, '\0');
  const int32_t a = -7;
  const float b = 0.25f;
  std::memcpy(data.data(), &a, 4);
  std::memcpy(data.data() + 4, &b, 4);
  write_bytes(dir.file("a.safetensors"), make_file(header, data));
  const SafetensorsFile file(dir.file("a.safetensors"));
  EXPECT_EQ(file.names(), (std::vector<std::string>{"b", "a"}));
  EXPECT_TRUE(file.metadata().empty());
  EXPECT_EQ(file.tensor("a").item<int32_t>(), -7);
  EXPECT_EQ(file.tensor("b").item<float>(), 0.25f);
}

// --- malformed files ---------------------------------------------------------------------------

class Malformed : public ::testing::Test {
 protected:
  // Writes `bytes` to a fresh file and returns its path.
  std::string put(const std::string& bytes) {
    const std::string path = dir_.file("bad" + std::to_string(count_++) + ".safetensors");
    write_bytes(path, bytes);
    return path;
  }
  // One tensor "w" with the given entry body, and `data` after the header.
  std::string put_entry(const std::string& body, const std::string& data = std::string(8, '\0')) {
    return put(make_file(R"({"w":{)" + body + "}}", data));
  }
  TempDir dir_;
  int count_ = 0;
};

TEST_F(Malformed, TooShortForTheLengthField) {
  const std::string empty = put("");
  EXPECT_ERROR(SafetensorsFile{empty}, empty, "shorter than the 8-byte");
  const std::string five = put("abcde");
  EXPECT_ERROR(SafetensorsFile{five}, five, "shorter than the 8-byte");
}

TEST_F(Malformed, HeaderLengthAbsurdOrBeyondTheFile) {
  const std::string absurd = put(le64(200'000'000) + "{}");
  EXPECT_ERROR(SafetensorsFile{absurd}, absurd, "absurd");
  const std::string huge = put(le64(~uint64_t{0}) + "{}");
  EXPECT_ERROR(SafetensorsFile{huge}, huge, "absurd");
  const std::string beyond = put(le64(100) + "{}");
  EXPECT_ERROR(SafetensorsFile{beyond}, beyond, "header length 100", "larger than");
}

TEST_F(Malformed, HeaderNotJsonOrNotAnObject) {
  const std::string text = put(make_file("{\"w\": nope}", ""));
  EXPECT_ERROR(SafetensorsFile{text}, text, "not valid JSON");
  const std::string binary = put(make_file(std::string("\xff\xfe\x00\x01", 4), ""));
  EXPECT_ERROR(SafetensorsFile{binary}, binary, "not valid JSON");
  const std::string array = put(make_file("[1, 2]  ", ""));
  EXPECT_ERROR(SafetensorsFile{array}, array, "not a JSON object");
  const std::string entry = put(make_file(R"({"w": 3})", ""));
  EXPECT_ERROR(SafetensorsFile{entry}, entry, "tensor 'w'", "not a JSON object");
  const std::string meta = put(make_file(R"({"__metadata__":{"format":1}})", ""));
  EXPECT_ERROR(SafetensorsFile{meta}, meta, "__metadata__", "'format'", "not a string");
  const std::string twice = put(make_file(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                                          R"("w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                                          "ab"));
  EXPECT_ERROR(SafetensorsFile{twice}, twice, "'w' twice");
}

TEST_F(Malformed, EntryMissingAField) {
  const std::string no_dtype = put_entry(R"("shape":[2],"data_offsets":[0,8])");
  EXPECT_ERROR(SafetensorsFile{no_dtype}, no_dtype, "tensor 'w'", "no dtype");
  const std::string no_shape = put_entry(R"("dtype":"F32","data_offsets":[0,8])");
  EXPECT_ERROR(SafetensorsFile{no_shape}, no_shape, "tensor 'w'", "no shape");
  const std::string no_offsets = put_entry(R"("dtype":"F32","shape":[2])");
  EXPECT_ERROR(SafetensorsFile{no_offsets}, no_offsets, "tensor 'w'", "no data_offsets");
}

TEST_F(Malformed, UnknownDtype) {
  const std::string path = put_entry(R"("dtype":"F33","shape":[2],"data_offsets":[0,8])");
  EXPECT_ERROR(SafetensorsFile{path}, path, "tensor 'w'", "unknown dtype 'F33'");
  // A name with a newline is escaped, so the message stays on one line.
  const std::string newline =
      put(make_file(R"({"a\nb":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", std::string(8, '\0')));
  EXPECT_ERROR(SafetensorsFile{newline}, newline, "tensor 'a\\x0ab'", "unknown dtype");
  const std::string number = put_entry(R"("dtype":4,"shape":[2],"data_offsets":[0,8])");
  EXPECT_ERROR(SafetensorsFile{number}, number, "tensor 'w'", "dtype is not a string");
}

TEST_F(Malformed, BadShape) {
  for (const char* shape : {"[-1,2]", "[2.5]", "[2.0]", "[\"2\"]", "2", "[99999999999999999999]"}) {
    const std::string path =
        put_entry(std::string(R"("dtype":"F32","shape":)") + shape + R"(,"data_offsets":[0,8])");
    EXPECT_ERROR(SafetensorsFile{path}, path, "tensor 'w'", "shape");
  }
  const std::string overflow =
      put_entry(R"("dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8])");
  EXPECT_ERROR(SafetensorsFile{overflow}, overflow, "tensor 'w'", "overflows");
}

TEST_F(Malformed, BadDataOffsets) {
  const std::string reversed = put_entry(R"("dtype":"F32","shape":[0],"data_offsets":[8,0])");
  EXPECT_ERROR(SafetensorsFile{reversed}, reversed, "tensor 'w'", "end before begin");
  const std::string length = put_entry(R"("dtype":"F32","shape":[3],"data_offsets":[0,8])");
  EXPECT_ERROR(SafetensorsFile{length}, length, "tensor 'w'", "span 8 bytes", "needs 12");
  const std::string single = put_entry(R"("dtype":"F32","shape":[2],"data_offsets":[0])");
  EXPECT_ERROR(SafetensorsFile{single}, single, "tensor 'w'", "pair");
  const std::string negative = put_entry(R"("dtype":"F32","shape":[2],"data_offsets":[-8,0])");
  EXPECT_ERROR(SafetensorsFile{negative}, negative, "tensor 'w'", "pair");
  const std::string outside = put_entry(R"("dtype":"F32","shape":[2],"data_offsets":[8,16])");
  EXPECT_ERROR(SafetensorsFile{outside}, outside, "tensor 'w'", "truncated", "only 8 bytes");
  const std::string empty_outside = put_entry(R"("dtype":"F32","shape":[0],"data_offsets":[100,100])");
  EXPECT_ERROR(SafetensorsFile{empty_outside}, empty_outside, "tensor 'w'", "outside the data section");
}

TEST_F(Malformed, OverlappingTensors) {
  const std::string path = put(make_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                                         R"("b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})",
                                         std::string(24, '\0')));
  EXPECT_ERROR(SafetensorsFile{path}, path, "'a'", "'b'", "overlap");
  const std::string same = put(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                         R"("b":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})",
                                         std::string(8, '\0')));
  EXPECT_ERROR(SafetensorsFile{same}, same, "overlap");
}

TEST_F(Malformed, TruncatedGoldenFile) {
  const std::string golden = read_bytes(test::shared_path("golden/bert-tiny-random/model.safetensors"));
  const std::string path = put(golden.substr(0, golden.size() - 100));
  // The last tensor in the file is the one cut short.
  EXPECT_ERROR(SafetensorsFile{path}, path, "truncated", "tensor 'cls.predictions.transform.dense.weight'");
  const std::string in_header = put(golden.substr(0, 1000));
  EXPECT_ERROR(SafetensorsFile{in_header}, in_header, "larger than");
}

TEST_F(Malformed, TensorAccessErrors) {
  const std::string path = put(make_file(R"({"flag":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]},)"
                                         R"("u":{"dtype":"U16","shape":[1],"data_offsets":[2,4]}})",
                                         std::string("\x01\x02\x00\x00", 4)));
  const SafetensorsFile file(path);  // both entries are well-formed
  EXPECT_ERROR(file.tensor("flag"), path, "tensor 'flag'", "not 0 or 1");
  EXPECT_ERROR(file.tensor("u"), path, "tensor 'u'", "U16");
  EXPECT_ERROR(file.tensor("missing"), path, "'missing'");
  EXPECT_ERROR(file.info("missing"), path, "'missing'");
  EXPECT_ERROR(SafetensorsFile{dir_.file("absent.safetensors")}, "absent.safetensors", "cannot open");
  EXPECT_ERROR(SafetensorsFile{dir_.path()}, dir_.path(), "not a regular file");
}

TEST(SafetensorsSave, RejectsWhatTheFormatCannotHold) {
  TempDir dir;
  const std::string path = dir.file("a.safetensors");
  EXPECT_ERROR(save_safetensors(path, {{"w", torch::ones({2})}, {"w", torch::ones({2})}}), path, "tensor 'w'",
               "twice");
  EXPECT_ERROR(save_safetensors(path, {{"w", torch::Tensor()}}), path, "tensor 'w'", "undefined");
  EXPECT_ERROR(save_safetensors(path, {{"c", torch::ones({2}, torch::kComplexFloat)}}), path, "tensor 'c'",
               "no safetensors equivalent");
  EXPECT_ERROR(save_safetensors(path, {{"__metadata__", torch::ones({2})}}), path, "reserved");
  EXPECT_ERROR(save_safetensors(path, {{std::string("bad\xff", 4), torch::ones({1})}}), path, "UTF-8");
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  const std::string nowhere = dir.file("no/such/dir/a.safetensors");
  EXPECT_ERROR(save_safetensors(nowhere, {{"w", torch::ones({1})}}), nowhere, "cannot create");
}

TEST(SafetensorsSave, ReplacesAnExistingFileWhole) {
  TempDir dir;
  const std::string path = dir.file("a.safetensors");
  save_safetensors(path, {{"w", torch::zeros({1000})}});
  save_safetensors(path, {{"v", torch::ones({3})}});
  const SafetensorsFile file(path);
  EXPECT_EQ(file.names(), std::vector<std::string>{"v"});
  EXPECT_EQ(std::filesystem::file_size(path), 8 + file.header_size() + 12);
}

// --- sharded checkpoints -----------------------------------------------------------------------

TEST(SafetensorsSharded, TwoShardsAndIndexRoundTrip) {
  TempDir dir;
  std::vector<std::pair<std::string, torch::Tensor>> tensors = {
      {"b.weight", torch::randn({10, 10})},     // 400 bytes: shard 1
      {"a.weight", torch::randn({10, 10})},     // 400 bytes: tips over 600, shard 2
      {"a.bias", torch::randn({10})},           // 40 bytes: shard 2
      {"ids", torch::arange(5, torch::kLong)},  // 40 bytes: shard 2
  };
  const auto files = save_safetensors_sharded(dir.path(), tensors, 600);
  EXPECT_EQ(files,
            (std::vector<std::string>{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                                      "model.safetensors.index.json"}));
  const auto index = nlohmann::json::parse(read_bytes(dir.file("model.safetensors.index.json")));
  EXPECT_EQ(index["metadata"]["total_size"], 880);
  EXPECT_EQ(index["weight_map"]["b.weight"], "model-00001-of-00002.safetensors");
  EXPECT_EQ(index["weight_map"]["ids"], "model-00002-of-00002.safetensors");
  EXPECT_EQ(index["weight_map"].size(), 4u);
  EXPECT_EQ(SafetensorsFile(dir.file(files[0])).names(), std::vector<std::string>{"b.weight"});

  const StateDict sd = load_state_dict(dir.path());
  ASSERT_EQ(sd.size(), 4u);
  for (const auto& [name, t] : tensors) EXPECT_TRUE(torch::equal(sd.tensor(name), t)) << name;
  EXPECT_EQ(sd.source("b.weight"), dir.path() + "/model-00001-of-00002.safetensors");
  EXPECT_EQ(sd.source("a.bias"), dir.path() + "/model-00002-of-00002.safetensors");
  EXPECT_EQ(sd.files().size(), 2u);
  // Shard order, then file order within a shard (ids is I64, so first in its shard).
  EXPECT_EQ(sd.names(), (std::vector<std::string>{"b.weight", "ids", "a.bias", "a.weight"}));
}

TEST(SafetensorsSharded, OneShardIsAPlainFile) {
  TempDir dir;
  const auto files = save_safetensors_sharded(dir.path(), {{"w", torch::ones({4})}}, 1 << 20);
  EXPECT_EQ(files, std::vector<std::string>{"model.safetensors"});
  EXPECT_FALSE(std::filesystem::exists(dir.file("model.safetensors.index.json")));
  EXPECT_TRUE(torch::equal(load_state_dict(dir.path()).tensor("w"), torch::ones({4})));
}

TEST(SafetensorsSharded, InconsistentIndexIsAnError) {
  TempDir dir;
  save_safetensors(dir.file("s1.safetensors"), {{"a", torch::ones({2})}});
  save_safetensors(dir.file("s2.safetensors"), {{"b", torch::ones({2})}, {"a", torch::zeros({2})}});
  const std::string index = dir.file("model.safetensors.index.json");

  write_bytes(index, R"({"weight_map": {"a": "s1.safetensors", "c": "s1.safetensors"}})");
  EXPECT_ERROR(load_safetensors_index(index), index, "tensor 'c'", "s1.safetensors");
  write_bytes(index, R"({"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}})");
  EXPECT_ERROR(load_safetensors_index(index), "tensor 'a'", "s1.safetensors", "s2.safetensors");
  write_bytes(index, R"({"weight_map": {"a": "missing.safetensors"}})");
  EXPECT_ERROR(load_safetensors_index(index), "missing.safetensors", "cannot open");
  save_safetensors(dir.file("s3.safetensors"), {{"c", torch::ones({2})}});
  write_bytes(index, R"({"weight_map": {"a": "s3.safetensors", "c": "s1.safetensors"}})");
  EXPECT_ERROR(load_safetensors_index(index), index, "tensor 'a'", "listed in shard s3.safetensors",
               "found in " + dir.file("s1.safetensors"));
  write_bytes(index, R"({"metadata": {}})");
  EXPECT_ERROR(load_safetensors_index(index), index, "weight_map");
  write_bytes(index, R"({"weight_map": {"a": 1}})");
  EXPECT_ERROR(load_safetensors_index(index), index, "tensor 'a'", "not a file name");
  write_bytes(index, "{");
  EXPECT_ERROR(load_safetensors_index(index), index, "not valid JSON");
}

}  // namespace
}  // namespace retort

// Tests of the .npy reader and writer: golden files written by NumPy (int64 ids equal to inputs.json,
// float32 outputs agreeing with their float64 twins), NumPy's exact bytes reproduced by save_npy,
// round trips over every supported dtype, and malformed files.
// Dimensions: B batch (4 rows), T sequence (16), H hidden (64).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "io_test_util.h"
#include "retort/npy.h"
#include "test_paths.h"

namespace retort {
namespace {

using test::read_bytes;
using test::TempDir;
using test::write_bytes;

std::string golden(const std::string& file) { return test::shared_path("golden/bert-tiny-random/" + file); }

TEST(Npy, GoldenIdsEqualInputsJson) {
  const auto inputs = nlohmann::json::parse(read_bytes(golden("inputs.json")));
  const torch::Tensor ids = load_npy(golden("input_ids.npy"));        // (B, T)
  const torch::Tensor mask = load_npy(golden("attention_mask.npy"));  // (B, T)
  ASSERT_EQ(ids.sizes(), (std::vector<int64_t>{4, 16}));
  EXPECT_EQ(ids.scalar_type(), torch::kLong);
  ASSERT_EQ(inputs["rows"].size(), 4u);
  for (int64_t b = 0; b < 4; ++b) {
    const auto& row = inputs["rows"][b];
    for (int64_t t = 0; t < 16; ++t) {
      EXPECT_EQ(ids[b][t].item<int64_t>(), row["input_ids"][t].get<int64_t>()) << b << "," << t;
      EXPECT_EQ(mask[b][t].item<int64_t>(), row["attention_mask"][t].get<int64_t>()) << b << "," << t;
    }
  }
  EXPECT_EQ(ids[0][0].item<int64_t>(), 101);  // [CLS]
}

TEST(Npy, GoldenFloatsAgreeWithTheirFloat64Twin) {
  const torch::Tensor f32 = load_npy(golden("last_hidden_state.npy"));       // (B, T, H)
  const torch::Tensor f64 = load_npy(golden("last_hidden_state_fp64.npy"));  // (B, T, H)
  ASSERT_EQ(f32.sizes(), (std::vector<int64_t>{4, 16, 64}));
  EXPECT_EQ(f32.scalar_type(), torch::kFloat);
  EXPECT_EQ(f64.scalar_type(), torch::kDouble);
  // The first values, decoded by hand from the files' bytes.
  EXPECT_EQ(f32[0][0][0].item<float>(), -0.6671947836875916f);
  EXPECT_EQ(f32[0][0][3].item<float>(), 1.176491379737854f);
  EXPECT_EQ(f64[0][0][1].item<double>(), 0.052035466919911254);
  EXPECT_LT((f32.to(torch::kDouble) - f64).abs().max().item<double>(), 1e-5);
}

TEST(Npy, SaveReproducesNumpysBytes) {
  TempDir dir;
  for (const char* name : {"input_ids.npy", "last_hidden_state.npy", "last_hidden_state_fp64.npy",
                           "attentions.npy", "mlm_top2_values.npy"}) {
    save_npy(dir.file(name), load_npy(golden(name)));
    EXPECT_EQ(read_bytes(dir.file(name)), read_bytes(golden(name))) << name;
  }
}

TEST(Npy, RoundTripEveryDtypeAndShape) {
  TempDir dir;
  torch::manual_seed(5);
  const std::vector<torch::Tensor> tensors = {
      torch::randn({3, 4}),                               // (3, 4) f4
      torch::randn({2, 2, 2}, torch::kDouble),            // (2, 2, 2) f8
      torch::randn({5}).to(torch::kHalf),                 // (5) f2
      torch::arange(-4, 4, torch::kLong),                 // (8) i8
      torch::arange(6, torch::kInt).reshape({2, 3}).t(),  // (3, 2) i4, strided
      torch::tensor({-2, 30000}, torch::kShort),          // (2) i2
      torch::tensor({-128, 127}, torch::kChar),           // (2) i1
      torch::tensor({0, 255}, torch::kByte),              // (2) u1
      torch::tensor({true, false}),                       // (2) b1
      torch::tensor(3.5),                                 // () scalar
      torch::empty({0, 7}),                               // (0, 7) empty
      torch::zeros({1000000}),                            // (1000000) wide first axis
  };
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const std::string path = dir.file("t" + std::to_string(i) + ".npy");
    save_npy(path, tensors[i]);
    const torch::Tensor back = load_npy(path);
    EXPECT_EQ(back.scalar_type(), tensors[i].scalar_type()) << i;
    EXPECT_EQ(back.sizes(), tensors[i].sizes()) << i;
    EXPECT_TRUE(torch::equal(back, tensors[i])) << i;
    const std::string bytes = read_bytes(path);
    const std::size_t header =
        10 + static_cast<unsigned char>(bytes[8]) + 256 * static_cast<unsigned char>(bytes[9]);
    EXPECT_EQ(header % 64, 0u) << i;
    EXPECT_EQ(bytes[header - 1], '\n') << i;
  }
  EXPECT_ERROR(save_npy(dir.file("bf.npy"), torch::ones({2}, torch::kBFloat16)), "bf.npy", "no NumPy");
}

std::string npy_file(const std::string& dict, const std::string& data) {
  std::string header = dict;
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out = std::string("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  return out + header + data;
}

TEST(Npy, MalformedFilesAreErrorsNamingTheFile) {
  TempDir dir;
  auto put = [&](const std::string& name, const std::string& bytes) {
    write_bytes(dir.file(name), bytes);
    return dir.file(name);
  };
  const std::string eight(8, '\0');
  const std::string ok =
      put("ok.npy", npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", eight));
  EXPECT_EQ(load_npy(ok).sizes(), (std::vector<int64_t>{2}));

  const std::string fortran =
      put("fortran.npy", npy_file("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", eight));
  EXPECT_ERROR(load_npy(fortran), fortran, "Fortran");
  const std::string big =
      put("big.npy", npy_file("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", eight));
  EXPECT_ERROR(load_npy(big), big, "big-endian");
  const std::string complex =
      put("complex.npy", npy_file("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", eight));
  EXPECT_ERROR(load_npy(complex), complex, "unsupported dtype '<c8'");
  const std::string cut =
      put("cut.npy", npy_file("{'descr': '<f8', 'fortran_order': False, 'shape': (4, 16), }", eight));
  EXPECT_ERROR(load_npy(cut), cut, "truncated", "512 bytes");
  const std::string extra =
      put("extra.npy", npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", eight));
  EXPECT_ERROR(load_npy(extra), extra, "unexpected bytes");
  const std::string no_shape =
      put("noshape.npy", npy_file("{'descr': '<f4', 'fortran_order': False, }", eight));
  EXPECT_ERROR(load_npy(no_shape), no_shape, "'shape'");
  const std::string garbled = put("garbled.npy", npy_file("{'descr': '<f4', 'shape': [2]}", eight));
  EXPECT_ERROR(load_npy(garbled), garbled, "malformed .npy header");
  const std::string magic = put("magic.npy", "PK\x03\x04 not numpy at all");
  EXPECT_ERROR(load_npy(magic), magic, "not a .npy file");
  const std::string golden_bytes = read_bytes(golden("input_ids.npy"));
  const std::string header_cut = put("headercut.npy", golden_bytes.substr(0, 60));
  EXPECT_ERROR(load_npy(header_cut), header_cut, "truncated .npy header");
  const std::string data_cut = put("datacut.npy", golden_bytes.substr(0, golden_bytes.size() - 1));
  EXPECT_ERROR(load_npy(data_cut), data_cut, "truncated");
  const std::string bad_bool =
      put("bool.npy", npy_file("{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }", "\x01\x07"));
  EXPECT_ERROR(load_npy(bad_bool), bad_bool, "bool element 1");
}

}  // namespace
}  // namespace retort

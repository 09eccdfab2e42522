// The example programs under examples/ link the library as an application would and print what the
// CLI prints for the same model: labels and probabilities, and embedding similarities.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli_test_util.h"
#include "tiny_model.h"

namespace retort {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(Examples, ClassifyPrintsWhatPredictPrints) {
  const fs::path dir = test::temp_path("example_classify");
  fs::remove_all(dir);
  const Tokenizer tok = test::bert_vocab();
  ModelConfig c = test::tiny_config(tok, 2, 64);
  c.id2label = {"0", "1"};
  test::save_tiny_model(dir, tok, c, 9, HeadKind::SequenceClassification);
  const std::string texts = q("a gripping, funny film") + " " + q("a dull, lifeless remake");
  for (const std::string precision : {"fp32", "int8"}) {
    const Result ex = run_program(RETORT_EXAMPLE_CLASSIFY, q(dir.string()) + " " + precision + " " + texts);
    ASSERT_EQ(ex.code, 0) << ex.err;
    const Result cli = run_cli("predict --task sst2 --precision " + precision + " --model " + q(dir.string()) +
                               " --text " + q("a gripping, funny film") + " --text " + q("a dull, lifeless remake"));
    ASSERT_EQ(cli.code, 0) << cli.err;
    const auto got = lines_of(ex.out), want = lines_of(cli.out);
    ASSERT_EQ(got.size(), 2u) << ex.out;
    ASSERT_EQ(want.size(), 2u) << cli.out;
    for (size_t i = 0; i < 2; ++i) {
      const auto j = nlohmann::json::parse(want[i]);
      std::istringstream fields(got[i]);
      std::string label, prob, text;
      std::getline(fields, label, '\t');
      std::getline(fields, prob, '\t');
      std::getline(fields, text);
      EXPECT_EQ(label, j["label"].get<std::string>()) << precision;
      EXPECT_NEAR(std::stod(prob), j["probability"].get<double>(), 1e-4) << precision;
      EXPECT_EQ(text, j["text"].get<std::string>());
    }
  }
  const Result bad = run_program(RETORT_EXAMPLE_CLASSIFY, q(dir.string()) + " int4 text");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("error: unknown precision 'int4'"), std::string::npos) << bad.err;
  EXPECT_EQ(run_program(RETORT_EXAMPLE_CLASSIFY, "").code, 2);
}

TEST(Examples, EmbedPrintsCosineSimilarities) {
  const fs::path dir = test::temp_path("example_embed");
  fs::remove_all(dir);
  const Tokenizer tok = test::bert_vocab();
  test::save_tiny_model(dir, tok, test::tiny_config(tok, 1, 64, ModelType::DistilBert), 4);
  const Result r = run_program(RETORT_EXAMPLE_EMBED, q(dir.string()) + " " + q("the same words") + " " +
                                                         q("the same words") + " " + q("something else entirely"));
  ASSERT_EQ(r.code, 0) << r.err;
  const auto out = lines_of(r.out);
  ASSERT_EQ(out.size(), 3u) << r.out;
  EXPECT_EQ(out[0], "dimension 32");
  EXPECT_EQ(out[1], "1.0000\tthe same words");
  const double other = std::stod(out[2]);
  EXPECT_LT(other, 0.99999);
  EXPECT_GT(other, -1.0);
}

}  // namespace
}  // namespace retort

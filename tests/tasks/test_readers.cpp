// Task readers on the real GLUE files in ../shared/data/glue (row counts and first rows as the files
// have them), GLUE layouts we do not ship (MNLI, QQP, QNLI) on small files written here, IMDb's
// folder layout, and bad input that must name the file and line.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "retort/error.h"
#include "retort/fs.h"
#include "retort/tasks.h"
#include "test_paths.h"

namespace retort {
namespace {

namespace fs = std::filesystem;

const std::string kGlue = test::shared_path("data/glue");

using test::error_of;

fs::path write_temp(const std::string& name, const std::string& content) {
  const fs::path p = test::temp_path(name);
  fs::create_directories(p.parent_path());
  write_file_atomic(p.string(), content);
  return p;
}

TEST(TaskSpecs, NamesAndAliases) {
  EXPECT_EQ(task_spec("SST-2").name, "sst2");
  EXPECT_EQ(task_spec("sst2").display, "SST-2");
  EXPECT_EQ(task_spec("sts_b").name, "stsb");
  EXPECT_EQ(task_spec("MNLI").dev_sets.size(), 2u);
  EXPECT_EQ(task_spec("stsb").kind, TaskKind::Regression);
  EXPECT_EQ(task_spec("stsb").num_labels(), 1);
  EXPECT_EQ(task_spec("mnli").num_labels(), 3);
  EXPECT_EQ(glue_tasks().size(), 9u);
  EXPECT_EQ(glue_tasks().front().display, "CoLA");  // the paper's column order
  const std::string e = error_of([] { task_spec("sst3"); });
  EXPECT_NE(e.find("unknown task 'sst3'"), std::string::npos) << e;
  EXPECT_NE(e.find("wnli"), std::string::npos) << e;
}

struct Expected {
  const char* task;
  size_t train, dev;
  const char* first_a;
  const char* first_b;
  int64_t first_label;
};

TEST(GlueReader, RealFilesHaveTheDocumentedRowsAndFirstRows) {
  const Expected cases[] = {
      {"sst2", 67349, 872, "one long string of cliches .", "", 0},
      {"cola", 8551, 1043, "The sailors rode the breeze clear of the rocks.", "", 1},
      {"rte", 2490, 277, "Dana Reeve, the widow of the actor Christopher Reeve, has died of lung cancer at age 44, "
                         "according to the Christopher Reeve Foundation.", "Christopher Reeve had an accident.", 1},
      {"wnli", 635, 71, "The drain is clogged with hair. It has to be cleaned.", "The hair has to be cleaned.", 0},
      {"mrpc", 4076, 1725, "PCCW's chief operating officer, Mike Butcher, and Alex Arena, the chief financial officer, "
                           "will report directly to Mr So.", nullptr, 1},
  };
  for (const auto& c : cases) {
    const TaskSpec& spec = task_spec(c.task);
    const auto train = read_task_split(spec, kGlue, "train");
    const auto dev = read_task_split(spec, kGlue, "dev");
    EXPECT_EQ(train.size(), c.train) << c.task;
    ASSERT_EQ(dev.size(), c.dev) << c.task;
    EXPECT_EQ(dev[0].text_a, c.first_a) << c.task;
    if (c.first_b) {
      EXPECT_EQ(dev[0].text_b, c.first_b) << c.task;
    }
    EXPECT_EQ(dev[0].label, c.first_label) << c.task;
    for (const auto& e : train) ASSERT_TRUE(e.label == 0 || e.label == 1) << c.task << " " << e.guid;
  }
  const auto stsb = read_task_split(task_spec("stsb"), kGlue + "/STS-B", "dev");  // the task folder itself
  ASSERT_EQ(stsb.size(), 1500u);
  EXPECT_EQ(stsb[0].text_b, "A man wearing a hard hat is dancing.");
  EXPECT_DOUBLE_EQ(stsb[0].score, 5.0);
  EXPECT_DOUBLE_EQ(stsb[1].score, 4.75);
  EXPECT_EQ(stsb[0].label, -1);
  EXPECT_EQ(read_task_split(task_spec("stsb"), kGlue, "train").size(), 5749u);
}

TEST(GlueReader, BomAndCrlfAreTolerated) {
  const auto plain = write_temp("sst_plain.tsv", "sentence\tlabel\nit 's great\t1\n\nawful\t0\n");
  const auto windows = write_temp("sst_crlf.tsv", "\xEF\xBB\xBFsentence\tlabel\r\nit 's great\t1\r\n\r\nawful\t0\r\n");
  const auto a = read_glue_tsv(task_spec("sst2"), plain.string());
  const auto b = read_glue_tsv(task_spec("sst2"), windows.string());
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(a[i].text_a, b[i].text_a);
    EXPECT_EQ(a[i].label, b[i].label);
  }
  EXPECT_EQ(b[1].text_a, "awful");
  EXPECT_EQ(b[1].guid, windows.filename().string() + ":4") << "guid names the file line, blank lines counted";
}

TEST(GlueReader, LayoutsWeDoNotShip) {
  const auto mnli = write_temp("dev_matched.tsv",
                               "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
                               "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n"
                               "0\t1\t1e\tgov\t( x )\t( y )\t(ROOT x)\t(ROOT y)\tThe cat sat.\tA cat sat.\tentailment\t"
                               "entailment\n"
                               "1\t2\t2n\tgov\t( x )\t( y )\t(ROOT x)\t(ROOT y)\tIt rained.\tIt was dry.\tcontradiction\t"
                               "contradiction\n");
  const auto m = read_glue_tsv(task_spec("mnli"), mnli.string());
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].text_a, "The cat sat.");
  EXPECT_EQ(m[0].text_b, "A cat sat.");
  EXPECT_EQ(m[0].label, 1);
  EXPECT_EQ(m[1].label, 0);
  const auto qqp = write_temp("qqp.tsv", "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n7\t1\t2\tWhy?\tHow?\t0\n");
  const auto qq = read_glue_tsv(task_spec("qqp"), qqp.string());
  EXPECT_EQ(qq.at(0).text_b, "How?");
  const auto qnli = write_temp("qnli.tsv", "index\tquestion\tsentence\tlabel\n0\tWho?\tHim.\tnot_entailment\n");
  EXPECT_EQ(read_glue_tsv(task_spec("qnli"), qnli.string()).at(0).label, 1);
  // A GLUE test file: no label column.
  const auto test_file = write_temp("sst_test.tsv", "index\tsentence\n0\tfine\n");
  const auto t = read_glue_tsv(task_spec("sst2"), test_file.string(), /*labelled=*/false);
  EXPECT_EQ(t.at(0).text_a, "fine");
  EXPECT_EQ(t.at(0).label, -1);
}

TEST(GlueReader, BadInputNamesFileAndLine) {
  const auto bad_label = write_temp("bad_label.tsv", "sentence\tlabel\ngood\t1\nbad\t2\n");
  std::string e = error_of([&] { read_glue_tsv(task_spec("sst2"), bad_label.string()); });
  EXPECT_NE(e.find("bad_label.tsv:3: label '2' is not one of 0, 1"), std::string::npos) << e;

  const auto no_col = write_temp("no_col.tsv", "text\tlabel\ngood\t1\n");
  e = error_of([&] { read_glue_tsv(task_spec("sst2"), no_col.string()); });
  EXPECT_NE(e.find("no_col.tsv:1: missing column 'sentence'"), std::string::npos) << e;

  const auto short_row = write_temp("short.tsv", "index\tsentence1\tsentence2\tlabel\n0\tA\tB\tentailment\n1\tA\n");
  e = error_of([&] { read_glue_tsv(task_spec("rte"), short_row.string()); });
  EXPECT_NE(e.find("short.tsv:3: expected at least 4 tab-separated fields"), std::string::npos) << e;

  const auto empty = write_temp("empty.tsv", "");
  e = error_of([&] { read_glue_tsv(task_spec("cola"), empty.string()); });
  EXPECT_NE(e.find("empty.tsv: empty file"), std::string::npos) << e;

  const auto header_only = write_temp("header_only.tsv", "sentence\tlabel\n");
  e = error_of([&] { read_glue_tsv(task_spec("sst2"), header_only.string()); });
  EXPECT_NE(e.find("no SST-2 rows after the header"), std::string::npos) << e;

  const auto bad_score = write_temp("bad_score.tsv",
                                    "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
                                    "0\tg\tf\ty\t0\tn\tn\tA\tB\tfive\n");
  e = error_of([&] { read_glue_tsv(task_spec("stsb"), bad_score.string()); });
  EXPECT_NE(e.find("bad_score.tsv:2: score 'five' is not a number"), std::string::npos) << e;
  // A stray tab inside a row does not shift the label: GLUE reads it from the last field.
  const auto stray = write_temp("stray.tsv",
                                "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
                                "0\tg\tf\ty\t0\tn\tn\tA\tB\textra\t4.5\n");
  EXPECT_DOUBLE_EQ(read_glue_tsv(task_spec("stsb"), stray.string()).at(0).score, 4.5);

  e = error_of([] { read_task_split(task_spec("sst2"), kGlue, "validation"); });
  EXPECT_NE(e.find("no split 'validation' (known: train, dev)"), std::string::npos) << e;
  e = error_of([] { read_task_split(task_spec("qqp"), kGlue, "dev"); });
  EXPECT_NE(e.find("found neither"), std::string::npos) << e;
}

TEST(ImdbReader, FolderLayoutLabelsAndLineBreaks) {
  const fs::path root = test::temp_path("aclImdb");
  fs::remove_all(root);
  fs::create_directories(root / "train" / "pos");
  fs::create_directories(root / "train" / "neg");
  write_file_atomic((root / "train/pos/0_9.txt").string(), "Loved it.<br /><br />Would watch again.");
  write_file_atomic((root / "train/pos/1_10.txt").string(), "Great.");
  write_file_atomic((root / "train/neg/0_2.txt").string(), "Dull.");
  const auto ex = read_imdb(root.string(), "train");
  ASSERT_EQ(ex.size(), 3u);
  EXPECT_EQ(ex[0].label, 0);
  EXPECT_EQ(ex[0].text_a, "Dull.");
  EXPECT_EQ(ex[1].label, 1);
  EXPECT_EQ(ex[1].text_a, "Loved it.  Would watch again.");
  EXPECT_EQ(read_task_split(task_spec("imdb"), root.string(), "train").size(), 3u);
  std::string e = error_of([&] { read_imdb(root.string(), "test"); });
  EXPECT_NE(e.find("not a directory"), std::string::npos) << e;
  write_file_atomic((root / "train/neg/1_1.txt").string(), "bad \xC3 byte");
  e = error_of([&] { read_imdb(root.string(), "train"); });
  EXPECT_NE(e.find("1_1.txt"), std::string::npos) << e;
}

}  // namespace
}  // namespace retort

// prepare_corpus and CorpusReader: packing and splitting against hand-computed sequences, drop
// counts, dtypes, round trips through the memory-mapped shards, thread-count independence on a slice
// of the Brown corpus, shard rollover, and the errors a truncated or corrupt corpus must raise.
#include <gtest/gtest.h>

#include <filesystem>
#include <cstring>
#include <fstream>
#include <numeric>

#include <nlohmann/json.hpp>

#include "corpus_test_util.h"
#include "retort/corpus.h"

namespace retort::test {
namespace {

const std::string kL1 = "the cat sat on the mat";  // 6 pieces
const std::string kL2 = "a dog ran in the park";   // 6
const std::string kL3 = "birds fly south";         // 3
const std::string kL4 =                            // 30: twenty numbers and ten letters
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty a b c d e f g h i j";
const std::string kL5 = "hello world";  // 2
const std::string kShort = "ok";        // 1
const std::string kUnknown = "ᚠᚡ ᚠᚡ ᚠᚡ ᚠᚡ ᚠᚡ ᚠᚡ ᚠᚡ ᚠᚡ ᚠᚡ ᚠᚡ ᚠᚡ ᚠᚡ";  // 12 x [UNK]

// Document A (five lines), B (a short line), C (a line of unknown characters), D (a line without a
// final newline, with CRLF before it). Blank and whitespace-only lines separate documents.
std::string sample_text() {
  return kL1 + "\n" + kL2 + "\n" + kL3 + "\n" + kL4 + "\n" + kL5 + "\n\n" + kShort + "\n \t\n\n" + kUnknown +
         "\r\n\n" + kL2 + "\r\n" + kL5;
}

std::vector<int32_t> ids_of(const std::string& s) { return bert_tokenizer().encode_ids(s, false); }

std::vector<int32_t> wrap(std::vector<std::vector<int32_t>> parts) {
  const Tokenizer& tok = bert_tokenizer();
  std::vector<int32_t> out{tok.cls_id()};
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  out.push_back(tok.sep_id());
  return out;
}

std::vector<std::vector<int32_t>> all_sequences(const CorpusReader& r) {
  std::vector<std::vector<int32_t>> out;
  for (size_t i = 0; i < r.size(); ++i) out.push_back(r.sequence(i));
  return out;
}

nlohmann::json corpus_json(const TempDir& d, const std::string& sub) {
  return nlohmann::json::parse(read_file(d.file(sub + "/corpus.json")));
}

TEST(Corpus, PieceCountsBehindTheHandComputedExpectations) {
  EXPECT_EQ(ids_of(kL1).size(), 6u);
  EXPECT_EQ(ids_of(kL2).size(), 6u);
  EXPECT_EQ(ids_of(kL3).size(), 3u);
  EXPECT_EQ(ids_of(kL4).size(), 30u);
  EXPECT_EQ(ids_of(kL5).size(), 2u);
  EXPECT_EQ(ids_of(kShort).size(), 1u);
  const auto unk = ids_of(kUnknown);
  ASSERT_EQ(unk.size(), 12u);
  for (int32_t id : unk) EXPECT_EQ(id, bert_tokenizer().unk_id());
}

TEST(Corpus, PacksGreedilySplitsLongLinesAndDrops) {
  TempDir d;
  write_file(d.file("in.txt"), sample_text());
  CorpusOptions o;
  o.max_seq_len = 16;  // 14 pieces between [CLS] and [SEP]
  o.min_tokens = 3;
  const CorpusSummary s = prepare_corpus({d.file("in.txt")}, bert_tokenizer(), d.file("c"), o);

  const auto l4 = ids_of(kL4);
  const std::vector<int32_t> c1(l4.begin(), l4.begin() + 14), c2(l4.begin() + 14, l4.begin() + 28),
      c3(l4.begin() + 28, l4.end());
  const std::vector<std::vector<int32_t>> expected = {
      wrap({ids_of(kL1), ids_of(kL2)}),  // 6 + 6 = 12 fit; + 3 would make 15 > 14
      wrap({ids_of(kL3)}),               // flushed before the long line
      wrap({c1}), wrap({c2}), wrap({c3}),  // 30 pieces: 14 + 14 + 2, each its own sequence
      wrap({ids_of(kL5)}),               // end of document A
      // B: [CLS] ok [SEP] has 3 <= min_tokens tokens: dropped. C: 12/14 [UNK] >= 0.5: dropped.
      wrap({ids_of(kL2), ids_of(kL5)}),  // D: CRLF stripped, last line without newline kept
  };
  const CorpusReader r(d.file("c"));
  ASSERT_EQ(r.size(), expected.size());
  EXPECT_EQ(all_sequences(r), expected);
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(r.length(i), expected[i].size()) << i;

  EXPECT_EQ(s.n_sequences, 7u);
  EXPECT_EQ(s.n_tokens, 14u + 5 + 16 + 16 + 4 + 4 + 10);
  EXPECT_EQ(s.dropped_short, 1u);
  EXPECT_EQ(s.dropped_unk, 1u);
  EXPECT_EQ(s.n_documents, 4u);
  EXPECT_EQ(s.n_lines, 9u);
  EXPECT_EQ(s.n_bytes, sample_text().size());
  EXPECT_EQ(r.n_tokens(), s.n_tokens);

  const auto j = corpus_json(d, "c");
  EXPECT_EQ(j["dtype"], "uint16");
  EXPECT_EQ(j["vocab_size"], 30522);
  EXPECT_EQ(j["max_seq_len"], 16);
  EXPECT_EQ(j["dropped"]["too_short"], 1);
  EXPECT_EQ(j["dropped"]["too_many_unk"], 1);
  EXPECT_EQ(j["vocab_fingerprint"], vocab_fingerprint(bert_tokenizer()));
  EXPECT_EQ(std::filesystem::file_size(d.file("c/tokens-00000.bin")), 2 * s.n_tokens);
  EXPECT_EQ(std::filesystem::file_size(d.file("c/offsets-00000.bin")), 8 * (s.n_sequences + 1));

  // Counts over the kept sequences only: [CLS] once per sequence, "the" three times, no [UNK].
  const auto& counts = r.token_counts();
  ASSERT_EQ(counts.size(), 30522u);
  EXPECT_EQ(counts[static_cast<size_t>(bert_tokenizer().cls_id())], 7u);
  EXPECT_EQ(counts[1996], 4u);  // "the": twice in L1, once in each L2
  EXPECT_EQ(counts[static_cast<size_t>(bert_tokenizer().unk_id())], 0u);
  EXPECT_EQ(std::accumulate(counts.begin(), counts.end(), uint64_t{0}), s.n_tokens);
  for (const auto& e : std::filesystem::directory_iterator(d.file("c"))) {
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << e.path();
  }
}

TEST(Corpus, DefaultOptionsFollowTheHuggingFaceFilters) {
  TempDir d;
  write_file(d.file("in.txt"), sample_text());
  const CorpusSummary s = prepare_corpus({d.file("in.txt")}, bert_tokenizer(), d.file("c"));
  // Document A packs into one sequence of 47 pieces; B (3 tokens) and D (10 tokens) are <= 11 and
  // dropped as short; C is 14 tokens with 12 [UNK] and dropped as unknown.
  const CorpusReader r(d.file("c"));
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r.sequence(0), wrap({ids_of(kL1), ids_of(kL2), ids_of(kL3), ids_of(kL4), ids_of(kL5)}));
  EXPECT_EQ(s.dropped_short, 2u);
  EXPECT_EQ(s.dropped_unk, 1u);
  EXPECT_EQ(r.info().max_seq_len, 512u);
  EXPECT_EQ(r.info().min_tokens, 11u);
}

TEST(Corpus, Uint32IdsAboveTheUint16Range) {
  std::vector<std::string> vocab = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  for (int i = 0; vocab.size() < 70000; ++i) vocab.push_back("w" + std::to_string(i));
  const Tokenizer tok(vocab, TokenizerConfig{}, "big-vocab");
  TempDir d;
  write_file(d.file("in.txt"), "w69990 w3 w69994 w12 w65600 w7 w8 w9 w10 w11 w13 w14\n");
  const CorpusSummary s = prepare_corpus({d.file("in.txt")}, tok, d.file("c"));
  ASSERT_EQ(s.n_sequences, 1u);
  EXPECT_EQ(corpus_json(d, "c")["dtype"], "uint32");
  EXPECT_EQ(std::filesystem::file_size(d.file("c/tokens-00000.bin")), 4 * 14u);
  const CorpusReader r(d.file("c"));
  EXPECT_EQ(r.sequence(0), tok.encode_ids("w69990 w3 w69994 w12 w65600 w7 w8 w9 w10 w11 w13 w14", true));
  EXPECT_EQ(r.sequence(0)[1], 69995);
  r.check_tokenizer(tok);
  EXPECT_ERROR_CONTAINS(r.check_tokenizer(bert_tokenizer()), "30522", "70000");
}

TEST(Corpus, BrownSliceRoundTripsAndIsIndependentOfThreadsAndBlocks) {
  TempDir d;
  const size_t bytes = write_brown_slice(d.file("brown.txt"), 3000);
  CorpusOptions o;
  o.max_seq_len = 128;
  o.min_tokens = 0;
  o.threads = 1;
  size_t last_done = 0, calls = 0;
  bool monotonic = true;
  o.progress = [&](size_t done, size_t total) {
    monotonic &= done >= last_done && total == bytes;
    last_done = done;
    ++calls;
  };
  const CorpusSummary s1 = prepare_corpus({d.file("brown.txt")}, bert_tokenizer(), d.file("t1"), o);
  EXPECT_TRUE(monotonic);
  EXPECT_EQ(last_done, bytes);
  EXPECT_GE(calls, 2u);

  o.threads = 3;
  o.block_bytes = 10000;  // many blocks, lines cut across block reads
  o.progress = nullptr;
  const CorpusSummary s3 = prepare_corpus({d.file("brown.txt")}, bert_tokenizer(), d.file("t3"), o);
  for (const char* f : {"tokens-00000.bin", "offsets-00000.bin", "token_counts.bin", "corpus.json"}) {
    EXPECT_EQ(read_file(d.file(std::string("t1/") + f)), read_file(d.file(std::string("t3/") + f))) << f;
  }
  EXPECT_EQ(s1.n_tokens, s3.n_tokens);

  // Nothing dropped (min_tokens 0, Brown has no [UNK]-heavy line): the pieces between [CLS] and
  // [SEP], concatenated, are the tokenizer's ids of every line in order.
  std::ifstream in(d.file("brown.txt"));
  std::vector<int32_t> want;
  std::vector<size_t> line_pieces;
  for (std::string line; std::getline(in, line);) {
    const auto ids = ids_of(line);
    want.insert(want.end(), ids.begin(), ids.end());
    line_pieces.push_back(ids.size());
  }
  // Reference greedy packing of the line sizes (one document, 126 pieces a sequence).
  std::vector<uint32_t> want_lengths;
  size_t open = 0;
  for (size_t n : line_pieces) {
    if (n > 126) {
      if (open) want_lengths.push_back(static_cast<uint32_t>(open + 2));
      open = 0;
      for (size_t at = 0; at < n; at += 126) {
        want_lengths.push_back(static_cast<uint32_t>(std::min<size_t>(126, n - at) + 2));
      }
      continue;
    }
    if (open + n > 126) {
      want_lengths.push_back(static_cast<uint32_t>(open + 2));
      open = 0;
    }
    open += n;
  }
  if (open) want_lengths.push_back(static_cast<uint32_t>(open + 2));
  const CorpusReader r(d.file("t1"));
  std::vector<int32_t> got;
  for (size_t i = 0; i < r.size(); ++i) {
    const auto seq = r.sequence(i);
    ASSERT_GE(seq.size(), 3u);
    ASSERT_LE(seq.size(), 128u);
    EXPECT_EQ(seq.front(), bert_tokenizer().cls_id());
    EXPECT_EQ(seq.back(), bert_tokenizer().sep_id());
    got.insert(got.end(), seq.begin() + 1, seq.end() - 1);
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(s1.dropped_short + s1.dropped_unk, 0u);
  EXPECT_EQ(s1.n_lines, line_pieces.size());
  EXPECT_EQ(s1.n_tokens, want.size() + 2 * r.size());
  EXPECT_EQ(r.lengths(), want_lengths);
  EXPECT_GT(static_cast<double>(s1.n_tokens) / static_cast<double>(r.size()), 100.0) << "packing fills sequences";
  // Counts recomputed from the shards.
  std::vector<uint64_t> recount(bert_tokenizer().vocab_size(), 0);
  for (size_t i = 0; i < r.size(); ++i) {
    for (int32_t id : r.sequence(i)) ++recount[static_cast<size_t>(id)];
  }
  EXPECT_EQ(recount, r.token_counts());
}

TEST(Corpus, ShardsRollOverAndStaleShardsAreRemoved) {
  TempDir d;
  write_brown_slice(d.file("brown.txt"), 200);
  CorpusOptions o;
  o.max_seq_len = 64;
  o.shard_tokens = 1000;
  const CorpusSummary many =
      prepare_corpus({d.file("brown.txt"), d.file("brown.txt")}, bert_tokenizer(), d.file("c"), o);
  ASSERT_GT(many.n_shards, 3u);
  {
    const CorpusReader r(d.file("c"));
    ASSERT_EQ(r.size(), many.n_sequences);
    uint64_t seqs = 0;
    const auto& shards = r.info().shards;
    for (size_t k = 0; k < shards.size(); ++k) {
      EXPECT_LE(shards[k].n_tokens, 1000u);
      // A shard closes only when the next sequence (<= 64 tokens) does not fit.
      if (k + 1 < shards.size()) {
        EXPECT_GT(shards[k].n_tokens, 1000u - 64);
      }
      seqs += shards[k].n_sequences;
    }
    EXPECT_EQ(seqs, many.n_sequences);
    // The two copies of the file are two documents with the same sequences.
    ASSERT_EQ(r.size() % 2, 0u);
    for (size_t i = 0; i < r.size() / 2; ++i) ASSERT_EQ(r.sequence(i), r.sequence(i + r.size() / 2)) << i;
    const auto lengths = r.lengths();
    ASSERT_EQ(lengths.size(), r.size());
    for (size_t i = 0; i < r.size(); ++i) ASSERT_EQ(lengths[i], r.length(i));
  }
  o.shard_tokens = 1u << 20;
  const CorpusSummary one = prepare_corpus({d.file("brown.txt")}, bert_tokenizer(), d.file("c"), o);
  EXPECT_EQ(one.n_shards, 1u);
  EXPECT_FALSE(std::filesystem::exists(d.file("c/tokens-00001.bin")));
  EXPECT_FALSE(std::filesystem::exists(d.file("c/offsets-00001.bin")));
  EXPECT_EQ(CorpusReader(d.file("c")).size(), many.n_sequences / 2);
}

TEST(Corpus, PaddedBatchFromTheReader) {
  TempDir d;
  write_file(d.file("in.txt"), sample_text());
  CorpusOptions o;
  o.max_seq_len = 16;
  o.min_tokens = 3;
  prepare_corpus({d.file("in.txt")}, bert_tokenizer(), d.file("c"), o);
  const CorpusReader r(d.file("c"));
  const PaddedBatch b = make_padded_batch(r, {1, 2, 4}, bert_tokenizer().pad_id());
  ASSERT_EQ(b.rows, 3u);
  ASSERT_EQ(b.cols, 16u);
  EXPECT_EQ(b.lengths, (std::vector<int32_t>{5, 16, 4}));
  EXPECT_EQ(std::vector<int32_t>(b.ids.begin(), b.ids.begin() + 5), r.sequence(1));
  for (size_t c = 5; c < 16; ++c) EXPECT_EQ(b.ids[c], 0);
  EXPECT_EQ(std::vector<int32_t>(b.ids.begin() + 16, b.ids.begin() + 32), r.sequence(2));
  EXPECT_EQ(std::vector<int32_t>(b.ids.begin() + 32, b.ids.begin() + 36), r.sequence(4));
  EXPECT_ERROR_CONTAINS(make_padded_batch(r, {7}, 0), "sequence 7", "out of range");
}

// A prepared corpus in a fresh directory for each corruption test.
struct SmallCorpus {
  TempDir d;
  std::string dir;
  SmallCorpus() : dir(d.file("c")) {
    write_brown_slice(d.file("in.txt"), 100);
    CorpusOptions o;
    o.max_seq_len = 64;
    prepare_corpus({d.file("in.txt")}, bert_tokenizer(), dir, o);
  }
  std::string file(const std::string& name) const { return dir + "/" + name; }
};

TEST(CorpusErrors, MissingOrMalformedHeader) {
  TempDir d;
  EXPECT_ERROR_CONTAINS(CorpusReader(d.file("nothing")), "corpus.json", "missing");
  SmallCorpus c;
  write_file(c.file("corpus.json"), "{\"format\": \"retort-corpus\"");
  EXPECT_ERROR_CONTAINS(CorpusReader(c.dir), "corpus.json", "invalid JSON");
  write_file(c.file("corpus.json"), "{\"format\": \"something-else\"}");
  EXPECT_ERROR_CONTAINS(CorpusReader(c.dir), "corpus.json", "not a Retort corpus");
}

TEST(CorpusErrors, TruncatedTokenFile) {
  SmallCorpus c;
  const std::string path = c.file("tokens-00000.bin");
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 1);
  EXPECT_ERROR_CONTAINS(CorpusReader(c.dir), "tokens-00000.bin", "truncated");
}

TEST(CorpusErrors, TruncatedOffsetsAndCounts) {
  SmallCorpus c;
  const std::string off = c.file("offsets-00000.bin");
  std::filesystem::resize_file(off, std::filesystem::file_size(off) - 8);
  EXPECT_ERROR_CONTAINS(CorpusReader(c.dir), "offsets-00000.bin", "truncated");
  SmallCorpus c2;
  std::filesystem::resize_file(c2.file("token_counts.bin"), 100);
  EXPECT_ERROR_CONTAINS(CorpusReader(c2.dir), "token_counts.bin", "30522");
  SmallCorpus c3;
  std::filesystem::remove(c3.file("tokens-00000.bin"));
  EXPECT_ERROR_CONTAINS(CorpusReader(c3.dir), "tokens-00000.bin", "cannot open");
}

TEST(CorpusErrors, OffsetBeyondTheTokenFile) {
  SmallCorpus c;
  std::string off = read_file(c.file("offsets-00000.bin"));
  ASSERT_GE(off.size(), 24u);
  const uint64_t huge = 1u << 30;
  std::memcpy(&off[8], &huge, 8);  // the second sequence starts far past the end (little-endian host)
  write_file(c.file("offsets-00000.bin"), off);
  EXPECT_ERROR_CONTAINS(CorpusReader(c.dir), "offsets-00000.bin", "sequence 0", "tokens-00000.bin");
}

TEST(CorpusErrors, DtypeMismatch) {
  SmallCorpus c;
  auto j = nlohmann::json::parse(read_file(c.file("corpus.json")));
  j["dtype"] = "uint32";
  write_file(c.file("corpus.json"), j.dump());
  EXPECT_ERROR_CONTAINS(CorpusReader(c.dir), "corpus.json", "dtype uint32", "30522");
  j["dtype"] = "int8";
  write_file(c.file("corpus.json"), j.dump());
  EXPECT_ERROR_CONTAINS(CorpusReader(c.dir), "unknown dtype \"int8\"");
  j["dtype"] = "uint16";
  j["n_tokens"] = j["n_tokens"].get<uint64_t>() + 1;
  write_file(c.file("corpus.json"), j.dump());
  EXPECT_ERROR_CONTAINS(CorpusReader(c.dir), "corpus.json", "the header says");
}

TEST(CorpusErrors, CorruptTokenIdIsCaughtOnRead) {
  SmallCorpus c;
  std::string tokens = read_file(c.file("tokens-00000.bin"));
  tokens[2] = '\xff';  // the second token of sequence 0 becomes 0xFFFF = 65535 >= V
  tokens[3] = '\xff';
  write_file(c.file("tokens-00000.bin"), tokens);
  const CorpusReader r(c.dir);
  EXPECT_ERROR_CONTAINS(r.sequence(0), "tokens-00000.bin", "65535", "outside the vocabulary");
  EXPECT_NO_THROW(r.sequence(1));
}

TEST(CorpusErrors, BadInputs) {
  TempDir d;
  EXPECT_ERROR_CONTAINS(prepare_corpus({d.file("absent.txt")}, bert_tokenizer(), d.file("c")), "absent.txt",
                        "not found");
  EXPECT_ERROR_CONTAINS(prepare_corpus({}, bert_tokenizer(), d.file("c")), "no input files");
  write_file(d.file("bad.txt"), "fine line\nsecond \xff line\n");
  EXPECT_ERROR_CONTAINS(prepare_corpus({d.file("bad.txt")}, bert_tokenizer(), d.file("c")), "bad.txt:2");
  EXPECT_FALSE(std::filesystem::exists(d.file("c/corpus.json")));
  write_file(d.file("ok.txt"), "fine\n");
  CorpusOptions o;
  o.max_seq_len = 2;
  EXPECT_ERROR_CONTAINS(prepare_corpus({d.file("ok.txt")}, bert_tokenizer(), d.file("c"), o), "max_seq_len 2");
  o = {};
  o.max_unk_fraction = 0;
  EXPECT_ERROR_CONTAINS(prepare_corpus({d.file("ok.txt")}, bert_tokenizer(), d.file("c"), o), "max_unk_fraction");
}

}  // namespace
}  // namespace retort::test

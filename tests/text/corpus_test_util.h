// Helpers for the corpus, sampler and masking tests: the bert-base-uncased tokenizer loaded once,
// a slice of ../shared/data/corpus/brown.txt written to a temporary file, and whole-file comparison.
#pragma once

#include <fstream>
#include <string>

#include "retort/tokenizer.h"
#include "text_test_util.h"

namespace retort::test {

inline const Tokenizer& bert_tokenizer() {
  static const Tokenizer tok = Tokenizer::load(bert_vocab_dir());
  return tok;
}

// The first n_lines lines of brown.txt, written to path; returns the number of bytes written.
inline size_t write_brown_slice(const std::string& path, size_t n_lines) {
  std::ifstream in(shared_path("data/corpus/brown.txt"), std::ios::binary);
  if (!in) throw Error("brown.txt not found under " + shared_dir());
  std::string data, line;
  for (size_t i = 0; i < n_lines && std::getline(in, line); ++i) data += line + "\n";
  write_file(path, data);
  return data.size();
}

}  // namespace retort::test

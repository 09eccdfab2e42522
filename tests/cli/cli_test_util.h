// Running the built retort binary from tests: stdout, stderr and the exit code of one command line.
#pragma once

#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <string>

#include <gtest/gtest.h>

#include "retort/fs.h"
#include "test_paths.h"

namespace retort {

struct Result {
  int code = -1;
  std::string out, err;
};

// Runs a program through the shell; stdin from `input` when given.
inline Result run_program(const std::string& program, const std::string& args, const std::string& input = "") {
  const std::string err_file = test::temp_path("cli_stderr.txt").string();
  const std::string in_file = test::temp_path("cli_stdin.txt").string();
  write_file_atomic(in_file, input);
  const std::string cmd = program + " " + args + " < " + in_file + " 2> " + err_file;
  Result r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.err = read_file(err_file);
  return r;
}

// Runs the built retort binary.
inline Result run_cli(const std::string& args, const std::string& input = "") {
  return run_program(RETORT_CLI_PATH, args, input);
}

inline std::string q(const std::string& s) { return "'" + s + "'"; }
inline const std::string kVocab = test::shared_path("vocab/bert-base-uncased");

inline void expect_one_line_error(const Result& r, const std::string& needle) {
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(r.out.empty()) << r.out;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.rfind("retort: error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

}  // namespace retort

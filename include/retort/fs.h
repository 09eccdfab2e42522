// Small file helpers shared by every layer: whole-file reads with clear errors, and atomic writes
// (temporary name + rename) so that a crash never leaves a half-written file behind.
#pragma once

#include <string>

namespace retort {

// Reads a whole file; throws Error naming the path when it cannot be opened or read.
std::string read_file(const std::string& path);

// Writes `data` to `path + ".tmp.<pid>"`, flushes, then renames it over `path`.
void write_file_atomic(const std::string& path, const std::string& data);

bool path_exists(const std::string& path);
bool is_directory(const std::string& path);
// Joins two path pieces with exactly one '/'.
std::string join_path(const std::string& a, const std::string& b);

}  // namespace retort

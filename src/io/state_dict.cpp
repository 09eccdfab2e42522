// StateDict (ordered name -> tensor, with the source file of each) and load_state_dict, which picks
// the weight files of a Hugging Face model directory.
#include "retort/state_dict.h"

#include <sys/stat.h>

#include "io/file_io.h"
#include "retort/error.h"
#include "retort/safetensors.h"
#include "retort/torch_bin.h"

namespace retort {

void StateDict::add(const std::string& name, at::Tensor tensor, const std::string& source) {
  check(tensor.defined(), source, ": tensor '", io::printable(name), "' is undefined");
  const auto it = index_.find(name);
  if (it != index_.end()) {
    fail(source, ": tensor '", io::printable(name), "' is also in ", files_[file_of_[it->second]]);
  }
  std::size_t file = 0;
  while (file < files_.size() && files_[file] != source) ++file;  // few files: linear is fine
  if (file == files_.size()) files_.push_back(source);
  index_.emplace(name, names_.size());
  names_.push_back(name);
  tensors_.push_back(std::move(tensor));
  file_of_.push_back(file);
}

std::size_t StateDict::position(const std::string& name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) {
    std::string where;
    for (std::size_t i = 0; i < files_.size(); ++i) where += (i ? ", " : "") + files_[i];
    fail(where.empty() ? std::string("state dict") : where, ": no tensor named '", io::printable(name), "'");
  }
  return it->second;
}

const at::Tensor& StateDict::tensor(const std::string& name) const { return tensors_[position(name)]; }

const std::string& StateDict::source(const std::string& name) const {
  return files_[file_of_[position(name)]];
}

namespace {
bool is_regular_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}
}  // namespace

StateDict load_state_dict(const std::string& model_dir) {
  struct stat st {};
  check(::stat(model_dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode), model_dir, ": not a directory");
  const std::string dir = model_dir.empty() || model_dir.back() == '/' ? model_dir : model_dir + "/";
  const std::string names[] = {kWeightFileNames[0], kWeightFileNames[1], kWeightFileNames[2],
                               kWeightFileNames[3]};
  if (is_regular_file(dir + names[0])) return load_safetensors(dir + names[0]);
  if (is_regular_file(dir + names[1])) return load_safetensors_index(dir + names[1]);
  if (is_regular_file(dir + names[2])) return load_torch_bin(dir + names[2]);
  if (is_regular_file(dir + names[3])) return load_torch_bin_index(dir + names[3]);
  fail(model_dir, ": no weights found (looked for ", names[0], ", ", names[1], ", ", names[2], ", ", names[3],
       ")");
}

}  // namespace retort

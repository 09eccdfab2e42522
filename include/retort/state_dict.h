// StateDict: the tensors of a checkpoint as an ordered (name -> tensor) list that remembers which file
// each tensor came from, so that later errors ("wrong shape for X") can name the file. load_state_dict
// finds the weights of a Hugging Face model directory in any of the four layouts transformers writes.
// Names are the checkpoint's own; mapping them onto modules is the model layer's job.
// (at::Tensor is the same type as torch::Tensor; this header avoids <torch/torch.h> to stay light.)
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <string>
#include <unordered_map>
#include <vector>

namespace retort {

struct StateDict {
 public:
  // Appends a tensor; throws Error naming both files when `name` is already present.
  void add(const std::string& name, at::Tensor tensor, const std::string& source);

  std::size_t size() const { return names_.size(); }
  bool empty() const { return names_.empty(); }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }

  // Names in the order they were added (the order of the file, shard after shard).
  const std::vector<std::string>& names() const { return names_; }
  // Throws Error naming the tensor and the files searched when `name` is absent.
  const at::Tensor& tensor(const std::string& name) const;
  // The file `name` was read from.
  const std::string& source(const std::string& name) const;
  // Every file that contributed a tensor, in order of first use.
  const std::vector<std::string>& files() const { return files_; }

 private:
  std::size_t position(const std::string& name) const;

  std::vector<std::string> names_;
  std::vector<at::Tensor> tensors_;
  std::vector<std::size_t> file_of_;  // index into files_, one per tensor
  std::vector<std::string> files_;
  std::unordered_map<std::string, std::size_t> index_;
};

// The file names load_state_dict looks for, in order of preference.
inline constexpr const char* kWeightFileNames[] = {"model.safetensors", "model.safetensors.index.json",
                                                   "pytorch_model.bin", "pytorch_model.bin.index.json"};

// Loads the weights of a model directory from the first of model.safetensors,
// model.safetensors.index.json, pytorch_model.bin, pytorch_model.bin.index.json that exists.
// Throws Error listing what it looked for when none does.
StateDict load_state_dict(const std::string& model_dir);

}  // namespace retort

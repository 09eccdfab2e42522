// `retort download`: a model directory from the Hugging Face hub into a cache laid out as
// huggingface_hub lays it out, so both tools share downloads:
//   CACHE/models--ORG--NAME/blobs/<etag>                 file contents, named by checksum
//   CACHE/models--ORG--NAME/snapshots/<commit>/<file>    relative symlinks into blobs/
//   CACHE/models--ORG--NAME/refs/<revision>              the commit the revision resolved to
// The file list and checksums come from the hub's metadata (GET /api/models/REPO/revision/REV?blobs=true):
// LFS files are checked against their sha256, other files against their git blob id (sha1 of
// "blob <size>\0" + contents). Interrupted downloads resume from BLOB.incomplete with an HTTP range.
// Only the files a Retort model needs are fetched: config.json, the tokenizer files, and the
// safetensors weights (or pytorch_model.bin when there are none), sharded or not.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace retort {

struct DownloadOptions {
  std::string endpoint;   // "": $HF_ENDPOINT, else https://huggingface.co
  std::string revision = "main";
  std::string cache_dir;  // "": default_hub_cache()
  std::string token;      // "": $HF_TOKEN (sent to the endpoint only, as a bearer token)
  int retries = 3;        // per file, each resuming where the last attempt stopped
  bool progress = false;  // one line per file on stderr
};

struct DownloadResult {
  std::string snapshot_dir;  // the model directory to use (load_model, --model)
  std::string commit;
  std::vector<std::string> files;  // fetched or already cached, in the snapshot
  int64_t bytes_downloaded = 0;
  int64_t bytes_cached = 0;  // found complete and verified in the cache
};

// False when Retort was built without libcurl (download then fails with that reason).
bool download_available();

// $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub.
std::string default_hub_cache();

DownloadResult download_model(const std::string& repo_id, const DownloadOptions& opt = {});

// Hex digests of a file's contents (the two checksums the hub publishes).
std::string sha256_file(const std::string& path);
std::string git_blob_sha1_file(const std::string& path);

}  // namespace retort

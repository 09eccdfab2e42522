// The Hugging Face hub client behind `retort download` (see hub.h): libcurl for HTTP (redirects to the
// CDN, ranges to resume), OpenSSL for the checksums.
#include "retort/hub.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>

#include <nlohmann/json.hpp>

#include "retort/error.h"
#include "retort/fs.h"
#include "retort/version.h"

#ifdef RETORT_HAVE_CURL
#include <curl/curl.h>
#include <unistd.h>
#include <openssl/evp.h>
#endif

namespace retort {

namespace fs = std::filesystem;

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

}  // namespace

std::string default_hub_cache() {
  if (!env("HF_HUB_CACHE").empty()) return env("HF_HUB_CACHE");
  if (!env("HF_HOME").empty()) return (fs::path(env("HF_HOME")) / "hub").string();
  if (!env("XDG_CACHE_HOME").empty()) return (fs::path(env("XDG_CACHE_HOME")) / "huggingface" / "hub").string();
  return (fs::path(env("HOME").empty() ? "." : env("HOME")) / ".cache" / "huggingface" / "hub").string();
}

#ifndef RETORT_HAVE_CURL

namespace {
[[noreturn]] void no_curl() {
  fail("download: this Retort was built without libcurl (install libcurl4-openssl-dev and rebuild: scripts/setup.sh)");
}
}  // namespace

bool download_available() { return false; }
DownloadResult download_model(const std::string&, const DownloadOptions&) { no_curl(); }
std::string sha256_file(const std::string&) { no_curl(); }
std::string git_blob_sha1_file(const std::string&) { no_curl(); }

#else

bool download_available() { return true; }

namespace {

std::string hex_digest(const EVP_MD* md, const std::string& prefix, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  check(static_cast<bool>(in), path, ": cannot open for reading");
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, md, nullptr);
  EVP_DigestUpdate(ctx, prefix.data(), prefix.size());
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (in.gcount() > 0) EVP_DigestUpdate(ctx, buf.data(), static_cast<size_t>(in.gcount()));
  }
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx, out, &n);
  EVP_MD_CTX_free(ctx);
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (unsigned int i = 0; i < n; ++i) {
    s += hex[out[i] >> 4];
    s += hex[out[i] & 15];
  }
  return s;
}

struct Curl {
  CURL* h = nullptr;
  curl_slist* headers = nullptr;
  Curl() {
    static const bool init = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
    check(init, "download: libcurl failed to initialise");
    h = curl_easy_init();
    check(h != nullptr, "download: libcurl failed to initialise");
  }
  ~Curl() {
    if (headers) curl_slist_free_all(headers);
    curl_easy_cleanup(h);
  }
  Curl(const Curl&) = delete;
  Curl& operator=(const Curl&) = delete;
};

// Where a response body goes: a string (metadata) or a file (appended), never an error page.
struct Sink {
  CURL* h = nullptr;
  std::string* text = nullptr;
  std::FILE* file = nullptr;
  int64_t offset = 0;        // bytes already in the file (a range was asked for)
  int64_t written = 0;
  bool restarted = false;    // the server ignored the range: the file was truncated
  std::string error_body;
};

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* s = static_cast<Sink*>(user);
  const size_t bytes = size * n;
  long status = 0;
  curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &status);
  if (status >= 400) {
    if (s->error_body.size() < 2000) s->error_body.append(data, std::min<size_t>(bytes, 2000));
    return bytes;
  }
  if (s->text) {
    s->text->append(data, bytes);
    return bytes;
  }
  if (s->offset > 0 && status == 200 && s->written == 0 && !s->restarted) {  // range ignored: start over
    std::fflush(s->file);
    if (::ftruncate(fileno(s->file), 0) != 0) return 0;  // 0 written: curl reports a write error
    std::fseek(s->file, 0, SEEK_SET);
    s->restarted = true;
  }
  const size_t done = std::fwrite(data, 1, bytes, s->file);
  s->written += static_cast<int64_t>(done);
  return done;
}

struct Response {
  long status = 0;
  CURLcode code = CURLE_OK;
  std::string curl_error;
  std::string error_body;
  bool restarted = false;
};

Response get(const std::string& url, const std::string& token, bool send_token, Sink& sink) {
  Curl c;
  sink.h = c.h;
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(c.h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c.h, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c.h, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(c.h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c.h, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(c.h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c.h, CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt(c.h, CURLOPT_LOW_SPEED_LIMIT, 1L);  // abort a transfer stalled for 60 s
  curl_easy_setopt(c.h, CURLOPT_LOW_SPEED_TIME, 60L);
  const std::string agent = "retort/" + version_string();
  curl_easy_setopt(c.h, CURLOPT_USERAGENT, agent.c_str());
  if (send_token && !token.empty()) {
    c.headers = curl_slist_append(c.headers, ("Authorization: Bearer " + token).c_str());
    curl_easy_setopt(c.h, CURLOPT_HTTPHEADER, c.headers);  // libcurl keeps it off redirects to other hosts
  }
  if (sink.offset > 0) curl_easy_setopt(c.h, CURLOPT_RESUME_FROM_LARGE, static_cast<curl_off_t>(sink.offset));
  Response r;
  r.code = curl_easy_perform(c.h);
  curl_easy_getinfo(c.h, CURLINFO_RESPONSE_CODE, &r.status);
  r.curl_error = errbuf[0] ? std::string(errbuf) : std::string(curl_easy_strerror(r.code));
  r.error_body = sink.error_body;
  r.restarted = sink.restarted;
  return r;
}

std::string http_reason(long status, const std::string& repo, const std::string& revision) {
  if (status == 401 || status == 403) return "access denied: the model may be gated or private (set HF_TOKEN)";
  if (status == 404) return "no model '" + repo + "' at revision '" + revision + "'";
  return "HTTP status " + std::to_string(status);
}

// The files a Retort model directory needs, from the repository's file list.
std::vector<std::string> wanted_files(const std::set<std::string>& names, const std::string& repo) {
  check(names.count("config.json") != 0, repo, ": the repository has no config.json");
  std::vector<std::string> out = {"config.json"};
  for (const char* f : {"tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"}) {
    if (names.count(f)) out.push_back(f);
  }
  auto shards = [&](const std::string& prefix, const std::string& ext) {
    std::vector<std::string> s;
    for (const auto& n : names) {
      if (n.rfind(prefix + "-", 0) == 0 && n.size() > ext.size() && n.compare(n.size() - ext.size(), ext.size(), ext) == 0 &&
          n.find("-of-") != std::string::npos && n.find('/') == std::string::npos) {
        s.push_back(n);
      }
    }
    return s;
  };
  for (const auto& [single, prefix, ext] :
       {std::tuple<std::string, std::string, std::string>{"model.safetensors", "model", ".safetensors"},
        {"pytorch_model.bin", "pytorch_model", ".bin"}}) {
    if (names.count(single)) {
      out.push_back(single);
      return out;
    }
    if (names.count(single + ".index.json")) {
      out.push_back(single + ".index.json");
      for (const auto& s : shards(prefix, ext)) out.push_back(s);
      return out;
    }
  }
  fail(repo, ": the repository has neither model.safetensors nor pytorch_model.bin weights");
}

}  // namespace

std::string sha256_file(const std::string& path) { return hex_digest(EVP_sha256(), "", path); }

std::string git_blob_sha1_file(const std::string& path) {
  return hex_digest(EVP_sha1(), "blob " + std::to_string(fs::file_size(path)) + std::string(1, '\0'), path);
}

DownloadResult download_model(const std::string& repo, const DownloadOptions& opt) {
  check(!repo.empty() && repo.find("..") == std::string::npos && repo.front() != '/' && repo.back() != '/',
        "download: invalid model name '", repo, "' (expected NAME or ORG/NAME)");
  std::string endpoint = !opt.endpoint.empty() ? opt.endpoint : !env("HF_ENDPOINT").empty() ? env("HF_ENDPOINT")
                                                                                              : "https://huggingface.co";
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  const std::string token = !opt.token.empty() ? opt.token : env("HF_TOKEN");
  const std::string revision = opt.revision.empty() ? "main" : opt.revision;

  // 1. Metadata: the commit and every file with its checksum.
  std::string body;
  Sink meta;
  meta.text = &body;
  const std::string meta_url = endpoint + "/api/models/" + repo + "/revision/" + revision + "?blobs=true";
  const Response mr = get(meta_url, token, true, meta);
  check(mr.code == CURLE_OK, "download: ", meta_url, ": ", mr.curl_error);
  check(mr.status == 200, "download: ", repo, ": ", http_reason(mr.status, repo, revision), " (", meta_url, ")");
  nlohmann::json info;
  try {
    info = nlohmann::json::parse(body);
  } catch (const nlohmann::json::exception& e) {
    fail("download: ", meta_url, ": not JSON (", e.what(), ")");
  }
  check(info.contains("sha") && info["sha"].is_string() && info.contains("siblings") && info["siblings"].is_array(),
        "download: ", meta_url, ": no commit sha or file list in the response");
  const std::string commit = info["sha"];
  struct Remote {
    int64_t size = -1;
    std::string etag;   // blob name: sha256 for LFS files, git blob sha1 otherwise
    bool lfs = false;
  };
  std::map<std::string, Remote> remote;
  std::set<std::string> names;
  for (const auto& s : info["siblings"]) {
    const std::string name = s.value("rfilename", "");
    if (name.empty()) continue;
    names.insert(name);
    Remote r;
    if (s.contains("lfs") && s["lfs"].is_object()) {
      r.lfs = true;
      r.etag = s["lfs"].value("sha256", "");
      r.size = s["lfs"].value("size", int64_t{-1});
    } else {
      r.etag = s.value("blobId", "");
      r.size = s.value("size", int64_t{-1});
    }
    remote[name] = r;
  }

  // 2. Each file into blobs/, verified, then linked from the snapshot.
  const fs::path repo_dir = fs::path(opt.cache_dir.empty() ? default_hub_cache() : opt.cache_dir) /
                            ("models--" + [&] {
                              std::string s = repo;
                              for (size_t p = s.find('/'); p != std::string::npos; p = s.find('/', p + 2)) s.replace(p, 1, "--");
                              return s;
                            }());
  const fs::path blobs = repo_dir / "blobs", snapshot = repo_dir / "snapshots" / commit;
  fs::create_directories(blobs);
  fs::create_directories(snapshot);
  DownloadResult result;
  result.commit = commit;
  result.snapshot_dir = snapshot.string();
  for (const auto& name : wanted_files(names, repo)) {
    const Remote& r = remote.at(name);
    check(!r.etag.empty(), "download: ", repo, "/", name, ": the hub gave no checksum for it");
    const fs::path blob = blobs / r.etag, partial = blobs / (r.etag + ".incomplete");
    auto verified = [&](const fs::path& p) {
      if (r.size >= 0 && static_cast<int64_t>(fs::file_size(p)) != r.size) return false;
      return (r.lfs ? sha256_file(p.string()) : git_blob_sha1_file(p.string())) == r.etag;
    };
    if (fs::exists(blob) && verified(blob)) {
      result.bytes_cached += static_cast<int64_t>(fs::file_size(blob));
    } else {
      const std::string url = endpoint + "/" + repo + "/resolve/" + commit + "/" + name;
      std::string last_error;
      bool done = false;
      for (int attempt = 0; attempt <= opt.retries && !done; ++attempt) {
        const int64_t have = fs::exists(partial) ? static_cast<int64_t>(fs::file_size(partial)) : 0;
        if (r.size >= 0 && have >= r.size) {
          done = true;  // complete already (a previous attempt ended after the last byte)
          break;
        }
        std::FILE* f = std::fopen(partial.c_str(), "ab");
        check(f != nullptr, "download: ", partial.string(), ": cannot open for writing");
        Sink sink;
        sink.file = f;
        sink.offset = have;
        const Response resp = get(url, token, true, sink);
        std::fclose(f);
        result.bytes_downloaded += sink.written;
        if (opt.progress) {
          std::cerr << "download: " << name << ": " << sink.written << " bytes" << (have > 0 ? " (resumed at " + std::to_string(have) + ")" : "")
                    << "\n";
        }
        if (resp.status >= 400) {
          fail("download: ", repo, "/", name, ": ", http_reason(resp.status, repo, revision), " (", url, ")");
        }
        if (resp.code == CURLE_OK) {
          done = true;
        } else {
          last_error = resp.curl_error;
        }
      }
      check(done, "download: ", repo, "/", name, ": failed after ", opt.retries + 1, " attempts: ", last_error);
      if (!verified(partial)) {
        const auto size = fs::file_size(partial);
        fs::remove(partial);
        fail("download: ", repo, "/", name, ": checksum mismatch (", size, " bytes received, expected ",
             r.lfs ? "sha256 " : "git blob ", r.etag, "); the partial file was deleted, run again");
      }
      fs::rename(partial, blob);
    }
    const fs::path link = snapshot / name;
    fs::create_directories(link.parent_path());
    std::string target = "../../blobs/" + r.etag;
    for (auto p = fs::path(name).parent_path(); !p.empty(); p = p.parent_path()) target = "../" + target;
    std::error_code ec;
    fs::remove(link, ec);
    fs::create_symlink(target, link);
    result.files.push_back(name);
  }
  if (revision != commit) {
    fs::create_directories(repo_dir / "refs");
    write_file_atomic((repo_dir / "refs" / revision).string(), commit);
  }
  return result;
}

#endif

}  // namespace retort

// retort download against a local stand-in for the hub (tests/deploy/hub_server.py; nothing touches
// the internet): the snapshot loads as a model, the cache has huggingface_hub's layout, a second run
// downloads nothing, a dropped connection resumes with a range, and corrupt files, missing models and
// missing tokens are clear errors.
#include <gtest/gtest.h>

#include <csignal>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "retort/checkpoint.h"
#include "retort/error.h"
#include "retort/fs.h"
#include "retort/hub.h"
#include "test_paths.h"
#include "tiny_model.h"

namespace retort {
namespace {

namespace fs = std::filesystem;
using test::error_of;

// The hub stand-in as a child process for the test's lifetime.
class HubServer {
 public:
  HubServer(const fs::path& root, const std::string& flags) : log_(root / "server.log") {
    const fs::path port_file = root / "port.txt";
    fs::remove(port_file);
    fs::remove(log_);
    const std::string cmd = "python3 " + std::string(RETORT_SOURCE_DIR) + "/tests/deploy/hub_server.py '" +
                            (root / "hub").string() + "' --log '" + log_.string() + "' " + flags + " > '" +
                            port_file.string() + "' 2>&1 & echo $!";
    FILE* p = popen(cmd.c_str(), "r");
    if (p && fscanf(p, "%d", &pid_) != 1) pid_ = 0;
    if (p) pclose(p);
    for (int i = 0; i < 100 && port_ == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      std::ifstream in(port_file);
      in >> port_;
    }
  }
  ~HubServer() {
    if (pid_ > 0) ::kill(pid_, SIGTERM);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string log() const { return fs::exists(log_) ? read_file(log_.string()) : ""; }
  bool up() const { return port_ > 0; }

 private:
  fs::path log_;
  int pid_ = 0;
  int port_ = 0;
};

class Hub : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!download_available()) GTEST_SKIP() << "built without libcurl";
    if (std::system("python3 --version > /dev/null 2>&1") != 0) GTEST_SKIP() << "python3 is needed for the hub stand-in";
    root_ = test::temp_path("hub");
    fs::remove_all(root_);
    const Tokenizer tok = test::bert_vocab();
    test::save_tiny_model(root_ / "hub/acme/tiny-bert", tok, test::tiny_config(tok, 1, 32), 7);
    cache_ = root_ / "cache";
  }
  DownloadOptions options(const HubServer& s) const {
    DownloadOptions o;
    o.endpoint = s.url();
    o.cache_dir = cache_.string();
    o.retries = 2;
    return o;
  }
  fs::path root_, cache_;
};

TEST_F(Hub, DownloadsAVerifiedSnapshotThatLoadsAndIsReused) {
  HubServer server(root_, "");
  ASSERT_TRUE(server.up());
  const DownloadResult r = download_model("acme/tiny-bert", options(server));
  const fs::path repo = cache_ / "models--acme--tiny-bert";
  EXPECT_EQ(r.commit, "0123456789abcdef0123456789abcdef01234567");
  EXPECT_EQ(fs::path(r.snapshot_dir), repo / "snapshots" / r.commit);
  EXPECT_EQ(read_file((repo / "refs/main").string()), r.commit);
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "vocab.txt"}) {
    const fs::path link = fs::path(r.snapshot_dir) / f;
    EXPECT_TRUE(fs::is_symlink(link)) << f;
    EXPECT_EQ(read_file(link.string()), read_file((root_ / "hub/acme/tiny-bert" / f).string())) << f;
  }
  // LFS blobs are named by their sha256, other files by their git blob id.
  const std::string weights = (root_ / "hub/acme/tiny-bert/model.safetensors").string();
  EXPECT_TRUE(fs::exists(repo / "blobs" / sha256_file(weights)));
  const std::string config = (root_ / "hub/acme/tiny-bert/config.json").string();
  EXPECT_TRUE(fs::exists(repo / "blobs" / git_blob_sha1_file(config)));
  EXPECT_GT(r.bytes_downloaded, static_cast<int64_t>(fs::file_size(weights)));
  EXPECT_EQ(r.bytes_cached, 0);

  Model got = load_model(r.snapshot_dir), want = load_model((root_ / "hub/acme/tiny-bert").string());
  EXPECT_TRUE(torch::equal(got->bert->embeddings->word_embeddings->weight, want->bert->embeddings->word_embeddings->weight));
  EXPECT_NO_THROW(load_model_tokenizer(r.snapshot_dir));

  const std::string before = server.log();
  const auto requests = std::count(before.begin(), before.end(), '\n');
  const DownloadResult again = download_model("acme/tiny-bert", options(server));
  EXPECT_EQ(again.bytes_downloaded, 0);
  EXPECT_EQ(again.bytes_cached, r.bytes_downloaded);
  const std::string log = server.log();
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), requests + 1) << "only the metadata again:\n" << log;
}

TEST_F(Hub, ADroppedConnectionResumesWithARange) {
  HubServer server(root_, "--cut-after 1000");
  ASSERT_TRUE(server.up());
  const DownloadResult r = download_model("acme/tiny-bert", options(server));
  const std::string log = server.log();
  EXPECT_NE(log.find(" bytes=1000-"), std::string::npos) << log;
  EXPECT_EQ(read_file((fs::path(r.snapshot_dir) / "model.safetensors").string()),
            read_file((root_ / "hub/acme/tiny-bert/model.safetensors").string()));
}

TEST_F(Hub, CorruptFilesMissingModelsAndTokensAreClearErrors) {
  {
    HubServer server(root_, "--corrupt model.safetensors");
    ASSERT_TRUE(server.up());
    const std::string e = error_of([&] { download_model("acme/tiny-bert", options(server)); });
    EXPECT_NE(e.find("acme/tiny-bert/model.safetensors: checksum mismatch"), std::string::npos) << e;
    for (const auto& f : fs::directory_iterator(cache_ / "models--acme--tiny-bert/blobs")) {
      EXPECT_EQ(f.path().extension(), "") << "no partial or corrupt blob may stay: " << f.path();
      EXPECT_NE(f.path().filename().string(), sha256_file((root_ / "hub/acme/tiny-bert/model.safetensors").string()));
    }
    const std::string missing = error_of([&] { download_model("acme/nothing", options(server)); });
    EXPECT_NE(missing.find("no model 'acme/nothing' at revision 'main'"), std::string::npos) << missing;
    EXPECT_NE(error_of([&] { download_model("../etc", options(server)); }).find("invalid model name '../etc'"),
              std::string::npos);
  }
  HubServer gated(root_, "--token sesame");
  ASSERT_TRUE(gated.up());
  const std::string e = error_of([&] { download_model("acme/tiny-bert", options(gated)); });
  EXPECT_NE(e.find("access denied: the model may be gated or private (set HF_TOKEN)"), std::string::npos) << e;
  DownloadOptions o = options(gated);
  o.token = "sesame";
  EXPECT_EQ(download_model("acme/tiny-bert", o).files.size(), 6u);
}

TEST(HubDigests, KnownValues) {
  if (!download_available()) GTEST_SKIP() << "built without libcurl";
  const fs::path p = test::temp_path("digest.txt");
  write_file_atomic(p.string(), "hello\n");
  EXPECT_EQ(git_blob_sha1_file(p.string()), "ce013625030ba8dba906f756967f9e9ca394464a");  // git hash-object
  write_file_atomic(p.string(), "abc");
  EXPECT_EQ(sha256_file(p.string()), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace retort

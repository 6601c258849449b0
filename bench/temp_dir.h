// A temporary directory for one benchmark's store, removed with its
// contents when the object dies.

#ifndef CUSTOS_BENCH_TEMP_DIR_H_
#define CUSTOS_BENCH_TEMP_DIR_H_

#include <stdlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

namespace custos::bench {

class TempDir {
 public:
  // `prefix` names the benchmark, e.g. "custos-sweep-bench".
  explicit TempDir(const std::string& prefix) {
    std::string path = "/tmp/" + prefix + "-XXXXXX";
    if (mkdtemp(path.data()) == nullptr) {
      std::perror("mkdtemp");
      std::abort();
    }
    path_ = std::move(path);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace custos::bench

#endif  // CUSTOS_BENCH_TEMP_DIR_H_

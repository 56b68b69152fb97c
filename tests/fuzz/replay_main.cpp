// The fuzz targets without libFuzzer: runs LLVMFuzzerTestOneInput once on
// each file given (a directory: each file in it, in name order), so the
// committed corpus is a regression test of the ordinary build (CTest
// frame_fuzz_corpus, engine_fuzz_corpus), and a crash reproducer can be run
// under a debugger. `--make-corpus DIR` writes the seed inputs into DIR
// instead (tests/fuzz/seeds.cpp).
#include "seeds.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace fs = std::filesystem;

namespace {

int make_corpus(const fs::path& dir) {
  fs::create_directories(dir);
  for (const auto& [name, bytes] : loyalty::fuzz::seeds())
    std::ofstream(dir / name, std::ios::binary) << bytes;
  return 0;
}

void run(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  const std::vector<char> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  std::fprintf(stderr, "%s (%zu bytes)\n", file.c_str(), bytes.size());
  LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
}

} // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--make-corpus")
    return make_corpus(argv[2]);
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE|DIR...   or   %s --make-corpus DIR\n", argv[0], argv[0]);
    return 2;
  }
  std::size_t inputs = 0;
  for (int i = 1; i < argc; ++i) {
    if (!fs::is_directory(argv[i])) {
      run(argv[i]);
      ++inputs;
      continue;
    }
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(argv[i]))
      if (e.is_regular_file())
        files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files)
      run(f);
    inputs += files.size();
  }
  // An empty corpus would make the CTest entry pass without testing anything.
  if (inputs == 0) {
    std::fprintf(stderr, "no inputs\n");
    return 1;
  }
  std::printf("%zu inputs, no failure\n", inputs);
  return 0;
}

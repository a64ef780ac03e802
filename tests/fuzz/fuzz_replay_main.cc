// A main() for the fuzz targets in ordinary (gcc, CI) builds: runs
// LLVMFuzzerTestOneInput over every file given (a saved corpus, or the input of a fixed
// crash), then over --runs inputs from a seeded random source: fresh random bytes and
// random mutations of the files. The same seed replays the same inputs. A failing input
// aborts, after its bytes are written to fuzz-failure-<target>.bin for replay.
//   <target>_replay [--runs N] [--seed S] [--max-len L] [FILE|DIR]...
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

std::string g_current;      // the input being run, saved if it fails
std::string g_target_name;  // from argv[0]

void SaveCurrent() {
  const std::string path = "fuzz-failure-" + g_target_name + ".bin";
  if (FILE* f = std::fopen(path.c_str(), "wb")) {
    std::fwrite(g_current.data(), 1, g_current.size(), f);
    std::fclose(f);
    std::fprintf(stderr, "failing input (%zu bytes) written to %s\n", g_current.size(),
                 path.c_str());
  }
}

void Run(const std::string& input) {
  g_current = input;
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(g_current.data()), g_current.size());
}

bool ReadFile(const std::filesystem::path& p, std::string* out) {
  std::ifstream f(p, std::ios::binary);
  if (!f) return false;
  out->assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  g_target_name = std::filesystem::path(argv[0]).filename().string();
  long runs = 2000;
  unsigned long seed = 1;
  long max_len = 512;
  std::vector<std::string> corpus;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const char* flag) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", flag);
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--runs") {
      runs = std::strtol(value("--runs"), nullptr, 10);
    } else if (arg == "--seed") {
      seed = std::strtoul(value("--seed"), nullptr, 10);
    } else if (arg == "--max-len") {
      max_len = std::strtol(value("--max-len"), nullptr, 10);
    } else if (std::filesystem::is_directory(arg)) {
      for (const auto& e : std::filesystem::directory_iterator(arg)) {
        std::string data;
        if (e.is_regular_file() && ReadFile(e.path(), &data)) corpus.push_back(std::move(data));
      }
    } else {
      std::string data;
      if (!ReadFile(arg, &data)) {
        std::fprintf(stderr, "cannot read %s\n", arg.c_str());
        return 2;
      }
      corpus.push_back(std::move(data));
    }
  }
  if (runs < 0 || max_len <= 0) {
    std::fprintf(stderr, "--runs must be >= 0 and --max-len > 0\n");
    return 2;
  }
  std::signal(SIGABRT, [](int) {
    SaveCurrent();
    std::signal(SIGABRT, SIG_DFL);
    std::abort();
  });

  for (const std::string& c : corpus) Run(c);
  std::mt19937_64 rng(seed);
  for (long r = 0; r < runs; ++r) {
    std::string input;
    if (!corpus.empty() && rng() % 2 == 0) {
      input = corpus[rng() % corpus.size()];
      for (int m = 1 + static_cast<int>(rng() % 8); m > 0; --m) {
        const size_t at = input.empty() ? 0 : rng() % input.size();
        switch (rng() % 4) {
          case 0:  // flip a byte
            if (!input.empty()) input[at] = static_cast<char>(rng());
            break;
          case 1:  // insert a byte
            input.insert(input.begin() + static_cast<long>(at), static_cast<char>(rng()));
            break;
          case 2:  // erase a run
            if (!input.empty()) input.erase(at, 1 + rng() % 8);
            break;
          case 3:  // truncate
            input.resize(at);
            break;
        }
      }
    } else {
      input.resize(rng() % static_cast<unsigned long>(max_len + 1));
      for (char& c : input) c = static_cast<char>(rng());
    }
    Run(input);
  }
  std::printf("%s: %zu corpus input(s) and %ld generated input(s) (seed %lu) passed\n",
              g_target_name.c_str(), corpus.size(), runs, seed);
  return 0;
}

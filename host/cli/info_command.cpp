// `fmnist info`: what this build has (backends, BLAS), which CUDA devices it sees, and whether the
// data directory holds the Fashion-MNIST files.
#include <cblas.h>

#include <filesystem>
#include <iostream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "host/backend_select.h"
#include "host/cli/cli.h"
#include "host/cuda_backend.h"
#include "host/dataset.h"
#include "host/reference/parallel.h"
#include "host/report/report.h"

namespace fmnist::cli {
namespace {

struct InfoOptions {
  std::string data_dir;
};

void print_data(const std::string& dir) {
  std::cout << "data directory: " << dir << '\n';
  for (const char* stem : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                           "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}) {
    std::string found = "missing";
    for (const std::string& name : {std::string(stem) + ".gz", std::string(stem)})
      if (std::filesystem::exists(dir + "/" + name)) {
        found = name;
        break;
      }
    std::cout << fmt::format("  {:<26} {}\n", stem, found);
  }
  try {
    const FashionMnist data = load_fashion_mnist(dir);
    std::cout << fmt::format("  loaded: {} training and {} t10k images\n", data.train.count(),
                             data.t10k.count());
  } catch (const std::exception& e) {
    std::cout << "  not usable: " << e.what() << '\n';
  }
}

int run_info(void* p) {
  const auto& o = *static_cast<InfoOptions*>(p);
  std::cout << "fmnist " << FMNIST_VERSION << '\n';
  std::cout << "CPU backend: " << reference::default_cpu_threads()
            << " threads (FMNIST_CPU_THREADS), each calling " << openblas_get_config()
            << " single-threaded\n";
  std::string why_no_cuda;
  const CudaBackend* cuda = cuda_backend(&why_no_cuda);
  if (cuda == nullptr) {
    std::cout << "CUDA backend: " << why_no_cuda << "; --device auto runs on the CPU\n";
  } else {
    std::cout << "CUDA backend: compiled in; " << cuda->runtime_summary() << '\n';
    const auto devices = cuda->list_devices();
    if (devices.empty()) std::cout << "CUDA devices: none found (--device auto runs on the CPU)\n";
    for (const auto& d : devices)
      std::cout << fmt::format("  cuda:{} {} (compute capability {}.{}, {:.1f} GiB, {} SMs)\n", d.index,
                               d.name, d.major, d.minor, d.memory_bytes / 1073741824.0,
                               d.multiprocessors);
  }
  std::cout << (report::kCanDrawFigures
                    ? "report figures: drawn (cairo)\n"
                    : "report figures: not drawn (built without cairo: `fmnist reproduce` writes the results and "
                      "the report without them; `fmnist report OUT` on a build with cairo draws them)\n");
  print_data(o.data_dir.empty() ? default_data_dir() : o.data_dir);
  return 0;
}

}  // namespace

void add_info_command(CLI::App& app, Command& command) {
  static InfoOptions o;
  CLI::App* sub = app.add_subcommand("info", "Show build options, CUDA devices and the data found");
  sub->add_option("--data-dir", o.data_dir, "directory of the IDX files to check");
  command = {sub, &run_info, &o};
}

}  // namespace fmnist::cli

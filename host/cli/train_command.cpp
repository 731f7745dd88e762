// `fmnist train`: trains AE(n) or C(n) on Fashion-MNIST and writes metrics and checkpoints.
#include <exception>
#include <filesystem>
#include <future>
#include <iostream>
#include <map>
#include <stdexcept>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "host/backend_select.h"
#include "host/cli/cli.h"
#include "host/cli/train_resume.h"
#include "host/dataset.h"
#include "host/run_state.h"
#include "host/step_graphs.h"
#include "host/stop_signal.h"
#include "host/trainer.h"

namespace fmnist::cli {
namespace {

struct TrainOptions {
  std::string model = "ae";
  int latent = 256;
  int epochs = 100;
  int batch = 100;
  double lr = 1e-3;
  std::string loss = "mae";
  float dropout = 0.0f;
  std::string head = "sigmoid";
  std::uint64_t seed = 1;
  std::string device = "auto";
  PrecisionFlags precision;  // --precision / --tf32
  bool no_graph = false;            // host/batch_stream.h: how batches and steps reach the device
  std::string placement = "auto";
  int stream_slots = 4;
  std::string data_dir;
  std::string out_dir;
  std::string init_from;
  bool fine_tune = false;
  int validation_count = 9900;
  int max_steps = 0;
  bool drop_last = false;
  std::string resume;
  bool overwrite = false;
  int init_redraws = 10;
  int checkpoint_every = 10;
  int keep_checkpoints = 3;
  int guard_every = 0;  // by backend (guard_interval)
  int eval_batch = TrainConfig{}.eval_batch;
  std::string lr_schedule = "constant";  // the recipe options of TrainConfig (host/trainer.h)
  double warmup_fraction = 0.05, final_lr_fraction = 0.01;
  bool augment = false, no_flip = false;
  int augment_shift = 2;
  double erase = 0.0;
  CLI::App* app = nullptr;  // the subcommand, to tell which flags were given (--resume)
};

const std::map<std::string, ModelKind> kModels{{"ae", ModelKind::Autoencoder},
                                                {"classifier", ModelKind::Classifier}};
const std::map<std::string, PointLoss> kLosses{{"mae", PointLoss::L1}, {"mse", PointLoss::MSE}};
const std::map<std::string, ClassifierHead> kHeads{{"sigmoid", ClassifierHead::Sigmoid},
                                                    {"logits", ClassifierHead::Logits}};

// Refuses to write a new run over checkpoints that are already there.
void check_out_dir(const TrainOptions& o) {
  if (!o.resume.empty() || o.overwrite) return;
  for (const char* name : {"last.safetensors", "best.safetensors", "last.state.safetensors", "metrics.csv"}) {
    const std::string path = o.out_dir + "/" + name;
    if (std::filesystem::exists(path))
      throw std::invalid_argument(path + " already exists: choose another --out, --resume " +
                                  o.out_dir + ", or --overwrite");
  }
}

int run_train(void* p) {
  auto& o = *static_cast<TrainOptions*>(p);
  install_stop_handlers();  // SIGINT/SIGTERM: finish the step, checkpoint, exit 128 + signal
  TrainConfig config;
  config.model.kind = kModels.at(o.model);
  config.model.latent = o.latent;
  config.model.dropout = o.dropout;
  config.model.ae_loss = kLosses.at(o.loss);
  config.model.head = kHeads.at(o.head);
  config.model.freeze_encoder = config.model.kind == ModelKind::Classifier && !o.init_from.empty() && !o.fine_tune;
  if (o.fine_tune && o.init_from.empty())
    throw std::invalid_argument("--fine-tune needs --init-from AE_CHECKPOINT");
  config.epochs = o.epochs;
  config.batch = o.batch;
  config.adam.lr = o.lr;
  config.seed = o.seed;
  config.validation_count = o.validation_count;
  config.max_steps_per_epoch = o.max_steps;
  config.drop_last = o.drop_last;
  config.init_encoder_from = o.init_from;
  config.init_redraws = o.init_redraws;
  config.checkpoint_every = o.checkpoint_every;
  config.keep_checkpoints = o.keep_checkpoints;
  config.guard_every = o.guard_every;
  config.eval_batch = o.eval_batch;
  config.precision = resolve_precision(o.precision);
  config.lr_schedule = o.lr_schedule == "constant" ? LrSchedule::Constant : LrSchedule::WarmupCosine;
  config.lr_warmup_fraction = o.warmup_fraction;
  config.lr_final_fraction = o.final_lr_fraction;
  config.augment = o.augment || o.app->count("--augment-shift") > 0 || o.erase > 0;
  config.augment_max_shift = o.augment_shift;
  config.augment_flip = !o.no_flip;
  config.augment_erase = o.erase;
  if (!o.resume.empty()) {
    if (!o.out_dir.empty() && o.out_dir != o.resume)
      throw std::invalid_argument("--resume DIR writes into DIR; do not also give another --out");
    o.out_dir = o.resume;
    // The run's own configuration (DIR/config.json); flags given again must agree with it.
    config = resumed_run_config(o.resume, config, given_flags(*o.app));
  }
  // The GPU's convolution kernels: a resumed run's recorded ones (a variable set to the other is
  // refused), else the environment's.
  const GpuKernels kernels = gpu_kernels_for_run(gpu_kernels_requested(), config.gpu_kernels, o.out_dir);
  // Operational: never changes a result, so a resumed run takes them as given.
  config.stream.graphs = !o.no_graph;
  config.stream.placement = parse_placement(o.placement);
  config.stream.slots = o.stream_slots;
  if (o.out_dir.empty())
    o.out_dir = default_run_dir(fmt::format("{}{}", o.model == "ae" ? "ae" : "c", o.latent));
  config.out_dir = o.out_dir;
  const NetworkSpec spec = build_network(config.model);  // validates the model options before any data is read
  check_out_dir(o);
  if (!config.resume_from.empty() && std::filesystem::exists(RunFiles(config.resume_from).state))
    load_run_state(RunFiles(config.resume_from).state, spec);  // a corrupt or foreign checkpoint: refused now

  const std::string data_dir = o.data_dir.empty() ? default_data_dir() : o.data_dir;
  // The IDX files are read and inflated (about 0.3 s) on a thread of their own while the backend
  // starts (a GPU's context, cuDNN and cuBLAS take longer). The errors keep their order: the
  // data's first, then the output directory's, then the backend's.
  std::future<FashionMnist> loading = std::async(std::launch::async, [&] { return load_fashion_mnist(data_dir); });
  BackendChoice backend;
  std::exception_ptr backend_error;
  try {
    backend = select_backend(o.device, config.precision, kernels);
  } catch (...) {
    backend_error = std::current_exception();
  }
  const FashionMnist data = loading.get();
  prepare_output_directory(config.out_dir);  // unwritable: one line, exit 2, before any training
  if (backend_error) std::rethrow_exception(backend_error);
  config.gpu_kernels = backend.ops->computes_on_host() ? std::nullopt : std::optional<GpuKernels>(kernels);
  // --device may move a resumed run: it goes on, but with the new backend's rounding.
  if (!config.began_on.empty() && config.began_on != backend.ops->name() &&
      std::filesystem::exists(RunFiles(config.resume_from).state))
    std::cerr << fmt::format("fmnist: note: this run began on {} and continues on {}: from here on it rounds as "
                             "{} does, so it is not bitwise the run {} would have finished\n",
                             config.began_on, backend.ops->name(), backend.ops->name(), config.began_on);
  std::cerr << fmt::format("fmnist: training {} on {} ({}); data {}; output {}\n",
                           describe(config.model), backend.ops->name(), backend.note, data_dir,
                           config.out_dir);
  TrainCallbacks callbacks;
  callbacks.live_progress = stderr_is_terminal();
  callbacks.stop_signal = stop_signal_flag();
  const TrainResult result = train(config, data, *backend.ops, std::cerr, callbacks);
  if (result.stopped_by != 0) {
    std::cerr << fmt::format("fmnist: {} received: the run stopped early; continue it with: fmnist train --resume {}\n",
                             signal_name(result.stopped_by), config.out_dir);
    return 128 + result.stopped_by;
  }
  if (!result.epochs.empty()) {
    const EpochMetrics& last = result.epochs.back();
    std::cout << fmt::format("final: epoch {} train loss {:.6f} val loss {:.6f}", last.epoch,
                             last.train_loss, last.val_loss);
    if (config.model.kind == ModelKind::Classifier)
      std::cout << fmt::format(" val accuracy {:.4f}", last.val_accuracy);
    std::cout << fmt::format(" (best epoch {})\n", result.best_epoch);
    const std::size_t epochs = result.epochs.size();
    std::cout << fmt::format("time: {:.2f} s of training, {:.2f} s of validation ({} epoch{}, validation batches "
                             "of {})\n", result.training_seconds, result.validation_seconds, epochs,
                             epochs == 1 ? "" : "s", result.validation_batch);
  }
  if (result.graphs_captured + result.graph_capture_failures > 0)
    std::cout << fmt::format("graphs: {}; {} replays\n",
                             graph_counts_text(result.graphs_captured, result.graph_capture_failures),
                             result.graph_replays);
  std::cout << fmt::format("checkpoints: {}/{{best,last}}.safetensors ({} written beside training: {:.2f} s of "
                           "writing, {:.2f} s waited for)\n",
                           config.out_dir, result.checkpoints_written, result.checkpoint_write_seconds,
                           result.checkpoint_wait_seconds);
  return 0;
}

}  // namespace

void add_train_command(CLI::App& app, Command& command) {
  static TrainOptions o;
  CLI::App* sub = app.add_subcommand("train", "Train the paper's autoencoder AE(n) or classifier C(n)");
  sub->add_option("--model", o.model, "ae or classifier")->check(CLI::IsMember({"ae", "classifier"}))->capture_default_str();
  sub->add_option("--latent", o.latent, "latent size n")->check(CLI::Range(1, 65536))->capture_default_str();
  sub->add_option("--epochs", o.epochs, "epochs to train")->check(CLI::Range(1, 1000000))->capture_default_str();
  sub->add_option("--batch-size", o.batch, "images per step")->check(CLI::Range(1, 60000))->capture_default_str();
  sub->add_option("--lr", o.lr, "Adam learning rate")->check(CLI::Range(1e-12, 10.0))->capture_default_str();
  sub->add_option("--loss", o.loss, "AE loss: mae (the paper's) or mse")->check(CLI::IsMember({"mae", "mse"}))->capture_default_str();
  sub->add_option("--dropout", o.dropout, "dropout p after each hidden ReLU (the paper's variant: 0.2)")->check(CLI::Range(0.0, 0.95))->capture_default_str();
  sub->add_option("--head", o.head, "classifier head: sigmoid (the paper's Sigmoid + cross-entropy) or logits (softmax cross-entropy)")->check(CLI::IsMember({"sigmoid", "logits"}))->capture_default_str();
  sub->add_option("--seed", o.seed, "seed of initialisation, splits, shuffles and dropout")->capture_default_str();
  sub->add_option("--device", o.device, "cpu, cuda or auto (the GPU when there is one)")->check(CLI::IsMember({"cpu", "cuda", "auto"}))->capture_default_str();
  add_precision_flags(sub, o.precision);
  sub->add_flag("--no-graph", o.no_graph, "launch every op of every step (default: each kind of step is captured once as a CUDA graph and replayed)");
  sub->add_option("--data-placement", o.placement, "auto (resident when the data fits in a quarter of free GPU memory), resident (uploaded once, batches gathered on the GPU) or stream (pinned batches copied while the previous step runs)")->check(CLI::IsMember({"auto", "resident", "stream"}))->capture_default_str();
  sub->add_option("--stream-slots", o.stream_slots, "batches in flight when streaming")->check(CLI::Range(2, 64))->capture_default_str();
  sub->add_option("--data-dir", o.data_dir, "directory of the IDX files (default: $FMNIST_DATA_DIR or " FMNIST_DEFAULT_DATA_DIR ")");
  sub->add_option("--out", o.out_dir, "output directory (default: runs/<model><n>-<time>)");
  sub->add_option("--init-from", o.init_from, "classifier: take the encoder from this AE checkpoint (frozen unless --fine-tune)");
  sub->add_flag("--fine-tune", o.fine_tune, "train the encoder taken with --init-from too");
  sub->add_option("--validation-size", o.validation_count, "t10k images used for validation; the rest is the test split")->check(CLI::Range(1, 9999))->capture_default_str();
  sub->add_option("--max-steps-per-epoch", o.max_steps, "stop each epoch after this many steps (0: whole epoch)")->check(CLI::Range(0, 1000000))->capture_default_str();
  sub->add_flag("--drop-last", o.drop_last, "drop a partial last batch of each epoch");
  sub->add_option("--resume", o.resume, "continue the run in this directory from its last checkpoint, with its recorded configuration (config.json)");
  sub->add_option("--init-redraws", o.init_redraws, "AE: redraw initial weights whose reconstruction is all zeros (a dead ReLU) up to this many times; 0 keeps them as PyTorch would")->check(CLI::Range(0, 1000))->capture_default_str();
  sub->add_flag("--overwrite", o.overwrite, "write over checkpoints already in --out");
  sub->add_option("--checkpoint-every", o.checkpoint_every, "also keep the weights of every Nth epoch as epoch-NNNN.safetensors (0: never; last/best/state are written every epoch)")->check(CLI::Range(0, 1000000))->capture_default_str();
  sub->add_option("--keep-checkpoints", o.keep_checkpoints, "keep only the newest K epoch-NNNN.safetensors (0: all)")->check(CLI::Range(0, 1000000))->capture_default_str();
  sub->add_option("--eval-batch-size", o.eval_batch, "images per validation batch (at most the validation set; 0: by backend: the training batch on the CPU, 1000 on a GPU). Validation figures are means over images, so it changes them only by rounding, and nothing that is trained; larger batches are fewer GPU launches")->check(CLI::Range(0, 60000))->capture_default_str();
  sub->add_option("--guard-every", o.guard_every, "check the loss and gradients for NaN/Inf every N steps, and always before a checkpoint; 0: every step on the CPU, every 100 on a GPU (where each check waits for the device)")->check(CLI::Range(0, 1000000))->capture_default_str();
  sub->add_option("--lr-schedule", o.lr_schedule, "constant (the paper's) or warmup-cosine (also spelt warmup_cosine, as config.json has it): linear warm-up to --lr, then cosine decay")->check(CLI::IsMember({"constant", "warmup-cosine", "warmup_cosine"}))->capture_default_str();
  sub->add_option("--warmup-fraction", o.warmup_fraction, "warmup-cosine: share of all steps spent warming up")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  sub->add_option("--final-lr-fraction", o.final_lr_fraction, "warmup-cosine: the last step's lr as a share of --lr")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  sub->add_flag("--augment", o.augment, "augment training batches: random shifts (--augment-shift) and left-right flips (unless --no-flip)");
  sub->add_option("--augment-shift", o.augment_shift, "largest shift in pixels, each way (implies --augment)")->check(CLI::Range(0, 27))->capture_default_str();
  sub->add_flag("--no-flip", o.no_flip, "augment without left-right flips");
  sub->add_option("--erase", o.erase, "Random Erasing probability per training image (implies --augment; 0: off)")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  o.app = sub;
  command = {sub, &run_train, &o};
}

}  // namespace fmnist::cli

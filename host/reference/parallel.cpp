// TaskPool and the default thread count of the CPU reference backend (see parallel.h).
#include "host/reference/parallel.h"

#include <sched.h>

#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace fmnist::reference {
namespace {

// A hint to the core that this is a spin-wait loop (x86 PAUSE); nothing elsewhere.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// A worker that has run out of tasks spins this long looking for the next op before it sleeps on
// the condition variable (a wake-up from which takes longer than many of our ops). The next op
// starts when the caller has finished its last task: usually well within 100 us (a task is
// 5 images of a convolution, or 32K elements). Longer spins only burn CPU time on a busy machine.
constexpr std::chrono::microseconds kWorkerSpin{100};
// The caller, its own share done, spins this many rounds waiting for the tasks that workers are
// still running, then yields its core at every round (to a worker that may need it).
constexpr int kCallerSpins = 1000;

}  // namespace

int default_cpu_threads() {
  if (const char* env = std::getenv("FMNIST_CPU_THREADS"); env != nullptr && *env != '\0') {
    char* end = nullptr;
    const long n = std::strtol(env, &end, 10);
    if (*end != '\0' || n < 1 || n > 1024)
      throw std::invalid_argument(
          std::string("FMNIST_CPU_THREADS must be an integer in [1, 1024] (got '") + env + "')");
    return static_cast<int>(n);
  }
  int cpus = static_cast<int>(std::thread::hardware_concurrency());
  cpu_set_t allowed;  // a process pinned to fewer CPUs (taskset, a cpuset) gets that many
  if (sched_getaffinity(0, sizeof allowed, &allowed) == 0) cpus = CPU_COUNT(&allowed);
  return std::clamp(cpus, 1, kMaxDefaultThreads);
}

TaskPool::TaskPool(int threads) : threads_(std::max(1, threads)) {}

TaskPool::~TaskPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    generation_.fetch_add(1, std::memory_order_release);  // ends a worker's spin
  }
  wake_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void TaskPool::run_job(int tasks, void (*call)(const void*, int, int), const void* body) {
  if (workers_.empty())
    for (int t = 1; t < threads_; ++t) workers_.emplace_back(&TaskPool::worker, this, t);
  // Every ticket of the previous ops has been handed out and has finished, so the counter stands
  // at the end of the last op: this op's tickets follow it.
  Job job;
  job.call = call;
  job.body = body;
  job.begin = next_ticket_.load(std::memory_order_relaxed);
  job.end = job.begin + static_cast<std::uint64_t>(tasks);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = job;
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  work_on(job, 0);
  // Wait for the tasks that workers took and are still running (never for an idle worker).
  for (int round = 0; finished_.load(std::memory_order_acquire) < job.end; ++round) {
    if (round < kCallerSpins)
      cpu_relax();
    else
      std::this_thread::yield();
  }
}

void TaskPool::work_on(const Job& job, int thread) {
  for (;;) {
    std::uint64_t ticket = next_ticket_.load(std::memory_order_relaxed);
    do {
      if (ticket >= job.end) return;  // all taken (or a later op's: not ours to run)
    } while (!next_ticket_.compare_exchange_weak(ticket, ticket + 1, std::memory_order_acq_rel,
                                                 std::memory_order_relaxed));
    job.call(job.body, static_cast<int>(ticket - job.begin), thread);
    finished_.fetch_add(1, std::memory_order_acq_rel);  // publishes the task's writes to the caller
  }
}

void TaskPool::worker(int thread) {
  std::uint64_t seen = 0;  // the last generation this worker has looked at
  for (;;) {
    const auto spin_until = std::chrono::steady_clock::now() + kWorkerSpin;
    while (generation_.load(std::memory_order_acquire) == seen &&
           std::chrono::steady_clock::now() < spin_until)
      cpu_relax();
    Job job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] {
        return stop_ || generation_.load(std::memory_order_relaxed) != seen;
      });
      if (stop_) return;
      seen = generation_.load(std::memory_order_relaxed);
      job = job_;
    }
    work_on(job, thread);
  }
}

}  // namespace fmnist::reference

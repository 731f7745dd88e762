// Threads of the CPU reference backend. Every op cuts its work into TASKS whose number and
// boundaries depend only on the op's shapes, never on the thread count; each task writes only
// its own outputs (or its own slot of partial sums, which the op then adds up in task order).
// The threads only decide WHO runs a task, so every result is bitwise the same on 1, 2 or 16
// threads. BLAS runs single-threaded inside the tasks (see CpuOps' constructor).
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace fmnist::reference {

// The thread count a CpuOps uses when it is given none: FMNIST_CPU_THREADS when set (an integer
// in [1, 1024]; anything else throws std::invalid_argument), else the CPUs this process may run
// on, at most kMaxDefaultThreads.
constexpr int kMaxDefaultThreads = 8;  // a batch of 100 never splits into many more tasks
int default_cpu_threads();

// A fixed team of threads that runs the tasks of one op at a time; the calling thread is one of
// them. Tasks are handed out one by one from a shared counter to whichever thread is free, and
// run() returns as soon as every task has FINISHED: it never waits for a worker that has nothing
// to do. So a worker that the OS has not scheduled (a busy machine) holds nothing up, the other
// threads take its share; a fork-join barrier (OpenMP's) waits for every thread, a scheduler time
// slice each time one is descheduled (with OpenMP, steps ran 5x slower on a loaded 2-core machine).
// One op at a time: run() is not re-entrant (a task must not call it).
//
// How a worker that wakes up late is kept out of later ops: tickets are numbered across ops
// (op k owns tickets [begin_k, end_k), end_k = begin_{k+1}) and a thread only takes a ticket
// below the end of the op it was told about, by compare-and-swap, so a stale worker finds its op's
// tickets all taken and goes back to wait.
class TaskPool {
 public:
  explicit TaskPool(int threads);  // threads >= 1; the workers start on the first parallel run
  ~TaskPool();
  TaskPool(const TaskPool&) = delete;
  TaskPool& operator=(const TaskPool&) = delete;

  int threads() const { return threads_; }

  // Calls body(task, thread) for every task in [0, tasks), thread in [0, threads()) naming the
  // thread that runs it (to pick its own scratch slice); returns when all have finished.
  // body must not throw (validate and allocate before run); the caller's thread is thread 0.
  template <class Body> void run(int tasks, const Body& body) {
    if (tasks <= 0) return;
    if (threads_ == 1 || tasks == 1) {
      for (int t = 0; t < tasks; ++t) body(t, 0);
      return;
    }
    auto call = [](const void* b, int task, int thread) {
      (*static_cast<const Body*>(b))(task, thread);
    };
    run_job(tasks, call, &body);
  }

 private:
  struct Job {
    void (*call)(const void* body, int task, int thread) = nullptr;
    const void* body = nullptr;
    std::uint64_t begin = 0, end = 0;  // its tickets
  };

  void run_job(int tasks, void (*call)(const void*, int, int), const void* body);
  void work_on(const Job& job, int thread);  // takes and runs the job's tickets until none is left
  void worker(int thread);

  const int threads_;
  std::vector<std::thread> workers_;
  std::atomic<std::uint64_t> next_ticket_{0};  // the next ticket to hand out
  // How many tickets' tasks have run, over all ops: an op is done when this reaches its end.
  std::atomic<std::uint64_t> finished_{0};
  std::atomic<std::uint64_t> generation_{0};   // bumped for every op the workers are told about
  std::mutex mutex_;                           // guards job_ and stop_
  std::condition_variable wake_;
  Job job_;
  bool stop_ = false;
};

// [begin, end) of part `part` when `count` items are cut into `parts` nearly equal parts.
inline std::size_t part_begin(std::size_t count, int parts, int part) {
  return count * static_cast<std::size_t>(part) / static_cast<std::size_t>(parts);
}

// Number of parts of at least `min_size` items each (at least 1, at most max_parts).
inline int parts_of(std::size_t count, std::size_t min_size, int max_parts) {
  const std::size_t parts = count / min_size;
  return static_cast<int>(std::clamp<std::size_t>(parts, 1, static_cast<std::size_t>(max_parts)));
}

}  // namespace fmnist::reference

// The reproduction's run plan and its dependency scheduler: see plan.h.
#include "host/reproduce/plan.h"

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

namespace fmnist::reproduce {

Recipe parse_recipe(const std::string& name) {
  if (name == "faithful") return Recipe::Faithful;
  if (name == "improved") return Recipe::Improved;
  if (name == "both") return Recipe::Both;
  throw std::invalid_argument("--recipe must be faithful, improved or both, got '" + name + "'");
}

std::vector<std::string> split_names(const std::string& list) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= list.size()) {
    const std::size_t end = std::min(list.find(',', start), list.size());
    std::string item = list.substr(start, end - start);
    const auto first = item.find_first_not_of(" \t");
    const auto last = item.find_last_not_of(" \t");
    if (first != std::string::npos) out.push_back(item.substr(first, last - first + 1));
    start = end + 1;
  }
  return out;
}

std::vector<PlannedRun> all_runs(const PlanOptions& o) {
  auto base = [&](ModelKind kind, int latent) {
    TrainConfig c;
    c.model.kind = kind;
    c.model.latent = latent;
    c.epochs = o.epochs;
    c.max_steps_per_epoch = o.max_steps_per_epoch;
    c.seed = o.seed;
    c.validation_count = 9900;  // the paper's split: 9,900 validation, 100 test
    return c;
  };
  std::vector<PlannedRun> runs;
  for (int n : {64, 128, 256})
    runs.push_back({"ae" + std::to_string(n), "AE(" + std::to_string(n) + ")", "faithful",
                    base(ModelKind::Autoencoder, n), "", {}});
  {
    PlannedRun r{"ae64-mse", "AE(64) MSE", "faithful", base(ModelKind::Autoencoder, 64), "", {}};
    r.config.model.ae_loss = PointLoss::MSE;
    runs.push_back(r);
  }
  {
    PlannedRun r{"ae64-dropout", "AE(64) dropout 0.2", "faithful", base(ModelKind::Autoencoder, 64), "", {}};
    r.config.model.dropout = 0.2f;
    runs.push_back(r);
  }
  for (int n : {64, 256})
    runs.push_back({"c" + std::to_string(n), "C(" + std::to_string(n) + ")", "faithful",
                    base(ModelKind::Classifier, n), "", {}});
  for (int n : {64, 256}) {
    const std::string ae = "ae" + std::to_string(n);
    PlannedRun r{"c" + std::to_string(n) + "-frozen", "C(" + std::to_string(n) + ") frozen encoder", "faithful",
                 base(ModelKind::Classifier, n), ae, {ae}};
    r.config.model.freeze_encoder = true;
    runs.push_back(r);
  }
  {
    PlannedRun r{"c256-improved", "C(256) improved", "improved", base(ModelKind::Classifier, 256), "", {}};
    r.config.model.head = ClassifierHead::Logits;
    r.config.adam.lr = kImprovedPeakLr;
    r.config.lr_schedule = LrSchedule::WarmupCosine;
    r.config.lr_warmup_fraction = 0.05;
    r.config.lr_final_fraction = 0.01;
    r.config.augment = true;
    r.config.augment_max_shift = 2;
    r.config.augment_flip = true;
    runs.push_back(r);
  }
  return runs;
}

std::vector<PlannedRun> make_plan(const PlanOptions& o) {
  const std::vector<PlannedRun> runs = all_runs(o);
  std::set<std::string> chosen;
  if (o.only.empty()) {
    for (const PlannedRun& r : runs) {
      const bool faithful = r.recipe == "faithful";
      if ((o.recipe == Recipe::Both) || (o.recipe == Recipe::Faithful && faithful) ||
          (o.recipe == Recipe::Improved && !faithful))
        chosen.insert(r.name);
    }
  } else {
    std::map<std::string, const PlannedRun*> by_name;
    for (const PlannedRun& r : runs) by_name[r.name] = &r;
    std::vector<std::string> todo = o.only;
    while (!todo.empty()) {
      const std::string name = todo.back();
      todo.pop_back();
      auto it = by_name.find(name);
      if (it == by_name.end()) {
        std::string known;
        for (const PlannedRun& r : runs) known += (known.empty() ? "" : ", ") + r.name;
        throw std::invalid_argument("--only: no run named '" + name + "' (runs: " + known + ")");
      }
      if (chosen.insert(name).second)
        for (const std::string& d : it->second->depends_on) todo.push_back(d);
    }
  }
  std::vector<PlannedRun> plan;
  for (const PlannedRun& r : runs)
    if (chosen.count(r.name)) plan.push_back(r);
  return plan;
}

std::vector<TaskOutcome> run_with_dependencies(const std::vector<std::vector<int>>& deps, int workers,
                                               const std::function<void(int)>& task) {
  const int n = static_cast<int>(deps.size());
  for (int i = 0; i < n; ++i)
    for (int d : deps[i])
      if (d < 0 || d >= n || d == i) throw std::invalid_argument("scheduler: bad dependency index");
  {  // reject cycles (Kahn's algorithm)
    std::vector<int> indegree(n, 0);
    std::vector<std::vector<int>> users(n);
    for (int i = 0; i < n; ++i)
      for (int d : deps[i]) ++indegree[i], users[d].push_back(i);
    std::vector<int> ready;
    for (int i = 0; i < n; ++i)
      if (indegree[i] == 0) ready.push_back(i);
    int seen = 0;
    while (!ready.empty()) {
      const int i = ready.back();
      ready.pop_back();
      ++seen;
      for (int u : users[i])
        if (--indegree[u] == 0) ready.push_back(u);
    }
    if (seen != n) throw std::invalid_argument("scheduler: the dependencies form a cycle");
  }

  enum class State { Waiting, Running, Done, Failed, Skipped };
  std::vector<State> state(n, State::Waiting);
  std::vector<TaskOutcome> outcome(n);
  std::mutex mutex;
  std::condition_variable changed;

  // The next task to start (lowest ready index), marking newly unrunnable ones skipped; -1 when
  // none is ready now; -2 when nothing is left to start. Called with the mutex held.
  auto next_task = [&]() -> int {
    bool progress = true;
    while (progress) {  // skipping can make further tasks skippable
      progress = false;
      for (int i = 0; i < n; ++i) {
        if (state[i] != State::Waiting) continue;
        for (int d : deps[i]) {
          if (state[d] == State::Failed || state[d] == State::Skipped) {
            state[i] = State::Skipped;
            outcome[i].error = "skipped: task " + std::to_string(d) + " did not finish";
            progress = true;
            break;
          }
        }
      }
    }
    bool waiting = false;
    for (int i = 0; i < n; ++i) {
      if (state[i] != State::Waiting) continue;
      waiting = true;
      if (std::all_of(deps[i].begin(), deps[i].end(), [&](int d) { return state[d] == State::Done; })) return i;
    }
    return waiting ? -1 : -2;
  };

  auto worker = [&]() {
    std::unique_lock<std::mutex> lock(mutex);
    for (;;) {
      const int i = next_task();
      if (i == -2) {
        changed.notify_all();
        return;
      }
      if (i == -1) {
        changed.wait(lock);
        continue;
      }
      state[i] = State::Running;
      outcome[i].ran = true;
      lock.unlock();
      std::string error;
      bool ok = true;
      try {
        task(i);
      } catch (const std::exception& e) {
        ok = false;
        error = e.what();
      } catch (...) {
        ok = false;
        error = "unknown exception";
      }
      lock.lock();
      state[i] = ok ? State::Done : State::Failed;
      outcome[i].ok = ok;
      outcome[i].error = error;
      changed.notify_all();
    }
  };

  const int count = std::max(1, std::min(workers, std::max(n, 1)));
  if (count == 1) {
    worker();
  } else {
    std::vector<std::thread> threads;
    for (int t = 0; t < count; ++t) threads.emplace_back(worker);
    for (std::thread& t : threads) t.join();
  }
  return outcome;
}

int start_together(const std::vector<std::vector<int>>& deps, int workers) {
  const auto ready = std::count_if(deps.begin(), deps.end(), [](const std::vector<int>& d) { return d.empty(); });
  return static_cast<int>(std::min<std::ptrdiff_t>(ready, std::max(workers, 1)));
}

}  // namespace fmnist::reproduce

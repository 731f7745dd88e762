// CheckpointWriter (host/checkpoint_writer.h): writes run one at a time in submission order, off
// the caller's thread; a failed write is thrown once, at the next submit() or wait(), and settle()
// keeps it for later; last_written() names only checkpoints that were completely written.
#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "host/checkpoint_writer.h"

using namespace fmnist;

namespace {

RunState state_at(int epoch) {
  RunState st;
  st.epoch = epoch;
  return st;
}

// A write that blocks until released, so a test decides when each write ends.
struct Gate {
  std::mutex m;
  std::condition_variable cv;
  bool open = false;
  void wait() {
    std::unique_lock<std::mutex> lock(m);
    cv.wait(lock, [&] { return open; });
  }
  void release() {
    {
      std::lock_guard<std::mutex> lock(m);
      open = true;
    }
    cv.notify_all();
  }
};

}  // namespace

TEST_CASE("checkpoint writes run off the caller's thread, one at a time, in order", "[checkpoint]") {
  std::mutex m;
  std::vector<int> epochs;
  std::atomic<int> running{0}, most_running{0};
  std::vector<std::thread::id> threads;
  CheckpointWriter writer([&](const RunState& st) {
    const int now = ++running;
    int seen = most_running.load();
    while (now > seen && !most_running.compare_exchange_weak(seen, now)) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    {
      std::lock_guard<std::mutex> lock(m);
      epochs.push_back(st.epoch);
      threads.push_back(std::this_thread::get_id());
    }
    --running;
  });
  for (int e = 1; e <= 20; ++e) writer.submit(state_at(e), "epoch " + std::to_string(e));
  writer.wait();
  std::vector<int> expected;
  for (int e = 1; e <= 20; ++e) expected.push_back(e);
  CHECK(epochs == expected);
  CHECK(most_running.load() == 1);
  for (const auto& id : threads) CHECK(id != std::this_thread::get_id());
  CHECK(writer.written() == 20);
  CHECK(writer.last_written() == "epoch 20");
  CHECK(writer.write_seconds() > 0);
}

TEST_CASE("the caller goes on while a checkpoint is written, and last_written changes when it is done", "[checkpoint]") {
  Gate gate;
  std::atomic<bool> started{false};
  CheckpointWriter writer(
      [&](const RunState&) {
        started = true;
        gate.wait();
      },
      "the resumed one");
  writer.submit(state_at(1), "epoch 1");
  // submit returned while the write is blocked: the caller was not held up by it.
  while (!started) std::this_thread::yield();
  CHECK(writer.last_written() == "the resumed one");
  CHECK(writer.written() == 0);
  gate.release();
  writer.wait();
  CHECK(writer.last_written() == "epoch 1");
  CHECK(writer.written() == 1);
}

TEST_CASE("a failed checkpoint write is thrown once, at the next submit or wait", "[checkpoint]") {
  int calls = 0;
  CheckpointWriter writer([&](const RunState& st) {
    ++calls;
    if (st.epoch == 2) throw std::runtime_error("last.state.safetensors: No space left on device");
  });
  writer.submit(state_at(1), "epoch 1");
  writer.submit(state_at(2), "epoch 2");

  SECTION("at the next submit, which then writes nothing") {
    CHECK_THROWS_WITH(writer.submit(state_at(3), "epoch 3"), "last.state.safetensors: No space left on device");
    CHECK(calls == 2);
  }
  SECTION("at wait") {
    CHECK_THROWS_WITH(writer.wait(), "last.state.safetensors: No space left on device");
  }
  SECTION("settle keeps it for the next wait, and names the last good checkpoint") {
    writer.settle();
    CHECK(writer.last_written() == "epoch 1");
    CHECK_THROWS_WITH(writer.wait(), "last.state.safetensors: No space left on device");
  }
  CHECK(writer.last_written() == "epoch 1");
  CHECK(writer.written() == 1);
  CHECK_NOTHROW(writer.wait());  // thrown once
  writer.submit(state_at(4), "epoch 4");  // with room again, writing goes on
  writer.wait();
  CHECK(writer.last_written() == "epoch 4");
}

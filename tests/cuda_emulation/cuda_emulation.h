// CPU emulation of the CUDA constructs matrixnms/backends/cuda/*.cu use, for tests only (C++20, g++ >= 11).
//
// One std::thread per CUDA thread of a block; the blocks of a grid run one after another, so `__shared__`
// can be one static copy (a function-local static) per kernel. `threadIdx` / `blockIdx` are thread-locals, `blockDim`
// / `gridDim` plain globals set before the threads start. `__syncthreads` is a std::barrier over the
// block's threads, `__ballot_sync` a barrier over the warp's 32 lanes whose completion step publishes the
// OR of their predicates. Nothing else is provided: a construct the kernels start to use fails to compile
// here, and a barrier some threads never reach (a divergent ballot or __syncthreads) is a deadlock that
// the launcher's watchdog turns into an abort.
#pragma once

#include <atomic>
#include <barrier>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

struct dim3 {
    unsigned int x = 1, y = 1, z = 1;
};
using uint3 = dim3;

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static

inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline dim3 blockDim;
inline dim3 gridDim;

namespace emu {

struct Warp {
    struct Publish {
        Warp* warp;
        void operator()() noexcept { warp->result = warp->pending.exchange(0u); }
    };
    std::atomic<unsigned int> pending{0u};
    unsigned int result = 0u;
    std::ptrdiff_t size;
    std::barrier<Publish> lanes;
    explicit Warp(std::ptrdiff_t n) : size(n), lanes(n, Publish{this}) {}
};

struct Block {
    std::barrier<> threads;
    std::vector<std::unique_ptr<Warp>> warps;
    explicit Block(std::ptrdiff_t n) : threads(n) {
        for (std::ptrdiff_t first = 0; first < n; first += 32) {
            warps.push_back(std::make_unique<Warp>(n - first < 32 ? n - first : 32));
        }
    }
};

inline thread_local Block* block = nullptr;
inline thread_local unsigned int linear = 0;  // the thread's index in its block

[[noreturn]] inline void fail(const char* what) {
    std::fprintf(stderr, "cuda emulation: %s\n", what);
    std::fflush(stderr);
    std::abort();
}

// Runs `body` (the kernel call) once per thread of every block. One std::thread per thread of a block; the
// same threads run the blocks one after another, a barrier apart, so no two blocks overlap (as if the GPU
// had room for one block at a time). Aborts when the grid has not finished after `timeout_s` seconds
// (threads waiting at a barrier that others never reach).
template <class Body>
void launch(dim3 grid, dim3 threads, double timeout_s, Body body) {
    unsigned int n = threads.x * threads.y * threads.z;
    if (n == 0 || n > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0) fail("invalid launch configuration");
    gridDim = grid;
    blockDim = threads;
    Block shared_block(n);
    std::barrier<> between_blocks(n);
    std::mutex lock;
    std::condition_variable done;
    unsigned int finished = 0;
    std::vector<std::thread> pool;
    pool.reserve(n);
    for (unsigned int t = 0; t < n; ++t) {
        pool.emplace_back([&, t] {
            block = &shared_block;
            linear = t;
            threadIdx = {t % threads.x, t / threads.x % threads.y, t / (threads.x * threads.y)};
            for (unsigned int bz = 0; bz < grid.z; ++bz)
                for (unsigned int by = 0; by < grid.y; ++by)
                    for (unsigned int bx = 0; bx < grid.x; ++bx) {
                        blockIdx = {bx, by, bz};
                        body();
                        between_blocks.arrive_and_wait();
                    }
            std::lock_guard<std::mutex> guard(lock);
            ++finished;
            done.notify_one();
        });
    }
    {
        std::unique_lock<std::mutex> guard(lock);
        if (!done.wait_for(guard, std::chrono::duration<double>(timeout_s), [&] { return finished == n; }))
            fail("the grid did not finish: threads wait at a barrier others never reach (deadlock)");
    }
    for (auto& thread : pool) thread.join();
}

}  // namespace emu

inline void __syncthreads() { emu::block->threads.arrive_and_wait(); }

inline unsigned int __ballot_sync(unsigned int mask, int predicate) {
    emu::Warp& warp = *emu::block->warps[emu::linear / 32];
    if (mask != 0xffffffffu) emu::fail("__ballot_sync: only full-warp masks are emulated");
    if (warp.size != 32) emu::fail("__ballot_sync: full mask in a partial warp");
    if (predicate) warp.pending.fetch_or(1u << (emu::linear % 32));
    warp.lanes.arrive_and_wait();  // the completion step has published the OR of all 32 lanes
    return warp.result;
}

inline int __popc(unsigned int x) { return __builtin_popcount(x); }

// Block execution: runs a grid on the calling thread, one block after another.
//
// A kernel whose source has no barrier, shuffle or vote runs its threads one after another as plain calls. Any
// other runs each thread of a block as a fiber (ucontext) under a scheduler: a thread runs until it reaches a
// barrier or finishes, and a barrier releases its threads when every unfinished thread it waits for has arrived:
// - __syncthreads waits for every unfinished thread of the block;
// - a warp barrier (__syncwarp, and each shuffle and vote) waits for the unfinished lanes of its mask in its warp
//   (32 consecutive linear thread ids, x fastest). A shuffle or vote parks with its value, and the release hands
//   every lane of the group the values of all of them, so a fast lane cannot overwrite its value before a slow
//   lane read it.
// The scheduler makes passes in linear thread order; a parking thread switches straight to the next runnable one,
// so a park costs one context switch.
// Threads that wait for each other at different barriers can never go on: the launch fails with
// CUDA_ERROR_LAUNCH_FAILED and a report of who waits where, instead of hanging.
//
// A fault while the kernel runs (a wild pointer, reading past the dynamic shared memory, a stack overflow) ends the
// launch with CUDA_ERROR_ILLEGAL_ADDRESS and a report of the thread and the address; __trap and assert end it with
// CUDA_ERROR_LAUNCH_FAILED and CUDA_ERROR_ASSERT. Unlike on a GPU, these errors are not sticky.
#include "internal.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string>

namespace aidge_emu {
namespace {

constexpr size_t kStackBytes = 128 * 1024;  // per emulated thread; kernels keep little on their stacks
constexpr size_t kSignalStackBytes = 64 * 1024;

enum class State : unsigned char { runnable, at_block_barrier, at_warp_barrier, finished };

struct Thread {
    ucontext_t context;
    State state;
    unsigned mask;                 // at a warp barrier: the lanes it waits for
    unsigned released;             // the lanes released with it from its last warp barrier
    unsigned long long exchanged;  // at a shuffle or vote: its value
    unsigned long long* received;  // at a shuffle or vote: where the release writes the group's values, else null
};

struct Launch {
    const Function* function;
    void** params;
    unsigned threads;  // per block
    bool fibers;
    unsigned current;  // the running thread's linear id
    unsigned finished;
    ucontext_t scheduler;
    ucontext_t pristine;  // from getcontext, the starting point of every fiber
    sigjmp_buf recover;  // where a failing launch jumps back to, from any fiber
    char failure[1024];
};

AidgeEmuRuntime g_runtime;
Launch g_launch;
Thread g_threads[kMaxThreadsPerBlock];

// Allocated once, reused by every launch.
char* g_stacks = nullptr;   // kMaxThreadsPerBlock stacks, each above an inaccessible guard page
char* g_shared_end = nullptr;  // the page after the dynamic shared memory, inaccessible
char* g_signal_stack = nullptr;

// For the fault handler, which may only look at plain globals.
volatile sig_atomic_t g_in_kernel = 0;
pthread_t g_kernel_thread;
void* volatile g_fault_address = nullptr;
volatile int g_fault_signal = 0;

size_t page_size() {
    static const size_t size = size_t(sysconf(_SC_PAGESIZE));
    return size;
}

size_t stack_slot() { return kStackBytes + page_size(); }

char* map_or_die(size_t bytes) {
    void* memory = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (memory == MAP_FAILED) {
        report("cannot map %zu bytes for the launch machinery", bytes);
        abort();
    }
    return static_cast<char*>(memory);
}

void prepare_memory() {
    if (g_stacks) return;
    g_stacks = map_or_die(stack_slot() * kMaxThreadsPerBlock);
    for (int i = 0; i < kMaxThreadsPerBlock; ++i) mprotect(g_stacks + stack_slot() * size_t(i), page_size(), PROT_NONE);
    size_t shared_bytes = (size_t(kMaxDynamicShared) + page_size() - 1) / page_size() * page_size();
    char* shared = map_or_die(shared_bytes + page_size());
    g_shared_end = shared + shared_bytes;
    mprotect(g_shared_end, page_size(), PROT_NONE);
    g_signal_stack = map_or_die(kSignalStackBytes);
    getcontext(&g_launch.pristine);
}

const char* name() { return g_launch.function->name.c_str(); }

void set_thread(unsigned linear) {
    const AidgeEmuIndex& block = g_runtime.block_dim;
    g_launch.current = linear;
    g_runtime.thread_idx = AidgeEmuIndex{linear % block.x, linear / block.x % block.y, linear / (block.x * block.y)};
    g_runtime.lane = linear & 31u;
}

// Ends the launch from wherever it is (a fiber, the scheduler, a plain call): the message names the kernel, the
// block and the running thread.
[[noreturn]] void fail(int code, const char* format, ...) __attribute__((format(printf, 2, 3)));
void fail(int code, const char* format, ...) {
    const AidgeEmuIndex& b = g_runtime.block_idx;
    const AidgeEmuIndex& t = g_runtime.thread_idx;
    size_t used = size_t(snprintf(g_launch.failure, sizeof g_launch.failure, "kernel %s, block (%u, %u, %u), "
                                  "thread (%u, %u, %u): ", name(), b.x, b.y, b.z, t.x, t.y, t.z));
    if (used >= sizeof g_launch.failure) used = sizeof g_launch.failure - 1;
    va_list args;
    va_start(args, format);
    vsnprintf(g_launch.failure + used, sizeof g_launch.failure - used, format, args);
    va_end(args);
    siglongjmp(g_launch.recover, code);
}

// ---------------------------------------------------------------------------------------------------------------
// The hooks kernels call through aidge_emu_runtime.

void require_fibers(const char* what) {
    if (!g_launch.fibers)
        fail(CUDA_ERROR_LAUNCH_FAILED, "%s, but its source names no barrier, shuffle or vote, so its threads ran "
             "without fibers (call the intrinsic by its name, not through a macro pasted from pieces)", what);
}

void check_mask(unsigned mask, const char* what) {
    if (!(mask >> g_runtime.lane & 1u))
        fail(CUDA_ERROR_LAUNCH_FAILED, "%s with mask 0x%08x, which leaves out the calling lane %u", what, mask,
             g_runtime.lane);
}

// The context of the first runnable thread from `start` on, made current, or the scheduler's when none is left: the
// pass is over.
ucontext_t* next_context(unsigned start) {
    for (unsigned t = start; t < g_launch.threads; ++t) {
        if (g_threads[t].state == State::runnable) {
            set_thread(t);
            return &g_threads[t].context;
        }
    }
    return &g_launch.scheduler;
}

void park(State state, unsigned mask, unsigned long long* received) {
    unsigned self = g_launch.current;
    Thread& thread = g_threads[self];
    thread.state = state;
    thread.mask = mask;
    thread.received = received;
    swapcontext(&thread.context, next_context(self + 1));
}

void hook_sync_block() {
    require_fibers("__syncthreads");
    park(State::at_block_barrier, 0, nullptr);
}

void hook_sync_warp(unsigned mask) {
    require_fibers("__syncwarp");
    check_mask(mask, "__syncwarp");
    park(State::at_warp_barrier, mask, nullptr);
}

unsigned hook_warp_exchange(unsigned mask, unsigned long long value, unsigned long long* values) {
    require_fibers("a shuffle or vote");
    check_mask(mask, "a shuffle or vote");
    Thread& self = g_threads[g_launch.current];
    self.exchanged = value;
    park(State::at_warp_barrier, mask, values);
    return self.released;
}

// The lanes of the caller's warp that exist and have not finished.
unsigned live_lanes(unsigned first) {
    unsigned live = 0;
    for (unsigned lane = 0; lane < 32 && first + lane < g_launch.threads; ++lane)
        if (g_threads[first + lane].state != State::finished) live |= 1u << lane;
    return live;
}

unsigned hook_active_mask() {
    unsigned first = g_launch.current & ~31u;
    if (g_launch.fibers) return live_lanes(first);
    unsigned count = g_launch.threads - first < 32 ? g_launch.threads - first : 32;
    return count == 32 ? ~0u : (1u << count) - 1;
}

void hook_trap(int code, const char* what, const char* file, int line) {
    if (line > 0) fail(code, "%s (%s:%d)", what, file, line);
    fail(code, "%s", what);
}

// ---------------------------------------------------------------------------------------------------------------
// Fibers.

void fiber_main() {
    unsigned self = g_launch.current;
    g_launch.function->entry(g_launch.params);
    g_threads[self].state = State::finished;
    ++g_launch.finished;
    setcontext(next_context(self + 1));
}

// Releases every warp barrier whose lanes have all arrived; true when one did.
bool release_warp_barriers() {
    bool released = false;
    for (unsigned first = 0; first < g_launch.threads; first += 32) {
        unsigned live = live_lanes(first);
        for (unsigned lane = 0; first + lane < g_launch.threads && lane < 32; ++lane) {
            Thread& waiting = g_threads[first + lane];
            if (waiting.state != State::at_warp_barrier) continue;
            unsigned group = waiting.mask & live;
            bool complete = true;
            for (unsigned other = 0; other < 32 && complete; ++other)
                if (group >> other & 1u) complete = g_threads[first + other].state == State::at_warp_barrier;
            if (!complete) continue;
            for (unsigned other = 0; other < 32; ++other) {
                if (!(group >> other & 1u)) continue;
                Thread& member = g_threads[first + other];
                member.state = State::runnable;
                member.released = group;
                if (!member.received) continue;
                for (unsigned source = 0; source < 32; ++source)
                    if (group >> source & 1u) member.received[source] = g_threads[first + source].exchanged;
            }
            released = true;
        }
    }
    return released;
}

bool release_block_barrier() {
    for (unsigned t = 0; t < g_launch.threads; ++t)
        if (g_threads[t].state != State::finished && g_threads[t].state != State::at_block_barrier) return false;
    for (unsigned t = 0; t < g_launch.threads; ++t)
        if (g_threads[t].state == State::at_block_barrier) g_threads[t].state = State::runnable;
    return true;
}

// "threads 0-3, 7 at __syncthreads; ..." for the deadlock report.
std::string describe_waits() {
    std::string text;
    auto describe = [&](State state, unsigned mask, const char* where) {
        std::string ids;
        unsigned t = 0;
        while (t < g_launch.threads) {
            auto waits = [&](unsigned i) {
                return g_threads[i].state == state && (state != State::at_warp_barrier || g_threads[i].mask == mask);
            };
            if (!waits(t)) {
                ++t;
                continue;
            }
            unsigned last = t;
            while (last + 1 < g_launch.threads && waits(last + 1)) ++last;
            ids += (ids.empty() ? "" : ", ") + std::to_string(t) + (last > t ? "-" + std::to_string(last) : "");
            t = last + 1;
        }
        if (ids.empty()) return;
        char line[96];
        snprintf(line, sizeof line, where, mask);
        text += (text.empty() ? "threads " : "; threads ") + ids + " " + line;
    };
    describe(State::at_block_barrier, 0, "wait at __syncthreads");
    unsigned seen[kMaxThreadsPerBlock];
    unsigned masks = 0;
    for (unsigned t = 0; t < g_launch.threads; ++t) {
        if (g_threads[t].state != State::at_warp_barrier) continue;
        bool known = false;
        for (unsigned i = 0; i < masks && !known; ++i) known = seen[i] == g_threads[t].mask;
        if (known) continue;
        seen[masks++] = g_threads[t].mask;
        describe(State::at_warp_barrier, g_threads[t].mask, "wait at a warp barrier (mask 0x%08x)");
    }
    return text + "; " + std::to_string(g_launch.finished) + " of " + std::to_string(g_launch.threads) + " finished";
}

void run_block_as_fibers() {
    for (unsigned t = 0; t < g_launch.threads; ++t) {
        Thread& thread = g_threads[t];
        thread.context = g_launch.pristine;
        thread.context.uc_stack.ss_sp = g_stacks + stack_slot() * t + page_size();
        thread.context.uc_stack.ss_size = kStackBytes;
        thread.context.uc_link = nullptr;
        makecontext(&thread.context, fiber_main, 0);
        thread.state = State::runnable;
        thread.released = 0;
    }
    g_launch.finished = 0;
    for (;;) {
        swapcontext(&g_launch.scheduler, next_context(0));  // a pass: every runnable thread runs until it parks
        if (g_launch.finished == g_launch.threads) return;
        if (!release_warp_barriers() && !release_block_barrier()) {
            std::string waits = describe_waits();
            snprintf(g_launch.failure, sizeof g_launch.failure,
                     "kernel %s, block (%u, %u, %u): deadlock, no thread can go on: %s", name(),
                     g_runtime.block_idx.x, g_runtime.block_idx.y, g_runtime.block_idx.z, waits.c_str());
            siglongjmp(g_launch.recover, CUDA_ERROR_LAUNCH_FAILED);
        }
    }
}

void run_block_as_calls() {
    for (unsigned t = 0; t < g_launch.threads; ++t) {
        set_thread(t);
        g_launch.function->entry(g_launch.params);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Faults. Handlers are installed for the duration of a launch only; a fault of another thread goes to the handler
// that was there before.

struct sigaction g_previous[3];
constexpr int kFaultSignals[3] = {SIGSEGV, SIGBUS, SIGFPE};

void restore_handlers() {
    for (int i = 0; i < 3; ++i) sigaction(kFaultSignals[i], &g_previous[i], nullptr);
}

void on_fault(int signal, siginfo_t* info, void*) {
    if (!g_in_kernel || !pthread_equal(pthread_self(), g_kernel_thread)) {
        restore_handlers();  // the faulting instruction runs again, under the previous handler
        return;
    }
    g_fault_signal = signal;
    g_fault_address = info->si_addr;
    siglongjmp(g_launch.recover, signal == SIGFPE ? CUDA_ERROR_LAUNCH_FAILED : CUDA_ERROR_ILLEGAL_ADDRESS);
}

class FaultHandlers {
public:
    FaultHandlers() {
        stack_t alternate{};
        alternate.ss_sp = g_signal_stack;
        alternate.ss_size = kSignalStackBytes;
        sigaltstack(&alternate, &previous_stack_);  // a stack overflow leaves no stack to handle the fault on
        struct sigaction action {};
        action.sa_sigaction = on_fault;
        action.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&action.sa_mask);
        for (int i = 0; i < 3; ++i) sigaction(kFaultSignals[i], &action, &g_previous[i]);
        g_kernel_thread = pthread_self();
    }
    ~FaultHandlers() {
        g_in_kernel = 0;
        restore_handlers();
        sigaltstack(&previous_stack_, nullptr);
    }

private:
    stack_t previous_stack_;
};

void describe_fault() {
    const AidgeEmuIndex& b = g_runtime.block_idx;
    const AidgeEmuIndex& t = g_runtime.thread_idx;
    uintptr_t address = reinterpret_cast<uintptr_t>(g_fault_address);
    uintptr_t stacks = reinterpret_cast<uintptr_t>(g_stacks);
    uintptr_t shared_end = reinterpret_cast<uintptr_t>(g_shared_end);
    std::string what;
    if (g_fault_signal == SIGFPE)
        what = "arithmetic fault (an integer division by zero?), which a GPU would not trap";
    else if (address >= stacks && address < stacks + stack_slot() * kMaxThreadsPerBlock &&
             (address - stacks) % stack_slot() < page_size())
        what = "stack overflow of the emulated thread (more than " + std::to_string(kStackBytes / 1024) + " KiB)";
    else if (address >= shared_end && address < shared_end + page_size())
        what = "access past the end of the launch's " +
               std::to_string(shared_end - reinterpret_cast<uintptr_t>(g_runtime.dynamic_shared)) +
               " bytes of dynamic shared memory (sharedMemBytes rounded up to 16)";
    else {
        char hex[32];
        snprintf(hex, sizeof hex, "0x%llx", (unsigned long long)address);
        what = std::string("invalid access at ") + hex + ": " + describe_address(address);
    }
    snprintf(g_launch.failure, sizeof g_launch.failure, "kernel %s, block (%u, %u, %u), thread (%u, %u, %u): %s",
             name(), b.x, b.y, b.z, t.x, t.y, t.z, what.c_str());
}

}  // namespace

AidgeEmuRuntime* runtime() {
    g_runtime.sync_block = hook_sync_block;
    g_runtime.sync_warp = hook_sync_warp;
    g_runtime.warp_exchange = hook_warp_exchange;
    g_runtime.active_mask = hook_active_mask;
    g_runtime.trap = hook_trap;
    return &g_runtime;
}

int run_grid(const Function& function, AidgeEmuIndex grid, AidgeEmuIndex block, unsigned shared_bytes,
             void** params) {
    prepare_memory();
    g_launch.function = &function;
    g_launch.params = params;
    g_launch.threads = block.x * block.y * block.z;
    g_launch.fibers = function.uses_barriers;
    g_runtime.grid_dim = grid;
    g_runtime.block_dim = block;
    g_runtime.block_idx = AidgeEmuIndex{0, 0, 0};
    g_runtime.thread_idx = AidgeEmuIndex{0, 0, 0};
    size_t shared_span = (size_t(shared_bytes) + 15) / 16 * 16;
    g_runtime.dynamic_shared = g_shared_end - shared_span;
    g_fault_signal = 0;

    FaultHandlers handlers;
    if (int status = sigsetjmp(g_launch.recover, 1)) {
        g_in_kernel = 0;
        if (status == CUDA_ERROR_ILLEGAL_ADDRESS || g_fault_signal == SIGFPE) describe_fault();
        report("%s", g_launch.failure);
        return status;
    }
    g_in_kernel = 1;
    for (unsigned z = 0; z < grid.z; ++z) {
        for (unsigned y = 0; y < grid.y; ++y) {
            for (unsigned x = 0; x < grid.x; ++x) {
                g_runtime.block_idx = AidgeEmuIndex{x, y, z};
                memset(g_runtime.dynamic_shared, 0xFF, shared_span);  // shared memory starts undefined
                if (g_launch.fibers) run_block_as_fibers();
                else run_block_as_calls();
            }
        }
    }
    g_in_kernel = 0;
    return CUDA_SUCCESS;
}

}  // namespace aidge_emu

import CAidgePlatform
import Synchronization

/// Work spread over cores by a `WorkerPool` of one thread per core beyond the caller's: never a thread per
/// operator.
public enum Parallel {
    private static let limit = Atomic<Int>(0)

    /// Threads kernels may use (default: every core this process may run on).
    public static var threads: Int {
        get {
            let n = limit.load(ordering: .relaxed)
            return n > 0 ? n : defaultThreads
        }
        set { limit.store(max(newValue, 0), ordering: .relaxed) }
    }

    /// The cores of the process's CPU affinity (a container or `taskset` may give it fewer than the machine has).
    static let defaultThreads = max(Int(aidge_cpu_available_cores()), 1)

    /// Workers beside the calling thread, started on first use.
    static let pool = WorkerPool(workers: defaultThreads - 1)

    /// Runs parallel work on the process's OpenMP threads (PyTorch's, when the engine runs inside it) instead of
    /// the engine's workers, so that the two runtimes do not compete for the cores; returns whether it does (the
    /// process must have an OpenMP runtime loaded). `false` goes back to the engine's workers.
    @discardableResult
    public static func shareOpenMPThreads(_ on: Bool) -> Bool { OpenMPTeam.share(on) }

    /// Whether parallel work runs on the process's OpenMP threads.
    public static var sharesOpenMPThreads: Bool { OpenMPTeam.isEnabled }

    /// Runs `body(c)` for every `c` in `0..<chunks`, each on its own thread when there are enough.
    private static func run(chunks: Int, _ body: (Int) -> Void) {
        if OpenMPTeam.isEnabled {
            OpenMPTeam.run(chunks: chunks, body)
        } else {
            pool.run(chunks: chunks, body)
        }
    }

    /// Calls `body` on disjoint ranges covering `0..<count`, each at least `grain` long, on up to `threads` cores.
    public static func forEach(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        let chunks = min(threads, count / max(grain, 1))
        if chunks <= 1 {
            if count > 0 { body(0..<count) }
            return
        }
        // Each chunk gets a disjoint range; kernels write disjoint outputs per range.
        run(chunks: chunks) { c in
            let start = count * c / chunks
            let end = count * (c + 1) / chunks
            if start < end { body(start..<end) }
        }
    }

    /// Calls `body(slot, item)` for every item of `0..<items` on up to `slots` threads, each with its own `slot`
    /// index (for per-thread scratch). Items are handed out one at a time as threads become free, so a thread
    /// that the system holds back (another runtime's threads spinning in the same process, a busy machine) does
    /// not hold the others back as a static split would.
    public static func forEachItem(_ items: Int, slots: Int, _ body: (_ slot: Int, _ item: Int) -> Void) {
        let slots = min(slots, threads, items)
        if slots <= 1 {
            for item in 0..<items { body(0, item) }
            return
        }
        let next = Atomic<Int>(0)
        run(chunks: slots) { slot in
            while true {
                let item = next.add(1, ordering: .relaxed).oldValue
                if item >= items { return }
                body(slot, item)
            }
        }
    }
}

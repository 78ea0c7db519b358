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

    /// Calls `body` on disjoint ranges covering `0..<count`, each at least `grain` long, on up to `threads` cores.
    public static func forEach(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        let chunks = min(threads, count / max(grain, 1))
        if chunks <= 1 {
            if count > 0 { body(0..<count) }
            return
        }
        // Each chunk gets a disjoint range; kernels write disjoint outputs per range.
        pool.run(chunks: chunks) { c in
            let start = count * c / chunks
            let end = count * (c + 1) / chunks
            if start < end { body(start..<end) }
        }
    }
}

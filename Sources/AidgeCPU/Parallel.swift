import Dispatch
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Work spread over cores with `DispatchQueue.concurrentPerform`: never a thread per operator.
public enum Parallel {
    private static let limit = Atomic<Int>(0)

    /// Threads kernels may use (default: every available core).
    public static var threads: Int {
        get {
            let n = limit.load(ordering: .relaxed)
            return n > 0 ? n : defaultThreads
        }
        set { limit.store(max(newValue, 0), ordering: .relaxed) }
    }

    static let defaultThreads: Int = {
        max(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), 1)
    }()

    /// Calls `body` on disjoint ranges covering `0..<count`, each at least `grain` long, on up to `threads` cores.
    @inlinable
    public static func forEach(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        let chunks = min(threads, count / max(grain, 1))
        if chunks <= 1 {
            if count > 0 { body(0..<count) }
            return
        }
        withoutActuallyEscaping(body) { body in
            // Each call gets a disjoint range; kernels write disjoint outputs per range, so sharing is sound.
            nonisolated(unsafe) let body = body
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                let start = count * c / chunks
                let end = count * (c + 1) / chunks
                if start < end { body(start..<end) }
            }
        }
    }
}

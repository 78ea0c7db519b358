import CAidgePlatform
import Synchronization

/// Parallel work run on the OpenMP threads of the process instead of the engine's own workers.
///
/// Inside PyTorch, PyTorch's OpenMP threads keep spinning for milliseconds after each of its parallel operators
/// (the loss, the optimizer step), so the engine's workers would share the cores with them: a training step
/// through `aidge.torch.wrap` then ran its kernels about 1.4 times slower than alone. On PyTorch's own threads the
/// two runtimes take turns instead.
enum OpenMPTeam {
    private static let enabled = Atomic<Bool>(false)

    /// Whether parallel work goes to the OpenMP runtime.
    static var isEnabled: Bool { enabled.load(ordering: .relaxed) }

    /// Turns the sharing on (when the process has an OpenMP runtime loaded) or off; returns whether it is on.
    static func share(_ on: Bool) -> Bool {
        let sharing = on && aidge_openmp_available() != 0
        enabled.store(sharing, ordering: .relaxed)
        return sharing
    }

    /// A posted job: `chunks` calls of `body`, taken in turn by the team's threads.
    private final class Job {
        let body: (Int) -> Void
        let chunks: Int
        let next = Atomic<Int>(0)

        init(body: @escaping (Int) -> Void, chunks: Int) {
            self.body = body
            self.chunks = chunks
        }
    }

    /// Runs `body(c)` for every `c` in `0..<chunks` on a team of `chunks` threads, the caller included.
    static func run(chunks: Int, _ body: (Int) -> Void) {
        withoutActuallyEscaping(body) { body in
            // The job lives until the team has joined, inside this call.
            let job = Job(body: body, chunks: chunks)
            withExtendedLifetime(job) {
                aidge_openmp_parallel(
                    { raw in
                        guard let raw else { return }
                        let job = Unmanaged<Job>.fromOpaque(raw).takeUnretainedValue()
                        while true {
                            let c = job.next.add(1, ordering: .relaxed).oldValue
                            if c >= job.chunks { return }
                            job.body(c)
                        }
                    }, Unmanaged.passUnretained(job).toOpaque(), UInt32(chunks))
            }
        }
    }
}

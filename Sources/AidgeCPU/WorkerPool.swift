import CAidgePlatform
import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Persistent worker threads that spin briefly between jobs, so the many short parallel kernels of one
/// inference do not each pay for waking parked threads (which `DispatchQueue.concurrentPerform` does).
///
/// One job runs at a time: the posting thread takes chunks too, and a call made while the pool is busy (a nested
/// call, or another thread's) runs on its caller alone. A worker registers itself (`inFlight`) under the lock
/// before it touches a job, and the poster clears the job and waits for `inFlight` to drop to zero before it
/// returns, so no worker keeps a job's closure past its call.
final class WorkerPool: Sendable {
    /// A posted job: `chunks` calls of `body`, handed out by `next`.
    private struct Job {
        let body: (Int) -> Void
        let chunks: Int
    }

    /// How long a worker spins for the next job before it parks: long enough to bridge the gaps between the
    /// kernels of one run, short enough to give the core back soon after the run (another runtime's threads in
    /// the same process, such as PyTorch's between our forward and backward, need it).
    private static let spinNanoseconds: UInt64 = 100_000

    let workerCount: Int
    /// Guards `job`; held only to publish, clear, or take the job.
    private let lock = Mutex<Void>(())
    nonisolated(unsafe) private var job: Job?
    private let generation = Atomic<Int>(0)
    private let next = Atomic<Int>(0)
    private let inFlight = Atomic<Int>(0)
    private let busy = Atomic<Bool>(false)
    private let sleepers = Atomic<Int>(0)
    private let wake = DispatchSemaphore(value: 0)

    init(workers: Int) {
        workerCount = max(workers, 0)
        for _ in 0..<workerCount {
            Thread.detach { [self] in self.work() }
        }
    }

    /// Runs `body(c)` for every `c` in `0..<chunks` on the caller and the workers; returns when all are done.
    func run(chunks: Int, _ body: (Int) -> Void) {
        guard workerCount > 0, chunks > 1, busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged
        else {
            for c in 0..<chunks { body(c) }
            return
        }
        withoutActuallyEscaping(body) { body in
            // The closure lives in `job` only until this call returns (see the type's comment).
            nonisolated(unsafe) let body = body
            lock.withLock { _ in
                next.store(0, ordering: .relaxed)
                job = Job(body: body, chunks: chunks)
            }
            generation.add(1, ordering: .sequentiallyConsistent)
            let parked = sleepers.exchange(0, ordering: .sequentiallyConsistent)
            for _ in 0..<parked { wake.signal() }
            while true {
                let c = next.add(1, ordering: .relaxed).oldValue
                if c >= chunks { break }
                body(c)
            }
            lock.withLock { _ in job = nil }
            while inFlight.load(ordering: .acquiring) > 0 { aidge_cpu_pause() }
        }
        busy.store(false, ordering: .releasing)
    }

    private func work() {
        var seen = generation.load(ordering: .acquiring)
        while true {
            var spins = 0
            var deadline: UInt64 = 0
            while generation.load(ordering: .acquiring) == seen {
                spins += 1
                if spins & 255 != 0 {
                    aidge_cpu_pause()
                    continue
                }
                let now = DispatchTime.now().uptimeNanoseconds
                if deadline == 0 { deadline = now + Self.spinNanoseconds }
                if now < deadline { continue }
                sleepers.add(1, ordering: .sequentiallyConsistent)
                if generation.load(ordering: .sequentiallyConsistent) == seen { wake.wait() }
                spins = 0
                deadline = 0
            }
            seen = generation.load(ordering: .acquiring)
            runPostedChunks()
        }
    }

    /// Takes chunks of the current job, if there is one, until none are left.
    private func runPostedChunks() {
        if takeChunks() { inFlight.subtract(1, ordering: .releasing) }
    }

    /// The part of `runPostedChunks` that holds the job: kept out of line so that the closure is released when it
    /// returns, before the worker signs off. Returns whether there was a job.
    @inline(never)
    private func takeChunks() -> Bool {
        guard let current = lock.withLock({ _ -> Job? in
            if job != nil { inFlight.add(1, ordering: .relaxed) }
            return job
        }) else { return false }
        while true {
            let c = next.add(1, ordering: .relaxed).oldValue
            if c >= current.chunks { return true }
            current.body(c)
        }
    }
}

/// A detached POSIX thread running a closure.
enum Thread {
    static func detach(_ body: @escaping @Sendable () -> Void) {
        final class Box: Sendable {
            let body: @Sendable () -> Void
            init(_ body: @escaping @Sendable () -> Void) { self.body = body }
        }
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        var thread = pthread_t()
        let created = pthread_create(&thread, nil, { raw in
            guard let raw else { return nil }
            let box = Unmanaged<Box>.fromOpaque(raw).takeRetainedValue()
            box.body()
            return nil
        }, box)
        if created == 0 { pthread_detach(thread) } else { Unmanaged<Box>.fromOpaque(box).release() }
    }
}

import Synchronization

/// Arenas of one size kept for reuse: a recorded run takes one and gives it back when its record dies, so a
/// training loop allocates no arena after its first step.
final class StoragePool: Sendable {
    private let free = Mutex<[Storage]>([])
    /// Arenas kept at most (more are freed).
    private let limit = 4

    func take(byteCount: Int, on memory: (any DeviceMemory)?) throws -> Storage {
        if let s = free.withLock({ $0.popLast() }), s.byteCount == byteCount { return s }
        return try Plan.allocate(byteCount, on: memory)
    }

    func give(_ storage: Storage) {
        free.withLock { if $0.count < limit { $0.append(storage) } }
    }
}

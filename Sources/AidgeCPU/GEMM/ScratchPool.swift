import Synchronization

/// Scratch memory shared by all kernels: a few aligned buffers handed out for the length of one call and given
/// back, so that a plan with many convolutions does not hold one packing buffer per node.
///
/// Kernels reserve what they need when they are built; a run then takes a buffer without allocating (unless two
/// runs overlap, when the second gets a buffer of its own once).
final class ScratchPool: Sendable {
    static let shared = ScratchPool()

    private let free = Mutex<[AlignedBuffer]>([])

    /// Makes sure one buffer of at least `floats` floats is available.
    func reserve(floats: Int) {
        let buffer = take(floats)
        give(buffer)
    }

    /// Calls `body` with at least `floats` floats of 64-byte aligned scratch (contents undefined).
    @inline(__always)
    func with<R>(floats: Int, _ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        let buffer = take(floats)
        defer { give(buffer) }
        return try body(buffer.pointer)
    }

    private func take(_ floats: Int) -> AlignedBuffer {
        let found: AlignedBuffer? = free.withLock { list in
            if let i = list.firstIndex(where: { $0.count >= floats }) { return list.remove(at: i) }
            return list.isEmpty ? nil : list.removeLast()  // too small: dropped and replaced below
        }
        if let found, found.count >= floats { return found }
        return AlignedBuffer(count: floats)
    }

    private func give(_ buffer: AlignedBuffer) {
        free.withLock { list in
            list.append(buffer)
            if list.count > 8 {
                // Keep the largest few.
                list.sort { $0.count > $1.count }
                list.removeLast(list.count - 8)
            }
        }
    }
}

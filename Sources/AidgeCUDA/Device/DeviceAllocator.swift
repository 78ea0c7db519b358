import AidgeCore
import Synchronization

/// A caching allocator of device memory: freed blocks are kept by size and handed out again, because
/// `cuMemAlloc`/`cuMemFree` synchronise the device. Blocks are reused in stream order, as PyTorch's allocator
/// does: a block freed while kernels of the current stream still use it is only taken by work queued after them.
final class DeviceAllocator: Sendable {
    private let driver: Driver
    private let device: Device
    private let free = Mutex<[Int: [CUdeviceptr]]>([:])
    /// Bytes held in cached (free) blocks.
    private let cachedBytes = Atomic<Int>(0)

    init(driver: Driver, device: Device) {
        self.driver = driver
        self.device = device
    }

    /// Sizes are rounded so that blocks of near sizes are interchangeable: to 512 bytes below 1 MiB, to 2 MiB
    /// above.
    static func rounded(_ byteCount: Int) -> Int {
        let small = 512, large = 2 << 20
        let n = max(byteCount, 1)
        return n < (1 << 20) ? (n + small - 1) / small * small : (n + large - 1) / large * large
    }

    /// A storage of at least `byteCount` bytes on the device; the context must be current.
    func allocate(byteCount: Int) throws -> Storage {
        let size = Self.rounded(byteCount)
        var address = free.withLock { $0[size]?.popLast() } ?? 0
        if address != 0 {
            cachedBytes.subtract(size, ordering: .relaxed)
        } else {
            var status = driver.memoryAllocate(&address, size)
            if status == 2 /* CUDA_ERROR_OUT_OF_MEMORY */ {
                try emptyCache()
                status = driver.memoryAllocate(&address, size)
            }
            try driver.check(status, "allocating \(size) bytes on \(device)")
        }
        guard let pointer = UnsafeMutableRawPointer(bitPattern: UInt(address)) else {
            throw AidgeError.device("CUDA returned a null block for \(size) bytes")
        }
        return Storage(borrowing: pointer, byteCount: byteCount, device: device, owner: self) { [self] pointer in
            self.recycle(CUdeviceptr(UInt(bitPattern: pointer)), size: size)
        }
    }

    private func recycle(_ address: CUdeviceptr, size: Int) {
        free.withLock { $0[size, default: []].append(address) }
        cachedBytes.add(size, ordering: .relaxed)
    }

    /// Bytes kept in free blocks.
    var cached: Int { cachedBytes.load(ordering: .relaxed) }

    /// Gives every free block back to the driver.
    func emptyCache() throws {
        let blocks = free.withLock { table in
            defer { table = [:] }
            return table
        }
        for (size, addresses) in blocks {
            for address in addresses {
                cachedBytes.subtract(size, ordering: .relaxed)
                try driver.check(driver.memoryFree(address), "freeing device memory")
            }
        }
    }
}

import AidgeCore

/// One argument of a kernel launch, as the kernel's C signature declares it.
enum KernelArgument {
    case pointer(UnsafeMutableRawPointer)
    /// A null pointer (an optional output that is not wanted).
    case null
    case int32(Int32)
    case int64(Int64)
    case float(Float)
    case double(Double)
    /// Up to 8 dimensions or strides, passed by value as the prelude-free `struct { i64 v[8]; }`.
    case dims([Int])

    static func tensor(_ t: Tensor) -> KernelArgument { .pointer(t.rawPointer) }
}

/// The most dimensions a kernel that walks shapes takes (`KernelArgument.dims`).
let maxKernelRank = 8

extension CUDADevice {
    /// Queues `function` on the current stream over `grid` blocks of `block` threads.
    func launch(
        _ function: OpaquePointer?, grid: (Int, Int, Int), block: (Int, Int, Int), sharedBytes: Int = 0,
        _ arguments: [KernelArgument], name: @autoclosure () -> String
    ) throws {
        guard grid.0 > 0, grid.1 > 0, grid.2 > 0 else { return }
        // Each argument in its own 64-byte cell; the driver reads them through `kernelParams`.
        let cell = 64
        let storage = UnsafeMutableRawPointer.allocate(byteCount: max(arguments.count, 1) * cell, alignment: 16)
        defer { storage.deallocate() }
        var pointers = [UnsafeMutableRawPointer?](repeating: nil, count: arguments.count)
        for (k, argument) in arguments.enumerated() {
            let at = storage + k * cell
            switch argument {
            case .pointer(let p): at.storeBytes(of: p, as: UnsafeMutableRawPointer.self)
            case .null: at.storeBytes(of: 0, as: UInt.self)
            case .int32(let v): at.storeBytes(of: v, as: Int32.self)
            case .int64(let v): at.storeBytes(of: v, as: Int64.self)
            case .float(let v): at.storeBytes(of: v, as: Float.self)
            case .double(let v): at.storeBytes(of: v, as: Double.self)
            case .dims(let values):
                guard values.count <= maxKernelRank else {
                    throw AidgeError.unsupported("the CUDA kernels take at most \(maxKernelRank) dimensions")
                }
                for i in 0..<maxKernelRank {
                    (at + 8 * i).storeBytes(of: Int64(i < values.count ? values[i] : 0), as: Int64.self)
                }
            }
            pointers[k] = at
        }
        if sharedBytes > 48 * 1024 {
            try driver.check(
                driver.functionSetAttribute(function, 8 /* MAX_DYNAMIC_SHARED_SIZE_BYTES */, Int32(sharedBytes)),
                "allowing \(sharedBytes) bytes of shared memory for \(name())")
        }
        let status = pointers.withUnsafeMutableBufferPointer { params in
            driver.launchKernel(
                function, UInt32(grid.0), UInt32(grid.1), UInt32(grid.2), UInt32(block.0), UInt32(block.1),
                UInt32(block.2), UInt32(sharedBytes), CUDAStream.handle, params.baseAddress, nil)
        }
        try driver.check(status, "launching \(name())")
    }

    /// Blocks for a grid-stride loop over `count` elements with `threads` per block: enough to fill the device,
    /// no more.
    func blocks(for count: Int, threads: Int = 256) -> Int {
        min(max((count + threads - 1) / threads, 1), multiprocessorCount * 32)
    }
}

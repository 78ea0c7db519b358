import AidgeCore

/// The device memory of one GPU, as the core's planner and tensors see it.
final class CUDAMemory: DeviceMemory {
    let cuda: CUDADevice

    init(_ cuda: CUDADevice) { self.cuda = cuda }

    var device: Device { cuda.device }

    func allocate(byteCount: Int) throws -> Storage {
        try cuda.makeCurrent()
        return try cuda.allocator.allocate(byteCount: byteCount)
    }

    func copy(_ source: Tensor, into destination: Tensor) throws {
        guard source.dtype.byteSize == destination.dtype.byteSize, source.shape == destination.shape else {
            throw AidgeError.invalidArgument(
                "a copy needs equal shapes and element sizes, got \(source.shape) and \(destination.shape)")
        }
        for t in [source, destination] where !t.isOnHost && t.device != device {
            throw AidgeError.device("a tensor on \(t.device) cannot be copied by the memory of \(device)")
        }
        try cuda.makeCurrent()
        let driver = cuda.driver
        let stream = CUDAStream.handle
        let bytes = source.byteCount
        guard bytes > 0 else { return }
        switch (source.isOnHost, destination.isOnHost) {
        case (true, true):
            copyElements(from: source, to: destination)
        case (true, false):
            let packed = source.contiguous()
            if destination.isContiguous {
                try driver.check(
                    driver.copyHostToDevice(address(destination), packed.rawPointer, bytes, stream), "copying to \(device)")
                // The host buffer may be freed as soon as this returns.
                try driver.check(driver.streamSynchronize(stream), "copying to \(device)")
            } else {
                let staged = try packed.copy(to: device)
                try copy(staged, into: destination)
            }
        case (false, true):
            let packed = try source.contiguousOnDevice()
            if destination.isContiguous {
                try driver.check(
                    driver.copyDeviceToHost(destination.rawPointer, address(packed), bytes, stream), "copying from \(device)")
                try driver.check(driver.streamSynchronize(stream), "copying from \(device)")
            } else {
                let staged = Tensor(zeros: source.shape, dtype: source.dtype)
                try copy(packed, into: staged)
                copyElements(from: staged, to: destination)
            }
        case (false, false):
            if source.isContiguous && destination.isContiguous {
                try driver.check(
                    driver.copyDeviceToDevice(address(destination), address(source), bytes, stream), "copying on \(device)")
            } else {
                try StridedCopy.run(on: cuda, from: source, to: destination)
            }
        }
    }
}

extension CUDAMemory {
    func zero(_ tensor: Tensor) throws {
        guard tensor.byteCount > 0 else { return }
        try cuda.makeCurrent()
        try cuda.driver.check(
            cuda.driver.setBytes(address(tensor), 0, tensor.byteCount, CUDAStream.handle), "zeroing device memory")
    }

    func accumulate(_ source: Tensor, into target: Tensor) throws {
        guard target.count > 0 else { return }
        let element = try ElementType.of(target.dtype, for: "a gradient")
        guard element.isFloatingPoint, source.dtype == target.dtype, source.shape == target.shape else {
            throw AidgeError.unsupportedType("gradients of \(target.dtype) values are not supported")
        }
        let packed = source.device == device ? try source.contiguousOnDevice() : try source.copy(to: device)
        try cuda.makeCurrent()
        let c = element.compute
        let function = try cuda.function("accumulate", in: """
            extern "C" __global__ void accumulate(const \(element.stored)* __restrict__ g, \(element.stored)* t, i64 n) {
                for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
                    t[i] = \(element.store("(\(c))\(element.load("t[i]")) + (\(c))\(element.load("g[i]"))"));
                }
            }
            """)
        try cuda.launch(
            function, grid: (cuda.blocks(for: target.count), 1, 1), block: (256, 1, 1),
            [.tensor(packed), .tensor(target), .int64(Int64(target.count))], name: "a gradient accumulation")
    }
}

/// The device address of a tensor's first element.
func address(_ t: Tensor) -> CUdeviceptr { CUdeviceptr(UInt(bitPattern: t.rawPointer)) }

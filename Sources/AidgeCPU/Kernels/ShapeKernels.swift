import AidgeCore

/// Kernels of the shape operators. They move elements as bits, by element size (1, 2, 4 or 8 bytes), so every
/// dtype is covered.
func registerShapeKernels(_ registry: KernelRegistry) {
    for type in ["Reshape", "Flatten", "Squeeze", "Unsqueeze"] {
        registry.register(type, backend: "cpu") { _ in CopyKernel() }
    }

    registry.register("Transpose", backend: "cpu") { request in
        let x = try request.input(0)
        let perm = try OperatorSchema.transposePermutation(request.attributes, rank: x.shape.count)
        let strides = ShapeUtil.contiguousStrides(x.shape)
        return try StridedCopyKernel(
            StridedCopy(
                shape: perm.map { x.shape[$0] }, strides: perm.map { strides[$0] }, offset: 0,
                elementSize: x.dtype.byteSize))
    }

    for (type, toDepth) in [("DepthToSpace", false), ("SpaceToDepth", true)] {
        registry.register(type, backend: "cpu") { request in
            let x = try request.input(0)
            let (_, _, _, _, block) = try ShapeOperators.blockShape(type, x.shape, request.attributes)
            let crd = try request.attributes.string("mode", default: "DCR") == "CRD"
            let (view, perm) = ShapeOperators.blockPermutation(x.shape, block: block, crd: crd, toDepth: toDepth)
            let strides = ShapeUtil.contiguousStrides(view)
            return try StridedCopyKernel(
                StridedCopy(
                    shape: perm.map { view[$0] }, strides: perm.map { strides[$0] }, offset: 0,
                    elementSize: x.dtype.byteSize))
        }
    }

    registry.register("CenterCropPad", backend: "cpu") { request in
        let input = try request.input(0).shape
        let output = request.outputs[0].shape
        // The copied box: its size, and where it starts in the input (a crop) and in the output (a pad).
        let box = zip(input, output).map { min($0, $1) }
        let inputStrides = ShapeUtil.contiguousStrides(input)
        let outputStrides = ShapeUtil.contiguousStrides(output)
        let source = input.indices.reduce(0) { $0 + max(input[$1] - output[$1], 0) / 2 * inputStrides[$1] }
        let target = input.indices.reduce(0) { $0 + max(output[$1] - input[$1], 0) / 2 * outputStrides[$1] }
        return ClosureKernel { inputs, outputs in
            let x = try presentInput(inputs, 0)
            let y = try firstOutput(outputs)
            y.rawPointer.initializeMemory(as: UInt8.self, repeating: 0, count: y.byteCount)
            let from = try Tensor(storage: x.storage, dtype: x.dtype, shape: box, strides: inputStrides, offset: x.offset + source)
            let to = try Tensor(storage: y.storage, dtype: y.dtype, shape: box, strides: outputStrides, offset: y.offset + target)
            copyElements(from: from, to: to)
        }
    }

    registry.register("ReverseSequence", backend: "cpu") { request in
        let x = try request.input(0)
        let (batch, time) = try ShapeOperators.sequenceAxes(request.attributes, rank: x.shape.count)
        let strides = ShapeUtil.contiguousStrides(x.shape)
        let size = x.dtype.byteSize
        let steps = x.shape[time]
        return ClosureKernel { inputs, outputs in
            let data = try presentInput(inputs, 0)
            let lengths = try presentInput(inputs, 1).pointer(as: Int64.self)
            let y = try firstOutput(outputs)
            for b in 0..<x.shape[batch] where lengths[b] < 0 || lengths[b] > steps {
                throw AidgeError.invalidArgument(
                    "ReverseSequence length \(lengths[b]) of batch entry \(b) is out of range for \(steps) steps")
            }
            for e in 0..<data.count {
                let b = e / strides[batch] % x.shape[batch]
                let t = e / strides[time] % steps
                let length = Int(lengths[b])
                let source = t < length ? e + (length - 1 - 2 * t) * strides[time] : e
                (y.rawPointer + e * size).copyMemory(from: data.rawPointer + source * size, byteCount: size)
            }
        }
    }

    registry.register("Expand", backend: "cpu") { request in
        let x = try request.input(0)
        let out = request.outputs[0].shape
        let contiguous = ShapeUtil.contiguousStrides(x.shape)
        let lead = out.count - x.shape.count
        let strides = out.indices.map { k -> Int in
            let j = k - lead
            return j < 0 || x.shape[j] == 1 ? 0 : contiguous[j]
        }
        return try StridedCopyKernel(
            StridedCopy(shape: out, strides: strides, offset: 0, elementSize: x.dtype.byteSize))
    }

    registry.register("Slice", backend: "cpu") { request in
        let x = try request.input(0)
        let axes = try OperatorSchema.sliceAxes(x.shape, request.inputs)
        let contiguous = ShapeUtil.contiguousStrides(x.shape)
        let empty = axes.contains { $0.count == 0 }
        var offset = 0
        var strides: [Int] = []
        for (a, s) in zip(axes, contiguous) {
            if !empty { offset += a.start * s }
            strides.append(a.count > 1 ? a.step * s : 0)
        }
        return try StridedCopyKernel(
            StridedCopy(shape: axes.map(\.count), strides: strides, offset: offset, elementSize: x.dtype.byteSize))
    }

    registry.register("Trilu", backend: "cpu") { request in
        let x = try request.input(0)
        let rank = x.shape.count
        return TriluKernel(
            upper: try request.attributes.int("upper", default: 1) == 1, rows: x.shape[rank - 2],
            columns: x.shape[rank - 1], elementSize: x.dtype.byteSize)
    }

    registry.register("Tile", backend: "cpu") { request in
        // The output, seen as [r0, d0, r1, d1, ...], reads the input with stride 0 along each repeat.
        let x = try request.input(0)
        let repeats = request.outputs[0].shape.indices.map { k in
            x.shape[k] == 0 ? 0 : request.outputs[0].shape[k] / x.shape[k]
        }
        let contiguous = ShapeUtil.contiguousStrides(x.shape)
        var shape: [Int] = []
        var strides: [Int] = []
        for k in x.shape.indices {
            shape += [repeats[k], x.shape[k]]
            strides += [0, contiguous[k]]
        }
        return try StridedCopyKernel(
            StridedCopy(shape: shape, strides: strides, offset: 0, elementSize: x.dtype.byteSize))
    }

    registry.register("Concat", backend: "cpu") { request in
        let out = request.outputs[0]
        let axis = try ShapeUtil.axis(try request.attributes.int("axis"), rank: out.shape.count, context: "Concat axis")
        let outer = ShapeUtil.count(Array(out.shape[..<axis]))
        let innerSize = ShapeUtil.count(Array(out.shape[(axis + 1)...])) * out.dtype.byteSize
        let parts = try request.inputs.indices.map { try request.input($0).shape[axis] * innerSize }
        return JoinKernel(outer: outer, parts: parts, split: false)
    }

    registry.register("Split", backend: "cpu") { request in
        let x = try request.input(0)
        let axis = try ShapeUtil.axis(try request.attributes.int("axis", default: 0), rank: x.shape.count)
        let outer = ShapeUtil.count(Array(x.shape[..<axis]))
        let innerSize = ShapeUtil.count(Array(x.shape[(axis + 1)...])) * x.dtype.byteSize
        let parts = request.outputs.map { $0.shape[axis] * innerSize }
        return JoinKernel(outer: outer, parts: parts, split: true)
    }

    registry.register("Pad", backend: "cpu") { request in
        let x = try request.input(0)
        let mode = try request.attributes.string("mode", default: "constant")
        let (begin, end) = try OperatorSchema.padAmounts(x.shape.count, request.inputs)
        return try PadKernel(
            input: x.shape, output: request.outputs[0].shape, begin: begin, end: end, mode: mode,
            elementSize: x.dtype.byteSize)
    }
}

// MARK: - Copies

/// Copies `bytes` bytes, over several cores when there are many (nothing when both sides are the same memory).
func parallelCopy(_ dst: UnsafeMutableRawPointer, _ src: UnsafeRawPointer, _ bytes: Int) {
    if bytes <= 0 || UnsafeRawPointer(dst) == src { return }
    Parallel.forEach(bytes, grain: 1 << 16) { range in
        (dst + range.lowerBound).copyMemory(from: src + range.lowerBound, byteCount: range.count)
    }
}

/// Output 0 is input 0's bytes (Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout); further outputs, when
/// the node has them (Dropout's mask), are filled with `true`.
final class CopyKernel: Kernel {
    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard let x = inputs.first ?? nil, let y = outputs.first else {
            throw AidgeError.invalidModel("a copy needs one input and one output")
        }
        guard x.byteCount == y.byteCount else {
            throw AidgeError.shapeMismatch("input of shape \(x.shape) does not fill the output of shape \(y.shape)")
        }
        parallelCopy(y.rawPointer, x.rawPointer, y.byteCount)
        for mask in outputs.dropFirst() {
            mask.rawPointer.initializeMemory(as: UInt8.self, repeating: 1, count: mask.byteCount)
        }
    }
}

/// A copy from a strided view of the input (any strides, 0 and negative ones included) into the contiguous
/// output. The dimensions are simplified once, when the kernel is made: size-1 dimensions dropped, dimensions
/// that are contiguous in the source merged. A transposition (some dimension other than the innermost is
/// contiguous in the source) is copied in tiles, so reads and writes both stay in cache.
struct StridedCopy {
    let count: Int
    let elementSize: Int
    let offset: Int
    /// Simplified dimensions, row-major in the output.
    let shape: [Int]
    let strides: [Int]
    /// Tiled transposition: the dimension that is contiguous in the source (nil: copy row by row).
    let tiled: Tiled?

    struct Tiled {
        let axis: Int
        /// Output stride of `axis`.
        let outStride: Int
        /// The other dimensions but the innermost: size, source stride, output stride.
        let outerShape: [Int]
        let outerSource: [Int]
        let outerOutput: [Int]
        let outerCount: Int
    }

    /// Rows of a tile along the source-contiguous dimension, and columns along the output's innermost one.
    static let tileRows = 32
    static let tileColumns = 32
    /// Elements per thread at least: copies of a few hundred KB (attention heads) are worth spreading.
    static let grainElements = 1 << 14

    init(shape: [Int], strides: [Int], offset: Int, elementSize: Int) throws {
        guard [1, 2, 4, 8].contains(elementSize) else {
            throw AidgeError.unsupportedType("elements of \(elementSize) bytes")
        }
        self.count = ShapeUtil.count(shape)
        self.elementSize = elementSize
        self.offset = offset
        var dims: [(size: Int, stride: Int)] = []
        for (d, s) in zip(shape, strides) where d != 1 {
            if let last = dims.last, last.stride == s * d {
                dims[dims.count - 1] = (last.size * d, s)
            } else {
                dims.append((d, s))
            }
        }
        if dims.isEmpty { dims = [(1, 1)] }
        self.shape = dims.map(\.size)
        self.strides = dims.map(\.stride)

        let rank = dims.count
        let inner = dims[rank - 1]
        if count > 0, rank >= 2, inner.stride != 1, inner.stride != 0,
            let axis = dims.indices.dropLast().last(where: { dims[$0].stride == 1 })
        {
            let outStrides = ShapeUtil.contiguousStrides(self.shape)
            let outer = (0..<(rank - 1)).filter { $0 != axis }
            tiled = Tiled(
                axis: axis, outStride: outStrides[axis], outerShape: outer.map { dims[$0].size },
                outerSource: outer.map { dims[$0].stride }, outerOutput: outer.map { outStrides[$0] },
                outerCount: outer.reduce(1) { $0 * dims[$1].size })
        } else {
            tiled = nil
        }
    }

    /// Copies from the view of `src` into contiguous `dst`.
    func run(_ src: UnsafeRawPointer, _ dst: UnsafeMutableRawPointer) {
        if count == 0 { return }
        switch elementSize {
        case 1: run(src, dst, UInt8.self)
        case 2: run(src, dst, UInt16.self)
        case 4: run(src, dst, UInt32.self)
        default: run(src, dst, UInt64.self)
        }
    }

    private func run<T>(_ src: UnsafeRawPointer, _ dst: UnsafeMutableRawPointer, _: T.Type) {
        let s = src.assumingMemoryBound(to: T.self) + offset
        let d = dst.assumingMemoryBound(to: T.self)
        if let tiled {
            transpose(s, d, tiled)
        } else {
            copyRows(s, d)
        }
    }

    private func copyRows<T>(_ s: UnsafePointer<T>, _ d: UnsafeMutablePointer<T>) {
        let rank = shape.count
        let inner = shape[rank - 1]
        let innerStride = strides[rank - 1]
        let rows = count / inner
        if rows == 1 && innerStride == 1 {
            parallelCopy(d, s, inner * MemoryLayout<T>.stride)
            return
        }
        let grain = max(1, StridedCopy.grainElements / inner)
        shape.withUnsafeBufferPointer { shape in
            strides.withUnsafeBufferPointer { strides in
                Parallel.forEach(rows, grain: grain) { range in
                    withUnsafeTemporaryAllocation(of: Int.self, capacity: rank) { index in
                        // Source offset of the first row of the range.
                        var rest = range.lowerBound
                        var offset = 0
                        for k in stride(from: rank - 2, through: 0, by: -1) {
                            index[k] = rest % shape[k]
                            rest /= shape[k]
                            offset += index[k] * strides[k]
                        }
                        for row in range {
                            let from = s + offset
                            let to = d + row * inner
                            if innerStride == 1 {
                                to.update(from: from, count: inner)
                            } else if innerStride == 0 {
                                to.update(repeating: from.pointee, count: inner)
                            } else {
                                for i in 0..<inner { to[i] = from[i * innerStride] }
                            }
                            var k = rank - 2
                            while k >= 0 {
                                index[k] += 1
                                offset += strides[k]
                                if index[k] < shape[k] { break }
                                offset -= index[k] * strides[k]
                                index[k] = 0
                                k -= 1
                            }
                        }
                    }
                }
            }
        }
    }

    private func transpose<T>(_ s: UnsafePointer<T>, _ d: UnsafeMutablePointer<T>, _ t: Tiled) {
        let rank = shape.count
        let columns = shape[rank - 1]
        let columnStride = strides[rank - 1]
        let rows = shape[t.axis]
        let rowStride = t.outStride
        let tileRows = StridedCopy.tileRows
        let tileColumns = StridedCopy.tileColumns
        let rowBlocks = (rows + tileRows - 1) / tileRows
        // Tasks are strips of `tileRows` rows by up to `strip` columns (so that a few large rows still spread).
        let strip = tileColumns * 16
        let columnBlocks = (columns + strip - 1) / strip
        let tasks = t.outerCount * rowBlocks * columnBlocks
        let grain = max(1, StridedCopy.grainElements / (tileRows * min(columns, strip)))
        let outerRank = t.outerShape.count
        t.outerShape.withUnsafeBufferPointer { outerShape in
            t.outerSource.withUnsafeBufferPointer { outerSource in
                t.outerOutput.withUnsafeBufferPointer { outerOutput in
                    Parallel.forEach(tasks, grain: grain) { range in
                        for task in range {
                            let columnBlock = task % columnBlocks
                            let rowBlock = (task / columnBlocks) % rowBlocks
                            var rest = task / (columnBlocks * rowBlocks)
                            var from = 0
                            var to = 0
                            for k in stride(from: outerRank - 1, through: 0, by: -1) {
                                let i = rest % outerShape[k]
                                rest /= outerShape[k]
                                from += i * outerSource[k]
                                to += i * outerOutput[k]
                            }
                            let r0 = rowBlock * tileRows
                            let r1 = min(r0 + tileRows, rows)
                            var c0 = columnBlock * strip
                            let end = min(c0 + strip, columns)
                            while c0 < end {
                                let c1 = min(c0 + tileColumns, end)
                                var r = r0
                                if T.self == UInt32.self {
                                    // 4-byte elements: 8x8 blocks transposed in registers.
                                    let s32 = UnsafeRawPointer(s).assumingMemoryBound(to: UInt32.self) + from
                                    let d32 = UnsafeMutableRawPointer(d).assumingMemoryBound(to: UInt32.self) + to
                                    while r + 8 <= r1 {
                                        var c = c0
                                        while c + 8 <= c1 {
                                            transpose8x8(
                                                s32 + r + c * columnStride, columnStride, d32 + r * rowStride + c,
                                                rowStride)
                                            c += 8
                                        }
                                        for rr in r..<(r + 8) {
                                            let src = s + from + rr
                                            let dst = d + to + rr * rowStride
                                            for cc in c..<c1 { dst[cc] = src[cc * columnStride] }
                                        }
                                        r += 8
                                    }
                                }
                                for rr in r..<r1 {
                                    let src = s + from + rr
                                    let dst = d + to + rr * rowStride
                                    for c in c0..<c1 { dst[c] = src[c * columnStride] }
                                }
                                c0 = c1
                            }
                        }
                    }
                }
            }
        }
    }
}

@inline(__always)
private func interleaveLow(_ a: SIMD8<UInt32>, _ b: SIMD8<UInt32>) -> SIMD8<UInt32> {
    SIMD8(a[0], b[0], a[1], b[1], a[2], b[2], a[3], b[3])
}

@inline(__always)
private func interleaveHigh(_ a: SIMD8<UInt32>, _ b: SIMD8<UInt32>) -> SIMD8<UInt32> {
    SIMD8(a[4], b[4], a[5], b[5], a[6], b[6], a[7], b[7])
}

/// `dst[j * dstStride + i] = src[i * srcStride + j]` for an 8x8 block of 4-byte elements: three rounds of
/// interleaving rows `k` and `k + 4` transpose the block in registers.
@inline(__always)
private func transpose8x8(
    _ src: UnsafePointer<UInt32>, _ srcStride: Int, _ dst: UnsafeMutablePointer<UInt32>, _ dstStride: Int
) {
    let from = UnsafeRawPointer(src)
    let step = 4 * srcStride
    var r0 = from.loadUnaligned(as: SIMD8<UInt32>.self)
    var r1 = from.loadUnaligned(fromByteOffset: step, as: SIMD8<UInt32>.self)
    var r2 = from.loadUnaligned(fromByteOffset: 2 * step, as: SIMD8<UInt32>.self)
    var r3 = from.loadUnaligned(fromByteOffset: 3 * step, as: SIMD8<UInt32>.self)
    var r4 = from.loadUnaligned(fromByteOffset: 4 * step, as: SIMD8<UInt32>.self)
    var r5 = from.loadUnaligned(fromByteOffset: 5 * step, as: SIMD8<UInt32>.self)
    var r6 = from.loadUnaligned(fromByteOffset: 6 * step, as: SIMD8<UInt32>.self)
    var r7 = from.loadUnaligned(fromByteOffset: 7 * step, as: SIMD8<UInt32>.self)
    for _ in 0..<3 {
        (r0, r1, r2, r3, r4, r5, r6, r7) = (
            interleaveLow(r0, r4), interleaveHigh(r0, r4), interleaveLow(r1, r5), interleaveHigh(r1, r5),
            interleaveLow(r2, r6), interleaveHigh(r2, r6), interleaveLow(r3, r7), interleaveHigh(r3, r7)
        )
    }
    let to = UnsafeMutableRawPointer(dst)
    let out = 4 * dstStride
    to.storeBytes(of: r0, as: SIMD8<UInt32>.self)
    to.storeBytes(of: r1, toByteOffset: out, as: SIMD8<UInt32>.self)
    to.storeBytes(of: r2, toByteOffset: 2 * out, as: SIMD8<UInt32>.self)
    to.storeBytes(of: r3, toByteOffset: 3 * out, as: SIMD8<UInt32>.self)
    to.storeBytes(of: r4, toByteOffset: 4 * out, as: SIMD8<UInt32>.self)
    to.storeBytes(of: r5, toByteOffset: 5 * out, as: SIMD8<UInt32>.self)
    to.storeBytes(of: r6, toByteOffset: 6 * out, as: SIMD8<UInt32>.self)
    to.storeBytes(of: r7, toByteOffset: 7 * out, as: SIMD8<UInt32>.self)
}

/// Transpose, Expand, Slice and Tile: a strided view of input 0 copied into output 0.
final class StridedCopyKernel: Kernel {
    let copy: StridedCopy

    init(_ copy: StridedCopy) { self.copy = copy }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard let x = inputs.first ?? nil, let y = outputs.first else {
            throw AidgeError.invalidModel("a strided copy needs one input and one output")
        }
        guard y.count == copy.count else {
            throw AidgeError.shapeMismatch("output of shape \(y.shape) does not match the planned \(copy.count) elements")
        }
        copy.run(x.rawPointer, y.rawPointer)
    }
}

/// Concat (parts of each output row come from each input) and Split (the reverse). `parts` are byte counts
/// per outer index, one per input (Concat) or per output (Split).
final class JoinKernel: Kernel {
    let outer: Int
    let parts: [Int]
    let starts: [Int]
    let rowBytes: Int
    let split: Bool

    init(outer: Int, parts: [Int], split: Bool) {
        self.outer = outer
        self.parts = parts
        self.split = split
        var starts: [Int] = []
        var total = 0
        for p in parts {
            starts.append(total)
            total += p
        }
        self.starts = starts
        self.rowBytes = total
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        let pieces = split ? outputs.count : inputs.count
        guard pieces == parts.count else {
            throw AidgeError.invalidModel("\(split ? "Split" : "Concat") planned \(parts.count) parts, got \(pieces)")
        }
        if split {
            guard let x = inputs.first ?? nil else { throw AidgeError.invalidModel("Split needs an input") }
            let whole = x.rawPointer
            try withUnsafeTemporaryAllocation(of: UnsafeMutableRawPointer.self, capacity: pieces) { pointers in
                for (i, y) in outputs.enumerated() {
                    guard y.byteCount == parts[i] * outer else {
                        throw AidgeError.shapeMismatch("Split output \(i) has shape \(y.shape), not the planned size")
                    }
                    pointers[i] = y.rawPointer
                }
                move(pointers.baseAddress, whole, toParts: true)
            }
        } else {
            guard let y = outputs.first else { throw AidgeError.invalidModel("Concat needs an output") }
            let whole = y.rawPointer
            try withUnsafeTemporaryAllocation(of: UnsafeMutableRawPointer.self, capacity: pieces) { pointers in
                for (i, x) in inputs.enumerated() {
                    guard let x, x.byteCount == parts[i] * outer else {
                        throw AidgeError.shapeMismatch("Concat input \(i) is missing or not of the planned size")
                    }
                    pointers[i] = x.rawPointer
                }
                move(pointers.baseAddress, whole, toParts: false)
            }
        }
    }

    /// Copies between `whole` (rows of `rowBytes`) and the parts.
    private func move(_ pointers: UnsafeMutablePointer<UnsafeMutableRawPointer>?, _ whole: UnsafeMutableRawPointer, toParts: Bool) {
        guard let pointers, outer > 0, rowBytes > 0 else { return }
        let parts = self.parts
        let starts = self.starts
        let rowBytes = self.rowBytes
        func copy(_ row: Int, _ i: Int) {
            let part = parts[i]
            if part == 0 { return }
            let a = pointers[i] + row * part
            let b = whole + row * rowBytes + starts[i]
            if toParts { a.copyMemory(from: b, byteCount: part) } else { b.copyMemory(from: a, byteCount: part) }
        }
        if outer == 1 {
            for i in parts.indices {
                let a = pointers[i]
                let b = whole + starts[i]
                if toParts { parallelCopy(a, b, parts[i]) } else { parallelCopy(b, a, parts[i]) }
            }
            return
        }
        Parallel.forEach(outer, grain: max(1, (1 << 18) / rowBytes)) { range in
            for row in range {
                for i in parts.indices { copy(row, i) }
            }
        }
    }
}

// MARK: - Pad

/// Pad in constant, reflect, edge or wrap mode; negative pads crop. For each dimension, a table maps every
/// output index to the input index it reads (or -1: the constant); the innermost dimension's interior is one copy.
final class PadKernel: Kernel {
    let elementSize: Int
    let rank: Int
    let outShape: [Int]
    /// Concatenated per-dimension tables, outer ones pre-multiplied by the input stride.
    let maps: [Int]
    let mapStart: [Int]
    /// Output range of the innermost dimension that reads the input at `interiorSource + (o - interiorStart)`.
    let interiorStart: Int
    let interiorEnd: Int
    let interiorSource: Int
    let count: Int

    init(input: [Int], output: [Int], begin: [Int], end: [Int], mode: String, elementSize: Int) throws {
        guard [1, 2, 4, 8].contains(elementSize) else {
            throw AidgeError.unsupportedType("elements of \(elementSize) bytes")
        }
        // A scalar pads as a one-element vector.
        let input = input.isEmpty ? [1] : input
        let output = output.isEmpty ? [1] : output
        let begin = begin.isEmpty ? [0] : begin
        let end = end.isEmpty ? [0] : end
        self.elementSize = elementSize
        self.rank = input.count
        self.outShape = output
        self.count = ShapeUtil.count(output)
        let strides = ShapeUtil.contiguousStrides(input)
        var maps: [Int] = []
        var mapStart: [Int] = []
        // Negative pads crop first; the other modes then pad what is left (as ONNX Runtime does): along each
        // dimension the kept input is `first ..< first + n`, placed at output index `shift`.
        var firsts: [Int] = []
        var shifts: [Int] = []
        var kept: [Int] = []
        for k in 0..<rank {
            mapStart.append(maps.count)
            let first = max(-begin[k], 0)
            let n = input[k] - first - max(-end[k], 0)
            let shift = max(begin[k], 0)
            if n <= 0 && mode != "constant" && output[k] > 0 {
                throw AidgeError.invalidArgument("Pad mode '\(mode)' cannot pad dimension \(k), which is empty")
            }
            firsts.append(first)
            shifts.append(shift)
            kept.append(max(n, 0))
            for o in 0..<output[k] {
                var i = o - shift
                if i < 0 || i >= n {
                    switch mode {
                    case "constant": i = -1
                    case "edge": i = min(max(i, 0), n - 1)
                    case "wrap": i = ((i % n) + n) % n
                    case "reflect":
                        if n == 1 {
                            i = 0
                        } else {
                            let period = 2 * (n - 1)
                            let t = ((i % period) + period) % period
                            i = t < n ? t : period - t
                        }
                    default: throw AidgeError.unsupported("Pad mode '\(mode)'")
                    }
                }
                if i >= 0 { i += first }
                maps.append(i < 0 || k == rank - 1 ? i : i * strides[k])
            }
        }
        self.maps = maps
        self.mapStart = mapStart
        let last = rank - 1
        interiorStart = min(shifts[last], output[last])
        interiorEnd = max(min(shifts[last] + kept[last], output[last]), interiorStart)
        interiorSource = firsts[last] + interiorStart - shifts[last]
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard let x = inputs.first ?? nil, let y = outputs.first else {
            throw AidgeError.invalidModel("Pad needs an input and an output")
        }
        guard y.count == count else { throw AidgeError.shapeMismatch("Pad output shape \(y.shape) was not planned") }
        if count == 0 { return }
        let value = inputs.count > 2 ? inputs[2] : nil
        if let value, value.count < 1 || value.dtype != x.dtype {
            throw AidgeError.invalidArgument("Pad constant_value must be one \(x.dtype) element")
        }
        switch elementSize {
        case 1: pad(x, y, value, UInt8.self)
        case 2: pad(x, y, value, UInt16.self)
        case 4: pad(x, y, value, UInt32.self)
        default: pad(x, y, value, UInt64.self)
        }
    }

    private func pad<T: FixedWidthInteger>(_ x: Tensor, _ y: Tensor, _ value: Tensor?, _: T.Type) {
        let s = UnsafePointer(x.pointer(as: T.self))
        let d = y.pointer(as: T.self)
        let fill: T = value.map { $0.pointer(as: T.self).pointee } ?? 0
        let rank = self.rank
        let inner = outShape[rank - 1]
        let rows = count / inner
        let lo = interiorStart
        let hi = interiorEnd
        let source = interiorSource
        maps.withUnsafeBufferPointer { maps in
            mapStart.withUnsafeBufferPointer { mapStart in
                outShape.withUnsafeBufferPointer { shape in
                    guard let base = maps.baseAddress else { return }
                    let lastMap = base + mapStart[rank - 1]
                    Parallel.forEach(rows, grain: max(1, (1 << 15) / inner)) { range in
                        for row in range {
                            let to = d + row * inner
                            var rest = row
                            var offset = 0
                            var constant = false
                            for k in stride(from: rank - 2, through: 0, by: -1) {
                                let m = maps[mapStart[k] + rest % shape[k]]
                                rest /= shape[k]
                                if m < 0 { constant = true }
                                offset += m
                            }
                            if constant {
                                to.update(repeating: fill, count: inner)
                                continue
                            }
                            let from = s + offset
                            for o in 0..<lo {
                                let m = lastMap[o]
                                to[o] = m < 0 ? fill : from[m]
                            }
                            if hi > lo { (to + lo).update(from: from + source, count: hi - lo) }
                            for o in hi..<inner {
                                let m = lastMap[o]
                                to[o] = m < 0 ? fill : from[m]
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Trilu: each row of each matrix keeps one run of columns (those on the kept side of the k-th diagonal), copied
/// as bytes; the rest is zero.
final class TriluKernel: Kernel {
    let upper: Bool
    let rows: Int
    let columns: Int
    let elementSize: Int

    init(upper: Bool, rows: Int, columns: Int, elementSize: Int) {
        self.upper = upper
        self.rows = rows
        self.columns = columns
        self.elementSize = elementSize
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard let x = inputs.first ?? nil, let y = outputs.first, x.byteCount == y.byteCount else {
            throw AidgeError.invalidModel("Trilu needs one input and an output of its size")
        }
        var k = 0
        if inputs.count > 1, let given = inputs[1] {
            guard given.count == 1, let value = given.integers().first else {
                throw AidgeError.shapeMismatch("Trilu k must be a scalar, got shape \(given.shape)")
            }
            k = value
        }
        let rowBytes = columns * elementSize
        let matrices = rows * columns == 0 ? 0 : x.count / (rows * columns)
        let (src, dst) = (x.rawPointer, y.rawPointer)
        for row in 0..<(matrices * rows) {
            let i = row % rows
            // Kept columns: j - i >= k (upper) or j - i <= k (lower), clamped to the row.
            let (first, end) = upper ? (min(max(i + k, 0), columns), columns) : (0, min(max(i + k + 1, 0), columns))
            let from = src + row * rowBytes
            let to = dst + row * rowBytes
            to.initializeMemory(as: UInt8.self, repeating: 0, count: rowBytes)
            if end > first {
                (to + first * elementSize).copyMemory(from: from + first * elementSize, byteCount: (end - first) * elementSize)
            }
        }
    }
}

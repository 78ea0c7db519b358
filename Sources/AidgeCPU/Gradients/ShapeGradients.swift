import AidgeCore

/// Backward of the operators that move elements without arithmetic: Identity, Reshape, Flatten, Squeeze,
/// Unsqueeze, Transpose, Concat, Split, Slice, Expand, Tile, Pad and Cast (the indexing and resize families are
/// in their own files). Each adds an output element's gradient back to the input element it was read from. None
/// reads the forward's values, so a recorded forward keeps no activations for them.
func registerShapeGradients(_ registry: KernelRegistry) {
    // Same elements, another shape: the gradient is the output gradient, added element by element.
    for type in ["Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze"] {
        registry.registerGradient(type, backend: "cpu") { request in
            try movementGradient(try request.input(0).dtype, request) { PassGradientKernel($0) }
        }
    }

    // dx = transpose(dy) by the inverse permutation: walk dx in order, read dy at the permuted strides.
    registry.registerGradient("Transpose", backend: "cpu") { request in
        let x = try request.input(0)
        return try movementGradient(x.dtype, request) { dtype in
            let perm = try OperatorSchema.transposePermutation(request.attributes, rank: x.shape.count)
            let outStrides = ShapeUtil.contiguousStrides(perm.map { x.shape[$0] })
            var source = [Int](repeating: 0, count: perm.count)
            for (k, p) in perm.enumerated() { source[p] = outStrides[k] }
            return StridedAddGradientKernel(
                dtype,
                StridedAdd(shape: x.shape, destination: ShapeUtil.contiguousStrides(x.shape), source: source,
                    destinationOffset: 0))
        }
    }

    // dy, contiguous, added into the strided view of dx that the forward read (negative steps included).
    registry.registerGradient("Slice", backend: "cpu") { request in
        let x = try request.input(0)
        return try movementGradient(x.dtype, request) { dtype in
            let axes = try OperatorSchema.sliceAxes(x.shape, request.inputs)
            let shape = axes.map(\.count)
            let contiguous = ShapeUtil.contiguousStrides(x.shape)
            let empty = shape.contains(0)
            var offset = 0
            var strides: [Int] = []
            for (a, s) in zip(axes, contiguous) {
                if !empty { offset += a.start * s }
                strides.append(a.step * s)
            }
            return StridedAddGradientKernel(
                dtype,
                StridedAdd(shape: shape, destination: strides, source: ShapeUtil.contiguousStrides(shape),
                    destinationOffset: offset))
        }
    }

    registry.registerGradient("Concat", backend: "cpu") { request in
        let out = request.outputs[0]
        return try movementGradient(out.dtype, request) { dtype in
            let axis = try ShapeUtil.axis(
                try request.attributes.int("axis"), rank: out.shape.count, context: "Concat axis")
            let sizes = try request.inputs.indices.map { try request.input($0).shape[axis] }
            return JoinGradientKernel(dtype, shape: out.shape, axis: axis, sizes: sizes, split: false)
        }
    }

    registry.registerGradient("Split", backend: "cpu") { request in
        let x = try request.input(0)
        return try movementGradient(x.dtype, request) { dtype in
            let axis = try ShapeUtil.axis(
                try request.attributes.int("axis", default: 0), rank: x.shape.count, context: "Split axis")
            return JoinGradientKernel(
                dtype, shape: x.shape, axis: axis, sizes: request.outputs.map { $0.shape[axis] }, split: true)
        }
    }

    // Sums over the broadcast dimensions.
    registry.registerGradient("Expand", backend: "cpu") { request in
        let x = try request.input(0)
        return try movementGradient(x.dtype, request) { dtype in
            ReduceGradientKernel(dtype, gradientShape: request.outputs[0].shape, inputShape: x.shape)
        }
    }

    // The output seen as [r0, d0, r1, d1, ...] reads the input with stride 0 along each repeat: sum over them.
    registry.registerGradient("Tile", backend: "cpu") { request in
        let x = try request.input(0)
        return try movementGradient(x.dtype, request) { dtype in
            let out = request.outputs[0].shape
            var gradientShape: [Int] = []
            var inputShape: [Int] = []
            for k in x.shape.indices {
                gradientShape += [x.shape[k] == 0 ? 0 : out[k] / x.shape[k], x.shape[k]]
                inputShape += [1, x.shape[k]]
            }
            return ReduceGradientKernel(dtype, gradientShape: gradientShape, inputShape: inputShape)
        }
    }

    registry.registerGradient("Pad", backend: "cpu") { request in
        let x = try request.input(0)
        return try movementGradient(x.dtype, request) { dtype in
            let mode = try request.attributes.string("mode", default: "constant")
            let (begin, end) = try OperatorSchema.padAmounts(x.shape.count, request.inputs)
            return try PadGradientKernel(
                dtype, input: x.shape, output: request.outputs[0].shape, begin: begin, end: end, mode: mode)
        }
    }

    // The gradient cast back to the input's type; nothing flows back from a non-float output.
    for type in ["Cast", "CastLike"] {
        registry.registerGradient(type, backend: "cpu") { request in
            let x = try request.input(0)
            let y = request.outputs[0]
            return try movementGradient(x.dtype, request) { dtype in
                guard y.dtype.isFloatingPoint else { return NoGradientKernel(nil) }
                return CastGradientKernel(from: dtype, to: y.dtype)
            }
        }
    }

    registerIndexingGradients(registry)
    registerResizeGradients(registry)
}

// MARK: - Shared

/// The backward of a node that moves `dtype` elements, made by `make` for float32 and float64. Other dtypes
/// (integer shape arithmetic, indices, masks) never carry a gradient, and a training run must still plan through
/// them: they get a kernel that reads nothing and fails only when a gradient is asked of it (float16, bfloat16).
func movementGradient(
    _ dtype: DType, _ request: KernelRequest, _ make: (DType) throws -> any GradientKernel
) throws -> any GradientKernel {
    guard dtype == .float32 || dtype == .float64 else {
        do {
            _ = try gradientType(dtype, request)
        } catch let error as AidgeError {
            return NoGradientKernel(error)
        }
        return NoGradientKernel(nil)
    }
    return try make(dtype)
}

/// Backward of a node through which no gradient flows: reads nothing, adds nothing; throws `error`, when given,
/// if an input gradient is asked of it.
final class NoGradientKernel: GradientKernel {
    let error: AidgeError?

    init(_ error: AidgeError?) { self.error = error }

    func readsInput(_ index: Int) -> Bool { false }
    func readsOutput(_ index: Int) -> Bool { false }

    func backward(_ pass: BackwardPass) throws {
        if let error, pass.inputGradients.contains(where: { $0 != nil }) { throw error }
    }
}

/// `dst[r * dstRow + j] += src[r * srcRow + j]` for `rows` rows of `length` elements, split over cores by
/// element ranges (rows never overlap in `dst`).
func addRows<T: GradientFloat>(
    _ dst: UnsafeMutablePointer<T>, dstRow: Int, _ src: UnsafePointer<T>, srcRow: Int, rows: Int, length: Int
) {
    let total = rows * length
    guard total > 0 else { return }
    Parallel.forEach(total, grain: 1 << 14) { range in
        var r = range.lowerBound / length
        var j = range.lowerBound % length
        var remaining = range.count
        while remaining > 0 {
            let n = min(length - j, remaining)
            let d = dst + r * dstRow + j
            let s = src + r * srcRow + j
            for i in 0..<n { d[i] += s[i] }
            remaining -= n
            r += 1
            j = 0
        }
    }
}

/// How to split `inner` elements into ranges so that `outer` times as many tasks keep every core busy (ranges
/// of at least 64 elements): the number of ranges and their length. Scatter-adds split work this way, by
/// destination, so that no two cores add into one element.
func innerRanges(outer: Int, inner: Int) -> (count: Int, length: Int) {
    let wanted = max(1, (4 * Parallel.threads + max(outer, 1) - 1) / max(outer, 1))
    let count = max(1, min(wanted, inner / 64))
    return (count, (inner + count - 1) / count)
}

/// The input and output gradient of a one-input node, or nil when there is nothing to do.
private func gradients(_ pass: BackwardPass) -> (dx: Tensor, dy: Tensor)? {
    guard let dx = pass.inputGradient(0), let dy = pass.outputGradient(0), dx.count > 0, dy.count > 0 else {
        return nil
    }
    return (dx, dy)
}

/// `dx += dy` over all of `dx`: the same elements in the same order (Identity and the reshapes, and Cast between
/// tensors of one float type).
private struct AddAll: GradientBody {
    let dx: Tensor, dy: Tensor
    func run<T: GradientFloat>(_: T.Type) {
        addRows(dx.pointer(as: T.self), dstRow: 0, dy.pointer(as: T.self), srcRow: 0, rows: 1, length: dx.count)
    }
}

// MARK: - Reshape, Flatten, Squeeze, Unsqueeze, Identity

/// `dx += dy`: the same elements in the same order.
final class PassGradientKernel: GradientKernel {
    let dtype: DType

    init(_ dtype: DType) { self.dtype = dtype }

    func readsInput(_ index: Int) -> Bool { false }
    func readsOutput(_ index: Int) -> Bool { false }

    func backward(_ pass: BackwardPass) throws {
        guard let (dx, dy) = gradients(pass) else { return }
        guard dx.count == dy.count else {
            throw AidgeError.shapeMismatch("a gradient of shape \(dy.shape) for an input of shape \(dx.shape)")
        }
        try dispatch(dtype, AddAll(dx: dx, dy: dy))
    }
}

// MARK: - Transpose, Slice

/// `dst[view] += src[view]`: one shape walked through two sets of element strides (negative ones included). The
/// destination view reaches each element at most once, so disjoint ranges of it run on separate cores.
/// Dimensions are simplified once (size-1 ones dropped, ones contiguous on both sides merged); when the source
/// is contiguous along some outer dimension (a transposition), the walk goes in tiles so both sides stay in cache.
struct StridedAdd {
    let count: Int
    let destinationOffset: Int
    let shape: [Int]
    let destination: [Int]
    let source: [Int]
    /// The outer dimension along which the source is contiguous, walked in tiles with the innermost one.
    let tiledAxis: Int?

    static let tile = 32

    init(shape: [Int], destination: [Int], source: [Int], destinationOffset: Int) {
        count = ShapeUtil.count(shape)
        self.destinationOffset = destinationOffset
        var dims: [(size: Int, d: Int, s: Int)] = []
        for k in shape.indices where shape[k] != 1 {
            if let last = dims.last, last.d == destination[k] * shape[k], last.s == source[k] * shape[k] {
                dims[dims.count - 1] = (last.size * shape[k], destination[k], source[k])
            } else {
                dims.append((shape[k], destination[k], source[k]))
            }
        }
        if dims.isEmpty { dims = [(1, 1, 1)] }
        self.shape = dims.map(\.size)
        self.destination = dims.map(\.d)
        self.source = dims.map(\.s)
        let rank = dims.count
        if count > 0, rank >= 2, dims[rank - 1].s != 1,
            let axis = dims.indices.dropLast().last(where: { dims[$0].s == 1 })
        {
            tiledAxis = axis
        } else {
            tiledAxis = nil
        }
    }

    func run<T: GradientFloat>(_ dst: UnsafeMutablePointer<T>, _ src: UnsafePointer<T>) {
        if count == 0 { return }
        if let axis = tiledAxis {
            tiled(dst + destinationOffset, src, axis)
        } else {
            rows(dst + destinationOffset, src)
        }
    }

    private func rows<T: GradientFloat>(_ d: UnsafeMutablePointer<T>, _ s: UnsafePointer<T>) {
        let (shape, dstStrides, srcStrides) = (self.shape, destination, source)
        let rank = shape.count
        let inner = shape[rank - 1]
        let di = dstStrides[rank - 1]
        let si = srcStrides[rank - 1]
        Parallel.forEach(count / inner, grain: max(1, (1 << 14) / inner)) { range in
            var index = [Int](repeating: 0, count: rank)
            var rest = range.lowerBound
            var dOff = 0
            var sOff = 0
            for k in stride(from: rank - 2, through: 0, by: -1) {
                index[k] = rest % shape[k]
                rest /= shape[k]
                dOff += index[k] * dstStrides[k]
                sOff += index[k] * srcStrides[k]
            }
            for _ in range {
                let dp = d + dOff
                let sp = s + sOff
                if di == 1 && si == 1 {
                    for i in 0..<inner { dp[i] += sp[i] }
                } else {
                    for i in 0..<inner { dp[i * di] += sp[i * si] }
                }
                var k = rank - 2
                while k >= 0 {
                    index[k] += 1
                    dOff += dstStrides[k]
                    sOff += srcStrides[k]
                    if index[k] < shape[k] { break }
                    dOff -= shape[k] * dstStrides[k]
                    sOff -= shape[k] * srcStrides[k]
                    index[k] = 0
                    k -= 1
                }
            }
        }
    }

    private func tiled<T: GradientFloat>(_ d: UnsafeMutablePointer<T>, _ s: UnsafePointer<T>, _ axis: Int) {
        let (shape, dstStrides, srcStrides) = (self.shape, destination, source)
        let rank = shape.count
        let columns = shape[rank - 1]
        let (dc, sc) = (dstStrides[rank - 1], srcStrides[rank - 1])
        let rows = shape[axis]
        let dr = dstStrides[axis]
        let outer = (0..<(rank - 1)).filter { $0 != axis }
        let outerCount = outer.reduce(1) { $0 * shape[$1] }
        let tile = StridedAdd.tile
        let rowBlocks = (rows + tile - 1) / tile
        let columnBlocks = (columns + tile - 1) / tile
        Parallel.forEach(outerCount * rowBlocks * columnBlocks, grain: max(1, (1 << 14) / (tile * tile))) { range in
            for task in range {
                let columnBlock = task % columnBlocks
                let rowBlock = (task / columnBlocks) % rowBlocks
                var rest = task / (columnBlocks * rowBlocks)
                var dOff = 0
                var sOff = 0
                for k in outer.reversed() {
                    let i = rest % shape[k]
                    rest /= shape[k]
                    dOff += i * dstStrides[k]
                    sOff += i * srcStrides[k]
                }
                let c0 = columnBlock * tile
                let c1 = min(c0 + tile, columns)
                for r in (rowBlock * tile)..<min(rowBlock * tile + tile, rows) {
                    // The source is contiguous along `axis`.
                    let dp = d + dOff + r * dr
                    let sp = s + sOff + r
                    for c in c0..<c1 { dp[c * dc] += sp[c * sc] }
                }
            }
        }
    }
}

/// Transpose and Slice: `dx[view] += dy[view]`.
final class StridedAddGradientKernel: GradientKernel {
    let dtype: DType
    let add: StridedAdd

    init(_ dtype: DType, _ add: StridedAdd) {
        self.dtype = dtype
        self.add = add
    }

    func readsInput(_ index: Int) -> Bool { false }
    func readsOutput(_ index: Int) -> Bool { false }

    func backward(_ pass: BackwardPass) throws {
        guard let (dx, dy) = gradients(pass) else { return }
        guard dy.count == add.count else {
            throw AidgeError.shapeMismatch("output gradient of shape \(dy.shape) was not planned")
        }
        try dispatch(dtype, Body(add: add, dx: dx, dy: dy))
    }

    private struct Body: GradientBody {
        let add: StridedAdd
        let dx: Tensor, dy: Tensor
        func run<T: GradientFloat>(_: T.Type) {
            add.run(dx.pointer(as: T.self), UnsafePointer(dy.pointer(as: T.self)))
        }
    }
}

// MARK: - Concat, Split

/// Concat (each input's gradient is its part of every row of the output gradient) and Split (each output's
/// gradient goes back into its part of the input's rows; an output without a gradient adds nothing).
final class JoinGradientKernel: GradientKernel {
    let dtype: DType
    let split: Bool
    let outer: Int
    /// Elements per outer index of each part, where each starts in a row of the whole, and the row's length.
    let parts: [Int]
    let starts: [Int]
    let row: Int

    init(_ dtype: DType, shape: [Int], axis: Int, sizes: [Int], split: Bool) {
        self.dtype = dtype
        self.split = split
        outer = ShapeUtil.count(Array(shape[..<axis]))
        let inner = ShapeUtil.count(Array(shape[(axis + 1)...]))
        parts = sizes.map { $0 * inner }
        var starts: [Int] = []
        var total = 0
        for p in parts {
            starts.append(total)
            total += p
        }
        self.starts = starts
        row = total
    }

    func readsInput(_ index: Int) -> Bool { false }
    func readsOutput(_ index: Int) -> Bool { false }

    func backward(_ pass: BackwardPass) throws {
        try dispatch(dtype, Body(kernel: self, pass: pass))
    }

    private struct Body: GradientBody {
        let kernel: JoinGradientKernel
        let pass: BackwardPass
        func run<T: GradientFloat>(_: T.Type) throws {
            let k = kernel
            if k.split {
                guard let dx = pass.inputGradient(0) else { return }
                guard dx.count == k.outer * k.row else { throw AidgeError.shapeMismatch("Split input gradient was not planned") }
                for (i, part) in k.parts.enumerated() {
                    guard let dy = pass.outputGradient(i) else { continue }
                    guard dy.count == k.outer * part else {
                        throw AidgeError.shapeMismatch("Split output gradient \(i) has shape \(dy.shape), not the planned size")
                    }
                    addRows(
                        dx.pointer(as: T.self) + k.starts[i], dstRow: k.row, dy.pointer(as: T.self), srcRow: part,
                        rows: k.outer, length: part)
                }
            } else {
                guard let dy = pass.outputGradient(0) else { return }
                guard dy.count == k.outer * k.row else { throw AidgeError.shapeMismatch("Concat output gradient was not planned") }
                for (i, part) in k.parts.enumerated() {
                    guard let dx = pass.inputGradient(i) else { continue }
                    guard dx.count == k.outer * part else {
                        throw AidgeError.shapeMismatch("Concat input gradient \(i) has shape \(dx.shape), not the planned size")
                    }
                    addRows(
                        dx.pointer(as: T.self), dstRow: part, dy.pointer(as: T.self) + k.starts[i], srcRow: k.row,
                        rows: k.outer, length: part)
                }
            }
        }
    }
}

// MARK: - Expand, Tile

/// Expand and Tile: the output gradient, seen with `gradientShape`, summed over the dimensions where the input
/// (seen with `inputShape`, right-aligned) has size 1.
///
/// Dimensions are classed as kept (the input's) or summed, size-1 ones dropped and neighbours of one class
/// merged; the input gradient is then contiguous over the kept ones. Work is split by input element (and by
/// ranges of a kept innermost dimension), each task adding every summed combination in order.
final class ReduceGradientKernel: GradientKernel {
    let dtype: DType
    let gradientCount: Int
    let inputCount: Int
    /// Whether the innermost merged dimension is kept (rows are added) or summed (runs are summed).
    let innerKept: Bool
    let inner: Int
    /// The other kept dimensions, and their strides in the gradient.
    let keptShape: [Int]
    let keptStrides: [Int]
    /// Gradient offset of every combination of the other summed dimensions.
    let summedOffsets: [Int]

    init(_ dtype: DType, gradientShape: [Int], inputShape: [Int]) {
        self.dtype = dtype
        gradientCount = ShapeUtil.count(gradientShape)
        inputCount = ShapeUtil.count(inputShape)
        let padded = Array(repeating: 1, count: max(gradientShape.count - inputShape.count, 0)) + inputShape
        let strides = ShapeUtil.contiguousStrides(gradientShape)
        var dims: [(size: Int, summed: Bool, stride: Int)] = []
        for k in gradientShape.indices where gradientShape[k] != 1 {
            let summed = padded[k] == 1
            if let last = dims.last, last.summed == summed {
                dims[dims.count - 1] = (last.size * gradientShape[k], summed, strides[k])
            } else {
                dims.append((gradientShape[k], summed, strides[k]))
            }
        }
        let last = dims.popLast() ?? (1, false, 1)
        innerKept = !last.summed
        inner = last.size
        let kept = dims.filter { !$0.summed }
        keptShape = kept.map(\.size)
        keptStrides = kept.map(\.stride)
        var offsets = [0]
        for d in dims where d.summed {
            offsets = offsets.flatMap { base in (0..<d.size).map { base + $0 * d.stride } }
        }
        summedOffsets = offsets
    }

    func readsInput(_ index: Int) -> Bool { false }
    func readsOutput(_ index: Int) -> Bool { false }

    func backward(_ pass: BackwardPass) throws {
        guard let (dx, dy) = gradients(pass) else { return }
        guard dx.count == inputCount, dy.count == gradientCount else {
            throw AidgeError.shapeMismatch("a gradient of shape \(dy.shape) for an input of shape \(dx.shape) was not planned")
        }
        try dispatch(dtype, Body(kernel: self, dx: dx, dy: dy))
    }

    private struct Body: GradientBody {
        let kernel: ReduceGradientKernel
        let dx: Tensor, dy: Tensor
        func run<T: GradientFloat>(_: T.Type) {
            let k = kernel
            let d = dx.pointer(as: T.self)
            let s = UnsafePointer(dy.pointer(as: T.self))
            let (keptShape, keptStrides, inner) = (k.keptShape, k.keptStrides, k.inner)
            let rows = ShapeUtil.count(keptShape)
            func base(_ row: Int) -> Int {
                var rest = row
                var offset = 0
                for j in stride(from: keptShape.count - 1, through: 0, by: -1) {
                    offset += rest % keptShape[j] * keptStrides[j]
                    rest /= keptShape[j]
                }
                return offset
            }
            k.summedOffsets.withUnsafeBufferPointer { summed in
                if k.innerKept {
                    // Rows of the input gradient, each the sum of its summed rows of the output gradient.
                    let (ranges, length) = innerRanges(outer: rows, inner: inner)
                    let grain = max(1, (1 << 14) / max(summed.count * length, 1))
                    Parallel.forEach(rows * ranges, grain: grain) { tasks in
                        for task in tasks {
                            let row = task / ranges
                            let c0 = (task % ranges) * length
                            let width = min(c0 + length, inner) - c0
                            if width <= 0 { continue }
                            let to = d + row * inner + c0
                            let from = s + base(row) + c0
                            for offset in summed {
                                let p = from + offset
                                for j in 0..<width { to[j] += p[j] }
                            }
                        }
                    }
                } else {
                    // Elements of the input gradient, each the sum of contiguous runs of the output gradient.
                    Parallel.forEach(rows, grain: max(1, (1 << 14) / max(summed.count * inner, 1))) { range in
                        for row in range {
                            let from = s + base(row)
                            var sum: T = 0
                            for offset in summed {
                                let p = from + offset
                                for j in 0..<inner { sum += p[j] }
                            }
                            d[row] += sum
                        }
                    }
                }
            }
        }
    }
}

// MARK: - Pad

/// Pad: every output element read one input element (or the constant); its gradient goes back there, so the
/// reflected, repeated and wrapped borders add into the elements they copy. Work is split by input row: for each
/// outer dimension, the output indices that read each input index are listed once, and a row gathers from the
/// output rows reading it, so no two cores add into one element. The mapping is the forward kernel's own.
final class PadGradientKernel: GradientKernel {
    let dtype: DType
    let map: PadKernel
    /// Input shape (a scalar as one element), and the input and output row lengths.
    let inputShape: [Int]
    let inputInner: Int
    let outputInner: Int
    /// Per outer dimension: for input index i, `outputs[k][start[k][i] ..< start[k][i + 1]]` are the output
    /// indices reading it, multiplied by the output's row stride (in rows) along that dimension.
    let start: [[Int]]
    let outputs: [[Int]]

    init(_ dtype: DType, input: [Int], output: [Int], begin: [Int], end: [Int], mode: String) throws {
        self.dtype = dtype
        map = try PadKernel(input: input, output: output, begin: begin, end: end, mode: mode, elementSize: 8)
        let rank = map.rank
        let inputShape = input.isEmpty ? [1] : input
        self.inputShape = inputShape
        inputInner = inputShape[rank - 1]
        outputInner = map.outShape[rank - 1]
        let inputStrides = ShapeUtil.contiguousStrides(inputShape)
        let outputRows = ShapeUtil.contiguousStrides(Array(map.outShape[..<(rank - 1)]))
        var start: [[Int]] = []
        var outputs: [[Int]] = []
        let empty = ShapeUtil.count(inputShape) == 0
        for k in 0..<(rank - 1) {
            var lists = [[Int]](repeating: [], count: empty ? 0 : inputShape[k])
            if !empty {
                for o in 0..<map.outShape[k] {
                    let m = map.maps[map.mapStart[k] + o]
                    if m >= 0 { lists[m / inputStrides[k]].append(o * outputRows[k]) }
                }
            }
            var offsets = [0]
            for list in lists { offsets.append(offsets[offsets.count - 1] + list.count) }
            start.append(offsets)
            outputs.append(lists.flatMap { $0 })
        }
        self.start = start
        self.outputs = outputs
    }

    func readsInput(_ index: Int) -> Bool { false }
    func readsOutput(_ index: Int) -> Bool { false }

    func backward(_ pass: BackwardPass) throws {
        guard let (dx, dy) = gradients(pass) else { return }
        guard dx.count == ShapeUtil.count(inputShape), dy.count == map.count else {
            throw AidgeError.shapeMismatch("Pad gradients do not have the planned shapes")
        }
        try dispatch(dtype, Body(kernel: self, dx: dx, dy: dy))
    }

    private struct Body: GradientBody {
        let kernel: PadGradientKernel
        let dx: Tensor, dy: Tensor
        func run<T: GradientFloat>(_: T.Type) {
            let k = kernel
            let d = dx.pointer(as: T.self)
            let s = UnsafePointer(dy.pointer(as: T.self))
            let outerRank = k.map.rank - 1
            let (inputShape, start, outputs) = (k.inputShape, k.start, k.outputs)
            let (inputInner, outputInner) = (k.inputInner, k.outputInner)
            let (lo, hi, source) = (k.map.interiorStart, k.map.interiorEnd, k.map.interiorSource)
            let rows = dx.count / inputInner
            k.map.maps.withUnsafeBufferPointer { maps in
                guard let base = maps.baseAddress else { return }
                let last = base + k.map.mapStart[outerRank]
                Parallel.forEach(rows, grain: max(1, (1 << 14) / max(outputInner, 1))) { range in
                    var begin = [Int](repeating: 0, count: outerRank)
                    var end = [Int](repeating: 0, count: outerRank)
                    var position = [Int](repeating: 0, count: outerRank)
                    rows: for row in range {
                        var rest = row
                        for j in stride(from: outerRank - 1, through: 0, by: -1) {
                            let i = rest % inputShape[j]
                            rest /= inputShape[j]
                            begin[j] = start[j][i]
                            end[j] = start[j][i + 1]
                            if begin[j] == end[j] { continue rows }
                            position[j] = begin[j]
                        }
                        let to = d + row * inputInner
                        // Every combination of the output indices reading this row's outer indices.
                        while true {
                            var outputRow = 0
                            for j in 0..<outerRank { outputRow += outputs[j][position[j]] }
                            let from = s + outputRow * outputInner
                            for o in 0..<lo where last[o] >= 0 { to[last[o]] += from[o] }
                            if hi > lo {
                                let a = to + source
                                let b = from + lo
                                for i in 0..<(hi - lo) { a[i] += b[i] }
                            }
                            for o in hi..<outputInner where last[o] >= 0 { to[last[o]] += from[o] }
                            var j = outerRank - 1
                            while j >= 0 {
                                position[j] += 1
                                if position[j] < end[j] { break }
                                position[j] = begin[j]
                                j -= 1
                            }
                            if j < 0 { break }
                        }
                    }
                }
            }
        }
    }
}

// MARK: - Cast

/// Cast and CastLike between float types: the output gradient converted back to the input's type.
final class CastGradientKernel: GradientKernel {
    let from: DType
    let to: DType

    init(from: DType, to: DType) {
        self.from = from
        self.to = to
    }

    func readsInput(_ index: Int) -> Bool { false }
    func readsOutput(_ index: Int) -> Bool { false }

    func backward(_ pass: BackwardPass) throws {
        guard let (dx, dy) = gradients(pass) else { return }
        guard dx.count == dy.count, dy.dtype == to, dx.dtype == from else {
            throw AidgeError.shapeMismatch("Cast gradients do not have the planned shapes and types")
        }
        if from == to {
            try dispatch(from, AddAll(dx: dx, dy: dy))
        } else if to == .float32 || to == .float64 {
            try dispatch(from, Converted(dx: dx, dy: dy, wide: to == .float64))
        } else {
            // float16 or bfloat16: converted first (castElements knows every type).
            let converted = Tensor(zeros: dy.shape, dtype: from)
            let (src, dst, to, from) = (UnsafeRawPointer(dy.rawPointer), converted.rawPointer, to, from)
            let (fromSize, toSize) = (from.byteSize, to.byteSize)
            Parallel.forEach(dy.count, grain: 1 << 15) { range in
                castElements(
                    src + range.lowerBound * toSize, to, dst + range.lowerBound * fromSize, from, range.count)
            }
            try dispatch(from, AddAll(dx: dx, dy: converted))
        }
    }

    /// `dx += T(dy)` with dy of the other float type.
    private struct Converted: GradientBody {
        let dx: Tensor, dy: Tensor
        let wide: Bool
        func run<T: GradientFloat>(_: T.Type) {
            if wide {
                convert(dx.pointer(as: T.self), dy.pointer(as: Double.self))
            } else {
                convert(dx.pointer(as: T.self), dy.pointer(as: Float.self))
            }
        }

        private func convert<T: GradientFloat, S: GradientFloat>(_ d: UnsafeMutablePointer<T>, _ s: UnsafeMutablePointer<S>) {
            Parallel.forEach(dx.count, grain: 1 << 14) { range in
                for i in range { d[i] += T(s[i]) }
            }
        }
    }
}

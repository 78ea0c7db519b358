import AidgeCore

/// The shared machinery of the element-wise, activation and reduction backwards: a gradient kernel made of a
/// specialised closure, and `BroadcastFold`, which sums per-element terms over an index space onto one operand
/// that broadcasting (or a reduction's kept dimensions) maps many elements to.

/// A backward whose work is a closure made by a generic factory: the closure runs code specialised for the
/// operator and the element type, whereas the `GradientKernel` witness of a generic class would run its
/// unspecialised form (see `ClosureKernel`).
final class ElementwiseBackward: GradientKernel {
    private let body: (BackwardPass) throws -> Void
    private let inputsRead: Set<Int>
    private let outputRead: Bool

    /// A backward that reads the forward inputs `inputs` (indices) and, with `output`, the forward output.
    init(reads inputs: Set<Int>, output: Bool, _ body: @escaping (BackwardPass) throws -> Void) {
        self.body = body
        inputsRead = inputs
        outputRead = output
    }

    func readsInput(_ index: Int) -> Bool { inputsRead.contains(index) }
    func readsOutput(_ index: Int) -> Bool { index == 0 && outputRead }
    func backward(_ pass: BackwardPass) throws { try body(pass) }
}

/// `tensor`'s elements as `T` after checking its dtype and element count against the plan, so that a tensor of
/// another size never makes a kernel read or write outside it.
@inline(__always)
func gradientElements<T: GradientFloat>(_ tensor: Tensor, _ count: Int, _ what: String) throws
    -> UnsafeMutablePointer<T>
{
    guard tensor.dtype == T.dtype, tensor.count == count else {
        throw AidgeError.shapeMismatch(
            "backward: \(what) planned as \(count) \(T.dtype) elements, got \(tensor.dtype) of shape \(tensor.shape)")
    }
    return tensor.pointer(as: T.self)
}

/// Σ term(i) for i < n, with four running sums (independent additions the compiler can pair into vector lanes).
@inline(__always)
func sumTerms<T: GradientFloat>(_ n: Int, _ term: (Int) -> T) -> T {
    var (s0, s1, s2, s3): (T, T, T, T) = (0, 0, 0, 0)
    var i = 0
    while i + 4 <= n {
        s0 += term(i)
        s1 += term(i + 1)
        s2 += term(i + 2)
        s3 += term(i + 3)
        i += 4
    }
    while i < n {
        s0 += term(i)
        i += 1
    }
    return (s0 + s1) + (s2 + s3)
}

/// Adds `term(i)` to `t[i]` (a run along the owner) or their sum to `t[0]` (a run the owner is broadcast over).
@inline(__always)
func foldRun<T: GradientFloat>(_ t: UnsafeMutablePointer<T>, kept: Bool, _ n: Int, _ term: (Int) -> T) {
    if kept {
        for i in 0..<n { t[i] += term(i) }
    } else {
        t[0] += sumTerms(n, term)
    }
}

/// An index space (a broadcast shape, or a reduction's input shape) and how several operands, each of a shape
/// that broadcasts to it, line up with its elements: dimensions of size 1 dropped and neighbours merged wherever
/// every operand allows it, so the innermost run has stride 0 or 1 for each operand.
///
/// `fold(onto:)` visits the space so that all the elements mapping to one element of the owner operand are
/// visited by one task, which can therefore sum into it without races: tasks split the owner's elements (outer
/// kept dimensions, and blocks of columns when the innermost run is kept), and loop over the dimensions the owner
/// is broadcast along. When the owner has too few elements to spread over the cores, those loops are split too,
/// into per-task partial results that are combined at the end.
struct BroadcastFold {
    /// Elements of the index space.
    let count: Int
    /// Merged dimension sizes, outermost first; the last is the innermost run (there is at least one).
    let sizes: [Int]
    /// Per operand slot, its element stride along each merged dimension (0 where it is broadcast).
    let strides: [[Int]]
    /// Per operand slot, its element count: tensors given at run time are checked against it.
    let counts: [Int]

    /// Columns of a block when the owner keeps the innermost run: a block's columns of every operand stay in
    /// cache while the broadcast dimensions are looped over.
    static let columnWidth = 1024
    /// Elements per parallel task.
    static let grain = 1 << 14

    /// The layout of the space `shape` for operands of shapes `operands` (each broadcastable to `shape`).
    init(shape: [Int], operands: [[Int]]) {
        let rank = shape.count
        count = ShapeUtil.count(shape)
        counts = operands.map { ShapeUtil.count($0) }
        let perSlot: [[Int]] = operands.map { operand in
            let aligned = [Int](repeating: 1, count: max(rank - operand.count, 0)) + operand.suffix(rank)
            let contiguous = ShapeUtil.contiguousStrides(aligned)
            return (0..<rank).map { aligned[$0] == 1 ? 0 : contiguous[$0] }
        }
        var merged: [Int] = []  // innermost first
        var mergedStrides = [[Int]](repeating: [], count: operands.count)
        for d in stride(from: rank - 1, through: 0, by: -1) where shape[d] != 1 {
            if let last = merged.last,
                operands.indices.allSatisfy({ perSlot[$0][d] == (mergedStrides[$0].last ?? 0) * last })
            {
                merged[merged.count - 1] = last * shape[d]
            } else {
                merged.append(shape[d])
                for k in operands.indices { mergedStrides[k].append(perSlot[k][d]) }
            }
        }
        if merged.isEmpty {
            merged = [1]
            mergedStrides = mergedStrides.map { _ in [0] }
        }
        sizes = merged.reversed()
        strides = mergedStrides.map { $0.reversed() }
    }

    /// 1 when operand `slot` advances along the innermost run, 0 when it repeats one value there.
    func innerStride(_ slot: Int) -> Int { strides[slot][sizes.count - 1] }

    /// Calls `body(base, offsets, n)` for every innermost run (or block of it) of the space: `offsets[k]` is the
    /// element offset of operand `k` at the run's first element, and `base + offsets[owner]` is where the owner's
    /// sums for that run go: `target` (the owner's buffer, `targetCount` elements), or a partial copy of it that
    /// is folded into `target` afterwards by addition (or by multiplication with `product`).
    func fold<T: GradientFloat>(
        onto owner: Int, _ target: UnsafeMutablePointer<T>, count targetCount: Int, product: Bool = false,
        _ body: (UnsafeMutablePointer<T>, UnsafePointer<Int>, Int) -> Void
    ) {
        if count == 0 || targetCount == 0 { return }
        let slots = strides.count
        let dims = sizes.count
        let inner = sizes[dims - 1]
        let ownerStrides = strides[owner]
        var keptSizes: [Int] = []
        var keptStrides: [Int] = []  // [dimension * slots + slot]
        var loopSizes: [Int] = []
        var loopStrides: [Int] = []
        for d in 0..<(dims - 1) {
            if ownerStrides[d] != 0 {
                keptSizes.append(sizes[d])
                for k in 0..<slots { keptStrides.append(strides[k][d]) }
            } else {
                loopSizes.append(sizes[d])
                for k in 0..<slots { loopStrides.append(strides[k][d]) }
            }
        }
        let innerStrides = (0..<slots).map { strides[$0][dims - 1] }
        // Tasks split the owner: its kept outer dimensions and, when it keeps the innermost run, blocks of columns.
        let innerKept = ownerStrides[dims - 1] != 0
        let width = innerKept ? min(inner, Self.columnWidth) : inner
        let blocks = (inner + width - 1) / width
        let units = ShapeUtil.count(keptSizes) * blocks
        // What one unit loops over, as positions: the loop dimensions' indices (each a block of columns), or, when
        // the owner is broadcast along the innermost run too, every element of the loops x inner runs. With too
        // few units for the cores, the positions are split into ranges with partial results.
        let loops = ShapeUtil.count(loopSizes)
        let rowLength = innerKept ? 1 : inner
        let span = loops * rowLength
        let threads = Parallel.threads
        let splits =
            units < threads && span > 1 && count >= 2 * Self.grain ? max(1, min(span, threads / units)) : 1
        var partials = [T](repeating: product ? 1 : 0, count: splits > 1 ? splits * targetCount : 0)
        let taskWork = max(1, count / (units * splits))
        partials.withUnsafeMutableBufferPointer { partialBuffer in
            let partialBase = partialBuffer.baseAddress
            Parallel.forEach(units * splits, grain: max(1, Self.grain / taskWork)) { range in
                let keptRank = keptSizes.count
                let loopRank = loopSizes.count
                withUnsafeTemporaryAllocation(of: Int.self, capacity: 3 * slots + keptRank + loopRank) { scratch in
                    guard let scratchBase = scratch.baseAddress else { return }
                    let keptOffsets = scratchBase
                    let offsets = scratchBase + slots
                    let runOffsets = scratchBase + 2 * slots
                    let keptIndex = scratchBase + 3 * slots
                    let loopIndex = keptIndex + keptRank
                    // Decode the first task: (kept index, block, split), split varying fastest.
                    var split = range.lowerBound % splits
                    var block = (range.lowerBound / splits) % blocks
                    var rest = range.lowerBound / splits / blocks
                    for k in 0..<slots { keptOffsets[k] = 0 }
                    var j = keptRank - 1
                    while j >= 0 {
                        let i = rest % keptSizes[j]
                        rest /= keptSizes[j]
                        keptIndex[j] = i
                        for k in 0..<slots { keptOffsets[k] += i * keptStrides[j * slots + k] }
                        j -= 1
                    }
                    for _ in range {
                        let first = span * split / splits
                        let last = span * (split + 1) / splits
                        var column = first % rowLength
                        var r = first / rowLength
                        for k in 0..<slots { offsets[k] = keptOffsets[k] + block * width * innerStrides[k] }
                        var jj = loopRank - 1
                        while jj >= 0 {
                            let i = r % loopSizes[jj]
                            r /= loopSizes[jj]
                            loopIndex[jj] = i
                            for k in 0..<slots { offsets[k] += i * loopStrides[jj * slots + k] }
                            jj -= 1
                        }
                        let base: UnsafeMutablePointer<T>
                        if splits > 1, let partialBase {
                            base = partialBase + split * targetCount
                        } else {
                            base = target
                        }
                        var position = first
                        if innerKept && loopRank > 0 {
                            // Rows of the innermost loop dimension back to back: short kept runs (a per-channel
                            // operand of a channels-last tensor) would otherwise pay the index bookkeeping per row.
                            let d = loopRank - 1
                            let n = min(width, inner - block * width)
                            while position < last {
                                let rows = min(loopSizes[d] - loopIndex[d], last - position)
                                for k in 0..<slots { runOffsets[k] = offsets[k] }
                                for _ in 0..<rows {
                                    body(base, runOffsets, n)
                                    for k in 0..<slots { runOffsets[k] += loopStrides[d * slots + k] }
                                }
                                position += rows
                                for k in 0..<slots { offsets[k] = runOffsets[k] }
                                loopIndex[d] += rows
                                var e = d
                                while e >= 0 && loopIndex[e] >= loopSizes[e] {
                                    for k in 0..<slots { offsets[k] -= loopSizes[e] * loopStrides[e * slots + k] }
                                    loopIndex[e] = 0
                                    e -= 1
                                    if e >= 0 {
                                        loopIndex[e] += 1
                                        for k in 0..<slots { offsets[k] += loopStrides[e * slots + k] }
                                    }
                                }
                            }
                        }
                        while position < last {
                            let n = innerKept ? min(width, inner - block * width) : min(inner - column, last - position)
                            for k in 0..<slots { runOffsets[k] = offsets[k] + column * innerStrides[k] }
                            body(base, runOffsets, n)
                            position += innerKept ? 1 : n
                            column = 0
                            var d = loopRank - 1
                            while d >= 0 {
                                loopIndex[d] += 1
                                for k in 0..<slots { offsets[k] += loopStrides[d * slots + k] }
                                if loopIndex[d] < loopSizes[d] { break }
                                for k in 0..<slots { offsets[k] -= loopSizes[d] * loopStrides[d * slots + k] }
                                loopIndex[d] = 0
                                d -= 1
                            }
                        }
                        // Next task: split, then block, then the kept index.
                        split += 1
                        if split < splits { continue }
                        split = 0
                        block += 1
                        if block < blocks { continue }
                        block = 0
                        var d = keptRank - 1
                        while d >= 0 {
                            keptIndex[d] += 1
                            for k in 0..<slots { keptOffsets[k] += keptStrides[d * slots + k] }
                            if keptIndex[d] < keptSizes[d] { break }
                            for k in 0..<slots { keptOffsets[k] -= keptSizes[d] * keptStrides[d * slots + k] }
                            keptIndex[d] = 0
                            d -= 1
                        }
                    }
                }
            }
            guard splits > 1, let partialBase else { return }
            Parallel.forEach(targetCount, grain: max(1, Self.grain / splits)) { range in
                for i in range {
                    var v = partialBase[i]
                    for s in 1..<splits {
                        v = product ? v * partialBase[s * targetCount + i] : v + partialBase[s * targetCount + i]
                    }
                    target[i] = product ? target[i] * v : target[i] + v
                }
            }
        }
    }
}

import AidgeCore

/// DeformConv (2-D), as ONNX's reference computes it: every kernel tap reads X bilinearly (zero outside the
/// image) at its regular place plus its offset, scaled by the mask. Blocks of output positions are worked on at
/// once: their column matrix (each input channel at each moved tap) is filled, then each output channel is the dot
/// product of its row of W with the columns of its group.
func registerDeformConvKernels(_ registry: KernelRegistry) {
    registry.register("DeformConv", backend: "cpu") { try makeKernel(DeformConvFamily(), $0) }
}

private struct DeformConvFamily: KernelFamily {
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        let g = try DeformConvGeometry(request.attributes, request.inputs)
        guard g.dtype == T.dtype else { throw request.unsupportedType(g.dtype) }
        let plan = DeformConvPlan(g)
        let hasBias = request.inputs.count > 3 && request.inputs[3] != nil
        let hasMask = request.inputs.count > 4 && request.inputs[4] != nil
        return ClosureKernel { inputs, outputs in
            let x = UnsafePointer(try presentInput(inputs, 0).pointer(as: T.self))
            let w = try presentInput(inputs, 1)
            let offsets = UnsafePointer(try presentInput(inputs, 2).pointer(as: T.self))
            let bias = hasBias ? UnsafePointer(try presentInput(inputs, 3).pointer(as: T.self)) : nil
            let mask = hasMask ? UnsafePointer(try presentInput(inputs, 4).pointer(as: T.self)) : nil
            let y = try firstOutput(outputs).pointer(as: T.self)
            // W in double, and one column block per thread: the only allocations of a run.
            let weights = w.doubles()
            let slots = Parallel.threads
            let columns = UnsafeMutablePointer<Double>.allocate(capacity: max(slots * plan.block * plan.rows, 1))
            defer { columns.deallocate() }
            weights.withUnsafeBufferPointer { weights in
                guard let weights = weights.baseAddress else { return }
                Parallel.forEachItem(plan.batch * plan.blocks, slots: slots) { slot, item in
                    let n = item / plan.blocks
                    let start = (item % plan.blocks) * plan.block
                    let count = min(plan.block, plan.positions - start)
                    let block = columns + slot * plan.block * plan.rows
                    plan.fillColumns(n, start, count, x, offsets, mask, into: block)
                    plan.multiply(n, start, count, block, weights, bias, y)
                }
            }
        }
    }
}

/// The sizes of one DeformConv node, and the two steps of a block of output positions.
private struct DeformConvPlan {
    let batch: Int, channels: Int, height: Int, width: Int
    let kernelHeight: Int, kernelWidth: Int
    let strideH: Int, strideW: Int, dilationH: Int, dilationW: Int, padH: Int, padW: Int
    let outHeight: Int, outWidth: Int
    let outChannels: Int, groups: Int, offsetGroups: Int
    var positions: Int { outHeight * outWidth }
    var taps: Int { kernelHeight * kernelWidth }
    /// Column length: every input channel at every tap.
    var rows: Int { channels * taps }
    /// Output positions per block.
    let block: Int
    var blocks: Int { (positions + block - 1) / block }

    init(_ g: DeformConvGeometry) {
        batch = g.batch
        channels = g.inChannels
        (height, width) = (g.window.input[0], g.window.input[1])
        (kernelHeight, kernelWidth) = (g.window.kernel[0], g.window.kernel[1])
        (strideH, strideW) = (g.window.strides[0], g.window.strides[1])
        (dilationH, dilationW) = (g.window.dilations[0], g.window.dilations[1])
        (padH, padW) = (g.window.padsBegin[0], g.window.padsBegin[1])
        (outHeight, outWidth) = (g.window.output[0], g.window.output[1])
        outChannels = g.outChannels
        groups = g.group
        offsetGroups = g.offsetGroup
        // About 256 KiB of columns per thread.
        block = max(1, min(g.window.output[0] * g.window.output[1], (1 << 15) / max(g.inChannels * g.taps, 1)))
    }

    /// Columns of positions `start..<start+count` of image `n`: `columns[p * rows + c * taps + t]` is channel `c`
    /// read at tap `t` of position `start + p`, moved and masked.
    func fillColumns<T: MathFloat>(
        _ n: Int, _ start: Int, _ count: Int, _ x: UnsafePointer<T>, _ offsets: UnsafePointer<T>, _ mask: UnsafePointer<T>?,
        into columns: UnsafeMutablePointer<Double>
    ) {
        let plane = height * width
        let perOffsetGroup = channels / offsetGroups
        let image = x + n * channels * plane
        let offset = offsets + n * offsetGroups * taps * 2 * positions
        let scale = mask.map { $0 + n * offsetGroups * taps * positions }
        for p in 0..<count {
            let position = start + p
            let (i, j) = (position / outWidth, position % outWidth)
            let column = columns + p * rows
            for og in 0..<offsetGroups {
                for t in 0..<taps {
                    let (ki, kj) = (t / kernelWidth, t % kernelWidth)
                    let pair = (og * taps + t) * 2
                    let yy = Double(i * strideH - padH + ki * dilationH) + Double(offset[pair * positions + position])
                    let xx = Double(j * strideW - padW + kj * dilationW) + Double(offset[(pair + 1) * positions + position])
                    let m = scale.map { Double($0[(og * taps + t) * positions + position]) } ?? 1
                    // The four neighbours and their weights; one outside the image reads zero (weight 0).
                    let (y0, x0) = (yy.rounded(.down), xx.rounded(.down))
                    let (ly, lx) = (yy - y0, xx - x0)
                    let (top, left) = (Int(exactly: y0) ?? Int.min / 2, Int(exactly: x0) ?? Int.min / 2)
                    let rowIn0 = top >= 0 && top < height
                    let rowIn1 = top + 1 >= 0 && top + 1 < height
                    let colIn0 = left >= 0 && left < width
                    let colIn1 = left + 1 >= 0 && left + 1 < width
                    let w00 = rowIn0 && colIn0 ? (1 - ly) * (1 - lx) * m : 0
                    let w01 = rowIn0 && colIn1 ? (1 - ly) * lx * m : 0
                    let w10 = rowIn1 && colIn0 ? ly * (1 - lx) * m : 0
                    let w11 = rowIn1 && colIn1 ? ly * lx * m : 0
                    // Out-of-image neighbours read pixel 0 with weight 0.
                    let i00 = w00 != 0 ? top * width + left : 0
                    let i01 = w01 != 0 ? top * width + left + 1 : 0
                    let i10 = w10 != 0 ? (top + 1) * width + left : 0
                    let i11 = w11 != 0 ? (top + 1) * width + left + 1 : 0
                    for c in (og * perOffsetGroup)..<((og + 1) * perOffsetGroup) {
                        let source = image + c * plane
                        column[c * taps + t] =
                            w00 * Double(source[i00]) + w01 * Double(source[i01]) + w10 * Double(source[i10])
                            + w11 * Double(source[i11])
                    }
                }
            }
        }
    }

    /// `y[n, o, start + p] = B[o] + W[o] · columns[p, group of o]` for the block's positions.
    func multiply<T: MathFloat>(
        _ n: Int, _ start: Int, _ count: Int, _ columns: UnsafeMutablePointer<Double>, _ weights: UnsafePointer<Double>,
        _ bias: UnsafePointer<T>?, _ y: UnsafeMutablePointer<T>
    ) {
        let outPerGroup = outChannels / groups
        let groupRows = channels / groups * taps
        for o in 0..<outChannels {
            let row = weights + o * groupRows
            let first = (o / outPerGroup) * groupRows
            let b = bias.map { Double($0[o]) } ?? 0
            let out = y + (n * outChannels + o) * positions + start
            for p in 0..<count {
                let column = columns + p * rows + first
                var sum = 0.0
                for r in 0..<groupRows { sum += row[r] * column[r] }
                out[p] = T(sum + b)
            }
        }
    }
}

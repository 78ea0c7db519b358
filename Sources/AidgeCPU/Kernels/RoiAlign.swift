import AidgeCore

/// RoiAlign: each region of interest is cut into output_height x output_width bins, each bin sampled on a grid
/// of bilinear points (sampling_ratio per side, or as many as the bin spans) and averaged or maxed, as ONNX's
/// reference (Detectron's) computes it.
func registerRoiAlignKernels(_ registry: KernelRegistry) {
    registry.register("RoiAlign", backend: "cpu") { try makeKernel(RoiAlignFamily(), $0) }
}

private struct RoiAlignFamily: KernelFamily {
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        let x = try request.input(0)
        guard try request.input(1).dtype == x.dtype else { throw request.unsupportedType(try request.input(1).dtype) }
        let (channels, height, width) = (x.shape[1], x.shape[2], x.shape[3])
        let batches = x.shape[0]
        let out = request.outputs[0].shape
        let (regions, pooledHeight, pooledWidth) = (out[0], out[2], out[3])
        let a = request.attributes
        let halfPixel = try a.string("coordinate_transformation_mode", default: "half_pixel") == "half_pixel"
        let maxMode = try a.string("mode", default: "avg") == "max"
        let samplingRatio = try a.int("sampling_ratio", default: 0)
        let spatialScale = Double(try a.float("spatial_scale", default: 1))
        let node = request.nodeName
        return ClosureKernel { inputs, outputs in
            let data = try presentInput(inputs, 0).pointer(as: T.self)
            let rois = try presentInput(inputs, 1).pointer(as: T.self)
            let batchIndices = try presentInput(inputs, 2).integers()
            let y = try firstOutput(outputs).pointer(as: T.self)
            for r in 0..<regions {
                let batch = batchIndices[r]
                guard batch >= 0 && batch < batches else {
                    throw AidgeError.invalidArgument("RoiAlign node \(node): batch index \(batch) of region \(r) is out of range")
                }
                let offset = halfPixel ? 0.5 : 0
                let startW = Double(rois[r * 4]) * spatialScale - offset
                let startH = Double(rois[r * 4 + 1]) * spatialScale - offset
                var roiWidth = Double(rois[r * 4 + 2]) * spatialScale - offset - startW
                var roiHeight = Double(rois[r * 4 + 3]) * spatialScale - offset - startH
                if !halfPixel {
                    roiWidth = max(roiWidth, 1)
                    roiHeight = max(roiHeight, 1)
                }
                let binHeight = roiHeight / Double(pooledHeight)
                let binWidth = roiWidth / Double(pooledWidth)
                let gridH = samplingRatio > 0 ? samplingRatio : Int((roiHeight / Double(pooledHeight)).rounded(.up))
                let gridW = samplingRatio > 0 ? samplingRatio : Int((roiWidth / Double(pooledWidth)).rounded(.up))
                let count = Double(max(gridH * gridW, 1))
                // The four taps and weights of every sample point of every bin, shared by the channels.
                var taps: [(positions: (Int, Int, Int, Int), weights: (Double, Double, Double, Double))] = []
                for ph in 0..<pooledHeight {
                    for pw in 0..<pooledWidth {
                        for iy in 0..<max(gridH, 0) {
                            let yy = startH + Double(ph) * binHeight + (Double(iy) + 0.5) * binHeight / Double(gridH)
                            for ix in 0..<max(gridW, 0) {
                                let xx = startW + Double(pw) * binWidth + (Double(ix) + 0.5) * binWidth / Double(gridW)
                                if yy < -1 || yy > Double(height) || xx < -1 || xx > Double(width) {
                                    taps.append(((0, 0, 0, 0), (0, 0, 0, 0)))
                                    continue
                                }
                                let (yLow, yHigh, ly) = taps1D(max(yy, 0), height)
                                let (xLow, xHigh, lx) = taps1D(max(xx, 0), width)
                                let (hy, hx) = (1 - ly, 1 - lx)
                                taps.append((
                                    (yLow * width + xLow, yLow * width + xHigh, yHigh * width + xLow, yHigh * width + xHigh),
                                    (hy * hx, hy * lx, ly * hx, ly * lx)
                                ))
                            }
                        }
                    }
                }
                let perBin = max(gridH, 0) * max(gridW, 0)
                for c in 0..<channels {
                    let plane = data + (batch * channels + c) * height * width
                    for bin in 0..<(pooledHeight * pooledWidth) {
                        var value = 0.0
                        for k in 0..<perBin {
                            let tap = taps[bin * perBin + k]
                            let (p, w) = (tap.positions, tap.weights)
                            let terms = (w.0 * Double(plane[p.0]), w.1 * Double(plane[p.1]), w.2 * Double(plane[p.2]), w.3 * Double(plane[p.3]))
                            if maxMode {
                                let m = max(max(terms.0, terms.1), max(terms.2, terms.3))
                                value = k == 0 ? m : max(value, m)
                            } else {
                                value += terms.0 + terms.1 + terms.2 + terms.3
                            }
                        }
                        y[(r * channels + c) * pooledHeight * pooledWidth + bin] = T(maxMode ? value : value / count)
                    }
                }
            }
        }
    }
}

/// The two taps around `position` along a dimension of `size` (both the last element past its end) and the
/// fraction past the first.
private func taps1D(_ position: Double, _ size: Int) -> (low: Int, high: Int, fraction: Double) {
    let low = Int(position)
    if low >= size - 1 { return (size - 1, size - 1, 0) }
    return (low, low + 1, position - Double(low))
}

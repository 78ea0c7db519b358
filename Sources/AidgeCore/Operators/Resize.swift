/// Resize (opset 13+ form: inputs X, roi, scales, sizes; opset 18/19 attributes) and the older Upsample
/// (inputs X, scales; sampling at `x / scale`, nearest rounding down).

/// The geometry of a Resize node: output shape, per-axis scale and region of interest, and the sampling
/// attributes. Shared by the schema and the kernels.
public struct ResizeGeometry: Sendable {
    public enum Mode: String, Sendable {
        case nearest, linear, cubic
    }

    /// How an output index maps to a coordinate in the input (ONNX's `coordinate_transformation_mode`).
    public enum CoordinateMode: String, Sendable {
        case halfPixel = "half_pixel"
        case halfPixelSymmetric = "half_pixel_symmetric"
        case pytorchHalfPixel = "pytorch_half_pixel"
        case alignCorners = "align_corners"
        case asymmetric
        case tfHalfPixelForNN = "tf_half_pixel_for_nn"
        case tfCropAndResize = "tf_crop_and_resize"
    }

    /// How `nearest` rounds a coordinate to an input index.
    public enum NearestMode: String, Sendable {
        case roundPreferFloor = "round_prefer_floor"
        case roundPreferCeil = "round_prefer_ceil"
        case floor, ceil
    }

    public let mode: Mode
    public let coordinateMode: CoordinateMode
    public let nearestMode: NearestMode
    public let cubicCoefficientA: Double
    public let excludeOutside: Bool
    public let extrapolationValue: Double
    public let antialias: Bool
    public let inputShape: [Int]
    public let outputShape: [Int]
    /// Scale of each dimension (1 where it is not resized).
    public let scales: [Double]
    /// Region of interest of each dimension, in normalised input coordinates (tf_crop_and_resize).
    public let roiStart: [Double]
    public let roiEnd: [Double]

    /// Reads a `Resize` node (or an `Upsample` one when `type` is "Upsample"). Scales, sizes and roi must be
    /// known when planning.
    public init(type: String, attributes: Attributes, inputs: [ValueInfo?]) throws {
        let x = try inputs.required(0)
        let rank = x.shape.count
        inputShape = x.shape
        let upsample = type == "Upsample"
        let modeName = try attributes.string("mode", default: "nearest")
        guard let mode = Mode(rawValue: modeName == "bilinear" ? "linear" : modeName) else {
            throw AidgeError.invalidArgument("\(type) mode '\(modeName)' is not nearest, linear or cubic")
        }
        self.mode = mode
        let coordinateName =
            upsample ? "asymmetric" : try attributes.string("coordinate_transformation_mode", default: "half_pixel")
        guard let coordinateMode = CoordinateMode(rawValue: coordinateName) else {
            throw AidgeError.invalidArgument("\(type) coordinate_transformation_mode '\(coordinateName)' is not known")
        }
        self.coordinateMode = coordinateMode
        let nearestName = upsample ? "floor" : try attributes.string("nearest_mode", default: "round_prefer_floor")
        guard let nearestMode = NearestMode(rawValue: nearestName) else {
            throw AidgeError.invalidArgument("\(type) nearest_mode '\(nearestName)' is not known")
        }
        self.nearestMode = nearestMode
        cubicCoefficientA = Double(try attributes.float("cubic_coeff_a", default: -0.75))
        excludeOutside = try attributes.int("exclude_outside", default: 0) != 0
        extrapolationValue = Double(try attributes.float("extrapolation_value", default: 0))
        antialias = try attributes.int("antialias", default: 0) != 0
        if antialias && mode == .nearest {
            throw AidgeError.unsupported("\(type) antialias applies to linear and cubic modes, not nearest")
        }

        // The resized axes (all by default), and per-axis values given for them.
        let axes = try attributes.has("axes")
            ? ShapeOperators.axes(try attributes.ints("axes"), rank: rank, context: type) : Array(0..<rank)
        func perAxis(_ values: [Double], _ what: String, fill: Double, factor: Int = 1) throws -> [Double] {
            guard values.count == factor * axes.count else {
                throw AidgeError.shapeMismatch(
                    "\(type) \(what) has \(values.count) values; expected \(factor * axes.count) for input shape "
                        + "\(x.shape)\(axes.count == rank ? "" : " and axes \(axes)")")
            }
            var full = [Double](repeating: fill, count: factor * rank)
            for (k, a) in axes.enumerated() {
                for f in 0..<factor { full[f * rank + a] = values[f * axes.count + k] }
            }
            return full
        }
        func known(_ i: Int, _ what: String) throws -> Tensor? {
            guard let info = inputs.optional(i), info.count > 0 else { return nil }
            return try inputs.constant(i, "\(type) \(what)")
        }

        let scalesIndex = upsample ? 1 : 2
        var roiStart = [Double](repeating: 0, count: rank)
        var roiEnd = [Double](repeating: 1, count: rank)
        if !upsample, coordinateMode == .tfCropAndResize, let roi = try known(1, "roi") {
            guard roi.dtype.isFloatingPoint else {
                throw AidgeError.unsupportedType("\(type) roi must be a float tensor, got \(roi.dtype)")
            }
            let full = try perAxis(roi.doubles(), "roi", fill: 0, factor: 2)
            for a in axes {
                roiStart[a] = full[a]
                roiEnd[a] = full[rank + a]
            }
        }
        self.roiStart = roiStart
        self.roiEnd = roiEnd

        var scales = [Double](repeating: 1, count: rank)
        var output = x.shape
        if let given = try known(scalesIndex, "scales") {
            guard given.dtype.isFloatingPoint else {
                throw AidgeError.unsupportedType("\(type) scales must be a float tensor, got \(given.dtype)")
            }
            let values = try perAxis(given.doubles(), "scales", fill: 1)
            for a in axes {
                let s = values[a]
                guard s > 0, s.isFinite else {
                    throw AidgeError.invalidArgument("\(type) scale \(s) of axis \(a) is not a positive number")
                }
                scales[a] = s
                let size = (Double(x.shape[a]) * s).rounded(.down)
                guard size < Double(Int32.max) else {
                    throw AidgeError.invalidArgument("\(type) scale \(s) makes axis \(a) too large")
                }
                output[a] = Int(size)
            }
        } else if !upsample, let given = try known(3, "sizes") {
            guard given.dtype == .int64 || given.dtype == .int32 else {
                throw AidgeError.unsupportedType("\(type) sizes must be int64, got \(given.dtype)")
            }
            let values = given.integers()
            if let bad = values.first(where: { $0 < 0 || $0 >= Int(Int32.max) }) {
                throw AidgeError.invalidArgument("\(type) size \(bad) is negative or too large")
            }
            let sizes = try perAxis(values.map(Double.init), "sizes", fill: 0).map { Int($0) }
            for a in axes {
                guard x.shape[a] > 0 else {
                    throw AidgeError.shapeMismatch("\(type) cannot resize axis \(a) of size 0 to \(sizes[a])")
                }
                scales[a] = Double(sizes[a]) / Double(x.shape[a])
                output[a] = sizes[a]
            }
            let policy = try attributes.string("keep_aspect_ratio_policy", default: "stretch")
            if policy != "stretch" {
                guard policy == "not_larger" || policy == "not_smaller", !axes.isEmpty else {
                    throw AidgeError.invalidArgument("\(type) keep_aspect_ratio_policy '\(policy)' is not known")
                }
                let chosen = axes.map { scales[$0] }
                let s = (policy == "not_larger" ? chosen.min() : chosen.max()) ?? 1
                for a in axes {
                    scales[a] = s
                    output[a] = Int(s * Double(x.shape[a]) + 0.5)
                }
            }
        } else {
            throw AidgeError.invalidModel("\(type) needs scales or sizes (a non-empty input known when planning)")
        }
        for a in 0..<rank where x.shape[a] == 0 && output[a] > 0 {
            throw AidgeError.shapeMismatch("\(type) cannot resize axis \(a) of size 0 to \(output[a])")
        }
        self.scales = scales
        outputShape = output
    }

    /// The input coordinate that output index `x` of `axis` samples.
    public func sourceCoordinate(_ x: Int, axis: Int) -> Double {
        let scale = scales[axis]
        let length = Double(inputShape[axis])
        let resized = outputShape[axis]
        let xr = Double(x)
        switch coordinateMode {
        case .halfPixel:
            return (xr + 0.5) / scale - 0.5
        case .halfPixelSymmetric:
            let adjustment = Double(resized) / (scale * length)
            let offset = length / 2 * (1 - adjustment)
            return offset + (xr + 0.5) / scale - 0.5
        case .pytorchHalfPixel:
            return resized > 1 ? (xr + 0.5) / scale - 0.5 : 0
        case .alignCorners:
            // The resized length is length · scale before rounding, as ONNX defines it.
            return resized > 1 ? xr * (length - 1) / (length * scale - 1) : 0
        case .asymmetric:
            return xr / scale
        case .tfHalfPixelForNN:
            return (xr + 0.5) / scale
        case .tfCropAndResize:
            let start = roiStart[axis]
            let end = roiEnd[axis]
            return resized > 1
                ? start * (length - 1) + xr * (end - start) * (length - 1) / Double(resized - 1)
                : 0.5 * (start + end) * (length - 1)
        }
    }

    /// Whether a source coordinate of `axis` lies outside the input, where tf_crop_and_resize writes
    /// `extrapolation_value`.
    public func isExtrapolated(_ coordinate: Double, axis: Int) -> Bool {
        coordinateMode == .tfCropAndResize && (coordinate < 0 || coordinate > Double(inputShape[axis] - 1))
    }
}

extension OperatorSchema {
    static let resizeSchemas: [OperatorSchema] = [
        OperatorSchema("Resize", inputs: ["X", "roi", "scales", "sizes"], minInputs: 1, nonDifferentiable: [1, 2]) { attributes, inputs in
            let x = try inputs.required(0)
            let geometry = try ResizeGeometry(type: "Resize", attributes: attributes, inputs: inputs)
            return [ValueInfo(dtype: x.dtype, shape: geometry.outputShape)]
        },
        OperatorSchema("Upsample", inputs: ["X", "scales"], nonDifferentiable: [1]) { attributes, inputs in
            let x = try inputs.required(0)
            let geometry = try ResizeGeometry(type: "Upsample", attributes: attributes, inputs: inputs)
            return [ValueInfo(dtype: x.dtype, shape: geometry.outputShape)]
        },
        // Samples X (N, C, D1…Dr) at the normalised points of grid (N, H1…Hk, r), last coordinate first.
        OperatorSchema("GridSample", inputs: ["X", "grid"]) { attributes, inputs in
            let x = try inputs.required(0)
            let grid = try inputs.required(1)
            try expect(x, in: [.float32, .float64, .float16], "X")
            try expect(grid, in: [.float32, .float64, .float16], "grid")
            let r = x.shape.count - 2
            guard r >= 1, grid.shape.count == r + 2, grid.shape[0] == x.shape[0], grid.shape.last == r else {
                throw AidgeError.shapeMismatch(
                    "GridSample needs X (N, C, D1…Dr) and grid (N, H1…Hr, r), got \(ShapeUtil.text(x.shape)) and "
                        + "\(ShapeUtil.text(grid.shape))")
            }
            let mode = try attributes.string("mode", default: "linear")
            guard ["linear", "bilinear", "nearest", "cubic", "bicubic"].contains(mode) else {
                throw AidgeError.invalidModel("GridSample mode '\(mode)' is not one of linear, nearest, cubic")
            }
            let padding = try attributes.string("padding_mode", default: "zeros")
            guard ["zeros", "border", "reflection"].contains(padding) else {
                throw AidgeError.invalidModel("GridSample padding_mode '\(padding)' is not one of zeros, border, reflection")
            }
            return [ValueInfo(dtype: x.dtype, shape: Array(x.shape.prefix(2)) + grid.shape.dropFirst().dropLast())]
        },
        // The sampling grid (N, D1…Dr, r) of theta (N, r, r + 1) for an output of size (N, C, D1…Dr).
        OperatorSchema("AffineGrid", inputs: ["theta", "size"]) { attributes, inputs in
            let theta = try inputs.required(0)
            try expect(theta, in: [.float32, .float64, .float16], "AffineGrid theta")
            let size = try inputs.constant(1, "AffineGrid size").integers()
            let r = size.count - 2
            guard r == 2 || r == 3, theta.shape == [size[0], r, r + 1], size.allSatisfy({ $0 >= 0 }) else {
                throw AidgeError.shapeMismatch(
                    "AffineGrid needs theta (N, 2, 3) with size (N, C, H, W), or (N, 3, 4) with (N, C, D, H, W); got "
                        + "\(ShapeUtil.text(theta.shape)) and \(size)")
            }
            return [ValueInfo(dtype: theta.dtype, shape: [size[0]] + size.dropFirst(2) + [r])]
        },
    ]
}

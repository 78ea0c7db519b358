import AidgeCPU
import AidgeCore
import XCTest

/// Conv and ConvTranspose against direct loops written from the ONNX specification.
final class ConvolutionTests: XCTestCase {
    /// Explicit geometry of a reference convolution (pads already resolved).
    struct Spec {
        var x: [Int]  // N, C, spatial...
        var w: [Int]  // M, C/group, k...
        var group = 1
        var strides: [Int]? = nil
        var dilations: [Int]? = nil
        var pads: [Int]? = nil
        var autoPad: String? = nil
        var bias = true
        /// A fused Relu or Clip (ONNX Runtime's FusedConv attributes).
        var activation: String? = nil
        var activationParams: [Float] = []

        var rank: Int { x.count - 2 }
        var attributes: Attributes {
            var a: Attributes = ["group": .int(group)]
            if let strides { a["strides"] = .ints(strides) }
            if let dilations { a["dilations"] = .ints(dilations) }
            if let pads { a["pads"] = .ints(pads) }
            if let autoPad { a["auto_pad"] = .string(autoPad) }
            if let activation {
                a["activation"] = .string(activation)
                if !activationParams.isEmpty { a["activation_params"] = .floats(activationParams) }
            }
            return a
        }

        /// The fused activation applied to a reference value.
        func activate(_ v: Double) -> Double {
            switch activation {
            case "Relu": return max(v, 0)
            case "Clip": return min(max(v, Double(activationParams[0])), Double(activationParams[1]))
            default: return v
            }
        }
    }

    /// Direct convolution in Double over any number of spatial axes, pads resolved as the ONNX spec says.
    static func convReference(_ s: Spec, _ x: [Float], _ w: [Float], _ b: [Float]?) -> ([Double], [Int]) {
        let n = s.rank
        let input = Array(s.x[2...])
        let kernel = Array(s.w[2...])
        let strides = s.strides ?? [Int](repeating: 1, count: n)
        let dil = s.dilations ?? [Int](repeating: 1, count: n)
        var pb = [Int](repeating: 0, count: n)
        var out = [Int](repeating: 0, count: n)
        for i in 0..<n {
            let ext = (kernel[i] - 1) * dil[i] + 1
            switch s.autoPad {
            case "SAME_UPPER", "SAME_LOWER":
                out[i] = (input[i] + strides[i] - 1) / strides[i]
                let total = max(0, (out[i] - 1) * strides[i] + ext - input[i])
                pb[i] = s.autoPad == "SAME_UPPER" ? total / 2 : (total + 1) / 2
            case "VALID":
                out[i] = (input[i] - ext) / strides[i] + 1
            default:
                let pads = s.pads ?? [Int](repeating: 0, count: 2 * n)
                pb[i] = pads[i]
                out[i] = (input[i] + pads[i] + pads[i + n] - ext) / strides[i] + 1
            }
        }
        let batch = s.x[0], cin = s.x[1], cout = s.w[0], cg = s.w[1]
        let mg = cout / s.group
        let outCount = out.reduce(1, *)
        let inCount = input.reduce(1, *)
        let kCount = kernel.reduce(1, *)
        var y = [Double](repeating: 0, count: batch * cout * outCount)
        let kernelIndices: [[Int]] = (0..<kCount).map { kk in
            var kIdx = [Int](repeating: 0, count: n)
            var q = kk
            for i in stride(from: n - 1, through: 0, by: -1) { kIdx[i] = q % kernel[i]; q /= kernel[i] }
            return kIdx
        }
        for bi in 0..<batch {
            for oc in 0..<cout {
                let gi = oc / mg
                for o in 0..<outCount {
                    var oIdx = [Int](repeating: 0, count: n)
                    var r = o
                    for i in stride(from: n - 1, through: 0, by: -1) { oIdx[i] = r % out[i]; r /= out[i] }
                    var acc = Double(b?[oc] ?? 0)
                    for c in 0..<cg {
                        for kk in 0..<kCount {
                            let kIdx = kernelIndices[kk]
                            var inside = true
                            var flat = 0
                            for i in 0..<n {
                                let p = oIdx[i] * strides[i] - pb[i] + kIdx[i] * dil[i]
                                if p < 0 || p >= input[i] { inside = false; break }
                                flat = flat * input[i] + p
                            }
                            if !inside { continue }
                            let xv = x[(bi * cin + gi * cg + c) * inCount + flat]
                            let wv = w[(oc * cg + c) * kCount + kk]
                            acc += Double(xv) * Double(wv)
                        }
                    }
                    y[(bi * cout + oc) * outCount + o] = s.activate(acc)
                }
            }
        }
        return (y, [batch, cout] + out)
    }

    private func check(_ s: Spec, constants: Set<Int> = [1, 2], file: StaticString = #filePath, line: UInt = #line) throws {
        let x = randomFloats(s.x.reduce(1, *), seed: 5)
        let w = randomFloats(s.w.reduce(1, *), seed: 6)
        let b = s.bias ? randomFloats(s.w[0], seed: 7) : nil
        var inputs: [Tensor?] = [try Tensor(x, shape: s.x), try Tensor(w, shape: s.w)]
        if let b { inputs.append(try Tensor(b, shape: [s.w[0]])) }
        let out = try runOperator("Conv", s.attributes, inputs: inputs, constants: constants)
        let (expected, shape) = Self.convReference(s, x, w, b)
        XCTAssertEqual(out[0].shape, shape, "\(s)", file: file, line: line)
        assertClose(
            try out[0].scalars(as: Float.self), expected.map { Float($0) }, atol: 1e-4, rtol: 1e-4, "\(s)",
            file: file, line: line)
    }

    func testConv2DGeneral() throws {
        try check(Spec(x: [1, 3, 9, 11], w: [5, 3, 3, 3], pads: [1, 1, 1, 1]))
        try check(Spec(x: [2, 4, 10, 7], w: [7, 4, 3, 2], strides: [2, 1], pads: [0, 1, 2, 0]))  // asymmetric pads
        try check(Spec(x: [1, 3, 12, 12], w: [4, 3, 3, 3], dilations: [2, 2], pads: [2, 2, 2, 2], bias: false))
        try check(Spec(x: [1, 3, 15, 15], w: [8, 3, 7, 7], strides: [2, 2], pads: [3, 3, 3, 3]))  // a stem
        try check(Spec(x: [1, 2, 5, 5], w: [3, 2, 5, 5]))  // one output position
        try check(Spec(x: [1, 3, 40, 33], w: [5, 3, 3, 3], pads: [1, 1, 1, 1]))  // more columns than one N block
    }

    func testConvWeightsAtRunTime() throws {
        try check(Spec(x: [2, 4, 8, 9], w: [6, 4, 3, 3], pads: [1, 1, 1, 1]), constants: [])
        try check(Spec(x: [1, 6, 6, 6], w: [6, 1, 3, 3], group: 6, pads: [1, 1, 1, 1]), constants: [])
        try check(Spec(x: [1, 8, 5, 5], w: [4, 8, 1, 1]), constants: [2])
        // Batches spread by whole images (at least two per thread), grouped, pointwise and strided.
        try check(Spec(x: [5, 4, 8, 9], w: [6, 2, 3, 3], group: 2, strides: [2, 1], pads: [1, 1, 1, 1]), constants: [])
        try check(Spec(x: [5, 4, 8, 9], w: [6, 2, 3, 3], group: 2, strides: [2, 1], pads: [1, 1, 1, 1]))
        try check(Spec(x: [6, 8, 5, 5], w: [4, 8, 1, 1]), constants: [])
    }

    func testConvPointwiseAndMediumGEMM() throws {
        try check(Spec(x: [2, 16, 7, 9], w: [24, 16, 1, 1]))
        try check(Spec(x: [1, 129, 9, 10], w: [67, 129, 1, 1]))  // 67 x 90 x 129
        try check(Spec(x: [1, 8, 9, 9], w: [12, 8, 1, 1], strides: [2, 2]))  // 1x1 stride 2: the im2col path
        try check(Spec(x: [1, 32, 12, 13], w: [20, 32, 3, 3], pads: [1, 1, 1, 1]))  // K = 288: two K blocks
    }

    func testGroupedAndDepthwise() throws {
        try check(Spec(x: [1, 8, 7, 7], w: [6, 4, 3, 3], group: 2, pads: [1, 1, 1, 1]))
        try check(Spec(x: [2, 12, 9, 10], w: [12, 1, 3, 3], group: 12, pads: [1, 1, 1, 1]))
        try check(Spec(x: [1, 16, 11, 13], w: [16, 1, 3, 3], group: 16, strides: [2, 2], pads: [1, 1, 1, 1]))
        try check(Spec(x: [1, 5, 20, 37], w: [5, 1, 3, 3], group: 5, strides: [2, 2], pads: [0, 0, 1, 1]))
        try check(Spec(x: [1, 4, 21, 30], w: [4, 1, 5, 5], group: 4, dilations: [2, 2], pads: [4, 4, 4, 4], bias: false))
        try check(Spec(x: [1, 3, 9, 25], w: [6, 1, 3, 3], group: 3, pads: [1, 1, 1, 1]))  // channel multiplier 2
        try check(Spec(x: [1, 4, 17, 40], w: [4, 1, 3, 3], group: 4, strides: [3, 3], pads: [1, 1, 1, 1]))
        try check(Spec(x: [1, 4, 3, 3], w: [4, 1, 3, 3], group: 4, pads: [2, 2, 2, 2]))  // all border
        // Stride 2, wide enough for the vector path, with odd, even and no left padding.
        try check(Spec(x: [2, 6, 17, 40], w: [6, 1, 3, 3], group: 6, strides: [2, 2], pads: [1, 1, 1, 1]))
        try check(Spec(x: [1, 3, 12, 33], w: [3, 1, 3, 3], group: 3, strides: [2, 2], pads: [2, 2, 2, 2]))
        try check(Spec(x: [1, 3, 9, 41], w: [3, 1, 3, 3], group: 3, strides: [2, 2], bias: false))
        try check(Spec(x: [1, 3, 9, 41], w: [3, 1, 5, 5], group: 3, strides: [2, 2], pads: [2, 2, 2, 2]))
    }

    func testWinograd3x3() throws {
        // 3x3 stride-1 convolutions with constant weights and at least 16 channels each way.
        try check(Spec(x: [1, 16, 9, 11], w: [16, 16, 3, 3], pads: [1, 1, 1, 1]))
        try check(Spec(x: [2, 20, 8, 8], w: [17, 20, 3, 3], bias: false))
        try check(Spec(x: [1, 16, 10, 13], w: [24, 16, 3, 3], pads: [0, 2, 1, 0]))
        try check(Spec(x: [1, 16, 6, 40], w: [16, 16, 3, 3], pads: [1, 1, 1, 1]))
        try check(Spec(x: [1, 16, 7, 7], w: [32, 16, 3, 3], autoPad: "SAME_UPPER"))
        try check(Spec(x: [1, 300, 4, 5], w: [16, 300, 3, 3], pads: [1, 1, 1, 1]))  // two K blocks
        // Weights given at run time (training), and batches spread by whole images.
        try check(Spec(x: [1, 16, 9, 11], w: [16, 16, 3, 3], pads: [1, 1, 1, 1]), constants: [])
        try check(Spec(x: [5, 20, 8, 9], w: [17, 20, 3, 3], pads: [1, 1, 1, 1]), constants: [])
        try check(Spec(x: [5, 20, 8, 9], w: [17, 20, 3, 3], pads: [1, 0, 1, 2]))
        // Many small blocks of tiles, starting in the middle of tile rows.
        let saved = ConvolutionTuning.winogradBlockFloats
        defer { ConvolutionTuning.winogradBlockFloats = saved }
        ConvolutionTuning.winogradBlockFloats = 16 * 32 * 16
        try check(Spec(x: [1, 16, 20, 21], w: [16, 16, 3, 3], pads: [1, 1, 1, 1]))
    }

    func testFusedActivation() throws {
        for (kind, params) in [("Relu", [Float]()), ("Clip", [Float(-0.25), 0.5])] {
            func spec(_ s: Spec) -> Spec {
                var s = s
                s.activation = kind
                s.activationParams = params
                return s
            }
            try check(spec(Spec(x: [1, 3, 9, 11], w: [5, 3, 3, 3], strides: [2, 1], pads: [1, 1, 1, 1])))  // im2col
            try check(spec(Spec(x: [1, 16, 12, 9], w: [17, 16, 3, 3], pads: [1, 1, 1, 1])))  // Winograd
            try check(spec(Spec(x: [1, 8, 5, 7], w: [7, 8, 1, 1])))  // pointwise
            // Full 6x32 tiles (the AVX-512 kernel where the processor has it), with partial ones beside them.
            try check(spec(Spec(x: [1, 8, 8, 9], w: [13, 8, 1, 1])))
            try check(spec(Spec(x: [1, 4, 10, 10], w: [12, 4, 3, 3], pads: [1, 1, 1, 1])))
            try check(spec(Spec(x: [1, 8, 5, 7], w: [7, 8, 1, 1])), constants: [])  // weights at run time
            try check(spec(Spec(x: [1, 6, 10, 20], w: [6, 1, 3, 3], group: 6, pads: [1, 1, 1, 1])))  // depthwise
            try check(spec(Spec(x: [1, 6, 10, 40], w: [6, 1, 3, 3], group: 6, strides: [2, 2], pads: [1, 1, 1, 1])))
            try check(spec(Spec(x: [1, 6, 9, 9], w: [6, 1, 5, 5], group: 6, pads: [2, 2, 2, 2])))
            try check(spec(Spec(x: [1, 6, 7, 40], w: [6, 1, 5, 5], group: 6, pads: [2, 2, 2, 2])))
            try check(spec(Spec(x: [1, 6, 7, 7], w: [6, 1, 3, 3], group: 6, strides: [3, 3], pads: [1, 1, 1, 1])))
        }
        XCTAssertThrowsError(
            try runOperator(
                "Conv", ["activation": .string("Tanh")], inputs: [Tensor(zeros: [1, 3, 8, 8]), Tensor(zeros: [4, 3, 3, 3])]))
        XCTAssertThrowsError(
            try runOperator(
                "Conv", ["activation": .string("Clip"), "activation_params": .floats([0])],
                inputs: [Tensor(zeros: [1, 3, 8, 8]), Tensor(zeros: [4, 3, 3, 3])]))
    }

    func testFuseActivationRecipe() throws {
        _ = cpuRegistered
        let x = try Tensor(randomFloats(2 * 3 * 6 * 7, seed: 51), shape: [2, 3, 6, 7])
        let w = try Tensor(randomFloats(4 * 3 * 3 * 3, seed: 52), shape: [4, 3, 3, 3])
        let b = Tensor(randomFloats(4, seed: 53))
        for kind in ["Relu", "Clip", "ClipMinOnly"] {
            func build() throws -> GraphView {
                let conv = Node(Operator("Conv", attributes: ["pads": .ints([1, 1, 1, 1])]), inputCount: 3)
                try conv.setInput(1, from: Node.producer(w))
                try conv.setInput(2, from: Node.producer(b))
                let act = Node(Operator(kind == "Relu" ? "Relu" : "Clip"), inputCount: kind == "Relu" ? 1 : 3)
                try act.setInput(0, from: conv)
                if kind != "Relu" { try act.setInput(1, from: Node.producer(Tensor(scalar: Float(-0.3)))) }
                if kind == "Clip" { try act.setInput(2, from: Node.producer(Tensor(scalar: Float(0.4)))) }
                let graph = GraphView(name: "fuse")
                graph.add(conv, includeProducers: true)
                graph.add(act, includeProducers: true)
                graph.inputs.append(GraphInput(name: "x", dtype: .float32, shape: nil, consumers: [(conv, 0)]))
                graph.outputs = [GraphOutput(name: "y", node: act, index: 0)]
                return graph
            }
            let expected = try Scheduler(try build()).forward([x])[0]
            let graph = try build()
            let actNames = graph.nodes.first { $0.type == "Relu" || $0.type == "Clip" }?.outputNames
            XCTAssertEqual(try Recipes.fuseActivation(graph), 1, kind)
            XCTAssertEqual(graph.nodes.filter { $0.type != "Producer" }.map(\.type), ["Conv"], kind)
            XCTAssertEqual(graph.nodes.first { $0.type == "Conv" }?.outputNames, actNames, kind)
            XCTAssertEqual(graph.producers.count, 2, kind)
            let got = try Scheduler(graph).forward([x])[0]
            assertClose(try got.scalars(as: Float.self), try expected.scalars(as: Float.self), kind)
        }
    }

    func testAutoPad() throws {
        for mode in ["SAME_UPPER", "SAME_LOWER"] {
            try check(Spec(x: [1, 3, 10, 9], w: [4, 3, 3, 3], strides: [2, 2], autoPad: mode))
            try check(Spec(x: [1, 3, 10, 9], w: [4, 3, 4, 2], strides: [2, 2], autoPad: mode))
            try check(Spec(x: [1, 6, 10, 9], w: [6, 1, 3, 3], group: 6, strides: [2, 2], autoPad: mode))
        }
        try check(Spec(x: [1, 3, 10, 9], w: [4, 3, 3, 3], strides: [2, 2], autoPad: "VALID"))
    }

    func testConv1DAnd3D() throws {
        try check(Spec(x: [2, 3, 20], w: [5, 3, 3], strides: [2], pads: [1, 2]))
        try check(Spec(x: [1, 4, 19], w: [4, 1, 5], group: 4, pads: [2, 2]))
        try check(Spec(x: [1, 2, 5, 6, 7], w: [3, 2, 3, 3, 3], strides: [1, 2, 1], pads: [1, 0, 1, 1, 1, 0]))
    }

    func testConvFloat64() throws {
        let s = Spec(x: [1, 4, 6, 5], w: [4, 2, 3, 3], group: 2, strides: [2, 1], pads: [1, 1, 0, 1])
        let x = randomFloats(s.x.reduce(1, *), seed: 8)
        let w = randomFloats(s.w.reduce(1, *), seed: 9)
        let b = randomFloats(4, seed: 10)
        let out = try runOperator(
            "Conv", s.attributes,
            inputs: [
                try Tensor(x.map(Double.init), shape: s.x), try Tensor(w.map(Double.init), shape: s.w),
                try Tensor(b.map(Double.init), shape: [4]),
            ])
        let (expected, shape) = Self.convReference(s, x, w, b)
        XCTAssertEqual(out[0].shape, shape)
        let got = try out[0].scalars(as: Double.self)
        for (g, e) in zip(got, expected) { XCTAssertEqual(g, e, accuracy: 1e-12) }
    }

    func testConvErrors() {
        // Channel mismatch: the message names both shapes.
        XCTAssertThrowsError(try runOperator("Conv", inputs: [Tensor(zeros: [1, 3, 8, 8]), Tensor(zeros: [4, 2, 3, 3])])) {
            let text = "\($0)"
            XCTAssertTrue(text.contains("1x3x8x8") && text.contains("4x2x3x3"), text)
        }
        XCTAssertThrowsError(
            try runOperator("Conv", ["group": .int(2)], inputs: [Tensor(zeros: [1, 4, 8, 8]), Tensor(zeros: [3, 2, 3, 3])]))
        XCTAssertThrowsError(try runOperator("Conv", inputs: [Tensor(zeros: [1, 3, 2, 2]), Tensor(zeros: [4, 3, 3, 3])]))
        XCTAssertThrowsError(
            try runOperator(
                "Conv", ["kernel_shape": .ints([5, 5])], inputs: [Tensor(zeros: [1, 3, 8, 8]), Tensor(zeros: [4, 3, 3, 3])]))
        XCTAssertThrowsError(
            try runOperator(
                "Conv", inputs: [Tensor(zeros: [1, 3, 8, 8]), Tensor(zeros: [4, 3, 3, 3]), Tensor(zeros: [3])]))
        XCTAssertThrowsError(
            try runOperator("Conv", ["auto_pad": .string("SAME")], inputs: [Tensor(zeros: [1, 3, 8, 8]), Tensor(zeros: [4, 3, 3, 3])]))
        XCTAssertThrowsError(
            try runOperator("Conv", inputs: [Tensor(zeros: [1, 3, 8, 8], dtype: .int32), Tensor(zeros: [4, 3, 3, 3], dtype: .int32)]))
    }

    // MARK: ConvTranspose

    /// Scatter definition: every input element adds x * w into the output at i * stride - pad + k * dilation.
    private func convTransposeReference(
        x: [Float], xShape: [Int], w: [Float], wShape: [Int], b: [Float]?, group: Int, strides: [Int], dilations: [Int],
        padsBegin: [Int], out: [Int]
    ) -> [Double] {
        let n = xShape.count - 2
        let input = Array(xShape[2...]), kernel = Array(wShape[2...])
        let batch = xShape[0], cin = xShape[1], mg = wShape[1], cg = cin / group
        let cout = mg * group
        let inCount = input.reduce(1, *), kCount = kernel.reduce(1, *), outCount = out.reduce(1, *)
        var y = [Double](repeating: 0, count: batch * cout * outCount)
        for bi in 0..<batch {
            for oc in 0..<cout { for o in 0..<outCount { y[(bi * cout + oc) * outCount + o] = Double(b?[oc] ?? 0) } }
            for ci in 0..<cin {
                let gi = ci / cg
                for i in 0..<inCount {
                    var iIdx = [Int](repeating: 0, count: n)
                    var r = i
                    for a in stride(from: n - 1, through: 0, by: -1) { iIdx[a] = r % input[a]; r /= input[a] }
                    let xv = Double(x[(bi * cin + ci) * inCount + i])
                    for m in 0..<mg {
                        for kk in 0..<kCount {
                            var kIdx = [Int](repeating: 0, count: n)
                            var q = kk
                            for a in stride(from: n - 1, through: 0, by: -1) { kIdx[a] = q % kernel[a]; q /= kernel[a] }
                            var flat = 0
                            var inside = true
                            for a in 0..<n {
                                let p = iIdx[a] * strides[a] - padsBegin[a] + kIdx[a] * dilations[a]
                                if p < 0 || p >= out[a] { inside = false; break }
                                flat = flat * out[a] + p
                            }
                            if !inside { continue }
                            let oc = gi * mg + m
                            y[(bi * cout + oc) * outCount + flat] += xv * Double(w[(ci * mg + m) * kCount + kk])
                        }
                    }
                }
            }
        }
        return y
    }

    private func checkTranspose(
        x xShape: [Int], w wShape: [Int], group: Int = 1, strides: [Int], dilations: [Int]? = nil, pads: [Int]? = nil,
        outputPadding: [Int]? = nil, outputShape: [Int]? = nil, autoPad: String? = nil, expectedPadsBegin: [Int],
        expectedOut: [Int], constants: Set<Int> = [1, 2], file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let n = xShape.count - 2
        var attributes: Attributes = ["group": .int(group), "strides": .ints(strides)]
        if let dilations { attributes["dilations"] = .ints(dilations) }
        if let pads { attributes["pads"] = .ints(pads) }
        if let outputPadding { attributes["output_padding"] = .ints(outputPadding) }
        if let outputShape { attributes["output_shape"] = .ints(outputShape) }
        if let autoPad { attributes["auto_pad"] = .string(autoPad) }
        let x = randomFloats(xShape.reduce(1, *), seed: 15)
        let w = randomFloats(wShape.reduce(1, *), seed: 16)
        let cout = wShape[1] * group
        let b = randomFloats(cout, seed: 17)
        let out = try runOperator(
            "ConvTranspose", attributes,
            inputs: [try Tensor(x, shape: xShape), try Tensor(w, shape: wShape), try Tensor(b, shape: [cout])],
            constants: constants)
        XCTAssertEqual(out[0].shape, [xShape[0], cout] + expectedOut, file: file, line: line)
        let expected = convTransposeReference(
            x: x, xShape: xShape, w: w, wShape: wShape, b: b, group: group, strides: strides,
            dilations: dilations ?? [Int](repeating: 1, count: n), padsBegin: expectedPadsBegin, out: expectedOut)
        assertClose(
            try out[0].scalars(as: Float.self), expected.map { Float($0) }, atol: 1e-4, rtol: 1e-4, file: file, line: line)
    }

    func testConvTranspose() throws {
        // (5 - 1) * 2 + 0 + 3 - 1 - 1 = 9
        try checkTranspose(
            x: [1, 3, 5, 4], w: [3, 2, 3, 3], strides: [2, 2], pads: [1, 1, 1, 1], expectedPadsBegin: [1, 1],
            expectedOut: [9, 7])
        try checkTranspose(
            x: [2, 4, 4, 5], w: [4, 3, 3, 2], group: 2, strides: [2, 3], dilations: [2, 1], pads: [0, 1, 2, 0],
            outputPadding: [1, 2], expectedPadsBegin: [0, 1], expectedOut: [2 * 3 + 1 + 5 - 2, 3 * 4 + 2 + 2 - 1],
            constants: [])
        // output_shape: total padding 4 * 2 + 3 - 10 = 1, the odd unit at the beginning (NOTSET).
        try checkTranspose(
            x: [1, 2, 5, 5], w: [2, 3, 3, 3], strides: [2, 2], outputShape: [10, 10], expectedPadsBegin: [1, 1],
            expectedOut: [10, 10])
        try checkTranspose(
            x: [1, 2, 5, 5], w: [2, 3, 3, 3], strides: [2, 2], autoPad: "SAME_UPPER", expectedPadsBegin: [0, 0],
            expectedOut: [10, 10])
        try checkTranspose(
            x: [1, 2, 5, 5], w: [2, 3, 3, 3], strides: [2, 2], autoPad: "SAME_LOWER", expectedPadsBegin: [1, 1],
            expectedOut: [10, 10])
        try checkTranspose(x: [1, 3, 7], w: [3, 2, 4], strides: [3], pads: [1, 2], expectedPadsBegin: [1], expectedOut: [19])
        try checkTranspose(
            x: [1, 40, 6, 6], w: [40, 16, 2, 2], strides: [2, 2], expectedPadsBegin: [0, 0], expectedOut: [12, 12])
    }

    func testConvTransposeErrors() {
        XCTAssertThrowsError(
            try runOperator("ConvTranspose", inputs: [Tensor(zeros: [1, 3, 4, 4]), Tensor(zeros: [2, 3, 3, 3])])) {
                let text = "\($0)"
                XCTAssertTrue(text.contains("1x3x4x4") && text.contains("2x3x3x3"), text)
            }
    }

    /// An output_shape past the full result extends it with the bias, the full result centred as ONNX's reference
    /// places it (pads of -7 on both sides here: 20 = 6 + 14).
    func testConvTransposeOutputShapePastTheFullResult() throws {
        let x = try Tensor(randomFloats(48, seed: 3), shape: [1, 3, 4, 4])
        let w = try Tensor(randomFloats(54, seed: 4), shape: [3, 2, 3, 3])
        let b = Tensor([Float(0.25), -0.5])
        let full = try runOperator("ConvTranspose", inputs: [x, w, b])[0].converted(to: Float.self)
        let wide = try runOperator("ConvTranspose", ["output_shape": .ints([20, 20])], inputs: [x, w, b])[0]
        XCTAssertEqual(wide.shape, [1, 2, 20, 20])
        var expected = [Float](repeating: 0, count: 2 * 20 * 20)
        for c in 0..<2 {
            for i in 0..<20 {
                for j in 0..<20 {
                    let inside = (7..<13).contains(i) && (7..<13).contains(j)
                    expected[(c * 20 + i) * 20 + j] = inside ? full[(c * 6 + i - 7) * 6 + j - 7] : (c == 0 ? 0.25 : -0.5)
                }
            }
        }
        assertClose(wide.converted(to: Float.self), expected)
    }
}

import AidgeCPU
import AidgeCore
import XCTest

/// MaxPool, AveragePool and the global pools against loops written from the ONNX specification.
final class PoolingTests: XCTestCase {
    struct Spec {
        var x: [Int]
        var kernel: [Int]
        var strides: [Int]? = nil
        var dilations: [Int]? = nil
        var pads: [Int]? = nil
        var autoPad: String? = nil
        var ceilMode = false
        var countIncludePad = false

        var attributes: Attributes {
            var a: Attributes = ["kernel_shape": .ints(kernel)]
            if let strides { a["strides"] = .ints(strides) }
            if let dilations { a["dilations"] = .ints(dilations) }
            if let pads { a["pads"] = .ints(pads) }
            if let autoPad { a["auto_pad"] = .string(autoPad) }
            if ceilMode { a["ceil_mode"] = .int(1) }
            if countIncludePad { a["count_include_pad"] = .int(1) }
            return a
        }
    }

    /// Output shape, values and (for max) row-major indices of a pooling.
    static func reference(_ s: Spec, _ x: [Double], max: Bool) -> (shape: [Int], y: [Double], indices: [Int]) {
        let n = s.kernel.count
        let input = Array(s.x[2...])
        let strides = s.strides ?? [Int](repeating: 1, count: n)
        let dil = s.dilations ?? [Int](repeating: 1, count: n)
        var pb = [Int](repeating: 0, count: n)
        var pe = [Int](repeating: 0, count: n)
        var out = [Int](repeating: 0, count: n)
        for i in 0..<n {
            let ext = (s.kernel[i] - 1) * dil[i] + 1
            switch s.autoPad {
            case "SAME_UPPER", "SAME_LOWER":
                out[i] = (input[i] + strides[i] - 1) / strides[i]
                let total = Swift.max(0, (out[i] - 1) * strides[i] + ext - input[i])
                pb[i] = s.autoPad == "SAME_UPPER" ? total / 2 : total - total / 2
                pe[i] = total - pb[i]
            case "VALID":
                out[i] = (input[i] - ext) / strides[i] + 1
            default:
                let pads = s.pads ?? [Int](repeating: 0, count: 2 * n)
                pb[i] = pads[i]
                pe[i] = pads[i + n]
                let span = input[i] + pb[i] + pe[i] - ext
                if s.ceilMode {
                    out[i] = Int((Double(span) / Double(strides[i])).rounded(.up)) + 1
                    if (out[i] - 1) * strides[i] >= input[i] + pb[i] { out[i] -= 1 }
                } else {
                    out[i] = span / strides[i] + 1
                }
            }
        }
        let planes = s.x[0] * s.x[1]
        let inCount = input.reduce(1, *)
        let outCount = out.reduce(1, *)
        let kCount = s.kernel.reduce(1, *)
        var y = [Double](repeating: 0, count: planes * outCount)
        var idx = [Int](repeating: -1, count: planes * outCount)
        for p in 0..<planes {
            for o in 0..<outCount {
                var oi = [Int](repeating: 0, count: n)
                var r = o
                for a in stride(from: n - 1, through: 0, by: -1) { oi[a] = r % out[a]; r /= out[a] }
                var best = -Double.infinity
                var bestAt = -1
                var sum = 0.0
                var valid = 0
                var padded = 0
                for kk in 0..<kCount {
                    var ki = [Int](repeating: 0, count: n)
                    var q = kk
                    for a in stride(from: n - 1, through: 0, by: -1) { ki[a] = q % s.kernel[a]; q /= s.kernel[a] }
                    var inside = true
                    var inPadded = true
                    var flat = 0
                    for a in 0..<n {
                        let pos = oi[a] * strides[a] - pb[a] + ki[a] * dil[a]
                        if pos < 0 || pos >= input[a] { inside = false }
                        if pos >= input[a] + pe[a] { inPadded = false }
                        flat = flat * input[a] + pos
                    }
                    if inPadded { padded += 1 }
                    if !inside { continue }
                    valid += 1
                    let v = x[p * inCount + flat]
                    sum += v
                    if v > best { best = v; bestAt = flat }
                }
                y[p * outCount + o] = max ? best : sum / Double(s.countIncludePad ? padded : valid)
                idx[p * outCount + o] = p * inCount + bestAt
            }
        }
        return ([s.x[0], s.x[1]] + out, y, idx)
    }

    private func check(_ s: Spec, max: Bool, file: StaticString = #filePath, line: UInt = #line) throws {
        let x = randomFloats(s.x.reduce(1, *), seed: 31)
        let out = try runOperator(max ? "MaxPool" : "AveragePool", s.attributes, inputs: [try Tensor(x, shape: s.x)])
        let ref = Self.reference(s, x.map(Double.init), max: max)
        XCTAssertEqual(out[0].shape, ref.shape, "\(s)", file: file, line: line)
        assertClose(try out[0].scalars(as: Float.self), ref.y.map { Float($0) }, "\(s)", file: file, line: line)
    }

    func testMaxPool2D() throws {
        try check(Spec(x: [1, 3, 20, 40], kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1]), max: true)  // ResNet stem
        try check(Spec(x: [2, 2, 11, 29], kernel: [2, 2]), max: true)
        try check(Spec(x: [1, 2, 13, 37], kernel: [3, 2], strides: [1, 2], pads: [0, 1, 2, 0]), max: true)
        try check(Spec(x: [1, 2, 15, 36], kernel: [3, 3], dilations: [2, 2], pads: [2, 2, 2, 2]), max: true)
        try check(Spec(x: [1, 2, 10, 33], kernel: [3, 3], strides: [3, 3]), max: true)
        try check(Spec(x: [1, 2, 12, 35], kernel: [3, 3], strides: [2, 2], ceilMode: true), max: true)
        try check(Spec(x: [1, 2, 12, 35], kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceilMode: true), max: true)
        for mode in ["SAME_UPPER", "SAME_LOWER", "VALID"] {
            try check(Spec(x: [1, 2, 10, 27], kernel: [3, 2], strides: [2, 2], autoPad: mode), max: true)
        }
    }

    func testAveragePool2D() throws {
        for include in [false, true] {
            try check(Spec(x: [1, 3, 20, 40], kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], countIncludePad: include), max: false)
            try check(Spec(x: [2, 2, 13, 37], kernel: [3, 2], strides: [1, 1], pads: [0, 1, 2, 0], countIncludePad: include), max: false)
            try check(
                Spec(x: [1, 2, 12, 35], kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceilMode: true, countIncludePad: include),
                max: false)
            try check(Spec(x: [1, 2, 15, 36], kernel: [3, 3], dilations: [2, 2], pads: [2, 2, 2, 2], countIncludePad: include), max: false)
            for mode in ["SAME_UPPER", "SAME_LOWER"] {
                try check(Spec(x: [1, 2, 10, 27], kernel: [3, 3], strides: [2, 2], autoPad: mode, countIncludePad: include), max: false)
            }
        }
        try check(Spec(x: [1, 2, 7, 7], kernel: [7, 7]), max: false)
    }

    func testPool1DAnd3D() throws {
        try check(Spec(x: [2, 3, 30], kernel: [3], strides: [2], pads: [1, 1]), max: true)
        try check(Spec(x: [2, 3, 30], kernel: [4], strides: [3], pads: [2, 1], countIncludePad: true), max: false)
        try check(Spec(x: [1, 2, 5, 6, 7], kernel: [2, 3, 2], strides: [2, 1, 2], pads: [0, 1, 1, 1, 1, 0]), max: true)
        try check(Spec(x: [1, 2, 5, 6, 7], kernel: [2, 3, 2], strides: [2, 1, 2], pads: [0, 1, 1, 1, 1, 0]), max: false)
    }

    func testKnownValuesWithCeilMode() throws {
        // 4x4 input 1...16, 3x3 windows, stride 2, ceil_mode (ONNX's averagepool_2d_ceil / maxpool_2d_ceil).
        let x = try Tensor((1...16).map { Float($0) }, shape: [1, 1, 4, 4])
        let attributes: Attributes = ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "ceil_mode": .int(1)]
        XCTAssertEqual(try runOperator("AveragePool", attributes, inputs: [x])[0].scalars(as: Float.self), [6, 7.5, 12, 13.5])
        XCTAssertEqual(try runOperator("MaxPool", attributes, inputs: [x])[0].scalars(as: Float.self), [11, 12, 15, 16])
    }

    func testMaxPoolIndicesAndOtherTypes() throws {
        let s = Spec(x: [2, 2, 6, 7], kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1])
        let x = randomFloats(s.x.reduce(1, *), seed: 33)
        let out = try runOperator("MaxPool", s.attributes, inputs: [try Tensor(x, shape: s.x)], outputs: 2)
        let ref = Self.reference(s, x.map(Double.init), max: true)
        XCTAssertEqual(out.count, 2)
        XCTAssertEqual(try out[0].scalars(as: Float.self), ref.y.map { Float($0) })
        XCTAssertEqual(try out[1].scalars(as: Int64.self), ref.indices.map { Int64($0) })
        // Column-major indices: h + w * H within the plane.
        var attributes = s.attributes
        attributes["storage_order"] = .int(1)
        let colMajor = try runOperator("MaxPool", attributes, inputs: [try Tensor(x, shape: s.x)], outputs: 2)
        let plane = 6 * 7
        let expected = ref.indices.map { i -> Int64 in
            let p = i / plane, h = (i % plane) / 7, w = i % 7
            return Int64(p * plane + h + w * 6)
        }
        XCTAssertEqual(try colMajor[1].scalars(as: Int64.self), expected)

        let xi: [Int8] = x.map { Int8($0 * 100) }
        let outI = try runOperator("MaxPool", s.attributes, inputs: [try Tensor(xi, shape: s.x)])
        let refI = Self.reference(s, xi.map(Double.init), max: true)
        XCTAssertEqual(try outI[0].scalars(as: Int8.self), refI.y.map { Int8($0) })
        let xd = x.map(Double.init)
        let outD = try runOperator("AveragePool", s.attributes, inputs: [try Tensor(xd, shape: s.x)])
        let refD = Self.reference(s, xd, max: false)
        for (a, b) in zip(try outD[0].scalars(as: Double.self), refD.y) { XCTAssertEqual(a, b, accuracy: 1e-12) }
    }

    func testGlobalPools() throws {
        for shape in [[2, 3, 7, 7], [1, 5, 33], [1, 2, 3, 4, 5]] {
            let x = randomFloats(shape.reduce(1, *), seed: 34)
            let planes = shape[0] * shape[1]
            let size = shape.reduce(1, *) / planes
            let avg = try runOperator("GlobalAveragePool", inputs: [try Tensor(x, shape: shape)])[0]
            let mx = try runOperator("GlobalMaxPool", inputs: [try Tensor(x, shape: shape)])[0]
            let expectedShape = Array(shape.prefix(2)) + [Int](repeating: 1, count: shape.count - 2)
            XCTAssertEqual(avg.shape, expectedShape)
            XCTAssertEqual(mx.shape, expectedShape)
            let means = (0..<planes).map { p in Float(x[p * size..<(p + 1) * size].reduce(0.0) { $0 + Double($1) } / Double(size)) }
            let maxes = (0..<planes).map { p in x[p * size..<(p + 1) * size].max() ?? 0 }
            assertClose(try avg.scalars(as: Float.self), means)
            XCTAssertEqual(try mx.scalars(as: Float.self), maxes)
        }
        let xd: [Double] = [1, 2, 3, 4]
        let outD = try runOperator("GlobalAveragePool", inputs: [try Tensor(xd, shape: [1, 1, 2, 2])])[0]
        XCTAssertEqual(try outD.scalars(as: Double.self), [2.5])
    }

    func testPoolingErrors() {
        let x = Tensor(zeros: [1, 2, 5, 5])
        XCTAssertThrowsError(try runOperator("MaxPool", inputs: [x])) { XCTAssertTrue("\($0)".contains("kernel_shape"), "\($0)") }
        XCTAssertThrowsError(try runOperator("MaxPool", ["kernel_shape": .ints([3])], inputs: [x]))
        XCTAssertThrowsError(try runOperator("AveragePool", ["kernel_shape": .ints([7, 7])], inputs: [x]))
        XCTAssertThrowsError(
            try runOperator("AveragePool", ["kernel_shape": .ints([2, 2])], inputs: [Tensor(zeros: [1, 2, 5, 5], dtype: .int32)]))
        XCTAssertThrowsError(try runOperator("GlobalAveragePool", inputs: [Tensor(zeros: [2, 3])]))
    }
}

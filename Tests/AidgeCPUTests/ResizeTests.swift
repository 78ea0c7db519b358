import AidgeCPU
import AidgeCore
import XCTest

/// One Resize case and its output from ONNX Runtime (generated below by scripts/fixtures/resize.py).
private struct ResizeFixture: Sendable {
    let name: String
    let attributes: Attributes
    let shape: [Int]
    let scales: [Float]?
    let sizes: [Int]?
    let roi: [Float]?
    let outputShape: [Int]
    let expected: [Float]
}

/// The fixtures' input: element i is (i * 37 % 23) / 7 - 1.
private func fixtureInput(_ shape: [Int]) -> [Float] {
    (0..<ShapeUtil.count(shape)).map { Float(($0 * 37) % 23) / 7 - 1 }
}

/// Runs Resize with roi, scales and sizes as constants (nil: absent).
private func resize(
    _ x: Tensor, _ attributes: Attributes = [:], roi: [Float]? = nil, scales: [Float]? = nil, sizes: [Int]? = nil
) throws -> Tensor {
    let inputs: [Tensor?] = [x, roi.map { Tensor($0) }, scales.map { Tensor($0) }, sizes.map { Tensor($0.map { Int64($0) }) }]
    let last = inputs.lastIndex { $0 != nil } ?? 0
    return try runOperator("Resize", attributes, inputs: Array(inputs[...last]), constants: [1, 2, 3])[0]
}

/// Naive bilinear resize of the last two axes of an NCHW tensor (clamped source coordinates), in Double.
private func referenceBilinear(
    _ x: [Double], _ shape: [Int], outH: Int, outW: Int, _ source: (Int, Int, Int) -> Double
) -> [Double] {
    let (nc, h, w) = (shape[0] * shape[1], shape[2], shape[3])
    var out: [Double] = []
    for p in 0..<nc {
        for oy in 0..<outH {
            let sy = min(max(source(oy, h, outH), 0), Double(h - 1))
            let y0 = Int(sy)
            let y1 = min(y0 + 1, h - 1)
            let ly = sy - Double(y0)
            for ox in 0..<outW {
                let sx = min(max(source(ox, w, outW), 0), Double(w - 1))
                let x0 = Int(sx)
                let x1 = min(x0 + 1, w - 1)
                let lx = sx - Double(x0)
                let v = { (yy: Int, xx: Int) in x[(p * h + yy) * w + xx] }
                let top = v(y0, x0) * (1 - lx) + v(y0, x1) * lx
                let bottom = v(y1, x0) * (1 - lx) + v(y1, x1) * lx
                out.append(top * (1 - ly) + bottom * ly)
            }
        }
    }
    return out
}

final class ResizeTests: XCTestCase {
    func testFixturesFromONNXRuntime() throws {
        for f in resizeFixtures {
            let x = try Tensor(fixtureInput(f.shape), shape: f.shape)
            let y = try resize(x, f.attributes, roi: f.roi, scales: f.scales, sizes: f.sizes)
            XCTAssertEqual(y.shape, f.outputShape, f.name)
            assertClose(try y.scalars(as: Float.self), f.expected, atol: 1e-5, rtol: 1e-5, f.name)
        }
    }

    func testFloat64MatchesFixtures() throws {
        for f in resizeFixtures where ["torch_bilinear_up", "torch_bicubic_up", "trilinear", "antialias_cubic_down",
                                       "tf_crop_and_resize"].contains(f.name) {
            let x = try Tensor(fixtureInput(f.shape).map(Double.init), shape: f.shape)
            let y = try resize(x, f.attributes, roi: f.roi, scales: f.scales, sizes: f.sizes)
            XCTAssertEqual(y.dtype, .float64)
            assertClose(try y.scalars(as: Double.self).map { Float($0) }, f.expected, atol: 1e-5, rtol: 1e-5, f.name)
        }
    }

    func testLargerBilinearAgainstNaiveReference() throws {
        // Ragged widths exercise the SIMD row tails; both directions.
        let shape = [2, 3, 13, 21]
        let raw = randomFloats(ShapeUtil.count(shape), seed: 5)
        let x = try Tensor(raw, shape: shape)
        let xd = raw.map(Double.init)
        let modes: [(String, (Int, Int, Int) -> Double)] = [
            ("half_pixel", { o, n, m in (Double(o) + 0.5) * Double(n) / Double(m) - 0.5 }),
            ("align_corners", { o, n, m in m > 1 ? Double(o) * Double(n - 1) / Double(m - 1) : 0 }),
            ("asymmetric", { o, n, m in Double(o) * Double(n) / Double(m) }),
        ]
        for (mode, source) in modes {
            for (outH, outW) in [(29, 43), (6, 9), (13, 50)] {
                let y = try resize(
                    x, ["mode": .string("linear"), "coordinate_transformation_mode": .string(mode)],
                    sizes: [2, 3, outH, outW])
                XCTAssertEqual(y.shape, [2, 3, outH, outW])
                let expected = referenceBilinear(xd, shape, outH: outH, outW: outW, source)
                assertClose(try y.scalars(as: Float.self), expected.map { Float($0) }, atol: 1e-5, rtol: 1e-5, "\(mode)")
            }
        }
    }

    func testNearestOnIntegersAndBytes() throws {
        let shape = [2, 3, 5]
        let values = (0..<30).map { Int64($0 * 7 - 40) }
        let attributes: Attributes = [
            "mode": .string("nearest"), "coordinate_transformation_mode": .string("asymmetric"),
            "nearest_mode": .string("floor"),
        ]
        // Upsample the middle axis 2x, downsample the last to 3: floor(o * 5 / 3).
        let y = try resize(try Tensor(values, shape: shape), attributes, sizes: [2, 6, 3])
        XCTAssertEqual(y.shape, [2, 6, 3])
        var expected: [Int64] = []
        for n in 0..<2 {
            for i in 0..<6 {
                for j in 0..<3 { expected.append(values[(n * 3 + i / 2) * 5 + j * 5 / 3]) }
            }
        }
        XCTAssertEqual(try y.scalars(as: Int64.self), expected)
        let bytes = try resize(try Tensor(values.map { UInt8(truncatingIfNeeded: $0) }, shape: shape), attributes, sizes: [2, 6, 3])
        XCTAssertEqual(try bytes.scalars(as: UInt8.self), expected.map { UInt8(truncatingIfNeeded: $0) })
    }

    func testUpsample() throws {
        let shape = [1, 2, 3, 4]
        let x = try Tensor(fixtureInput(shape), shape: shape)
        let scales = Tensor([Float(1), 1, 2, 2])
        let nearest = try runOperator("Upsample", ["mode": .string("nearest")], inputs: [x, scales], constants: [1])[0]
        let fixture = resizeFixtures.first { $0.name == "torch_nearest_up2" }
        XCTAssertEqual(nearest.shape, [1, 2, 6, 8])
        XCTAssertEqual(try nearest.scalars(as: Float.self), fixture?.expected)
        // Upsample's linear mode samples at x / scale (asymmetric).
        let linear = try runOperator("Upsample", ["mode": .string("linear")], inputs: [x, scales], constants: [1])[0]
        let expected = referenceBilinear(
            fixtureInput(shape).map(Double.init), shape, outH: 6, outW: 8, { o, n, m in Double(o) * Double(n) / Double(m) })
        assertClose(try linear.scalars(as: Float.self), expected.map { Float($0) })
    }

    func testIdentityAndEmpty() throws {
        let x = try Tensor(randomFloats(24), shape: [2, 3, 4])
        let same = try resize(x, ["mode": .string("cubic")], scales: [1, 1, 1])
        XCTAssertEqual(try same.scalars(as: Float.self), try x.scalars(as: Float.self))
        let empty = try resize(x, ["mode": .string("linear")], sizes: [2, 0, 4])
        XCTAssertEqual(empty.shape, [2, 0, 4])
        let fromEmpty = try resize(Tensor(zeros: [0, 3]), ["mode": .string("linear")], scales: [2, 2])
        XCTAssertEqual(fromEmpty.shape, [0, 6])
        // An empty scales input with sizes (as exporters write it).
        let y = try runOperator(
            "Resize", ["mode": .string("nearest")],
            inputs: [x, nil, Tensor([Float]()), Tensor([Int64(2), 3, 8])], constants: [1, 2, 3])[0]
        XCTAssertEqual(y.shape, [2, 3, 8])
    }

    func testErrors() throws {
        let x = try Tensor(randomFloats(24), shape: [2, 3, 4])
        XCTAssertThrowsError(try resize(x, scales: [2, 2])) { error in
            XCTAssertTrue("\(error)".contains("scales has 2 values; expected 3"), "\(error)")
        }
        XCTAssertThrowsError(try resize(x)) { error in
            XCTAssertTrue("\(error)".contains("needs scales or sizes"), "\(error)")
        }
        XCTAssertThrowsError(try resize(x, ["mode": .string("area")], scales: [1, 1, 2])) { error in
            XCTAssertTrue("\(error)".contains("mode 'area'"), "\(error)")
        }
        XCTAssertThrowsError(
            try resize(x, ["coordinate_transformation_mode": .string("centered")], scales: [1, 1, 2])
        ) { error in
            XCTAssertTrue("\(error)".contains("coordinate_transformation_mode 'centered'"), "\(error)")
        }
        XCTAssertThrowsError(try resize(x, scales: [1, 0, 2])) { error in
            XCTAssertTrue("\(error)".contains("not a positive number"), "\(error)")
        }
        XCTAssertThrowsError(try resize(x, ["antialias": .int(1)], scales: [1, 1, 0.5])) { error in
            XCTAssertTrue("\(error)".contains("antialias"), "\(error)")
        }
        XCTAssertThrowsError(
            try resize(Tensor(zeros: [2, 2], dtype: .int32), ["mode": .string("linear")], scales: [2, 2])
        ) { error in
            XCTAssertTrue("\(error)".contains("no CPU kernel for int32"), "\(error)")
        }
        XCTAssertThrowsError(try resize(Tensor(zeros: [0, 3]), sizes: [2, 3])) { error in
            XCTAssertTrue("\(error)".contains("cannot resize axis 0 of size 0"), "\(error)")
        }
        // Sizes fed at run time give what constant sizes give.
        let sizes = Tensor([Int64(2), 3, 8])
        XCTAssertEqual(
            try runOperator("Resize", inputs: [x, nil, nil, sizes])[0].doubles(),
            try runOperator("Resize", inputs: [x, nil, nil, sizes], constants: [3])[0].doubles())
    }
}

// MARK: Fixtures

// Generated by scripts/fixtures/resize.py (ONNX Runtime 1.32.0, onnx 1.23.2): do not edit.
private let resizeFixtures: [ResizeFixture] = [
    ResizeFixture(
        name: "torch_nearest_up2", attributes: ["mode": .string("nearest"), "coordinate_transformation_mode": .string("asymmetric"), "nearest_mode": .string("floor")], shape: [1, 2, 3, 4],
        scales: [1, 1, 2, 2], sizes: nil, roi: nil,
        outputShape: [1, 2, 6, 8],
        expected: [-1, -1, 1, 1, -0.28571427, -0.28571427, 1.7142856, 1.7142856, -1, -1, 1, 1, -0.28571427, -0.28571427, 1.7142856, 1.7142856, 0.42857146, 0.42857146, -0.85714287, -0.85714287, 1.1428571, 1.1428571, -0.14285713, -0.14285713, 0.42857146, 0.42857146, -0.85714287, -0.85714287, 1.1428571, 1.1428571, -0.14285713, -0.14285713, 1.8571429, 1.8571429, 0.57142854, 0.57142854, -0.71428573, -0.71428573, 1.2857144, 1.2857144, 1.8571429, 1.8571429, 0.57142854, 0.57142854, -0.71428573, -0.71428573, 1.2857144, 1.2857144, 0, 0, 2, 2, 0.71428573, 0.71428573, -0.57142854, -0.57142854, 0, 0, 2, 2, 0.71428573, 0.71428573, -0.57142854, -0.57142854, 1.4285715, 1.4285715, 0.14285719, 0.14285719, 2.1428571, 2.1428571, 0.85714281, 0.85714281, 1.4285715, 1.4285715, 0.14285719, 0.14285719, 2.1428571, 2.1428571, 0.85714281, 0.85714281, -0.4285714, -0.4285714, 1.5714285, 1.5714285, 0.28571427, 0.28571427, -1, -1, -0.4285714, -0.4285714, 1.5714285, 1.5714285, 0.28571427, 0.28571427, -1, -1]),
    ResizeFixture(
        name: "torch_nearest_sizes", attributes: ["mode": .string("nearest"), "coordinate_transformation_mode": .string("asymmetric"), "nearest_mode": .string("floor")], shape: [1, 2, 3, 4],
        scales: nil, sizes: [1, 2, 5, 7], roi: nil,
        outputShape: [1, 2, 5, 7],
        expected: [-1, -1, 1, 1, -0.28571427, -0.28571427, 1.7142856, -1, -1, 1, 1, -0.28571427, -0.28571427, 1.7142856, 0.42857146, 0.42857146, -0.85714287, -0.85714287, 1.1428571, 1.1428571, -0.14285713, 0.42857146, 0.42857146, -0.85714287, -0.85714287, 1.1428571, 1.1428571, -0.14285713, 1.8571429, 1.8571429, 0.57142854, 0.57142854, -0.71428573, -0.71428573, 1.2857144, 0, 0, 2, 2, 0.71428573, 0.71428573, -0.57142854, 0, 0, 2, 2, 0.71428573, 0.71428573, -0.57142854, 1.4285715, 1.4285715, 0.14285719, 0.14285719, 2.1428571, 2.1428571, 0.85714281, 1.4285715, 1.4285715, 0.14285719, 0.14285719, 2.1428571, 2.1428571, 0.85714281, -0.4285714, -0.4285714, 1.5714285, 1.5714285, 0.28571427, 0.28571427, -1]),
    ResizeFixture(
        name: "torch_nearest_down", attributes: ["mode": .string("nearest"), "coordinate_transformation_mode": .string("asymmetric"), "nearest_mode": .string("floor")], shape: [1, 1, 5, 7],
        scales: nil, sizes: [1, 1, 2, 3], roi: nil,
        outputShape: [1, 1, 2, 3],
        expected: [-1, -0.28571427, 0.42857146, 0.71428573, 1.4285715, 2.1428571]),
    ResizeFixture(
        name: "torch_bilinear_up", attributes: ["mode": .string("linear"), "coordinate_transformation_mode": .string("pytorch_half_pixel")], shape: [1, 2, 3, 4],
        scales: nil, sizes: [1, 2, 6, 9], roi: nil,
        outputShape: [1, 2, 6, 9],
        expected: [-1, -0.66666663, 0.22222233, 0.9285714, 0.35714287, -0.21428567, 0.49206334, 1.3809521, 1.7142856, -0.64285713, -0.44642857, 0.077381015, 0.5099206, 0.3035714, 0.097222239, 0.52976179, 1.0535713, 1.2499998, 0.071428597, -0.0059523657, -0.21230161, -0.32738093, 0.19642855, 0.72023803, 0.60515869, 0.39880952, 0.32142854, 0.78571433, 0.57142866, -6.7055225e-08, -0.43452382, 0.089285687, 0.61309516, 0.49801591, 0.29166672, 0.21428575, 1.5, 1.2857144, 0.71428567, 0.18849202, -0.017857164, -0.22420636, 0.20833328, 0.73214281, 0.92857146, 1.8571429, 1.6428573, 1.0714285, 0.49999991, -0.071428597, -0.64285713, 0.063492, 0.95238084, 1.2857144, 0, 0.33333337, 1.2222223, 1.9285713, 1.3571429, 0.78571433, 0.21428579, -0.35714272, -0.57142854, 0.35714287, 0.55357146, 1.077381, 1.5099206, 1.3035715, 1.0972222, 0.57142866, 1.1920929e-07, -0.21428569, 1.0714285, 0.9940477, 0.78769845, 0.6726191, 1.1964285, 1.7202381, 1.2857144, 0.71428579, 0.49999994, 0.96428567, 0.88690478, 0.68055558, 0.56547624, 1.0892857, 1.6130952, 1.1785715, 0.60714293, 0.39285707, 0.035714328, 0.2321429, 0.75595248, 1.1884919, 0.98214287, 0.77579367, 0.25000006, -0.32142848, -0.53571427, -0.4285714, -0.09523806, 0.79365093, 1.5, 0.92857134, 0.35714287, -0.21428566, -0.78571421, -1]),
    ResizeFixture(
        name: "torch_bilinear_down", attributes: ["mode": .string("linear"), "coordinate_transformation_mode": .string("pytorch_half_pixel")], shape: [1, 2, 5, 7],
        scales: nil, sizes: [1, 2, 2, 3], roi: nil,
        outputShape: [1, 2, 2, 3],
        expected: [0.97619045, -0.10714287, 0.45238125, 0.65476191, 1.2142857, 0.9523809, 0.33333337, 0.071428567, 0.6309523, 0.83333325, 1.3928572, 0.035714492]),
    ResizeFixture(
        name: "torch_bilinear_to_one", attributes: ["mode": .string("linear"), "coordinate_transformation_mode": .string("pytorch_half_pixel")], shape: [1, 1, 3, 4],
        scales: nil, sizes: [1, 1, 1, 2], roi: nil,
        outputShape: [1, 1, 1, 2],
        expected: [0, 0.71428567]),
    ResizeFixture(
        name: "torch_bilinear_corners_up", attributes: ["mode": .string("linear"), "coordinate_transformation_mode": .string("align_corners")], shape: [1, 2, 3, 4],
        scales: nil, sizes: [1, 2, 7, 5], roi: nil,
        outputShape: [1, 2, 7, 5],
        expected: [-1, 0.5, 0.35714287, 0.2142857, 1.7142856, -0.52380943, 0.1547619, 0.28571427, 0.41666663, 1.0952379, -0.047618985, -0.19047619, 0.21428567, 0.61904752, 0.47619039, 0.42857146, -0.53571427, 0.1428571, 0.82142854, -0.14285713, 0.90476203, -0.059523761, 0.07142853, 0.47619039, 0.33333343, 1.3809524, 0.41666657, -1.4901161e-08, 0.1309524, 0.80952382, 1.8571429, 0.89285719, -0.071428597, -0.21428567, 1.2857144, 0, 1.5, 1.3571429, 0.39285713, -0.57142854, 0.47619051, 1.1547618, 1.2857143, 0.86904752, -0.09523806, 0.95238101, 0.80952382, 1.2142857, 1.345238, 0.38095236, 1.4285715, 0.46428576, 1.1428571, 1.8214285, 0.85714281, 0.80952376, 0.66666675, 1.0714285, 1.2023807, 0.2380951, 0.1904763, 0.86904758, 1, 0.58333337, -0.38095233, -0.4285714, 1.0714287, 0.92857134, -0.035714298, -1]),
    ResizeFixture(
        name: "torch_bilinear_corners_down", attributes: ["mode": .string("linear"), "coordinate_transformation_mode": .string("align_corners")], shape: [1, 1, 6, 7],
        scales: nil, sizes: [1, 1, 3, 4], roi: nil,
        outputShape: [1, 1, 3, 4],
        expected: [-1, -0.28571427, 0.42857146, 1.1428571, 1.1428571, 0.21428573, 0.9285714, 2.9802322e-08, 0, 0.71428573, 1.4285715, 2.1428571]),
    ResizeFixture(
        name: "torch_bicubic_up", attributes: ["mode": .string("cubic"), "cubic_coeff_a": .float(-0.75), "coordinate_transformation_mode": .string("pytorch_half_pixel")], shape: [1, 1, 4, 5],
        scales: nil, sizes: [1, 1, 7, 9], roi: nil,
        outputShape: [1, 1, 7, 9],
        expected: [-1.2158192, -0.31311524, 0.88666916, 0.46436831, -0.29988798, 0.85139537, 1.7136335, 0.9302699, 0.2847679, -1.1617535, -0.25904939, 0.94073516, 0.51843429, -0.24582209, 0.90546149, 1.7676998, 0.98433608, 0.33883384, -1.073561, -0.17085698, 1.0289273, 0.60662651, -0.15762967, 0.99365366, 1.8558918, 1.0725282, 0.42702606, -0.98735994, -0.084655881, 1.1151285, 0.69282776, -0.071428575, 1.0798547, 1.9420931, 1.1587294, 0.51322728, -0.90115875, 0.0015452588, 1.2013295, 0.77902877, 0.014772546, 1.1660559, 2.0282941, 1.2449303, 0.5994283, -0.81296664, 0.089737624, 1.2895223, 0.86722147, 0.10296498, 1.2542486, 2.116487, 1.333123, 0.68762082, -0.75890011, 0.14380352, 1.3435874, 0.92128688, 0.1570309, 1.3083136, 2.1705518, 1.3871881, 0.74168634]),
    ResizeFixture(
        name: "torch_bicubic_corners_down", attributes: ["mode": .string("cubic"), "cubic_coeff_a": .float(-0.75), "coordinate_transformation_mode": .string("align_corners")], shape: [1, 1, 7, 8],
        scales: nil, sizes: [1, 1, 4, 3], roi: nil,
        outputShape: [1, 1, 4, 3],
        expected: [-1, 1.3794643, -0.14285713, 1.4285715, -0.09375003, -1, 0.57142854, 1, 1.4285715, -0.28571427, 0.14285706, 0.57142854]),
    ResizeFixture(
        name: "tf_bilinear_half_pixel_up", attributes: ["mode": .string("linear"), "coordinate_transformation_mode": .string("half_pixel")], shape: [1, 2, 3, 4],
        scales: [1, 1, 2, 2], sizes: nil, roi: nil,
        outputShape: [1, 2, 6, 8],
        expected: [-1, -0.5, 0.5, 0.67857146, 0.035714298, 0.2142857, 1.2142856, 1.7142856, -0.64285713, -0.3482143, 0.24107145, 0.4196429, 0.1875, 0.3660714, 0.95535707, 1.2499998, 0.071428597, -0.044642836, -0.27678573, -0.098214298, 0.49107137, 0.66964275, 0.43749994, 0.32142854, 0.78571433, 0.46428573, -0.17857145, -0.20535716, 0.38392851, 0.56249994, 0.33035716, 0.21428575, 1.5, 1.1785715, 0.53571427, 0.098214254, -0.1339286, 0.044642851, 0.6339286, 0.92857146, 1.8571429, 1.5357144, 0.89285719, 0.24999996, -0.39285713, -0.21428567, 0.78571439, 1.2857144, 0, 0.5, 1.5, 1.6785715, 1.0357143, 0.39285713, -0.24999997, -0.57142854, 0.35714287, 0.65178573, 1.2410715, 1.4196428, 1.1875, 0.74999994, 0.10714287, -0.21428569, 1.0714285, 0.95535719, 0.72321433, 0.90178573, 1.4910713, 1.4642856, 0.82142854, 0.49999994, 0.96428567, 0.84821433, 0.61607146, 0.79464287, 1.3839285, 1.3571428, 0.71428567, 0.39285707, 0.035714328, 0.33035713, 0.91964287, 1.0982143, 0.8660714, 0.4285714, -0.21428573, -0.53571427, -0.4285714, 0.071428597, 1.0714287, 1.25, 0.60714281, -0.035714298, -0.67857146, -1]),
    ResizeFixture(
        name: "tf_bilinear_half_pixel_down", attributes: ["mode": .string("linear"), "coordinate_transformation_mode": .string("half_pixel")], shape: [1, 1, 6, 8],
        scales: [1, 1, 0.5, 0.5], sizes: nil, roi: nil,
        outputShape: [1, 1, 3, 4],
        expected: [0.60714287, 0.5, 0.39285713, 0.28571427, 0.57142866, 1.2857144, 0.35714281, 0.25, 0.53571427, 0.4285714, 1.1428571, 0.21428573]),
    ResizeFixture(
        name: "half_pixel_fractional_scales", attributes: ["mode": .string("linear"), "coordinate_transformation_mode": .string("half_pixel")], shape: [1, 1, 5, 7],
        scales: [1, 1, 0.6, 1.5], sizes: nil, roi: nil,
        outputShape: [1, 1, 3, 10],
        expected: [-0.71428573, 0.28571427, 1.0714287, 0.21428579, 0.45238093, 0.87301582, 0.74603176, 0.071428582, -0.2380956, 1.0952384, 0.71428573, 0.071428597, -0.23809528, 1.095238, 0.78571433, 0.47619066, 1.8095242, 1.5, 0.64285731, -0.2142859, -0.047618628, 0.40476203, 0.64285702, -0.21428573, 0.57142848, 1.3571426, 0.49999964, 0.19047627, 0.24603191, 0.84920651]),
    ResizeFixture(
        name: "tf_bicubic_half_pixel", attributes: ["mode": .string("cubic"), "cubic_coeff_a": .float(-0.5), "exclude_outside": .int(1), "coordinate_transformation_mode": .string("half_pixel")], shape: [1, 1, 4, 4],
        scales: [1, 1, 1.75, 1.5], sizes: nil, roi: nil,
        outputShape: [1, 1, 7, 6],
        expected: [-1.2620506, 0.041471455, 1.0658448, -0.31756201, 0.70681167, 2.010334, -0.68932432, -0.13903254, 0.41239825, 0.19751088, 0.67381465, 1.1568173, 0.39482158, -0.32986963, -0.63344938, 0.95873892, 0.59470922, -0.18412548, 1.4598211, 0.51680678, -0.38281232, 0.10627446, 0.43644962, 0.59492493, 1.89177, 1.3634832, 0.42467487, -0.66589993, 0.24528171, 1.3739753, 0.54921526, 1.172646, 1.5134255, 0.4031083, 0.040027663, 0.033032298, -0.29604727, 0.99214214, 2.1072841, 1.0980253, -0.066681407, -0.82048392]),
    ResizeFixture(
        name: "nearest_half_pixel_round_prefer_ceil", attributes: ["mode": .string("nearest"), "nearest_mode": .string("round_prefer_ceil"), "coordinate_transformation_mode": .string("half_pixel")], shape: [1, 1, 4, 6],
        scales: nil, sizes: [1, 1, 7, 4], roi: nil,
        outputShape: [1, 1, 7, 4],
        expected: [-1, -0.28571427, 1.7142856, -0.85714287, -1, -0.28571427, 1.7142856, -0.85714287, 1.1428571, 1.8571429, 0.57142854, 1.2857144, 0, 0.71428573, -0.57142854, 0.14285719, 0, 0.71428573, -0.57142854, 0.14285719, 2.1428571, -0.4285714, 1.5714285, -1, 2.1428571, -0.4285714, 1.5714285, -1]),
    ResizeFixture(
        name: "nearest_half_pixel_default", attributes: ["mode": .string("nearest")], shape: [1, 2, 3, 3],
        scales: [1, 1, 2.5, 0.7], sizes: nil, roi: nil,
        outputShape: [1, 2, 7, 2],
        expected: [-1, -0.28571427, -1, -0.28571427, -1, -0.28571427, 1.7142856, -0.85714287, 1.7142856, -0.85714287, 1.1428571, 1.8571429, 1.1428571, 1.8571429, 0.57142854, 1.2857144, 0.57142854, 1.2857144, 0.57142854, 1.2857144, 0, 0.71428573, 0, 0.71428573, -0.57142854, 0.14285719, -0.57142854, 0.14285719]),
    ResizeFixture(
        name: "nearest_ceil_align_corners", attributes: ["mode": .string("nearest"), "nearest_mode": .string("ceil"), "coordinate_transformation_mode": .string("align_corners")], shape: [1, 1, 3, 5],
        scales: nil, sizes: [1, 1, 5, 3], roi: nil,
        outputShape: [1, 1, 5, 3],
        expected: [-1, -0.28571427, 0.42857146, -0.85714287, -0.14285713, 0.57142854, -0.85714287, -0.14285713, 0.57142854, -0.71428573, 0, 0.71428573, -0.71428573, 0, 0.71428573]),
    ResizeFixture(
        name: "tf1_bilinear_asymmetric", attributes: ["mode": .string("linear"), "coordinate_transformation_mode": .string("asymmetric")], shape: [1, 2, 3, 4],
        scales: nil, sizes: [1, 2, 5, 7], roi: nil,
        outputShape: [1, 2, 5, 7],
        expected: [-1, 0.14285719, 0.8163265, 0.081632644, 0.28571448, 1.4285715, 1.7142856, -0.14285707, -0.12653063, -0.016326554, 0.37551022, 0.57959181, 0.5959183, 0.5999999, 0.71428585, -0.020408116, -0.37959176, 0.38775504, 0.59183663, 0.23265307, 0.14285722, 1.5714287, 0.83673477, 0.19591838, -0.16326544, 0.040816426, 0.80816352, 1.0000002, 1.8571429, 1.1224489, 0.38775498, -0.34693879, -0.14285691, 1.0000002, 1.2857144, 0, 1.1428572, 1.8163265, 1.0816326, 0.34693867, -0.38775516, -0.57142854, 0.85714293, 0.87346941, 0.98367345, 1.3755102, 1.2040815, 0.46938771, 0.28571427, 1.0571427, 0.69795918, 0.62040836, 1.387755, 1.4040815, 0.66938758, 0.48571414, -0.057142973, 0.71020412, 1.1959183, 0.83673465, 0.28979564, -0.44489822, -0.62857157, -0.4285714, 0.71428579, 1.3877549, 0.65306121, -0.081632793, -0.81632662, -1]),
    ResizeFixture(
        name: "tf1_nearest_asymmetric", attributes: ["mode": .string("nearest"), "coordinate_transformation_mode": .string("asymmetric"), "nearest_mode": .string("round_prefer_floor")], shape: [1, 1, 3, 4],
        scales: [1, 1, 2, 1.5], sizes: nil, roi: nil,
        outputShape: [1, 1, 6, 6],
        expected: [-1, 1, 1, -0.28571427, 1.7142856, 1.7142856, -1, 1, 1, -0.28571427, 1.7142856, 1.7142856, 0.42857146, -0.85714287, -0.85714287, 1.1428571, -0.14285713, -0.14285713, 0.42857146, -0.85714287, -0.85714287, 1.1428571, -0.14285713, -0.14285713, 1.8571429, 0.57142854, 0.57142854, -0.71428573, 1.2857144, 1.2857144, 1.8571429, 0.57142854, 0.57142854, -0.71428573, 1.2857144, 1.2857144]),
    ResizeFixture(
        name: "tf_half_pixel_for_nn", attributes: ["mode": .string("nearest"), "coordinate_transformation_mode": .string("tf_half_pixel_for_nn"), "nearest_mode": .string("floor")], shape: [1, 1, 3, 4],
        scales: [1, 1, 2, 1.5], sizes: nil, roi: nil,
        outputShape: [1, 1, 6, 6],
        expected: [-1, 1, 1, -0.28571427, 1.7142856, 1.7142856, -1, 1, 1, -0.28571427, 1.7142856, 1.7142856, 0.42857146, -0.85714287, -0.85714287, 1.1428571, -0.14285713, -0.14285713, 0.42857146, -0.85714287, -0.85714287, 1.1428571, -0.14285713, -0.14285713, 1.8571429, 0.57142854, 0.57142854, -0.71428573, 1.2857144, 1.2857144, 1.8571429, 0.57142854, 0.57142854, -0.71428573, 1.2857144, 1.2857144]),
    ResizeFixture(
        name: "tf_crop_and_resize", attributes: ["mode": .string("linear"), "coordinate_transformation_mode": .string("tf_crop_and_resize"), "extrapolation_value": .float(10.0)], shape: [1, 1, 4, 4],
        scales: nil, sizes: [1, 1, 3, 3], roi: [0, 0, 0.4, 0.6, 1, 1, 1.2, 1.7],
        outputShape: [1, 1, 3, 3],
        expected: [0.50285709, 10, 10, 0.11428577, 10, 10, 10, 10, 10]),
    ResizeFixture(
        name: "tf_crop_and_resize_nearest", attributes: ["mode": .string("nearest"), "coordinate_transformation_mode": .string("tf_crop_and_resize"), "extrapolation_value": .float(-3.0)], shape: [1, 1, 4, 4],
        scales: nil, sizes: [1, 1, 3, 5], roi: [0, 0, -0.2, 0.1, 1, 1, 0.8, 1.3],
        outputShape: [1, 1, 3, 5],
        expected: [-3, -3, -3, -3, -3, 0.42857146, -0.85714287, 1.1428571, -0.14285713, -3, 1.8571429, 0.57142854, -0.71428573, 1.2857144, -3]),
    ResizeFixture(
        name: "antialias_linear_down", attributes: ["mode": .string("linear"), "antialias": .int(1)], shape: [1, 1, 8, 9],
        scales: nil, sizes: [1, 1, 3, 4], roi: nil,
        outputShape: [1, 1, 3, 4],
        expected: [0.28662792, 0.72749358, 0.29203466, 0.74044842, 0.56964284, 0.5772357, 0.62137049, 0.52678567, 0.76096344, 0.4965561, 0.61275417, 0.31312293]),
    ResizeFixture(
        name: "antialias_cubic_down", attributes: ["mode": .string("cubic"), "antialias": .int(1)], shape: [1, 1, 8, 8],
        scales: [1, 1, 0.5, 0.375], sizes: nil, roi: nil,
        outputShape: [1, 1, 4, 3],
        expected: [0.46764925, 0.68519253, 0.24876353, 0.88256866, 0.59419715, 0.46823022, 0.57547343, 0.59676015, 0.53004009, 0.51376438, 0.57577956, 0.60786694]),
    ResizeFixture(
        name: "axes_keep_aspect_not_larger", attributes: ["mode": .string("linear"), "axes": .ints([2, 3]), "keep_aspect_ratio_policy": .string("not_larger")], shape: [1, 2, 4, 6],
        scales: nil, sizes: [6, 6], roi: nil,
        outputShape: [1, 2, 4, 6],
        expected: [-1, 1, -0.28571427, 1.7142856, 0.42857146, -0.85714287, 1.1428571, -0.14285713, 1.8571429, 0.57142854, -0.71428573, 1.2857144, 0, 2, 0.71428573, -0.57142854, 1.4285715, 0.14285719, 2.1428571, 0.85714281, -0.4285714, 1.5714285, 0.28571427, -1, 1, -0.28571427, 1.7142856, 0.42857146, -0.85714287, 1.1428571, -0.14285713, 1.8571429, 0.57142854, -0.71428573, 1.2857144, 0, 2, 0.71428573, -0.57142854, 1.4285715, 0.14285719, 2.1428571, 0.85714281, -0.4285714, 1.5714285, 0.28571427, -1, 1]),
    ResizeFixture(
        name: "axes_keep_aspect_not_smaller", attributes: ["mode": .string("nearest"), "axes": .ints([3, 2]), "keep_aspect_ratio_policy": .string("not_smaller")], shape: [1, 1, 4, 6],
        scales: nil, sizes: [9, 5], roi: nil,
        outputShape: [1, 1, 6, 9],
        expected: [-1, -1, 1, -0.28571427, -0.28571427, 1.7142856, 0.42857146, 0.42857146, -0.85714287, -1, -1, 1, -0.28571427, -0.28571427, 1.7142856, 0.42857146, 0.42857146, -0.85714287, 1.1428571, 1.1428571, -0.14285713, 1.8571429, 1.8571429, 0.57142854, -0.71428573, -0.71428573, 1.2857144, 0, 0, 2, 0.71428573, 0.71428573, -0.57142854, 1.4285715, 1.4285715, 0.14285719, 0, 0, 2, 0.71428573, 0.71428573, -0.57142854, 1.4285715, 1.4285715, 0.14285719, 2.1428571, 2.1428571, 0.85714281, -0.4285714, -0.4285714, 1.5714285, 0.28571427, 0.28571427, -1]),
    ResizeFixture(
        name: "half_pixel_symmetric", attributes: ["mode": .string("linear"), "coordinate_transformation_mode": .string("half_pixel_symmetric")], shape: [1, 1, 4, 5],
        scales: [1, 1, 1.3, 0.7], sizes: nil, roi: nil,
        outputShape: [1, 1, 5, 3],
        expected: [0.14285707, -0.28571427, 1.1632652, 0.24725267, -0.18131867, 1.2676609, 0.35714281, -0.071428567, 1.377551, 0.46703297, 0.038461562, 1.4874412, 0.57142854, 0.14285719, 1.5918367]),
    ResizeFixture(
        name: "trilinear", attributes: ["mode": .string("linear"), "coordinate_transformation_mode": .string("align_corners")], shape: [1, 1, 2, 3, 4],
        scales: nil, sizes: [1, 1, 3, 5, 3], roi: nil,
        outputShape: [1, 1, 3, 5, 3],
        expected: [-1, 0.35714287, 1.7142856, -0.28571427, 0.24999999, 0.78571427, 0.42857146, 0.1428571, -0.14285713, 1.1428572, 0.035714254, 0.57142866, 1.8571429, -0.071428597, 1.2857144, -0.5, 0.85714293, 0.57142854, 0.21428573, 0.75, 0.46428573, 0.92857146, 0.64285713, 0.35714284, 0.8214286, 0.53571427, 0.25000006, 0.71428573, 0.4285714, 0.14285719, 0, 1.3571429, -0.57142854, 0.71428573, 1.25, 0.14285713, 1.4285715, 1.1428571, 0.85714281, 0.5, 1.0357143, -0.071428597, -0.4285714, 0.92857134, -1]),
    ResizeFixture(
        name: "resize_channels", attributes: ["mode": .string("linear")], shape: [2, 3, 4],
        scales: [1, 2, 1], sizes: nil, roi: nil,
        outputShape: [2, 6, 4],
        expected: [-1, 1, -0.28571427, 1.7142856, -0.64285713, 0.53571427, 0.071428567, 1.2499998, 0.071428597, -0.39285713, 0.78571427, 0.32142854, 0.78571433, -0.5, 0.67857134, 0.21428575, 1.5, 0.21428569, -0.25, 0.92857146, 1.8571429, 0.57142854, -0.71428573, 1.2857144, 0, 2, 0.71428573, -0.57142854, 0.35714287, 1.5357143, 1.0714285, -0.21428567, 1.0714285, 0.60714293, 1.7857143, 0.49999994, 0.96428567, 0.5, 1.6785713, 0.39285707, 0.035714328, 1.2142857, 0.75, -0.53571427, -0.4285714, 1.5714285, 0.28571427, -1]),
]

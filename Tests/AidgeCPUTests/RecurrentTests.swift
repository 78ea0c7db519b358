import AidgeCPU
import AidgeCore
import Foundation
import XCTest

/// One recurrent layer's configuration and inputs, for the kernels and for the reference below.
private struct RecurrentCase {
    var cell: RecurrentCell
    var seq = 4, batch = 3, inputSize = 5, hidden = 4
    var direction = "forward"
    var batchFirst = false
    var bias = true
    var initialH = true
    var initialC = true
    var peepholes = false
    var lengths: [Int]? = nil
    var clip: Double? = nil
    var linearBeforeReset = false
    var inputForget = false

    var directions: Int { direction == "bidirectional" ? 2 : 1 }
    var gates: Int { cell.gates }
    var xShape: [Int] { batchFirst ? [batch, seq, inputSize] : [seq, batch, inputSize] }
    var stateShape: [Int] { batchFirst ? [batch, directions, hidden] : [directions, batch, hidden] }

    var attributes: Attributes {
        var a: Attributes = ["hidden_size": .int(hidden), "direction": .string(direction)]
        if batchFirst { a["layout"] = .int(1) }
        if let clip { a["clip"] = .float(Float(clip)) }
        if linearBeforeReset { a["linear_before_reset"] = .int(1) }
        if inputForget { a["input_forget"] = .int(1) }
        return a
    }

    /// Random inputs in ONNX order (absent optional inputs nil), in float64.
    func inputs(seed: UInt64 = 1) -> [[Double]?] {
        func random(_ n: Int, _ s: UInt64, scale: Double = 1) -> [Double] {
            randomFloats(n, seed: seed &* 31 &+ s).map { Double($0) * scale }
        }
        let g = gates * hidden
        var v: [[Double]?] = [
            random(ShapeUtil.count(xShape), 1, scale: 1.5), random(directions * g * inputSize, 2, scale: 0.6),
            random(directions * g * hidden, 3, scale: 0.6), bias ? random(directions * 2 * g, 4, scale: 0.5) : nil,
            lengths.map { $0.map(Double.init) }, initialH ? random(directions * batch * hidden, 5) : nil,
        ]
        if cell == .lstm {
            v.append(initialC ? random(directions * batch * hidden, 6) : nil)
            v.append(peepholes ? random(directions * 3 * hidden, 7) : nil)
        }
        while let last = v.last, last == nil { v.removeLast() }
        return v
    }

    /// The inputs as tensors of `dtype` (sequence_lens int32).
    func tensors(_ values: [[Double]?], dtype: DType) throws -> [Tensor?] {
        let g = gates * hidden
        let shapes: [[Int]] = [
            xShape, [directions, g, inputSize], [directions, g, hidden], [directions, 2 * g], [batch], stateShape,
            stateShape, [directions, 3 * hidden],
        ]
        return try values.enumerated().map { i, v in
            guard let v else { return nil }
            if i == RecurrentGeometry.sequenceLengths { return try Tensor(v.map { Int32($0) }, shape: shapes[i]) }
            return try Tensor(v, shape: shapes[i]).cast(to: dtype)
        }
    }

    /// A direct transcription of the ONNX equations, one batch entry and time step at a time.
    func reference(_ v: [[Double]?]) -> [[Double]] {
        let (dirs, h, n) = (directions, hidden, inputSize)
        let g = gates * h
        func at(_ i: Int) -> [Double]? { i < v.count ? v[i] : nil }
        let x = v[0] ?? [], w = v[1] ?? [], r = v[2] ?? []
        let bias = at(3), h0 = at(5), c0 = at(6), p = at(7)
        var y = [Double](repeating: 0, count: seq * dirs * batch * h)
        var yh = [Double](repeating: 0, count: dirs * batch * h)
        var yc = yh
        func stateIndex(_ d: Int, _ b: Int) -> Int { batchFirst ? (b * dirs + d) * h : (d * batch + b) * h }
        func yIndex(_ t: Int, _ d: Int, _ b: Int) -> Int {
            batchFirst ? ((b * seq + t) * dirs + d) * h : ((t * dirs + d) * batch + b) * h
        }
        func sigmoid(_ z: Double) -> Double { 1 / (1 + exp(-z)) }
        func clipped(_ z: Double) -> Double { clip.map { Double(Float($0)) }.map { max(-$0, min($0, z)) } ?? z }
        for d in 0..<dirs {
            let reverse = direction == "reverse" || d == 1
            for b in 0..<batch {
                let length = lengths?[b] ?? seq
                var hs = (0..<h).map { h0?[stateIndex(d, b) + $0] ?? 0 }
                var cs = (0..<h).map { c0?[stateIndex(d, b) + $0] ?? 0 }
                for s in 0..<length {
                    let t = reverse ? length - 1 - s : s
                    let xRow = (batchFirst ? b * seq + t : t * batch + b) * n
                    // Row `k` of the gate blocks: x·W + state·R, and the two biases.
                    func xw(_ k: Int) -> Double { (0..<n).reduce(0) { $0 + w[(d * g + k) * n + $1] * x[xRow + $1] } }
                    func rh(_ k: Int, _ state: [Double]) -> Double {
                        (0..<h).reduce(0) { $0 + r[(d * g + k) * h + $1] * state[$1] }
                    }
                    func wb(_ k: Int) -> Double { bias?[d * 2 * g + k] ?? 0 }
                    func rb(_ k: Int) -> Double { bias?[d * 2 * g + g + k] ?? 0 }
                    var next = [Double](repeating: 0, count: h)
                    switch cell {
                    case .rnn:
                        for j in 0..<h { next[j] = tanh(clipped(xw(j) + rh(j, hs) + wb(j) + rb(j))) }
                    case .gru:
                        let z = (0..<h).map { sigmoid(clipped(xw($0) + rh($0, hs) + wb($0) + rb($0))) }
                        let rr = (0..<h).map { sigmoid(clipped(xw(h + $0) + rh(h + $0, hs) + wb(h + $0) + rb(h + $0))) }
                        let reset = (0..<h).map { rr[$0] * hs[$0] }
                        for j in 0..<h {
                            let k = 2 * h + j
                            let pre = linearBeforeReset
                                ? xw(k) + wb(k) + rr[j] * (rh(k, hs) + rb(k)) : xw(k) + rh(k, reset) + wb(k) + rb(k)
                            next[j] = (1 - z[j]) * tanh(clipped(pre)) + z[j] * hs[j]
                        }
                    case .lstm:
                        func peephole(_ k: Int, _ j: Int, _ c: [Double]) -> Double { (p?[d * 3 * h + k * h + j] ?? 0) * c[j] }
                        var cNext = cs
                        for j in 0..<h {
                            let i = sigmoid(clipped(xw(j) + rh(j, hs) + wb(j) + rb(j) + peephole(0, j, cs)))
                            let k = 2 * h + j
                            let f = inputForget
                                ? 1 - i : sigmoid(clipped(xw(k) + rh(k, hs) + wb(k) + rb(k) + peephole(2, j, cs)))
                            let c = tanh(clipped(xw(3 * h + j) + rh(3 * h + j, hs) + wb(3 * h + j) + rb(3 * h + j)))
                            cNext[j] = f * cs[j] + i * c
                        }
                        for j in 0..<h {
                            let o = sigmoid(clipped(xw(h + j) + rh(h + j, hs) + wb(h + j) + rb(h + j) + peephole(1, j, cNext)))
                            next[j] = o * tanh(cNext[j])  // clip bounds the gate inputs only (ONNX Runtime)
                        }
                        cs = cNext
                    }
                    hs = next
                    for j in 0..<h { y[yIndex(t, d, b) + j] = hs[j] }
                }
                for j in 0..<h where length > 0 {
                    yh[stateIndex(d, b) + j] = hs[j]
                    yc[stateIndex(d, b) + j] = cs[j]
                }
            }
        }
        return cell == .lstm ? [y, yh, yc] : [y, yh]
    }
}

final class RecurrentTests: XCTestCase {
    /// Runs `c` in float32 and float64 and compares every output with the reference.
    private func check(_ c: RecurrentCase, file: StaticString = #filePath, line: UInt = #line) throws {
        let values = c.inputs()
        let expected = c.reference(values)
        for dtype in [DType.float32, .float64] {
            let outputs = try runOperator(c.cell.rawValue, c.attributes, inputs: try c.tensors(values, dtype: dtype))
            XCTAssertEqual(outputs.count, expected.count, file: file, line: line)
            for (k, (out, want)) in zip(outputs, expected).enumerated() {
                XCTAssertEqual(out.dtype, dtype, file: file, line: line)
                let scale = dtype == .float32 ? 1.0 : 1e-7
                let got = out.doubles()
                XCTAssertEqual(got.count, want.count, file: file, line: line)
                if let e = got.indices.first(where: { !(abs(got[$0] - want[$0]) <= scale * (2e-6 + 1e-5 * abs(want[$0]))) }) {
                    XCTFail(
                        "\(c.cell.rawValue) \(c.direction) layout \(c.batchFirst ? 1 : 0) output \(k) (\(dtype)) "
                            + "element \(e): \(got[e]) vs reference \(want[e])", file: file, line: line)
                }
            }
        }
    }

    func testDirectionsLayoutsAndOptionalInputs() throws {
        for cell in RecurrentCell.allCases {
            for direction in ["forward", "reverse", "bidirectional"] {
                for batchFirst in [false, true] {
                    for optional in [false, true] {
                        var c = RecurrentCase(cell: cell)
                        c.direction = direction
                        c.batchFirst = batchFirst
                        (c.bias, c.initialH, c.initialC) = (optional, optional, optional)
                        try check(c)
                    }
                }
            }
        }
    }

    func testGRULinearBeforeReset() throws {
        for direction in ["forward", "bidirectional"] {
            var c = RecurrentCase(cell: .gru)
            c.direction = direction
            c.linearBeforeReset = true
            try check(c)
        }
    }

    func testLSTMPeepholesInputForgetAndClip() throws {
        var c = RecurrentCase(cell: .lstm)
        c.peepholes = true
        try check(c)
        c.direction = "bidirectional"
        c.inputForget = true
        try check(c)
        c.inputForget = false
        c.clip = 0.7
        try check(c)
        for cell in [RecurrentCell.rnn, .gru] {
            var c = RecurrentCase(cell: cell)
            c.clip = 0.5
            try check(c)
        }
    }

    func testSequenceLengths() throws {
        for cell in RecurrentCell.allCases {
            for batchFirst in [false, true] {
                var c = RecurrentCase(cell: cell)
                c.batch = 4
                c.lengths = [4, 2, 0, 3]
                c.direction = "bidirectional"
                c.batchFirst = batchFirst
                try check(c)
            }
        }
    }

    func testLargerSizesUseTheBlockedGEMM() throws {
        var c = RecurrentCase(cell: .lstm)
        (c.seq, c.batch, c.inputSize, c.hidden) = (5, 9, 37, 33)
        c.direction = "bidirectional"
        try check(c)
        c.cell = .gru
        c.batchFirst = true
        try check(c)
    }

    func testEmptySequenceOrBatch() throws {
        for cell in RecurrentCell.allCases {
            for (seq, batch) in [(0, 2), (3, 0)] {
                var c = RecurrentCase(cell: cell)
                (c.seq, c.batch) = (seq, batch)
                c.direction = "bidirectional"
                try check(c)
                try checkGradients(
                    cell.rawValue, c.attributes, inputs: try c.tensors(c.inputs(), dtype: .float64))
            }
        }
    }

    func testOnlyYOrOnlyYh() throws {
        let c = RecurrentCase(cell: .lstm)
        let values = c.inputs()
        let expected = c.reference(values)
        let inputs = try c.tensors(values, dtype: .float32)
        let y = try runOperator("LSTM", c.attributes, inputs: inputs, outputs: 1)
        XCTAssertEqual(y.count, 1)
        assertClose(y[0].doubles().map(Float.init), expected[0].map(Float.init))
        // hidden_size may be left out (taken from R).
        var attributes = c.attributes
        attributes["hidden_size"] = nil
        let all = try runOperator("LSTM", attributes, inputs: inputs)
        assertClose(all[1].doubles().map(Float.init), expected[1].map(Float.init))
    }

    func testActivationsOtherThanTheDefaults() throws {
        // Relu as f of an RNN: the reference with tanh replaced.
        var c = RecurrentCase(cell: .rnn)
        c.initialH = false
        let values = c.inputs()
        var attributes = c.attributes
        attributes["activations"] = .strings(["Relu"])
        let out = try runOperator("RNN", attributes, inputs: try c.tensors(values, dtype: .float64))
        // One step by hand: H_0 = relu(x_0·Wᵀ + Wb + Rb).
        let (n, h) = (c.inputSize, c.hidden)
        let x = values[0] ?? [], w = values[1] ?? [], bias = values[3] ?? []
        for b in 0..<c.batch {
            for j in 0..<h {
                var z = bias[j] + bias[h + j]
                for p in 0..<n { z += w[j * n + p] * x[b * n + p] }
                XCTAssertEqual(out[0].doubles()[b * h + j], max(z, 0), accuracy: 1e-12)
            }
        }
    }

    func testBadInputsAreClearErrors() throws {
        _ = cpuRegistered
        let c = RecurrentCase(cell: .lstm)
        let inputs = try c.tensors(c.inputs(), dtype: .float32)
        func expectError(
            _ attributes: Attributes, _ inputs: [Tensor?], _ fragment: String, line: UInt = #line
        ) {
            XCTAssertThrowsError(try runOperator("LSTM", attributes, inputs: inputs), line: line) { error in
                XCTAssertTrue("\(error)".contains(fragment), "\(error) should mention \(fragment)", line: line)
            }
        }
        var wrongW = inputs
        wrongW[1] = Tensor(zeros: [1, 15, 5])
        expectError(c.attributes, wrongW, "W")
        var wrongX = inputs
        wrongX[0] = Tensor(zeros: [4, 5])
        expectError(c.attributes, wrongX, "rank 3")
        var wrongH = inputs
        wrongH[5] = Tensor(zeros: [1, 2, 4])
        expectError(c.attributes, wrongH, "initial_h")
        var lengths = inputs
        lengths[4] = try Tensor([Int32(1), 5, 2], shape: [3])
        expectError(c.attributes, lengths, "sequence_lens[1] = 5")
        var direction = c.attributes
        direction["direction"] = .string("sideways")
        expectError(direction, inputs, "sideways")
        var activation = c.attributes
        activation["activations"] = .strings(["Sigmoid", "Tanh", "Swish"])
        expectError(activation, inputs, "Swish")
        var count = c.attributes
        count["activations"] = .strings(["Sigmoid", "Tanh"])
        expectError(count, inputs, "3 functions per direction")
        var mixed = inputs
        mixed[2] = inputs[2]?.cast(to: .float64)
        expectError(c.attributes, mixed, "dtype")
    }

    /// float16 runs through the float32 kernel: its outputs are float32's on the rounded inputs, rounded.
    func testFloat16RunsThroughFloat32() throws {
        _ = cpuRegistered
        let c = RecurrentCase(cell: .lstm)
        let inputs = try c.tensors(c.inputs(), dtype: .float32)
        let half = inputs.map { $0.map { $0.dtype == .float32 ? $0.cast(to: .float16) : $0 } }
        let rounded = half.map { $0.map { $0.dtype == .float16 ? $0.cast(to: .float32) : $0 } }
        let outputs = try runOperator("LSTM", c.attributes, inputs: half, outputs: 3)
        let expected = try runOperator("LSTM", c.attributes, inputs: rounded, outputs: 3)
        for (y, reference) in zip(outputs, expected) {
            XCTAssertEqual(y.dtype, .float16)
            XCTAssertEqual(y.converted(to: Float.self), reference.cast(to: .float16).converted(to: Float.self))
        }
    }
}

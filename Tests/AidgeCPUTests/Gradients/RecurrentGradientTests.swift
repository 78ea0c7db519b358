import AidgeCore
import XCTest

/// Backward through time of RNN, GRU and LSTM against float64 finite differences, every option.
final class RecurrentGradientTests: XCTestCase {
    /// Random float64 inputs in ONNX order for a small layer (nil for absent optional inputs).
    private func inputs(
        _ cell: RecurrentCell, seq: Int = 3, batch: Int = 2, inputSize: Int = 3, hidden: Int = 3,
        directions: Int = 1, batchFirst: Bool = false, bias: Bool = true, initialH: Bool = true,
        initialC: Bool = true, peepholes: Bool = false, lengths: [Int32]? = nil, seed: UInt64 = 1
    ) throws -> [Tensor?] {
        let g = cell.gates * hidden
        let state = batchFirst ? [batch, directions, hidden] : [directions, batch, hidden]
        var v: [Tensor?] = [
            randomTensor(batchFirst ? [batch, seq, inputSize] : [seq, batch, inputSize], seed: seed),
            randomTensor([directions, g, inputSize], seed: seed + 1, scale: 0.8),
            randomTensor([directions, g, hidden], seed: seed + 2, scale: 0.8),
            bias ? randomTensor([directions, 2 * g], seed: seed + 3, scale: 0.5) : nil,
            try lengths.map { try Tensor($0, shape: [batch]) },
            initialH ? randomTensor(state, seed: seed + 4) : nil,
        ]
        if cell == .lstm {
            v.append(initialC ? randomTensor(state, seed: seed + 5) : nil)
            v.append(peepholes ? randomTensor([directions, 3 * hidden], seed: seed + 6) : nil)
        }
        while let last = v.last, last == nil { v.removeLast() }
        return v
    }

    private func attributes(direction: String = "forward", _ extra: Attributes = [:], hidden: Int = 3) -> Attributes {
        var a: Attributes = ["hidden_size": .int(hidden), "direction": .string(direction)]
        for (k, v) in extra.values { a[k] = v }
        return a
    }

    func testEveryCellAndDirection() throws {
        for cell in RecurrentCell.allCases {
            for direction in ["forward", "reverse", "bidirectional"] {
                let dirs = direction == "bidirectional" ? 2 : 1
                try checkGradients(
                    cell.rawValue, attributes(direction: direction), inputs: try inputs(cell, directions: dirs))
            }
        }
    }

    func testBatchFirstLayoutWithoutOptionalInputs() throws {
        for cell in RecurrentCell.allCases {
            try checkGradients(
                cell.rawValue, attributes(direction: "bidirectional", ["layout": .int(1)]),
                inputs: try inputs(cell, directions: 2, batchFirst: true, bias: false, initialH: false, initialC: false))
        }
    }

    func testGRULinearBeforeReset() throws {
        for direction in ["forward", "bidirectional"] {
            try checkGradients(
                "GRU", attributes(direction: direction, ["linear_before_reset": .int(1)]),
                inputs: try inputs(.gru, directions: direction == "bidirectional" ? 2 : 1))
        }
    }

    func testLSTMPeepholesAndInputForget() throws {
        try checkGradients(
            "LSTM", attributes(direction: "bidirectional"), inputs: try inputs(.lstm, directions: 2, peepholes: true))
        try checkGradients(
            "LSTM", attributes(["input_forget": .int(1)]), inputs: try inputs(.lstm, peepholes: true))
    }

    func testSequenceLengths() throws {
        for cell in RecurrentCell.allCases {
            try checkGradients(
                cell.rawValue, attributes(direction: "bidirectional"),
                inputs: try inputs(cell, seq: 4, batch: 3, directions: 2, lengths: [4, 0, 2]))
            try checkGradients(
                cell.rawValue, attributes(direction: "bidirectional", ["layout": .int(1)]),
                inputs: try inputs(cell, seq: 4, batch: 3, directions: 2, batchFirst: true, lengths: [1, 4, 3]))
        }
    }

    func testClip() throws {
        // Gate inputs well past the bound in places, where the gradient stops.
        for cell in RecurrentCell.allCases {
            for lbr in cell == .gru ? [0, 1] : [0] {
                try checkGradients(
                    cell.rawValue, attributes(["clip": .float(0.6), "linear_before_reset": .int(lbr)]),
                    inputs: try inputs(cell, peepholes: true, seed: 3))
            }
        }
    }

    func testOtherActivations() throws {
        let lists: [(RecurrentCell, [String], [Float], [Float])] = [
            (.rnn, ["Relu"], [], []),
            (.rnn, ["Softsign"], [], []),
            (.rnn, ["Softplus"], [], []),
            (.rnn, ["Elu"], [0.7], []),
            (.rnn, ["Affine"], [0.8], [0.1]),
            (.rnn, ["LeakyRelu"], [0.2], []),
            (.rnn, ["ScaledTanh"], [1.3], [0.6]),
            (.gru, ["HardSigmoid", "Softsign"], [0.3], [0.45]),
            (.lstm, ["HardSigmoid", "Tanh", "ScaledTanh"], [0.25, 0.9], [0.5, 1.1]),
        ]
        for (cell, names, alphas, betas) in lists {
            var extra: Attributes = ["activations": .strings(names)]
            if !alphas.isEmpty { extra["activation_alpha"] = .floats(alphas) }
            if !betas.isEmpty { extra["activation_beta"] = .floats(betas) }
            try checkGradients(cell.rawValue, attributes(extra), inputs: try inputs(cell, seed: 5))
        }
    }

    func testOnlySomeOutputsReachTheLoss() throws {
        // Y_h alone, then Y_c alone: the other output gradients are nil (zero).
        let x = try inputs(.lstm, directions: 2)
        try checkGradients("LSTM", attributes(direction: "bidirectional"), inputs: x, seeded: [1])
        try checkGradients("LSTM", attributes(direction: "bidirectional"), inputs: x, seeded: [2])
        try checkGradients("GRU", attributes(), inputs: try inputs(.gru), seeded: [0])
        // A node with only Y.
        try checkGradients("LSTM", attributes(), inputs: try inputs(.lstm), outputCount: 1)
    }

    func testWeightsAsConstantsStillGiveInputGradients() throws {
        try checkGradients("GRU", attributes(), inputs: try inputs(.gru), constants: [1, 2, 3])
    }
}

/// The recurrent layers of ONNX: RNN, GRU and LSTM, each one layer run over a whole sequence, forward, reverse or
/// both ways (opset 14 semantics; earlier opsets differ only by lacking `layout`).

/// Which recurrent layer a node is.
public enum RecurrentCell: String, Sendable, CaseIterable {
    case rnn = "RNN"
    case gru = "GRU"
    case lstm = "LSTM"

    /// Gate blocks stacked in W and R: RNN one; GRU z, r, h; LSTM i, o, f, c.
    public var gates: Int {
        switch self {
        case .rnn: 1
        case .gru: 3
        case .lstm: 4
        }
    }

    /// ONNX input names in order.
    public var inputNames: [String] {
        switch self {
        case .rnn, .gru: ["X", "W", "R", "B", "sequence_lens", "initial_h"]
        case .lstm: ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"]
        }
    }

    /// Outputs: Y and Y_h, and Y_c for LSTM.
    public var outputCount: Int { self == .lstm ? 3 : 2 }

    /// Activation functions per direction: RNN f; GRU f, g; LSTM f, g, h (ONNX defaults).
    public var defaultActivations: [RecurrentActivation.Kind] {
        switch self {
        case .rnn: [.tanh]
        case .gru: [.sigmoid, .tanh]
        case .lstm: [.sigmoid, .tanh, .tanh]
        }
    }
}

/// One activation function of a recurrent layer, with the alpha and beta of those that take them.
public struct RecurrentActivation: Sendable, Equatable {
    /// The functions ONNX lists for recurrent layers.
    public enum Kind: String, Sendable, CaseIterable {
        case relu = "Relu", tanh = "Tanh", sigmoid = "Sigmoid", affine = "Affine", leakyRelu = "LeakyRelu"
        case thresholdedRelu = "ThresholdedRelu", scaledTanh = "ScaledTanh", hardSigmoid = "HardSigmoid"
        case elu = "Elu", softsign = "Softsign", softplus = "Softplus"

        /// Whether the function consumes an entry of `activation_alpha` / `activation_beta`.
        var takesAlpha: Bool { [.affine, .leakyRelu, .thresholdedRelu, .scaledTanh, .hardSigmoid, .elu].contains(self) }
        var takesBeta: Bool { [.affine, .scaledTanh, .hardSigmoid].contains(self) }

        /// Alpha and beta when the lists run out (ONNX Runtime's choices: the defaults of the matching ONNX
        /// operators where it has them, else 0).
        var defaults: (alpha: Float, beta: Float) {
            switch self {
            case .leakyRelu: (0.01, 0)
            case .hardSigmoid: (0.2, 0.5)
            case .elu: (1, 0)
            default: (0, 0)
            }
        }
    }

    public let kind: Kind
    public let alpha: Float
    public let beta: Float

    public init(_ kind: Kind, alpha: Float = 0, beta: Float = 0) {
        self.kind = kind
        self.alpha = alpha
        self.beta = beta
    }
}

/// Everything about one recurrent node that follows from its attributes and input shapes; shared by shape
/// inference and the kernels so that both check the same things.
public struct RecurrentGeometry: Sendable {
    public let cell: RecurrentCell
    public let dtype: DType
    public let seq: Int
    public let batch: Int
    public let inputSize: Int
    public let hidden: Int
    public let directions: Int
    /// `direction` = reverse (one direction, run from the end).
    public let reverseOnly: Bool
    /// `layout` = 1: X, Y and the states are batch-major.
    public let batchFirst: Bool
    /// Bound on the gate inputs (`clip`), or nil. As in ONNX Runtime, LSTM's cell state entering h is not clipped.
    public let clip: Float?
    /// GRU: the reset gate applies after the recurrent product (PyTorch's form).
    public let linearBeforeReset: Bool
    /// LSTM: the forget gate is 1 - the input gate.
    public let inputForget: Bool
    /// The activation functions of each direction (`cell.defaultActivations.count` each).
    public let activations: [[RecurrentActivation]]
    public let hasBias: Bool
    public let hasSequenceLengths: Bool
    public let hasInitialH: Bool
    public let hasInitialC: Bool
    public let hasPeepholes: Bool

    /// Input indices.
    public static let x = 0, w = 1, r = 2, b = 3, sequenceLengths = 4, initialH = 5, initialC = 6, p = 7

    public init(_ cell: RecurrentCell, _ attributes: Attributes, _ inputs: [ValueInfo?]) throws {
        self.cell = cell
        let type = cell.rawValue
        let x = try inputs.required(Self.x)
        let w = try inputs.required(Self.w)
        let r = try inputs.required(Self.r)
        try OperatorSchema.expect(x, in: OperatorSchema.floatTypes, "\(type) input X")
        dtype = x.dtype
        for (i, name) in cell.inputNames.enumerated() where i != Self.sequenceLengths {
            if let info = inputs.optional(i), info.dtype != x.dtype {
                throw AidgeError.unsupportedType("\(type) input \(name) has dtype \(info.dtype), X has \(x.dtype)")
            }
        }
        let layout = try attributes.int("layout", default: 0)
        guard layout == 0 || layout == 1 else {
            throw AidgeError.invalidModel("\(type) layout must be 0 or 1, got \(layout)")
        }
        batchFirst = layout == 1
        guard x.shape.count == 3 else {
            throw AidgeError.shapeMismatch(
                "\(type) input X must have rank 3 (\(batchFirst ? "batch, seq" : "seq, batch"), input), "
                    + "got shape \(ShapeUtil.text(x.shape))")
        }
        seq = batchFirst ? x.shape[1] : x.shape[0]
        batch = batchFirst ? x.shape[0] : x.shape[1]
        inputSize = x.shape[2]

        let direction = try attributes.string("direction", default: "forward")
        switch direction {
        case "forward": (directions, reverseOnly) = (1, false)
        case "reverse": (directions, reverseOnly) = (1, true)
        case "bidirectional": (directions, reverseOnly) = (2, false)
        default:
            throw AidgeError.invalidModel(
                "\(type) direction must be forward, reverse or bidirectional, got '\(direction)'")
        }

        guard r.shape.count == 3 else {
            throw AidgeError.shapeMismatch(
                "\(type) input R must have rank 3 (directions, \(cell.gates) x hidden, hidden), got shape "
                    + ShapeUtil.text(r.shape))
        }
        hidden = try attributes.has("hidden_size") ? attributes.int("hidden_size") : r.shape[2]
        guard hidden > 0 else { throw AidgeError.invalidModel("\(type) hidden_size must be positive, got \(hidden)") }
        let gateRows = cell.gates * hidden
        func check(_ info: ValueInfo, _ name: String, _ expected: [Int], _ meaning: String) throws {
            guard info.shape == expected else {
                throw AidgeError.shapeMismatch(
                    "\(type) input \(name) must have shape \(ShapeUtil.text(expected)) (\(meaning)), got "
                        + ShapeUtil.text(info.shape))
            }
        }
        let gateText = "\(cell.gates) gates x hidden_size \(hidden)"
        try check(w, "W", [directions, gateRows, inputSize], "directions, \(gateText), input size")
        try check(r, "R", [directions, gateRows, hidden], "directions, \(gateText), hidden_size")
        let bias = inputs.optional(Self.b)
        if let bias { try check(bias, "B", [directions, 2 * gateRows], "directions, 2 x \(gateText)") }
        hasBias = bias != nil
        let lengths = inputs.optional(Self.sequenceLengths)
        if let lengths {
            guard lengths.dtype == .int32 || lengths.dtype == .int64 else {
                throw AidgeError.unsupportedType("\(type) input sequence_lens must be int32, got \(lengths.dtype)")
            }
            try check(lengths, "sequence_lens", [batch], "batch")
        }
        hasSequenceLengths = lengths != nil
        let stateShape = batchFirst ? [batch, directions, hidden] : [directions, batch, hidden]
        let stateText = batchFirst ? "batch, directions, hidden_size" : "directions, batch, hidden_size"
        let initialH = inputs.optional(Self.initialH)
        if let initialH { try check(initialH, "initial_h", stateShape, stateText) }
        hasInitialH = initialH != nil
        let initialC = cell == .lstm ? inputs.optional(Self.initialC) : nil
        if let initialC { try check(initialC, "initial_c", stateShape, stateText) }
        hasInitialC = initialC != nil
        let peepholes = cell == .lstm ? inputs.optional(Self.p) : nil
        if let peepholes { try check(peepholes, "P", [directions, 3 * hidden], "directions, 3 x hidden_size") }
        hasPeepholes = peepholes != nil

        if attributes.has("clip") {
            let bound = try attributes.float("clip")
            guard bound > 0, bound.isFinite else {
                throw AidgeError.invalidModel("\(type) clip must be a positive number, got \(bound)")
            }
            clip = bound
        } else {
            clip = nil
        }
        let linearBeforeReset = try attributes.int("linear_before_reset", default: 0)
        self.linearBeforeReset = cell == .gru && linearBeforeReset != 0
        let inputForget = try attributes.int("input_forget", default: 0)
        self.inputForget = cell == .lstm && inputForget != 0
        activations = try Self.parseActivations(cell, attributes, directions: directions)
    }

    /// The activations of each direction from `activations`, `activation_alpha` and `activation_beta`: one list
    /// for all directions, or one per direction (forward first); alphas and betas are taken in order by the
    /// functions that use them.
    private static func parseActivations(
        _ cell: RecurrentCell, _ attributes: Attributes, directions: Int
    ) throws -> [[RecurrentActivation]] {
        let perDirection = cell.defaultActivations.count
        guard attributes.has("activations") else {
            return Array(repeating: cell.defaultActivations.map { RecurrentActivation($0) }, count: directions)
        }
        let names = try attributes.strings("activations")
        guard names.count == perDirection || names.count == perDirection * directions else {
            throw AidgeError.invalidModel(
                "\(cell.rawValue) activations must list \(perDirection) functions per direction "
                    + "(\(perDirection * directions) in all), got \(names.count)")
        }
        var alphas = try attributes.floats("activation_alpha", default: [])[...]
        var betas = try attributes.floats("activation_beta", default: [])[...]
        var parsed: [RecurrentActivation] = []
        for name in names {
            guard let kind = RecurrentActivation.Kind.allCases.first(where: {
                $0.rawValue.lowercased() == name.lowercased()
            }) else {
                throw AidgeError.unsupported(
                    "\(cell.rawValue) activation '\(name)' is not one of "
                        + RecurrentActivation.Kind.allCases.map(\.rawValue).joined(separator: ", "))
            }
            let alpha = kind.takesAlpha ? alphas.popFirst() ?? kind.defaults.alpha : 0
            let beta = kind.takesBeta ? betas.popFirst() ?? kind.defaults.beta : 0
            parsed.append(RecurrentActivation(kind, alpha: alpha, beta: beta))
        }
        if parsed.count < perDirection * directions { parsed += parsed }
        return (0..<directions).map { Array(parsed[($0 * perDirection)..<(($0 + 1) * perDirection)]) }
    }

    /// Whether direction `d` runs from the last time step to the first.
    public func isReverse(_ d: Int) -> Bool { reverseOnly || d == 1 }

    /// Shape of initial_h, initial_c, Y_h and Y_c.
    public var stateShape: [Int] { batchFirst ? [batch, directions, hidden] : [directions, batch, hidden] }

    /// Shape of Y.
    public var outputShape: [Int] {
        batchFirst ? [batch, seq, directions, hidden] : [seq, directions, batch, hidden]
    }

    /// Y, Y_h and (LSTM) Y_c.
    public var outputInfos: [ValueInfo] {
        [ValueInfo(dtype: dtype, shape: outputShape)]
            + Array(repeating: ValueInfo(dtype: dtype, shape: stateShape), count: cell.outputCount - 1)
    }
}

extension OperatorSchema {
    static let recurrentSchemas: [OperatorSchema] = RecurrentCell.allCases.map { cell in
        OperatorSchema(cell.rawValue, inputs: cell.inputNames, minInputs: 3, outputs: cell.outputCount) {
            attributes, inputs in
            try RecurrentGeometry(cell, attributes, inputs).outputInfos
        }
    }
}

/// Einsum's equation, resolved against its inputs' shapes: every label (a letter, or one per dimension an
/// ellipsis covers) gets a size, each input a stride per label, and the output its labels.
public struct EinsumEquation: Sendable {
    /// The size of each label, output labels first, then the summed ones.
    public let sizes: [Int]
    /// How many of `sizes` are output dimensions.
    public let outputRank: Int
    /// For each input, its element stride along each label (0 where it does not have it or broadcasts it;
    /// summed where a label repeats, which reads a diagonal).
    public let strides: [[Int]]

    public var outputShape: [Int] { Array(sizes.prefix(outputRank)) }

    public init(_ equation: String, shapes: [[Int]]) throws {
        let text = String(equation.filter { !$0.isWhitespace })
        let sides = Self.split(text, "->")
        guard sides.count <= 2 else { throw Self.error(equation, "has more than one '->'") }
        let operands = Self.split(sides[0], ",")
        guard operands.count == shapes.count else {
            throw Self.error(equation, "names \(operands.count) operands but the node has \(shapes.count) inputs")
        }
        // Each operand as a list of labels; an ellipsis becomes "…k" labels, right-aligned across operands.
        var ellipsisRank = 0
        var parsed: [[String]] = []
        for (operand, shape) in zip(operands, shapes) {
            let parts = Self.split(operand, "...")
            guard parts.count <= 2 else { throw Self.error(equation, "has two ellipses in operand '\(operand)'") }
            let letters = parts.joined()
            guard letters.allSatisfy({ $0.isLetter && $0.isASCII }) else {
                throw Self.error(equation, "operand '\(operand)' has a character that is not a letter")
            }
            let covered = shape.count - letters.count
            guard covered >= 0, parts.count == 2 || covered == 0 else {
                throw Self.error(equation, "operand '\(operand)' does not match an input of rank \(shape.count)")
            }
            ellipsisRank = max(ellipsisRank, covered)
            var labels = parts[0].map { String($0) }
            if parts.count == 2 {
                labels += (0..<covered).map { "…\(covered - $0)" }
                labels += parts[1].map { String($0) }
            }
            parsed.append(labels)
        }
        let ellipsisLabels = (0..<ellipsisRank).map { "…\(ellipsisRank - $0)" }

        // Sizes, with broadcasting of 1 for the ellipsis dimensions.
        var size: [String: Int] = [:]
        for (labels, shape) in zip(parsed, shapes) {
            for (label, n) in zip(labels, shape) {
                if let known = size[label], known != n {
                    if label.hasPrefix("…") && (known == 1 || n == 1) {
                        size[label] = max(known, n)
                        continue
                    }
                    throw Self.error(equation, "label '\(label)' has sizes \(known) and \(n)")
                }
                size[label] = n
            }
        }

        var output: [String]
        if sides.count == 2 {
            let parts = Self.split(sides[1], "...")
            guard parts.count <= 2, parts.joined().allSatisfy({ $0.isLetter && $0.isASCII }) else {
                throw Self.error(equation, "has an invalid output '\(sides[1])'")
            }
            output = parts[0].map { String($0) }
            if parts.count == 2 { output += ellipsisLabels + parts[1].map { String($0) } }
            for label in output where size[label] == nil && !label.hasPrefix("…") {
                throw Self.error(equation, "output label '\(label)' is in no operand")
            }
            guard Set(output).count == output.count else { throw Self.error(equation, "repeats an output label") }
        } else {
            // Implicit output: the ellipsis, then the letters used once, in alphabetical order.
            var uses: [String: Int] = [:]
            for labels in parsed { for label in labels where !label.hasPrefix("…") { uses[label, default: 0] += 1 } }
            output = ellipsisLabels + uses.filter { $0.value == 1 }.keys.sorted()
        }
        let summed = Set(parsed.joined()).subtracting(output).sorted()
        let all = output + summed
        sizes = all.map { size[$0] ?? 1 }
        outputRank = output.count
        strides = zip(parsed, shapes).map { labels, shape in
            let elementStrides = ShapeUtil.contiguousStrides(shape)
            return all.map { label in
                var stride = 0
                for (k, l) in labels.enumerated() where l == label && shape[k] != 1 { stride += elementStrides[k] }
                return stride
            }
        }
    }

    /// `text` cut at every `separator`, empty pieces kept.
    private static func split(_ text: String, _ separator: String) -> [String] {
        text.split(separator: separator, omittingEmptySubsequences: false).map { String($0) }
    }

    private static func error(_ equation: String, _ problem: String) -> AidgeError {
        .invalidModel("Einsum equation '\(equation)' \(problem)")
    }
}

extension OperatorSchema {
    static let einsumSchemas: [OperatorSchema] = [
        OperatorSchema("Einsum", inputs: ["Inputs"], minInputs: 1, variadic: true) { attributes, inputs in
            let operands = try (0..<inputs.count).map { try inputs.required($0) }
            let dtype = try sameDType(inputs)
            let equation = try EinsumEquation(try attributes.string("equation"), shapes: operands.map(\.shape))
            return [ValueInfo(dtype: dtype, shape: equation.outputShape)]
        }
    ]
}

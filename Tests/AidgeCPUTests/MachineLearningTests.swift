import AidgeCore
import XCTest

/// DeformConv, TfIdfVectorizer, the ai.onnx.ml operators and BatchNormalization's training_mode: small known
/// results, and bad inputs refused with an error that says what is wrong (the conformance suite covers the rest).
final class MachineLearningTests: XCTestCase {
    func testDeformConvWithoutOffsetsIsConv() throws {
        let x = try Tensor(randomFloats(2 * 2 * 5 * 6, seed: 3), shape: [2, 2, 5, 6])
        let w = try Tensor(randomFloats(3 * 2 * 3 * 3, seed: 4), shape: [3, 2, 3, 3])
        let b = Tensor([Float(0.5), -1, 2])
        let attributes: Attributes = ["pads": .ints([1, 0, 1, 2]), "strides": .ints([1, 2])]
        let conv = try runOperator("Conv", attributes, inputs: [x, w, b])[0]
        let offsets = Tensor(zeros: [2, 2 * 9, conv.shape[2], conv.shape[3]])
        let deform = try runOperator("DeformConv", attributes, inputs: [x, w, offsets, b])[0]
        XCTAssertEqual(deform.shape, conv.shape)
        assertClose(try deform.scalars(as: Float.self), try conv.scalars(as: Float.self))
    }

    func testDeformConvMovesAndMasksTaps() throws {
        // A 1x1 kernel reading half a pixel to the right, halved by the mask: the mean of neighbours, halved; the
        // last column reads half of itself (its right neighbour is outside the image).
        let x = try Tensor([Float(1), 2, 3, 4, 5, 6], shape: [1, 1, 2, 3])
        let w = try Tensor([Float(1)], shape: [1, 1, 1, 1])
        let offsets = try Tensor([Float](repeating: 0, count: 6) + [Float](repeating: 0.5, count: 6), shape: [1, 2, 2, 3])
        let mask = try Tensor([Float](repeating: 0.5, count: 6), shape: [1, 1, 2, 3])
        let y = try runOperator("DeformConv", [:], inputs: [x, w, offsets, nil, mask])[0]
        assertClose(try y.scalars(as: Float.self), [0.75, 1.25, 0.75, 2.25, 2.75, 1.5])
    }

    func testDeformConvRefusesAnOffsetOfTheWrongShape() throws {
        let x = Tensor(zeros: [1, 2, 4, 4])
        let w = Tensor(zeros: [1, 2, 2, 2])
        let text = errorMessage { try runOperator("DeformConv", [:], inputs: [x, w, Tensor(zeros: [1, 4, 3, 3])]) }
        XCTAssertTrue(text.contains("offset must be (N, offset_group x kH x kW x 2, oH, oW) = 1x8x3x3, got 1x4x3x3"), text)
        let mask = errorMessage {
            try runOperator("DeformConv", [:], inputs: [x, w, Tensor(zeros: [1, 8, 3, 3]), nil, Tensor(zeros: [1, 8, 3, 3])])
        }
        XCTAssertTrue(mask.contains("mask must be"), mask)
        let channels = errorMessage {
            try runOperator("DeformConv", ["offset_group": .int(3)], inputs: [x, w, Tensor(zeros: [1, 24, 3, 3])])
        }
        XCTAssertTrue(channels.contains("offset_group 3"), channels)
    }

    private func tfIdf(_ extra: Attributes = [:]) -> Attributes {
        var a: Attributes = [
            "mode": .string("TF"), "min_gram_length": .int(1), "max_gram_length": .int(2), "max_skip_count": .int(0),
            "ngram_counts": .ints([0, 2]), "ngram_indexes": .ints([0, 1, 2]), "pool_int64s": .ints([4, 5, 4, 5]),
        ]
        for (name, value) in extra.values { a[name] = value }
        return a
    }

    func testTfIdfVectorizerCountsUnigramsAndBigrams() throws {
        let x = try Tensor([Int64(4), 5, 4, 5, 5], shape: [1, 5])
        let y = try runOperator("TfIdfVectorizer", tfIdf(), inputs: [x])[0]
        XCTAssertEqual(y.shape, [1, 3])
        XCTAssertEqual(try y.scalars(as: Float.self), [2, 3, 2])
        let weighted = try runOperator(
            "TfIdfVectorizer", tfIdf(["mode": .string("TFIDF"), "weights": .floats([1, 0.5, 2])]), inputs: [x])[0]
        XCTAssertEqual(try weighted.scalars(as: Float.self), [2, 1.5, 4])
    }

    func testTfIdfVectorizerRefusesStringPools() throws {
        let x = try Tensor([Int64(1), 2], shape: [2])
        let text = errorMessage {
            try runOperator("TfIdfVectorizer", tfIdf(["pool_strings": .strings(["a", "b"])]), inputs: [x])
        }
        XCTAssertTrue(text.contains("pool_strings"), text)
        let short = errorMessage { try runOperator("TfIdfVectorizer", tfIdf(["ngram_indexes": .ints([0])]), inputs: [x]) }
        XCTAssertTrue(short.contains("ngram_indexes"), short)
    }

    func testBinarizerAndArrayFeatureExtractor() throws {
        let x = try Tensor([Float(0.5), 1, 1.5, -2, 3, 1], shape: [2, 3])
        let b = try runOperator("ai.onnx.ml.Binarizer", ["threshold": .float(1)], inputs: [x])[0]
        XCTAssertEqual(try b.scalars(as: Float.self), [0, 0, 1, 0, 1, 0])
        let picked = try runOperator("ai.onnx.ml.ArrayFeatureExtractor", inputs: [x, Tensor([Int64(2), 0])])[0]
        XCTAssertEqual(picked.shape, [2, 2])
        XCTAssertEqual(try picked.scalars(as: Float.self), [1.5, 0.5, 1, -2])
        let text = errorMessage { try runOperator("ai.onnx.ml.ArrayFeatureExtractor", inputs: [x, Tensor([Int64(3)])]) }
        XCTAssertTrue(text.contains("index 3 is out of range"), text)
    }

    /// One tree: x0 <= 1 ? leaf 0 (target 0, 10) : (x1 in {2, 3} ? leaf 1 (target 1, 20) : leaf 2 (target 1, 30)).
    private func tree(feature: Int = 1, falseNode: Int = 1) -> Attributes {
        [
            "nodes_splits": .tensor(Tensor([1.0, .nan])), "nodes_featureids": .ints([0, feature]),
            "nodes_modes": .tensor(Tensor([Int64(0), 6])), "nodes_truenodeids": .ints([0, 1]),
            "nodes_falsenodeids": .ints([falseNode, 2]), "nodes_trueleafs": .ints([1, 1]), "nodes_falseleafs": .ints([0, 1]),
            "leaf_targetids": .ints([0, 1, 1]), "leaf_weights": .tensor(Tensor([10.0, 20, 30])),
            "membership_values": .tensor(Tensor([2.0, 3, .nan])), "tree_roots": .ints([0]), "n_targets": .int(2),
        ]
    }

    func testTreeEnsemble() throws {
        let x = try Tensor([0.5, 7, 2, 3, 2, 4], shape: [3, 2])
        let y = try runOperator("ai.onnx.ml.TreeEnsemble", tree(), inputs: [x])[0]
        XCTAssertEqual(y.shape, [3, 2])
        XCTAssertEqual(try y.scalars(as: Double.self), [10, 0, 0, 20, 0, 30])
    }

    func testTreeEnsembleRefusesBadTrees() throws {
        let x = try Tensor([0.5, 7], shape: [1, 2])
        let feature = errorMessage { try runOperator("ai.onnx.ml.TreeEnsemble", tree(feature: 2), inputs: [x]) }
        XCTAssertTrue(feature.contains("node 1 tests feature 2, but X has 2 features"), feature)
        let cycle = errorMessage { try runOperator("ai.onnx.ml.TreeEnsemble", tree(falseNode: 0), inputs: [x]) }
        XCTAssertTrue(cycle.contains("cycle"), cycle)
        let outside = errorMessage { try runOperator("ai.onnx.ml.TreeEnsemble", tree(falseNode: 5), inputs: [x]) }
        XCTAssertTrue(outside.contains("false node 5 is not one of the 2 nodes"), outside)
    }

    func testBatchNormalizationTrainingModeUsesTheBatchStatistics() throws {
        // One channel holding 1, 3 (mean 2, population variance 1); running mean 0 and variance 1, momentum 0.5.
        let x = try Tensor([Float(1), 3], shape: [2, 1])
        let ones = Tensor([Float(1)])
        let zeros = Tensor([Float(0)])
        let out = try runOperator(
            "BatchNormalization", ["training_mode": .int(1), "momentum": .float(0.5), "epsilon": .float(0)],
            inputs: [x, ones, zeros, zeros, ones], outputs: 3)
        assertClose(try out[0].scalars(as: Float.self), [-1, 1])
        assertClose(try out[1].scalars(as: Float.self), [1])
        assertClose(try out[2].scalars(as: Float.self), [1])
    }
}

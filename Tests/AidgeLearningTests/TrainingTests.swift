import Aidge
import XCTest

/// Training a graph from Swift: whole-graph parameter gradients against finite differences (float64), and a
/// training loop with the Aidge-style calls.
final class TrainingTests: XCTestCase {
    override func setUp() {
        _ = try? CPUBackend.register()
    }

    /// FC(3→4) → Tanh → FC(4→2) with float64 weights set from a seeded generator.
    private func perceptron() throws -> GraphView {
        let graph = try GraphView.sequential([FC(inChannels: 3, outChannels: 4), Tanh(), FC(inChannels: 4, outChannels: 2)])
        graph.inputs[0].dtype = .float64
        var generator = SeededGenerator(seed: 9)
        for node in graph.parameters {
            let shape = node.producedTensor?.shape ?? []
            let tensor = Tensor(zeros: shape, dtype: .float64)
            try Filler.uniform(tensor, min: -1, max: 1, using: &generator)
            node.setProducedTensor(tensor)
        }
        return graph
    }

    func testParameterGradientsMatchFiniteDifferences() throws {
        let graph = try perceptron()
        let x = try Tensor((0..<15).map { sin(Double($0)) }, shape: [5, 3])
        let y = try Tensor((0..<10).map { cos(Double($0)) }, shape: [5, 2])
        let scheduler = Scheduler(graph)
        graph.train()
        let prediction = try scheduler.forward([x])[0]
        _ = try Loss.mse(prediction, y)
        try scheduler.backward()
        graph.eval()
        func loss() throws -> Double {
            try Loss.mse(try scheduler.forward([x])[0], y).doubles()[0]
        }
        let parameters = graph.parameters
        XCTAssertEqual(parameters.count, 4)
        for node in parameters {
            let tensor = try XCTUnwrap(node.producedTensor)
            let gradient = try XCTUnwrap(tensor.gradient?.tensor, "\(node.name) has a gradient").doubles()
            let p = tensor.pointer(as: Double.self)
            for i in 0..<tensor.count {
                let saved = p[i]
                p[i] = saved + 1e-6
                let plus = try loss()
                p[i] = saved - 1e-6
                let minus = try loss()
                p[i] = saved
                let numeric = (plus - minus) / 2e-6
                XCTAssertEqual(gradient[i], numeric, accuracy: 1e-7 + 1e-6 * abs(numeric), "\(node.name)[\(i)]")
            }
        }
    }

    func testTrainingLoopLowersTheLoss() throws {
        let graph = try perceptron()
        graph.train()
        let scheduler = Scheduler(graph)
        let optimizer = try SGD(learningRate: 0.1, momentum: 0.9)
        try optimizer.setParameters(graph.parameters)
        let x = try Tensor((0..<24).map { sin(Double($0) * 0.7) }, shape: [8, 3])
        let y = try Tensor((0..<16).map { cos(Double($0) * 0.3) * 0.5 }, shape: [8, 2])
        var losses: [Double] = []
        for _ in 0..<60 {
            let prediction = try scheduler.forward([x])[0]
            optimizer.resetGradients()
            losses.append(try Loss.mse(prediction, y).doubles()[0])
            try scheduler.backward()
            try optimizer.update()
        }
        XCTAssertLessThan(try XCTUnwrap(losses.last), losses[0] * 0.5, "losses \(losses)")
    }

    func testInferenceAfterTrainingSeesTheNewWeights() throws {
        let graph = try perceptron()
        let scheduler = Scheduler(graph)
        let x = try Tensor([0.1, 0.2, 0.3], shape: [1, 3])
        let before = try scheduler.forward([x])[0].doubles()
        // An optimizer step changes the weights in place; the next inference run must use them.
        _ = try Loss.mse(try scheduler.forward([x])[0], Tensor(zeros: [1, 2], dtype: .float64))
        try scheduler.backward()
        let optimizer = try SGD(learningRate: 0.5)
        try optimizer.setParameters(graph.parameters)
        try optimizer.update()
        let after = try scheduler.forward([x])[0].doubles()
        let fresh = try Scheduler(graph).forward([x])[0].doubles()
        XCTAssertNotEqual(before, after)
        XCTAssertEqual(after, fresh)
    }
}

/// Inference recipes on a graph in training mode leave every parameter its own Producer.
final class TrainingRecipeTests: XCTestCase {
    func testRecipesKeepParametersInTrainingMode() throws {
        try CPUBackend.register()
        let conv = Conv2D(inChannels: 1, outChannels: 2, kernelDims: [3, 3])
        let graph = try GraphView.sequential([conv, BatchNorm2D(nbFeatures: 2), ReLU()])
        let before = graph.parameters.map(\.name)
        XCTAssertEqual(before.count, 4)  // conv weight and bias, BatchNorm scale and shift
        graph.train()
        let changes = try Recipes.optimizeForInference(graph)
        XCTAssertEqual(changes["fuse_batchnorm"], 0)
        XCTAssertEqual(changes["fuse_activation"], 0)
        XCTAssertEqual(graph.parameters.map(\.name), before)
        graph.eval()
        try Recipes.optimizeForInference(graph)
        XCTAssertTrue(graph.parameters.count < before.count, "evaluation mode fuses BatchNorm into the convolution")
    }
}

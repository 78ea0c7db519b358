import Aidge
import XCTest

/// Each CUDA kernel against the CPU backend's result on the same inputs.
final class CUDAKernelTests: XCTestCase {
    override func setUpWithError() throws { try CUDATestDevice.require() }

    func testBinaryArithmeticBroadcastsLikeTheCPU() throws {
        let a = try randomTensor([2, 3, 4, 5], seed: 1)
        let b = try randomTensor([3, 1, 5], seed: 2, scale: 2)
        for type in ["Add", "Sub", "Mul", "Div", "Max", "Min"] {
            assertMatches(try runBoth(type, inputs: [a, b]), type)
        }
        for dtype in [DType.float16, .bfloat16] {
            assertMatches(try runBoth("Add", inputs: [a.cast(to: dtype), b.cast(to: dtype)]), "Add \(dtype)")
        }
        let i = try Tensor([Int32]([1, -2, 3, 7, 9, -11]), shape: [2, 3])
        let j = try Tensor([Int32]([2, 5, -3]), shape: [3])
        assertMatches(try runBoth("Mul", inputs: [i, j]), "Mul int32")
    }

    func testComparisonsLogicAndWhere() throws {
        let a = try randomTensor([4, 6], seed: 3)
        let b = try randomTensor([6], seed: 4)
        for type in ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"] {
            assertMatches(try runBoth(type, inputs: [a, b]), type)
        }
        let condition = try runBoth("Less", inputs: [a, b]).cpu[0]
        assertMatches(try runBoth("Where", inputs: [condition, a, b]), "Where")
        assertMatches(try runBoth("Not", inputs: [condition]), "Not")
    }

    func testUnaryMathAndActivations() throws {
        let x = try randomTensor([3, 7, 11], seed: 5, scale: 3)
        let positive = try Scheduler.runOperator("Abs", inputs: [x])[0]
        for type in ["Neg", "Abs", "Sign", "Floor", "Ceil", "Exp", "Erf", "Sin", "Cos", "Relu", "Sigmoid", "Tanh",
                     "HardSwish", "Softplus", "Softsign", "Identity"] {
            assertMatches(try runBoth(type, inputs: [x]), type)
        }
        for type in ["Sqrt", "Log", "Reciprocal"] {
            assertMatches(try runBoth(type, inputs: [positive]), type)
        }
        assertMatches(try runBoth("Gelu", inputs: [x]), "Gelu")
        assertMatches(try runBoth("Gelu", ["approximate": .string("tanh")], inputs: [x]), "Gelu tanh")
        assertMatches(try runBoth("LeakyRelu", ["alpha": .float(0.2)], inputs: [x]), "LeakyRelu")
        assertMatches(try runBoth("Elu", ["alpha": .float(0.7)], inputs: [x]), "Elu")
        assertMatches(try runBoth("HardSigmoid", inputs: [x]), "HardSigmoid")
        assertMatches(
            try runBoth("Clip", inputs: [x, Tensor(scalar: Float(-1)), Tensor(scalar: Float(0.5))], constants: [1, 2]),
            "Clip")
        assertMatches(try runBoth("Clip", inputs: [x, nil, Tensor(scalar: Float(0.5))]), "Clip with a maximum only")
        assertMatches(try runBoth("Clip", inputs: [x, Tensor(scalar: Float(-2))]), "Clip with a minimum only")
        assertMatches(try runBoth("Relu", inputs: [x.cast(to: .float16)]), "Relu float16")
        assertMatches(try runBoth("Sigmoid", inputs: [x.cast(to: .bfloat16)]), "Sigmoid bfloat16")
    }

    func testCastBetweenTypes() throws {
        let special: [Float] = [.nan, .infinity, -.infinity, 1e10, -1e10, 300, -300, 255.9, -0.5, 70000]
        let x = try Tensor(try randomTensor([40], seed: 6, scale: 100).scalars(as: Float.self) + special, shape: [5, 10])
        for target in [DType.int32, .int64, .float16, .bfloat16, .bool, .uint8, .float64] {
            assertMatches(try runBoth("Cast", ["to": .int(target.onnxDataType)], inputs: [x]), "Cast to \(target)")
        }
    }

    func testMatMulShapesAgainstTheCPU() throws {
        let cases: [([Int], [Int])] = [
            ([5, 7], [7, 3]), ([2, 4, 5, 7], [7, 3]), ([3, 5, 7], [3, 7, 4]), ([5, 7], [2, 7, 4]),
            ([2, 1, 5, 7], [1, 3, 7, 4]), ([7], [7, 3]), ([5, 7], [7]), ([65, 130], [130, 33]),
        ]
        for (k, (a, b)) in cases.enumerated() {
            let x = try randomTensor(a, seed: UInt64(10 + k)), y = try randomTensor(b, seed: UInt64(20 + k))
            assertMatches(try runBoth("MatMul", inputs: [x, y]), "MatMul \(a) x \(b)")
        }
        let x = try randomTensor([4, 16], seed: 30), y = try randomTensor([16, 8], seed: 31)
        assertMatches(try runBoth("MatMul", inputs: [x.cast(to: .float16), y.cast(to: .float16)]), "MatMul float16")
    }

    func testGemmTransposesAlphaBetaAndBias() throws {
        let a = try randomTensor([6, 4], seed: 40), b = try randomTensor([5, 6], seed: 41)
        let bias = try randomTensor([5], seed: 42), matrixBias = try randomTensor([4, 5], seed: 43)
        let attributes: Attributes = ["transA": .int(1), "transB": .int(1), "alpha": .float(0.5), "beta": .float(2)]
        assertMatches(try runBoth("Gemm", attributes, inputs: [a, b, bias]), "Gemm bias row")
        assertMatches(try runBoth("Gemm", attributes, inputs: [a, b, matrixBias]), "Gemm bias matrix")
        assertMatches(try runBoth("Gemm", attributes, inputs: [a, b]), "Gemm without bias")
        let c = try randomTensor([4, 6], seed: 44), d = try randomTensor([6, 5], seed: 45)
        assertMatches(try runBoth("Gemm", inputs: [c, d, bias], constants: [1, 2]), "Gemm with weights")
    }

    func testSoftmaxAlongEveryAxis() throws {
        let x = try randomTensor([3, 300, 5], seed: 50, scale: 8)
        for axis in [-1, 0, 1] {
            assertMatches(try runBoth("Softmax", ["axis": .int(axis)], inputs: [x]), "Softmax axis \(axis)")
            assertMatches(try runBoth("LogSoftmax", ["axis": .int(axis)], inputs: [x]), "LogSoftmax \(axis)")
        }
        assertMatches(try runBoth("Softmax", inputs: [x.cast(to: .float16)]), "Softmax float16")
    }

    func testTransposeAndReshape() throws {
        let x = try randomTensor([2, 3, 4, 5], seed: 60)
        assertMatches(try runBoth("Transpose", ["perm": .ints([2, 0, 3, 1])], inputs: [x]), "Transpose")
        assertMatches(try runBoth("Transpose", inputs: [x.cast(to: .float16)]), "Transpose float16")
        assertMatches(
            try runBoth("Reshape", inputs: [x, Tensor([Int64]([6, -1]))], constants: [1]), "Reshape")
    }
}

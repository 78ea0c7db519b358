import AidgeCore
import XCTest

final class ResizeGradientTests: XCTestCase {
    /// Scales as a planning-time constant (input 2), on [1, 2, 3, 4] resized to [1, 2, 5, 7] or the like.
    private func check(_ attributes: Attributes, scales: [Double], shape: [Int] = [1, 2, 3, 4],
        file: StaticString = #filePath, line: UInt = #line) throws
    {
        let x = randomTensor(shape, seed: 11)
        try checkGradients(
            "Resize", attributes, inputs: [x, nil, Tensor(scales.map { Float($0) })], constants: [2], file: file,
            line: line)
    }

    func testNearest() throws {
        let modes = ["half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel", "tf_half_pixel_for_nn",
            "half_pixel_symmetric"]
        for mode in modes {
            for rounding in ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"] {
                let attributes: Attributes = [
                    "mode": .string("nearest"), "coordinate_transformation_mode": .string(mode),
                    "nearest_mode": .string(rounding),
                ]
                try check(attributes, scales: [1, 1, 2.5, 1.75])
                try check(attributes, scales: [1, 1, 0.7, 0.5])
            }
        }
    }

    func testLinear() throws {
        for mode in ["half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel", "half_pixel_symmetric"] {
            let attributes: Attributes = ["mode": .string("linear"), "coordinate_transformation_mode": .string(mode)]
            try check(attributes, scales: [1, 1, 2.5, 1.75])
            try check(attributes, scales: [1, 1, 0.7, 0.5])
            // Every axis resized, the batch one included.
            try check(attributes, scales: [2, 1.5, 1, 0.8])
        }
        try check(["mode": .string("linear"), "antialias": .int(1)], scales: [1, 1, 0.6, 0.5], shape: [1, 1, 7, 9])
    }

    func testCubic() throws {
        try check(["mode": .string("cubic")], scales: [1, 1, 2.5, 1.75])
        try check(["mode": .string("cubic"), "exclude_outside": .int(1), "cubic_coeff_a": .float(-0.5)],
            scales: [1, 1, 1.5, 2])
        try check(["mode": .string("cubic"), "antialias": .int(1)], scales: [1, 1, 0.5, 0.7], shape: [1, 2, 8, 6])
    }

    func testCropAndResize() throws {
        // A region reaching outside the input: the extrapolated outputs send nothing back.
        let x = randomTensor([1, 1, 4, 5], seed: 12)
        let roi = Tensor([Float(0), 0, -0.2, 0.1, 1, 1, 0.9, 1.3])
        for mode in ["nearest", "linear"] {
            try checkGradients(
                "Resize",
                ["mode": .string(mode), "coordinate_transformation_mode": .string("tf_crop_and_resize"),
                    "extrapolation_value": .float(3)],
                inputs: [x, roi, nil, int64Vector([1, 1, 6, 4])], constants: [1, 3])
        }
    }

    func testSizesAndUpsample() throws {
        let x = randomTensor([2, 3, 4], seed: 13)
        try checkGradients(
            "Resize", ["mode": .string("linear"), "axes": .ints([2])], inputs: [x, nil, nil, int64Vector([9])],
            constants: [3])
        try checkGradients("Upsample", inputs: [x, Tensor([Float(1), 2, 1.5])], constants: [1])
        try checkGradients(
            "Upsample", ["mode": .string("linear")], inputs: [x, Tensor([Float(1), 2, 3])], constants: [1])
        // Unchanged axes only: a copy.
        try checkGradients("Resize", inputs: [x, nil, Tensor([Float(1), 1, 1])], constants: [2])
    }
}

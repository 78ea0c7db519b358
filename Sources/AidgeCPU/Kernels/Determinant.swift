import AidgeCore

/// Det: LU decomposition with partial pivoting of each matrix, in double.
func registerDeterminantKernels(_ registry: KernelRegistry) {
    registry.register("Det", backend: "cpu") { try makeKernel(DeterminantFamily(), $0) }
}

private struct DeterminantFamily: KernelFamily {
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        let shape = try request.input(0).shape
        let m = shape[shape.count - 1]
        let matrices = ShapeUtil.count(Array(shape.dropLast(2)))
        let scratch = Tensor(zeros: [m * m], dtype: .float64)
        return ClosureKernel { inputs, outputs in
            let x = try presentInput(inputs, 0).pointer(as: T.self)
            let y = try firstOutput(outputs).pointer(as: T.self)
            let a = scratch.pointer(as: Double.self)
            for matrix in 0..<matrices {
                for i in 0..<(m * m) { a[i] = Double(x[matrix * m * m + i]) }
                var determinant: Double = 1
                for column in 0..<m {
                    var pivot = column
                    for row in column..<m where abs(a[row * m + column]) > abs(a[pivot * m + column]) { pivot = row }
                    if a[pivot * m + column] == 0 {
                        determinant = 0
                        break
                    }
                    if pivot != column {
                        for k in 0..<m { (a[column * m + k], a[pivot * m + k]) = (a[pivot * m + k], a[column * m + k]) }
                        determinant = -determinant
                    }
                    let diagonal = a[column * m + column]
                    determinant *= diagonal
                    for row in (column + 1)..<m {
                        let factor = a[row * m + column] / diagonal
                        for k in column..<m { a[row * m + k] -= factor * a[column * m + k] }
                    }
                }
                y[matrix] = T(determinant)
            }
        }
    }
}

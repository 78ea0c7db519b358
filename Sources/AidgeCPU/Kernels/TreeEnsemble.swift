import AidgeCore

/// ai.onnx.ml TreeEnsemble: each sample walks every tree to a leaf, the leaves' weights are aggregated per target
/// (sum, average over the trees, min or max; a min or max target no leaf reached keeps the type's largest or
/// smallest finite value, as ONNX's reference leaves it), then the post transform is applied. Samples are
/// split over the cores; the forest was checked when the kernel was made (`TreeEnsembleForest`).
func registerTreeEnsembleKernels(_ registry: KernelRegistry) {
    registry.register("ai.onnx.ml.TreeEnsemble", backend: "cpu") { try makeKernel(TreeEnsembleFamily(), $0) }
}

private struct TreeEnsembleFamily: KernelFamily {
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        let x = try request.input(0)
        guard x.shape.count == 2 else { throw request.unsupportedType(x.dtype) }
        let (samples, features) = (x.shape[0], x.shape[1])
        let forest = try TreeEnsembleForest(request.attributes, features: features)
        let largest = Double(T.greatestFiniteMagnitude)
        return ClosureKernel { inputs, outputs in
            let data = UnsafePointer(try presentInput(inputs, 0).pointer(as: T.self))
            let y = try firstOutput(outputs).pointer(as: T.self)
            Parallel.forEach(samples, grain: max(1, 256 / max(forest.roots.count, 1))) { range in
                var scores = [Double](repeating: 0, count: forest.targets)
                for n in range {
                    forest.predict(data + n * features, largest: largest, into: &scores)
                    for t in 0..<forest.targets { y[n * forest.targets + t] = T(scores[t]) }
                }
            }
        }
    }
}

extension TreeEnsembleForest {
    /// The leaf that `sample` reaches in the tree of `root`.
    @inline(__always)
    fileprivate func leaf<T: MathFloat>(_ sample: UnsafePointer<T>, root: Int) -> Int {
        var node = root
        while node >= 0 {
            let branch = branches[node]
            let value = Double(sample[branch.feature])
            let taken: Bool
            if value.isNaN && branch.missingTracksTrue {
                taken = true
            } else {
                switch branch.comparison {
                case .lessOrEqual: taken = value <= branch.split
                case .less: taken = value < branch.split
                case .greaterOrEqual: taken = value >= branch.split
                case .greater: taken = value > branch.split
                case .equal: taken = value == branch.split
                case .notEqual: taken = value != branch.split
                case .member: taken = members[branch.members].contains(value)
                }
            }
            node = taken ? branch.whenTrue : branch.whenFalse
        }
        return -1 - node
    }

    /// The transformed scores of one sample.
    fileprivate func predict<T: MathFloat>(_ sample: UnsafePointer<T>, largest: Double, into scores: inout [Double]) {
        let start: Double
        switch aggregate {
        case .sum, .average: start = 0
        case .min: start = largest
        case .max: start = -largest
        }
        for t in 0..<targets { scores[t] = start }
        let trees = Double(roots.count)
        for root in roots {
            let l = leaf(sample, root: root)
            let (target, weight) = (leafTargets[l], leafWeights[l])
            switch aggregate {
            case .sum: scores[target] += weight
            case .average: scores[target] += weight / trees
            case .min: scores[target] = Swift.min(scores[target], weight)
            case .max: scores[target] = Swift.max(scores[target], weight)
            }
        }
        switch postTransform {
        case .none, .probit:  // probit is refused when the forest is read
            break
        case .logistic:
            for t in 0..<targets { scores[t] = 1 / (1 + Double.mathExp(-scores[t])) }
        case .softmax, .softmaxZero:
            // SOFTMAX_ZERO leaves zero scores at zero and leaves them out of the sum.
            let zero = postTransform == .softmaxZero
            var top = -Double.infinity
            for t in 0..<targets where !(zero && scores[t] == 0) { top = Swift.max(top, scores[t]) }
            var sum = 0.0
            for t in 0..<targets {
                if zero && scores[t] == 0 { continue }
                scores[t] = Double.mathExp(scores[t] - top)
                sum += scores[t]
            }
            if sum > 0 {
                for t in 0..<targets { scores[t] /= sum }
            }
        }
    }
}

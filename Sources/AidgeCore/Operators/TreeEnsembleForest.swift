/// ai.onnx.ml TreeEnsemble's trees, checked and flattened. A branch sends a sample to another branch or to a leaf
/// (`Branch.whenTrue`, `whenFalse`: a branch index, or `-1 - leaf`); a leaf adds its weight to its target, and
/// the targets of all trees are aggregated, then transformed. Every index, feature and target is checked here,
/// and the trees must have no cycle, so that the kernel walks them without checks.
public struct TreeEnsembleForest: Sendable {
    public enum Comparison: Int, Sendable {
        case lessOrEqual = 0, less, greaterOrEqual, greater, equal, notEqual, member
    }
    public enum Aggregate: Int, Sendable { case average = 0, sum, min, max }
    public enum PostTransform: Int, Sendable { case none = 0, softmax, logistic, softmaxZero, probit }

    public struct Branch: Sendable {
        public var feature: Int
        public var comparison: Comparison
        public var split: Double
        /// Whether a NaN feature takes the true branch.
        public var missingTracksTrue: Bool
        public var whenTrue: Int
        public var whenFalse: Int
        /// This branch's set (`member` comparisons) in `members`.
        public var members: Range<Int>
    }

    public let branches: [Branch]
    public let members: [Double]
    public let leafTargets: [Int]
    public let leafWeights: [Double]
    /// The branch each tree starts at.
    public let roots: [Int]
    public let targets: Int
    public let aggregate: Aggregate
    public let postTransform: PostTransform

    /// The forest of a node's attributes, for samples of `features` features.
    public init(_ a: Attributes, features: Int) throws {
        let splits = try a.tensor("nodes_splits").doubles()
        let featureIDs = try a.ints("nodes_featureids")
        let modes = try a.tensor("nodes_modes").integers()
        let trueIDs = try a.ints("nodes_truenodeids")
        let falseIDs = try a.ints("nodes_falsenodeids")
        let trueLeafs = try a.ints("nodes_trueleafs")
        let falseLeafs = try a.ints("nodes_falseleafs")
        let missing = try a.ints("nodes_missing_value_tracks_true", default: [])
        let count = splits.count
        let lists = [featureIDs.count, modes.count, trueIDs.count, falseIDs.count, trueLeafs.count, falseLeafs.count]
        guard lists.allSatisfy({ $0 == count }), missing.isEmpty || missing.count == count else {
            throw AidgeError.invalidModel(
                "TreeEnsemble's nodes_* attributes must all describe the \(count) nodes of nodes_splits; they have "
                    + "\(lists) (featureids, modes, truenodeids, falsenodeids, trueleafs, falseleafs) entries")
        }
        let leafTargets = try a.ints("leaf_targetids")
        let leafWeights = try a.tensor("leaf_weights").doubles()
        guard leafTargets.count == leafWeights.count else {
            throw AidgeError.invalidModel(
                "TreeEnsemble has \(leafTargets.count) leaf_targetids but \(leafWeights.count) leaf_weights")
        }
        let targets = try a.int("n_targets")
        guard targets >= 1 else {
            throw AidgeError.invalidModel("TreeEnsemble n_targets must be at least 1, got \(targets)")
        }
        if let bad = leafTargets.firstIndex(where: { $0 < 0 || $0 >= targets }) {
            throw AidgeError.invalidModel(
                "TreeEnsemble leaf \(bad) has target \(leafTargets[bad]), outside the \(targets) targets (n_targets)")
        }
        let rawAggregate = try a.int("aggregate_function", default: 1)
        let rawTransform = try a.int("post_transform", default: 0)
        guard let aggregate = Aggregate(rawValue: rawAggregate) else {
            throw AidgeError.invalidModel("TreeEnsemble aggregate_function \(rawAggregate) is not one of 0 (AVERAGE) to 3 (MAX)")
        }
        guard let postTransform = PostTransform(rawValue: rawTransform) else {
            throw AidgeError.invalidModel("TreeEnsemble post_transform \(rawTransform) is not one of 0 (NONE) to 4 (PROBIT)")
        }
        guard postTransform != .probit else {
            throw AidgeError.unsupported(
                "TreeEnsemble post_transform PROBIT is not supported (NONE, SOFTMAX, LOGISTIC and SOFTMAX_ZERO are)")
        }

        // Each set-membership node's members, in node order, each list ended by a NaN.
        let membership = try a.has("membership_values") ? a.tensor("membership_values").doubles() : []
        var cursor = 0
        var branches: [Branch] = []
        branches.reserveCapacity(count)
        for i in 0..<count {
            guard let comparison = Comparison(rawValue: modes[i]) else {
                throw AidgeError.invalidModel("TreeEnsemble node \(i) has mode \(modes[i]), not one of 0 (LEQ) to 6 (MEMBER)")
            }
            guard featureIDs[i] >= 0 && featureIDs[i] < features else {
                throw AidgeError.invalidModel(
                    "TreeEnsemble node \(i) tests feature \(featureIDs[i]), but X has \(features) features")
            }
            func child(_ id: Int, leaf: Int, _ side: String) throws -> Int {
                if leaf != 0 {
                    guard id >= 0 && id < leafWeights.count else {
                        throw AidgeError.invalidModel(
                            "TreeEnsemble node \(i): its \(side) leaf \(id) is not one of the \(leafWeights.count) leaves")
                    }
                    return -1 - id
                }
                guard id >= 0 && id < count else {
                    throw AidgeError.invalidModel(
                        "TreeEnsemble node \(i): its \(side) node \(id) is not one of the \(count) nodes")
                }
                return id
            }
            var set = cursor..<cursor
            if comparison == .member {
                let start = cursor
                while cursor < membership.count && !membership[cursor].isNaN { cursor += 1 }
                guard cursor < membership.count else {
                    throw AidgeError.invalidModel(
                        "TreeEnsemble node \(i) tests set membership, but membership_values has no NaN-ended list left for it")
                }
                set = start..<cursor
                cursor += 1
            }
            branches.append(
                Branch(
                    feature: featureIDs[i], comparison: comparison, split: splits[i],
                    missingTracksTrue: !missing.isEmpty && missing[i] != 0,
                    whenTrue: try child(trueIDs[i], leaf: trueLeafs[i], "true"),
                    whenFalse: try child(falseIDs[i], leaf: falseLeafs[i], "false"), members: set))
        }
        let roots = try a.ints("tree_roots")
        if let bad = roots.first(where: { $0 < 0 || $0 >= count }) {
            throw AidgeError.invalidModel("TreeEnsemble tree root \(bad) is not one of the \(count) nodes")
        }
        try Self.checkAcyclic(branches, roots: roots)
        self.branches = branches
        members = membership
        self.leafTargets = leafTargets
        self.leafWeights = leafWeights
        self.roots = roots
        self.targets = targets
        self.aggregate = aggregate
        self.postTransform = postTransform
    }

    /// Throws when a tree's walk could come back to a branch it passed (it would never end).
    private static func checkAcyclic(_ branches: [Branch], roots: [Int]) throws {
        // 0: not seen, 1: on the current path, 2: done (no cycle below it).
        var state = [UInt8](repeating: 0, count: branches.count)
        for root in roots where state[root] == 0 {
            var stack: [(node: Int, next: Int)] = [(root, 0)]
            state[root] = 1
            while let top = stack.last {
                let branch = branches[top.node]
                guard top.next < 2 else {
                    state[top.node] = 2
                    stack.removeLast()
                    continue
                }
                stack[stack.count - 1].next += 1
                let child = top.next == 0 ? branch.whenTrue : branch.whenFalse
                guard child >= 0 else { continue }
                switch state[child] {
                case 1: throw AidgeError.invalidModel("TreeEnsemble tree of root \(root) has a cycle through node \(child)")
                case 0:
                    state[child] = 1
                    stack.append((child, 0))
                default: break
                }
            }
        }
    }
}

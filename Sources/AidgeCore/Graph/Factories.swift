// Operator factories with Eclipse Aidge's names and defaults. Each returns a node whose weights and biases are
// `Producer` nodes named `<name>_w` / `<name>_b`, zero-filled as in Aidge until a filler or a load sets them.

/// A node of `type` with `producers` (name suffix, tensor) connected to inputs 1, 2, ...
private func node(_ type: String, _ attributes: Attributes, name: String, producers: [(String, Tensor)]) -> Node {
    let n = Node(Operator(type, attributes: attributes), name: name.isEmpty ? nil : name)
    for (i, (suffix, tensor)) in producers.enumerated() {
        try? n.setInput(i + 1, from: Node.producer(tensor, name: "\(n.name)_\(suffix)"))
    }
    return n
}

/// 2-D convolution (ONNX `Conv`), weight `[out, in, kh, kw]`, bias `[out]` unless `noBias`.
public func Conv2D(
    inChannels: Int, outChannels: Int, kernelDims: [Int], name: String = "", strideDims: [Int] = [1, 1],
    dilationDims: [Int] = [1, 1], noBias: Bool = false
) -> Node {
    PaddedConv2D(
        inChannels: inChannels, outChannels: outChannels, kernelDims: kernelDims, name: name, strideDims: strideDims,
        paddingDims: [0, 0, 0, 0], dilationDims: dilationDims, noBias: noBias)
}

/// 2-D convolution with padding in ONNX's order `[h_begin, w_begin, h_end, w_end]`.
public func PaddedConv2D(
    inChannels: Int, outChannels: Int, kernelDims: [Int], name: String = "", strideDims: [Int] = [1, 1],
    paddingDims: [Int] = [0, 0, 0, 0], dilationDims: [Int] = [1, 1], noBias: Bool = false
) -> Node {
    var producers = [("w", Tensor(zeros: [outChannels, inChannels] + kernelDims))]
    if !noBias { producers.append(("b", Tensor(zeros: [outChannels]))) }
    return node(
        "Conv",
        ["kernel_shape": .ints(kernelDims), "strides": .ints(strideDims), "dilations": .ints(dilationDims),
         "pads": .ints(paddingDims)],
        name: name, producers: producers)
}

/// Depthwise 2-D convolution: one filter per channel (`group` = channels).
public func ConvDepthWise2D(
    nbChannels: Int, kernelDims: [Int], name: String = "", strideDims: [Int] = [1, 1],
    dilationDims: [Int] = [1, 1], noBias: Bool = false
) -> Node {
    var producers = [("w", Tensor(zeros: [nbChannels, 1] + kernelDims))]
    if !noBias { producers.append(("b", Tensor(zeros: [nbChannels]))) }
    return node(
        "Conv",
        ["kernel_shape": .ints(kernelDims), "strides": .ints(strideDims), "dilations": .ints(dilationDims),
         "group": .int(nbChannels)],
        name: name, producers: producers)
}

/// Fully connected layer: `y = x·Wᵀ + b` with `W` of shape `[out, in]` (ONNX `Gemm` with `transB = 1`).
public func FC(inChannels: Int, outChannels: Int, noBias: Bool = false, name: String = "") -> Node {
    var producers = [("w", Tensor(zeros: [outChannels, inChannels]))]
    if !noBias { producers.append(("b", Tensor(zeros: [outChannels]))) }
    return node("Gemm", ["transB": .int(1)], name: name, producers: producers)
}

/// Inference batch normalisation over channels (axis 1): scale, shift, running mean and variance.
public func BatchNorm2D(nbFeatures: Int, epsilon: Float = 1e-5, momentum: Float = 0.1, name: String = "") -> Node {
    let ones = (try? Tensor([Float](repeating: 1, count: nbFeatures), shape: [nbFeatures])) ?? Tensor(zeros: [nbFeatures])
    return node(
        "BatchNormalization", ["epsilon": .float(epsilon), "momentum": .float(1 - momentum)], name: name,
        producers: [("scale", ones), ("shift", Tensor(zeros: [nbFeatures])), ("mean", Tensor(zeros: [nbFeatures])),
                    ("var", ones)])
}

public func ReLU(name: String = "") -> Node { node("Relu", [:], name: name, producers: []) }
public func LeakyReLU(negativeSlope: Float = 0.01, name: String = "") -> Node {
    node("LeakyRelu", ["alpha": .float(negativeSlope)], name: name, producers: [])
}
public func Sigmoid(name: String = "") -> Node { node("Sigmoid", [:], name: name, producers: []) }
public func Tanh(name: String = "") -> Node { node("Tanh", [:], name: name, producers: []) }
public func Softmax(axis: Int, name: String = "") -> Node { node("Softmax", ["axis": .int(axis)], name: name, producers: []) }
public func Identity(name: String = "") -> Node { node("Identity", [:], name: name, producers: []) }
public func Add(name: String = "") -> Node { node("Add", [:], name: name, producers: []) }
public func Sub(name: String = "") -> Node { node("Sub", [:], name: name, producers: []) }
public func Mul(name: String = "") -> Node { node("Mul", [:], name: name, producers: []) }
public func Div(name: String = "") -> Node { node("Div", [:], name: name, producers: []) }
public func MatMul(name: String = "") -> Node { node("MatMul", [:], name: name, producers: []) }
public func Flatten(axis: Int = 1, name: String = "") -> Node { node("Flatten", ["axis": .int(axis)], name: name, producers: []) }
public func Transpose(outputDimsOrder: [Int], name: String = "") -> Node {
    node("Transpose", ["perm": .ints(outputDimsOrder)], name: name, producers: [])
}
public func GlobalAveragePooling(name: String = "") -> Node { node("GlobalAveragePool", [:], name: name, producers: []) }

/// Reshape to a fixed shape (held by a constant producer, as ONNX wants it).
public func Reshape(shape: [Int], name: String = "") -> Node {
    node("Reshape", [:], name: name, producers: [("shape", Tensor(shape.map { Int64($0) }))])
}

/// Concatenation of `nbInputs` inputs along `axis`.
public func Concat(nbInputs: Int, axis: Int = 0, name: String = "") -> Node {
    Node(Operator("Concat", attributes: ["axis": .int(axis)]), name: name.isEmpty ? nil : name, inputCount: nbInputs)
}

/// 2-D max pooling.
public func MaxPooling2D(kernelDims: [Int], name: String = "", strideDims: [Int] = [1, 1], ceilMode: Bool = false) -> Node {
    node("MaxPool", ["kernel_shape": .ints(kernelDims), "strides": .ints(strideDims), "ceil_mode": .int(ceilMode ? 1 : 0)],
         name: name, producers: [])
}

/// 2-D average pooling.
public func AvgPooling2D(kernelDims: [Int], name: String = "", strideDims: [Int] = [1, 1]) -> Node {
    node("AveragePool", ["kernel_shape": .ints(kernelDims), "strides": .ints(strideDims)], name: name, producers: [])
}

/// Constant padding `[begin..., end...]` of the two spatial axes of an NCHW tensor.
public func Pad(beginEndBorders: [Int], borderValue: Float = 0, name: String = "") -> Node {
    let pads = [0, 0] + beginEndBorders.prefix(2) + [0, 0] + beginEndBorders.dropFirst(2)
    return node(
        "Pad", [:], name: name,
        producers: [("pads", Tensor(pads.map { Int64($0) })), ("value", Tensor(scalar: borderValue))])
}

/// A node holding `tensor`.
public func Producer(_ tensor: Tensor, name: String = "", constant: Bool = false) -> Node {
    Node.producer(tensor, name: name.isEmpty ? nil : name, constant: constant)
}

/// An operator the engine does not know: it loads and connects, and fails clearly when run.
public func GenericOperator(type: String, nbData: Int, nbParam: Int, nbOut: Int, name: String = "") -> Node {
    Node(Operator(type), name: name.isEmpty ? nil : name, inputCount: nbData + nbParam, outputCount: nbOut)
}

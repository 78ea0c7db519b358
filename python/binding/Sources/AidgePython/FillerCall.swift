@preconcurrency import CPython
import Aidge

/// The numbers a filler reads, with Aidge's defaults.
private struct FillerParameters {
    var value = 0.0, min = 0.0, max = 1.0, mean = 0.0, stdDev = 1.0, scaling = 1.0
    var fan = Filler.Fan.fanIn
}

/// `fill(tensor, kind, value=0, min=0, max=1, mean=0, std_dev=1, scaling=1, variance_norm='FAN_IN', seed=None)`:
/// Aidge's fillers (constant, uniform, normal, he, xavier_uniform), in place.
let fillFunction: KeywordFunction = { _, args, kwargs in
    pyCall {
        let names = ["tensor", "kind", "value", "min", "max", "mean", "std_dev", "scaling", "variance_norm", "seed"]
        let a = try Arguments(args, kwargs, names: names, required: 2, function: "fill")
        let tensor = try TensorType.unwrap(try a.required("tensor"), "tensor")
        let kind = try stringValue(try a.required("kind"), "kind")
        var p = FillerParameters()
        p.value = try number(a, "value", p.value)
        p.min = try number(a, "min", p.min)
        p.max = try number(a, "max", p.max)
        p.mean = try number(a, "mean", p.mean)
        p.stdDev = try number(a, "std_dev", p.stdDev)
        p.scaling = try number(a, "scaling", p.scaling)
        let fanName = try a["variance_norm"].map { try stringValue($0, "variance_norm") } ?? "FAN_IN"
        guard let fan = Filler.Fan(rawValue: fanName) else {
            throw PythonError.value("variance_norm must be FAN_IN, FAN_OUT or FAN_AVG, got '\(fanName)'")
        }
        p.fan = fan
        if let seed = try a["seed"].map({ try intValue($0, "seed") }) {
            var g = SeededGenerator(seed: UInt64(truncatingIfNeeded: seed))
            try fill(tensor, kind, p, &g)
        } else {
            var g = SystemRandomNumberGenerator()
            try fill(tensor, kind, p, &g)
        }
        return aidge_none()
    }
}

private func number(_ a: Arguments, _ name: String, _ fallback: Double) throws -> Double {
    guard let o = a[name] else { return fallback }
    let v = PyFloat_AsDouble(o)
    if v == -1, PyErr_Occurred() != nil { throw PythonError.alreadySet }
    return v
}

private func fill<G: RandomNumberGenerator>(_ t: Tensor, _ kind: String, _ p: FillerParameters, _ g: inout G) throws {
    switch kind {
    case "constant": try Filler.constant(t, value: p.value)
    case "uniform": try Filler.uniform(t, min: p.min, max: p.max, using: &g)
    case "normal": try Filler.normal(t, mean: p.mean, stdDev: p.stdDev, using: &g)
    case "he": try Filler.he(t, fan: p.fan, meanNorm: p.mean, scaling: p.scaling, using: &g)
    case "xavier_uniform": try Filler.xavierUniform(t, scaling: p.scaling, fan: p.fan, using: &g)
    default: throw PythonError.value("unknown filler '\(kind)'")
    }
}

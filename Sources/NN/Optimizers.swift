import Foundation
import TensorCore

/// Updates parameters from their accumulated gradients.
///
/// Optimizers hold parameters by name, so their state (moments, momentum buffers, step count)
/// saves and loads by name with the model (see `Checkpoint`) and training resumes exactly.
public protocol Optimizer: AnyObject {
    var learningRate: Float { get set }
    /// Number of `step()` calls so far.
    var stepCount: Int { get }
    var namedParameters: [(name: String, parameter: Parameter)] { get }
    /// A short type name stored in checkpoints ("sgd", "adam", "adamw").
    var kind: String { get }
    /// Applies one update from the current gradients. Parameters without a gradient are skipped.
    func step()
    /// Per-parameter state tensors, keyed `<parameter>.<slot>`.
    func stateTensors() -> [String: Tensor]
    /// Restores state saved by `stateTensors()` and the step count.
    func loadState(_ tensors: [String: Tensor], stepCount: Int, source: String) throws
}

extension Optimizer {
    /// Clears every parameter's gradient.
    public func zeroGradients() { for (_, parameter) in namedParameters { parameter.zeroGradient() } }
}

/// Loading optimizer state failed: which tensor, and why.
public enum OptimizerError: Error, CustomStringConvertible, Equatable {
    case missingState(source: String, key: String)
    case shapeMismatch(source: String, key: String, expected: [Int], actual: [Int])
    case kindMismatch(source: String, expected: String, actual: String)

    public var description: String {
        switch self {
        case let .missingState(source, key): "\(source): optimizer state '\(key)' is missing"
        case let .shapeMismatch(source, key, expected, actual): "\(source): optimizer state '\(key)' has shape \(actual), expected \(expected)"
        case let .kindMismatch(source, expected, actual): "\(source): checkpoint holds \(actual) optimizer state, this optimizer is \(expected)"
        }
    }
}

/// Per-parameter state slots shared by the optimizers.
final class SlotStore {
    let slots: [String]
    var values: [[Tensor?]]  // [parameter][slot]

    init(parameterCount: Int, slots: [String]) {
        self.slots = slots
        values = Array(repeating: Array(repeating: nil, count: slots.count), count: parameterCount)
    }

    func tensors(_ names: [String]) -> [String: Tensor] {
        var result: [String: Tensor] = [:]
        for (p, name) in names.enumerated() {
            for (s, slot) in slots.enumerated() { if let value = values[p][s] { result["\(name).\(slot)"] = value } }
        }
        return result
    }

    func load(_ tensors: [String: Tensor], parameters: [(name: String, parameter: Parameter)], stepCount: Int, source: String) throws {
        var loaded = values
        for (p, (name, parameter)) in parameters.enumerated() {
            for (s, slot) in slots.enumerated() {
                let key = "\(name).\(slot)"
                guard let value = tensors[key] else {
                    // A parameter that never had a gradient has no state; only fail once training began.
                    if stepCount > 0 && parameter.requiresGradient && tensors.keys.contains(where: { $0.hasPrefix(name + ".") }) {
                        throw OptimizerError.missingState(source: source, key: key)
                    }
                    loaded[p][s] = nil
                    continue
                }
                guard value.shape == parameter.shape else {
                    throw OptimizerError.shapeMismatch(source: source, key: key, expected: parameter.shape, actual: value.shape)
                }
                loaded[p][s] = value
            }
        }
        values = loaded
    }
}

/// Stochastic gradient descent with momentum and L2 weight decay, as `torch.optim.SGD`:
/// g ← g + λ·p; b ← μ·b + (1 − dampening)·g (b = g at the first step); p ← p − lr·(g + μ·b if
/// Nesterov else b).
public final class SGD: Optimizer {
    /// The step size (schedules set it before each step).
    public var learningRate: Float
    /// Momentum factor (0: plain SGD).
    public let momentum: Float
    /// Dampening of the momentum.
    public let dampening: Float
    /// L2 penalty added to the gradient.
    public let weightDecay: Float
    /// Nesterov momentum.
    public let nesterov: Bool
    /// Steps taken.
    public private(set) var stepCount = 0
    public let namedParameters: [(name: String, parameter: Parameter)]
    public let kind = "sgd"
    private let state: SlotStore

    /// PyTorch's SGD.
    public init(
        _ namedParameters: [(name: String, parameter: Parameter)], learningRate: Float,
        momentum: Float = 0, dampening: Float = 0, weightDecay: Float = 0, nesterov: Bool = false
    ) {
        self.namedParameters = namedParameters
        self.learningRate = learningRate
        self.momentum = momentum
        self.dampening = dampening
        self.weightDecay = weightDecay
        self.nesterov = nesterov
        state = SlotStore(parameterCount: namedParameters.count, slots: ["momentum_buffer"])
    }

    public func step() {
        stepCount += 1
        let (lr, mu, damp, wd, nesterov) = (learningRate, momentum, dampening, weightDecay, self.nesterov)
        for (p, (_, parameter)) in namedParameters.enumerated() {
            guard let gradient = parameter.gradient else { continue }
            var buffer = state.values[p][0]
            let isFirst = buffer == nil
            if mu != 0 && isFirst { buffer = Tensor.zeros(parameter.shape) }
            var value = parameter.value
            value.withUnsafeMutableBufferPointer { w in
                gradient.withUnsafeBufferPointer { g in
                    if mu == 0 {
                        for i in w.indices { w[i] -= lr * (g[i] + wd * w[i]) }
                        return
                    }
                    buffer!.withUnsafeMutableBufferPointer { b in
                        for i in w.indices {
                            let d = g[i] + wd * w[i]
                            b[i] = isFirst ? d : mu * b[i] + (1 - damp) * d
                            w[i] -= lr * (nesterov ? d + mu * b[i] : b[i])
                        }
                    }
                }
            }
            parameter.value = value
            state.values[p][0] = buffer
        }
    }

    /// The momentum buffers by parameter name (for checkpoints).
    public func stateTensors() -> [String: Tensor] { state.tensors(namedParameters.map(\.name)) }

    /// Restores momentum buffers saved by `stateTensors`; `source` names the file in errors.
    public func loadState(_ tensors: [String: Tensor], stepCount: Int, source: String) throws {
        try state.load(tensors, parameters: namedParameters, stepCount: stepCount, source: source)
        self.stepCount = stepCount
    }
}

/// Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019), as `torch.optim.Adam/AdamW`:
/// m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; p ← p − (lr/(1−β₁ᵗ))·m / (√v/√(1−β₂ᵗ) + ε).
/// Weight decay is L2 (g ← g + λp) for Adam, decoupled (p ← p·(1 − lr·λ)) for AdamW.
public final class Adam: Optimizer {
    /// The step size (schedules set it before each step).
    public var learningRate: Float
    /// Decay of the first moment.
    public let beta1: Float
    /// Decay of the second moment.
    public let beta2: Float
    /// Added to √v̂.
    public let epsilon: Float
    /// Weight decay.
    public let weightDecay: Float
    /// Decoupled (AdamW) rather than L2 (Adam) weight decay.
    public let decoupledWeightDecay: Bool
    /// Steps taken (for bias correction).
    public private(set) var stepCount = 0
    public let namedParameters: [(name: String, parameter: Parameter)]
    public var kind: String { decoupledWeightDecay ? "adamw" : "adam" }
    private let state: SlotStore
    private var parameterSteps: [Int]

    /// PyTorch's Adam / AdamW.
    public init(
        _ namedParameters: [(name: String, parameter: Parameter)], learningRate: Float = 1e-3,
        beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8,
        weightDecay: Float = 0, decoupledWeightDecay: Bool = false
    ) {
        self.namedParameters = namedParameters
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.decoupledWeightDecay = decoupledWeightDecay
        state = SlotStore(parameterCount: namedParameters.count, slots: ["exp_avg", "exp_avg_sq"])
        parameterSteps = Array(repeating: 0, count: namedParameters.count)
    }

    /// AdamW: Adam with decoupled weight decay (PyTorch's default λ = 0.01).
    public static func adamW(
        _ namedParameters: [(name: String, parameter: Parameter)], learningRate: Float = 1e-3,
        beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8, weightDecay: Float = 0.01
    ) -> Adam {
        Adam(namedParameters, learningRate: learningRate, beta1: beta1, beta2: beta2, epsilon: epsilon,
             weightDecay: weightDecay, decoupledWeightDecay: true)
    }

    public func step() {
        stepCount += 1
        let (lr, b1, b2, eps, wd, decoupled) = (learningRate, beta1, beta2, epsilon, weightDecay, decoupledWeightDecay)
        for (p, (_, parameter)) in namedParameters.enumerated() {
            guard let gradient = parameter.gradient else { continue }
            parameterSteps[p] += 1
            let t = Float(parameterSteps[p])
            var m = state.values[p][0] ?? Tensor.zeros(parameter.shape)
            var v = state.values[p][1] ?? Tensor.zeros(parameter.shape)
            let correction1 = 1 - Foundation.pow(b1, t)
            let correction2Root = (1 - Foundation.pow(b2, t)).squareRoot()
            let stepSize = lr / correction1
            var value = parameter.value
            value.withUnsafeMutableBufferPointer { w in
                m.withUnsafeMutableBufferPointer { m in
                    v.withUnsafeMutableBufferPointer { v in
                        gradient.withUnsafeBufferPointer { g in
                            for i in w.indices {
                                var gi = g[i]
                                if decoupled { w[i] *= 1 - lr * wd } else { gi += wd * w[i] }
                                m[i] = b1 * m[i] + (1 - b1) * gi
                                v[i] = b2 * v[i] + (1 - b2) * gi * gi
                                w[i] -= stepSize * m[i] / (v[i].squareRoot() / correction2Root + eps)
                            }
                        }
                    }
                }
            }
            parameter.value = value
            state.values[p][0] = m
            state.values[p][1] = v
        }
    }

    /// First and second moments by parameter name (for checkpoints).
    public func stateTensors() -> [String: Tensor] {
        var tensors = state.tensors(namedParameters.map(\.name))
        for (p, (name, _)) in namedParameters.enumerated() where parameterSteps[p] > 0 {
            tensors["\(name).step"] = Tensor(Float(parameterSteps[p]))
        }
        return tensors
    }

    /// Restores moments saved by `stateTensors`; `source` names the file in errors.
    public func loadState(_ tensors: [String: Tensor], stepCount: Int, source: String) throws {
        try state.load(tensors, parameters: namedParameters, stepCount: stepCount, source: source)
        parameterSteps = namedParameters.map { tensors["\($0.name).step"].map { Int($0.scalar) } ?? 0 }
        self.stepCount = stepCount
    }
}

/// Scales all gradients so that their global L2 norm is at most `maxNorm`, as
/// `torch.nn.utils.clip_grad_norm_`: coefficient min(1, maxNorm/(‖g‖ + 1e-6)). Returns ‖g‖
/// before clipping.
@discardableResult
public func clipGradientNorm(_ parameters: [Parameter], maxNorm: Float) -> Float {
    var total = 0.0
    for parameter in parameters {
        guard let gradient = parameter.gradient else { continue }
        gradient.withUnsafeBufferPointer { g in for value in g { total += Double(value) * Double(value) } }
    }
    let norm = Float(total.squareRoot())
    let coefficient = min(1, maxNorm / (norm + 1e-6))
    if coefficient < 1 {
        for parameter in parameters {
            guard var gradient = parameter.gradient else { continue }
            gradient.scaleInPlace(by: coefficient)
            parameter.gradient = gradient
        }
    }
    return norm
}

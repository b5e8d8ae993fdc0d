import Foundation
import TensorCore

/// Activation functions by their Hugging Face configuration names.
public enum Activation: String, Sendable, Codable, CaseIterable {
    case relu
    case gelu
    case geluTanh = "gelu_pytorch_tanh"
    case quickGELU = "quick_gelu"
    case silu
    case tanh
    case sigmoid
    case identity

    public func callAsFunction(_ x: Tensor) -> Tensor {
        switch self {
        case .relu: x.relu()
        case .gelu: x.gelu()
        case .geluTanh: x.gelu(approximation: .tanh)
        case .quickGELU: x.quickGELU()
        case .silu: x.silu()
        case .tanh: x.tanh()
        case .sigmoid: x.sigmoid()
        case .identity: x
        }
    }
}

/// Affine map y = x·Wᵀ + b, PyTorch layout: `weight` is `[out, in]`.
///
/// Shapes: `[…, in]` → `[…, out]`. The transpose is a BLAS flag, not a copy. Default
/// initialisation is PyTorch's: U(−1/√in, 1/√in) for weight and bias.
public final class Linear: Module {
    /// Weight `[output, input]` (PyTorch's layout).
    public let weight: Parameter
    /// Bias `[output]`, if any.
    public let bias: Parameter?
    /// Input width.
    public let inputSize: Int
    /// Output width.
    public let outputSize: Int

    /// y = x·Wᵀ + b; initialisers default to PyTorch's.
    public init(
        _ inputSize: Int, _ outputSize: Int, bias: Bool = true,
        weightInitializer: Initializer? = nil, biasInitializer: Initializer? = nil,
        generator: inout SeededGenerator
    ) {
        self.inputSize = inputSize
        self.outputSize = outputSize
        let bound = 1 / Float(max(inputSize, 1)).squareRoot()
        let defaultInit = Initializer.uniform(low: -bound, high: bound)
        weight = Parameter((weightInitializer ?? defaultInit).tensor([outputSize, inputSize], using: &generator))
        self.bias = bias ? Parameter((biasInitializer ?? defaultInit).tensor([outputSize], using: &generator)) : nil
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.shape.last == inputSize, "Linear(\(inputSize)→\(outputSize)): input shape \(x.shape) has last dimension \(x.shape.last ?? 0)")
        return Tensor.linear(x, weight: weight.tensor, bias: bias?.tensor)
    }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        [("weight", weight)] + (bias.map { [("bias", $0)] } ?? [])
    }

    public var description: String { "Linear(\(inputSize) → \(outputSize), bias: \(bias != nil))" }
}

/// Lookup table: row i of `weight` (`[vocabulary, d]`) for token i. Initialised N(0, 1) as PyTorch.
public final class Embedding: Module {
    /// The table `[vocabulary, dimension]`.
    public let weight: Parameter

    /// A lookup table of `vocabularySize` rows.
    public init(_ vocabularySize: Int, _ dimension: Int, initializer: Initializer = .normal(standardDeviation: 1), generator: inout SeededGenerator) {
        weight = Parameter(initializer.tensor([vocabularySize, dimension], using: &generator))
    }

    /// Shapes: indices of `shape` → `shape + [d]`.
    public func callAsFunction(_ indices: [Int], shape: [Int]) -> Tensor {
        let vocabulary = weight.shape[0]
        for index in indices { precondition(index >= 0 && index < vocabulary, "Embedding: token \(index) outside vocabulary 0..<\(vocabulary)") }
        return Tensor.embedding(weight.tensor, indices: indices, indexShape: shape)
    }

    public var namedParameters: [(name: String, parameter: Parameter)] { [("weight", weight)] }
    public var description: String { "Embedding(\(weight.shape[0]), \(weight.shape[1]))" }
}

/// Layer normalisation over the last axis with learnable scale and shift (ones and zeros).
public final class LayerNorm: Module {
    /// Scale γ, if affine.
    public let weight: Parameter?
    /// Shift β, if affine with bias.
    public let bias: Parameter?
    /// Added to the variance.
    public let epsilon: Float
    /// The normalised width.
    public let dimension: Int

    /// LayerNorm over the last `dimension` values.
    public init(_ dimension: Int, epsilon: Float = 1e-5, affine: Bool = true, bias: Bool = true) {
        self.dimension = dimension
        self.epsilon = epsilon
        weight = affine ? Parameter(Tensor.ones([dimension])) : nil
        self.bias = affine && bias ? Parameter(Tensor.zeros([dimension])) : nil
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.shape.last == dimension, "LayerNorm(\(dimension)): input shape \(x.shape)")
        return Tensor.layerNorm(x, weight: weight?.tensor, bias: bias?.tensor, epsilon: epsilon)
    }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        (weight.map { [("weight", $0)] } ?? []) + (bias.map { [("bias", $0)] } ?? [])
    }
    public var description: String { "LayerNorm(\(dimension), ε: \(epsilon))" }
}

/// RMS normalisation over the last axis with a learnable scale (LLaMA's `RMSNorm`).
public final class RMSNorm: Module {
    /// Scale γ.
    public let weight: Parameter
    /// Added to the mean square.
    public let epsilon: Float

    /// RMSNorm over the last `dimension` values (LLaMA's).
    public init(_ dimension: Int, epsilon: Float = 1e-6) {
        self.epsilon = epsilon
        weight = Parameter(Tensor.ones([dimension]))
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.shape.last == weight.shape[0], "RMSNorm(\(weight.shape[0])): input shape \(x.shape)")
        return Tensor.rmsNorm(x, weight: weight.tensor, epsilon: epsilon)
    }

    public var namedParameters: [(name: String, parameter: Parameter)] { [("weight", weight)] }
    public var description: String { "RMSNorm(\(weight.shape[0]), ε: \(epsilon))" }
}

/// Inverted dropout: in training, zeroes each element with probability p and scales the rest by
/// 1/(1−p), drawing from the context's seeded generator; the identity in evaluation (`context` nil).
public final class Dropout: Module {
    /// Probability of zeroing an element.
    public let probability: Float

    /// Inverted dropout (scales kept values by 1/(1 − p)); identity outside training.
    public init(_ probability: Float) {
        precondition(probability >= 0 && probability < 1, "Dropout: probability \(probability) outside [0, 1)")
        self.probability = probability
    }

    public func callAsFunction(_ x: Tensor, context: TrainingContext?) -> Tensor {
        guard let context, probability > 0 else { return x }
        let keep = Tensor.bernoulli(x.shape, probability: 1 - probability, using: &context.generator)
        return x * (keep * (1 / (1 - probability)))
    }

    public var namedParameters: [(name: String, parameter: Parameter)] { [] }
    public var description: String { "Dropout(p: \(probability))" }
}

/// Two-layer position-wise feed-forward block `fc2(activation(fc1(x)))` (CLIP's `mlp` naming).
public final class FeedForward: Module {
    /// Input → hidden.
    public let fc1: Linear
    /// Hidden → output.
    public let fc2: Linear
    /// Between the two.
    public let activation: Activation

    /// The transformer MLP: fc2(act(fc1(x))).
    public init(_ dimension: Int, hiddenSize: Int, activation: Activation = .gelu, bias: Bool = true, generator: inout SeededGenerator) {
        fc1 = Linear(dimension, hiddenSize, bias: bias, generator: &generator)
        fc2 = Linear(hiddenSize, dimension, bias: bias, generator: &generator)
        self.activation = activation
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { fc2(activation(fc1(x))) }

    public var namedParameters: [(name: String, parameter: Parameter)] { scoped("fc1", fc1) + scoped("fc2", fc2) }
    public var description: String { "FeedForward(\(fc1.inputSize) → \(fc1.outputSize) → \(fc2.outputSize), \(activation.rawValue))" }
}

/// A multilayer perceptron: Linear layers with an activation between them (`layers.0`, `layers.1`, …).
public final class MLP: Module {
    /// The layers, in order.
    public let layers: [Linear]
    /// Between hidden layers.
    public let activation: Activation
    /// After the last layer.
    public let outputActivation: Activation

    /// - Parameters:
    ///   - sizes: `[input, hidden…, output]`, at least two entries.
    ///   - weightInitializer / outputWeightInitializer: for hidden and output layers (PyTorch's
    ///     default when nil); biases use `biasInitializer` (PyTorch's default when nil).
    public init(
        sizes: [Int], activation: Activation = .tanh, outputActivation: Activation = .identity,
        weightInitializer: Initializer? = nil, outputWeightInitializer: Initializer? = nil,
        biasInitializer: Initializer? = nil, generator: inout SeededGenerator
    ) {
        precondition(sizes.count >= 2, "MLP needs [input, …, output] sizes, got \(sizes)")
        var layers: [Linear] = []
        for i in 0..<(sizes.count - 1) {
            let isOutput = i == sizes.count - 2
            layers.append(Linear(
                sizes[i], sizes[i + 1],
                weightInitializer: isOutput ? (outputWeightInitializer ?? weightInitializer) : weightInitializer,
                biasInitializer: biasInitializer, generator: &generator))
        }
        self.layers = layers
        self.activation = activation
        self.outputActivation = outputActivation
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        var h = x
        for (i, layer) in layers.enumerated() {
            h = layer(h)
            h = i == layers.count - 1 ? outputActivation(h) : activation(h)
        }
        return h
    }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        layers.enumerated().flatMap { scoped("layers.\($0.offset)", $0.element) }
    }
    public var description: String {
        "MLP(\(([layers[0].inputSize] + layers.map(\.outputSize)).map(String.init).joined(separator: " → ")), \(activation.rawValue))"
    }
}

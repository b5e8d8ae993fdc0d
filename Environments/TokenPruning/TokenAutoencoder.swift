import Foundation
import NN
import TensorCore

/// Maps each visual token `[D]` to the compact code the policy sees (`codeWidth` values).
public protocol TokenEncoder: AnyObject {
    var codeWidth: Int { get }
    /// `[N, D]` → `[N, codeWidth]`.
    func encode(_ tokens: Tensor) -> Tensor
    /// Multiply–accumulates of encoding one token (`FLOPCount`'s convention: matrix products
    /// only); nil when the encoder cannot say.
    var flopsPerToken: Double? { get }
}

extension TokenEncoder {
    /// Not counted (nil) unless the encoder says.
    public var flopsPerToken: Double? { nil }
}

/// The ablation "no autoencoder": the policy sees the raw tokens.
public final class IdentityTokenEncoder: TokenEncoder {
    public let codeWidth: Int
    /// The identity encoder of tokens of `width`.
    public init(width: Int) { codeWidth = width }
    public func encode(_ tokens: Tensor) -> Tensor { tokens }
    /// The identity computes nothing.
    public var flopsPerToken: Double? { 0 }
}

/// The TPRL state encoder: a token-wise MLP autoencoder D → hidden → D/16 → hidden → D (GELU),
/// trained self-supervised to reconstruct visual tokens (mean squared error). The paper compresses
/// each token before the policy sees it; the reference code declares this autoencoder but never
/// trains it — `TokenAutoencoderTrainer` does, and reports the validation reconstruction error.
public final class TokenAutoencoder: Module, TokenEncoder {
    /// First encoder layer (D → hidden).
    public let encoder1: Linear
    /// Second encoder layer (hidden → code).
    public let encoder2: Linear
    /// First decoder layer (code → hidden).
    public let decoder1: Linear
    /// Second decoder layer (hidden → D).
    public let decoder2: Linear
    /// Token width D.
    public let inputWidth: Int
    public let codeWidth: Int
    /// Per-feature mean and standard deviation of the training tokens (the autoencoder works on
    /// standardised tokens).
    public let mean: Parameter
    /// Per-dimension standard deviations of the training tokens (inputs are standardised).
    public let scale: Parameter

    /// An autoencoder D → D/16 (by default) → D.
    public init(inputWidth: Int, codeWidth: Int? = nil, hiddenWidth: Int? = nil, generator: inout SeededGenerator) {
        self.inputWidth = inputWidth
        let code = codeWidth ?? max(1, inputWidth / 16)
        self.codeWidth = code
        let hidden = hiddenWidth ?? max(code, inputWidth / 2)
        encoder1 = Linear(inputWidth, hidden, generator: &generator)
        encoder2 = Linear(hidden, code, generator: &generator)
        decoder1 = Linear(code, hidden, generator: &generator)
        decoder2 = Linear(hidden, inputWidth, generator: &generator)
        mean = Parameter(Tensor.zeros([inputWidth]), requiresGradient: false)
        scale = Parameter(Tensor(repeating: 1, shape: [inputWidth]), requiresGradient: false)
    }

    func standardised(_ tokens: Tensor) -> Tensor { (tokens - mean.tensor) / scale.tensor }

    public func encode(_ tokens: Tensor) -> Tensor { encoder2(encoder1(standardised(tokens)).gelu()) }

    /// The encoder's two matrices per token: D·hidden + hidden·code.
    public var flopsPerToken: Double? {
        Double(encoder1.inputSize * encoder1.outputSize + encoder2.inputSize * encoder2.outputSize)
    }

    /// Reconstruction of standardised tokens.
    public func reconstruct(_ tokens: Tensor) -> Tensor { decoder2(decoder1(encode(tokens)).gelu()) }

    /// Mean squared error on standardised tokens `[N, D]` (1 = no better than predicting the mean).
    public func loss(_ tokens: Tensor) -> Tensor { Loss.meanSquaredError(reconstruct(tokens), standardised(tokens)) }

    /// Sets the standardisation from sample tokens `[N, D]`.
    public func fitStandardisation(_ tokens: Tensor) {
        let m = tokens.mean(alongAxis: 0)
        let centred = tokens - m
        let variance = (centred * centred).mean(alongAxis: 0)
        mean.value = m.detached()
        scale.value = Tensor(shape: [inputWidth], scalars: variance.scalars.map { max(1e-4, $0).squareRoot() })
    }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        scoped("encoder.0", encoder1) + scoped("encoder.1", encoder2) + scoped("decoder.0", decoder1) + scoped("decoder.1", decoder2)
            + [("mean", mean), ("scale", scale)]
    }
    public var description: String { "TokenAutoencoder(\(inputWidth) → \(codeWidth))" }

    /// Loads an autoencoder saved with `save(to:)`; the widths come from the file.
    public static func load(from url: URL) throws -> TokenAutoencoder {
        let file = try SafeTensorsFile(contentsOf: url)
        let weight = try file.tensor("encoder.1.weight"), first = try file.tensor("encoder.0.weight")
        var generator = SeededGenerator(seed: 0)
        let model = TokenAutoencoder(inputWidth: first.shape[1], codeWidth: weight.shape[0], hiddenWidth: first.shape[0], generator: &generator)
        try model.load(from: url)
        return model
    }
}

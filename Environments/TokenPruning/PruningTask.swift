import Foundation
import TensorCore
import VLM

/// One question about one image, in the form the token-pruning environment asks a
/// `VisionLanguageModel`: the language model reads `[prefix, kept visual tokens, suffix]` and the
/// answer is the next token after the suffix.
public struct PruningTask: Sendable {
    /// `[3, H, W]` pixels as the model's vision tower expects them.
    public var pixels: [Float]
    /// Side of the square image, in pixels.
    public var imageSize: Int
    /// Token ids before the image.
    public var prefix: [Int]
    /// Token ids after the image, ending with the token whose logits answer.
    public var suffix: [Int]
    /// Token id of the right answer.
    public var answer: Int
    /// Question family (for per-family accuracy).
    public var family: String
    /// The question's words (the query the policy sees), without special tokens.
    public var query: [Int]
    /// Grounding annotation, when the source has one: the visual-token slots that show what the
    /// question is about, most important first (for ShapesVQA: the anchors of the question's
    /// objects, then their other patches; empty when the question names no object in the image).
    /// Nil when the source does not annotate. Only label-informed demonstrators read it.
    public var relevantTokens: [Int]?

    /// A task.
    public init(pixels: [Float], imageSize: Int, prefix: [Int], suffix: [Int], answer: Int, family: String, query: [Int],
                relevantTokens: [Int]? = nil) {
        self.pixels = pixels
        self.imageSize = imageSize
        self.prefix = prefix
        self.suffix = suffix
        self.answer = answer
        self.family = family
        self.query = query
        self.relevantTokens = relevantTokens
    }
}

/// Where episodes come from: an indexable collection of tasks per split.
public protocol PruningTaskSource: Sendable {
    /// Task `index` of `split` ("train", "validation" or "test"); deterministic.
    func task(_ index: Int, split: String) -> PruningTask
    /// Display name of a token id (for the `answer` info value).
    func word(_ id: Int) -> String
}

/// ShapesVQA with the built-in model's prompt (`ShapesPrompt`).
public struct ShapesVQATasks: PruningTaskSource {
    /// The generator of samples.
    public let dataset: ShapesVQA
    /// How a question becomes prefix and suffix tokens.
    public let prompt: ShapesPrompt

    /// ShapesVQA tasks with the built-in model's prompt.
    public init(dataset: ShapesVQA = ShapesVQA(), tokenizer: WordTokenizer = .shapesVQA) {
        self.dataset = dataset
        prompt = ShapesPrompt(tokenizer: tokenizer, imageTokens: dataset.gridSize * dataset.gridSize)
    }

    public func task(_ index: Int, split: String) -> PruningTask {
        let sample = dataset.sample(index, split: ShapesVQA.Split(rawValue: split) ?? .train)
        let suffix = prompt.suffix(question: sample.question)
        return PruningTask(pixels: sample.pixels, imageSize: dataset.imageSize, prefix: prompt.prefix(question: sample.question), suffix: suffix,
                           answer: prompt.tokenizer.id(sample.answer), family: sample.family.rawValue, query: Array(suffix.dropLast()),
                           relevantTokens: Self.relevantTokens(sample))
    }

    /// The anchors of the question's objects (first role, then second), then every other patch
    /// whose centre one of them covers, in raster order.
    static func relevantTokens(_ sample: ShapesVQA.Sample) -> [Int] {
        let objects = sample.referents[0] + sample.referents[1]
        let anchors = objects.map { sample.anchors[$0] }
        let chosen = Set(objects)
        let covered = sample.patchObjects.indices.filter { patch in
            sample.patchObjects[patch].map { chosen.contains($0) } ?? false
        }
        var seen = Set<Int>()
        return (anchors + covered).filter { seen.insert($0).inserted }
    }

    public func word(_ id: Int) -> String { id >= 0 && id < prompt.tokenizer.count ? prompt.tokenizer.tokens[id] : "<\(id)>" }
}

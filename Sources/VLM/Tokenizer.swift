import Foundation
import TensorCore

/// A word-level tokenizer with a vocabulary file (`vocab.txt`, one token per line, the line number
/// is the id). Special tokens: `<pad>` 0, `<bos>` 1, `<eos>` 2, `<unk>` 3, `<image>` (the image
/// placeholder, last). Words are split on spaces; unknown words map to `<unk>`.
public struct WordTokenizer: Sendable, Equatable {
    /// The vocabulary; a token's id is its index.
    public let tokens: [String]
    private let ids: [String: Int]

    /// The special tokens, ids 0–3.
    public static let specials = ["<pad>", "<bos>", "<eos>", "<unk>"]
    /// The image placeholder token.
    public static let imageToken = "<image>"

    /// A tokenizer over `tokens`.
    public init(tokens: [String]) {
        self.tokens = tokens
        ids = Dictionary(tokens.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// The ShapesVQA vocabulary: specials, the dataset's words, `<image>`.
    public static var shapesVQA: WordTokenizer { WordTokenizer(tokens: specials + ShapesVQA.words + [imageToken]) }

    /// Vocabulary size.
    public var count: Int { tokens.count }
    /// `<pad>`.
    public var padID: Int { 0 }
    /// `<bos>`.
    public var bosID: Int { 1 }
    /// `<eos>`.
    public var eosID: Int { 2 }
    /// `<unk>`.
    public var unknownID: Int { 3 }
    /// `<image>`.
    public var imageID: Int { ids[Self.imageToken] ?? tokens.count - 1 }

    /// The id of `token` (`<unk>` for unknown words).
    public func id(_ token: String) -> Int { ids[token] ?? unknownID }

    public func encode(_ text: String) -> [Int] { text.split(separator: " ").map { id(String($0)) } }

    /// Ids back to space-separated words.
    public func decode(_ ids: [Int]) -> String { ids.map { $0 >= 0 && $0 < tokens.count ? tokens[$0] : "<unk>" }.joined(separator: " ") }

    /// Writes the vocabulary file (one token per line), atomically.
    public func write(to url: URL) throws { try AtomicFile.write(Data((tokens.joined(separator: "\n") + "\n").utf8), to: url) }

    /// Throws unless this vocabulary fits the model `configuration` describes: no more tokens than
    /// its `vocab_size` and `<image>` at its `image_token_index`. A model answers through another
    /// model's vocabulary with words that mean nothing; `source` names the vocabulary in the error
    /// (its file, or the built-in one).
    public func check(fits configuration: LlavaConfiguration, source: String) throws {
        let size = configuration.text.vocabularySize, image = configuration.imageTokenIndex
        let fix = "use the vocab.txt the model was trained with (prunegym vlm train writes it beside config.json)"
        if count > size { throw VLMError.config(path: source, reason: "\(count) tokens, more than the model's vocab_size \(size); \(fix)") }
        if imageID != image { throw VLMError.config(path: source, reason: "<image> is token \(imageID) here and \(image) in the model (image_token_index); \(fix)") }
    }

    /// Reads a vocabulary file; errors name the file.
    public static func read(_ url: URL) throws -> WordTokenizer {
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch { throw VLMError.config(path: url.path, reason: "cannot read the vocabulary (\(FileError.systemReason(error)))") }
        let tokens = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter { !$0.isEmpty }
        guard tokens.count > 4, Array(tokens.prefix(4)) == specials, tokens.contains(imageToken) else {
            throw VLMError.config(path: url.path, reason: "a vocabulary must start with \(specials) and contain \(imageToken)")
        }
        guard Set(tokens).count == tokens.count else { throw VLMError.config(path: url.path, reason: "duplicate tokens in the vocabulary") }
        return WordTokenizer(tokens: tokens)
    }
}

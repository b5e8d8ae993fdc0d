import Foundation
import TensorCore

/// A word-level tokenizer with a vocabulary file (`vocab.txt`, one token per line, the line number
/// is the id). Special tokens: `<pad>` 0, `<bos>` 1, `<eos>` 2, `<unk>` 3, `<image>` (the image
/// placeholder, last). Words are split on spaces; unknown words map to `<unk>`.
public struct WordTokenizer: Sendable, Equatable {
    public let tokens: [String]
    private let ids: [String: Int]

    public static let specials = ["<pad>", "<bos>", "<eos>", "<unk>"]
    public static let imageToken = "<image>"

    public init(tokens: [String]) {
        self.tokens = tokens
        ids = Dictionary(tokens.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// The ShapesVQA vocabulary: specials, the dataset's words, `<image>`.
    public static var shapesVQA: WordTokenizer { WordTokenizer(tokens: specials + ShapesVQA.words + [imageToken]) }

    public var count: Int { tokens.count }
    public var padID: Int { 0 }
    public var bosID: Int { 1 }
    public var eosID: Int { 2 }
    public var unknownID: Int { 3 }
    public var imageID: Int { ids[Self.imageToken] ?? tokens.count - 1 }

    public func id(_ token: String) -> Int { ids[token] ?? unknownID }

    public func encode(_ text: String) -> [Int] { text.split(separator: " ").map { id(String($0)) } }

    public func decode(_ ids: [Int]) -> String { ids.map { $0 >= 0 && $0 < tokens.count ? tokens[$0] : "<unk>" }.joined(separator: " ") }

    public func write(to url: URL) throws { try AtomicFile.write(Data((tokens.joined(separator: "\n") + "\n").utf8), to: url) }

    public static func read(_ url: URL) throws -> WordTokenizer {
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch { throw VLMError.config(path: url.path, reason: "cannot read the vocabulary") }
        let tokens = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter { !$0.isEmpty }
        guard tokens.count > 4, Array(tokens.prefix(4)) == specials, tokens.contains(imageToken) else {
            throw VLMError.config(path: url.path, reason: "a vocabulary must start with \(specials) and contain \(imageToken)")
        }
        guard Set(tokens).count == tokens.count else { throw VLMError.config(path: url.path, reason: "duplicate tokens in the vocabulary") }
        return WordTokenizer(tokens: tokens)
    }
}

import Foundation

/// Where JSON text breaks, and what a decoder refused, in one wording for every configuration
/// reader. `JSONDecoder` on Linux says only "The given data was not valid JSON." for every syntax
/// error, and throws the same `DecodingError.dataCorrupted` (no coding path) for valid JSON that a
/// type refuses as a whole; `describe(_:of:)` tells the two apart and reports the parser's own
/// words.
public enum JSONSyntax {
    /// What `JSONSerialization` found wrong with `data` ("Unexpected end of file during JSON
    /// parse.", "Invalid value around character 5."); nil when it is valid JSON.
    public static func error(in data: Data) -> String? {
        do {
            _ = try JSONSerialization.jsonObject(with: data, options: .fragmentsAllowed)
            return nil
        } catch {
            return (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? error.localizedDescription
        }
    }

    /// A failure to decode `data` as a reader can act on it: "malformed JSON: <the parser's
    /// words>" when it is not JSON at all, "missing 'stages[0].samples'" for a missing key, a bad
    /// value after the path of its key ("'grid.alpha[1]': …"), a top level that is not an object,
    /// or the reason a type gives for refusing its settings together (which names their keys).
    public static func describe(_ failure: any Error, of data: Data) -> String {
        if let syntax = error(in: data) { return "malformed JSON: \(syntax)" }
        guard let failure = failure as? DecodingError else { return "\(failure)" }
        switch failure {
        case let .keyNotFound(key, context):
            return "missing '\(path(context.codingPath + [key]))'"
        case let .typeMismatch(_, context) where context.codingPath.isEmpty:
            return "the file must hold a JSON object (\(context.debugDescription))"
        case let .typeMismatch(_, context), let .valueNotFound(_, context), let .dataCorrupted(context):
            let at = path(context.codingPath)
            return at.isEmpty ? context.debugDescription : "'\(at)': \(context.debugDescription)"
        @unknown default:
            return "\(failure)"
        }
    }

    /// A coding path as a reader writes it: keys joined by dots, array elements as `[i]`
    /// (`stages[0].samples`).
    public static func path(_ codingPath: [any CodingKey]) -> String {
        codingPath.reduce("") { text, key in
            if let index = key.intValue { return text + "[\(index)]" }
            return text.isEmpty ? key.stringValue : text + "." + key.stringValue
        }
    }
}

import Foundation

/// Where JSON text breaks. `JSONDecoder` on Linux says only "The given data was not valid JSON."
/// for every syntax error, and throws the same `DecodingError.dataCorrupted` (no coding path) for
/// valid JSON that a type refuses as a whole; the configuration readers tell the two apart with
/// this and report the parser's own words.
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
}

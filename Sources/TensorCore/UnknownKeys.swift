/// Rejects keys a JSON object's decoder does not know, so that a typo (`"learnin_rate"`) is an
/// error that names the key instead of a silently ignored setting. It lives here, below every
/// module that reads a configuration; `Gym.ConfigurationKeys` is the same check for environments
/// and agents.
public enum UnknownKeys {
    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// Throws `DecodingError.dataCorrupted` naming the first unknown key (in sorted order) and the
    /// known ones.
    public static func reject<Keys: CodingKey & CaseIterable>(in decoder: Decoder, _ keys: Keys.Type) throws {
        let known = Set(Keys.allCases.map(\.stringValue))
        let container = try decoder.container(keyedBy: AnyKey.self)
        for key in container.allKeys.map(\.stringValue).sorted() where !known.contains(key) {
            throw DecodingError.dataCorrupted(.init(
                codingPath: decoder.codingPath + [key].map(AnyKey.init(stringValue:)),
                debugDescription: "unknown key '\(key)'; known keys: \(known.sorted().joined(separator: ", "))"))
        }
    }
}

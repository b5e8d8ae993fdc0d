import TensorCore

/// Rejects keys a configuration does not know, so that a typo (`"learnin_rate"`) is an error that
/// names the key instead of a silently ignored setting.
public enum ConfigurationKeys {
    /// Throws `DecodingError.dataCorrupted` naming the first unknown key and the known ones
    /// (`TensorCore.UnknownKeys.reject`).
    public static func rejectUnknown<Keys: CodingKey & CaseIterable>(in decoder: Decoder, _ keys: Keys.Type) throws {
        try UnknownKeys.reject(in: decoder, keys)
    }
}

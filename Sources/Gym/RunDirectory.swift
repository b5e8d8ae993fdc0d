import Foundation
import TensorCore

/// A training run on disk: `runs/<name>/`
/// - `config.json` — the full configuration (written once, atomically);
/// - `metrics.csv` — one row per update, columns fixed by the first row;
/// - `checkpoints/update-NNNNNN/` — `agent.safetensors` + `trainer.json`, and `checkpoints/latest`
///   naming the newest complete one (written last, atomically, so a crash never leaves a
///   half-written checkpoint as the latest).
public struct RunDirectory: Sendable {
    public let url: URL

    public init(_ url: URL) { self.url = url }

    public var configURL: URL { url.appendingPathComponent("config.json") }
    public var metricsURL: URL { url.appendingPathComponent("metrics.csv") }
    public var checkpointsURL: URL { url.appendingPathComponent("checkpoints") }

    public func create() throws {
        try FileManager.default.createDirectory(at: checkpointsURL, withIntermediateDirectories: true)
    }

    /// Writes `config.json` (pretty, sorted keys).
    public func writeConfig<C: Encodable>(_ config: C) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(config), to: configURL)
    }

    public func readConfig<C: Decodable>(_ type: C.Type) throws -> C {
        let data: Data
        do { data = try Data(contentsOf: configURL) } catch {
            throw FileError(path: configURL.path, reason: "cannot read the run's configuration (is this a run directory?)")
        }
        do { return try JSONDecoder().decode(type, from: data) } catch {
            throw FileError(path: configURL.path, reason: "malformed configuration: \(error)")
        }
    }

    /// The newest complete checkpoint's directory, or nil if there is none.
    public func latestCheckpoint() throws -> URL? {
        let pointer = checkpointsURL.appendingPathComponent("latest")
        guard let name = try? String(contentsOf: pointer, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), !name.isEmpty else {
            return nil
        }
        let directory = checkpointsURL.appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: directory.appendingPathComponent("trainer.json").path) else {
            throw FileError(path: pointer.path, reason: "names checkpoint '\(name)', which is missing or incomplete")
        }
        return directory
    }

    /// Creates `checkpoints/<name>/`, lets `write` fill it, then points `latest` at it and
    /// removes all but the newest `keep` checkpoints.
    public func saveCheckpoint(named name: String, keep: Int = 3, _ write: (URL) throws -> Void) throws {
        let directory = checkpointsURL.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try write(directory)
        try AtomicFile.write(Data(name.utf8), to: checkpointsURL.appendingPathComponent("latest"))
        let existing = (try? FileManager.default.contentsOfDirectory(atPath: checkpointsURL.path)) ?? []
        let checkpoints = existing.filter { $0.hasPrefix("update-") }.sorted()
        for old in checkpoints.dropLast(keep) where old != name {
            try? FileManager.default.removeItem(at: checkpointsURL.appendingPathComponent(old))
        }
    }
}

/// `metrics.csv`: a header fixed by the first row, then one row per update. Values are written
/// with full precision; a resumed run first drops rows past its checkpoint.
public final class MetricsLog {
    public let url: URL
    private var columns: [String]?

    public init(url: URL) throws {
        self.url = url
        if let text = try? String(contentsOf: url, encoding: .utf8), let header = text.split(separator: "\n").first {
            columns = header.split(separator: ",").map(String.init)
        }
    }

    /// Keeps the header and the rows whose `column` is ≤ `value` (used when resuming).
    public func truncate(keepingRowsWhere column: String, atMost value: Double) throws {
        guard let text = try? String(contentsOf: url, encoding: .utf8), let columns, let index = columns.firstIndex(of: column) else { return }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: true)
        let kept = [String(lines[0])] + lines.dropFirst().filter { line in
            let fields = line.split(separator: ",", omittingEmptySubsequences: false)
            return index < fields.count && (Double(fields[index]) ?? .infinity) <= value
        }.map(String.init)
        try AtomicFile.write(Data((kept.joined(separator: "\n") + "\n").utf8), to: url)
    }

    /// Appends one row; the first row ever written fixes the columns.
    public func append(_ row: [(String, Double)]) throws {
        if columns == nil {
            columns = row.map(\.0)
            try AtomicFile.write(Data((columns!.joined(separator: ",") + "\n").utf8), to: url)
        }
        let values = Dictionary(row, uniquingKeysWith: { $1 })
        let line = columns!.map { name in values[name].map { Self.format($0) } ?? "" }.joined(separator: ",") + "\n"
        let handle = try FileHandle(forWritingTo: url)
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(line.utf8))
    }

    static func format(_ value: Double) -> String {
        if value == value.rounded() && abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }

    /// Reads a metrics file back: the column names and the rows.
    public static func read(_ url: URL) throws -> (columns: [String], rows: [[Double]]) {
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw FileError(path: url.path, reason: "cannot read metrics")
        }
        let lines = text.split(separator: "\n")
        guard let header = lines.first else { return ([], []) }
        let rows = lines.dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false).map { Double($0) ?? .nan } }
        return (header.split(separator: ",").map(String.init), rows)
    }
}

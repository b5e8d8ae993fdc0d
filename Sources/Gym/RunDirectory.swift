import Foundation
import TensorCore

/// A training run on disk: `runs/<name>/`
/// - `config.json` — the full configuration (written once, atomically);
/// - `metrics.csv` — one row per update, columns fixed by the first row (a new column extends them);
/// - `checkpoints/update-NNNNNN/` — `agent.safetensors` + `trainer.json`, and `checkpoints/latest`
///   naming the newest complete one (written last, atomically, so a crash never leaves a
///   half-written checkpoint as the latest).
public struct RunDirectory: Sendable {
    /// The run's directory.
    public let url: URL

    /// A run directory at `url` (nothing is created until `create`).
    public init(_ url: URL) { self.url = url }

    /// `config.json`.
    public var configURL: URL { url.appendingPathComponent("config.json") }
    /// `metrics.csv`.
    public var metricsURL: URL { url.appendingPathComponent("metrics.csv") }
    /// `checkpoints/`.
    public var checkpointsURL: URL { url.appendingPathComponent("checkpoints") }

    /// Creates the directory and `checkpoints/`.
    public func create() throws {
        try AtomicFile.prepareDirectory(checkpointsURL)
    }

    /// Writes `config.json` (pretty, sorted keys): the configuration's own keys plus a `prunegym`
    /// object (`RunProvenance`: the kind of run, the PruneGym version, the git commit, the seed and
    /// the command line), so that `prunegym rerun` can reproduce the run from the directory alone.
    /// `seed` defaults to the configuration's top-level `seed` key.
    public func writeConfig<C: Encodable>(_ config: C, kind: String, seed: UInt64? = nil, command: [String] = Array(CommandLine.arguments.dropFirst())) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard var object = try JSONSerialization.jsonObject(with: try encoder.encode(config)) as? [String: Any] else {
            throw FileError(path: configURL.path, reason: "the configuration does not encode as a JSON object")
        }
        let seed = seed ?? (object["seed"] as? NSNumber).map { $0.uint64Value }
        let provenance = RunProvenance(kind: kind, seed: seed, command: command)
        object[RunProvenance.key] = try JSONSerialization.jsonObject(with: try encoder.encode(provenance))
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        try AtomicFile.write(data, to: configURL)
    }

    /// Reads `config.json` as `type` (ignoring the `prunegym` provenance object).
    public func readConfig<C: Decodable>(_ type: C.Type) throws -> C {
        let object = try readConfigObject()
        var stripped = object
        stripped.removeValue(forKey: RunProvenance.key)
        let data = try JSONSerialization.data(withJSONObject: stripped)
        do { return try JSONDecoder().decode(type, from: data) } catch {
            throw FileError(path: configURL.path, reason: "malformed configuration: \(JSONSyntax.describe(error, of: data))")
        }
    }

    /// The provenance recorded by `writeConfig`, or nil for a run written before it existed.
    public func readProvenance() throws -> RunProvenance? {
        guard let value = try readConfigObject()[RunProvenance.key] else { return nil }
        let data = try JSONSerialization.data(withJSONObject: value, options: .fragmentsAllowed)
        do { return try JSONDecoder().decode(RunProvenance.self, from: data) } catch {
            throw FileError(path: configURL.path, reason: "malformed `\(RunProvenance.key)` object: \(JSONSyntax.describe(error, of: data))")
        }
    }

    private func readConfigObject() throws -> [String: Any] {
        let data: Data
        do { data = try Data(contentsOf: configURL) } catch {
            throw FileError(path: configURL.path, reason: "cannot read the run's configuration (is this a run directory?)")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw FileError(path: configURL.path, reason: "not a JSON object; the run directory is damaged")
        }
        return object
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
        try AtomicFile.prepareDirectory(directory)
        try write(directory)
        try AtomicFile.write(Data(name.utf8), to: checkpointsURL.appendingPathComponent("latest"))
        let existing = (try? FileManager.default.contentsOfDirectory(atPath: checkpointsURL.path)) ?? []
        let checkpoints = existing.filter { $0.hasPrefix("update-") }.sorted()
        for old in checkpoints.dropLast(keep) where old != name {
            try? FileManager.default.removeItem(at: checkpointsURL.appendingPathComponent(old))
        }
    }
}

/// What every run's `config.json` records beside the configuration, under the key `prunegym`.
public struct RunProvenance: Codable, Equatable, Sendable {
    /// The key of the provenance object in config.json.
    public static let key = "prunegym"
    /// What made the run: `train`, `tprl`, `vlm-train`, `sweep-cell`, … (`prunegym rerun` dispatches on it).
    public var kind: String
    /// The PruneGym release that made the run.
    public var version: String
    /// `git rev-parse HEAD` of the working directory when the run started, with `-dirty` when
    /// tracked files had changes; `unknown` outside a git checkout.
    public var gitCommit: String
    /// The run's seed (nil when the configuration has none).
    public var seed: UInt64?
    /// The command line, without the executable.
    public var command: [String]
    /// The OpenBLAS kernels that ran (`BLAS.kernels`): their order of summation sets the last bits
    /// of every product, so a run reproduces to the bit only with the same ones. Nil in runs made
    /// before release 0.7.5.
    public var openBLASKernels: String?
    /// How many lanes the shim's softmax, activations and fused attention kernels (the vision
    /// tower's heads, the TPRL policy's) ran (`BLAS.exponentialLanes`): 16 and 8 give the same
    /// bits, 4 (the portable Swift code, `PRUNEGYM_SIMD=portable` or a CPU without AVX2) rounds
    /// differently. Nil in runs made before release 0.7.8.
    public var exponentialLanes: Int?

    enum CodingKeys: String, CodingKey {
        case kind, version, gitCommit = "git_commit", seed, command, openBLASKernels = "openblas_kernels", exponentialLanes = "exponential_lanes"
    }

    /// Provenance of a run starting now (version, git commit, OpenBLAS kernels and exponential
    /// lanes of this process by default).
    public init(kind: String, seed: UInt64?, command: [String], version: String = PruneGymVersion.current, gitCommit: String = GitCommit.current,
                openBLASKernels: String? = BLAS.kernels, exponentialLanes: Int? = BLAS.exponentialLanes) {
        self.kind = kind
        self.version = version
        self.gitCommit = gitCommit
        self.seed = seed
        self.command = command
        self.openBLASKernels = openBLASKernels
        self.exponentialLanes = exponentialLanes
    }

    /// Why a run made now (`current`) would not reproduce this one to the last bit: one line per
    /// difference in what sets the bits — the OpenBLAS kernels, and the portable code against the
    /// vector kernels — each saying how to match it. Empty when nothing recorded differs.
    public func bitDifferences(from current: RunProvenance) -> [String] {
        var notes: [String] = []
        if let kernels = openBLASKernels, let now = current.openBLASKernels, kernels != now {
            notes.append("the run used OpenBLAS's \(kernels) kernels and this process runs its \(now) ones, which sum in another order: "
                + "expect the same run to the last bits only with OPENBLAS_CORETYPE=\(kernels) (where the CPU supports them)")
        }
        if let lanes = exponentialLanes, let now = current.exponentialLanes, (lanes == 4) != (now == 4) {
            let name = { (lanes: Int) in lanes == 4 ? "the portable four-lane Swift code" : "the \(lanes)-lane vector kernels" }
            notes.append("the run's softmax, activations and fused attention kernels ran \(name(lanes)) and this process runs \(name(now)), which round differently: "
                + (lanes == 4 ? "expect the same run to the last bits only with PRUNEGYM_SIMD=portable"
                              : "expect the same run to the last bits only without PRUNEGYM_SIMD=portable, on a CPU with AVX2"))
        }
        return notes
    }
}

/// The git commit of the current directory's checkout, asked once per process.
public enum GitCommit {
    /// `HEAD` of the working directory's checkout (`-dirty` with uncommitted changes), or `unknown`.
    public static let current: String = {
        guard let head = run(["rev-parse", "HEAD"]), !head.isEmpty else { return "unknown" }
        let dirty = run(["status", "--porcelain", "--untracked-files=no"]).map { !$0.isEmpty } ?? false
        return dirty ? head + "-dirty" : head
    }()

    static func run(_ arguments: [String]) -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["git"] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// `metrics.csv`: a header fixed by the first row, then one row per update. Values are written
/// with full precision; a resumed run first drops rows past its checkpoint.
///
/// Every row also goes to a TensorBoard event file in the same directory (`TensorBoardWriter`),
/// each column a scalar tagged with its name, at the row's `step` (or `samples`, `update`,
/// `epoch`, whichever the row has first; else the row number): `tensorboard --logdir runs`.
public final class MetricsLog {
    /// The CSV file.
    public let url: URL
    private var columns: [String]?
    /// Write TensorBoard event files beside the CSV (default true).
    public var writesTensorBoard: Bool
    private var tensorBoard: TensorBoardWriter?
    private var rowCount = 0

    /// The columns tried, in order, for a row's TensorBoard step.
    public static let stepColumns = ["step", "samples", "update", "epoch"]

    /// A log appending to `url` (its header, if the file exists, fixes the columns).
    public init(url: URL, writesTensorBoard: Bool = true) throws {
        self.url = url
        self.writesTensorBoard = writesTensorBoard
        if let text = try? String(contentsOf: url, encoding: .utf8), let header = text.split(separator: "\n").first {
            columns = header.split(separator: ",").map(String.init)
            rowCount = text.split(separator: "\n").count - 1
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
        rowCount = kept.count - 1
    }

    /// Appends one row; the first row ever written fixes the columns, and a later row with a new
    /// column extends them (earlier rows get an empty field).
    public func append(_ row: [(String, Double)]) throws {
        if columns == nil {
            columns = row.map(\.0)
            try AtomicFile.write(Data((columns!.joined(separator: ",") + "\n").utf8), to: url)
        }
        let added = row.map(\.0).filter { !columns!.contains($0) }
        if !added.isEmpty {
            // A column the header lacks (a resumed run whose recipe gained a term): extend the
            // header and give the earlier rows empty fields, so nothing is dropped.
            let text = (try? String(contentsOf: url, encoding: .utf8)) ?? ""
            let lines = text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
            let padding = String(repeating: ",", count: added.count)
            columns! += added
            let rewritten = [columns!.joined(separator: ",")] + lines.dropFirst().map { $0 + padding }
            try AtomicFile.write(Data((rewritten.joined(separator: "\n") + "\n").utf8), to: url)
        }
        let values = Dictionary(row, uniquingKeysWith: { $1 })
        let line = columns!.map { name in values[name].map { Self.format($0) } ?? "" }.joined(separator: ",") + "\n"
        let handle = try FileHandle(forWritingTo: url)
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(line.utf8))
        rowCount += 1
        if writesTensorBoard {
            let stepValue = Self.stepColumns.lazy.compactMap { values[$0] }.first ?? Double(rowCount)
            let step = stepValue.isFinite ? Int64(stepValue) : Int64(rowCount)
            if tensorBoard == nil {
                // Rows already in the CSV mean a resumed run: tell TensorBoard to drop the
                // older file's events from this step on.
                tensorBoard = try TensorBoardWriter(directory: url.deletingLastPathComponent(), resumingAt: rowCount > 1 ? step : nil)
            }
            try tensorBoard?.add(row, step: step)
        }
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

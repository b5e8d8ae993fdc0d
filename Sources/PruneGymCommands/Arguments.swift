import Foundation

/// A command-line error: says what was wrong and what to do next.
struct UsageError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// `--name value` and `--flag` options after a subcommand.
struct Arguments {
    private(set) var values: [String: String] = [:]
    private var flags = Set<String>()
    private(set) var positional: [String] = []
    let command: String

    init(command: String, _ arguments: [String], flags known: Set<String>, options: Set<String>) throws {
        self.command = command
        var iterator = arguments.makeIterator()
        while let argument = iterator.next() {
            if argument == "--help" || argument == "-h" {
                flags.insert("help")
            } else if argument.hasPrefix("--") {
                let name = String(argument.dropFirst(2))
                if known.contains(name) {
                    flags.insert(name)
                } else if options.contains(name) {
                    guard let value = iterator.next() else {
                        throw UsageError(message: "prunegym \(command): --\(name) needs a value (see prunegym \(command) --help)")
                    }
                    values[name] = value
                } else {
                    let guess = closest(to: name, among: known.union(options)).map { "; did you mean --\($0)?" } ?? ""
                    throw UsageError(message: "prunegym \(command): unknown option --\(name)\(guess) (see prunegym \(command) --help)")
                }
            } else {
                positional.append(argument)
            }
        }
    }

    func flag(_ name: String) -> Bool { flags.contains(name) }

    func string(_ name: String, default value: String) -> String { values[name] ?? value }

    func integer(_ name: String, default value: Int, range: ClosedRange<Int> = 0...Int.max) throws -> Int {
        guard let text = values[name] else { return value }
        guard let parsed = Int(text), range.contains(parsed) else {
            throw UsageError(message: "prunegym \(command): --\(name) must be an integer in \(range.lowerBound)...\(range.upperBound), got '\(text)'")
        }
        return parsed
    }
}

/// The name among `names` nearest to `typed` when it is near enough to be a typo (an edit distance
/// of at most 2, and less than half its length), else nil; ties go to the first in sorted order.
func closest(to typed: String, among names: some Sequence<String>) -> String? {
    func distance(_ a: [Character], _ b: [Character]) -> Int {
        guard !a.isEmpty, !b.isEmpty else { return max(a.count, b.count) }
        var row = Array(0...b.count)
        for i in 1...a.count {
            var diagonal = row[0]
            row[0] = i
            for j in 1...b.count {
                let above = row[j]
                row[j] = min(diagonal + (a[i - 1] == b[j - 1] ? 0 : 1), above + 1, row[j - 1] + 1)
                diagonal = above
            }
        }
        return row[b.count]
    }
    let candidates = names.sorted().map { ($0, distance(Array(typed), Array($0))) }
    guard let best = candidates.min(by: { $0.1 < $1.1 }), best.1 <= 2, 2 * best.1 < max(typed.count, 1) else { return nil }
    return best.0
}

/// A configuration's settings as JSON text by key, nested keys dotted (`environment.budget_choices`).
func flatSettings<T: Encodable>(_ value: T) -> [String: String] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    guard let data = try? encoder.encode(value), let object = try? JSONSerialization.jsonObject(with: data) else { return [:] }
    var out: [String: String] = [:]
    func walk(_ value: Any, _ path: String) {
        if let dictionary = value as? [String: Any] {
            for (key, child) in dictionary { walk(child, path.isEmpty ? key : "\(path).\(key)") }
        } else if let text = try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys]) {
            out[path] = String(decoding: text, as: UTF8.self)
        }
    }
    walk(object, "")
    return out
}

/// The settings in which two configurations differ, as "key: old there, new now" with nested keys
/// dotted (`environment.budget_choices`), in key order, at most `limit` of them — what an error
/// about a run directory holding another configuration names, so the user sees why.
func configurationDifferences<T: Encodable>(_ old: T, _ new: T, limit: Int = 6) -> [String] {
    let (a, b) = (flatSettings(old), flatSettings(new))
    let keys = Set(a.keys).union(b.keys).filter { a[$0] != b[$0] }.sorted()
    var lines = keys.prefix(limit).map { "\($0): \(a[$0] ?? "absent") there, \(b[$0] ?? "absent") now" }
    if keys.count > limit { lines.append("and \(keys.count - limit) more") }
    return lines
}

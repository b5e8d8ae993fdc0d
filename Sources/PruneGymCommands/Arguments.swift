import Foundation
import Gym

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
                    let guess = nearestName(to: name, among: known.union(options)).map { "; did you mean --\($0)?" } ?? ""
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

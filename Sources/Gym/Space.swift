import TensorCore

/// A set of values an environment observes or acts with (Gymnasium's `Space`), as a value type.
///
/// Besides `contains` and seeded `sample`, every space can flatten its elements to a row of
/// `Float`s and back, so that generic agents and the rollout buffer work on any environment.
public protocol Space<Element>: Sendable, CustomStringConvertible {
    associatedtype Element: Sendable

    /// The shape of one element (`[]` for a scalar such as `Discrete`).
    var shape: [Int] { get }
    /// A structural description: what the space is, its bounds and sizes.
    var descriptor: SpaceDescriptor { get }
    /// Whether `value` is an element of the space (shape, bounds, finiteness).
    func contains(_ value: Element) -> Bool
    /// A random element, drawn from `generator` (Gymnasium's sampling rules).
    func sample(using generator: inout SeededGenerator) -> Element
    /// The length of `flatten(_:)`.
    var flatDimension: Int { get }
    /// Appends the element's flat `Float` representation to `row`.
    func flatten(_ value: Element, into row: inout [Float])
    /// Rebuilds an element from `flatDimension` floats (the inverse of `flatten`).
    func unflatten(_ row: ArraySlice<Float>) -> Element
    /// The element as a dynamically typed value (for composite spaces and comparisons).
    func erase(_ value: Element) -> SpaceValue
    /// The element held in `value`, or nil when it has the wrong kind.
    func element(from value: SpaceValue) -> Element?
    /// A value of the element type that is *not* in the space, used by the environment checker
    /// to confirm invalid actions are rejected; nil when the type admits none.
    var invalidExample: Element? { get }
}

extension Space {
    public var description: String { descriptor.description }

    /// The flat representation of one element.
    public func flattened(_ value: Element) -> [Float] {
        var row: [Float] = []
        row.reserveCapacity(flatDimension)
        flatten(value, into: &row)
        return row
    }

    /// The flat rows of `elements`, row-major: `[count · flatDimension]` values.
    public func flatRows(_ elements: [Element]) -> [Float] {
        var rows: [Float] = []
        rows.reserveCapacity(elements.count * flatDimension)
        for element in elements { flatten(element, into: &rows) }
        return rows
    }

    /// A readable rendering of an element for error messages.
    public func describe(_ value: Element) -> String { erase(value).description }

    /// `contains` on a dynamically typed value.
    public func containsValue(_ value: SpaceValue) -> Bool {
        guard let element = element(from: value) else { return false }
        return contains(element)
    }

    /// `sample` returning a dynamically typed value.
    public func sampleValue(using generator: inout SeededGenerator) -> SpaceValue {
        erase(sample(using: &generator))
    }

    /// `flatten` on a dynamically typed value. - Precondition: `value` has this space's kind.
    public func flattenValue(_ value: SpaceValue, into row: inout [Float]) {
        guard let element = element(from: value) else {
            preconditionFailure("\(self): cannot flatten \(value), which is of another kind")
        }
        flatten(element, into: &row)
    }

    /// `unflatten` returning a dynamically typed value.
    public func unflattenValue(_ row: ArraySlice<Float>) -> SpaceValue { erase(unflatten(row)) }

    /// A value outside the space, for the checker's invalid-action probe (nil: none exists).
    public var invalidExample: Element? { nil }
}

/// An element of any space, dynamically typed: what `Dict` and `Tuple` spaces hold.
public indirect enum SpaceValue: Sendable, Equatable, CustomStringConvertible {
    case real([Float])
    case integer(Int)
    case binary([Bool])
    case integers([Int])
    case dict([String: SpaceValue])
    case tuple([SpaceValue])

    public var description: String {
        switch self {
        case let .real(values): return "[" + values.map { "\($0)" }.joined(separator: ", ") + "]"
        case let .integer(value): return "\(value)"
        case let .binary(values): return "[" + values.map { $0 ? "1" : "0" }.joined(separator: ", ") + "]"
        case let .integers(values): return "[" + values.map(String.init).joined(separator: ", ") + "]"
        case let .dict(values):
            return "{" + values.keys.sorted().map { "\($0): \(values[$0]!)" }.joined(separator: ", ") + "}"
        case let .tuple(values): return "(" + values.map(\.description).joined(separator: ", ") + ")"
        }
    }

    /// Bit-for-bit equality (unlike `==`, NaN equals NaN and 0 differs from −0).
    public func isIdentical(to other: SpaceValue) -> Bool {
        switch (self, other) {
        case let (.real(a), .real(b)): return a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern }
        case let (.dict(a), .dict(b)):
            return a.count == b.count && a.allSatisfy { key, value in b[key].map { value.isIdentical(to: $0) } ?? false }
        case let (.tuple(a), .tuple(b)): return a.count == b.count && zip(a, b).allSatisfy { $0.isIdentical(to: $1) }
        default: return self == other
        }
    }
}

/// What a space is, structurally: used for descriptions, validation by the checker, and for
/// agents to choose an action distribution.
public indirect enum SpaceDescriptor: Sendable, Equatable, CustomStringConvertible {
    case box(low: [Float], high: [Float], shape: [Int])
    case discrete(count: Int, start: Int)
    case multiBinary(shape: [Int])
    case multiDiscrete(counts: [Int], start: [Int])
    case dict([(key: String, space: SpaceDescriptor)])
    case tuple([SpaceDescriptor])
    /// A user-defined space: its name and flat dimension.
    case custom(name: String, flatDimension: Int)

    /// Descriptors compare by kind, shape and bounds.
    public static func == (lhs: SpaceDescriptor, rhs: SpaceDescriptor) -> Bool {
        lhs.description == rhs.description  // the description lists every bound and size
    }

    public var description: String {
        switch self {
        case let .box(low, high, shape):
            let shapeText = "(" + shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? ",)" : ")")
            func bound(_ values: [Float]) -> String {
                if let first = values.first, values.allSatisfy({ $0 == first }) { return "\(first)" }
                return "[" + values.map { "\($0)" }.joined(separator: ", ") + "]"
            }
            return "Box(\(bound(low)), \(bound(high)), \(shapeText), float32)"
        case let .discrete(count, start): return start == 0 ? "Discrete(\(count))" : "Discrete(\(count), start=\(start))"
        case let .multiBinary(shape): return "MultiBinary(\(shape.count == 1 ? "\(shape[0])" : "\(shape)"))"
        case let .multiDiscrete(counts, start):
            return start.allSatisfy({ $0 == 0 }) ? "MultiDiscrete(\(counts))" : "MultiDiscrete(\(counts), start=\(start))"
        case let .dict(entries): return "Dict(" + entries.map { "'\($0.key)': \($0.space)" }.joined(separator: ", ") + ")"
        case let .tuple(spaces): return "Tuple(" + spaces.map(\.description).joined(separator: ", ") + ")"
        case let .custom(name, dimension): return "\(name)(flat dimension \(dimension))"
        }
    }

    /// Ways the space is malformed (the environment checker's space rules); empty if well formed.
    public var problems: [String] {
        switch self {
        case let .box(low, high, shape):
            let count = shape.reduce(1, *)
            var found: [String] = []
            if shape.contains(where: { $0 < 0 }) { found.append("\(self): negative dimension in shape \(shape)") }
            if low.count != count || high.count != count {
                found.append("\(self): bounds have \(low.count)/\(high.count) entries for shape \(shape) (\(count) elements)")
            } else {
                if zip(low, high).contains(where: { $0 > $1 }) { found.append("\(self): some low bound exceeds its high bound") }
                if low.contains(where: \.isNaN) || high.contains(where: \.isNaN) { found.append("\(self): a bound is NaN") }
            }
            return found
        case let .discrete(count, _): return count > 0 ? [] : ["\(self): n must be positive"]
        case let .multiBinary(shape): return shape.contains(where: { $0 <= 0 }) ? ["\(self): dimensions must be positive"] : []
        case let .multiDiscrete(counts, start):
            var found: [String] = []
            if counts.contains(where: { $0 <= 0 }) { found.append("\(self): every count must be positive") }
            if start.count != counts.count { found.append("\(self): start has \(start.count) entries for \(counts.count) counts") }
            return found
        case let .dict(entries):
            return entries.isEmpty ? ["\(self): a Dict space must not be empty"] : entries.flatMap(\.space.problems)
        case let .tuple(spaces):
            return spaces.isEmpty ? ["\(self): a Tuple space must not be empty"] : spaces.flatMap(\.problems)
        case let .custom(_, dimension): return dimension >= 0 ? [] : ["\(self): negative flat dimension"]
        }
    }
}

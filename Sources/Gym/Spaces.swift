import Foundation
import TensorCore

/// A box in ℝⁿ: `low ≤ x ≤ high` element-wise, float32 elements stored row-major (Gymnasium's `Box`).
///
/// Sampling follows Gymnasium: uniform on a bounded interval, `low + Exp(1)` when only bounded
/// below, `high − Exp(1)` when only bounded above, `N(0, 1)` when unbounded.
public struct Box: Space, Equatable {
    /// Lower bounds, one per element.
    public let low: [Float]
    /// Upper bounds, one per element.
    public let high: [Float]
    /// The shape of a value (its element count is the bounds' count).
    public let shape: [Int]

    /// A box with per-element bounds. - Precondition: `low` and `high` have `shape`'s element count.
    public init(low: [Float], high: [Float], shape: [Int]? = nil) {
        let shape = shape ?? [low.count]
        precondition(low.count == shape.reduce(1, *) && high.count == low.count,
                     "Box: bounds have \(low.count)/\(high.count) entries for shape \(shape)")
        self.low = low
        self.high = high
        self.shape = shape
    }

    /// A box with the same bounds for every element.
    public init(low: Float, high: Float, shape: [Int]) {
        let count = shape.reduce(1, *)
        self.init(low: Array(repeating: low, count: count), high: Array(repeating: high, count: count), shape: shape)
    }

    public var descriptor: SpaceDescriptor { .box(low: low, high: high, shape: shape) }
    public var flatDimension: Int { low.count }

    public func contains(_ value: [Float]) -> Bool {
        guard value.count == low.count else { return false }
        for index in value.indices where !(value[index] >= low[index] && value[index] <= high[index]) { return false }
        return true
    }

    public func sample(using generator: inout SeededGenerator) -> [Float] {
        (0..<low.count).map { index in
            let (a, b) = (low[index], high[index])
            switch (a.isFinite, b.isFinite) {
            case (true, true): return min(b, a + (b - a) * generator.nextFloat())
            case (true, false): return a + exponential(&generator)
            case (false, true): return b - exponential(&generator)
            case (false, false): return generator.normal()
            }
        }
    }

    private func exponential(_ generator: inout SeededGenerator) -> Float {
        Float(-Foundation.log(1 - generator.nextDouble()))
    }

    public func flatten(_ value: [Float], into row: inout [Float]) { row.append(contentsOf: value) }
    public func unflatten(_ row: ArraySlice<Float>) -> [Float] { Array(row) }
    public func erase(_ value: [Float]) -> SpaceValue { .real(value) }
    public func element(from value: SpaceValue) -> [Float]? { if case let .real(v) = value { return v } else { return nil } }
    /// A vector of NaN.
    public var invalidExample: [Float]? { Array(repeating: .nan, count: low.count) }

    /// Whether every bound is finite.
    public var isBounded: Bool { low.allSatisfy(\.isFinite) && high.allSatisfy(\.isFinite) }

    /// `value` clipped into the box element-wise.
    public func clipped(_ value: [Float]) -> [Float] {
        precondition(value.count == low.count, "Box.clipped: \(value.count) values for \(self)")
        return value.indices.map { Swift.min(Swift.max(value[$0], low[$0]), high[$0]) }
    }
}

/// The integers `start ..< start + count` (Gymnasium's `Discrete`).
public struct Discrete: Space, Equatable {
    /// Number of values.
    public let count: Int
    /// The smallest value (Gymnasium's `start`).
    public let start: Int

    /// `start ..< start + count`.
    public init(_ count: Int, start: Int = 0) {
        self.count = count
        self.start = start
    }

    /// A scalar.
    public var shape: [Int] { [] }
    public var descriptor: SpaceDescriptor { .discrete(count: count, start: start) }
    public var flatDimension: Int { 1 }
    public func contains(_ value: Int) -> Bool { value >= start && value < start + count }
    public func sample(using generator: inout SeededGenerator) -> Int { start + generator.integer(below: count) }

    /// A uniform draw among the entries whose mask is true; `start` when none is (as Gymnasium).
    /// - Precondition: `mask.count == count`.
    public func sample(mask: [Bool], using generator: inout SeededGenerator) -> Int {
        precondition(mask.count == count, "Discrete.sample(mask:): mask has \(mask.count) entries for \(self)")
        let allowed = mask.indices.filter { mask[$0] }
        guard !allowed.isEmpty else { return start }
        return start + allowed[generator.integer(below: allowed.count)]
    }

    public func flatten(_ value: Int, into row: inout [Float]) { row.append(Float(value)) }
    public func unflatten(_ row: ArraySlice<Float>) -> Int { Int(row[row.startIndex].rounded()) }
    public func erase(_ value: Int) -> SpaceValue { .integer(value) }
    public func element(from value: SpaceValue) -> Int? { if case let .integer(v) = value { return v } else { return nil } }
    /// One past the last value.
    public var invalidExample: Int? { start + count }
}

/// Binary vectors of a fixed shape (Gymnasium's `MultiBinary`); elements are `[Bool]` row-major.
public struct MultiBinary: Space, Equatable {
    /// The shape of a value.
    public let shape: [Int]

    /// `count` binary entries.
    public init(_ count: Int) { shape = [count] }
    /// Binary entries of `shape`.
    public init(shape: [Int]) { self.shape = shape }

    /// Entries in a value.
    public var count: Int { shape.reduce(1, *) }
    public var descriptor: SpaceDescriptor { .multiBinary(shape: shape) }
    public var flatDimension: Int { count }
    public func contains(_ value: [Bool]) -> Bool { value.count == count }
    public func sample(using generator: inout SeededGenerator) -> [Bool] { (0..<count).map { _ in generator.next() >> 63 == 1 } }

    /// A fair coin for entries whose mask is nil, the given value otherwise (Gymnasium's mask value 2 = random).
    public func sample(mask: [Bool?], using generator: inout SeededGenerator) -> [Bool] {
        precondition(mask.count == count, "MultiBinary.sample(mask:): mask has \(mask.count) entries for \(self)")
        return mask.map { $0 ?? (generator.next() >> 63 == 1) }
    }

    public func flatten(_ value: [Bool], into row: inout [Float]) { for bit in value { row.append(bit ? 1 : 0) } }
    public func unflatten(_ row: ArraySlice<Float>) -> [Bool] { row.map { $0 > 0.5 } }
    public func erase(_ value: [Bool]) -> SpaceValue { .binary(value) }
    public func element(from value: SpaceValue) -> [Bool]? { if case let .binary(v) = value { return v } else { return nil } }
    /// One entry too many.
    public var invalidExample: [Bool]? { Array(repeating: false, count: count + 1) }
}

/// A vector of independent integers, entry i in `start[i] ..< start[i] + counts[i]`
/// (Gymnasium's `MultiDiscrete`).
public struct MultiDiscrete: Space, Equatable {
    /// Number of values of each entry.
    public let counts: [Int]
    /// The smallest value of each entry.
    public let start: [Int]

    /// Entry i takes values in `start[i] ..< start[i] + counts[i]` (start 0 by default).
    public init(_ counts: [Int], start: [Int]? = nil) {
        self.counts = counts
        self.start = start ?? Array(repeating: 0, count: counts.count)
    }

    /// One entry per count.
    public var shape: [Int] { [counts.count] }
    public var descriptor: SpaceDescriptor { .multiDiscrete(counts: counts, start: start) }
    public var flatDimension: Int { counts.count }
    public func contains(_ value: [Int]) -> Bool {
        value.count == counts.count && value.indices.allSatisfy { value[$0] >= start[$0] && value[$0] < start[$0] + counts[$0] }
    }
    public func sample(using generator: inout SeededGenerator) -> [Int] {
        counts.indices.map { start[$0] + generator.integer(below: counts[$0]) }
    }
    public func flatten(_ value: [Int], into row: inout [Float]) { for v in value { row.append(Float(v)) } }
    public func unflatten(_ row: ArraySlice<Float>) -> [Int] { row.map { Int($0.rounded()) } }
    public func erase(_ value: [Int]) -> SpaceValue { .integers(value) }
    public func element(from value: SpaceValue) -> [Int]? { if case let .integers(v) = value { return v } else { return nil } }
    /// Every entry one past its range.
    public var invalidExample: [Int]? { counts.indices.map { start[$0] + counts[$0] } }
}

/// Named sub-spaces (Gymnasium's `Dict`); keys keep the order given. Elements are
/// `[String: SpaceValue]`; flattening concatenates the children in key order.
public struct DictSpace: Space {
    /// The named subspaces, in flattening order.
    public let entries: [(key: String, space: any Space)]

    /// A dictionary space; flattening follows the given order.
    public init(_ entries: [(key: String, space: any Space)]) {
        self.entries = entries
    }

    /// A composite space has no single shape.
    public var shape: [Int] { [] }
    public var descriptor: SpaceDescriptor { .dict(entries.map { ($0.key, $0.space.descriptor) }) }
    public var flatDimension: Int { entries.reduce(0) { $0 + $1.space.flatDimension } }

    /// The subspace named `key`.
    public subscript(key: String) -> (any Space)? { entries.first { $0.key == key }?.space }

    public func contains(_ value: [String: SpaceValue]) -> Bool {
        value.count == entries.count && entries.allSatisfy { entry in value[entry.key].map { entry.space.containsValue($0) } ?? false }
    }

    /// Each child samples from its own generator forked from `generator`, in key order.
    public func sample(using generator: inout SeededGenerator) -> [String: SpaceValue] {
        var result: [String: SpaceValue] = [:]
        for entry in entries {
            var child = generator.fork()
            result[entry.key] = entry.space.sampleValue(using: &child)
        }
        return result
    }

    public func flatten(_ value: [String: SpaceValue], into row: inout [Float]) {
        for entry in entries {
            guard let child = value[entry.key] else { preconditionFailure("DictSpace.flatten: missing key '\(entry.key)'") }
            entry.space.flattenValue(child, into: &row)
        }
    }

    public func unflatten(_ row: ArraySlice<Float>) -> [String: SpaceValue] {
        var result: [String: SpaceValue] = [:]
        var offset = row.startIndex
        for entry in entries {
            let end = offset + entry.space.flatDimension
            result[entry.key] = entry.space.unflattenValue(row[offset..<end])
            offset = end
        }
        return result
    }

    public func erase(_ value: [String: SpaceValue]) -> SpaceValue { .dict(value) }
    public func element(from value: SpaceValue) -> [String: SpaceValue]? { if case let .dict(v) = value { return v } else { return nil } }
    /// An empty dictionary (every key missing).
    public var invalidExample: [String: SpaceValue]? { [:] }
}

/// An ordered product of sub-spaces (Gymnasium's `Tuple`). Elements are `[SpaceValue]`.
public struct TupleSpace: Space {
    /// The subspaces, in order.
    public let spaces: [any Space]

    /// A tuple of `spaces`.
    public init(_ spaces: [any Space]) { self.spaces = spaces }

    /// A composite space has no single shape.
    public var shape: [Int] { [] }
    public var descriptor: SpaceDescriptor { .tuple(spaces.map(\.descriptor)) }
    public var flatDimension: Int { spaces.reduce(0) { $0 + $1.flatDimension } }

    public func contains(_ value: [SpaceValue]) -> Bool {
        value.count == spaces.count && zip(spaces, value).allSatisfy { $0.containsValue($1) }
    }

    public func sample(using generator: inout SeededGenerator) -> [SpaceValue] {
        spaces.map { space in
            var child = generator.fork()
            return space.sampleValue(using: &child)
        }
    }

    public func flatten(_ value: [SpaceValue], into row: inout [Float]) {
        precondition(value.count == spaces.count, "TupleSpace.flatten: \(value.count) values for \(spaces.count) spaces")
        for (space, child) in zip(spaces, value) { space.flattenValue(child, into: &row) }
    }

    public func unflatten(_ row: ArraySlice<Float>) -> [SpaceValue] {
        var offset = row.startIndex
        return spaces.map { space in
            let end = offset + space.flatDimension
            defer { offset = end }
            return space.unflattenValue(row[offset..<end])
        }
    }

    public func erase(_ value: [SpaceValue]) -> SpaceValue { .tuple(value) }
    public func element(from value: SpaceValue) -> [SpaceValue]? { if case let .tuple(v) = value { return v } else { return nil } }
    /// An empty tuple.
    public var invalidExample: [SpaceValue]? { [] }
}

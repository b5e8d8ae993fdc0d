import Foundation

/// A dense, row-major tensor of Float32 values with value semantics.
///
/// Copies share storage until one of them is mutated (copy-on-write). A tensor computed from a
/// `Parameter` while the gradient tape is recording carries a tape node; calling `backward()` on a
/// scalar result accumulates gradients into the parameters it depends on.
///
/// Shapes are `[Int]` with the last axis contiguous; a scalar has shape `[]`.
public struct Tensor: @unchecked Sendable {
    // @unchecked: `node` is only mutated during `backward()`, which the caller runs on one thread;
    // storage is copy-on-write.
    public private(set) var shape: [Int]
    var storage: TensorStorage
    var node: TapeNode?

    init(shape: [Int], storage: TensorStorage, node: TapeNode? = nil) {
        precondition(
            Tensor.elementCount(shape) == storage.count,
            "Tensor: shape \(shape) needs \(Tensor.elementCount(shape)) values, storage has \(storage.count)")
        self.shape = shape
        self.storage = storage
        self.node = node
    }

    /// A tensor of `shape` with uninitialised values: the caller writes every element.
    init(uninitializedShape shape: [Int]) {
        self.init(shape: shape, storage: TensorStorage(uninitializedCount: Tensor.elementCount(shape)))
    }

    /// Creates a tensor from row-major values. - Precondition: `scalars.count` matches `shape`.
    public init(shape: [Int], scalars: [Float]) {
        Tensor.validate(shape)
        precondition(
            Tensor.elementCount(shape) == scalars.count,
            "Tensor(shape: \(shape)) needs \(Tensor.elementCount(shape)) values, got \(scalars.count)")
        let storage = TensorStorage(uninitializedCount: scalars.count)
        scalars.withUnsafeBufferPointer { source in
            if let address = source.baseAddress { storage.base.initialize(from: address, count: source.count) }
        }
        self.init(shape: shape, storage: storage)
    }

    /// A rank-1 tensor of the given values.
    public init(_ scalars: [Float]) { self.init(shape: [scalars.count], scalars: scalars) }

    /// A scalar (rank-0) tensor.
    public init(_ scalar: Float) { self.init(shape: [], scalars: [scalar]) }

    /// A tensor of `shape` with every element equal to `value`.
    public init(repeating value: Float, shape: [Int]) {
        Tensor.validate(shape)
        self.init(shape: shape, storage: TensorStorage(repeating: value, count: Tensor.elementCount(shape)))
    }

    /// A tensor of zeros.
    public static func zeros(_ shape: [Int]) -> Tensor { Tensor(repeating: 0, shape: shape) }
    /// A tensor of ones.
    public static func ones(_ shape: [Int]) -> Tensor { Tensor(repeating: 1, shape: shape) }

    /// `[0, 1, …, count−1]` as Float32.
    public static func arange(_ count: Int) -> Tensor {
        Tensor(shape: [count], scalars: (0..<count).map(Float.init))
    }

    // MARK: Shape

    /// Number of dimensions.
    public var rank: Int { shape.count }
    /// Number of elements.
    public var count: Int { storage.count }

    /// The size of `axis`; negative axes count from the end.
    public func size(_ axis: Int) -> Int { shape[normalizedAxis(axis)] }

    /// Maps a possibly negative axis to `0..<rank`. - Precondition: the axis is in range.
    public func normalizedAxis(_ axis: Int) -> Int {
        let resolved = axis < 0 ? axis + rank : axis
        precondition(resolved >= 0 && resolved < Swift.max(rank, 1), "axis \(axis) out of range for shape \(shape)")
        return resolved
    }

    static func elementCount(_ shape: [Int]) -> Int { shape.reduce(1, *) }

    static func validate(_ shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor: negative dimension in shape \(shape)")
    }

    // MARK: Values

    /// All values in row-major order.
    public var scalars: [Float] {
        Array(UnsafeBufferPointer(start: storage.base, count: count))
    }

    /// The single value of a one-element tensor.
    public var scalar: Float {
        precondition(count == 1, "Tensor.scalar needs exactly one element, shape is \(shape)")
        return storage.base[0]
    }

    /// The element at a full multi-index.
    public subscript(_ indices: Int...) -> Float {
        get { storage.base[flatIndex(indices)] }
        set {
            let offset = flatIndex(indices)
            makeUniqueForWriting()
            storage.base[offset] = newValue
        }
    }

    func flatIndex(_ indices: [Int]) -> Int {
        precondition(indices.count == rank, "Tensor: \(indices.count) indices for shape \(shape)")
        var offset = 0
        for (axis, index) in indices.enumerated() {
            precondition(index >= 0 && index < shape[axis], "Tensor: index \(indices) out of bounds for shape \(shape)")
            offset = offset * shape[axis] + index
        }
        return offset
    }

    /// Calls `body` with the contiguous row-major values.
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.base, count: storage.count))
    }

    /// Calls `body` with writable values. Makes the storage unique first (copy-on-write) and detaches
    /// the tensor from the gradient tape: an in-place edit is not differentiable.
    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        makeUniqueForWriting()
        return try body(UnsafeMutableBufferPointer(start: storage.base, count: storage.count))
    }

    mutating func makeUniqueForWriting() {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
        node = nil
    }

    // MARK: Gradient tape

    /// True when this tensor is recorded on the gradient tape (it depends on a trainable parameter).
    public var isRecorded: Bool { node != nil }

    /// The same values, cut from the gradient tape.
    public func detached() -> Tensor { Tensor(shape: shape, storage: storage) }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let preview = scalars.prefix(8).map { String(format: "%.4g", Double($0)) }.joined(separator: ", ")
        return "Tensor(shape: \(shape), [\(preview)\(count > 8 ? ", …" : "")])"
    }
}

extension Tensor: Equatable {
    /// Exact equality of shape and values (NaN ≠ NaN); use tolerances to compare computed values.
    public static func == (lhs: Tensor, rhs: Tensor) -> Bool {
        lhs.shape == rhs.shape && (lhs.storage === rhs.storage || lhs.scalars == rhs.scalars)
    }
}

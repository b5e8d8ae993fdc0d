import Synchronization

/// The heap buffer behind a `Tensor`: `count` contiguous Float32 values.
///
/// Storage is a reference type so that tensors can share it; `Tensor` gives value semantics on top
/// with copy-on-write (`isKnownUniquelyReferenced`). Every allocation and release is counted in
/// `MemoryStatistics`, which is how benchmarks show that inference mode allocates no tape memory.
public final class TensorStorage: @unchecked Sendable {
    // @unchecked: the buffer is only written through `Tensor`'s mutating API, which first makes the
    // storage uniquely referenced; shared storage is read-only.
    public let count: Int
    let base: UnsafeMutablePointer<Float>

    /// Allocates `count` uninitialised values; callers write every element before reading.
    init(uninitializedCount count: Int) {
        precondition(count >= 0, "TensorStorage: negative element count \(count)")
        self.count = count
        self.base = .allocate(capacity: Swift.max(count, 1))
        MemoryStatistics.recordAllocation(bytes: count * MemoryLayout<Float>.stride)
    }

    convenience init(repeating value: Float, count: Int) {
        self.init(uninitializedCount: count)
        base.initialize(repeating: value, count: count)
    }

    func copy() -> TensorStorage {
        let result = TensorStorage(uninitializedCount: count)
        result.base.initialize(from: base, count: count)
        return result
    }

    deinit {
        base.deallocate()
        MemoryStatistics.recordRelease(bytes: count * MemoryLayout<Float>.stride)
    }
}

/// Process-wide counters of tensor memory: live bytes, the peak since the last reset, and the
/// number of allocations. Diagnostics only (benchmarks, tests); nothing reads them to decide.
public enum MemoryStatistics {
    private static let live = Atomic<Int>(0)
    private static let peak = Atomic<Int>(0)
    private static let allocations = Atomic<Int>(0)

    static func recordAllocation(bytes: Int) {
        let now = live.wrappingAdd(bytes, ordering: .relaxed).newValue
        allocations.wrappingAdd(1, ordering: .relaxed)
        var seen = peak.load(ordering: .relaxed)
        while now > seen {
            let (exchanged, original) = peak.compareExchange(
                expected: seen, desired: now, ordering: .relaxed)
            if exchanged { break }
            seen = original
        }
    }

    static func recordRelease(bytes: Int) {
        live.wrappingSubtract(bytes, ordering: .relaxed)
    }

    /// Bytes held by live tensor storages.
    public static var liveBytes: Int { live.load(ordering: .relaxed) }
    /// Highest `liveBytes` since the last `resetPeak()`.
    public static var peakBytes: Int { peak.load(ordering: .relaxed) }
    /// Number of storage allocations since the process started.
    public static var allocationCount: Int { allocations.load(ordering: .relaxed) }
    /// Sets the peak to the current live byte count.
    public static func resetPeak() { peak.store(live.load(ordering: .relaxed), ordering: .relaxed) }
}

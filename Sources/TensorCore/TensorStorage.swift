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
    private let capacity: Int

    /// Allocates `count` uninitialised values; callers write every element before reading.
    init(uninitializedCount count: Int) {
        precondition(count >= 0, "TensorStorage: negative element count \(count)")
        self.count = count
        (base, capacity) = StoragePool.allocate(count)
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
        StoragePool.release(base, capacity: capacity)
        MemoryStatistics.recordRelease(bytes: count * MemoryLayout<Float>.stride)
    }
}

/// A cache of freed large buffers, reused by later allocations of the same size class.
///
/// A training step allocates the same large activations every iteration; without a cache each
/// one is a fresh `mmap` whose pages fault and are zeroed on first touch (seen as a tenth of the
/// transformer step in a profile). Buffers of at least `minimumCount` floats are rounded up to a
/// multiple of `granule` floats and kept on release, up to `limitBytes` in total; smaller ones go
/// straight to `malloc`. Like `malloc`, the cache is shared by the process and thread-safe; it
/// holds no tensor data, only free memory.
public enum StoragePool {
    static let minimumCount = 1 << 14
    static let granule = 1 << 12
    /// Most bytes kept in the cache.
    public static let limitBytes = 1 << 30

    // @unchecked: the pointers are free memory, handed to one owner at a time under the lock.
    private struct State: @unchecked Sendable {
        var free: [Int: [UnsafeMutablePointer<Float>]] = [:]
        var cachedBytes = 0
    }
    private static let state = Mutex(State())

    static func allocate(_ count: Int) -> (UnsafeMutablePointer<Float>, Int) {
        guard count >= minimumCount else { return (.allocate(capacity: Swift.max(count, 1)), 0) }
        let capacity = sizeClass(count)
        let cached: UnsafeMutablePointer<Float>? = state.withLock { state in
            guard let pointer = state.free[capacity]?.popLast() else { return nil }
            state.cachedBytes -= capacity * MemoryLayout<Float>.stride
            return pointer
        }
        return (cached ?? .allocate(capacity: capacity), capacity)
    }

    /// The capacity a buffer of `count` floats gets: whole granules, rounded up to one of four
    /// steps per power of two (1, 1.25, 1.5 or 1.75 × 2ᵏ granules), so that the shapes that change
    /// from step to step (the subsets of tokens a model is trained on) share size classes, at
    /// most a quarter more memory.
    static func sizeClass(_ count: Int) -> Int {
        let granules = (count + granule - 1) / granule
        guard granules > 4 else { return granules * granule }
        let step = 1 << (Int.bitWidth - 1 - granules.leadingZeroBitCount - 2)
        return (granules + step - 1) / step * step * granule
    }

    static func release(_ pointer: UnsafeMutablePointer<Float>, capacity: Int) {
        guard capacity > 0 else {
            pointer.deallocate()
            return
        }
        let kept: Bool = state.withLock { state in
            let bytes = capacity * MemoryLayout<Float>.stride
            guard state.cachedBytes + bytes <= limitBytes else { return false }
            state.free[capacity, default: []].append(pointer)
            state.cachedBytes += bytes
            return true
        }
        if !kept { pointer.deallocate() }
    }

    /// Bytes of free memory held by the cache.
    public static var cachedBytes: Int { state.withLock { $0.cachedBytes } }

    /// Returns every cached buffer to the system.
    public static func releaseAll() {
        let pointers = state.withLock { state -> [UnsafeMutablePointer<Float>] in
            defer { state = State() }
            return state.free.values.flatMap { $0 }
        }
        for pointer in pointers { pointer.deallocate() }
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

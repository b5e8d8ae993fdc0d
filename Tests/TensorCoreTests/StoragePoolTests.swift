import Testing
@testable import TensorCore

@Suite("The storage pool's size classes")
struct StoragePoolTests {
    @Test("a size class holds the count, wastes at most a quarter beyond whole granules, and grows with the count")
    func sizeClasses() {
        let granule = StoragePool.granule
        var previous = 0
        for count in Array(stride(from: StoragePool.minimumCount, to: 1 << 20, by: 997)) + [1 << 20, 1 << 24, (1 << 24) + 1, 37_000_000] {
            let capacity = StoragePool.sizeClass(count)
            let granules = (count + granule - 1) / granule
            #expect(capacity >= count && capacity % granule == 0, "count \(count): class \(capacity)")
            #expect(Double(capacity) <= Double(granules * granule) * 1.25, "count \(count): class \(capacity) wastes more than a quarter")
            #expect(capacity >= previous, "classes must not shrink as the count grows (\(count))")
            previous = capacity
        }
        // Sequences of 260 to 270 tokens (a pruned subset's prefill) share one class.
        let classes = Set((260...270).map { StoragePool.sizeClass(32 * 4 * $0 * $0) })
        #expect(classes.count == 1, "\(classes)")
    }

    @Test("a released large buffer is reused by a later allocation of its size class")
    func reuse() {
        // An unusual size, so that no other test running at the same time takes it first.
        let count = 5_123_457
        let (first, capacity) = StoragePool.allocate(count)
        StoragePool.release(first, capacity: capacity)
        let (second, again) = StoragePool.allocate(count + 1000)
        #expect(again == capacity && second == first)
        StoragePool.release(second, capacity: again)
    }
}

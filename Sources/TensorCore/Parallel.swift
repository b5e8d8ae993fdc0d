import Dispatch
import Foundation

/// Splits element-wise work across cores. Used only where each output element is computed
/// independently, so results do not depend on the thread count.
enum Parallel {
    /// Worker threads for element-wise kernels (OpenBLAS has its own pool for GEMM).
    static let threadCount: Int = {
        if let text = ProcessInfo.processInfo.environment["PRUNEGYM_THREADS"], let value = Int(text), value > 0 {
            return value
        }
        return max(1, min(ProcessInfo.processInfo.activeProcessorCount, 8))
    }()

    /// Below this many elements the work runs on the calling thread.
    static let minimumParallelCount = 1 << 15

    /// Calls `body` on disjoint ranges covering `0..<count`, in parallel when `count` is large.
    /// `cost` scales the threshold for work that is heavier per element.
    @inline(__always)
    static func forRanges(_ count: Int, cost: Int = 1, _ body: (Range<Int>) -> Void) {
        let chunks = min(threadCount, max(1, (count * cost) / minimumParallelCount))
        if chunks <= 1 {
            body(0..<count)
            return
        }
        let chunk = (count + chunks - 1) / chunks
        withoutActuallyEscaping(body) { body in
            let box = UncheckedBox(body)
            DispatchQueue.concurrentPerform(iterations: chunks) { index in
                let start = index * chunk
                let end = min(count, start + chunk)
                if start < end { box.value(start..<end) }
            }
        }
    }
}

/// Carries a closure into `concurrentPerform`. Unchecked because the callers hand each worker a
/// disjoint output range: there is no shared mutable state.
private struct UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

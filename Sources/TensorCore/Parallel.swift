import COpenBLAS
import Dispatch
import Foundation
import Synchronization

/// Splits element-wise and GEMM work across cores. Used only where each part writes a disjoint
/// output, so results do not depend on the thread count or on scheduling.
enum Parallel {
    /// Worker threads, the caller included (`PRUNEGYM_THREADS`, default: the active cores, ≤ 8).
    static let threadCount: Int = {
        if let text = ProcessInfo.processInfo.environment["PRUNEGYM_THREADS"], let value = Int(text), value > 0 {
            return min(value, 64)
        }
        return max(1, min(ProcessInfo.processInfo.activeProcessorCount, 8))
    }()

    /// Below this many elements (× cost) the work runs on the calling thread.
    static let minimumParallelCount = 1 << 15

    /// Calls `body` on disjoint ranges covering `0..<count`, in parallel when `count·cost` is
    /// large enough to pay for waking the workers.
    ///
    /// `cost` 1 means a memory-bound loop (one arithmetic operation per element): those always run
    /// on the caller. Measured: the serial loop is inlined with its element closure and
    /// vectorised, while a worker runs `body` as an opaque closure that calls the element closure
    /// per element — 2M multiplications took 0.22 ms on one thread and 1.5 ms on two.
    @inline(__always)
    static func forRanges(_ count: Int, cost: Int = 1, _ body: (Range<Int>) -> Void) {
        let chunks = cost <= 1 ? 1 : min(threadCount, max(1, (count * cost) / minimumParallelCount), count)
        if chunks <= 1 {
            body(0..<count)
            return
        }
        let chunk = (count + chunks - 1) / chunks
        WorkerPool.shared.run(parts: chunks) { part in
            let start = part * chunk
            let end = min(count, start + chunk)
            if start < end { body(start..<end) }
        }
    }
}

/// A persistent pool of worker threads for short parallel regions.
///
/// `run(parts:_:)` publishes a job, wakes the workers, takes parts itself, and returns when every
/// part is done. Idle workers spin for a short while (0.5 ms) before sleeping on a condition
/// variable, as OpenMP runtimes do, so back-to-back kernels do not pay a thread wake-up each. A
/// nested or concurrent `run` (from inside a part, or from a second thread while the pool is
/// busy) runs its parts serially on the caller instead of waiting.
final class WorkerPool: @unchecked Sendable {
    // @unchecked: shared state is either atomic or guarded by `lock`.
    static let shared = WorkerPool(workers: Parallel.threadCount - 1)

    /// One parallel region: parts are claimed with an atomic counter; stale workers that hold an
    /// old job only ever see its counter past the end.
    final class Job: @unchecked Sendable {
        /// Read only by a worker that claimed a part below `parts`; cleared by the caller after
        /// every part is done, so the non-escaping closure does not outlive `run`.
        var body: ((Int) -> Void)?
        let parts: Int
        let next = Atomic<Int>(0)
        let remaining: Atomic<Int>
        init(body: @escaping (Int) -> Void, parts: Int) {
            self.body = body
            self.parts = parts
            remaining = Atomic(parts)
        }

        /// Claims and runs parts until none are left.
        func work() {
            while true {
                let part = next.wrappingAdd(1, ordering: .relaxed).oldValue
                if part >= parts { return }
                body!(part)
                remaining.wrappingSubtract(1, ordering: .releasing)
            }
        }
    }

    private let generation = Atomic<Int>(0)
    private let busy = Atomic<Bool>(false)
    private let condition = NSCondition()
    private var job: Job?  // guarded by `condition`
    private let workerCount: Int
    private static let spinIterations = 20_000
    /// How long an idle worker spins before sleeping. Longer than the gap between the kernels of
    /// one training step, so a step's parallel regions do not pay a futex wake-up each.
    private static let spinNanoseconds: UInt64 = 500_000

    init(workers: Int) {
        workerCount = max(0, workers)
        for index in 0..<workerCount {
            let thread = Thread { [unowned self] in self.workerLoop() }
            thread.name = "prunegym-worker-\(index)"
            thread.start()
        }
    }

    func run(parts: Int, _ body: (Int) -> Void) {
        prunegym_flush_subnormals()
        guard workerCount > 0, parts > 1, busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            for part in 0..<parts { body(part) }
            return
        }
        defer { busy.store(false, ordering: .releasing) }
        withoutActuallyEscaping(body) { body in
            let job = Job(body: body, parts: parts)
            condition.lock()
            self.job = job
            generation.wrappingAdd(1, ordering: .releasing)
            condition.broadcast()
            condition.unlock()
            job.work()
            var spins = 0
            while job.remaining.load(ordering: .acquiring) > 0 {
                spins += 1
                if spins > Self.spinIterations { sched_yield() }
            }
            // The body must not outlive this call: drop the references to it.
            job.body = nil
            condition.lock()
            if self.job === job { self.job = nil }
            condition.unlock()
        }
    }

    private func workerLoop() {
        prunegym_flush_subnormals()
        var seen = 0
        while true {
            let deadline = DispatchTime.now().uptimeNanoseconds + Self.spinNanoseconds
            var spins = 0
            while generation.load(ordering: .acquiring) == seen {
                spins &+= 1
                if spins & 255 == 0 && DispatchTime.now().uptimeNanoseconds > deadline { break }
            }
            condition.lock()
            while generation.load(ordering: .acquiring) == seen { condition.wait() }
            seen = generation.load(ordering: .acquiring)
            let current = job
            condition.unlock()
            current?.work()
        }
    }
}

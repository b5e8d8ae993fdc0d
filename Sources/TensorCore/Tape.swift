import Synchronization

/// One recorded operation on the gradient tape.
///
/// Reverse-mode autodiff: every operation whose inputs are recorded creates a node holding its
/// parents and a pullback that maps the gradient of its output to gradients of its inputs. The
/// tape is the graph reachable from a result; `backward()` orders it topologically (a Wengert
/// list) and runs the pullbacks in reverse. A leaf node belongs to a `Parameter` and accumulates.
public final class TapeNode {
    /// `nil` for an input that is not recorded (data, frozen parameters).
    var parents: [TapeNode?]
    /// Maps the output gradient to one gradient per parent (`nil` where `needs[i]` is false).
    var pullback: ((_ gradient: Tensor, _ needs: [Bool]) -> [Tensor?])?
    /// Accumulated gradient: for a leaf, the parameter's gradient; otherwise transient.
    var gradient: Tensor?
    let isLeaf: Bool

    init(leaf: ()) {
        parents = []
        pullback = nil
        isLeaf = true
        TapeNode.created.wrappingAdd(1, ordering: .relaxed)
    }

    init(parents: [TapeNode?], pullback: @escaping (_ gradient: Tensor, _ needs: [Bool]) -> [Tensor?]) {
        self.parents = parents
        self.pullback = pullback
        isLeaf = false
        TapeNode.created.wrappingAdd(1, ordering: .relaxed)
    }

    private static let created = Atomic<Int>(0)
    /// Nodes created since the process started (tests and benchmarks use it to show that
    /// inference mode records nothing).
    public static var createdCount: Int { created.load(ordering: .relaxed) }

    func accumulate(_ incoming: Tensor) {
        if gradient == nil {
            gradient = incoming.detached()
        } else {
            gradient!.addInPlace(incoming)
        }
    }

    /// Accumulates the gradient of a slice into its place in this node's gradient of `shape`,
    /// seen as `[outer, n, inner]`: `incoming` is `[outer, range.count, inner]`. It is what
    /// `accumulate` of the slice's gradient padded with zeros gives, without the padding — a
    /// batch sliced into 32 pieces made 32 full-size gradients of zeros and added each in full.
    func accumulate(slice incoming: Tensor, of shape: [Int], outer: Int, n: Int, inner: Int, range: Range<Int>) {
        let rowLength = range.count * inner
        let source = incoming.storage.base
        if gradient == nil {
            let grad = Tensor(repeating: 0, shape: shape)
            let target = grad.storage.base
            for o in 0..<outer {
                (target + (o * n + range.lowerBound) * inner).update(from: source + o * rowLength, count: rowLength)
            }
            gradient = grad
        } else {
            gradient!.makeUniqueForWriting()
            let target = gradient!.storage.base
            for o in 0..<outer {
                let row = target + (o * n + range.lowerBound) * inner, part = source + o * rowLength
                for i in 0..<rowLength { row[i] += part[i] }
            }
        }
    }
}

/// Controls whether operations are recorded for differentiation.
///
/// Recording is on by default and is scoped, not global: `withoutRecording` turns it off for the
/// work inside its closure on the current task or thread (a `@TaskLocal`).
public enum GradientTape {
    @TaskLocal public static var isRecording: Bool = true

    /// Runs `body` in inference mode: no tape nodes are created and no gradient memory is kept.
    public static func withoutRecording<R>(_ body: () throws -> R) rethrows -> R {
        try $isRecording.withValue(false, operation: body)
    }
}

/// Runs `body` in inference mode (see `GradientTape.withoutRecording`).
public func withInferenceMode<R>(_ body: () throws -> R) rethrows -> R {
    try GradientTape.withoutRecording(body)
}

extension Tensor {
    /// Attaches a tape node to `result` when any input is recorded and the tape is on.
    static func record(
        _ result: inout Tensor, _ inputs: Tensor...,
        pullback: @escaping (_ gradient: Tensor, _ needs: [Bool]) -> [Tensor?]
    ) {
        record(&result, inputs: inputs, pullback: pullback)
    }

    /// Array form of `record` for operations with a variable number of inputs (concat, stack).
    static func record(
        _ result: inout Tensor, inputs: [Tensor],
        pullback: @escaping (_ gradient: Tensor, _ needs: [Bool]) -> [Tensor?]
    ) {
        guard willRecord(inputs) else { return }
        result.node = TapeNode(parents: inputs.map(\.node), pullback: pullback)
    }

    /// Whether `record` with these inputs attaches a node: some input is recorded and the tape is
    /// on. Kernels ask it first to skip what only a backward pass reads.
    static func willRecord(_ inputs: [Tensor?]) -> Bool {
        inputs.contains { $0?.node != nil } && GradientTape.isRecording
    }

    /// Back-propagates from this tensor: accumulates d(self)/d(parameter) into every parameter it
    /// depends on. Without `seed` the tensor must be a scalar (the seed is 1). The recorded graph is
    /// freed as it is consumed; calling `backward()` twice on the same graph is a programmer error.
    ///
    /// - Complexity: one pullback per recorded operation, in reverse topological order.
    public func backward(seed: Tensor? = nil) {
        guard let root = node else {
            preconditionFailure("backward(): the tensor is not recorded on the gradient tape (no parameter in its history, or it was computed in inference mode)")
        }
        let seedGradient: Tensor
        if let seed {
            precondition(seed.shape == shape, "backward(seed:): seed shape \(seed.shape) differs from tensor shape \(shape)")
            seedGradient = seed
        } else {
            precondition(count == 1, "backward(): call it on a scalar loss (shape is \(shape)) or pass a seed")
            seedGradient = Tensor(repeating: 1, shape: shape)
        }
        let order = Tensor.topologicalOrder(from: root)
        root.accumulate(seedGradient)
        // Pullbacks compute plain tensors: no higher-order graph is recorded.
        GradientTape.withoutRecording { Tensor.runPullbacks(order) }
    }

    private static func runPullbacks(_ order: [TapeNode]) {
        for node in order.reversed() {
            guard !node.isLeaf else { continue }
            guard let gradient = node.gradient else {
                // Unreached (its output did not influence the root): still free it.
                node.parents = []
                node.pullback = nil
                continue
            }
            guard let pullback = node.pullback else {
                preconditionFailure("backward(): this graph was already consumed by an earlier backward()")
            }
            let needs = node.parents.map { $0 != nil }
            let parentGradients = pullback(gradient, needs)
            for (parent, parentGradient) in zip(node.parents, parentGradients) {
                if let parent, let parentGradient { parent.accumulate(parentGradient) }
            }
            // Free the tape as it is consumed: captured activations go with the pullback.
            node.gradient = nil
            node.pullback = nil
            node.parents = []
        }
    }

    /// Nodes reachable from `root`, parents before children (iterative DFS post-order).
    static func topologicalOrder(from root: TapeNode) -> [TapeNode] {
        var order: [TapeNode] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(TapeNode, Int)] = [(root, 0)]
        visited.insert(ObjectIdentifier(root))
        while let (node, next) = stack.popLast() {
            if next < node.parents.count {
                stack.append((node, next + 1))
                if let parent = node.parents[next], visited.insert(ObjectIdentifier(parent)).inserted {
                    stack.append((parent, 0))
                }
            } else {
                order.append(node)
            }
        }
        return order
    }
}

/// A trainable tensor: the leaf of the gradient tape.
///
/// Layers hold parameters; `tensor` returns the value attached to the tape (when recording and
/// `requiresGradient`), so operations on it are differentiated; `gradient` accumulates across
/// `backward()` calls until `zeroGradient()`.
public final class Parameter: @unchecked Sendable {
    // @unchecked: a parameter is owned by one model, trained on one thread at a time.
    /// The current value. Setting it keeps the accumulated gradient.
    public var value: Tensor {
        didSet { value.node = nil }
    }
    /// When false the parameter is frozen: it is used as a constant and gets no gradient.
    public var requiresGradient: Bool
    let leaf = TapeNode(leaf: ())

    /// A trainable tensor (a leaf of the tape when `requiresGradient`).
    public init(_ value: Tensor, requiresGradient: Bool = true) {
        self.value = value.detached()
        self.requiresGradient = requiresGradient
    }

    /// The value, recorded on the tape as this parameter's leaf.
    public var tensor: Tensor {
        guard requiresGradient, GradientTape.isRecording else { return value }
        return Tensor(shape: value.shape, storage: value.storage, node: leaf)
    }

    /// The gradient accumulated by `backward()` calls since the last `zeroGradient()`, if any.
    public var gradient: Tensor? {
        get { leaf.gradient }
        set { leaf.gradient = newValue?.detached() }
    }

    /// Forgets the accumulated gradient.
    public func zeroGradient() { leaf.gradient = nil }

    /// The value's shape.
    public var shape: [Int] { value.shape }
}

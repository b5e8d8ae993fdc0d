import Testing
@testable import TensorCore
import TestSupport

@Suite("Reverse-mode tape")
struct AutodiffTests {
    @Test("gradients accumulate across backward calls until zeroGradient")
    func accumulation() {
        let w = Parameter(Tensor([1, 2, 3]))
        (w.tensor * w.tensor).sum().backward()
        #expect(w.gradient?.scalars == [2, 4, 6])
        (w.tensor * 3).sum().backward()
        #expect(w.gradient?.scalars == [5, 7, 9])
        w.zeroGradient()
        #expect(w.gradient == nil)
    }

    @Test("a parameter used twice in one graph gets both contributions")
    func sharedUse() {
        let w = Parameter(Tensor(shape: [2, 2], scalars: [1, 2, 3, 4]))
        let x = w.tensor
        Tensor.matmul(x, x).sum().backward()
        // d/dW Σ(W·W) = 1·Wᵀ + Wᵀ·1
        let ones = Tensor.ones([2, 2])
        let expected = Tensor.matmul(ones, w.value, transposeB: true) + Tensor.matmul(w.value, ones, transposeA: true)
        #expect(w.gradient == expected)
    }

    // These checks look at the graph itself, not at process-wide counters: suites run in
    // parallel, so global node or byte counts move under other tests.
    @Test("inference mode records no tape node and keeps no gradient memory")
    func inferenceMode() {
        let w = Parameter(Tensor.ones([16, 16]))
        let (hidden, y) = withInferenceMode {
            let hidden = Tensor.matmul(w.tensor, w.tensor).relu()
            return (hidden, (hidden * 2).sum())
        }
        #expect(hidden.node == nil && y.node == nil)
        #expect(!y.isRecorded)
        let z = (Tensor.matmul(w.tensor, w.tensor).relu() * 2).sum()
        #expect(z.isRecorded)
        #expect(w.gradient == nil)
    }

    @Test("frozen parameters and plain data get no gradient")
    func frozen() {
        let w = Parameter(Tensor([1, 2]), requiresGradient: false)
        let v = Parameter(Tensor([3, 4]))
        (w.tensor * v.tensor + Tensor([1, 1])).sum().backward()
        #expect(w.gradient == nil)
        #expect(v.gradient?.scalars == [1, 2])
    }

    @Test("the tape is freed after backward: pullbacks and the activations they hold are released")
    func tapeFreed() {
        let w = Parameter(Tensor.ones([64, 64]))
        weak var activation: TensorStorage?
        let loss: Tensor
        do {
            let hidden = Tensor.matmul(w.tensor, w.tensor).tanh()  // its output is kept by tanh's pullback
            activation = hidden.storage
            loss = (hidden * 3).sum()
        }
        #expect(activation != nil)
        loss.backward()
        #expect(activation == nil, "tanh's saved output should be freed with the tape")
        #expect(loss.node?.pullback == nil && loss.node?.parents.isEmpty == true)
        #expect(w.gradient?.shape == [64, 64])
    }

    @Test("backward with an explicit seed on a non-scalar")
    func seeded() {
        let w = Parameter(Tensor([1, 2, 3]))
        (w.tensor * 2).backward(seed: Tensor([1, 0, -1]))
        #expect(w.gradient?.scalars == [2, 0, -2])
    }
}

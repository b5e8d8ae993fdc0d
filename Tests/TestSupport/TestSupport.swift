import Foundation
import Testing
import TensorCore

/// The repository's `Tests/Fixtures` folder (found from this file's path, so tests need no bundle).
public enum Fixtures {
    public static let directory: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")

    public static func url(_ relativePath: String) -> URL { directory.appendingPathComponent(relativePath) }
}

/// The folder holding every temporary directory of this test process; it is removed when the
/// process exits, so repeated `swift test` runs leave nothing behind in the temporary folder.
let temporaryRoot: URL = {
    let root = FileManager.default.temporaryDirectory
        .appendingPathComponent("prunegym-tests-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString.prefix(8))")
    atexit { try? FileManager.default.removeItem(at: temporaryRoot) }
    return root
}()

/// A fresh temporary directory (inside `temporaryRoot`, removed at exit; a test may remove it sooner).
public func makeTemporaryDirectory(_ label: String = "prunegym-test") throws -> URL {
    let url = temporaryRoot.appendingPathComponent("\(label)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// The first index where |a − b| > absolute + relative·|b|, with the values, or nil.
public func firstMismatch(_ actual: [Float], _ expected: [Float], absolute: Float, relative: Float) -> (Int, Float, Float)? {
    for (i, (a, b)) in zip(actual, expected).enumerated() {
        if a.isNaN || b.isNaN || Swift.abs(a - b) > absolute + relative * Swift.abs(b) { return (i, a, b) }
    }
    return nil
}

/// Expects equal shapes and values within `absolute + relative·|expected|`, reporting at the caller.
public func expectClose(
    _ actual: Tensor, _ expected: Tensor, absolute: Float = 1e-5, relative: Float = 1e-5,
    _ comment: @autoclosure () -> String = "", sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(actual.shape == expected.shape, "shape \(actual.shape) ≠ \(expected.shape) \(comment())", sourceLocation: sourceLocation)
    guard actual.shape == expected.shape else { return }
    expectClose(actual.scalars, expected.scalars, absolute: absolute, relative: relative, comment(), sourceLocation: sourceLocation)
}

/// Expects equal counts and values within tolerance, reporting at the caller.
public func expectClose(
    _ actual: [Float], _ expected: [Float], absolute: Float = 1e-5, relative: Float = 1e-5,
    _ comment: @autoclosure () -> String = "", sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(actual.count == expected.count, "count \(actual.count) ≠ \(expected.count) \(comment())", sourceLocation: sourceLocation)
    if let (index, a, b) = firstMismatch(actual, expected, absolute: absolute, relative: relative) {
        Issue.record("value [\(index)] = \(a), expected \(b) (±\(absolute) + \(relative)·|x|) \(comment())", sourceLocation: sourceLocation)
    }
}

/// Seeded generators for tests: the same name always gives the same stream.
public func testGenerator(_ seed: UInt64 = 42) -> SeededGenerator { SeededGenerator(seed: seed) }

/// Finite-difference gradient checking.
///
/// The function's output is reduced to the scalar L = Σ f(x)ᵢ·rᵢ with fixed random weights r
/// (so every output element matters), accumulated in double precision. Analytic gradients come
/// from `backward()`; numeric ones from central differences (L(x+h) − L(x−h))/2h. Because the
/// function itself runs in Float32, `h` is relatively large (1e-2 by default) and the comparison
/// uses |a − n| ≤ absolute + relative·max(|a|, |n|).
public enum GradientCheck {
    public struct Result: CustomStringConvertible {
        public var worstError: Float = 0
        public var worstInput = 0
        public var worstIndex = 0
        public var analytic: Float = 0
        public var numeric: Float = 0
        public var description: String {
            "worst mismatch at input \(worstInput)[\(worstIndex)]: analytic \(analytic), numeric \(numeric)"
        }
    }

    /// Checks the gradients of `function` with respect to every input.
    public static func check(
        _ inputs: [Tensor], step: Float = 1e-2, absolute: Float = 2e-3, relative: Float = 2e-2,
        seed: UInt64 = 7, _ function: ([Tensor]) -> Tensor,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        var generator = SeededGenerator(seed: seed)
        let parameters = inputs.map { Parameter($0) }
        let output = function(parameters.map(\.tensor))
        let weights = Tensor.uniform(output.shape, low: -1, high: 1, using: &generator)
        #expect(output.isRecorded, "the function's output is not on the tape", sourceLocation: sourceLocation)
        guard output.isRecorded else { return }
        (output * weights).sum().backward()

        func loss(_ values: [Tensor]) -> Double {
            let y = GradientTape.withoutRecording { function(values) }
            return zip(y.scalars, weights.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        var result = Result()
        var failed = false
        for (inputIndex, input) in inputs.enumerated() {
            let analytic = parameters[inputIndex].gradient?.scalars ?? [Float](repeating: 0, count: input.count)
            for i in 0..<input.count {
                var plus = inputs, minus = inputs
                plus[inputIndex].withUnsafeMutableBufferPointer { $0[i] += step }
                minus[inputIndex].withUnsafeMutableBufferPointer { $0[i] -= step }
                let numeric = Float((loss(plus) - loss(minus)) / (2 * Double(step)))
                let error = Swift.abs(analytic[i] - numeric)
                let bound = absolute + relative * Swift.max(Swift.abs(analytic[i]), Swift.abs(numeric))
                if error > bound || analytic[i].isNaN {
                    failed = true
                }
                if error > result.worstError || analytic[i].isNaN {
                    result = Result(worstError: error, worstInput: inputIndex, worstIndex: i, analytic: analytic[i], numeric: numeric)
                }
            }
        }
        #expect(!failed, "gradient check failed: \(result)", sourceLocation: sourceLocation)
    }
}

extension GradientCheck {
    /// Checks the gradients of `function` (which reads `parameters`) with respect to each
    /// parameter, perturbing parameter values in place. Use it for layers and models.
    public static func check(
        parameters: [Parameter], step: Float = 1e-2, absolute: Float = 2e-3, relative: Float = 2e-2,
        seed: UInt64 = 7, _ function: () -> Tensor, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        var generator = SeededGenerator(seed: seed)
        for parameter in parameters { parameter.zeroGradient() }
        let output = function()
        let weights = Tensor.uniform(output.shape, low: -1, high: 1, using: &generator)
        (output * weights).sum().backward()
        func loss() -> Double {
            let y = GradientTape.withoutRecording { function() }
            return zip(y.scalars, weights.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        var failures: [String] = []
        for (p, parameter) in parameters.enumerated() {
            let analytic = parameter.gradient?.scalars ?? [Float](repeating: 0, count: parameter.value.count)
            let original = parameter.value
            for i in 0..<original.count {
                var plus = original, minus = original
                plus.withUnsafeMutableBufferPointer { $0[i] += step }
                minus.withUnsafeMutableBufferPointer { $0[i] -= step }
                parameter.value = plus
                let up = loss()
                parameter.value = minus
                let down = loss()
                let numeric = Float((up - down) / (2 * Double(step)))
                let error = Swift.abs(analytic[i] - numeric)
                if error > absolute + relative * Swift.max(Swift.abs(analytic[i]), Swift.abs(numeric)) || analytic[i].isNaN {
                    failures.append("parameter \(p)[\(i)]: analytic \(analytic[i]), numeric \(numeric)")
                }
            }
            parameter.value = original
        }
        #expect(failures.isEmpty, "gradient check failed at \(failures.count) entries: \(failures.prefix(5))", sourceLocation: sourceLocation)
    }
}

/// A training run's recorded configuration (`config.json`, or a shipped model's
/// `training/run-config.json`): the configuration's own JSON and, apart, its provenance object
/// (`prunegym`: version, commit, command), which every run records — a file without it throws.
public func recordedRun(_ file: URL) throws -> (configuration: Data, provenance: [String: Any]) {
    guard var object = try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any] else {
        throw FileError(path: file.path, reason: "not a JSON object")
    }
    guard let provenance = object.removeValue(forKey: "prunegym") as? [String: Any] else {
        throw FileError(path: file.path, reason: "no provenance object 'prunegym' (version, commit, command)")
    }
    return (try JSONSerialization.data(withJSONObject: object), provenance)
}

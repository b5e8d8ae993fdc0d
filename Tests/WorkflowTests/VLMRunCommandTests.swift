import Foundation
import PruneGymCommands
import TensorCore
import TestSupport
import Testing

/// `prunegym vlm run` against transformers' outputs on the tiny fixture, and the inputs files it
/// refuses: each refusal names the file and the tensor, and none crashes.
@Suite("vlm run")
struct VLMRunCommandTests {
    static let model = Fixtures.url("hf-llava-tiny")
    static let golden = Fixtures.url("hf-llava-tiny/golden.safetensors")

    @Test("writes image_features, logits and pruned_logits within 1e-4 of transformers', and its generated_ids")
    func matchesTransformers() throws {
        let directory = try makeTemporaryDirectory("vlm-run")
        let out = directory.appendingPathComponent("out.safetensors")
        try PruneGymCommandLine.run(["vlm", "run", "--model", Self.model.path, "--inputs", Self.golden.path, "--out", out.path])
        let ours = try SafeTensorsFile(contentsOf: out), theirs = try SafeTensorsFile(contentsOf: Self.golden)
        for name in ["image_features", "logits", "pruned_logits"] {
            expectClose(try ours.tensor(name), try theirs.tensor(name), absolute: 1e-4, relative: 0)
        }
        #expect(try ours.integers("generated_ids").values == theirs.integers("generated_ids").values)
        #expect(try ours.integers("generated_ids").shape == [2, 5])
    }

    @Test("an inputs file that does not fit the model is refused, naming the file and the tensor")
    func refusals() throws {
        let directory = try makeTemporaryDirectory("vlm-run-bad")
        let golden = try SafeTensorsFile(contentsOf: Self.golden)
        let pixels = try golden.tensor("pixel_values"), ids = try golden.integers("input_ids"), keep = try golden.integers("keep_indices")
        let textOnly = ids.values.map { $0 == 119 ? 7 : $0 }
        let cases: [(String, Tensor, (values: [Int], shape: [Int]), [Int], String)] = [
            ("small-image", Tensor.zeros([2, 3, 8, 8]), ids, keep.values, "pixel_values must be [B, 3, 32, 32]"),
            ("one-image", pixels.sliced(alongAxis: 0, 0..<1), ids, keep.values, "pixel_values hold 1 images and input_ids 2 sequences"),
            ("no-image-tokens", pixels, (textOnly, ids.shape), keep.values, "input_ids row 0 holds no image token (id 119)"),
            ("keep-outside", pixels, ids, [0, 16], "keep index 16 outside 0..<16"),
            ("vocabulary", pixels, (ids.values.map { $0 == 52 ? 500 : $0 }, ids.shape), keep.values, "token id 500 is outside the vocabulary"),
        ]
        for (name, pixels, ids, keep, expected) in cases {
            var writer = SafeTensorsWriter()
            writer.add("pixel_values", pixels)
            writer.add("input_ids", integers: ids.values, shape: ids.shape)
            writer.add("keep_indices", integers: keep, shape: [keep.count])
            let inputs = directory.appendingPathComponent("\(name).safetensors"), out = directory.appendingPathComponent("\(name)-out.safetensors")
            try writer.write(to: inputs)
            let error = #expect(throws: (any Error).self, "\(name)") {
                try PruneGymCommandLine.run(["vlm", "run", "--model", Self.model.path, "--inputs", inputs.path, "--out", out.path])
            }
            let text = error.map { String(describing: $0) } ?? ""
            #expect(text.contains(inputs.path) && text.contains(expected), "\(name): \(text)")
            #expect(!FileManager.default.fileExists(atPath: out.path), "\(name): wrote an output")
        }
    }
}

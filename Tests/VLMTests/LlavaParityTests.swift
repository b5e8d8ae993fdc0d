import Foundation
import TensorCore
import TestSupport
import Testing
import VLM

@Suite("LLaVA matches transformers on the tiny checkpoint")
struct LlavaParityTests {
    /// a: transformers 5 config, F32, `default` strategy, feature layer −2.
    /// b: transformers 4.x config (`rope_theta` 5e5 in text_config, `torch_dtype`, defaults
    ///    omitted), F16 weights, `vision_tower.vision_model.*` keys, `full` strategy, layer −1.
    static let directories = ["hf-llava-tiny", "hf-llava-tiny-b"]

    struct Golden {
        let pixels: Tensor
        let inputIDs: [[Int]]
        let keep: [Int]
        let file: SafeTensorsFile
        init(_ directory: URL) throws {
            file = try SafeTensorsFile(contentsOf: directory.appendingPathComponent("golden.safetensors"))
            pixels = try file.tensor("pixel_values")
            let ids = try file.integers("input_ids")
            inputIDs = (0..<ids.shape[0]).map { Array(ids.values[($0 * ids.shape[1])..<(($0 + 1) * ids.shape[1])]) }
            keep = try file.integers("keep_indices").values
        }
    }

    @Test("image features, logits, pruned logits within 1e-4 and generated ids equal", arguments: directories)
    func parity(name: String) throws {
        let directory = Fixtures.url(name)
        let model = try LlavaCheckpoint.load(directory)
        let golden = try Golden(directory)
        let features = model.imageFeatures(golden.pixels)
        expectClose(features, try golden.file.tensor("image_features"), absolute: 1e-4, relative: 0)
        let logits = try model(inputIDs: golden.inputIDs, pixels: golden.pixels)
        expectClose(logits, try golden.file.tensor("logits"), absolute: 1e-4, relative: 0)
        let pruned = try model.prunedLogits(prefix: golden.inputIDs.map { Array($0.prefix(4)) }, imageFeatures: features,
                                            keep: golden.keep, suffix: golden.inputIDs.map { Array($0.suffix(6)) })
        expectClose(pruned, try golden.file.tensor("pruned_logits"), absolute: 1e-4, relative: 0)
        let generated = try model.generate(inputIDs: golden.inputIDs, pixels: golden.pixels, count: 5)
        let expected = try golden.file.integers("generated_ids")
        #expect(generated.flatMap { $0 } == expected.values)
    }
}

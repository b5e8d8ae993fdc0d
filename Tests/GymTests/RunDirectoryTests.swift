import Foundation
import Gym
import TensorCore
import TestSupport
import Testing

@Suite("Run directories")
struct RunDirectoryTests {
    struct Settings: Codable, Equatable {
        var seed: UInt64
        var learningRate: Double
        var name: String
    }

    @Test("config.json holds the configuration and its provenance; reading it back ignores the provenance")
    func provenance() throws {
        let run = RunDirectory(try makeTemporaryDirectory("run-directory"))
        try run.create()
        let settings = Settings(seed: 7, learningRate: 0.0005, name: "x")
        try run.writeConfig(settings, kind: "train", command: ["train", "--seed", "7"])
        #expect(try run.readConfig(Settings.self) == settings)
        let provenance = try #require(try run.readProvenance())
        #expect(provenance.kind == "train")
        #expect(provenance.seed == 7)
        #expect(provenance.command == ["train", "--seed", "7"])
        #expect(provenance.version == PruneGymVersion.current)
        #expect(!provenance.gitCommit.isEmpty)
        #expect(provenance.openBLASKernels == BLAS.kernels && !BLAS.kernels.isEmpty)
        #expect(provenance.exponentialLanes == BLAS.exponentialLanes)
        #expect(provenance.bitDifferences(from: provenance).isEmpty)
        // A run written before release 0.7.5 has no kernels recorded.
        let old = #"{"seed": 1, "learningRate": 0.1, "name": "old", "prunegym": {"kind": "train", "version": "0.7.4", "git_commit": "abc", "seed": 1, "command": []}}"#
        try Data(old.utf8).write(to: run.configURL)
        let oldProvenance = try #require(try run.readProvenance())
        #expect(oldProvenance.version == "0.7.4" && oldProvenance.openBLASKernels == nil && oldProvenance.exponentialLanes == nil)
        #expect(oldProvenance.bitDifferences(from: provenance).isEmpty, "nothing recorded, nothing to compare")
        // An explicit seed wins over the configuration's; a run without the object has no provenance.
        try run.writeConfig(settings, kind: "sweep-cell", seed: 3, command: [])
        #expect(try run.readProvenance()?.seed == 3)
        try Data(#"{"seed": 1, "learningRate": 0.1, "name": "old"}"#.utf8).write(to: run.configURL)
        #expect(try run.readProvenance() == nil)
        #expect(try run.readConfig(Settings.self).name == "old")
    }

    @Test("a rerun names each recorded difference that changes the bits: OpenBLAS's kernels, portable code against vector kernels (8 and 16 lanes agree)")
    func bitDifferences() {
        let run = RunProvenance(kind: "tprl", seed: 0, command: [], openBLASKernels: "Cooperlake", exponentialLanes: 16)
        #expect(run.bitDifferences(from: RunProvenance(kind: "tprl", seed: 0, command: [], openBLASKernels: "Cooperlake", exponentialLanes: 8)).isEmpty)
        let kernels = run.bitDifferences(from: RunProvenance(kind: "tprl", seed: 0, command: [], openBLASKernels: "Haswell", exponentialLanes: 8))
        #expect(kernels.count == 1 && kernels[0].contains("OPENBLAS_CORETYPE=Cooperlake"))
        let portable = run.bitDifferences(from: RunProvenance(kind: "tprl", seed: 0, command: [], openBLASKernels: "Cooperlake", exponentialLanes: 4))
        #expect(portable.count == 1 && portable[0].contains("16-lane vector kernels") && portable[0].contains("without PRUNEGYM_SIMD=portable"))
        let back = RunProvenance(kind: "tprl", seed: 0, command: [], openBLASKernels: "Cooperlake", exponentialLanes: 4)
            .bitDifferences(from: RunProvenance(kind: "tprl", seed: 0, command: [], openBLASKernels: "Prescott", exponentialLanes: 16))
        #expect(back.count == 2 && back[1].contains("with PRUNEGYM_SIMD=portable"))
    }

    @Test("a damaged config.json is an error naming the file, and the key when the JSON is valid")
    func damaged() throws {
        let run = RunDirectory(try makeTemporaryDirectory("run-directory-damaged"))
        try run.create()
        try Data("{ nope".utf8).write(to: run.configURL)
        #expect {
            _ = try run.readConfig(Settings.self)
        } throws: { error in
            "\(error)".contains(run.configURL.path)
        }
        for (json, expected) in [(#"{"seed": 1, "learningRate": "fast", "name": "x"}"#, "malformed configuration: 'learningRate': "),
                                 (#"{"seed": 1, "name": "x"}"#, "malformed configuration: missing 'learningRate'"),
                                 (#"{"seed": 1, "learningRate": 0.1, "name": "x", "prunegym": {"kind": 3}}"#, "malformed `prunegym` object: "),
                                 (#"{"seed": 1, "learningRate": 0.1, "name": "x", "prunegym": 3}"#, "malformed `prunegym` object: ")] {
            try Data(json.utf8).write(to: run.configURL)
            let error = #expect(throws: (any Error).self) {
                _ = try run.readConfig(Settings.self)
                _ = try run.readProvenance()
            }
            let text = "\(error!)"
            #expect(text.contains(run.configURL.path) && text.contains(expected) && !text.contains("DecodingError"), "\(text)")
        }
    }
}

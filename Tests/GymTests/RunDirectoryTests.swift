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
        // A run written before release 0.7.5 has no kernels recorded.
        let old = #"{"seed": 1, "learningRate": 0.1, "name": "old", "prunegym": {"kind": "train", "version": "0.7.4", "git_commit": "abc", "seed": 1, "command": []}}"#
        try Data(old.utf8).write(to: run.configURL)
        let oldProvenance = try #require(try run.readProvenance())
        #expect(oldProvenance.version == "0.7.4" && oldProvenance.openBLASKernels == nil)
        // An explicit seed wins over the configuration's; a run without the object has no provenance.
        try run.writeConfig(settings, kind: "sweep-cell", seed: 3, command: [])
        #expect(try run.readProvenance()?.seed == 3)
        try Data(#"{"seed": 1, "learningRate": 0.1, "name": "old"}"#.utf8).write(to: run.configURL)
        #expect(try run.readProvenance() == nil)
        #expect(try run.readConfig(Settings.self).name == "old")
    }

    @Test("a damaged config.json is an error naming the file")
    func damaged() throws {
        let run = RunDirectory(try makeTemporaryDirectory("run-directory-damaged"))
        try run.create()
        try Data("{ nope".utf8).write(to: run.configURL)
        #expect {
            _ = try run.readConfig(Settings.self)
        } throws: { error in
            "\(error)".contains(run.configURL.path)
        }
    }
}

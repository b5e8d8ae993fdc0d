#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
import TensorCore
import Gym
import PPO

let overview = """
    prunegym — learn to prune the visual tokens of a vision-language model with RL.

    usage: prunegym <command> [options]     (prunegym <command> --help for details)

    commands:
      train         train an agent (ppo, bc, random) on an environment into a run directory
      eval          evaluate a run's latest checkpoint: mean and std of the return
      check-env     run the environment checker on a registered environment
      replay        replay recorded episodes (JSONL) through PruneGym's environments
      data          ShapesVQA: preview samples as PNG images with their questions
      quickstart    the whole TPRL recipe on the built-in model, ending with the eval-pruning table
      eval-pruning  evaluate token pruners (baselines, tprl, tprl-llm) per budget: accuracy, tokens, FLOPs, latency
      tprl          train the TPRL policy (autoencoder, demonstrations, behaviour cloning, PPO)
      sweep         a reward-ablation grid (α, β, task and efficiency terms, T_max) × agents × seeds
      report        the table and plots of a sweep directory
      rerun         reproduce a run from its directory alone (config.json records everything)
      ae            train the token autoencoder alone
      vlm           the simulator backend: train the built-in LLaVA model, run a checkpoint, evaluate it
      demo          train a small transformer on a toy task: the numeric core end to end
      inspect       validate a safetensors file and list its tensors
      --version     the release, git commit, OpenBLAS build and kernels, CPU and threads (for bug reports)

    examples:
      swift run -c release prunegym train --env CartPole-v1 --agent ppo --steps 100000 --run-dir runs/cp
      swift run -c release prunegym eval --run-dir runs/cp --episodes 20
    """

extension AgentRegistry {
    /// The agents `prunegym` trains by name (besides `bc` and `random`, which do not learn on-policy).
    public static var standard: AgentRegistry {
        var registry = AgentRegistry()
        try! registry.register(PPOAgentFactory())  // a fresh registry has no name to clash with
        return registry
    }
}

/// The registry the commands use; set once by `PruneGymCommandLine.main` before any command runs.
nonisolated(unsafe) var agentRegistry = AgentRegistry.standard

/// The `prunegym` command line as a library, so that a package can run it with its own agents
/// registered (`prunegym train --agent reinforce`, `eval-pruning --runs reinforce=DIR`).
public enum PruneGymCommandLine {
    /// Runs the command in `arguments` and exits: 0 on success, 1 (with the error on stderr) otherwise.
    public static func main(_ arguments: [String] = Array(CommandLine.arguments.dropFirst()), agents: AgentRegistry = .standard) -> Never {
        BLAS.restartWithMatchingKernels()
        // Line-buffered output, so that a log redirected to a file (`> run.log`) shows each stage
        // as it happens rather than when the buffer fills.
        setvbuf(stdout, nil, _IOLBF, 0)
        do {
            try run(arguments, agents: agents)
        } catch {
            // A Foundation file error as "PATH: reason", not as its NSError dump.
            let shown: any Error = FileError(foundation: error) ?? error
            FileHandle.standardError.write(Data("error: \(shown)\n".utf8))
            exit(1)
        }
        exit(0)
    }

    /// What `prunegym --version` prints: the release and commit, and what sets the last bits of
    /// every result on this machine — OpenBLAS's build and kernels, the CPU's vector instructions,
    /// the worker threads. Paste it into a bug report.
    public static var versionText: String {
        let coreType = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"].map { " (OPENBLAS_CORETYPE=\($0))" } ?? ""
        return """
            prunegym \(PruneGymVersion.current) (git \(GitCommit.current))
            OpenBLAS: \(BLAS.configuration)
            kernels: \(BLAS.kernels)\(coreType); CPU: \(BLAS.vectorLevelDescription)
            threads: \(BLAS.workerCount) (PRUNEGYM_THREADS); exponentials: \(BLAS.exponentialLanes) lanes (PRUNEGYM_SIMD); \
            4-, 8- and 16-wide heads: \(BLAS.fusedHeadAttention ? "fused kernels" : "OpenBLAS")
            """
    }

    /// Runs the command in `arguments`, throwing its error (for tests and embedding).
    public static func run(_ arguments: [String], agents: AgentRegistry = .standard) throws {
        agentRegistry = agents
        switch arguments.first {
        case "train": try TrainCommand.run(Array(arguments.dropFirst()))
        case "eval": try EvalCommand.run(Array(arguments.dropFirst()))
        case "check-env": try CheckEnvCommand.run(Array(arguments.dropFirst()))
        case "replay": try ReplayCommand.run(Array(arguments.dropFirst()))
        case "vlm": try VLMCommand.run(Array(arguments.dropFirst()))
        case "quickstart": try PruningCommand.quickstart(Array(arguments.dropFirst()))
        case "eval-pruning": try PruningCommand.evalPruning(Array(arguments.dropFirst()))
        case "tprl": try PruningCommand.tprl(Array(arguments.dropFirst()))
        case "ae": try PruningCommand.autoencoder(Array(arguments.dropFirst()))
        case "sweep": try SweepCommand.run(Array(arguments.dropFirst()))
        case "report": try SweepCommand.report(Array(arguments.dropFirst()))
        case "rerun": try RerunCommand.run(Array(arguments.dropFirst()))
        case "data": try DataCommand.run(Array(arguments.dropFirst()))
        case "demo": try DemoCommand.run(Array(arguments.dropFirst()))
        case "inspect": try InspectCommand.run(Array(arguments.dropFirst()))
        case nil, "--help", "-h", "help": print(overview)
        case "--version", "version": print(versionText)
        case let other?:
            let commands = ["quickstart", "eval-pruning", "tprl", "ae", "sweep", "report", "rerun", "train", "eval", "check-env", "replay", "data", "vlm", "demo", "inspect"]
            let guess = nearestName(to: other, among: commands).map { " Did you mean '\($0)'?" } ?? ""
            throw UsageError(message: "prunegym: unknown command '\(other)'.\(guess) Commands: \(commands.joined(separator: ", ")) (prunegym --help)")
        }
    }
}

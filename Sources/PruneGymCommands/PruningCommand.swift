import Foundation
import Gym
import Pruners
import TensorCore
import TokenPruning
import TPRL
import VLM

/// `prunegym eval-pruning`, `prunegym ae train`, `prunegym tprl train`, `prunegym quickstart`.
enum PruningCommand {
    static let evalHelp = """
        usage: prunegym eval-pruning [--budgets B,…] [--agents A,…] [--seeds S,…] [--questions N] [--first-question Q] [--oracle-questions N]
                                     [--split S] [--model DIR] [--policy DIR] [--llm-policy DIR] [--policies N=DIR,…] [--runs N=RUN,…]
                                     [--tprl-inference M] [--fallback-threshold P] [--adaptive-calibration N] [--versus NAME]
                                     [--latency-questions N] [--latency-rounds R] [--out DIR] [--json]

        Evaluates token pruners on the ShapesVQA test split (or --split validation) with the built-in
        model: accuracy per budget (mean ± std over seeds), % of unpruned accuracy, accuracy per question
        family, mean retained tokens, FLOPs and measured latency per answer (batch 1: encode, choose,
        answer; 48 questions, each its fastest of 3 rounds, the rounds taken in turn over every method and
        budget once the accuracies are in). FLOPs are the
        model's (vision tower, projector, prefill, answer) and, apart, the pruner's own for choosing
        (+ choosing: VisPruner's similarities, the TPRL policy's passes, a reference's extra LLM pass).
        Prints a Markdown table and a compute-matched one (each method's best accuracy among its
        budgets within each level of the two together: FastV keeps every token through its first LLM
        layer and TPRL runs a network of its own, so equal tokens are not equal compute), and writes
        results.csv, results.json, accuracy-vs-tokens.svg and accuracy-vs-flops.svg to OUT. The
        oracle runs on a smaller subset (marked *). The table's "− unpruned, paired" column compares
        each method with the unpruned model on the same questions, question by question: the
        difference in points ± its standard error, far smaller than that of either accuracy apart.

        options:
          --budgets B,…       shares of visual tokens kept (default 1.0,0.333,0.222,0.111)
          --agents A,…        of random, uniform, cls, vispruner, divprune, query, fastv, tprl, tprl-llm,
                              and the references (not efficiency methods): llm-attention (the LLM's own
                              attention after a full pass), saliency and grounding (label-informed),
                              oracle (default the methods, without references; tprl and tprl-llm when
                              their policies exist). NAME@K applies a pruner's choice after LLM layer K
                              instead of before the LLM (grounding@0; fastv@1 is FastV at layer 1).
                              NAME+fallback answers from NAME's tokens and, when the answer's
                              probability is below --fallback-threshold, again from every token (a
                              cascade; its tokens and GFLOPs count both passes): tprl-llm+fallback
                              NAME+adaptive meets each budget on average instead of on every
                              question: NAME's scores cut at the level where validation questions
                              keep k tokens on average, so a question keeps more where its scores
                              spread (cls, fastv, fastv@K, tprl, tprl-llm; a row's tokens and GFLOPs
                              are what it spent): tprl-llm+adaptive, fastv+adaptive
                              NAME+merge keeps NAME's best k − 1 tokens and merges the others
                              into a k-th, their mean, attended in proportion to how many it
                              stands for (any pruner; not with +fallback): tprl-llm+merge,
                              fastv+merge, vispruner+merge
          --fallback-threshold P  the answer probability below which NAME+fallback answers again,
                              in (0, 1] (default 0.8; choose it on --split validation)
          --adaptive-calibration N  validation questions NAME+adaptive sets each budget's cut on
                              (default 1000; it reads their scores, never their answers)
          --seeds S,…         seeds (default 0,1,2)
          --questions N       test questions per cell (default 2000); each one's visual tokens stay
                              in memory for the run, about 140 KB each (1.4 GB for 10,000)
          --first-question Q  start at the split's question Q instead of 0: e.g. --first-question 10000
                              --questions 10000 is a sample disjoint from a run of the first 10,000
          --oracle-questions N  questions for the oracle (default 100)
          --latency-questions N  questions timed one at a time per method and budget (default 48;
                              0 skips the timing: the table shows –, the CSV 0)
          --latency-rounds R  rounds over the timed questions, each question's fastest kept (default 3)
          --split S           test (default) or validation: compare recipes on validation questions
                              and keep the test split for the final figures
          --model DIR         model directory (default models/shapes-llava)
          --any-model         evaluate TPRL policies and --runs agents trained on another model than
                              DIR's (a transfer experiment); without it such a policy is refused, as
                              its tprl.json (a run's model-digest.txt) records the weight digest of
                              the model it was trained on
          --policy DIR        TPRL policy directory (default models/tprl)
          --llm-policy DIR    the policy evaluated as tprl-llm, which prunes after LLM layer 0
                              (default models/tprl-llm; train one with
                              `tprl train --config examples/tprl-llm.json --out models/tprl-llm`)
          --policies N=DIR,…  more TPRL policies to compare, each evaluated under the name N
                              (e.g. per-budget policies from `tprl train --budget B`; N+fallback=DIR
                              as a cascade); N may also appear in --agents, with any suffix
                              (N+merge, N+adaptive, N+fallback), to set its place in the table
          --tprl-inference M  how TPRL policies meet a budget of k tokens: auto (default: the one each
                              policy's training chose on validation questions, in its tprl.json), stepped
                              (top-k at each of the episode's steps, shrinking geometrically to k as the
                              demonstrations do) or first-step (the top k of the first step's logits)
          --runs N=RUN,…      agents trained on TokenPruning-v0 with `prunegym train` (any registered
                              agent: ppo, or your own), each playing its deterministic policy through
                              the episode under the name N; its retained tokens are its own choice
                              (N may also appear in --agents, to set its place in the table)
          --versus NAME       also compare every other method with NAME on the same questions (budget by
                              budget and seed by seed): the difference ± its standard error and the
                              questions lost and gained, printed and written to OUT/paired.csv
                              (e.g. --versus fastv; NAME must be one of the evaluated methods)
          --out DIR           where to write the results (default runs/eval-pruning)
          --json              print the results as JSON instead of the table

        example:
          swift run -c release prunegym eval-pruning --budgets 1.0,0.333,0.222,0.111 --agents random,cls,vispruner,fastv,tprl,tprl-llm --seeds 0,1,2
          swift run -c release prunegym eval-pruning --agents fastv,tprl-llm --seeds 0 --versus fastv
          swift run -c release prunegym eval-pruning --agents tprl-llm,tprl-llm+merge --seeds 0 --versus tprl-llm
        """

    static func evalPruning(_ arguments: [String]) throws {
        let args = try Arguments(command: "eval-pruning", arguments, flags: ["json", "any-model"],
                                 options: ["budgets", "agents", "seeds", "questions", "oracle-questions", "split", "model", "policy", "llm-policy", "policies", "runs",
                                           "tprl-inference", "out", "latency-questions", "latency-rounds", "fallback-threshold", "versus", "first-question", "adaptive-calibration"])
        if args.flag("help") { print(evalHelp); return }
        let budgets = try list(args.string("budgets", default: "1.0,0.333,0.222,0.111"), "budgets",
                               expected: "fractions of the visual tokens in (0, 1], e.g. 1.0,0.333,0.111") { Double($0).flatMap { $0 > 0 && $0 <= 1 ? $0 : nil } }
        let seeds = try list(args.string("seeds", default: "0,1,2"), "seeds", expected: "non-negative integers, e.g. 0,1,2") { UInt64($0) }
        let questions = try args.integer("questions", default: 2000, range: 1...1_000_000)
        let firstQuestion = try args.integer("first-question", default: 0, range: 0...100_000_000)
        let oracleQuestions = try args.integer("oracle-questions", default: 100, range: 1...1_000_000)
        let latencyQuestions = try args.integer("latency-questions", default: 48, range: 0...1_000_000)
        let latencyRounds = try args.integer("latency-rounds", default: 3, range: 1...100)
        let fallbackText = args.string("fallback-threshold", default: "0.8")
        guard let fallbackThreshold = Float(fallbackText), fallbackThreshold > 0 && fallbackThreshold <= 1 else {
            throw UsageError(message: "--fallback-threshold: expected an answer probability in (0, 1], e.g. 0.8, got '\(fallbackText)'")
        }
        let adaptiveCalibration = try args.integer("adaptive-calibration", default: 1000, range: 1...1_000_000)
        let inference = args.string("tprl-inference", default: "auto")
        guard ["auto", "stepped", "first-step"].contains(inference) else {
            throw UsageError(message: "--tprl-inference: expected auto, stepped or first-step, got '\(inference)'")
        }
        func stepped(_ files: TPRLPolicyFiles) -> Bool { inference == "auto" ? files.steppedInference : inference == "stepped" }
        let split = args.string("split", default: "test")
        guard ["test", "validation"].contains(split) else {
            throw UsageError(message: "--split: expected test or validation, got '\(split)' (the training split is what the policies learn from)")
        }
        let policyDirectory = URL(fileURLWithPath: args.string("policy", default: BuiltinSimulator.modelsDirectory.appendingPathComponent("tprl").path))
        let hasPolicy = FileManager.default.fileExists(atPath: policyDirectory.appendingPathComponent("tprl.json").path)
        let llmPolicyDirectory = URL(fileURLWithPath: args.string("llm-policy", default: BuiltinSimulator.modelsDirectory.appendingPathComponent("tprl-llm").path))
        let hasLLMPolicy = FileManager.default.fileExists(atPath: llmPolicyDirectory.appendingPathComponent("tprl.json").path)
        let defaultAgents = ["random", "uniform", "cls", "vispruner", "divprune", "query", "fastv"] + (hasPolicy ? ["tprl"] : []) + (hasLLMPolicy ? ["tprl-llm"] : [])
        let agents = args.values["agents"].map { $0.split(separator: ",").map(String.init) } ?? defaultAgents
        let modelDirectory = args.values["model"].map { URL(fileURLWithPath: $0) }
        let anyModel = args.flag("any-model")
        // Every method and budget reads every question again: the cache holds them all (and the
        // adaptive pruners' calibration questions), or each pass would recompute every entry.
        let simulator = try BuiltinSimulator.make(modelDirectory: modelDirectory,
                                                  autoencoder: hasPolicy ? policyDirectory.appendingPathComponent("autoencoder.safetensors") : nil,
                                                  capacity: max(4096, questions + adaptiveCalibration))
        var pruners: [any TokenPruner] = []
        /// The policy in `directory` evaluated as `name`, observing through its own encoder and
        /// pruning where it was trained to.
        func policyPruner(_ name: String, _ directory: URL) throws -> TPRLPruner {
            let own = simulator.pruning(afterLayer: try TPRLPolicyFiles.read(directory).configuration.environment.pruneAfterLayer,
                                        encoder: try TPRLPolicyFiles.encoder(in: directory, tokenWidth: simulator.model.tokenWidth))
            let (network, files) = try TPRLPolicyFiles.load(from: directory, simulator: own, acceptingOtherModel: anyModel)
            let pruner = TPRLPruner(network: network, configuration: files.configuration.environment, name: name, simulator: own)
            pruner.stepped = stepped(files)
            return pruner
        }
        /// `merging(name)`, or — for `NAME+fallback` — `merging(NAME)` as a cascade.
        func withFallback(_ name: String, _ make: (String) throws -> any TokenPruner) throws -> any TokenPruner {
            guard name.hasSuffix("+fallback") else { return try merging(name, make) }
            let baseName = String(name.dropLast("+fallback".count))
            if baseName.hasSuffix("+merge") {
                throw UsageError(message: "\(name): a cascade does not continue a pass whose pruned tokens were merged; evaluate \(baseName) and \(baseName.dropLast("+merge".count))+fallback apart")
            }
            return try FallbackPruner(base: try adaptive(baseName, make), threshold: fallbackThreshold)
        }
        /// `adaptive(name)`, or — for `NAME+merge` — `adaptive(NAME)` with the tokens it drops
        /// merged into one.
        func merging(_ name: String, _ make: (String) throws -> any TokenPruner) throws -> any TokenPruner {
            guard name.hasSuffix("+merge") else { return try adaptive(name, make) }
            return MergingPruner(base: try adaptive(String(name.dropLast("+merge".count)), make))
        }
        /// `make(name)`, or — for `NAME+adaptive` — `make(NAME)` meeting each budget on average.
        func adaptive(_ name: String, _ make: (String) throws -> any TokenPruner) throws -> any TokenPruner {
            guard name.hasSuffix("+adaptive") else { return try make(name) }
            let baseName = String(name.dropLast("+adaptive".count))
            guard let base = try make(baseName) as? any ScoringPruner else {
                throw UsageError(message: "\(name): \(baseName) has no per-token score to threshold; NAME+adaptive takes cls, fastv, fastv@K, tprl, tprl-llm or a --policies policy")
            }
            return try AdaptiveBudgetPruner(base: base, calibrationQuestions: adaptiveCalibration)
        }
        /// A `--policies` name without its `+fallback` (the cascade it asks for).
        func baseName(_ name: String) -> String { name.hasSuffix("+fallback") ? String(name.dropLast("+fallback".count)) : name }
        /// `NAME=DIR` items of option `option`, in order.
        func named(_ option: String, _ what: String) throws -> [(name: String, path: String)] {
            try (args.values[option].map { $0.split(separator: ",").map(String.init) } ?? []).map { item in
                let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                    throw UsageError(message: "--\(option): expected NAME=\(what), got '\(item)'")
                }
                let base = option == "policies" ? baseName(parts[0]) : parts[0]
                let marked = base.contains { "@+".contains($0) }
                if marked || PrunerRegistry.names.contains(base) || ["tprl", "tprl-llm"].contains(base) {
                    throw UsageError(message: "--\(option) \(item): '\(base)' \(marked ? "has @ or +, which name a pruner's place and variants" : "is a built-in method's name"); name it otherwise, e.g. my-\(String(base.map { "@+".contains($0) ? "-" : $0 }))=\(parts[1])")
                }
                return (parts[0], parts[1])
            }
        }
        let policies = try named("policies", "DIR"), runs = try named("runs", "RUN_DIR")
        var resolved: Set<String> = []  // the --policies and --runs names --agents used
        /// The pruner `name` names: a `--policies` policy or `--runs` agent, a trained policy or a registered pruner.
        func pruner(_ name: String) throws -> any TokenPruner {
            if let policy = policies.first(where: { baseName($0.name) == name }) {
                resolved.insert(name)
                return try policyPruner(name, URL(fileURLWithPath: policy.path))
            } else if let run = runs.first(where: { $0.name == name }) {
                resolved.insert(name)
                return try trainedAgent(name: name, run: RunDirectory(URL(fileURLWithPath: run.path)), simulator: simulator, acceptingOtherModel: anyModel)
            } else if name == "tprl-llm" {
                guard hasLLMPolicy else {
                    throw UsageError(message: "tprl-llm: no policy at \(llmPolicyDirectory.path) (tprl.json missing); train one with `prunegym tprl train --config examples/tprl-llm.json --out \(llmPolicyDirectory.path)` or pass --llm-policy DIR")
                }
                return try policyPruner(name, llmPolicyDirectory)
            } else if name == "tprl" {
                // A policy that prunes inside the language model observes through a simulator that does.
                let layer = try TPRLPolicyFiles.read(policyDirectory).configuration.environment.pruneAfterLayer
                let own = simulator.sibling(pruningAfter: layer)
                let (network, files) = try TPRLPolicyFiles.load(from: policyDirectory, simulator: own, acceptingOtherModel: anyModel)
                let pruner = TPRLPruner(network: network, configuration: files.configuration.environment, simulator: own)
                pruner.stepped = stepped(files)
                return pruner
            }
            return try PrunerRegistry.make(name)
        }
        // --agents first, in their order (a --policies or --runs name among them, with any suffix,
        // takes its place there); then each --policies policy and --runs agent --agents left out.
        for name in agents { pruners.append(try withFallback(name, pruner)) }
        for policy in policies where !resolved.contains(policy.name) && !agents.contains(policy.name) {
            // Each policy observes through its own autoencoder.
            pruners.append(try withFallback(policy.name) { try policyPruner($0, URL(fileURLWithPath: policy.path)) })
        }
        for run in runs where !resolved.contains(run.name) {
            pruners.append(try trainedAgent(name: run.name, run: RunDirectory(URL(fileURLWithPath: run.path)), simulator: simulator,
                                            acceptingOtherModel: anyModel))
        }
        var seen: Set<String> = []
        if let twice = pruners.first(where: { !seen.insert($0.name).inserted }) {
            throw UsageError(message: "\(twice.name) is evaluated twice (--agents, --policies and --runs together name each method once); drop the repeat or rename a policy (--policies OTHER=DIR)")
        }
        let out = URL(fileURLWithPath: args.string("out", default: "runs/eval-pruning"))
        let versus = args.values["versus"]
        if let versus, !pruners.contains(where: { $0.name == versus }) {
            throw UsageError(message: "--versus \(versus): not among the evaluated methods (\(pruners.map(\.name).joined(separator: ", "))); add it to --agents")
        }
        try AtomicFile.prepareDirectory(out)  // before the evaluation, not after it
        let results = try PruningReport.evaluate(pruners, simulator: simulator, budgets: budgets, seeds: seeds, questions: questions,
                                   oracleQuestions: oracleQuestions, quiet: args.flag("json"), split: split,
                                   latencyQuestions: latencyQuestions, latencyRounds: latencyRounds, firstQuestion: firstQuestion)
        try PruningReport.write(results, to: out, split: split)
        if let versus { try PruningReport.writePaired(results, against: versus, to: out) }
        if args.flag("json") {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(results), as: UTF8.self))
        } else {
            if firstQuestion > 0 { print("\(split) questions \(firstQuestion) to \(firstQuestion + questions - 1)\n") }
            print(PruningReport.table(results))
            if results.contains(where: { $0.budget < 1 }) {
                print("\nAt matched compute: each method's best accuracy among its budgets costing at most the GFLOPs of the row, the model's and the pruner's own together (its budget in brackets)\n")
                print(PruningReport.computeMatchedTable(results))
            }
            if let versus {
                print("\nAgainst \(versus) on the same questions: the difference in points ± its standard error and the questions lost and gained, each the mean over seeds\n")
                print(try PruningReport.pairedTable(results, against: versus))
            }
            print("wrote \(out.appendingPathComponent("results.csv").path) and the plots \(out.appendingPathComponent("accuracy-vs-tokens.svg").path), accuracy-vs-flops.svg")
        }
    }

    /// The agent of a `prunegym train --env TokenPruning-v0` run, from its latest checkpoint, as a pruner.
    /// Refused when the run learned another model than the simulator's, unless `acceptingOtherModel`.
    static func trainedAgent(name: String, run: RunDirectory, simulator: PruningSimulator, acceptingOtherModel: Bool = false) throws -> AgentPruner {
        let config = try run.readConfig(RunConfiguration.self)
        guard config.environment == TokenPruningEnvironment.spec.id else {
            throw UsageError(message: "--runs \(name)=\(run.url.path): the run trained on \(config.environment), not \(TokenPruningEnvironment.spec.id)")
        }
        let digest = simulator.model.weightDigest
        if !acceptingOtherModel, let other = ModelDigestFile.otherModel(in: run.url, than: digest) {
            throw UsageError(message: "--runs \(name)=\(run.url.path): the agent was trained on another model (weight digest \(other)) than the one it is asked to prune for (\(digest!)); evaluate it with that model (--model DIR) or run it here anyway as a transfer experiment (--any-model)")
        }
        guard let checkpoint = try run.latestCheckpoint() else {
            throw UsageError(message: "--runs \(name)=\(run.url.path): no checkpoint yet; train it first with prunegym train --env TokenPruning-v0 --run-dir \(run.url.path)")
        }
        let environment = try TokenPruningEnvironment(simulator: simulator)
        let agent = try makeAgent(config, observationSpace: environment.observationSpace, actionSpace: environment.actionSpace)
        try agent.load(from: checkpoint.appendingPathComponent("agent.safetensors"))
        return AgentPruner(name: name, agent: agent, configuration: environment.configuration)
    }

    /// The comma-separated values of option `name`; an error names the first bad value and what
    /// the option takes (`expected`).
    static func list<T>(_ text: String, _ name: String, expected: String, _ parse: (String) -> T?) throws -> [T] {
        let values = text.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        guard !values.isEmpty else { throw UsageError(message: "--\(name): no values in '\(text)' (expected \(expected))") }
        return try values.map { value in
            guard let parsed = parse(value) else { throw UsageError(message: "--\(name): '\(value)' is not valid (expected \(expected))") }
            return parsed
        }
    }
}

extension PruningCommand {
    static let aeHelp = """
        usage: prunegym ae train [--out FILE] [--images N] [--epochs E] [--seed S] [--model DIR]

        Trains the TPRL token autoencoder (token-wise MLP, D → D/16 → D) on the visual tokens of N
        ShapesVQA training images as the built-in model encodes them, and reports the reconstruction
        error on validation tokens (MSE of standardised tokens; 1 = predicting the mean token).

        example:
          swift run -c release prunegym ae train --out runs/autoencoder.safetensors --images 200
        """

    static func autoencoder(_ arguments: [String]) throws {
        guard arguments.first == "train" else {
            print(aeHelp)
            if arguments.first.map({ !["--help", "-h"].contains($0) }) ?? false { throw UsageError(message: "ae: unknown subcommand '\(arguments[0])' (ae train)") }
            return
        }
        let args = try Arguments(command: "ae train", Array(arguments.dropFirst()), flags: [], options: ["out", "images", "epochs", "seed", "model"])
        if args.flag("help") { print(aeHelp); return }
        let images = try args.integer("images", default: 200, range: 1...100_000)
        let epochs = try args.integer("epochs", default: 4, range: 1...1000)
        let seed = UInt64(try args.integer("seed", default: 0))
        let out = URL(fileURLWithPath: args.string("out", default: "runs/autoencoder.safetensors"))
        let model = try BuiltinSimulator.model(directory: args.values["model"].map { URL(fileURLWithPath: $0) })
        try AtomicFile.prepareDirectory(out.deletingLastPathComponent())  // before the training, not after it
        let simulator = PruningSimulator(model: model, source: ShapesVQATasks(), encoder: IdentityTokenEncoder(width: model.tokenWidth))
        var generator = SeededGenerator(seed: seed)
        let autoencoder = TokenAutoencoder(inputWidth: model.tokenWidth, generator: &generator)
        let errors = try TokenAutoencoderTraining.train(autoencoder, simulator: simulator, images: images, epochs: epochs, seed: seed) { print($0) }
        try autoencoder.save(to: out)
        print(String(format: "validation reconstruction error %.4f (training %.4f); wrote %@", errors.validation, errors.training, out.path))
    }

    static let tprlHelp = """
        usage: prunegym tprl train [--out DIR] [--config FILE.json] [--seed S] [--budget B] [--run-dir RUN] [--model MODEL]

        The full TPRL recipe on the built-in model (or MODEL, a model directory): token autoencoder,
        demonstrations (VisPruner, as the paper), behaviour cloning, PPO in TokenPruning-v0. Without
        --config it is the shipped policy's recipe (examples/tprl.json: group-relative PPO in
        episodes of one step at 11% of the tokens, rewarding −KL to the unpruned answer; the
        policy then serves every budget by its top k); a CONFIG's keys go over the paper's
        recipe instead (examples/tprl-paper.json: the generic PPO agent, T_max = 3, rewarding
        Δaccuracy and the token ratio), which reward ablations vary. Writes
        the policy to DIR (tprl.json, policy.safetensors, autoencoder.safetensors), which
        eval-pruning then uses as `tprl`; tprl.json records the model's weight digest, and
        eval-pruning refuses the policy on another model unless asked (--any-model).
        CONFIG holds TPRLConfiguration keys (demonstrations, demonstrator, ppo_updates,
        budget_conditioned, code_width, encoder: autoencoder|identity, attention_prior, environment:
        {alpha, beta, task_score, query_words, prune_after_layer, …}); demonstrators: vispruner,
        saliency, grounding, grounding-cls, grounding-nested, grounding-ranked, llm-attention, oracle. With
        environment.prune_after_layer K the policy prunes inside the language model, after its layer
        K, observing the model's state there (examples/tprl-llm.json: the policy in models/tprl-llm,
        which eval-pruning evaluates as tprl-llm). For episodes of one step, "ppo_group_size": G makes
        the PPO phase group-relative (each task played G times, each episode scored against its
        group) with draws of exactly the budget's k tokens ("ppo_temperature" sharpens them;
        "ppo_advantage_scale": group|update|none divides each episode's reward minus its group's
        mean by the group's standard deviation, GRPO's and the default, by one over the update,
        or by nothing, Dr. GRPO's); "ppo_exact_budget": true gives the plain PPO phase those draws. By default one policy serves every budget (the
        budget is an input); --budget B trains a policy for that budget alone. RUN (default
        runs/tprl-SEED) gets config.json, behavior-cloning.csv and .svg, and the PPO phase's
        metrics.csv, learning-curve.svg and checkpoints; rerunning the same recipe there resumes PPO.

        examples:
          swift run -c release prunegym tprl train --out models/tprl
          swift run -c release prunegym tprl train --config examples/tprl-paper.json --out runs/tprl-paper --run-dir runs/tprl-paper-run
          echo '{"environment": {"budget_choices": [0.333, 0.222, 0.111], "query_words": 16}}' > words.json
          swift run -c release prunegym tprl train --config words.json --out runs/tprl-words --run-dir runs/tprl-words-run
          swift run -c release prunegym tprl train --config examples/tprl-llm.json --out models/tprl-llm --run-dir runs/tprl-llm
          swift run -c release prunegym tprl train --config examples/tprl-llm-ppo.json --out runs/tprl-llm-ppo --run-dir runs/tprl-llm-ppo-run
        """

    static func tprl(_ arguments: [String]) throws {
        guard arguments.first == "train" else {
            print(tprlHelp)
            if arguments.first.map({ !["--help", "-h"].contains($0) }) ?? false { throw UsageError(message: "tprl: unknown subcommand '\(arguments[0])' (tprl train)") }
            return
        }
        let args = try Arguments(command: "tprl train", Array(arguments.dropFirst()), flags: ["quiet"], options: ["out", "config", "seed", "run-dir", "budget", "model"])
        if args.flag("help") { print(tprlHelp); return }
        // Without --config the shipped recipe; a file's keys go over the paper's (the defaults).
        var configuration = TPRLConfiguration.beforeLLM
        if let path = args.values["config"] { configuration = try readJSON(TPRLConfiguration.self, from: path) }
        configuration.seed = UInt64(try args.integer("seed", default: Int(configuration.seed)))
        if let text = args.values["budget"] {
            guard let budget = Double(text), budget > 0, budget <= 1 else { throw UsageError(message: "--budget must be in (0, 1], got '\(text)'") }
            configuration.budgetConditioned = false
            configuration.environment.budgetChoices = []
            configuration.environment.targetBudget = budget
        }
        let out = URL(fileURLWithPath: args.string("out", default: "models/tprl"))
        try trainPolicy(configuration, from: args.values["config"], out: out, runDirectory: args.values["run-dir"], quiet: args.flag("quiet"),
                        modelDirectory: args.values["model"].map { URL(fileURLWithPath: $0) })
    }

    /// Runs the recipe into `runDirectory`. A rerun of the same recipe resumes its PPO checkpoints;
    /// a directory holding another recipe's run is an error, or with `replacingOtherRuns` (the
    /// quickstart's own directory, whose recipe changes with `--seed` and between releases) is
    /// emptied first. Settings that cannot train are refused by their keys (and the file they came
    /// from, `file`) before the run directory exists: one holding them would refuse the corrected
    /// file as another run.
    static func trainPolicy(_ configuration: TPRLConfiguration, from file: String? = nil, out: URL, runDirectory: String?, quiet: Bool,
                            replacingOtherRuns: Bool = false, modelDirectory: URL? = nil) throws {
        do { try configuration.validate() } catch let AgentError.invalidConfiguration(_, reason) where file != nil {
            throw FileError(path: file!, reason: reason)
        }
        let model = try BuiltinSimulator.model(directory: modelDirectory)
        // The policy is written at the end: refuse an unwritable --out before the training.
        try AtomicFile.prepareDirectory(out)
        let run = RunDirectory(URL(fileURLWithPath: runDirectory ?? "runs/tprl-\(configuration.seed)"))
        // A run is resumed only with its recipe and its model: its checkpoints learned one model's tokens.
        let digest = model.weightDigest
        if FileManager.default.fileExists(atPath: run.configURL.path) {
            let otherModel = ModelDigestFile.otherModel(in: run.url, than: digest)
            if replacingOtherRuns {
                if otherModel != nil || (try? run.readConfig(TPRLConfiguration.self)) != configuration {
                    print("\(run.url.path) holds a run of another \(otherModel != nil ? "model" : "recipe (another seed or an earlier release's defaults)"); starting it afresh")
                    try FileManager.default.removeItem(at: run.url)
                }
            } else {
                if let otherModel {
                    throw UsageError(message: "\(run.url.path) holds a TPRL run on another model (weight digest \(otherModel); this model's is \(digest!)); pick another --run-dir or delete it")
                }
                let recorded = try run.readConfig(TPRLConfiguration.self)
                if recorded != configuration {
                    throw UsageError(message: "\(run.url.path) holds a TPRL run with a different configuration (\(configurationDifferences(recorded, configuration).joined(separator: "; "))); pick another --run-dir, delete it, or pass its settings with --config to resume it")
                }
            }
        }
        try run.create()
        try run.writeConfig(configuration, kind: "tprl")
        try ModelDigestFile.record(digest, in: run.url)
        let started = Date()
        let artifacts = try TPRLRecipe.run(model: model, source: ShapesVQATasks(), configuration: configuration, runDirectory: run, showsProgress: !quiet)
        try TPRLPolicyFiles.save(artifacts, configuration: configuration, to: out)
        try writeBehaviorCloningCurve(artifacts.behaviorCloning, in: run)
        if configuration.ppoUpdates > 0 && configuration.ppoGroupSize > 0 {
            // The sampled episodes' and the top-k sets' mean reward on the same tasks, per update.
            try TrainCommand.writeCurve(run, title: "TPRL: group-relative PPO in TokenPruning-v0, seed \(configuration.seed)", x: ("episodes", "episodes"),
                                        yLabel: "mean reward per update", series: [("reward_mean", "sampled episodes"), ("greedy_score", "top-k sets")])
        } else if configuration.ppoUpdates > 0 {
            try TrainCommand.writeLearningCurve(run, title: "TPRL: PPO in TokenPruning-v0, seed \(configuration.seed)")
        }
        print(String(format: "TPRL recipe took %.0f s; wrote %@", Date().timeIntervalSince(started), out.path))
    }

    /// `behavior-cloning.svg`: the training and held-out losses per epoch of behaviour cloning's
    /// metrics `rows` (nothing when the recipe cloned nothing).
    static func writeBehaviorCloningCurve(_ rows: [[(String, Double)]], in run: RunDirectory) throws {
        guard !rows.isEmpty else { return }
        func value(_ row: [(String, Double)], _ column: String) -> Double? { row.first { $0.0 == column }?.1 }
        let series = [("train_loss", "training"), ("validation_loss", "held-out episodes")].map { column, name in
            SVGPlot.Series(name: name, points: rows.compactMap { row in value(row, "epoch").flatMap { x in value(row, column).map { (x: x, y: $0) } } })
        }
        let svg = SVGPlot.lineChart(title: "TPRL: behaviour cloning", xLabel: "epoch", yLabel: "BCE over the valid tokens", series: series)
        try AtomicFile.write(Data(svg.utf8), to: run.url.appendingPathComponent("behavior-cloning.svg"))
    }

    static let quickstartHelp = """
        usage: prunegym quickstart [--questions N] [--seed S] [--model DIR]

        The whole TPRL recipe on the built-in model in a few minutes: token autoencoder, VisPruner
        demonstrations, behaviour cloning, group-relative PPO at 11% of the tokens rewarding −KL to
        the unpruned answer, then eval-pruning of TPRL against the baselines at 100% / 33% / 22% /
        11% of the visual tokens. The recipe is `tprl train`'s default (examples/tprl.json), so
        with --seed 0 it trains the very policy shipped in models/tprl. Then a policy pruning
        inside the language model, after its layer 0 where FastV prunes (examples/tprl-llm.json:
        cloned from the LLM's own attention, then group-relative PPO at the three budgets; the
        policy shipped in models/tprl-llm), evaluated as tprl-llm and as tprl-llm+merge (the
        tokens it drops merged into one, their mean: eval-pruning --help). Writes the policies to
        runs/quickstart/tprl and runs/quickstart/tprl-llm and the table, CSV and plot to
        runs/quickstart/eval; the table compares every method with the unpruned model, and a last
        one with FastV, on the same questions (eval-pruning --versus fastv). The training runs are runs/quickstart/train and train-llm: a rerun
        resumes them, and one with another --seed (or after an upgrade changed the recipe) starts
        them afresh, as does one on another model: --model DIR runs it all on the model in DIR
        instead of the built-in one (e.g. models/shapes-llava-2h).

        example:
          swift run -c release prunegym quickstart
          swift run -c release prunegym quickstart --model models/shapes-llava-2h
        """

    static func quickstart(_ arguments: [String]) throws {
        let args = try Arguments(command: "quickstart", arguments, flags: [], options: ["questions", "seed", "model"])
        if args.flag("help") { print(quickstartHelp); return }
        let model = args.values["model"].map { URL(fileURLWithPath: $0) }
        var configuration = TPRLConfiguration.beforeLLM
        configuration.seed = UInt64(try args.integer("seed", default: 0))
        let questions = try args.integer("questions", default: 500, range: 1...100_000)
        let policy = URL(fileURLWithPath: "runs/quickstart/tprl")
        try trainPolicy(configuration, out: policy, runDirectory: "runs/quickstart/train", quiet: false, replacingOtherRuns: true, modelDirectory: model)
        var inside = TPRLConfiguration.insideLLM
        inside.seed = configuration.seed
        let llmPolicy = URL(fileURLWithPath: "runs/quickstart/tprl-llm")
        print("\nPruning inside the language model, after its layer 0 (examples/tprl-llm.json):")
        try trainPolicy(inside, out: llmPolicy, runDirectory: "runs/quickstart/train-llm", quiet: false, replacingOtherRuns: true, modelDirectory: model)
        try evalPruning((model.map { ["--model", $0.path] } ?? []) + ["--policy", policy.path, "--llm-policy", llmPolicy.path, "--questions", String(questions),
                         "--agents", "random,uniform,cls,vispruner,divprune,query,fastv,tprl,tprl-llm,tprl-llm+merge", "--seeds", "0", "--out", "runs/quickstart/eval",
                         "--versus", "fastv"])
    }
}

import Foundation
import NN
import TensorCore

/// How the built-in ShapesVQA model is built and trained. Every field may be omitted from JSON (an
/// unknown key is refused by name), and an omitted field reads as `init()`'s value, today's
/// recipe: `{"learning_rate": 0.001}` is today's recipe at another learning rate. (Through release 0.7.9, `relation_weight`,
/// `asked_relation_weight` and `object_subset_share` read as 0 when omitted, as the configurations
/// written before them had trained; the shipped stage files now name them.)
public struct VLMTrainingConfiguration: Codable, Sendable, Equatable {
    /// Seed of every draw of the training.
    public var seed: UInt64 = 0
    /// Training samples in total (each a fresh procedural sample).
    public var samples = 120_000
    /// `batch_size` in the training configuration JSON (default 32).
    public var batchSize = 32
    /// `learning_rate` in the training configuration JSON (default 5e-4).
    public var learningRate: Float = 5e-4
    /// `minimum_learning_rate` in the training configuration JSON (default 3e-5).
    public var minimumLearningRate: Float = 3e-5
    /// `warmup_steps` in the training configuration JSON (default 150).
    public var warmupSteps = 150
    /// `schedule_start`: the sample count where the learning-rate schedule (warm-up, then cosine
    /// to `samples`) begins. 0 (the default) spreads it over the whole run; a later stage that
    /// continues a finished run sets it to where that run ended, for a warm restart (SGDR).
    /// Samples before it follow a cycle of the same shape of their own.
    public var scheduleStart = 0
    /// `weight_decay` in the training configuration JSON (default 0.01).
    public var weightDecay: Float = 0.01
    /// Samples of stage 1, where only the dense vision objective trains (a miniature of LLaVA's
    /// pretrained vision encoder: each patch predicts colour, shape, size and grid position of
    /// what lies under it). Stage 2 adds the answer loss.
    public var visionOnlySamples = 10_000
    /// Weight of the dense objective in stage 2.
    public var denseWeight: Float = 0.3
    /// Weight of the routing objective (see `RoutingObjective`) in stage 2.
    public var routingWeight: Float = 1
    /// `relation_weight`: weight of the relation probe of the routing objective (see
    /// `RoutingObjective.relationLoss`; default 1; stages 1–2 of the shipped recipe trained
    /// without it, at 0).
    public var relationWeight: Float = 1
    /// `asked_relation_weight`: weight of the asked-relation probe (see
    /// `RoutingObjective.askedLoss`): at the same layer, which relation a spatial question asks
    /// and whether it holds (default 1; stages 1–4 of the shipped recipe trained without it).
    public var askedRelationWeight: Float = 1
    /// `object_subset_share`: of the pruned training samples, the share whose subset is
    /// object-centred (every anchor, then the objects' other patches, then background, cut at a
    /// random size) instead of anchors plus a uniform random share — the kind of subset the
    /// importance-based pruners keep (default 0.5; stages 1–3 of the shipped recipe had 0).
    public var objectSubsetShare: Float = 0.5
    /// `pruned_share`: the share of training samples whose answer is trained from a subset of the
    /// visual tokens rather than all of them (default 0.5).
    public var prunedShare: Float = 0.5
    /// `referent_subset_share`: of the pruned training samples, the share whose subset keeps the
    /// question's objects (their anchors, and each of their other patches with a random
    /// probability) and a random share of every other token — so the other objects may lose
    /// their anchors, as they do under an importance-based pruner at a small budget. The other
    /// pruned samples keep every anchor (see `object_subset_share`). Absent reads as 0.
    public var referentSubsetShare: Float = 0
    /// `llm_cut_share`: of the pruned training samples, the share whose subset applies inside the
    /// language model, as FastV and `tprl-llm` prune: every visual token runs through layers
    /// 0…`llm_cut_layer`, and the layers after it see only the subset (at their original
    /// positions). The others answer from the subset alone. Absent reads as 0, and the draws of
    /// a configuration without it are unchanged.
    public var llmCutShare: Float = 0
    /// `attention_subset_share`: of the samples cut inside the language model (`llm_cut_share`),
    /// the share whose subset is FastV's choice from the model as it stands: the k tokens the last
    /// text token attends to most in layer `llm_cut_layer` (mean over heads;
    /// `largestIndices`, FastV's top k), with k/tokens drawn uniformly from [0.05, 0.5] — the subsets
    /// the pruners that act inside the LLM hand the model, rather than random or object-centred
    /// ones. The choice takes no gradient. Absent reads as 0, and the draws of a configuration
    /// without it are unchanged.
    public var attentionSubsetShare: Float = 0
    /// `class_weight`: weight of the class-token objective (`ClassTokenHead`): the tower's pooled
    /// class token (its selected hidden state, through `post_layernorm`) predicts which colour,
    /// shape and size combinations the image holds — a miniature of CLIP's image-level
    /// training, which gives the class token's attention, the score of the pruners that act
    /// before the language model, a reason to find every object. It trains from the first
    /// sample, with the dense objective. Absent reads as 0: no such head, and the draws and
    /// checkpoints of configurations without it are unchanged.
    public var classWeight: Float = 0
    /// `llm_cut_layer`: the LLM layer after which `llm_cut_share`'s subsets apply (default 0, the
    /// layer `tprl-llm` and FastV here cut after).
    public var llmCutLayer = 0
    /// `family_weights`: relative frequency of each question family in the training samples,
    /// e.g. `{"count": 3}` (absent families weigh 1). Absent or empty (the default), the families
    /// come as `ShapesVQA.sample` draws them, uniformly, and the samples are exactly those of
    /// earlier configurations; otherwise each training slot draws candidates from its own seeded
    /// stream and keeps one with probability weight / largest weight.
    public var familyWeights: [String: Float] = [:]
    /// `evaluation_interval` in the training configuration JSON (default 250).
    public var evaluationInterval = 250
    /// `evaluation_samples` in the training configuration JSON (default 500).
    public var evaluationSamples = 500
    /// `checkpoint_interval` in the training configuration JSON (default 250).
    public var checkpointInterval = 250
    /// `test_samples`: test-split questions the finished model is scored on (its `results.json`;
    /// default 2000).
    public var testSamples = 2000

    /// `image_size` in the training configuration JSON (default 64).
    public var imageSize = 64
    /// `patch_size` in the training configuration JSON (default 4).
    public var patchSize = 4
    /// `vision_hidden` in the training configuration JSON (default 64).
    public var visionHidden = 64
    /// `vision_layers` in the training configuration JSON (default 3).
    public var visionLayers = 3
    /// `vision_heads` in the training configuration JSON (default 4).
    public var visionHeads = 4
    /// `text_hidden` in the training configuration JSON (default 128).
    public var textHidden = 128
    /// `text_layers` in the training configuration JSON (default 4).
    public var textLayers = 4
    /// `text_heads` in the training configuration JSON (default 4).
    public var textHeads = 4
    /// `text_key_value_heads` in the training configuration JSON (default 2).
    public var textKeyValueHeads = 2
    /// `text_intermediate` in the training configuration JSON (default 344).
    public var textIntermediate = 344

    /// The built-in model's recipe.
    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case seed, samples, batchSize = "batch_size", learningRate = "learning_rate", minimumLearningRate = "minimum_learning_rate"
        case warmupSteps = "warmup_steps", weightDecay = "weight_decay", visionOnlySamples = "vision_only_samples", denseWeight = "dense_weight", routingWeight = "routing_weight"
        case relationWeight = "relation_weight", objectSubsetShare = "object_subset_share"
        case askedRelationWeight = "asked_relation_weight", scheduleStart = "schedule_start", familyWeights = "family_weights"
        case prunedShare = "pruned_share", referentSubsetShare = "referent_subset_share"
        case llmCutShare = "llm_cut_share", llmCutLayer = "llm_cut_layer", classWeight = "class_weight"
        case attentionSubsetShare = "attention_subset_share"
        case evaluationInterval = "evaluation_interval", evaluationSamples = "evaluation_samples", checkpointInterval = "checkpoint_interval", testSamples = "test_samples"
        case imageSize = "image_size", patchSize = "patch_size", visionHidden = "vision_hidden", visionLayers = "vision_layers"
        case visionHeads = "vision_heads", textHidden = "text_hidden", textLayers = "text_layers", textHeads = "text_heads"
        case textKeyValueHeads = "text_key_value_heads", textIntermediate = "text_intermediate"
    }

    public init(from decoder: Decoder) throws {
        try UnknownKeys.reject(in: decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = VLMTrainingConfiguration()
        func value<T: Decodable>(_ key: CodingKeys, _ fallback: T) throws -> T { try c.decodeIfPresent(T.self, forKey: key) ?? fallback }
        seed = try value(.seed, d.seed); samples = try value(.samples, d.samples); batchSize = try value(.batchSize, d.batchSize)
        learningRate = try value(.learningRate, d.learningRate); minimumLearningRate = try value(.minimumLearningRate, d.minimumLearningRate)
        warmupSteps = try value(.warmupSteps, d.warmupSteps); weightDecay = try value(.weightDecay, d.weightDecay)
        visionOnlySamples = try value(.visionOnlySamples, d.visionOnlySamples); denseWeight = try value(.denseWeight, d.denseWeight)
        routingWeight = try value(.routingWeight, d.routingWeight)
        relationWeight = try value(.relationWeight, d.relationWeight)
        askedRelationWeight = try value(.askedRelationWeight, d.askedRelationWeight)
        scheduleStart = try value(.scheduleStart, d.scheduleStart)
        objectSubsetShare = try value(.objectSubsetShare, d.objectSubsetShare)
        familyWeights = try value(.familyWeights, d.familyWeights)
        prunedShare = try value(.prunedShare, d.prunedShare)
        referentSubsetShare = try value(.referentSubsetShare, d.referentSubsetShare)
        llmCutShare = try value(.llmCutShare, d.llmCutShare)
        llmCutLayer = try value(.llmCutLayer, d.llmCutLayer)
        attentionSubsetShare = try value(.attentionSubsetShare, d.attentionSubsetShare)
        classWeight = try value(.classWeight, d.classWeight)
        evaluationInterval = try value(.evaluationInterval, d.evaluationInterval); evaluationSamples = try value(.evaluationSamples, d.evaluationSamples)
        checkpointInterval = try value(.checkpointInterval, d.checkpointInterval)
        testSamples = try value(.testSamples, d.testSamples)
        imageSize = try value(.imageSize, d.imageSize); patchSize = try value(.patchSize, d.patchSize)
        visionHidden = try value(.visionHidden, d.visionHidden); visionLayers = try value(.visionLayers, d.visionLayers)
        visionHeads = try value(.visionHeads, d.visionHeads); textHidden = try value(.textHidden, d.textHidden)
        textLayers = try value(.textLayers, d.textLayers); textHeads = try value(.textHeads, d.textHeads)
        textKeyValueHeads = try value(.textKeyValueHeads, d.textKeyValueHeads); textIntermediate = try value(.textIntermediate, d.textIntermediate)
        if let problem = settingProblem { throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: problem)) }
    }

    /// The first setting that cannot train a model on its own, named by its JSON key; nil when
    /// every one can. (A stage file may leave `samples` to its recipe, so the settings checked
    /// against `samples` wait for `validate()`.)
    var settingProblem: String? {
        shareProblem ?? familyWeightProblem ?? countProblem ?? rateProblem ?? architectureProblem
    }

    /// The first count or size of the run that is not positive, or the first that is negative.
    private var countProblem: String? {
        SizeCheck.positive(["samples": samples, "batch_size": batchSize, "evaluation_interval": evaluationInterval,
                            "evaluation_samples": evaluationSamples, "checkpoint_interval": checkpointInterval, "test_samples": testSamples])
            ?? SizeCheck.nonNegative(["warmup_steps": warmupSteps, "schedule_start": scheduleStart, "vision_only_samples": visionOnlySamples])
    }

    /// A learning rate, decay or objective weight that cannot be.
    private var rateProblem: String? {
        if let problem = SizeCheck.positiveReal("learning_rate", learningRate)
            ?? SizeCheck.nonNegative(["minimum_learning_rate": minimumLearningRate, "weight_decay": weightDecay, "dense_weight": denseWeight,
                                      "routing_weight": routingWeight, "relation_weight": relationWeight, "asked_relation_weight": askedRelationWeight,
                                      "class_weight": classWeight]) {
            return problem
        }
        guard minimumLearningRate <= learningRate else {
            return "minimum_learning_rate \(minimumLearningRate) exceeds learning_rate \(learningRate); the schedule decays from the second to the first"
        }
        return nil
    }

    /// Sizes that cannot build the model, or an LLM cut with no layer after it.
    private var architectureProblem: String? {
        if let problem = SizeCheck.attention(["image_size": imageSize, "patch_size": patchSize, "vision_hidden": visionHidden,
                                              "vision_layers": visionLayers, "vision_heads": visionHeads],
                                             hidden: ("vision_hidden", visionHidden), heads: ("vision_heads", visionHeads))
            ?? SizeCheck.divides(("patch_size", patchSize), ("image_size", imageSize), "the patches tile the image")
            ?? SizeCheck.attention(["text_hidden": textHidden, "text_layers": textLayers, "text_heads": textHeads,
                                    "text_key_value_heads": textKeyValueHeads, "text_intermediate": textIntermediate],
                                   hidden: ("text_hidden", textHidden), heads: ("text_heads", textHeads),
                                   keyValueHeads: ("text_key_value_heads", textKeyValueHeads), rotary: true) {
            return problem
        }
        guard llmCutLayer >= 0 && (llmCutShare == 0 || llmCutLayer < textLayers - 1) else {
            return "llm_cut_layer is \(llmCutLayer); a cut must come after one of the layers 0..<\(textLayers - 1) (text_layers − 1), so that a layer runs on the subset"
        }
        return nil
    }

    /// The first share outside [0, 1], by its key.
    private var shareProblem: String? {
        let shares: KeyValuePairs = ["pruned_share": prunedShare, "referent_subset_share": referentSubsetShare,
                                     "object_subset_share": objectSubsetShare, "llm_cut_share": llmCutShare,
                                     "attention_subset_share": attentionSubsetShare]
        return shares.first { !($0.value.isFinite && $0.value >= 0 && $0.value <= 1) }.map { "\($0.key) is \($0.value); a share must lie in [0, 1]" }
    }

    /// An unknown family, a weight that is negative or not finite, or every weight 0.
    private var familyWeightProblem: String? {
        for (family, weight) in familyWeights.sorted(by: { $0.key < $1.key }) {
            guard ShapesVQA.Family(rawValue: family) != nil else {
                return "family_weights: unknown family '\(family)'; families are \(ShapesVQA.Family.allCases.map(\.rawValue).joined(separator: ", "))"
            }
            guard weight.isFinite, weight >= 0 else { return "family_weights: '\(family)' has weight \(weight); weights must be finite and ≥ 0" }
        }
        if !familyWeights.isEmpty, !ShapesVQA.Family.allCases.contains(where: { (familyWeights[$0.rawValue] ?? 1) > 0 }) {
            return "family_weights: every family has weight 0"
        }
        return nil
    }

    /// Throws `VLMError.invalidInput` naming the first setting (by its JSON key) that cannot
    /// train a model: a size or count that is not positive, a rate or weight that is negative or
    /// not finite, a share outside [0, 1], a bad family weight, heads that do not divide their
    /// width, patches that do not tile the image, an LLM cut after no layer that has one after it,
    /// a schedule that starts at or after `samples`. Decoding checks what it can without `samples`;
    /// `vlm train` calls this once `--samples` and a recipe's stage have set it.
    public func validate() throws {
        let problem = settingProblem ?? (scheduleStart < samples ? nil
            : "schedule_start \(scheduleStart) is not below samples \(samples); the schedule would have no samples to run")
        if let problem { throw VLMError.invalidInput(reason: "training configuration: \(problem)") }
    }

    /// The LLaVA configuration of the model these settings build.
    public func llavaConfiguration(tokenizer: WordTokenizer) -> LlavaConfiguration {
        var c = LlavaConfiguration()
        c.vision = CLIPVisionConfiguration()
        c.vision.hiddenSize = visionHidden
        c.vision.intermediateSize = 4 * visionHidden
        c.vision.layerCount = visionLayers
        c.vision.headCount = visionHeads
        c.vision.imageSize = imageSize
        c.vision.patchSize = patchSize
        c.vision.projectionDimension = visionHidden
        c.visionFeatureLayer = -1
        c.visionFeatureStrategy = .default
        c.text = LlamaConfiguration()
        c.text.vocabularySize = tokenizer.count
        c.text.hiddenSize = textHidden
        c.text.intermediateSize = textIntermediate
        c.text.layerCount = textLayers
        c.text.headCount = textHeads
        c.text.keyValueHeadCount = textKeyValueHeads
        c.text.maxPositionEmbeddings = 512
        // RoPE base 10⁶ (as long-context LLaMAs use): with 10⁴ and head size 32 only 3–4 of the 16
        // rotary pairs turn by less than a radian across the ~290 positions between the answer
        // token and the first patch, and content-based attention from the answer to an object's
        // patch stalled (the answer-token attention objective stayed flat for 30k samples);
        // with 10⁶ half the pairs are nearly position-free.
        c.text.ropeTheta = 1_000_000
        c.text.bosTokenID = tokenizer.bosID
        c.text.eosTokenID = tokenizer.eosID
        c.text.padTokenID = tokenizer.padID
        c.imageTokenIndex = tokenizer.imageID
        return c
    }
}

/// The dense vision objective's head: per patch, logits for colour (8 + background), shape (3 +
/// background), size (2 + background), whether the patch is an object's anchor (contains its
/// centre), and the column and row of the grid.
public final class DenseVisionHead: Module {
    /// Patch features → per-patch predictions.
    public let linear: Linear
    /// Patches per side.
    public let grid: Int
    static let colorClasses = 9, shapeClasses = 4, sizeClasses = 3, anchorClasses = 2
    var widths: [Int] { [Self.colorClasses, Self.shapeClasses, Self.sizeClasses, Self.anchorClasses, grid, grid] }

    init(hidden: Int, grid: Int, generator: inout SeededGenerator) {
        self.grid = grid
        linear = Linear(hidden, Self.colorClasses + Self.shapeClasses + Self.sizeClasses + Self.anchorClasses + 2 * grid, generator: &generator)
    }

    /// Mean cross-entropy of the six per-patch predictions: features `[B, N, hidden]`.
    func loss(_ features: Tensor, samples: [ShapesVQA.Sample]) -> Tensor {
        let (batch, n) = (features.shape[0], features.shape[1])
        let patches = samples.flatMap { sample in (0..<n).map { (sample: sample, patch: $0) } }
        return loss(rows: features.reshaped(to: [batch * n, -1]), patches: patches)
    }

    /// The same loss on explicit rows `[M, hidden]`, row m describing patch `patches[m].patch` of
    /// sample `patches[m].sample`.
    func loss(rows: Tensor, patches: [(sample: ShapesVQA.Sample, patch: Int)]) -> Tensor {
        let logits = linear(rows)
        var targets: [[Int]] = Array(repeating: [], count: 6)
        for (sample, patch) in patches {
            let o = sample.patchObjects[patch].map { sample.objects[$0] }
            targets[0].append(o.map { $0.color + 1 } ?? 0)
            targets[1].append(o.map { $0.shape + 1 } ?? 0)
            targets[2].append(o.map { $0.size + 1 } ?? 0)
            targets[3].append(sample.anchors.contains(patch) ? 1 : 0)
            targets[4].append(patch % grid)
            targets[5].append(patch / grid)
        }
        var offset = 0
        var total: Tensor?
        for (index, width) in widths.enumerated() {
            let part = Loss.crossEntropy(logits.sliced(alongAxis: 1, offset..<(offset + width)), targets: targets[index])
            total = total.map { $0 + part } ?? part
            offset += width
        }
        return total! * (1 / Float(widths.count))
    }

    public var namedParameters: [(name: String, parameter: Parameter)] { scoped("linear", linear) }
    public var description: String { "DenseVisionHead(\(linear))" }
}

/// The class-token objective's head (`class_weight`): from the tower's pooled class token, one
/// logit per colour × shape × size combination, trained with binary cross-entropy on whether the
/// image holds an object of it. To tell them all apart the class token must gather every object;
/// its attention in the layer whose output is selected is the score of CLS top-k and VisPruner.
public final class ClassTokenHead: Module {
    /// Pooled class token → one logit per combination.
    public let linear: Linear
    static let labels = ShapesVQA.colors.count * ShapesVQA.shapes.count * ShapesVQA.sizes.count

    init(hidden: Int, generator: inout SeededGenerator) {
        linear = Linear(hidden, Self.labels, generator: &generator)
    }

    /// Mean binary cross-entropy over the combinations: pooled class tokens `[B, hidden]`.
    func loss(_ pooled: Tensor, samples: [ShapesVQA.Sample]) -> Tensor {
        var targets = [Float](repeating: 0, count: samples.count * Self.labels)
        for (b, sample) in samples.enumerated() {
            for o in sample.objects {
                targets[b * Self.labels + (o.color * ShapesVQA.shapes.count + o.shape) * ShapesVQA.sizes.count + o.size] = 1
            }
        }
        return Loss.binaryCrossEntropy(logits: linear(pooled), targets: Tensor(shape: [samples.count, Self.labels], scalars: targets))
    }

    public var namedParameters: [(name: String, parameter: Parameter)] { scoped("linear", linear) }
    public var description: String { "ClassTokenHead(\(linear))" }
}

/// The routing objective: the language model must learn *where to look* and *what it saw there*.
/// Measured without it (five recipes, up to 56k samples): the answer stayed at the question-only
/// priors, because the last token's attention over 256 mostly-background visual tokens stayed
/// broad and the gradient through it vanishingly small. With attention supervision alone (two
/// runs to 40k samples) existence rose to 88% but attribute questions stayed at their prior: the
/// answer token found the object (27% of its attention) but nothing learned to read it. So the
/// objective supervises the second-to-last LLM layer in three ways — the same kind of grounding
/// supervision real VLMs get from region-annotated data:
///
/// - Relevance: a linear probe on every visual token's input to that layer classifies it as
///   none / an anchor of a first-role object / an anchor of a second-role object
///   (`Sample.referents`, `Sample.anchors`).
/// - Attention: the first head of key/value group 0 at the answer token should spread its
///   attention evenly over `<bos>` and the first-role anchors, the first head of group 1 over
///   `<bos>` and the second-role anchors (soft-target cross-entropy). `<bos>` is the sink that
///   makes a count readable: its share is 1/(k+1) for k objects. The other heads are free.
/// - Readout: a linear probe on the answer token's output of that layer predicts, per role, the
///   object's colour, shape, size, row and column (when the role is one object) and the number of
///   objects — what the last layer needs to answer every family.
/// - Relation: a second probe there predicts whether the first object lies left of the second and
///   whether it lies above it. Measured without it (300k samples): every other family rose to
///   74–95% while spatial questions stayed at chance, although the readout knew both objects'
///   rows and columns — comparing two categorical positions was never learned from the answer alone.
///   With it (480k samples) the probe's loss fell from 0.69 to about 0.1, yet the spatial answers
///   stayed at chance: the last layer had not learned to apply the comparison to the question's
///   relation word.
/// - Asked relation: a third probe there predicts which relation a spatial question asks and
///   whether it holds. Added to the 480k-sample model with a warm restart, it took validation
///   spatial accuracy from about 50% to 80% within 16k samples.
final class RoutingObjective: Module {
    let relevance: Linear
    /// The readout probe on the answer token's output of the supervised layer.
    let readout: Linear
    /// The relation probe: first object left of the second, first above the second.
    let relation: Linear
    /// The asked-relation probe: which of the four relations a spatial question asks, and its truth.
    let asked: Linear
    let grid: Int
    /// Widths of the readout targets: per role colour, shape, size, row, column, count.
    var readoutWidths: [Int] { Array(repeating: [8, 3, 2, grid, grid, 7], count: 2).flatMap { $0 } }
    /// Diagnostics of the last call: share of anchors the probe classifies right, and the
    /// attention mass each supervised head puts on its targets.
    var relevanceRecall: Float = .nan
    var targetMass: [Float] = [.nan, .nan]
    /// The last call's log-probabilities `[B · L]` of the answer row's attention, for the first
    /// head of each of the first two key-value groups (what the attention loss supervises).
    var attentionLogProbabilities: [[Float]] = []

    init(hidden: Int, grid: Int, generator: inout SeededGenerator) {
        self.grid = grid
        relevance = Linear(hidden, 3, generator: &generator)
        readout = Linear(hidden, 2 * (8 + 3 + 2 + 2 * grid + 7), generator: &generator)
        relation = Linear(hidden, 4, generator: &generator)
        asked = Linear(hidden, 6, generator: &generator)
    }

    /// The relations of `ShapesVQA`'s spatial questions, in the order of the asked-relation probe.
    static let relationWords = ["left of", "right of", "above", "below"]

    /// Asked relation: from the answer token's output `[B, W]` of the supervised layer, predict for
    /// spatial questions which relation the question asks (4-way) and whether it holds (2-way),
    /// averaged. The relation probe alone taught that layer both comparisons (its loss fell to
    /// about 0.1) while the answers stayed at chance: the last layer never learned to pick the
    /// comparison the question's word names. Nil when the batch has no spatial question.
    func askedLoss(_ answerHidden: Tensor, samples: [ShapesVQA.Sample]) -> Tensor? {
        var word: [Int] = [], truth: [Int] = []
        for sample in samples {
            let index = sample.family == .spatial ? Self.relationWords.firstIndex { sample.question.contains(" \($0) ") } : nil
            word.append(index ?? -1)
            truth.append(index == nil ? -1 : sample.answer == "yes" ? 1 : 0)
        }
        guard word.contains(where: { $0 >= 0 }) else { return nil }
        let logits = asked(answerHidden)
        return (Loss.crossEntropy(logits.sliced(alongAxis: 1, 0..<4), targets: word, ignoreIndex: -1)
            + Loss.crossEntropy(logits.sliced(alongAxis: 1, 4..<6), targets: truth, ignoreIndex: -1)) * 0.5
    }

    /// Relation: from the answer token's output `[B, W]` of the supervised layer, predict for
    /// questions about two single objects whether the first lies left of the second and whether it
    /// lies above it (two 2-way cross-entropies, averaged). Nil when no sample of the batch has two
    /// single objects.
    func relationLoss(_ answerHidden: Tensor, samples: [ShapesVQA.Sample]) -> Tensor? {
        var left: [Int] = [], above: [Int] = []
        for sample in samples {
            let (first, second) = (sample.referents[0], sample.referents[1])
            if first.count == 1, second.count == 1 {
                let (a, b) = (sample.objects[first[0]], sample.objects[second[0]])
                left.append(a.x < b.x ? 1 : 0)
                above.append(a.y < b.y ? 1 : 0)
            } else {
                left.append(-1)
                above.append(-1)
            }
        }
        guard left.contains(where: { $0 >= 0 }) else { return nil }
        let logits = relation(answerHidden)
        return (Loss.crossEntropy(logits.sliced(alongAxis: 1, 0..<2), targets: left, ignoreIndex: -1)
            + Loss.crossEntropy(logits.sliced(alongAxis: 1, 2..<4), targets: above, ignoreIndex: -1)) * 0.5
    }

    /// Readout: from the answer token's output `[B, W]` of the supervised layer, predict for each
    /// role the object's colour, shape, size, row and column (when the role names one object) and
    /// how many objects the role covers — what the families need, gathered where the answer is
    /// read. Ignored targets are −1.
    func readoutLoss(_ answerHidden: Tensor, samples: [ShapesVQA.Sample]) -> Tensor {
        let logits = readout(answerHidden)
        var targets = Array(repeating: [Int](), count: 12)
        for sample in samples {
            for role in 0..<2 {
                let objects = sample.referents[role]
                let single = objects.count == 1 ? sample.objects[objects[0]] : nil
                let anchor = objects.count == 1 ? sample.anchors[objects[0]] : -1
                targets[role * 6 + 0].append(single?.color ?? -1)
                targets[role * 6 + 1].append(single?.shape ?? -1)
                targets[role * 6 + 2].append(single?.size ?? -1)
                targets[role * 6 + 3].append(anchor >= 0 ? anchor / grid : -1)
                targets[role * 6 + 4].append(anchor >= 0 ? anchor % grid : -1)
                targets[role * 6 + 5].append(min(6, objects.count))
            }
        }
        var offset = 0
        var total: Tensor?
        for (index, width) in readoutWidths.enumerated() {
            let part = Loss.crossEntropy(logits.sliced(alongAxis: 1, offset..<(offset + width)), targets: targets[index], ignoreIndex: -1)
            total = total.map { $0 + part } ?? part
            offset += width
        }
        return total! * (1 / Float(readoutWidths.count))
    }

    /// - Parameters:
    ///   - layer: the last decoder layer; `input` `[B, L, W]` is what enters it.
    ///   - rotary: the layer's rotary tables of the rows' positions (`[L, d]`, or `[B, L, d]` after a cut).
    ///   - last: each sequence's last real index.
    ///   - lastPositions: the position of each sequence's last row: `last` unless a cut inside the
    ///     LLM dropped rows before it, which keep their positions (until release 0.7.10 the query
    ///     took `last` there too, so the probe's attention was not the layer's for those sequences).
    ///   - visual: per sequence, `(row in the sequence, role)` of each visual token: role 0 none,
    ///     1 first-role anchor, 2 second-role anchor.
    /// - Returns: relevance and attention losses.
    func loss(layer: LlamaDecoderLayer, input: Tensor, rotary: (cos: Tensor, sin: Tensor), theta: Float, last: [Int], lastPositions: [Int],
              visual: [[(row: Int, role: Int)]]) -> (relevance: Tensor, attention: Tensor) {
        let (batch, length, width) = (input.shape[0], input.shape[1], input.shape[2])
        let x = layer.inputNorm(input)
        let flat = x.reshaped(to: [batch * length, width])
        var rows: [Int] = [], roles: [Int] = []
        for (b, tokens) in visual.enumerated() {
            for token in tokens {
                rows.append(b * length + token.row)
                roles.append(token.role)
            }
        }
        // Class-balanced: anchors are 1–2 of ~270 tokens, so positives and negatives are averaged
        // separately (with plain averaging the probe stayed at the class prior).
        let positives = roles.indices.filter { roles[$0] != 0 }, negatives = roles.indices.filter { roles[$0] == 0 }
        var relevanceLoss = Loss.crossEntropy(relevance(flat.indexSelect(negatives.map { rows[$0] }, alongAxis: 0)), targets: negatives.map { _ in 0 })
        if !positives.isEmpty {
            let logits = relevance(flat.indexSelect(positives.map { rows[$0] }, alongAxis: 0))
            relevanceLoss = relevanceLoss + Loss.crossEntropy(logits, targets: positives.map { roles[$0] })
            let values = logits.scalars
            relevanceRecall = Float(positives.indices.filter { r in
                let row = Array(values[(r * 3)..<(r * 3 + 3)])
                return row.firstIndex(of: row.max()!)! == roles[positives[r]]
            }.count) / Float(positives.count)
        }

        let attention = layer.attention
        let (heads, groups, d) = (attention.headCount, attention.keyValueHeadCount, attention.headDimension)
        let lastRows = flat.indexSelect(last.enumerated().map { $0.offset * length + $0.element }, alongAxis: 0)
        let queryTable = Tensor.rotaryTables(positions: lastPositions, dimension: d, base: theta)
        let q = attention.queryProjection(lastRows).reshaped(to: [batch, heads, d])
            .applyingRotaryEmbedding(cos: queryTable.cos, sin: queryTable.sin, tokenAxis: 0)
        let k = attention.keyProjection(x).reshaped(to: [batch, length, groups, d])
            .applyingRotaryEmbedding(cos: rotary.cos, sin: rotary.sin, tokenAxis: 1).reshaped(to: [batch, length, groups * d])
        var maskValues = [Float](repeating: 0, count: batch * length)
        for b in 0..<batch { for j in (last[b] + 1)..<max(length, last[b] + 1) { maskValues[b * length + j] = -1e9 } }
        let mask = Tensor(shape: [batch, 1, length], scalars: maskValues)
        var attentionLoss: Tensor?
        attentionLogProbabilities = []
        for group in 0..<min(2, groups) {
            let head = group * (heads / groups)
            let logits = Tensor.matmul(q.sliced(alongAxis: 1, head..<(head + 1)), k.sliced(alongAxis: 2, (group * d)..<((group + 1) * d)),
                                       transposeB: true) * (1 / Float(d).squareRoot())
            var target = [Float](repeating: 0, count: batch * length)
            for (b, tokens) in visual.enumerated() {
                let positions = [0] + tokens.filter { $0.role == group + 1 }.map(\.row)
                for position in positions { target[b * length + position] = 1 / Float(positions.count) }
            }
            let logProbabilities = logits.logSoftmax(alongAxis: 2, additiveMask: mask)
            let part = (logProbabilities * Tensor(shape: [batch, 1, length], scalars: target)).sum() * (-1 / Float(batch))
            let p = logProbabilities.scalars
            attentionLogProbabilities.append(p)
            targetMass[group] = zip(p, target).reduce(0) { $0 + ($1.1 > 0 ? Foundation.exp($1.0) : 0) } / Float(batch)
            attentionLoss = attentionLoss.map { $0 + part } ?? part
        }
        return (relevanceLoss, attentionLoss!)
    }

    var namedParameters: [(name: String, parameter: Parameter)] {
        scoped("relevance", relevance) + scoped("readout", readout) + scoped("relation", relation) + scoped("asked", asked)
    }
    var description: String { "RoutingObjective(\(relevance), \(readout), \(relation), \(asked))" }
}

/// The model and the training-only heads (not part of the exported checkpoint).
final class VLMTrainingModule: Module {
    let model: LlavaModel
    let dense: DenseVisionHead
    /// The same objective on the LLM's last hidden states at the visual positions, so that the
    /// language model's visual residual streams keep what each patch shows.
    let languageDense: DenseVisionHead
    let routing: RoutingObjective
    /// The class-token objective's head, when `class_weight` is positive.
    let classHead: ClassTokenHead?
    init(model: LlavaModel, dense: DenseVisionHead, languageDense: DenseVisionHead, routing: RoutingObjective, classHead: ClassTokenHead?) {
        self.model = model
        self.dense = dense
        self.languageDense = languageDense
        self.routing = routing
        self.classHead = classHead
    }
    var namedParameters: [(name: String, parameter: Parameter)] {
        model.namedParameters + scoped("dense_head", dense) + scoped("language_dense_head", languageDense) + scoped("routing", routing)
            + (classHead.map { scoped("class_head", $0) } ?? [])
    }
    var description: String { "VLMTrainingModule(\(model))" }
}

/// Builds prompts and batches for ShapesVQA: `<bos> question <image>×N question ?` — the question
/// before the image, so that visual tokens can attend to it (each patch can mark itself as
/// relevant), and again after it, close to the final `?` where the answer is read.
///
/// Measured: with LLaVA's usual order (`<bos> <image>×N question ?`) the built-in model was still
/// at the answer priors after 56k training samples (existence, spatial and comparison at chance,
/// 48% overall).
public struct ShapesPrompt: Sendable {
    /// The vocabulary.
    public let tokenizer: WordTokenizer
    /// Image placeholder tokens in a prompt.
    public let imageTokens: Int

    /// The prompt for a tokenizer and image size.
    public init(tokenizer: WordTokenizer, imageTokens: Int) {
        self.tokenizer = tokenizer
        self.imageTokens = imageTokens
    }

    func words(_ question: String) -> [Int] {
        var words = tokenizer.encode(question)
        if words.last == tokenizer.id("?") { words.removeLast() }
        return words
    }

    /// The tokens before the image: `<bos>` and the question without its final `?`.
    public func prefix(question: String) -> [Int] { [tokenizer.bosID] + words(question) }

    /// The tokens after the image: the question again and `?`, where the answer is read.
    public func suffix(question: String) -> [Int] { words(question) + [tokenizer.id("?")] }

    /// `[prefix, image × imageTokens, suffix]` for each question, right-padded to the longest:
    /// ids `[B][L]` and the index of each sequence's last real token.
    public func batch(_ questions: [String]) -> (ids: [[Int]], last: [Int]) {
        let rows = questions.map { prefix(question: $0) + Array(repeating: tokenizer.imageID, count: imageTokens) + suffix(question: $0) }
        let length = rows.map(\.count).max() ?? 0
        return (rows.map { $0 + Array(repeating: tokenizer.padID, count: length - $0.count) }, rows.map { $0.count - 1 })
    }
}

extension LlavaModel {
    /// Answer logits `[B, V]` at each sequence's last real token, from image features `[B, N, D]`
    /// (all or a subset of the visual tokens) and right-padded ids with image placeholders.
    public func answerLogits(ids: [[Int]], last: [Int], imageFeatures: Tensor) throws -> Tensor {
        let embedded = try embeddings(inputIDs: ids, imageFeatures: imageFeatures)
        var cache: KeyValueCache? = nil
        let hidden = languageModel.forward(embedded, positions: [Array(0..<embedded.shape[1])], cache: &cache).hidden
        return logits(gatherLast(hidden, last))
    }
}

/// Trains the built-in ShapesVQA model (stage 1: dense vision objective; stage 2: answers plus the
/// dense objective), evaluating per family on the validation split, with resumable checkpoints.
public final class VLMTrainer {
    /// The recipe.
    public let configuration: VLMTrainingConfiguration
    /// The training data.
    public let dataset: ShapesVQA
    /// The vocabulary.
    public let tokenizer: WordTokenizer
    /// The model trained.
    public let model: LlavaModel
    let module: VLMTrainingModule
    let optimizer: Adam
    public private(set) var step = 0
    var generator: SeededGenerator
    /// The relevance and attention terms of the routing objective at the last stage-2 step, the
    /// probe's recall on anchors and the supervised heads' mass on their targets.
    /// The readout term at the last stage-2 step.
    public private(set) var lastReadout: Float = .nan
    /// The relation term at the last stage-2 step (NaN when the batch had no two-object question
    /// or `relation_weight` is 0).
    public private(set) var lastRelation: Float = .nan
    /// The asked-relation term at the last stage-2 step (NaN when the batch had no spatial
    /// question or `asked_relation_weight` is 0).
    public private(set) var lastAsked: Float = .nan
    /// The class-token term at the last step (NaN without `class_weight`).
    public private(set) var lastClassLoss: Float = .nan
    /// The routing objective's last losses, anchor recall and target attention masses (for progress and metrics).
    public private(set) var lastRouting: (relevance: Float, attention: Float, recall: Float, massFirst: Float, massSecond: Float) = (.nan, .nan, .nan, .nan, .nan)

    /// The last step's token draws (each sample's tokens before the LLM and its subset after the
    /// cut, if any) and answer logits `[B·V]`, for tests.
    var lastDraws: (keeps: [[Int]], cuts: [[Int]?]) = ([], [])
    var lastAnswerLogits: [Float] = []

    /// Steps of the whole run.
    public var totalSteps: Int { configuration.samples / configuration.batchSize }

    /// The learning rate at `step`: warm-up then cosine over `[schedule_start, samples)`; steps
    /// before `schedule_start` follow their own cycle of the same shape over `[0, schedule_start)`.
    func learningRate(atStep step: Int) -> Float {
        let c = configuration
        let start = min(max(0, c.scheduleStart / c.batchSize), max(0, totalSteps - 1))
        let (origin, span) = step < start ? (0, start) : (start, totalSteps - start)
        let schedule = CosineSchedule(peak: c.learningRate, minimum: c.minimumLearningRate, totalSteps: max(1, span),
                                      warmupSteps: min(c.warmupSteps, max(1, span) / 2))
        return schedule.learningRate(atStep: step - origin)
    }

    /// A trainer with a fresh model (`load` resumes a checkpoint).
    public init(configuration: VLMTrainingConfiguration) {
        self.configuration = configuration
        dataset = ShapesVQA(imageSize: configuration.imageSize, patchSize: configuration.patchSize)
        tokenizer = .shapesVQA
        var generator = SeededGenerator(seed: configuration.seed)
        var modelGenerator = generator.fork()
        model = LlavaModel(configuration.llavaConfiguration(tokenizer: tokenizer), generator: &modelGenerator)
        // transformers initialises LLaMA's matrices with std 0.02, tuned for d = 4096
        // (0.02·√4096 ≈ 1.3 gain); at d = 128 that is a gain of 0.23 per matrix, which left
        // attention uniform and the answer blind to the image. Use std 1/√fan_in instead.
        for (name, parameter) in model.languageModel.namedParameters where name.hasSuffix("proj.weight") {
            let fanIn = parameter.value.shape[1]
            parameter.value = Tensor.normal(parameter.value.shape, standardDeviation: 1 / Float(fanIn).squareRoot(), using: &modelGenerator)
        }
        let dense = DenseVisionHead(hidden: configuration.visionHidden, grid: dataset.gridSize, generator: &modelGenerator)
        let languageDense = DenseVisionHead(hidden: configuration.textHidden, grid: dataset.gridSize, generator: &modelGenerator)
        let routing = RoutingObjective(hidden: configuration.textHidden, grid: dataset.gridSize, generator: &modelGenerator)
        // Made last, so that the draws before it are those of configurations without it.
        let classHead = configuration.classWeight > 0 ? ClassTokenHead(hidden: configuration.visionHidden, generator: &modelGenerator) : nil
        module = VLMTrainingModule(model: model, dense: dense, languageDense: languageDense, routing: routing, classHead: classHead)
        optimizer = Adam.adamW(module.namedParameters, learningRate: configuration.learningRate, weightDecay: configuration.weightDecay)
        self.generator = generator
    }

    var prompt: ShapesPrompt { ShapesPrompt(tokenizer: tokenizer, imageTokens: model.configuration.imageTokenCount) }

    func pixels(_ samples: [ShapesVQA.Sample]) -> Tensor {
        let n = configuration.imageSize
        return Tensor(shape: [samples.count, 3, n, n], scalars: samples.flatMap(\.pixels))
    }

    /// Training sample of slot `index`: `dataset.sample(index)`, or with `family_weights` the first
    /// candidate of the slot's own seeded stream that its family's weight accepts.
    func trainingSample(_ index: Int) -> ShapesVQA.Sample {
        let weights = configuration.familyWeights
        guard !weights.isEmpty else { return dataset.sample(index, split: .train) }
        let largest = ShapesVQA.Family.allCases.map { weights[$0.rawValue] ?? 1 }.max() ?? 1
        var stream = SeededGenerator(seed: configuration.seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(index) &+ 0x5EED)
        var candidate = dataset.sample(index, split: .train)
        for _ in 0..<256 {
            if Float(stream.nextDouble()) * largest < (weights[candidate.family.rawValue] ?? 1) { break }
            // Candidates beyond the plain slots' range (train indices stay below the validation split's offset).
            candidate = dataset.sample(100_000_000 + stream.integer(below: 800_000_000), split: .train)
        }
        return candidate
    }

    /// The visual tokens (ascending) from which the answer to `sample` is trained: all `tokens` of
    /// them, or — for a `pruned_share` of the samples — a subset of a random size (5–100% of the
    /// tokens) of one of three kinds: the question's objects and a random share of the rest
    /// (`referent_subset_share`); every anchor, then the objects' other patches, then background
    /// (`object_subset_share` of the others); or every anchor and a uniform random share of the rest.
    /// Draws from the trainer's generator; with `referent_subset_share` 0 and `pruned_share` 0.5
    /// the draws are those of the configurations written before these settings.
    func trainingSubset(_ sample: ShapesVQA.Sample, tokens: Int) -> [Int] {
        let c = configuration
        guard generator.bernoulli(c.prunedShare) else { return Array(0..<tokens) }
        let share = 0.05 + 0.95 * generator.nextDouble()
        let anchors = Set(sample.anchors)
        if c.referentSubsetShare > 0 && generator.nextDouble() < Double(c.referentSubsetShare) {
            // The question's objects: their anchors always, their other patches with probability ½–1.
            let referents = Set(sample.referents[0] + sample.referents[1])
            let referentAnchors = Set(referents.map { sample.anchors[$0] })
            let patchShare = 0.5 + 0.5 * generator.nextDouble()
            return (0..<tokens).filter { patch in
                if referentAnchors.contains(patch) { return true }
                if let object = sample.patchObjects[patch], referents.contains(object) { return generator.nextDouble() < patchShare }
                return generator.nextDouble() < share
            }
        }
        if c.objectSubsetShare > 0 && generator.nextDouble() < Double(c.objectSubsetShare) {
            // Object-centred: anchors, then object patches, then background, each in random order.
            let objectPatches = generator.permutation(tokens).filter { !anchors.contains($0) && sample.patchObjects[$0] != nil }
            let background = generator.permutation(tokens).filter { !anchors.contains($0) && sample.patchObjects[$0] == nil }
            let count = max(anchors.count, Int((share * Double(tokens)).rounded()))
            let ordered = anchors.sorted() + objectPatches + background
            return Array(ordered.prefix(count)).sorted()
        }
        return (0..<tokens).filter { anchors.contains($0) || generator.nextDouble() < share }
    }

    /// Groups of the batch's sequences (indices, ascending within a group) whose padded length is
    /// each group's longest: the partition of the sequences sorted by length into at most
    /// `maximumGroups` runs that minimises the rows computed, padding included, plus `groupCost`
    /// rows for each group (the fixed cost of a layer's calls). Ties keep fewer groups; the
    /// partition depends on the lengths alone, so the same batch gives the same groups everywhere.
    static func lengthGroups(_ lengths: [Int], maximumGroups: Int = 4, groupCost: Int = 128) -> [[Int]] {
        let order = lengths.indices.sorted { (lengths[$0], $0) < (lengths[$1], $1) }
        let n = order.count
        guard n > 1, maximumGroups > 1 else { return [Array(lengths.indices)] }
        // best[g][j]: the least cost of the first j sorted sequences in g groups; the last group of
        // sequences i..<j costs (j − i) · length(j − 1) + groupCost.
        var best = [[Int]](repeating: [Int](repeating: .max, count: n + 1), count: maximumGroups + 1)
        var split = [[Int]](repeating: [Int](repeating: 0, count: n + 1), count: maximumGroups + 1)
        best[0][0] = 0
        for g in 1...min(maximumGroups, n) {
            for j in g...n {
                for i in (g - 1)..<j where best[g - 1][i] != .max {
                    let cost = best[g - 1][i] + (j - i) * lengths[order[j - 1]] + groupCost
                    if cost < best[g][j] { (best[g][j], split[g][j]) = (cost, i) }
                }
            }
        }
        let groups = (1...min(maximumGroups, n)).min { (best[$0][n], $0) < (best[$1][n], $1) }!
        var runs: [[Int]] = [], end = n
        for g in stride(from: groups, through: 1, by: -1) {
            let start = split[g][end]
            runs.append(order[start..<end].sorted())
            end = start
        }
        return runs.reversed()
    }

    /// One optimisation step on the next batch; returns (total, answer, dense) losses.
    public func trainStep() throws -> (total: Float, answer: Float, dense: Float) {
        let c = configuration
        optimizer.learningRate = learningRate(atStep: step)
        let first = step * c.batchSize
        let samples = (first..<(first + c.batchSize)).map { trainingSample($0) }
        let images = pixels(samples)
        let visionOnly = first < c.visionOnlySamples
        let selected = model.visionTower.hiddenStates(images, upTo: model.featureLayerIndex)[model.featureLayerIndex]
        let features = model.selectedFeatures(selected)
        let dense = module.dense.loss(features, samples: samples)
        var total = visionOnly ? dense : dense * c.denseWeight
        if let head = module.classHead {
            let pooled = model.visionTower.postLayerNorm(selected.sliced(alongAxis: 1, 0..<1).reshaped(to: [samples.count, -1]))
            let classLoss = head.loss(pooled, samples: samples)
            lastClassLoss = classLoss.scalar
            total = total + classLoss * c.classWeight
        }
        var answerLoss: Float = .nan
        if !visionOnly {
            // Pruning augmentation: a share of the samples answer from a subset of the tokens, as the
            // pruning environment asks the model to (see `trainingSubset`).
            let projected = model.projector(features)
            let tokens = projected.shape[1]
            // Each sample's tokens before the LLM, and (for `llm_cut_share` of the pruned ones) the
            // subset kept after layer `llm_cut_layer`, where the sample reads every token before it.
            var keeps: [[Int]] = [], cuts: [[Int]?] = [], attended: [(sample: Int, count: Int)] = []
            for (b, sample) in samples.enumerated() {
                let subset = trainingSubset(sample, tokens: tokens)
                if c.llmCutShare > 0 && subset.count < tokens && generator.bernoulli(c.llmCutShare) {
                    keeps.append(Array(0..<tokens)); cuts.append(subset)
                    if c.attentionSubsetShare > 0 && generator.bernoulli(c.attentionSubsetShare) {
                        attended.append((b, max(1, Int(((0.05 + 0.45 * generator.nextDouble()) * Double(tokens)).rounded()))))
                    }
                } else {
                    keeps.append(subset); cuts.append(nil)
                }
            }
            let requests = samples.enumerated().map { b, sample in
                AnswerRequest(features: projected.sliced(alongAxis: 0, b..<(b + 1)).reshaped(to: [tokens, -1]), keep: keeps[b],
                              prefix: prompt.prefix(question: sample.question), suffix: prompt.suffix(question: sample.question))
            }
            if !attended.isEmpty {
                // FastV's choice from the model as it stands, outside the tape.
                let rows = try withInferenceMode { try model.lastTokenAttention(attended.map { requests[$0.sample] }, layer: c.llmCutLayer) }
                for (row, draw) in zip(rows, attended) { cuts[draw.sample] = largestIndices(row, count: draw.count) }
            }
            lastDraws = (keeps, cuts)
            let language = model.languageModel
            // The sequences in groups of similar length, each padded only to its own longest.
            var batch = try GroupedSequences(requests, model: model)
            let starts = requests.map(\.prefix.count)
            var routing: (relevance: Tensor, attention: Tensor)?
            var readout: Tensor?
            var relation: Tensor?
            var asked: Tensor?
            let routedLayer = max(0, language.layers.count - 2)
            for (index, layer) in language.layers.enumerated() {
                if index == routedLayer {
                    let (input, table, order) = batch.padded(language)
                    let visual = order.map { b in
                        let (sample, keep) = (samples[b], keeps[b])
                        let first = Set(sample.referents[0].map { sample.anchors[$0] }), second = Set(sample.referents[1].map { sample.anchors[$0] })
                        return keep.enumerated().map { j, patch in (row: starts[b] + j, role: first.contains(patch) ? 1 : second.contains(patch) ? 2 : 0) }
                    }
                    routing = module.routing.loss(layer: layer, input: input, rotary: table, theta: language.configuration.ropeTheta,
                                                  last: order.map { batch.last[$0] }, lastPositions: order.map { batch.positions[$0].last! },
                                                  visual: visual)
                }
                batch.apply(layer)
                if index == routedLayer {
                    let answerHidden = batch.lastRows()
                    readout = module.routing.readoutLoss(answerHidden, samples: samples)
                    if c.relationWeight > 0 { relation = module.routing.relationLoss(answerHidden, samples: samples) }
                    if c.askedRelationWeight > 0 { asked = module.routing.askedLoss(answerHidden, samples: samples) }
                }
                if index == c.llmCutLayer && cuts.contains(where: { $0 != nil }) {
                    // The cut: each sequence keeps its text up to the answer and its subset, at their positions.
                    batch.cut(keeping: keeps.indices.map { b in
                        LlavaModel.keptRows(cuts[b] ?? Array(keeps[b].indices), start: starts[b], count: keeps[b].count, last: batch.last[b])
                    }, language)
                    keeps = keeps.indices.map { cuts[$0] ?? keeps[$0] }
                }
            }
            batch.parts = batch.parts.map { language.norm($0) }
            let logits = model.logits(batch.lastRows())
            let answer = Loss.crossEntropy(logits, targets: samples.map { tokenizer.id($0.answer) })
            answerLoss = answer.scalar
            lastAnswerLogits = logits.scalars
            let (visualRows, order) = batch.rows { b in Array(starts[b]..<(starts[b] + keeps[b].count)) }
            let patches = order.flatMap { b in keeps[b].map { (sample: samples[b], patch: $0) } }
            let languageDense = module.languageDense.loss(rows: visualRows, patches: patches)
            total = total + answer + languageDense * c.denseWeight + (routing!.relevance + routing!.attention + readout!) * c.routingWeight
            if let relation { total = total + relation * (c.routingWeight * c.relationWeight) }
            if let asked { total = total + asked * (c.routingWeight * c.askedRelationWeight) }
            lastAsked = asked?.scalar ?? .nan
            lastReadout = readout!.scalar
            lastRelation = relation?.scalar ?? .nan
            lastRouting = (routing!.relevance.scalar, routing!.attention.scalar, module.routing.relevanceRecall,
                           module.routing.targetMass[0], module.routing.targetMass[1])
        }
        guard total.scalar.isFinite else { throw VLMError.invalidInput(reason: "the training loss became non-finite at step \(step); lower the learning rate") }
        optimizer.zeroGradients()
        total.backward()
        clipGradientNorm(module.parameters, maxNorm: 1)
        optimizer.step()
        step += 1
        return (total.scalar, answerLoss, dense.scalar)
    }

    /// Accuracy per family (and overall) on `count` samples of `split`, optionally keeping only a
    /// random `fraction` of each image's visual tokens (seeded), in batches.
    public func evaluate(split: ShapesVQA.Split, count: Int, keepFraction: Double = 1, seed: UInt64 = 0) throws -> [String: Double] {
        try VLMEvaluation.accuracy(model: model, dataset: dataset, tokenizer: tokenizer, split: split, count: count,
                                   keepFraction: keepFraction, seed: seed)
    }

    // MARK: Checkpoints

    public func save(to url: URL) throws {
        try Checkpoint.save(model: module, optimizer: optimizer, generators: ["data": generator],
                            metadata: ["step": String(step)], to: url)
    }

    /// Starts from a trained model's weights (e.g. a shipped model directory, whose training
    /// checkpoint is gone): every LLaVA parameter is copied from `trained`, the objectives' heads
    /// and the optimizer start fresh, and training begins at sample `schedule_start` — the samples
    /// `trained` has seen — so that a later stage draws fresh samples and its warm restart begins
    /// at once. `source` names the model in errors.
    public func initialize(from trained: LlavaModel, source: String) throws {
        let weights = Dictionary(trained.namedParameters.map { ($0.name, $0.parameter) }, uniquingKeysWith: { first, _ in first })
        let names = Set(model.namedParameters.map(\.name))
        if let extra = weights.keys.sorted().first(where: { !names.contains($0) }) {
            throw VLMError.invalidInput(reason: "\(source): tensor '\(extra)' has no place in the model this configuration builds; check its sizes")
        }
        // Every tensor is checked before any is copied, so a refused model leaves the trainer as it was.
        let values = try model.namedParameters.map { name, parameter -> Tensor in
            guard let value = weights[name]?.value else {
                throw VLMError.invalidInput(reason: "\(source): tensor '\(name)' is missing for the model this configuration builds")
            }
            guard value.shape == parameter.value.shape else {
                throw VLMError.invalidInput(reason: "\(source): tensor '\(name)' has shape \(value.shape), the configuration builds \(parameter.value.shape); use the configuration the model was trained with")
            }
            return value
        }
        for ((_, parameter), value) in zip(model.namedParameters, values) { parameter.value = value }
        step = configuration.scheduleStart / configuration.batchSize
    }

    public func load(from url: URL) throws {
        // Checkpoints from before the relation probes lack them: they start fresh there.
        let (generators, metadata) = try Checkpoint.load(from: url, model: module, optimizer: optimizer,
                                                         optionalParameters: ["routing.relation.weight", "routing.relation.bias",
                                                                              "routing.asked.weight", "routing.asked.bias"])
        step = Int(metadata["step"] ?? "0") ?? 0
        if let g = generators["data"] { generator = g }
    }
}

/// Accuracy of a LLaVA model on ShapesVQA.
public enum VLMEvaluation {
    /// Where the vision tower's class attention — the score of the pruners that act before the
    /// language model (CLS top-k, VisPruner) — puts its mass on the first `count` ShapesVQA
    /// validation images: on the objects' anchors (the patches holding their centres), on their
    /// other patches, and (the rest) on background; the share of patches objects cover; and the
    /// share of anchors among the top tokens by it when keeping each fraction in `keeps`
    /// (⌊fraction · N⌉ tokens, at least 1).
    public static func classAttention(model: LlavaModel, dataset: ShapesVQA, count: Int, keeps: [Double] = [1.0 / 3, 2.0 / 9, 1.0 / 9])
        -> (anchorMass: Double, objectMass: Double, objectArea: Double, anchorRecall: [(keep: Double, recall: Double)]) {
        let size = dataset.imageSize
        var (anchorMass, objectMass, objectArea) = (0.0, 0.0, 0.0)
        var found = [Int](repeating: 0, count: keeps.count), anchorTotal = 0
        for start in stride(from: 0, to: count, by: 16) {
            let samples = (start..<min(count, start + 16)).map { dataset.sample($0, split: .validation) }
            let attention = withInferenceMode { model.classAttention(Tensor(shape: [samples.count, 3, size, size], scalars: samples.flatMap(\.pixels))) }
            let n = attention.shape[1], a = attention.scalars
            for (b, sample) in samples.enumerated() {
                let row = a[(b * n)..<((b + 1) * n)].map(Double.init)
                let total = row.reduce(0, +)
                let anchors = Set(sample.anchors)
                for (patch, value) in row.enumerated() where sample.patchObjects[patch] != nil {
                    if anchors.contains(patch) { anchorMass += value / total } else { objectMass += value / total }
                }
                objectArea += Double(sample.patchObjects.filter { $0 != nil }.count) / Double(n)
                let ranked = row.indices.sorted { row[$0] != row[$1] ? row[$0] > row[$1] : $0 < $1 }
                for (i, keep) in keeps.enumerated() {
                    let top = Set(ranked.prefix(max(1, min(n, Int((keep * Double(n)).rounded())))))
                    found[i] += anchors.filter(top.contains).count
                }
                anchorTotal += anchors.count
            }
        }
        let c = Double(count)
        return (anchorMass / c, objectMass / c, objectArea / c, zip(keeps, found).map { ($0, Double($1) / Double(max(1, anchorTotal))) })
    }

    /// Accuracy per family and overall of `model` on `count` samples of `split`. `answered`, when
    /// given, sees each sample with the answer the model gave (for confusion tables).
    public static func accuracy(model: LlavaModel, dataset: ShapesVQA, tokenizer: WordTokenizer, split: ShapesVQA.Split, count: Int,
                                keepFraction: Double = 1, seed: UInt64 = 0, batchSize: Int = 32,
                                answered: ((ShapesVQA.Sample, String) -> Void)? = nil) throws -> [String: Double] {
        var correct: [String: Int] = [:], total: [String: Int] = [:]
        var generator = SeededGenerator(seed: seed)
        let n = dataset.imageSize
        for start in stride(from: 0, to: count, by: batchSize) {
            let samples = (start..<min(count, start + batchSize)).map { dataset.sample($0, split: split) }
            try withInferenceMode {
                var features = model.imageFeatures(Tensor(shape: [samples.count, 3, n, n], scalars: samples.flatMap(\.pixels)))
                let tokens = features.shape[1]
                var imageTokens = tokens
                if keepFraction < 1 {
                    let kept = max(1, Int((Double(tokens) * keepFraction).rounded()))
                    let rows = (0..<samples.count).map { b -> Tensor in
                        let keep = generator.permutation(tokens).prefix(kept).sorted()
                        return features.sliced(alongAxis: 0, b..<(b + 1)).indexSelect(Array(keep), alongAxis: 1)
                    }
                    features = Tensor.concatenated(rows, alongAxis: 0)
                    imageTokens = kept
                }
                let batchPrompt = ShapesPrompt(tokenizer: tokenizer, imageTokens: imageTokens)
                let (ids, last) = batchPrompt.batch(samples.map(\.question))
                let logits = try model.answerLogits(ids: ids, last: last, imageFeatures: features)
                let vocabulary = logits.shape[1]
                let values = logits.scalars
                for (b, sample) in samples.enumerated() {
                    var best = 0
                    for v in 1..<vocabulary where values[b * vocabulary + v] > values[b * vocabulary + best] { best = v }
                    let right = tokenizer.tokens[best] == sample.answer
                    answered?(sample, tokenizer.tokens[best])
                    correct[sample.family.rawValue, default: 0] += right ? 1 : 0
                    total[sample.family.rawValue, default: 0] += 1
                }
            }
        }
        var result = total.mapValues { _ in 0.0 }
        for (family, n) in total { result[family] = Double(correct[family] ?? 0) / Double(n) }
        result["overall"] = Double(correct.values.reduce(0, +)) / Double(max(1, total.values.reduce(0, +)))
        return result
    }
}

/// A batch of sequences of different lengths held as groups of similar length
/// (`VLMTrainer.lengthGroups`), each group padded only to its own longest sequence: a layer runs on
/// each group in turn, so the rows past a short sequence's end in a batch padded to the longest —
/// most of the rows of a pruned answer — are not computed. Causal attention keeps each sequence's
/// rows what they are in one padded batch.
struct GroupedSequences {
    /// Each group's sequences (batch indices, ascending).
    private(set) var groups: [[Int]]
    /// Each group's hidden states `[n, longest, hidden]`.
    var parts: [Tensor]
    /// Each group's rotary tables: `[longest, d]` while every sequence sits at positions 0..<n,
    /// `[n, longest, d]` after a cut.
    private var tables: [(cos: Tensor, sin: Tensor)]
    /// Each sequence's positions, one per row; its last row is its answer's.
    private(set) var positions: [[Int]]
    /// Each sequence's group and place in it.
    private var slots: [(group: Int, index: Int)] = []

    /// Rows a group costs besides its own (`VLMTrainer.lengthGroups`).
    let groupCost: Int

    /// Each sequence's answer row.
    var last: [Int] { positions.map { $0.count - 1 } }

    /// The requests' embedded sequences (`VisionLanguageModel.requestBatch` for each group).
    init(_ requests: [AnswerRequest], model: LlavaModel, groupCost: Int = 128) throws {
        let lengths = requests.map { $0.prefix.count + $0.keep.count + $0.suffix.count }
        self.groupCost = groupCost
        groups = VLMTrainer.lengthGroups(lengths, groupCost: groupCost)
        parts = try groups.map { group in try model.requestBatch(group.map { requests[$0] }).embeddings }
        positions = lengths.map { Array(0..<$0) }
        tables = parts.map { model.languageModel.rotary(positions: [Array(0..<$0.shape[1])]) }
        placeSlots()
    }

    private mutating func placeSlots() {
        slots = Array(repeating: (0, 0), count: positions.count)
        for (g, group) in groups.enumerated() { for (i, b) in group.enumerated() { slots[b] = (g, i) } }
    }

    /// `layer` on every group.
    mutating func apply(_ layer: LlamaDecoderLayer) {
        for g in parts.indices {
            var keys: Tensor?, values: Tensor?
            parts[g] = layer(parts[g], rotary: tables[g], cachedKeys: &keys, cachedValues: &values, causal: true).output
        }
    }

    /// Rows `pick(b)` of each sequence `b`, stacked `[Σ, hidden]` in the order `order` of the
    /// sequences (group by group).
    func rows(_ pick: (Int) -> [Int]) -> (rows: Tensor, order: [Int]) {
        let pieces = groups.indices.map { g in
            let (n, length, width) = (parts[g].shape[0], parts[g].shape[1], parts[g].shape[2])
            return parts[g].reshaped(to: [n * length, width])
                .indexSelect(groups[g].enumerated().flatMap { i, b in pick(b).map { i * length + $0 } }, alongAxis: 0)
        }
        return (pieces.count == 1 ? pieces[0] : Tensor.concatenated(pieces, alongAxis: 0), Array(groups.joined()))
    }

    /// Each sequence's answer row `[B, hidden]`, in batch order.
    func lastRows() -> Tensor {
        let last = self.last
        let (rows, order) = rows { [last[$0]] }
        var inverse = [Int](repeating: 0, count: order.count)
        for (place, b) in order.enumerated() { inverse[b] = place }
        return order == Array(order.indices) ? rows : rows.indexSelect(inverse, alongAxis: 0)
    }

    /// The whole batch padded to its longest sequence `[B, T, hidden]`, its rotary tables, and the
    /// order of its sequences (group by group).
    func padded(_ language: LlamaModel) -> (input: Tensor, rotary: (cos: Tensor, sin: Tensor), order: [Int]) {
        let longest = parts.map { $0.shape[1] }.max()!
        let order = Array(groups.joined())
        let input = Tensor.concatenated(parts.map { part in
            let (n, length, width) = (part.shape[0], part.shape[1], part.shape[2])
            return length < longest ? Tensor.concatenated([part, Tensor.zeros([n, longest - length, width])], alongAxis: 1) : part
        }, alongAxis: 0)
        let contiguous = positions.allSatisfy { $0.last == $0.count - 1 }
        let table = contiguous ? language.rotary(positions: [Array(0..<longest)])
            : language.rotary(positions: order.map { Self.padding(positions[$0], to: longest) })
        return (input, table, order)
    }

    /// `rows` padded to `count` by repeating its last.
    private static func padding(_ rows: [Int], to count: Int) -> [Int] {
        rows + Array(repeating: rows.last!, count: count - rows.count)
    }

    /// Keeps rows `kept[b]` (ascending, ending at its answer row) of each sequence `b`, at their
    /// positions, and groups the shorter sequences anew.
    mutating func cut(keeping kept: [[Int]], _ language: LlamaModel) {
        let newGroups = VLMTrainer.lengthGroups(kept.map(\.count), groupCost: groupCost)
        var newParts: [Tensor] = [], newTables: [(cos: Tensor, sin: Tensor)] = []
        for group in newGroups {
            let longest = group.map { kept[$0].count }.max()!
            newParts.append(Tensor.concatenated(group.map { b in
                let (g, i) = slots[b]
                return parts[g].sliced(alongAxis: 0, i..<(i + 1)).indexSelect(Self.padding(kept[b], to: longest), alongAxis: 1)
            }, alongAxis: 0))
            newTables.append(language.rotary(positions: group.map { b in Self.padding(kept[b].map { positions[b][$0] }, to: longest) }))
        }
        positions = kept.indices.map { b in kept[b].map { positions[b][$0] } }
        (groups, parts, tables) = (newGroups, newParts, newTables)
        placeSlots()
    }
}

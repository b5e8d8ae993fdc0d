import Foundation
import TensorCore

/// ShapesVQA: a procedural, CLEVR-like visual-question dataset, deterministic from a seed.
///
/// Each image (`imageSize`² RGB, default 64 px → a 16×16 grid of 4-px patches) shows 3–6 objects —
/// shape ∈ {circle, square, triangle}, colour ∈ CLEVR's {gray, red, blue, green, brown, purple,
/// cyan, yellow}, size ∈ {small, large} — on a textured, noisy background, so background tokens are
/// not trivially empty. Questions come from five CLEVR-style families with one-word answers:
///
/// | family | example | answers |
/// |---|---|---|
/// | attribute | "what color is the large circle ?" / "what shape is the small red object ?" / "what size is the blue square ?" | colour, shape, size |
/// | existence | "is there a green triangle ?" | yes / no |
/// | count | "how many red objects are there ?" | 0 … 6 |
/// | spatial | "is the red circle left of the blue square ?" (left/right/above/below) | yes / no |
/// | compare | "are there more circles than squares ?" | yes / no |
///
/// Answers are balanced per family (yes/no drawn 50/50 before the question is built; attribute
/// targets and counts spread over their values), so guessing the majority answer per family stays
/// low — `ShapesVQA.majorityBaseline` measures it. Sample `i` of a split comes from its own
/// generator seeded by `(split offset + i)`; the splits use disjoint seed ranges.
public struct ShapesVQA: Sendable {
    /// Disjoint seed ranges: train, validation, test.
    public enum Split: String, Sendable, CaseIterable, Codable {
        case train, validation, test
        /// Seeds of split samples start here; the ranges are disjoint (10⁹ apart).
        public var seedOffset: UInt64 {
            switch self {
            case .train: return 0
            case .validation: return 1_000_000_000
            case .test: return 2_000_000_000
            }
        }
    }

    /// The question families.
    public enum Family: String, Sendable, CaseIterable, Codable {
        case attribute, existence, count, spatial, compare
    }

    /// Shape names.
    public static let shapes = ["circle", "square", "triangle"]
    /// Colour names (CLEVR's eight).
    public static let colors = ["gray", "red", "blue", "green", "brown", "purple", "cyan", "yellow"]
    /// Size names.
    public static let sizes = ["small", "large"]
    static let rgb: [[Float]] = [
        [0.50, 0.50, 0.50], [0.85, 0.15, 0.15], [0.15, 0.30, 0.90], [0.15, 0.70, 0.20],
        [0.55, 0.35, 0.15], [0.60, 0.20, 0.75], [0.15, 0.80, 0.85], [0.95, 0.85, 0.15],
    ]

    /// One object of a scene.
    public struct Object: Sendable, Equatable {
        /// Index into `shapes`.
        public var shape: Int
        /// Index into `colors`.
        public var color: Int
        /// Index into `sizes`.
        public var size: Int
        /// Centre in pixels.
        public var x: Float
        /// Centre row, in pixels.
        public var y: Float
        /// Radius in pixels.
        public var radius: Float { size == 0 ? 4.5 : 7.5 }
    }

    /// One generated sample.
    public struct Sample: Sendable {
        /// `[3, imageSize, imageSize]`, values in [−1, 1] (CLIP-style normalisation of [0, 1]).
        public var pixels: [Float]
        /// The scene's objects.
        public var objects: [Object]
        /// The question's family.
        public var family: Family
        /// The question, lower-case words.
        public var question: String
        /// The one-word answer.
        public var answer: String
        /// Per patch: index of the object covering its centre (or nil for background).
        public var patchObjects: [Int?]
        /// The objects the question is about, in two roles: `referents[0]` the first phrase (the
        /// described object; the counted, sought or compared-first objects), `referents[1]` the
        /// second (the reference object of a spatial relation; the compared-second objects; empty
        /// for the other families). Used by the trainer's routing objective.
        public var referents: [[Int]]
        /// Per object: its anchor, the patch that contains its centre.
        public var anchors: [Int]
    }

    /// Image side in pixels.
    public let imageSize: Int
    /// Patch side in pixels (the grid is imageSize / patchSize).
    public let patchSize: Int

    /// A generator of `imageSize`-pixel images.
    public init(imageSize: Int = 64, patchSize: Int = 4) {
        precondition(imageSize % patchSize == 0, "ShapesVQA: image size \(imageSize) not divisible by patch size \(patchSize)")
        self.imageSize = imageSize
        self.patchSize = patchSize
    }

    public var gridSize: Int { imageSize / patchSize }

    /// Sample `index` of `split`.
    public func sample(_ index: Int, split: Split) -> Sample {
        var generator = SeededGenerator(seed: split.seedOffset &+ UInt64(index))
        let objects = placeObjects(&generator)
        let family = Family.allCases[generator.integer(below: Family.allCases.count)]
        let (question, answer, referents) = makeQuestion(family, objects: objects, &generator)
        return Sample(pixels: render(objects, &generator), objects: objects, family: family, question: question,
                      answer: answer, patchObjects: patchObjects(objects), referents: referents, anchors: anchors(objects))
    }

    /// The patch containing each object's centre.
    func anchors(_ objects: [Object]) -> [Int] {
        let grid = gridSize, p = Float(patchSize)
        return objects.map { min(grid - 1, Int($0.y / p)) * grid + min(grid - 1, Int($0.x / p)) }
    }

    func placeObjects(_ g: inout SeededGenerator) -> [Object] {
        let count = 3 + g.integer(below: 4)
        var objects: [Object] = []
        var attempts = 0
        while objects.count < count && attempts < 500 {
            attempts += 1
            var object = Object(shape: g.integer(below: 3), color: g.integer(below: 8), size: g.integer(below: 2), x: 0, y: 0)
            let r = object.radius
            object.x = r + 1 + g.nextFloat() * (Float(imageSize) - 2 * r - 2)
            object.y = r + 1 + g.nextFloat() * (Float(imageSize) - 2 * r - 2)
            // No overlap, and centres distinct enough that left/right/above/below are unambiguous.
            let clear = objects.allSatisfy { other in
                let dx = other.x - object.x, dy = other.y - object.y
                return (dx * dx + dy * dy).squareRoot() > other.radius + r + 2 && abs(dx) > 3 && abs(dy) > 3
            }
            if clear { objects.append(object) }
        }
        return objects
    }

    func covers(_ object: Object, _ px: Float, _ py: Float) -> Bool {
        let dx = px - object.x, dy = py - object.y, r = object.radius
        switch object.shape {
        case 0: return dx * dx + dy * dy <= r * r
        case 1: return abs(dx) <= r * 0.85 && abs(dy) <= r * 0.85
        default:  // upward triangle with apex at y − r and base at y + r·0.8
            let top = object.y - r, bottom = object.y + r * 0.8
            guard py >= top && py <= bottom else { return false }
            let half = (py - top) / (bottom - top) * r
            return abs(dx) <= half
        }
    }

    func render(_ objects: [Object], _ g: inout SeededGenerator) -> [Float] {
        let n = imageSize
        var pixels = [Float](repeating: 0, count: 3 * n * n)
        // Background: a random smooth two-tone gradient plus per-pixel noise and a stripe texture.
        let base = (0..<3).map { _ in 0.25 + 0.35 * g.nextFloat() }
        let tilt = (0..<3).map { _ in (g.nextFloat() - 0.5) * 0.3 }
        let stripe = 0.04 + 0.04 * g.nextFloat(), period = 3 + Float(g.integer(below: 5))
        for y in 0..<n {
            for x in 0..<n {
                let t = Float(x + y) / Float(2 * n)
                let texture = stripe * Foundation.sin(Float(x) * 6.2832 / period + Float(y) * 0.7)
                for c in 0..<3 {
                    let noise = (g.nextFloat() - 0.5) * 0.12
                    pixels[(c * n + y) * n + x] = base[c] + tilt[c] * t + texture + noise
                }
            }
        }
        for object in objects {
            let color = Self.rgb[object.color]
            let r = Int(object.radius.rounded(.up)) + 1
            for y in max(0, Int(object.y) - r)...min(n - 1, Int(object.y) + r) {
                for x in max(0, Int(object.x) - r)...min(n - 1, Int(object.x) + r) where covers(object, Float(x) + 0.5, Float(y) + 0.5) {
                    for c in 0..<3 {
                        let shade = (g.nextFloat() - 0.5) * 0.06
                        pixels[(c * n + y) * n + x] = color[c] + shade
                    }
                }
            }
        }
        return pixels.map { min(max($0, 0), 1) * 2 - 1 }
    }

    func patchObjects(_ objects: [Object]) -> [Int?] {
        let grid = gridSize, p = Float(patchSize)
        return (0..<(grid * grid)).map { index in
            let cx = (Float(index % grid) + 0.5) * p, cy = (Float(index / grid) + 0.5) * p
            // The object drawn last wins, as in `render`.
            return objects.indices.last { covers(objects[$0], cx, cy) }
        }
    }

    /// A phrase that picks out exactly one object ("the large circle", "the red object", …), or nil.
    func uniqueDescription(of index: Int, in objects: [Object], omitting omitted: String, _ g: inout SeededGenerator) -> String? {
        let object = objects[index]
        var options: [(size: Bool, color: Bool, shape: Bool)] = []
        for mask in 1..<8 {
            let option = (size: mask & 1 != 0, color: mask & 2 != 0, shape: mask & 4 != 0)
            if omitted == "size" && option.size || omitted == "color" && option.color || omitted == "shape" && option.shape { continue }
            let matches = objects.filter { other in
                (!option.size || other.size == object.size) && (!option.color || other.color == object.color) && (!option.shape || other.shape == object.shape)
            }
            if matches.count == 1 { options.append(option) }
        }
        guard !options.isEmpty else { return nil }
        let option = options[g.integer(below: options.count)]
        var words = ["the"]
        if option.size { words.append(Self.sizes[object.size]) }
        if option.color { words.append(Self.colors[object.color]) }
        words.append(option.shape ? Self.shapes[object.shape] : "object")
        return words.joined(separator: " ")
    }

    func makeQuestion(_ family: Family, objects: [Object], _ g: inout SeededGenerator) -> (String, String, [[Int]]) {
        switch family {
        case .attribute:
            for _ in 0..<20 {
                let attribute = ["color", "shape", "size"][g.integer(below: 3)]
                let index = g.integer(below: objects.count)
                guard let phrase = uniqueDescription(of: index, in: objects, omitting: attribute, &g) else { continue }
                let object = objects[index]
                let answer = attribute == "color" ? Self.colors[object.color] : attribute == "shape" ? Self.shapes[object.shape] : Self.sizes[object.size]
                return ("what \(attribute) is \(phrase) ?", answer, [[index], []])
            }
            return makeQuestion(.count, objects: objects, &g)
        case .existence:
            let wantYes = g.bernoulli(0.5)
            let present = Set(objects.map { $0.color * 3 + $0.shape })
            let candidates = (0..<24).filter { present.contains($0) == wantYes }
            let pick = candidates[g.integer(below: candidates.count)]
            let found = objects.indices.filter { objects[$0].color == pick / 3 && objects[$0].shape == pick % 3 }
            return ("is there a \(Self.colors[pick / 3]) \(Self.shapes[pick % 3]) ?", wantYes ? "yes" : "no", [found, []])
        case .count:
            // Every (attribute, value) question with its count; draw the count first, uniformly over
            // the counts this image offers, so that answers spread instead of piling up on 0 and 1.
            var options: [(String, [Int])] = []
            for color in 0..<8 { options.append(("how many \(Self.colors[color]) objects are there ?", objects.indices.filter { objects[$0].color == color })) }
            for shape in 0..<3 { options.append(("how many \(Self.shapes[shape])s are there ?", objects.indices.filter { objects[$0].shape == shape })) }
            for size in 0..<2 { options.append(("how many \(Self.sizes[size]) objects are there ?", objects.indices.filter { objects[$0].size == size })) }
            let counts = Array(Set(options.map(\.1.count))).sorted()
            let target = counts[g.integer(below: counts.count)]
            let matching = options.filter { $0.1.count == target }
            let pick = matching[g.integer(below: matching.count)]
            return (pick.0, "\(pick.1.count)", [pick.1, []])
        case .spatial:
            for _ in 0..<20 {
                let a = g.integer(below: objects.count), b = g.integer(below: objects.count)
                guard a != b, let first = uniqueDescription(of: a, in: objects, omitting: "", &g),
                      let second = uniqueDescription(of: b, in: objects, omitting: "", &g) else { continue }
                let relation = ["left of", "right of", "above", "below"][g.integer(below: 4)]
                let (oa, ob) = (objects[a], objects[b])
                let truth: Bool
                switch relation {
                case "left of": truth = oa.x < ob.x
                case "right of": truth = oa.x > ob.x
                case "above": truth = oa.y < ob.y
                default: truth = oa.y > ob.y
                }
                return ("is \(first) \(relation) \(second) ?", truth ? "yes" : "no", [[a], [b]])
            }
            return makeQuestion(.existence, objects: objects, &g)
        case .compare:
            for _ in 0..<20 {
                let wantYes = g.bernoulli(0.5)
                let x = g.integer(below: 3), y = (x + 1 + g.integer(below: 2)) % 3
                let (ix, iy) = (objects.indices.filter { objects[$0].shape == x }, objects.indices.filter { objects[$0].shape == y })
                guard ix.count != iy.count, (ix.count > iy.count) == wantYes else { continue }
                return ("are there more \(Self.shapes[x])s than \(Self.shapes[y])s ?", wantYes ? "yes" : "no", [ix, iy])
            }
            return makeQuestion(.existence, objects: objects, &g)
        }
    }

    /// Every word a question or answer can contain, in a fixed order.
    public static var words: [String] {
        var words = ["what", "color", "shape", "size", "is", "the", "object", "is", "there", "a", "how", "many", "objects",
                     "are", "left", "of", "right", "above", "below", "more", "than", "?", "yes", "no"]
        words += colors + shapes + shapes.map { $0 + "s" } + sizes + (0...6).map(String.init)
        var seen = Set<String>()
        return words.filter { seen.insert($0).inserted }
    }

    /// The answer vocabulary.
    public static var answers: [String] { colors + shapes + sizes + ["yes", "no"] + (0...6).map(String.init) }

    /// Share of the most common answer per family over `count` samples of `split` (the accuracy of
    /// always guessing it).
    public func majorityBaseline(split: Split, count: Int) -> [Family: Double] {
        var counts: [Family: [String: Int]] = [:]
        for index in 0..<count {
            let sample = self.sample(index, split: split)
            counts[sample.family, default: [:]][sample.answer, default: 0] += 1
        }
        return counts.mapValues { answers in Double(answers.values.max() ?? 0) / Double(max(1, answers.values.reduce(0, +))) }
    }
}

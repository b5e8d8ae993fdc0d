import Foundation
import TensorCore
import VLM

/// `prunegym data preview`: writes ShapesVQA samples as PNG images with their questions.
enum DataCommand {
    static let help = """
        usage: prunegym data preview [--count N] [--out DIR] [--split train|validation|test] [--start I]

        Writes N ShapesVQA samples as PNG files (sample-000.png, …) and questions.txt with each image's
        question, answer, family and objects. The majority-answer baseline per family (over 2000
        samples) is printed.

        example:
          swift run -c release prunegym data preview --count 8 --out /tmp/shapes
        """

    static func run(_ arguments: [String]) throws {
        guard arguments.first == "preview" else {
            if arguments.first == nil || arguments.first == "--help" || arguments.first == "-h" { print(help); return }
            throw UsageError(message: "prunegym data: unknown command '\(arguments[0])'; commands: preview")
        }
        let args = try Arguments(command: "data preview", Array(arguments.dropFirst()), flags: [], options: ["count", "out", "split", "start"])
        if args.flag("help") { print(help); return }
        let count = try args.integer("count", default: 8, range: 1...100_000)
        let start = try args.integer("start", default: 0)
        guard let split = ShapesVQA.Split(rawValue: args.string("split", default: "train")) else {
            throw UsageError(message: "prunegym data preview: --split must be train, validation or test")
        }
        let out = URL(fileURLWithPath: args.string("out", default: "runs/shapes-preview"))
        try AtomicFile.prepareDirectory(out)
        let dataset = ShapesVQA()
        var lines: [String] = []
        for index in start..<(start + count) {
            let sample = dataset.sample(index, split: split)
            let name = String(format: "sample-%03d.png", index)
            try PNG.write(channelsFirst: sample.pixels.map { ($0 + 1) / 2 }, width: dataset.imageSize, height: dataset.imageSize, to: out.appendingPathComponent(name))
            let objects = sample.objects.map { "\(ShapesVQA.sizes[$0.size]) \(ShapesVQA.colors[$0.color]) \(ShapesVQA.shapes[$0.shape]) at (\(Int($0.x)), \(Int($0.y)))" }
            lines.append("\(name)\t[\(sample.family.rawValue)] \(sample.question)\t\(sample.answer)\t\(objects.joined(separator: "; "))")
        }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: out.appendingPathComponent("questions.txt"))
        print("wrote \(count) images and questions.txt to \(out.path)")
        let baseline = dataset.majorityBaseline(split: split, count: 2000)
        for family in ShapesVQA.Family.allCases {
            print("majority answer, \(family.rawValue): " + String(format: "%.1f%%", 100 * (baseline[family] ?? 0)))
        }
    }
}

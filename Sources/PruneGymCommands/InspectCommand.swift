import Foundation
import TensorCore

/// `prunegym inspect FILE.safetensors`: validates a safetensors file and lists its tensors.
enum InspectCommand {
    static let help = """
        usage: prunegym inspect FILE.safetensors [--values]

        Validates the file strictly (header, dtypes, offsets, sizes) and lists each tensor's name,
        dtype and shape, with the metadata. --values adds min / mean / max of each tensor.

        example:
          swift run prunegym inspect Tests/Fixtures/hf-llava-tiny/model.safetensors
        """

    static func run(_ arguments: [String]) throws {
        let args = try Arguments(command: "inspect", arguments, flags: ["values"], options: [])
        if args.flag("help") {
            print(help)
            return
        }
        guard args.positional.count == 1 else {
            throw UsageError(message: "prunegym inspect: give exactly one file, e.g. prunegym inspect model.safetensors")
        }
        let file = try SafeTensorsFile(path: args.positional[0])
        print("\(file.path): \(file.entries.count) tensors")
        for (key, value) in file.metadata.sorted(by: { $0.key < $1.key }) { print("  metadata \(key) = \(value)") }
        for entry in file.entries.sorted(by: { $0.name < $1.name }) {
            var line = "  \(entry.name)  \(entry.dtype.rawValue)  \(entry.shape)"
            if args.flag("values"), entry.elementCount > 0 {
                let values = try file.tensor(entry.name).scalars
                let mean = values.reduce(0.0) { $0 + Double($1) } / Double(values.count)
                line += String(format: "  min %.4g mean %.4g max %.4g", Double(values.min()!), mean, Double(values.max()!))
            }
            print(line)
        }
    }
}

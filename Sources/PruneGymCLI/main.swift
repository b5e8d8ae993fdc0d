import Foundation

let overview = """
    prunegym — learn to prune the visual tokens of a vision-language model with RL.

    usage: prunegym <command> [options]     (prunegym <command> --help for details)

    commands:
      demo      train a small transformer on a toy task: the numeric core end to end
      inspect   validate a safetensors file and list its tensors

    example:
      swift run -c release prunegym demo
    """

let arguments = Array(CommandLine.arguments.dropFirst())
do {
    switch arguments.first {
    case "demo": try DemoCommand.run(Array(arguments.dropFirst()))
    case "inspect": try InspectCommand.run(Array(arguments.dropFirst()))
    case nil, "--help", "-h", "help": print(overview)
    case let other?:
        throw UsageError(message: "prunegym: unknown command '\(other)'. Commands: demo, inspect (prunegym --help)")
    }
} catch {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}

import Foundation
import TensorCore
import Testing

@Suite("File errors")
struct FileErrorTests {
    func temporary() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("prunegym-file-errors-\(UUID().uuidString)")
    }

    @Test("an output directory is created with its parents, kept when it exists, and refused by name when it cannot be")
    func prepareDirectory() throws {
        let root = temporary()
        defer { try? FileManager.default.removeItem(at: root) }
        let nested = root.appendingPathComponent("a/b/c")
        try AtomicFile.prepareDirectory(nested)
        var isDirectory: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: nested.path, isDirectory: &isDirectory) && isDirectory.boolValue)
        try AtomicFile.write(Data("kept".utf8), to: nested.appendingPathComponent("x"))
        try AtomicFile.prepareDirectory(nested)
        #expect(try Data(contentsOf: nested.appendingPathComponent("x")) == Data("kept".utf8), "an existing directory keeps its files")

        let file = nested.appendingPathComponent("x")
        let notADirectory = #expect(throws: FileError.self) { try AtomicFile.prepareDirectory(file) }
        #expect(notADirectory?.description == "\(file.path): is a file, not a directory; choose another output path")
        let under = #expect(throws: FileError.self) { try AtomicFile.prepareDirectory(file.appendingPathComponent("y")) }
        #expect(under?.path == file.appendingPathComponent("y").path)
        #expect(under?.reason.hasPrefix("cannot create the directory (") ?? false, "\(String(describing: under))")
        #expect(!(under?.reason.contains("NSCocoaErrorDomain") ?? true))
    }

    @Test("a Foundation file error reads as the file and the system's reason, not as an NSError dump")
    func foundation() throws {
        let missing = temporary().appendingPathComponent("missing.json")
        let error = #expect(throws: (any Error).self) { _ = try Data(contentsOf: missing) }
        let file = try #require(error.flatMap { FileError(foundation: $0) })
        #expect(file.path == missing.path)
        #expect(file.reason == String(cString: strerror(ENOENT)), "\(file.reason)")
        struct Other: Error {}
        #expect(FileError(foundation: Other()) == nil, "an error that names no file is left as it is")
    }
}

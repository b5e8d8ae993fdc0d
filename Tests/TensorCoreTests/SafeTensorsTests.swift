import Foundation
import Testing
import TensorCore
import TestSupport

@Suite("safetensors reading, writing and validation")
struct SafeTensorsTests {
    struct Listing: Decodable {
        struct Entry: Decodable {
            let dtype: String
            let shape: [Int]
            let sum: Double
            let sum_of_squares: Double
        }
        let metadata: [String: String]
        let tensors: [String: Entry]
    }

    @Test("reading the transformers checkpoint gives the names, shapes, dtypes and values NumPy reads", arguments: ["model", "golden"])
    func fixture(name: String) throws {
        let listing = try JSONDecoder().decode(
            Listing.self, from: Data(contentsOf: Fixtures.url("hf-llava-tiny/\(name).tensors.json")))
        let file = try SafeTensorsFile(contentsOf: Fixtures.url("hf-llava-tiny/\(name).safetensors"))
        #expect(Set(file.tensorNames) == Set(listing.tensors.keys))
        #expect(file.metadata == listing.metadata)
        for (tensorName, expected) in listing.tensors {
            let entry = try file.entry(tensorName)
            #expect(entry.dtype.rawValue == expected.dtype, "\(tensorName)")
            #expect(entry.shape == expected.shape, "\(tensorName)")
            let values = try file.tensor(tensorName).scalars.map(Double.init)
            let sum = values.reduce(0, +), squares = values.reduce(0) { $0 + $1 * $1 }
            #expect(abs(sum - expected.sum) <= 1e-6 * max(1, abs(expected.sum)), "\(tensorName) sum")
            #expect(abs(squares - expected.sum_of_squares) <= 1e-6 * max(1, expected.sum_of_squares), "\(tensorName) squares")
            if !entry.dtype.isFloatingPoint {
                #expect(try file.integers(tensorName).values.map(Double.init) == values)
            }
        }
    }

    @Test("every dtype round-trips", arguments: SafeTensorsDType.allCases)
    func roundTrip(dtype: SafeTensorsDType) throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("t.safetensors")
        var writer = SafeTensorsWriter(metadata: ["format": "pt", "note": "quote \" and\nnewline"])
        let floats: [Float] = [0, 1, -2.5, 0.1, 65504, -1e-3, 3.14159, 1e-7]
        let integers = [0, 1, 2, 100, 7, 0, 1, 42]
        if dtype.isFloatingPoint {
            writer.add("x", Tensor(shape: [2, 4], scalars: floats), as: dtype)
        } else {
            writer.add("x", integers: dtype == .bool ? integers.map { $0 % 2 } : integers, shape: [2, 4], as: dtype)
        }
        writer.add("empty", Tensor.zeros([0, 3]))
        try writer.write(to: url)
        let file = try SafeTensorsFile(contentsOf: url)
        #expect(file.metadata == writer.metadata)
        #expect(try file.entry("x").dtype == dtype)
        #expect(try file.entry("empty").shape == [0, 3])
        let read = try file.tensor("x").scalars
        switch dtype {
        case .float32, .float64: #expect(read == floats)
        case .float16: expectClose(read, floats, absolute: 1e-7, relative: 1e-3)
        case .bfloat16: expectClose(read, floats, absolute: 1e-9, relative: 4e-3)
        case .bool: #expect(try file.integers("x").values == integers.map { $0 % 2 })
        default: #expect(try file.integers("x").values == integers)
        }
    }

    @Test("F16 and BF16 encodings round to nearest even")
    func halfRounding() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("h.safetensors")
        var writer = SafeTensorsWriter()
        // 1 + 2⁻¹¹ is halfway between two halves: even mantissa (1.0) wins; 1 + 3·2⁻¹¹ rounds up.
        let values: [Float] = [1 + 0x1p-11, 1 + 3 * 0x1p-11, 6e-8, 70000, -0.0]
        writer.add("h", Tensor(values), as: .float16)
        writer.add("b", Tensor([1 + 0x1p-8, 1 + 3 * 0x1p-8]), as: .bfloat16)
        try writer.write(to: url)
        let file = try SafeTensorsFile(contentsOf: url)
        #expect(try file.tensor("h").scalars == [1, 1 + 2 * 0x1p-10, 0x1p-24, .infinity, -0.0])
        #expect(try file.tensor("b").scalars == [1, 1 + 2 * 0x1p-7])
    }

    // MARK: Malformed files

    static func bytes(header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> Data {
        var result = Data()
        var length = (declaredLength ?? UInt64(header.utf8.count)).littleEndian
        withUnsafeBytes(of: &length) { result.append(contentsOf: $0) }
        result.append(contentsOf: Array(header.utf8))
        result.append(contentsOf: data)
        return result
    }

    static func expectError(_ data: Data, sourceLocation: SourceLocation = #_sourceLocation, _ check: (SafeTensorsError) -> Bool) throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("bad.safetensors")
        try data.write(to: url)
        do {
            _ = try SafeTensorsFile(contentsOf: url)
            Issue.record("no error for a malformed file", sourceLocation: sourceLocation)
        } catch let error as SafeTensorsError {
            #expect(check(error), "unexpected error: \(error)", sourceLocation: sourceLocation)
            #expect(error.description.contains(url.path), "the message must name the file: \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test("a truncated file throws, naming the file")
    func truncated() throws {
        let good = Self.bytes(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: Array(repeating: 0, count: 8))
        try Self.expectError(good.prefix(5)) { if case .tooSmall = $0 { true } else { false } }
        try Self.expectError(good.prefix(good.count - 3)) {
            if case let .offsetsOutOfBounds(_, tensor, _, _, _) = $0 { tensor == "a" } else { false }
        }
        try Self.expectError(good.prefix(20)) { if case .headerLengthOutOfBounds = $0 { true } else { false } }
    }

    @Test("a header length past the end throws")
    func headerPastEnd() throws {
        try Self.expectError(Self.bytes(header: "{}", declaredLength: 1 << 40)) {
            if case let .headerLengthOutOfBounds(_, length, _) = $0 { length == 1 << 40 } else { false }
        }
    }

    @Test("overlapping offsets throw, naming both tensors")
    func overlapping() throws {
        let header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        try Self.expectError(Self.bytes(header: header, data: Array(repeating: 0, count: 12))) {
            if case let .overlapping(_, tensor, other) = $0 { tensor == "b" && other == "a" } else { false }
        }
    }

    @Test("a shape that does not match the byte range throws")
    func shapeMismatch() throws {
        let header = #"{"w":{"dtype":"F16","shape":[3,2],"data_offsets":[0,8]}}"#
        try Self.expectError(Self.bytes(header: header, data: Array(repeating: 0, count: 8))) {
            if case let .sizeMismatch(_, tensor, shape, _, expected, actual) = $0 { tensor == "w" && shape == [3, 2] && expected == 12 && actual == 8 } else { false }
        }
    }

    @Test("an unknown dtype throws, naming the tensor and the dtype")
    func unknownDType() throws {
        let header = #"{"q":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}}"#
        try Self.expectError(Self.bytes(header: header, data: Array(repeating: 0, count: 4))) {
            if case let .unknownDType(_, tensor, dtype) = $0 { tensor == "q" && dtype == "F8_E4M3" } else { false }
        }
    }

    @Test("invalid JSON, holes, trailing bytes and bad fields throw")
    func otherDefects() throws {
        try Self.expectError(Self.bytes(header: #"{"a": [1, 2"#)) { if case .invalidHeader = $0 { true } else { false } }
        try Self.expectError(Self.bytes(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: Array(repeating: 0, count: 8))) {
            if case .hole = $0 { true } else { false }
        }
        try Self.expectError(Self.bytes(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: Array(repeating: 0, count: 8))) {
            if case .trailingBytes = $0 { true } else { false }
        }
        try Self.expectError(Self.bytes(header: #"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, data: Array(repeating: 0, count: 4))) {
            if case let .invalidEntry(_, tensor, _) = $0 { tensor == "a" } else { false }
        }
        try Self.expectError(Self.bytes(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#, data: Array(repeating: 0, count: 4))) {
            if case .invalidEntry = $0 { true } else { false }
        }
    }

    @Test("asking for a missing tensor or integers from floats throws")
    func access() throws {
        let file = try SafeTensorsFile(contentsOf: Fixtures.url("hf-llava-tiny/golden.safetensors"))
        #expect(throws: SafeTensorsError.missingTensor(file: file.path, tensor: "nope")) { try file.tensor("nope") }
        #expect(throws: SafeTensorsError.self) { try file.integers("logits") }
        #expect(try file.integers("keep_indices").shape == [5])
    }

    @Test("a missing file throws a readable error")
    func missingFile() {
        #expect(throws: SafeTensorsError.self) { try SafeTensorsFile(path: "/nonexistent/x.safetensors") }
    }

    @Test("writes are atomic: an existing file is replaced whole and no temporary file is left")
    func atomicWrite() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("m.safetensors")
        var first = SafeTensorsWriter()
        first.add("a", Tensor([1, 2, 3]))
        try first.write(to: url)
        var second = SafeTensorsWriter()
        second.add("b", Tensor([4]))
        try second.write(to: url)
        #expect(try SafeTensorsFile(contentsOf: url).tensorNames == ["b"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["m.safetensors"])
        #expect(throws: FileError.self) { try second.write(to: directory.appendingPathComponent("missing/dir/x.safetensors")) }
    }
}

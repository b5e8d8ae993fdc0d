import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Element types of the safetensors format.
public enum SafeTensorsDType: String, Sendable, CaseIterable, Codable {
    case float64 = "F64", float32 = "F32", float16 = "F16", bfloat16 = "BF16"
    case int64 = "I64", int32 = "I32", int16 = "I16", int8 = "I8"
    case uint64 = "U64", uint32 = "U32", uint16 = "U16", uint8 = "U8"
    case bool = "BOOL"

    /// Bytes per element.
    public var byteCount: Int {
        switch self {
        case .float64, .int64, .uint64: 8
        case .float32, .int32, .uint32: 4
        case .float16, .bfloat16, .int16, .uint16: 2
        case .int8, .uint8, .bool: 1
        }
    }

    /// Whether values are floating point (the types PruneGym converts to Float32).
    public var isFloatingPoint: Bool { self == .float64 || self == .float32 || self == .float16 || self == .bfloat16 }
}

/// What went wrong reading or writing a safetensors file. Every case names the file, and the
/// tensor where one is involved.
public enum SafeTensorsError: Error, CustomStringConvertible, Equatable {
    case unreadable(file: String, reason: String)
    case tooSmall(file: String, size: Int)
    case headerLengthOutOfBounds(file: String, headerLength: UInt64, fileSize: Int)
    case invalidHeader(file: String, reason: String)
    case invalidEntry(file: String, tensor: String, reason: String)
    case unknownDType(file: String, tensor: String, dtype: String)
    case offsetsOutOfBounds(file: String, tensor: String, begin: Int, end: Int, dataSize: Int)
    case overlapping(file: String, tensor: String, other: String)
    case hole(file: String, tensor: String, expectedBegin: Int, begin: Int)
    case sizeMismatch(file: String, tensor: String, shape: [Int], dtype: String, expectedBytes: Int, actualBytes: Int)
    case trailingBytes(file: String, used: Int, dataSize: Int)
    case missingTensor(file: String, tensor: String)
    case wrongKind(file: String, tensor: String, dtype: String, requested: String)
    case notRepresentable(file: String, tensor: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(file, reason): "\(file): cannot read: \(reason)"
        case let .tooSmall(file, size): "\(file): \(size) bytes is too small for a safetensors file (8-byte header length + JSON header)"
        case let .headerLengthOutOfBounds(file, length, size): "\(file): header length \(length) points past the end of the \(size)-byte file (truncated or not a safetensors file)"
        case let .invalidHeader(file, reason): "\(file): invalid safetensors header: \(reason)"
        case let .invalidEntry(file, tensor, reason): "\(file): tensor '\(tensor)': \(reason)"
        case let .unknownDType(file, tensor, dtype): "\(file): tensor '\(tensor)': unknown dtype '\(dtype)' (known: \(SafeTensorsDType.allCases.map(\.rawValue).joined(separator: ", ")))"
        case let .offsetsOutOfBounds(file, tensor, begin, end, size): "\(file): tensor '\(tensor)': data offsets [\(begin), \(end)) are outside the \(size)-byte data section (truncated file?)"
        case let .overlapping(file, tensor, other): "\(file): tensor '\(tensor)' overlaps tensor '\(other)' in the data section"
        case let .hole(file, tensor, expected, begin): "\(file): tensor '\(tensor)' starts at byte \(begin) but the previous tensor ends at \(expected): the data section may not have holes"
        case let .sizeMismatch(file, tensor, shape, dtype, expected, actual): "\(file): tensor '\(tensor)': shape \(shape) of \(dtype) needs \(expected) bytes, its offsets span \(actual)"
        case let .trailingBytes(file, used, size): "\(file): tensors cover \(used) bytes of a \(size)-byte data section: trailing bytes are not allowed"
        case let .missingTensor(file, tensor): "\(file): no tensor named '\(tensor)'"
        case let .wrongKind(file, tensor, dtype, requested): "\(file): tensor '\(tensor)' has dtype \(dtype), cannot read it as \(requested)"
        case let .notRepresentable(file, tensor, reason): "\(file): tensor '\(tensor)': \(reason)"
        }
    }
}

/// A read-only memory mapping of a whole file.
final class MappedFile: @unchecked Sendable {
    // @unchecked: the mapping is read-only and immutable after init.
    let bytes: UnsafeRawBufferPointer
    private let mappedLength: Int

    init(path: String) throws {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw SafeTensorsError.unreadable(file: path, reason: String(cString: strerror(errno)))
        }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw SafeTensorsError.unreadable(file: path, reason: String(cString: strerror(errno)))
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            throw SafeTensorsError.unreadable(file: path, reason: "not a regular file")
        }
        let size = Int(status.st_size)
        if size == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            mappedLength = 0
            return
        }
        guard let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0), address != MAP_FAILED else {
            throw SafeTensorsError.unreadable(file: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        bytes = UnsafeRawBufferPointer(start: address, count: size)
        mappedLength = size
    }

    deinit {
        if mappedLength > 0, let address = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: address), mappedLength) }
    }
}

/// A safetensors file opened for reading: validated header, memory-mapped data.
///
/// Format: an 8-byte little-endian header length N, N bytes of JSON mapping each tensor name to
/// `{"dtype", "shape", "data_offsets": [begin, end]}` (offsets relative to the data section) plus
/// an optional `"__metadata__"` string map, then the data section. Validation follows the format's
/// reference implementation: the header is in bounds (and at most 100 MB) and valid JSON, every
/// dtype is known, offsets are in bounds, tensors are ordered, neither overlap nor leave holes and
/// cover the data section exactly, and each byte range equals product(shape) × dtype size.
public struct SafeTensorsFile: @unchecked Sendable {
    /// Shape, dtype and location of one tensor.
    public struct Entry: Sendable, Equatable {
        public let name: String
        /// The stored element type.
        public let dtype: SafeTensorsDType
        /// The tensor's shape.
        public let shape: [Int]
        /// Byte range within the data section.
        public let byteRange: Range<Int>
        /// Elements in the tensor.
        public var elementCount: Int { shape.reduce(1, *) }
    }

    /// The file's path (named in every error).
    public let path: String
    /// The header's `__metadata__`.
    public let metadata: [String: String]
    /// Tensors in data-section order.
    public let entries: [Entry]
    private let index: [String: Int]
    private let file: MappedFile
    private let dataStart: Int

    /// Longer headers are rejected as malformed (the format's own limit).
    public static let maximumHeaderLength = 100_000_000

    /// Opens and validates the file at `url` (memory-mapped; tensors are read on demand).
    public init(contentsOf url: URL) throws {
        try self.init(path: url.path)
    }

    /// Opens and validates the file at `path`.
    public init(path: String) throws {
        self.path = path
        file = try MappedFile(path: path)
        let bytes = file.bytes
        guard bytes.count >= 8 else { throw SafeTensorsError.tooSmall(file: path, size: bytes.count) }
        var length: UInt64 = 0
        for i in 0..<8 { length |= UInt64(bytes[i]) << (8 * UInt64(i)) }
        guard length <= UInt64(bytes.count - 8), length <= UInt64(Self.maximumHeaderLength) else {
            throw SafeTensorsError.headerLengthOutOfBounds(file: path, headerLength: length, fileSize: bytes.count)
        }
        let headerLength = Int(length)
        dataStart = 8 + headerLength
        let headerData = Data(bytes[8..<dataStart])
        guard headerData.first == UInt8(ascii: "{") else {
            throw SafeTensorsError.invalidHeader(file: path, reason: "the JSON header must start with '{'")
        }
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: headerData)
        } catch {
            throw SafeTensorsError.invalidHeader(file: path, reason: "not valid JSON (\(error.localizedDescription))")
        }
        guard let object = json as? [String: Any] else {
            throw SafeTensorsError.invalidHeader(file: path, reason: "the header is not a JSON object")
        }
        var metadata: [String: String] = [:]
        var entries: [Entry] = []
        for (name, value) in object {
            if name == "__metadata__" {
                guard let map = value as? [String: Any] else {
                    throw SafeTensorsError.invalidHeader(file: path, reason: "__metadata__ must be an object of strings")
                }
                for (key, item) in map {
                    guard let text = item as? String else {
                        throw SafeTensorsError.invalidHeader(file: path, reason: "__metadata__['\(key)'] is not a string")
                    }
                    metadata[key] = text
                }
                continue
            }
            entries.append(try Self.parseEntry(name: name, value: value, file: path))
        }
        let dataSize = bytes.count - dataStart
        entries.sort { ($0.byteRange.lowerBound, $0.byteRange.upperBound, $0.name) < ($1.byteRange.lowerBound, $1.byteRange.upperBound, $1.name) }
        var end = 0
        var previous: String?
        for entry in entries {
            let range = entry.byteRange
            guard range.upperBound <= dataSize else {
                throw SafeTensorsError.offsetsOutOfBounds(file: path, tensor: entry.name, begin: range.lowerBound, end: range.upperBound, dataSize: dataSize)
            }
            if range.lowerBound < end, let previous {
                throw SafeTensorsError.overlapping(file: path, tensor: entry.name, other: previous)
            }
            guard range.lowerBound == end else {
                throw SafeTensorsError.hole(file: path, tensor: entry.name, expectedBegin: end, begin: range.lowerBound)
            }
            let expected = entry.elementCount * entry.dtype.byteCount
            guard expected == range.count else {
                throw SafeTensorsError.sizeMismatch(
                    file: path, tensor: entry.name, shape: entry.shape, dtype: entry.dtype.rawValue,
                    expectedBytes: expected, actualBytes: range.count)
            }
            end = range.upperBound
            previous = entry.name
        }
        guard end == dataSize else { throw SafeTensorsError.trailingBytes(file: path, used: end, dataSize: dataSize) }
        self.metadata = metadata
        self.entries = entries
        self.index = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($1.name, $0) })
    }

    private static func parseEntry(name: String, value: Any, file: String) throws -> Entry {
        guard let fields = value as? [String: Any] else {
            throw SafeTensorsError.invalidEntry(file: file, tensor: name, reason: "entry is not a JSON object")
        }
        guard let dtypeName = fields["dtype"] as? String else {
            throw SafeTensorsError.invalidEntry(file: file, tensor: name, reason: "missing or non-string 'dtype'")
        }
        guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
            throw SafeTensorsError.unknownDType(file: file, tensor: name, dtype: dtypeName)
        }
        guard let shapeValues = fields["shape"] as? [Any], let shape = jsonIntegers(shapeValues), shape.allSatisfy({ $0 >= 0 }) else {
            throw SafeTensorsError.invalidEntry(file: file, tensor: name, reason: "'shape' must be an array of non-negative integers")
        }
        guard let offsetValues = fields["data_offsets"] as? [Any], let offsets = jsonIntegers(offsetValues), offsets.count == 2,
              offsets[0] >= 0, offsets[0] <= offsets[1]
        else {
            throw SafeTensorsError.invalidEntry(file: file, tensor: name, reason: "'data_offsets' must be [begin, end] with 0 ≤ begin ≤ end")
        }
        var elements = 1
        for size in shape {
            let (product, overflow) = elements.multipliedReportingOverflow(by: size)
            guard !overflow else { throw SafeTensorsError.invalidEntry(file: file, tensor: name, reason: "shape \(shape) overflows") }
            elements = product
        }
        return Entry(name: name, dtype: dtype, shape: shape, byteRange: offsets[0]..<offsets[1])
    }

    /// Exact non-negative integers from JSON numbers (rejects fractions, booleans, strings).
    private static func jsonIntegers(_ values: [Any]) -> [Int]? {
        var result: [Int] = []
        for value in values {
            // JSON booleans arrive as Swift `Bool`; numbers as NSNumber (which bridges to Bool too,
            // so test the dynamic type rather than `is Bool`).
            if type(of: value) == Bool.self { return nil }
            guard let number = value as? NSNumber else { return nil }
            let double = number.doubleValue
            guard double.rounded() == double, double.magnitude < 0x1p62 else { return nil }
            result.append(number.intValue)
        }
        return result
    }

    // MARK: Access

    /// The tensors' names, in header order.
    public var tensorNames: [String] { entries.map(\.name) }

    /// The header entry of `name`; a missing name throws naming the file.
    public func entry(_ name: String) throws -> Entry {
        guard let position = index[name] else { throw SafeTensorsError.missingTensor(file: path, tensor: name) }
        return entries[position]
    }

    public func contains(_ name: String) -> Bool { index[name] != nil }

    /// The raw little-endian bytes of a tensor (valid while this value is alive).
    public func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let entry = try entry(name)
        let start = dataStart + entry.byteRange.lowerBound
        return try body(UnsafeRawBufferPointer(rebasing: file.bytes[start..<(start + entry.byteRange.count)]))
    }

    /// A tensor converted to Float32 (from F32, F16, BF16, F64, or integer and BOOL dtypes).
    public func tensor(_ name: String) throws -> Tensor {
        let entry = try entry(name)
        var result = Tensor(uninitializedShape: entry.shape)
        try withRawBytes(name) { raw in
            result.withUnsafeMutableBufferPointer { target in
                SafeTensorsCodec.decodeFloats(raw, dtype: entry.dtype, into: target)
            }
        }
        return result
    }

    /// An integer tensor (I64, I32, I16, I8, U64, U32, U16, U8, BOOL) as `Int`s with its shape.
    public func integers(_ name: String) throws -> (values: [Int], shape: [Int]) {
        let entry = try entry(name)
        guard !entry.dtype.isFloatingPoint else {
            throw SafeTensorsError.wrongKind(file: path, tensor: name, dtype: entry.dtype.rawValue, requested: "integers")
        }
        let values = try withRawBytes(name) { raw in try SafeTensorsCodec.decodeIntegers(raw, dtype: entry.dtype, count: entry.elementCount) }
        guard let values else {
            throw SafeTensorsError.notRepresentable(file: path, tensor: name, reason: "a U64 value exceeds Int.max")
        }
        return (values, entry.shape)
    }

    /// Every tensor converted to Float32, by name.
    public func allTensors() throws -> [String: Tensor] {
        var result: [String: Tensor] = [:]
        for entry in entries { result[entry.name] = try tensor(entry.name) }
        return result
    }
}

import Foundation
import TensorCore

/// TensorBoard event files, written and read by PruneGym itself (no TensorFlow).
///
/// The format (TensorFlow's `TFRecord` around `tensorflow.Event` protos, as `tensorboard`'s
/// `event_file_loader` reads it):
/// - a file `events.out.tfevents.<unix time>.<host>.<pid>` holds records, each
///   `uint64 length (LE) · uint32 masked CRC-32C of those 8 bytes · data · uint32 masked CRC-32C of data`,
///   where the mask is `((crc >> 15) | (crc << 17)) &+ 0xa282ead8` and CRC-32C is the Castagnoli
///   polynomial (reflected `0x82F63B78`);
/// - the first record is an `Event` with `wall_time` (field 1, double), `step` (2, int64) and
///   `file_version` (3, string) = `"brain.Event:2"`;
/// - each scalar is an `Event` with `wall_time`, `step` and `summary` (5) = `Summary { value (1) =
///   Summary.Value { tag (1, string), simple_value (2, float) } }`;
/// - a resumed run first writes `session_log` (6) = `SessionLog { status (1) = START }` at the
///   step it resumes from, which tells TensorBoard to drop the older file's events past that step.
public enum TensorBoard {
    /// One scalar read back from an event file.
    public struct Scalar: Equatable, Sendable {
        /// The global step (x axis).
        public var step: Int64
        /// The scalar's name (a metrics.csv column).
        public var tag: String
        /// The value (TensorBoard stores float32).
        public var value: Float
        /// Seconds since 1970 when it was written.
        public var wallTime: Double

        /// A scalar read back.
        public init(step: Int64, tag: String, value: Float, wallTime: Double) {
            self.step = step
            self.tag = tag
            self.value = value
            self.wallTime = wallTime
        }
    }

    /// CRC-32C (Castagnoli) of `bytes`.
    public static func crc32c<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc = crcTable[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8)
        }
        return crc ^ 0xFFFF_FFFF
    }

    /// TFRecord's masked CRC.
    public static func maskedCRC<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        let crc = crc32c(bytes)
        return ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }

    private static let crcTable: [UInt32] = (0..<256).map { index in
        var value = UInt32(index)
        for _ in 0..<8 { value = value & 1 == 1 ? (value >> 1) ^ 0x82F6_3B78 : value >> 1 }
        return value
    }

    /// Frames one record: length, masked CRC of the length, data, masked CRC of the data.
    static func record(_ data: [UInt8]) -> [UInt8] {
        var length = UInt64(data.count).littleEndian
        let lengthBytes = withUnsafeBytes(of: &length) { Array($0) }
        var out = lengthBytes
        appendLittleEndian(maskedCRC(lengthBytes), to: &out)
        out += data
        appendLittleEndian(maskedCRC(data), to: &out)
        return out
    }

    static func appendLittleEndian(_ value: UInt32, to out: inout [UInt8]) {
        for shift in stride(from: 0, to: 32, by: 8) { out.append(UInt8((value >> UInt32(shift)) & 0xFF)) }
    }

    // MARK: protobuf encoding (the few wire types an Event needs)

    static func varint(_ value: UInt64) -> [UInt8] {
        var value = value
        var out: [UInt8] = []
        repeat {
            var byte = UInt8(value & 0x7F)
            value >>= 7
            if value != 0 { byte |= 0x80 }
            out.append(byte)
        } while value != 0
        return out
    }

    static func key(_ field: UInt64, _ wireType: UInt64) -> [UInt8] { varint(field << 3 | wireType) }

    static func lengthDelimited(_ field: UInt64, _ bytes: [UInt8]) -> [UInt8] {
        key(field, 2) + varint(UInt64(bytes.count)) + bytes
    }

    static func event(wallTime: Double, step: Int64, body: [UInt8]) -> [UInt8] {
        var out = key(1, 1)
        withUnsafeBytes(of: wallTime.bitPattern.littleEndian) { out += $0 }
        if step != 0 { out += key(2, 0) + varint(UInt64(bitPattern: step)) }
        return out + body
    }

    static func scalarEvent(tag: String, value: Float, step: Int64, wallTime: Double) -> [UInt8] {
        var summaryValue = lengthDelimited(1, Array(tag.utf8)) + key(2, 5)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { summaryValue += $0 }
        let summary = lengthDelimited(1, summaryValue)
        return event(wallTime: wallTime, step: step, body: lengthDelimited(5, summary))
    }

    // MARK: reading

    /// Reads every scalar of an event file, checking each record's framing and CRCs; a damaged
    /// record throws a `FileError` naming the file and the byte offset.
    public static func readScalars(_ url: URL) throws -> [Scalar] {
        let data: [UInt8]
        do { data = Array(try Data(contentsOf: url)) } catch { throw FileError(path: url.path, reason: "cannot read the event file (\(FileError.systemReason(error)))") }
        var scalars: [Scalar] = []
        var offset = 0
        while offset < data.count {
            guard offset + 12 <= data.count else { throw FileError(path: url.path, reason: "truncated record header at byte \(offset)") }
            let lengthBytes = data[offset..<offset + 8]
            let length = lengthBytes.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            guard readUInt32(data, offset + 8) == maskedCRC(lengthBytes) else {
                throw FileError(path: url.path, reason: "length CRC mismatch at byte \(offset)")
            }
            let start = offset + 12
            guard length <= UInt64(data.count - start - 4) else { throw FileError(path: url.path, reason: "truncated record at byte \(offset)") }
            let end = start + Int(length)
            guard readUInt32(data, end) == maskedCRC(data[start..<end]) else {
                throw FileError(path: url.path, reason: "data CRC mismatch in the record at byte \(offset)")
            }
            scalars += try parseEvent(Array(data[start..<end]), file: url, offset: offset)
            offset = end + 4
        }
        return scalars
    }

    /// Reads the scalars of every event file in `directory`, in file-name (= creation) order.
    public static func readDirectory(_ directory: URL) throws -> [Scalar] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return try names.filter { $0.hasPrefix("events.out.tfevents.") }.sorted()
            .flatMap { try readScalars(directory.appendingPathComponent($0)) }
    }

    static func readUInt32(_ data: [UInt8], _ offset: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(data[offset + $1]) << UInt32(8 * $1) }
    }

    /// A minimal protobuf reader over one message's bytes.
    struct Fields {
        var bytes: [UInt8]
        var position = 0
        let file: URL

        mutating func next() throws -> (field: UInt64, wireType: UInt64)? {
            guard position < bytes.count else { return nil }
            let key = try readVarint()
            return (key >> 3, key & 7)
        }

        mutating func readVarint() throws -> UInt64 {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard position < bytes.count, shift < 64 else { throw FileError(path: file.path, reason: "malformed protobuf varint") }
                let byte = bytes[position]
                position += 1
                value |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return value }
                shift += 7
            }
        }

        mutating func readFixed(_ count: Int) throws -> [UInt8] {
            guard position + count <= bytes.count else { throw FileError(path: file.path, reason: "malformed protobuf: truncated field") }
            defer { position += count }
            return Array(bytes[position..<position + count])
        }

        mutating func readBytes() throws -> [UInt8] { try readFixed(Int(try readVarint())) }

        mutating func skip(_ wireType: UInt64) throws {
            switch wireType {
            case 0: _ = try readVarint()
            case 1: _ = try readFixed(8)
            case 2: _ = try readBytes()
            case 5: _ = try readFixed(4)
            default: throw FileError(path: file.path, reason: "malformed protobuf: wire type \(wireType)")
            }
        }
    }

    static func parseEvent(_ bytes: [UInt8], file: URL, offset: Int) throws -> [Scalar] {
        var fields = Fields(bytes: bytes, file: file)
        var wallTime = 0.0
        var step: Int64 = 0
        var values: [(String, Float)] = []
        while let (field, wireType) = try fields.next() {
            switch (field, wireType) {
            case (1, 1): wallTime = Double(bitPattern: try fields.readFixed(8).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
            case (2, 0): step = Int64(bitPattern: try fields.readVarint())
            case (5, 2):
                var summary = Fields(bytes: try fields.readBytes(), file: file)
                while let (summaryField, summaryWire) = try summary.next() {
                    guard summaryField == 1, summaryWire == 2 else { try summary.skip(summaryWire); continue }
                    var value = Fields(bytes: try summary.readBytes(), file: file)
                    var tag = ""
                    var simple: Float?
                    while let (valueField, valueWire) = try value.next() {
                        switch (valueField, valueWire) {
                        case (1, 2): tag = String(decoding: try value.readBytes(), as: UTF8.self)
                        case (2, 5): simple = Float(bitPattern: readUInt32(try value.readFixed(4), 0))
                        default: try value.skip(valueWire)
                        }
                    }
                    if let simple { values.append((tag, simple)) }
                }
            default: try fields.skip(wireType)
            }
        }
        return values.map { Scalar(step: step, tag: $0.0, value: $0.1, wallTime: wallTime) }
    }
}

/// Appends scalars to one TensorBoard event file (see `TensorBoard` for the format). Each record
/// is written and flushed as it comes, so a crash loses at most the record being written.
public final class TensorBoardWriter {
    /// The event file being written.
    public let url: URL
    private let handle: FileHandle

    /// Creates `events.out.tfevents.<time>.<host>.<pid>` in `directory` (a new file per process,
    /// as TensorFlow does) and writes its `file_version` header. `resumingAt` writes a
    /// `SessionLog.START` at that step, so TensorBoard drops the older events past it.
    public init(directory: URL, resumingAt step: Int64? = nil, clock: () -> Double = { Date().timeIntervalSince1970 }) throws {
        try AtomicFile.prepareDirectory(directory)
        let now = clock()
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "localhost"
        var name = "events.out.tfevents.\(Int(now)).\(host).\(ProcessInfo.processInfo.processIdentifier)"
        var suffix = 1
        while FileManager.default.fileExists(atPath: directory.appendingPathComponent(name).path) {
            name = "events.out.tfevents.\(Int(now)).\(host).\(ProcessInfo.processInfo.processIdentifier).\(suffix)"
            suffix += 1
        }
        url = directory.appendingPathComponent(name)
        guard FileManager.default.createFile(atPath: url.path, contents: nil), let handle = try? FileHandle(forWritingTo: url) else {
            throw FileError(path: url.path, reason: "cannot create the TensorBoard event file")
        }
        self.handle = handle
        try write(TensorBoard.event(wallTime: now, step: 0, body: TensorBoard.lengthDelimited(3, Array("brain.Event:2".utf8))))
        if let step {
            // SessionLog { status: START (1) }
            try write(TensorBoard.event(wallTime: now, step: step, body: TensorBoard.lengthDelimited(6, TensorBoard.key(1, 0) + TensorBoard.varint(1))))
        }
    }

    deinit { try? handle.close() }

    /// Writes one scalar per (tag, value) at `step`; non-finite values are written as they are
    /// (TensorBoard shows NaN and ±∞).
    public func add(_ scalars: [(String, Double)], step: Int64, wallTime: Double = Date().timeIntervalSince1970) throws {
        var bytes: [UInt8] = []
        for (tag, value) in scalars {
            bytes += TensorBoard.record(TensorBoard.scalarEvent(tag: tag, value: Float(value), step: step, wallTime: wallTime))
        }
        try handle.write(contentsOf: Data(bytes))
    }

    private func write(_ event: [UInt8]) throws {
        try handle.write(contentsOf: Data(TensorBoard.record(event)))
    }
}

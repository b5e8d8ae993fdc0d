import Foundation

/// Conversions between safetensors' little-endian element encodings and Float32 / Int.
enum SafeTensorsCodec {
    static func decodeFloats(_ raw: UnsafeRawBufferPointer, dtype: SafeTensorsDType, into target: UnsafeMutableBufferPointer<Float>) {
        let n = target.count
        switch dtype {
        case .float32:
            for i in 0..<n { target[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
        case .float16:
            for i in 0..<n { target[i] = Float(halfBits: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
        case .bfloat16:
            for i in 0..<n { target[i] = Float(bitPattern: UInt32(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16) }
        case .float64:
            for i in 0..<n { target[i] = Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))) }
        case .int64:
            for i in 0..<n { target[i] = Float(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))) }
        case .int32:
            for i in 0..<n { target[i] = Float(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))) }
        case .int16:
            for i in 0..<n { target[i] = Float(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self))) }
        case .int8:
            for i in 0..<n { target[i] = Float(Int8(bitPattern: raw[i])) }
        case .uint64:
            for i in 0..<n { target[i] = Float(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))) }
        case .uint32:
            for i in 0..<n { target[i] = Float(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
        case .uint16:
            for i in 0..<n { target[i] = Float(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
        case .uint8:
            for i in 0..<n { target[i] = Float(raw[i]) }
        case .bool:
            for i in 0..<n { target[i] = raw[i] != 0 ? 1 : 0 }
        }
    }

    /// Integers, or nil when a U64 value does not fit `Int`.
    static func decodeIntegers(_ raw: UnsafeRawBufferPointer, dtype: SafeTensorsDType, count n: Int) throws -> [Int]? {
        var result = [Int](repeating: 0, count: n)
        switch dtype {
        case .int64: for i in 0..<n { result[i] = Int(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))) }
        case .int32: for i in 0..<n { result[i] = Int(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))) }
        case .int16: for i in 0..<n { result[i] = Int(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self))) }
        case .int8: for i in 0..<n { result[i] = Int(Int8(bitPattern: raw[i])) }
        case .uint64:
            for i in 0..<n {
                guard let value = Int(exactly: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))) else { return nil }
                result[i] = value
            }
        case .uint32: for i in 0..<n { result[i] = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
        case .uint16: for i in 0..<n { result[i] = Int(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
        case .uint8: for i in 0..<n { result[i] = Int(raw[i]) }
        case .bool: for i in 0..<n { result[i] = raw[i] != 0 ? 1 : 0 }
        case .float64, .float32, .float16, .bfloat16: preconditionFailure("decodeIntegers: floating-point dtype \(dtype)")
        }
        return result
    }

    static func append(_ value: some FixedWidthInteger, to data: inout Data) {
        withUnsafeBytes(of: value.littleEndian) { data.append(contentsOf: $0) }
    }
}

extension Float {
    /// Float32 from IEEE 754 binary16 bits (exact).
    init(halfBits bits: UInt16) {
        let sign = UInt32(bits & 0x8000) << 16
        let exponent = Int((bits >> 10) & 0x1F)
        let mantissa = UInt32(bits & 0x3FF)
        if exponent == 0 {
            // Zero or subnormal: mantissa · 2⁻²⁴.
            let magnitude = Float(mantissa) * 0x1p-24
            self = sign != 0 ? -magnitude : magnitude
        } else if exponent == 31 {
            self = Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        } else {
            self = Float(bitPattern: sign | (UInt32(exponent + 112) << 23) | (mantissa << 13))
        }
    }

    /// IEEE 754 binary16 bits, rounded to nearest even (overflow to ±∞, NaN kept).
    var halfBits: UInt16 {
        let bits = bitPattern
        let sign = UInt16((bits >> 16) & 0x8000)
        if isNaN { return sign | 0x7E00 }
        let magnitude = Swift.abs(self)
        if magnitude >= 65520 { return sign | 0x7C00 }  // rounds to infinity
        if magnitude < 0x1p-14 {
            // Subnormal half: value / 2⁻²⁴ rounded to nearest even.
            let scaled = (magnitude * 0x1p24).rounded(.toNearestOrEven)
            return sign | UInt16(scaled)
        }
        let exponent = Int((bits >> 23) & 0xFF) - 127 + 15
        var mantissa = bits & 0x7F_FFFF
        var halfExponent = UInt32(exponent)
        // Round the 23-bit mantissa to 10 bits, nearest even.
        let remainder = mantissa & 0x1FFF
        mantissa >>= 13
        if remainder > 0x1000 || (remainder == 0x1000 && (mantissa & 1) == 1) {
            mantissa += 1
            if mantissa == 0x400 {
                mantissa = 0
                halfExponent += 1
            }
        }
        return sign | UInt16(halfExponent << 10) | UInt16(mantissa)
    }

    /// bfloat16 bits (the top half of Float32), rounded to nearest even; NaN kept.
    var bfloat16Bits: UInt16 {
        if isNaN { return UInt16(bitPattern >> 16) | 0x0040 }
        let bits = bitPattern
        let rounding = 0x7FFF + ((bits >> 16) & 1)
        return UInt16((bits &+ rounding) >> 16)
    }
}

/// Builds a safetensors file: tensors in the order added, an optional metadata map, and an
/// atomic write.
public struct SafeTensorsWriter {
    private var entries: [(name: String, dtype: SafeTensorsDType, shape: [Int], bytes: Data)] = []
    private var names = Set<String>()
    /// The `__metadata__` strings of the file.
    public var metadata: [String: String]

    /// A writer with `metadata`.
    public init(metadata: [String: String] = [:]) { self.metadata = metadata }

    /// Adds a float tensor stored as F32, F16 or BF16.
    public mutating func add(_ name: String, _ tensor: Tensor, as dtype: SafeTensorsDType = .float32) {
        precondition([.float32, .float16, .bfloat16, .float64].contains(dtype), "SafeTensorsWriter: cannot store floats as \(dtype)")
        var data = Data(capacity: tensor.count * dtype.byteCount)
        tensor.withUnsafeBufferPointer { values in
            switch dtype {
            case .float32: for v in values { SafeTensorsCodec.append(v.bitPattern, to: &data) }
            case .float16: for v in values { SafeTensorsCodec.append(v.halfBits, to: &data) }
            case .bfloat16: for v in values { SafeTensorsCodec.append(v.bfloat16Bits, to: &data) }
            default: for v in values { SafeTensorsCodec.append(Double(v).bitPattern, to: &data) }
            }
        }
        append(name, dtype, tensor.shape, data)
    }

    /// Adds an integer or boolean tensor. - Precondition: every value fits the dtype.
    public mutating func add(_ name: String, integers values: [Int], shape: [Int], as dtype: SafeTensorsDType = .int64) {
        precondition(values.count == shape.reduce(1, *), "SafeTensorsWriter: \(values.count) values for shape \(shape) of '\(name)'")
        var data = Data(capacity: values.count * dtype.byteCount)
        for v in values {
            switch dtype {
            case .int64: SafeTensorsCodec.append(Int64(v), to: &data)
            case .int32: SafeTensorsCodec.append(Int32(v), to: &data)
            case .int16: SafeTensorsCodec.append(Int16(v), to: &data)
            case .int8: SafeTensorsCodec.append(Int8(v), to: &data)
            case .uint64: SafeTensorsCodec.append(UInt64(v), to: &data)
            case .uint32: SafeTensorsCodec.append(UInt32(v), to: &data)
            case .uint16: SafeTensorsCodec.append(UInt16(v), to: &data)
            case .uint8: SafeTensorsCodec.append(UInt8(v), to: &data)
            case .bool: SafeTensorsCodec.append(UInt8(v != 0 ? 1 : 0), to: &data)
            case .float64, .float32, .float16, .bfloat16: preconditionFailure("SafeTensorsWriter: use add(_:_:as:) for float dtype \(dtype)")
            }
        }
        append(name, dtype, shape, data)
    }

    private mutating func append(_ name: String, _ dtype: SafeTensorsDType, _ shape: [Int], _ data: Data) {
        precondition(name != "__metadata__" && names.insert(name).inserted, "SafeTensorsWriter: duplicate or reserved tensor name '\(name)'")
        entries.append((name, dtype, shape, data))
    }

    /// The encoded file: header length, JSON header padded with spaces to a multiple of 8, data.
    public func encoded() -> Data {
        var header = "{"
        var fields: [String] = []
        if !metadata.isEmpty {
            let items = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
            fields.append("\"__metadata__\":{\(items.joined(separator: ","))}")
        }
        var offset = 0
        for entry in entries {
            let end = offset + entry.bytes.count
            fields.append("\(jsonString(entry.name)):{\"dtype\":\"\(entry.dtype.rawValue)\",\"shape\":[\(entry.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        header += fields.joined(separator: ",") + "}"
        var headerBytes = Data(header.utf8)
        while (8 + headerBytes.count) % 8 != 0 { headerBytes.append(UInt8(ascii: " ")) }
        var data = Data(capacity: 8 + headerBytes.count + offset)
        SafeTensorsCodec.append(UInt64(headerBytes.count), to: &data)
        data.append(headerBytes)
        for entry in entries { data.append(entry.bytes) }
        return data
    }

    /// Writes the file atomically (temporary file, fsync, rename).
    public func write(to url: URL) throws {
        try AtomicFile.write(encoded(), to: url)
    }

    private func jsonString(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            default:
                if scalar.value < 0x20 {
                    result += String(format: "\\u%04x", scalar.value)
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
        }
        return result + "\""
    }
}

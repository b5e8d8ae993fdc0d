import Foundation
import TensorCore

/// A minimal PNG encoder (RGB, 8 bits per channel, no interlace) with no dependencies: the zlib
/// stream uses stored (uncompressed) deflate blocks, checked with Adler-32; every chunk carries its
/// CRC-32 (ISO 3309, as PNG's specification gives it).
public enum PNG {
    /// CRC-32 (reflected polynomial 0xEDB88320) of `bytes`, as PNG chunks use it.
    public static func crc32<S: Sequence>(_ bytes: S) -> UInt32 where S.Element == UInt8 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8)
        }
        return crc ^ 0xFFFF_FFFF
    }

    static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    /// Adler-32 of `bytes` (RFC 1950).
    public static func adler32(_ bytes: [UInt8]) -> UInt32 {
        var a: UInt32 = 1, b: UInt32 = 0
        for byte in bytes {
            a = (a + UInt32(byte)) % 65521
            b = (b + a) % 65521
        }
        return (b << 16) | a
    }

    /// A zlib stream of stored deflate blocks (at most 65 535 bytes each).
    static func zlibStored(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]
        var offset = 0
        repeat {
            let length = min(65_535, data.count - offset)
            let final: UInt8 = offset + length == data.count ? 1 : 0
            out.append(final)
            out += [UInt8(length & 0xFF), UInt8(length >> 8), UInt8(~length & 0xFF), UInt8((~length >> 8) & 0xFF)]
            out += data[offset..<(offset + length)]
            offset += length
        } while offset < data.count
        let adler = adler32(data)
        out += [UInt8(adler >> 24), UInt8((adler >> 16) & 0xFF), UInt8((adler >> 8) & 0xFF), UInt8(adler & 0xFF)]
        return out
    }

    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let typeBytes = Array(type.utf8)
        let length = UInt32(data.count)
        let crc = crc32(typeBytes + data)
        return [UInt8(length >> 24), UInt8((length >> 16) & 0xFF), UInt8((length >> 8) & 0xFF), UInt8(length & 0xFF)]
            + typeBytes + data + [UInt8(crc >> 24), UInt8((crc >> 16) & 0xFF), UInt8((crc >> 8) & 0xFF), UInt8(crc & 0xFF)]
    }

    /// PNG bytes of an RGB image given as `[3, height, width]` floats in [0, 1] (clamped).
    public static func encode(channelsFirst pixels: [Float], width: Int, height: Int) -> [UInt8] {
        precondition(pixels.count == 3 * width * height, "PNG.encode: \(pixels.count) values for 3×\(height)×\(width)")
        var raw: [UInt8] = []
        raw.reserveCapacity(height * (1 + 3 * width))
        for y in 0..<height {
            raw.append(0)  // filter: none
            for x in 0..<width {
                for c in 0..<3 {
                    let value = min(max(pixels[(c * height + y) * width + x], 0), 1)
                    raw.append(UInt8((value * 255).rounded()))
                }
            }
        }
        func be(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }
        let header = be(UInt32(width)) + be(UInt32(height)) + [8, 2, 0, 0, 0]  // 8-bit RGB, deflate, no filter/interlace
        return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", header) + chunk("IDAT", zlibStored(raw)) + chunk("IEND", [])
    }

    /// Writes a PNG atomically.
    public static func write(channelsFirst pixels: [Float], width: Int, height: Int, to url: URL) throws {
        try AtomicFile.write(Data(encode(channelsFirst: pixels, width: width, height: height)), to: url)
    }
}

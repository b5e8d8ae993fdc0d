import Foundation
import Gym
import TensorCore
import TestSupport
import Testing

@Suite("TensorBoard event files")
struct TensorBoardTests {
    @Test("CRC-32C matches the Castagnoli check value and TFRecord's mask")
    func crc() {
        // The standard check value of CRC-32C: crc("123456789") = 0xE3069283 (RFC 3720, B.4).
        #expect(TensorBoard.crc32c(Array("123456789".utf8)) == 0xE306_9283)
        #expect(TensorBoard.crc32c([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        let crc: UInt32 = 0xE306_9283
        #expect(TensorBoard.maskedCRC(Array("123456789".utf8)) == ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8)
    }

    @Test("reads the event file PyTorch's SummaryWriter wrote (fixture)")
    func readsPyTorchFixture() throws {
        struct Expected: Decodable { var step: Int64; var tag: String; var value: Double }
        let expected = try JSONDecoder().decode([Expected].self, from: Data(contentsOf: Fixtures.url("tensorboard/expected.json")))
        let scalars = try TensorBoard.readDirectory(Fixtures.url("tensorboard"))
        #expect(scalars.count == expected.count)
        for (scalar, want) in zip(scalars, expected) {
            #expect(scalar.step == want.step)
            #expect(scalar.tag == want.tag)
            #expect(scalar.value == Float(want.value))
        }
    }

    @Test("every metrics.csv row comes back from the event file at its step")
    func metricsRoundTrip() throws {
        let directory = try makeTemporaryDirectory("tensorboard")
        let log = try MetricsLog(url: directory.appendingPathComponent("metrics.csv"))
        var rows: [[(String, Double)]] = []
        for update in 1...5 {
            let u = Double(update)
            let loss: Double = update == 3 ? .nan : 1 / u
            rows.append([("update", u), ("step", u * 256), ("return_mean", u * 1.5 - 0.1), ("loss", loss)])
        }
        for row in rows { try log.append(row) }
        let scalars = try TensorBoard.readDirectory(directory)
        #expect(scalars.count == 5 * 4)
        for (index, row) in rows.enumerated() {
            for (tag, value) in row {
                let found = scalars.filter { $0.tag == tag && $0.step == Int64((index + 1) * 256) }
                #expect(found.count == 1, "\(tag) at row \(index)")
                if let scalar = found.first {
                    #expect(scalar.value == Float(value) || (scalar.value.isNaN && value.isNaN))
                }
            }
        }
    }

    @Test("a row with a new column extends metrics.csv's header; earlier rows get empty fields")
    func newColumnExtendsHeader() throws {
        let directory = try makeTemporaryDirectory("metrics-new-column")
        let url = directory.appendingPathComponent("metrics.csv")
        let log = try MetricsLog(url: url, writesTensorBoard: false)
        try log.append([("step", 1), ("x", 10)])
        try log.append([("step", 2), ("x", 20), ("y", 0.5)])
        let resumed = try MetricsLog(url: url, writesTensorBoard: false)
        try resumed.append([("step", 3), ("y", 1.5), ("x", 30)])
        let (columns, rows) = try MetricsLog.read(url)
        #expect(columns == ["step", "x", "y"])
        #expect(rows.count == 3)
        #expect(rows[0][0] == 1 && rows[0][1] == 10 && rows[0][2].isNaN)
        #expect(rows[1] == [2, 20, 0.5])
        #expect(rows[2] == [3, 30, 1.5])
    }

    @Test("a resumed log starts a new file with SessionLog.START at the resumed step")
    func resumeWritesNewFile() throws {
        let directory = try makeTemporaryDirectory("tensorboard-resume")
        let url = directory.appendingPathComponent("metrics.csv")
        let first = try MetricsLog(url: url)
        for step in 1...4 { try first.append([("step", Double(step)), ("x", Double(step))]) }
        let second = try MetricsLog(url: url)
        try second.truncate(keepingRowsWhere: "step", atMost: 2)
        try second.append([("step", 3), ("x", 30)])
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasPrefix("events.out.tfevents.") }
        #expect(files.count == 2)
        let scalars = try TensorBoard.readDirectory(directory).filter { $0.tag == "x" }
        #expect(scalars.last == TensorBoard.Scalar(step: 3, tag: "x", value: 30, wallTime: scalars.last!.wallTime))
        // The second file (same second and process: the ".1" suffix sorts last) holds only the new row.
        let newest = directory.appendingPathComponent(files.sorted().last!)
        #expect(try TensorBoard.readScalars(newest).map(\.value) == [3, 30])
    }

    @Test("a damaged record is an error naming the file and the byte offset")
    func damagedRecord() throws {
        let directory = try makeTemporaryDirectory("tensorboard-damaged")
        let writer = try TensorBoardWriter(directory: directory)
        try writer.add([("a", 1), ("b", 2)], step: 7)
        var bytes = try Data(contentsOf: writer.url)
        bytes[bytes.count - 6] ^= 0xFF
        try bytes.write(to: writer.url)
        #expect {
            _ = try TensorBoard.readScalars(writer.url)
        } throws: { error in
            "\(error)".contains(writer.url.lastPathComponent) && "\(error)".contains("CRC mismatch")
        }
        try Data(bytes.prefix(bytes.count - 3)).write(to: writer.url)
        #expect(throws: FileError.self) { _ = try TensorBoard.readScalars(writer.url) }
    }
}

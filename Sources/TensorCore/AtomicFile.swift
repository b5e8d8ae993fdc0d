import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Errors of file input and output, each naming the file.
public struct FileError: Error, CustomStringConvertible, Sendable {
    /// The file concerned.
    public let path: String
    /// What was wrong and, where possible, what to do.
    public let reason: String
    /// An error about the file at `path`.
    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }
    public var description: String { "\(path): \(reason)" }
}

/// Atomic file replacement: write to a temporary file in the same directory, fsync it, rename it
/// over the destination, fsync the directory. A crash leaves either the old file or the new one,
/// never a half-written file.
public enum AtomicFile {
    /// Writes `data` to a temporary file beside `url`, syncs it and renames it over `url`: readers see the old file or the new one, never a torn one.
    public static func write(_ data: Data, to url: URL) throws {
        try data.withUnsafeBytes { bytes in try write(bytes, to: url) }
    }

    /// Writes `bytes` atomically, as `write(_:to:)`.
    public static func write(_ bytes: UnsafeRawBufferPointer, to url: URL) throws {
        let path = url.path
        let directory = url.deletingLastPathComponent().path
        let temporary = directory + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt64(Date().timeIntervalSince1970 * 1e6))"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw FileError(path: path, reason: "cannot create a temporary file in \(directory): \(String(cString: strerror(errno))) — check that the directory exists and is writable")
        }
        var succeeded = false
        defer {
            if !succeeded { unlink(temporary) }
        }
        var written = 0
        while written < bytes.count {
            let result = Glibc.write(descriptor, bytes.baseAddress! + written, bytes.count - written)
            if result < 0 {
                if errno == EINTR { continue }
                let message = String(cString: strerror(errno))
                close(descriptor)
                throw FileError(path: path, reason: "write failed: \(message)")
            }
            written += result
        }
        guard fsync(descriptor) == 0 else {
            let message = String(cString: strerror(errno))
            close(descriptor)
            throw FileError(path: path, reason: "fsync failed: \(message)")
        }
        close(descriptor)
        guard rename(temporary, path) == 0 else {
            throw FileError(path: path, reason: "rename from temporary file failed: \(String(cString: strerror(errno)))")
        }
        succeeded = true
        let directoryDescriptor = open(directory, O_RDONLY | O_CLOEXEC)
        if directoryDescriptor >= 0 {
            _ = fsync(directoryDescriptor)
            close(directoryDescriptor)
        }
    }
}

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

    /// `error`, thrown by a Foundation file operation, as an error naming the file it was about
    /// and the system's reason ("No such file or directory", "Permission denied"); nil when it
    /// names no file. The command line prints any such error this way rather than as Foundation's
    /// `Error Domain=NSCocoaErrorDomain Code=4 …` dump.
    public init?(foundation error: any Error) {
        let nsError = error as NSError
        guard nsError.domain == NSCocoaErrorDomain || nsError.domain == NSPOSIXErrorDomain,
              let path = (nsError.userInfo[NSFilePathErrorKey] as? String) ?? (nsError.userInfo[NSURLErrorKey] as? URL)?.path else { return nil }
        self.init(path: path, reason: FileError.systemReason(error))
    }

    /// Why a Foundation file operation failed, in a few words: the POSIX error's `strerror` text
    /// when Foundation carries one, else its own description.
    public static func systemReason(_ error: any Error) -> String {
        let nsError = error as NSError
        if nsError.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(nsError.code))) }
        if let underlying = nsError.userInfo[NSUnderlyingErrorKey] as? any Error {
            let posix = underlying as NSError
            if posix.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(posix.code))) }
        }
        let text = nsError.localizedDescription
        let preamble = "The operation could not be completed. "
        return text.hasPrefix(preamble) ? String(text.dropFirst(preamble.count)) : text
    }
}

/// Atomic file replacement: write to a temporary file in the same directory, fsync it, rename it
/// over the destination, fsync the directory. A crash leaves either the old file or the new one,
/// never a half-written file.
public enum AtomicFile {
    /// Creates `directory` and its parents unless it exists, and checks that files can be created
    /// in it; otherwise throws a `FileError` naming it and the system's reason. Commands call it
    /// on their output directories before the work whose results they will hold, so that an
    /// unwritable `--out` is refused at once rather than after minutes of training.
    public static func prepareDirectory(_ directory: URL) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw FileError(path: directory.path, reason: "is a file, not a directory; choose another output path")
            }
        } else {
            do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
                throw FileError(path: directory.path, reason: "cannot create the directory (\(FileError.systemReason(error))); choose a writable output path")
            }
        }
        guard access(directory.path, W_OK | X_OK) == 0 else {
            throw FileError(path: directory.path, reason: "cannot write in the directory (\(String(cString: strerror(errno)))); choose a writable output path")
        }
    }

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

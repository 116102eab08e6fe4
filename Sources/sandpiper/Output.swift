import Foundation

/// Terminal and CI output helpers: stderr for diagnostics, stable JSON for machines.
enum Output {
    static func error(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    static func flush() { fflush(nil) }

    static func errorInline(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }

    /// `path` relative to the current directory when it lies below it (shorter, copy-pasteable).
    static func relative(_ path: String) -> String {
        let cwd = FileManager.default.currentDirectoryPath + "/"
        return path.hasPrefix(cwd) ? String(path.dropFirst(cwd.count)) : path
    }

    /// Encodes `value` as pretty JSON with sorted keys, so identical inputs print identical bytes.
    static func json<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// True when stdout is a terminal (colour, progress); false in CI and pipes.
    static var isTerminal: Bool { isatty(STDOUT_FILENO) != 0 && ProcessInfo.processInfo.environment["CI"] == nil }
}

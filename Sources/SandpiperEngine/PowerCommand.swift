import Foundation
import SandpiperModel

/// Runs a host's power command (`hosts[].power.on/off/status` in cluster.yaml): argv only, no shell, no PATH
/// lookup (the program path is absolute), an empty environment but for `PATH=/usr/bin:/bin`, stdin closed, a
/// deadline after which the process is terminated (then killed), and its output captured and truncated for the
/// journal.
///
/// Security: these commands run on the reconciler with its privileges. Whoever can commit to the repository that
/// holds cluster.yaml can make Sandpiper run them, so `apply` refuses to run any of them unless the policy says
/// `consolidation.powerCommands: allow` (the policy file is reviewed like the spec).
public struct PowerCommand: Sendable {
    public struct Result: Sendable, Equatable {
        public var exitCode: Int32?
        public var timedOut: Bool
        /// stdout + stderr, truncated to `outputLimit` characters.
        public var output: String
        public var succeeded: Bool { exitCode == 0 && !timedOut }

        /// "exit 0: Chassis Power Control: Up/On" / "timed out after 5s".
        public var summary: String {
            let text = output.trimmingCharacters(in: .whitespacesAndNewlines)
            let head = timedOut ? "timed out" : "exit \(exitCode.map(String.init) ?? "?")"
            return text.isEmpty ? head : "\(head): \(text)"
        }
    }

    public static let outputLimit = 2000

    public var argv: [String]
    public var timeoutSeconds: Double

    public init(argv: [String], timeoutSeconds: Double) {
        self.argv = argv; self.timeoutSeconds = timeoutSeconds
    }

    /// "/usr/bin/ipmitool -H pm4-bmc chassis power on" for messages.
    public var display: String { argv.joined(separator: " ") }

    public func run() throws -> Result {
        guard let program = argv.first, program.hasPrefix("/") else {
            throw ApplyError("power command \(argv) does not start with an absolute program path")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = Array(argv.dropFirst())
        process.environment = ["PATH": "/usr/bin:/bin"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        let collected = OutputBuffer(limit: Self.outputLimit)
        pipe.fileHandleForReading.readabilityHandler = { h in
            let data = h.availableData
            if data.isEmpty { h.readabilityHandler = nil } else { collected.append(data) }
        }
        let finished = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in finished.signal() }
        do { try process.run() } catch {
            pipe.fileHandleForReading.readabilityHandler = nil
            throw ApplyError("cannot run \(program): \(error.localizedDescription)")
        }
        var timedOut = false
        if finished.wait(timeout: .now() + timeoutSeconds) == .timedOut {
            timedOut = true
            process.terminate()
            if finished.wait(timeout: .now() + 2) == .timedOut {
                kill(process.processIdentifier, SIGKILL)
                _ = finished.wait(timeout: .now() + 2)
            }
        }
        // Drain what is left in the pipe (the handler may not have seen the last bytes).
        pipe.fileHandleForReading.readabilityHandler = nil
        if let rest = try? pipe.fileHandleForReading.readToEnd() { collected.append(rest) }
        return Result(exitCode: timedOut ? nil : process.terminationStatus, timedOut: timedOut,
                      output: collected.text)
    }

    /// Interprets a `status` command's output: the word `off` -> powered off, `on` -> powered on, else nil.
    public static func poweredOn(statusOutput: String) -> Bool? {
        let words = statusOutput.lowercased().split { !$0.isLetter }
        if words.contains("off") { return false }
        if words.contains("on") { return true }
        return nil
    }
}

private final class OutputBuffer: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    private var dropped = false
    let limit: Int
    init(limit: Int) { self.limit = limit }
    func append(_ d: Data) {
        lock.lock(); defer { lock.unlock() }
        let room = max(0, limit - data.count)
        data.append(d.prefix(room))
        if d.count > room { dropped = true }
    }
    var text: String {
        lock.lock(); defer { lock.unlock() }
        return String(decoding: data, as: UTF8.self) + (dropped ? " [output truncated]" : "")
    }
}

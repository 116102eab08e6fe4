import Foundation
import Synchronization
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

    /// Runs the command in a process group of its own: the deadline covers the whole group (a wrapper script
    /// and the tool it runs), only the direct child is waited for, and output is read without waiting for
    /// descendants that keep the pipe open (`ssh -f`, a daemonising helper).
    public func run() throws -> Result {
        guard let program = argv.first, program.hasPrefix("/") else {
            throw ApplyError("power command \(argv) does not start with an absolute program path")
        }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw ApplyError("cannot run \(program): pipe: \(String(cString: strerror(errno)))") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        posix_spawn_file_actions_addclose(&actions, fds[1])
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)

        let cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        let cEnv: [UnsafeMutablePointer<CChar>?] = [strdup("PATH=/usr/bin:/bin"), nil]
        defer { for p in cArgs + cEnv { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, program, &actions, &attributes, cArgs, cEnv)
        close(fds[1])
        guard rc == 0 else {
            close(fds[0])
            throw ApplyError("cannot run \(program): \(String(cString: strerror(rc)))")
        }
        _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
        defer { close(fds[0]) }

        let collected = OutputBuffer(limit: Self.outputLimit)
        func drain() {
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = read(fds[0], &buffer, buffer.count)
                if n <= 0 { return }
                collected.append(Data(buffer[0..<n]))
            }
        }
        var status: Int32 = 0
        func reaped() -> Bool { waitpid(pid, &status, WNOHANG) == pid }
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        var exited = false
        while Date() < deadline {
            drain()
            if reaped() { exited = true; break }
            usleep(10_000)
        }
        var timedOut = false
        if !exited {
            timedOut = true
            kill(-pid, SIGTERM)
            let grace = Date().addingTimeInterval(2)
            while Date() < grace, !reaped() { usleep(10_000) }
            kill(-pid, SIGKILL)
            _ = waitpid(pid, &status, 0)
        }
        drain()
        // Exited normally: the low 7 bits are 0 and the exit code is the next byte.
        let normal = (status & 0x7f) == 0
        return Result(exitCode: !timedOut && normal ? (status >> 8) & 0xff : nil, timedOut: timedOut,
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

private final class OutputBuffer: Sendable {
    private let buffer = Mutex((data: Data(), dropped: false))
    let limit: Int
    init(limit: Int) { self.limit = limit }
    func append(_ d: Data) {
        buffer.withLock { b in
            let room = max(0, limit - b.data.count)
            b.data.append(d.prefix(room))
            if d.count > room { b.dropped = true }
        }
    }
    var text: String {
        buffer.withLock { String(decoding: $0.data, as: UTF8.self) + ($0.dropped ? " [output truncated]" : "") }
    }
}

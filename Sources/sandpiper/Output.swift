import ArgumentParser
import Foundation
import SandpiperEngine

/// Terminal and CI output helpers: stderr for diagnostics, stable JSON for machines.
enum Output {
    static func error(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    static func flush() { fflush(nil) }

    /// Reports a failure the way every command does: each line of the message on stderr prefixed `error:`, and
    /// with `--json` one object `{"formatVersion": 1, "ok": false, "error": ...}` on stdout, so scripts always get
    /// JSON. Returns the exit code to throw (1).
    static func failure(_ failure: Error, json: Bool) -> ExitCode {
        let text = "\(failure)"
        if json {
            struct Failure: Encodable { var formatVersion = 1; var ok = false; var error: String }
            print((try? Output.json(Failure(error: text))) ?? "{\"formatVersion\": 1, \"ok\": false}")
        }
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) { error("error: \(line)") }
        return ExitCode.invalid
    }

    /// Tells the operator that the last apply never finished, and which actions may be half done.
    static func warnInterrupted(_ state: StateDocument?, directory: URL, ownLock: String? = nil) {
        guard let state, !state.interruptedActions.isEmpty, let plan = state.lastPlan else { return }
        if let holder = try? ClusterLock.current(directory: directory), holder.id != ownLock {
            error("warning: an apply of plan \(plan.id) is in progress (\(holder)); the fleet may change under this run")
            return
        }
        error("warning: apply of plan \(plan.id) was interrupted; these actions started and never reported back "
            + "(libvirt shows what happened, and this plan starts from there):")
        for entry in state.interruptedActions { error("warning:   \(entry.actionID): \(entry.summary)") }
    }

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

/// Apply progress, one line per event so that parallel actions stay readable on a terminal and in CI logs:
/// `[2/4] started  migrate batch1  pm2 -> pm3 (live)` ... `[2/4] done     migrate batch1 ... (12.3s)`.
final class ApplyProgress: @unchecked Sendable {
    private let started = Date()
    private let lock = NSLock()
    private var index: [String: String] = [:]

    func onStart(_ i: Int, _ n: Int, _ summary: String) {
        lock.lock(); index[summary] = "[\(i)/\(n)]"; lock.unlock()
        print("[\(i)/\(n)] started  \(summary)")
        Output.flush()
    }

    func onFinish(_ outcome: ApplyReport.Outcome) {
        lock.lock(); let tag = index[outcome.summary] ?? "[?]"; lock.unlock()
        let elapsed = String(format: "%.1fs", Date().timeIntervalSince(started))
        let status = outcome.status.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
        let detail = outcome.detail.map { ": \($0)" } ?? ""
        print("\(tag) \(status) \(outcome.summary)\(detail) (\(elapsed))")
        Output.flush()
    }
}

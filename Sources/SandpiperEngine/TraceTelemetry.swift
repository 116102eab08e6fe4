import Foundation
import SandpiperModel

/// A recorded trace (DESIGN.md "Trace CSV"): one row per VM per interval,
/// `time_s,vm,cpu_cores,net_mbps,mem_mib,swap_kbps,guest_free_mib`.
/// Demand belongs to the VM, so it follows the VM when it migrates. A row whose `vm` is `@<host>` is the load on
/// that host outside its VMs (hypervisor, host services: cpu_cores, mem_mib; the other columns are ignored);
/// such rows are optional, per host, and stay with the host.
public struct Trace: Sendable, Equatable {
    public static let header = "time_s,vm,cpu_cores,net_mbps,mem_mib,swap_kbps,guest_free_mib"

    /// Sample times, ascending.
    public var times: [Double]
    /// Per VM, one sample per time (same length as `times`), sorted by VM name.
    public var samples: [String: [Sample]]

    public var vmNames: [String] { samples.keys.filter { !$0.hasPrefix("@") }.sorted() }

    /// The `vm` column of a host's own-load rows, and the key of its window.
    public static func hostKey(_ host: String) -> String { "@" + host }

    /// The last `count` samples of `vm` up to and including `index` (oldest first).
    public func window(_ vm: String, endingAt index: Int, count: Int) -> [Sample] {
        guard let all = samples[vm], index >= 0 else { return [] }
        let end = min(index, all.count - 1)
        return Array(all[max(0, end - count + 1)...end])
    }

    /// Parses a trace (`TraceCSV`); errors name the file, line and column.
    public static func parse(_ text: String, file: String) throws(TraceError) -> Trace {
        var text = text
        return try text.withUTF8 { bytes in Result { () throws(TraceError) in try TraceCSV.parse(bytes, file: file) } }.get()
    }

    /// Parses a trace from its bytes, as read from disk or from a git tree.
    public static func parse(bytes: [UInt8], file: String) throws(TraceError) -> Trace {
        try bytes.withUnsafeBufferPointer { bytes in
            Result { () throws(TraceError) in try TraceCSV.parse(bytes, file: file) }
        }.get()
    }

    public static func load(_ url: URL, shown: String) throws(TraceError) -> Trace {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw TraceError(file: shown, line: 1, column: 1, message: "cannot be read")
        }
        return try data.withUnsafeBytes { raw in
            Result { () throws(TraceError) in try TraceCSV.parse(raw.bindMemory(to: UInt8.self), file: shown) }
        }.get()
    }
}

public struct TraceError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    public var message: String
    public var description: String { "\(file):\(line):\(column): \(message)" }
}

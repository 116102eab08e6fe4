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

    /// Parses a trace; errors name the file, line and column.
    public static func parse(_ text: String, file: String) throws -> Trace {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map {
            $0.hasSuffix("\r") ? $0.dropLast() : $0
        }
        while lines.last?.isEmpty == true { lines.removeLast() }
        guard let first = lines.first, first.trimmingCharacters(in: .whitespaces) == header else {
            throw TraceError(file: file, line: 1, column: 1, message: "the header must be exactly: \(header)")
        }
        var byVM: [String: [(Double, Sample)]] = [:]
        var times = Set<Double>()
        var seen = Set<String>()
        for (i, raw) in lines.enumerated().dropFirst() {
            let lineNo = i + 1
            if raw.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            let fields = raw.split(separator: ",", omittingEmptySubsequences: false).map {
                $0.trimmingCharacters(in: .whitespaces)
            }
            guard fields.count == 7 else {
                throw TraceError(file: file, line: lineNo, column: 1,
                                 message: "expected 7 fields, found \(fields.count)")
            }
            func column(_ n: Int) -> Int { fields[..<n].reduce(1) { $0 + $1.count + 1 } }
            func number(_ n: Int, _ name: String, optional: Bool = false) throws -> Double? {
                if fields[n].isEmpty {
                    if optional { return nil }
                    throw TraceError(file: file, line: lineNo, column: column(n), message: "\(name) is required")
                }
                guard let v = Double(fields[n]), v.isFinite, v >= 0 else {
                    throw TraceError(file: file, line: lineNo, column: column(n),
                                     message: "\(name) \"\(fields[n])\" is not a non-negative number")
                }
                return v
            }
            let time = try number(0, "time_s")!
            let vm = fields[1]
            guard !vm.isEmpty else {
                throw TraceError(file: file, line: lineNo, column: column(1), message: "vm is required")
            }
            guard seen.insert("\(vm)@\(time)").inserted else {
                throw TraceError(file: file, line: lineNo, column: 1,
                                 message: "a second row for \(vm) at time \(Units.trim(time))")
            }
            let sample = Sample(cpu: try number(2, "cpu_cores")!, netMbps: try number(3, "net_mbps")!,
                                memMiB: try number(4, "mem_mib")!, swapKbps: try number(5, "swap_kbps", optional: true),
                                guestFreeMiB: try number(6, "guest_free_mib", optional: true))
            byVM[vm, default: []].append((time, sample))
            times.insert(time)
        }
        let sortedTimes = times.sorted()
        var samples: [String: [Sample]] = [:]
        for (vm, rows) in byVM {
            guard rows.count == sortedTimes.count else {
                throw TraceError(file: file, line: 1, column: 1,
                                 message: "\(vm) has \(rows.count) rows but the trace has \(sortedTimes.count) intervals "
                                    + "(one row per VM per interval)")
            }
            samples[vm] = rows.sorted { $0.0 < $1.0 }.map(\.1)
        }
        return Trace(times: sortedTimes, samples: samples)
    }

    public static func load(_ url: URL, shown: String) throws -> Trace {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw TraceError(file: shown, line: 1, column: 1, message: "cannot be read")
        }
        return try parse(String(decoding: data, as: UTF8.self), file: shown)
    }
}

public struct TraceError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    public var message: String
    public var description: String { "\(file):\(line):\(column): \(message)" }
}

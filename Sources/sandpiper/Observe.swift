import ArgumentParser
import Foundation
import SandpiperEngine
import SandpiperModel

struct Observe: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sample the fleet, record the inventory in state.json and print hosts and VMs.",
        discussion: """
        Reads every host's inventory through libvirt (in parallel, with a deadline per host; a host that does \
        not answer is shown as unknown, never as empty) and a window of samples from the cluster's telemetry \
        source (live libvirt sampling, the trace, or Prometheus' history). The inventory goes to state.json; the sample windows are \
        printed, not stored: git history shows decisions, not telemetry, and every run samples its own window.
        """)

    @Argument(help: "Cluster directory (Clusters/<name>) or its cluster.yaml.")
    var cluster: String

    @Flag(help: "Print one JSON object (formatVersion 1).")
    var json = false

    @OptionGroup var telemetry: TelemetryFlags

    @OptionGroup var deadline: HostDeadlineFlags

    struct Report: Encodable {
        struct Host: Encodable {
            var name: String; var status: String; var reason: String?
            var cpus: Double; var memoryMiB: Double; var networkMbps: Double
            var cpu: Double?; var net: Double?; var mem: Double?; var vms: Int
        }
        struct VM: Encodable {
            var name: String; var host: String; var state: String; var vcpus: Int; var memoryMiB: Double
            var cpuCores: Double?; var netMbps: Double?; var memUsedMiB: Double?; var samples: Int
            /// Bytes of local disk a move copies, and the disks with their storage mode (omitted when none).
            var diskCopyBytes: Double?; var disks: [VMDisk]?
        }
        var formatVersion = 1
        var cluster: String
        var stateSerial: Int
        var hosts: [Host]
        var vms: [VM]
        var warnings: [String]
    }

    func run() throws {
        do {
            let loaded = try Engine.load(cluster)
            let lock: ClusterLock
            do { lock = try ClusterLock.acquire(directory: loaded.directory, operation: "observe") } catch {
                throw EngineError.apply("\(error)")
            }
            defer { lock.release() }
            let previous = try Engine.readState(loaded)
            let connections = FleetConnections(cluster: loaded, readOnly: true, timeout: deadline.timeout, previous: previous?.inventory)
            defer { connections.closeAll() }
            var snapshot = try Engine.observe(loaded, connections: connections, state: previous,
                                              telemetry: telemetry.options(quiet: json))
            var state = previous ?? StateDocument(cluster: loaded.spec.name)
            Engine.recordLowSince(loaded, snapshot: &snapshot, state: &state)  // consolidation: when hosts became low
            state.record(snapshot.observation)
            let written: StateDocument
            do { written = try StateFile(directory: loaded.directory).write(state) } catch { throw EngineError.state(error) }

            let report = Self.report(loaded, snapshot: snapshot, serial: written.serial)
            if json { print(try Output.json(report)); return }
            for w in report.warnings { Output.error("warning: \(w)") }
            print(Self.table(report))
        } catch {
            throw Output.failure(error, json: json)
        }
    }

    static func report(_ loaded: LoadedCluster, snapshot: FleetSnapshot, serial: Int) -> Report {
        let obs = snapshot.observation
        let hosts = obs.hosts.map { h -> Report.Host in
            let vms = obs.vms.filter { $0.host == h.name }
            guard h.isUp else {
                var reason: String?
                if case .unknown(let r) = h.status { reason = r }
                return Report.Host(name: h.name, status: h.isStandby ? "standby" : "unknown", reason: reason, cpus: h.cpus, memoryMiB: h.memoryMiB,
                                   networkMbps: h.networkMbps, cpu: nil, net: nil, mem: nil, vms: 0)
            }
            func sum(_ f: (Sample) -> Double) -> Double? {
                let values = vms.compactMap { $0.samples.last.map(f) }
                return values.isEmpty ? nil : values.reduce(0, +)
            }
            return Report.Host(name: h.name, status: "up", reason: nil, cpus: h.cpus, memoryMiB: h.memoryMiB,
                               networkMbps: h.networkMbps, cpu: sum(\.cpu).map { $0 / max(h.cpus, 1e-9) },
                               net: sum(\.netMbps).map { $0 / max(h.networkMbps, 1e-9) },
                               mem: sum(\.memMiB).map { $0 / max(h.memoryMiB, 1e-9) }, vms: vms.count)
        }
        let vms = obs.vms.map { v in
            Report.VM(name: v.name, host: v.host, state: v.state.rawValue, vcpus: v.vcpus, memoryMiB: v.memoryMiB,
                      cpuCores: v.samples.last?.cpu, netMbps: v.samples.last?.netMbps,
                      memUsedMiB: v.samples.last?.memMiB, samples: v.samples.count,
                      diskCopyBytes: v.diskCopyBytes, disks: v.disks)
        }
        return Report(cluster: loaded.spec.name, stateSerial: serial, hosts: hosts, vms: vms,
                      warnings: snapshot.inventory.warnings)
    }

    static func table(_ r: Report) -> String {
        func pct(_ x: Double?) -> String { x.map { String(format: "%5.1f%%", $0 * 100) } ?? "    -" }
        func num(_ x: Double?, _ f: String) -> String { x.map { String(format: f, $0) } ?? "-" }
        var lines = ["HOST        STATUS    CPU     NET     MEM     VMS  CAPACITY"]
        for h in r.hosts {
            var line = h.name.padding(toLength: 12, withPad: " ", startingAt: 0)
                + h.status.padding(toLength: 9, withPad: " ", startingAt: 0)
                + " \(pct(h.cpu))  \(pct(h.net))  \(pct(h.mem))  \(String(h.vms).leftPadded(3))"
                + "  \(Units.trim(h.cpus)) CPUs, \(Units.formatMiB(h.memoryMiB)), \(Units.formatMbps(h.networkMbps))"
            if let reason = h.reason { line += "  (\(reason))" }
            lines.append(line)
        }
        lines.append("")
        lines.append("VM          HOST        STATE     VCPUS  MEMORY    CPU(cores)  NET(Mbit/s)  MEM USED")
        for v in r.vms {
            lines.append(v.name.padding(toLength: 12, withPad: " ", startingAt: 0)
                + v.host.padding(toLength: 12, withPad: " ", startingAt: 0)
                + v.state.padding(toLength: 10, withPad: " ", startingAt: 0)
                + String(v.vcpus).leftPadded(5) + "  " + Units.formatMiB(v.memoryMiB).padding(toLength: 8, withPad: " ", startingAt: 0)
                + num(v.cpuCores, "%.2f").leftPadded(12) + num(v.netMbps, "%.1f").leftPadded(13)
                + (v.memUsedMiB.map { "  " + Units.formatMiB($0.rounded()) } ?? "  -"))
        }
        lines.append("")
        lines.append("State: serial \(r.stateSerial).")
        return lines.joined(separator: "\n")
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}

import Foundation

/// A cluster repository for the lab tests, written the way an operator would: `Policies/default.yaml` (the bundled
/// one, with edits) and `Clusters/<name>/cluster.yaml` with hosts, VMs and, for `source: trace`, a quiet trace.
public enum LabCluster {
    /// A VM's constant row in a quiet trace (5 intervals of 10 s).
    public struct TraceRow: Sendable {
        public var vm: String
        public var cpu: Double
        public var memMiB: Double
        public var guestFreeMiB: Double
        public init(_ vm: String, cpu: Double = 0.05, memMiB: Double = 60, guestFreeMiB: Double = 400) {
            self.vm = vm; self.cpu = cpu; self.memMiB = memMiB; self.guestFreeMiB = guestFreeMiB
        }
    }

    /// Copies the bundled default policy into `root/Policies/`, with `edits` (old -> new text) applied.
    public static func writePolicy(root: URL, edits: [(String, String)] = []) throws {
        let policies = root.appendingPathComponent("Policies")
        try FileManager.default.createDirectory(at: policies, withIntermediateDirectories: true)
        var text = try String(contentsOf: LinuxGuest.repositoryRoot.appendingPathComponent("Policies/default.yaml"),
                              encoding: .utf8)
        for (old, new) in edits { text = text.replacingOccurrences(of: old, with: new) }
        try text.write(to: policies.appendingPathComponent("default.yaml"), atomically: true, encoding: .utf8)
    }

    /// Writes `root/Clusters/<name>/cluster.yaml` and returns the cluster directory. `hosts` are (name, URI);
    /// `vms` are flow-style YAML mappings (`{name: g1, vcpus: 1, memory: 512MiB}`); `extra` goes before `hosts:`
    /// (e.g. `slas:`). With `trace` rows the telemetry source is a replayed trace of them, else live libvirt
    /// sampling every `liveInterval`.
    @discardableResult
    public static func write(root: URL, name: String, hosts: [(String, String)], vms: [String], extra: String = "",
                             trace: [TraceRow]? = nil, liveInterval: String = "2s") throws -> URL {
        let dir = root.appendingPathComponent("Clusters/\(name)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("traces"), withIntermediateDirectories: true)
        let telemetry = trace == nil ? "{source: libvirt, interval: \(liveInterval)}"
            : "{source: trace, trace: traces/t.csv, interval: 10s}"
        var yaml = "apiVersion: sandpiper/v1\nkind: Cluster\nname: \(name)\ntelemetry: \(telemetry)\n" + extra
        yaml += "hosts:\n" + hosts.map { "  - {name: \($0.0), uri: \"\($0.1)\"}\n" }.joined()
        yaml += "vms:\n" + vms.map { "  - \($0)\n" }.joined()
        try yaml.write(to: dir.appendingPathComponent("cluster.yaml"), atomically: true, encoding: .utf8)
        if let trace {
            var csv = "time_s,vm,cpu_cores,net_mbps,mem_mib,swap_kbps,guest_free_mib\n"
            for t in stride(from: 0, to: 50, by: 10) {
                for r in trace { csv += "\(t),\(r.vm),\(r.cpu),0.1,\(r.memMiB),,\(r.guestFreeMiB)\n" }
            }
            try csv.write(to: dir.appendingPathComponent("traces/t.csv"), atomically: true, encoding: .utf8)
        }
        return dir
    }
}

/// Processes a lab test started itself (sshd, a TLS libvirtd): stopped by their own PID, never by name.
public enum LabProcess {
    /// SIGTERM, up to `grace` seconds to exit, then SIGKILL; waits for the exit.
    public static func stop(_ process: Process, grace: TimeInterval = 10) {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(grace)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}

import ArgumentParser
import SandpiperEngine
import SandpiperGitOps
import SandpiperModel

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a cluster spec and its policy.",
        discussion: """
        Parses Clusters/<name>/cluster.yaml and the policy it names (Policies/<policy>.yaml at the root of \
        the repository) and checks names, references, units, reservations against capacity and placement \
        rules. Every problem is reported with file:line:column and the field path. Exit 0 valid, 1 invalid.
        """)

    @Argument(help: "Cluster directory (Clusters/<name>) or the path of its cluster.yaml.")
    var cluster: String

    @Flag(help: "Print one JSON object (formatVersion 1) instead of text.")
    var json = false

    @Option(help: "Validate the spec and policy as committed at this revision (branch, tag, commit), read with libgit2.")
    var ref: String?

    func run() throws {
        let report: ValidationReport
        do {
            report = ValidationReport(try load())
        } catch {
            let report = ValidationReport(errors: error.diagnostics)
            if json { print(try Output.json(report)) } else {
                switch error {
                case .invalid(let e): for d in e.diagnostics { Output.error("error: \(d)") }
                case .unreadable: Output.error("error: \(error)")
                }
                Output.error("\(error.diagnostics.count) error\(error.diagnostics.count == 1 ? "" : "s") in \(cluster)")
            }
            throw ExitCode.invalid
        }
        if json { print(try Output.json(report)); return }
        let s = report.summary!
        func counted(_ n: Int, _ noun: String) -> String { "\(n) \(noun)\(n == 1 ? "" : "s")" }
        print("\(s.cluster): valid (policy \(s.policy), \(counted(s.hosts, "host")), \(counted(s.vms, "VM")), "
            + "\(counted(s.groups, "group")))")
        print("  reserved CPU     \(Units.trim(s.reservedCPUs)) of \(s.capacityCPUs.map(Units.trim) ?? "?") cores")
        print("  reserved memory  \(Units.formatMiB(s.reservedMemoryMiB)) of "
            + "\(s.capacityMemoryMiB.map(Units.formatMiB) ?? "?")")
        print("  declared vCPUs   \(s.vcpus), memory \(Units.formatMiB(s.memoryMiB))")
    }

    /// The working tree, or with --ref the commit's tree (diagnostics name `REF:path`).
    private func load() throws(LoadError) -> LoadedCluster {
        guard let ref else { return try ClusterLoader.load(cluster) }
        do {
            return try GitSnapshot(try GitClusterLocation.locate(cluster), revision: ref).cluster
        } catch let EngineError.load(e) {
            throw e
        } catch {
            throw .unreadable(path: "\(ref):\(cluster)", reason: "\(error)")
        }
    }
}

/// The `validate --json` document.
struct ValidationReport: Encodable {
    struct Summary: Encodable {
        var cluster: String
        var policy: String
        var hosts: Int
        var vms: Int
        var groups: Int
        var vcpus: Int
        var memoryMiB: Double
        var reservedCPUs: Double
        var reservedMemoryMiB: Double
        /// Nil when some host does not declare its capacity (it is then observed).
        var capacityCPUs: Double?
        var capacityMemoryMiB: Double?
    }
    var formatVersion = 1
    var valid: Bool
    var summary: Summary?
    var errors: [SpecDiagnostic]

    init(errors: [SpecDiagnostic]) { valid = false; summary = nil; self.errors = errors }

    init(_ loaded: LoadedCluster) {
        let spec = loaded.spec
        let cpus = spec.hosts.compactMap(\.capacity.cpus)
        let mems = spec.hosts.compactMap(\.capacity.memoryMiB)
        valid = true
        errors = []
        summary = Summary(
            cluster: spec.name, policy: spec.policy, hosts: spec.hosts.count, vms: spec.vms.count,
            groups: spec.groups.count, vcpus: spec.vms.reduce(0) { $0 + $1.vcpus },
            memoryMiB: spec.vms.reduce(0) { $0 + $1.memoryMiB },
            reservedCPUs: spec.vms.reduce(0) { $0 + $1.resources.cpu.reservation },
            reservedMemoryMiB: spec.vms.reduce(0) { $0 + $1.resources.memory.reservation },
            capacityCPUs: cpus.count == spec.hosts.count ? cpus.reduce(0, +) : nil,
            capacityMemoryMiB: mems.count == spec.hosts.count ? mems.reduce(0, +) : nil)
    }
}

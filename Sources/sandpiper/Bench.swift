import ArgumentParser
import Foundation
import SandpiperEngine
import SandpiperSimulation

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks: planner speed and memory, plan quality, sampling, whole commands end to end and the controller on a generated fleet.",
        discussion: "Speed and memory targets live here, never in timed tests. Build with -c release to measure.",
        subcommands: [BenchPlanner.self, BenchSampling.self, BenchE2E.self, BenchQuality.self, BenchController.self])
}

struct BenchPlanner: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "planner",
        abstract: "Time one plan of a generated fleet with ~5% hot hosts; report wall time and peak RSS.")

    @Option(help: "Number of hosts.") var hosts: Int = 1000
    @Option(help: "Number of VMs.") var vms: Int = 20000
    @Option(help: "Seed of the fleet generator (same seed, same fleet).") var seed: UInt64 = 1
    @Option(help: "Fraction of hosts made hot.") var hotFraction: Double = 0.05
    @Flag(help: "Print one JSON object (formatVersion 1).") var json = false

    func validate() throws {
        guard hosts >= 1, vms >= 0 else { throw ValidationError("--hosts must be >= 1 and --vms >= 0") }
        guard (0...1).contains(hotFraction) else { throw ValidationError("--hot-fraction must be within 0...1") }
    }

    struct Report: Encodable {
        var formatVersion = 1
        var hosts: Int
        var vms: Int
        var seed: UInt64
        var seconds: Double
        var generateSeconds: Double
        var peakRSSBytes: Int
        var actions: Int
        var migrations: Int
        var swaps: Int
        var hotHosts: Int
        var hotspotsResolved: Int
        var unresolved: Int
    }

    func run() throws {
        let r = PlannerBenchmark.run(hosts: hosts, vms: vms, seed: seed, hotFraction: hotFraction)
        let report = Report(hosts: r.hosts, vms: r.vms, seed: r.seed, seconds: r.seconds,
                            generateSeconds: r.generateSeconds, peakRSSBytes: peakRSSBytes(), actions: r.actions,
                            migrations: r.migrations, swaps: r.swaps, hotHosts: r.hotHosts,
                            hotspotsResolved: r.hotspotsResolved, unresolved: r.unresolved)
        if json { print(try Output.json(report)); return }
        print("planner: \(hosts) hosts, \(vms) VMs (seed \(seed))")
        print(String(format: "  plan       %.3f s  (fleet generation %.3f s, not counted)", r.seconds, r.generateSeconds))
        print(String(format: "  peak RSS   %.1f MiB", Double(report.peakRSSBytes) / 1_048_576))
        print("  hot hosts  \(r.hotHosts), resolved \(r.hotspotsResolved), unresolved entries \(r.unresolved)")
        print("  actions    \(r.actions) (\(r.migrations) migrations, \(r.swaps) swaps)")
    }

    /// VmHWM from /proc/self/status: the process's peak resident set.
    func peakRSSBytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kib = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
            return kib * 1024
        }
        return 0
    }
}

struct BenchSampling: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sampling",
        abstract: "Time one statistics round trip for N domains: Sandpiper's libvirt call vs `virsh domstats`.",
        discussion: """
        Without --uri, a libvirt test-driver host with N running domains is generated in a temp directory. \
        Sandpiper holds one connection and makes one virConnectGetAllDomainStats call per round; `virsh \
        domstats` (if installed) is run once per round, as a monitoring script would. Reports ms per round and \
        the ratio.
        """)

    @Option(help: "Number of domains on the generated test-driver host.") var domains: Int = 100
    @Option(help: "Rounds to time for each side.") var rounds: Int = 20
    @Option(help: "Sample this libvirt URI instead of a generated test-driver host.") var uri: String?
    @Flag(help: "Print one JSON object (formatVersion 1).") var json = false

    func validate() throws {
        guard domains >= 1, domains <= 100_000, rounds >= 1 else {
            throw ValidationError("--domains must be 1...100000 and --rounds >= 1")
        }
    }

    struct Report: Encodable {
        var formatVersion = 1
        var domains: Int
        var rounds: Int
        var sandpiperMsPerRound: Double
        var virshMsPerRound: Double?
        var ratio: Double?
    }

    func run() throws {
        var target = uri
        var cleanup: URL?
        if target == nil {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sandpiper-bench-\(getpid())")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let file = dir.appendingPathComponent("node.xml")
            try SamplingFixture.nodeXML(domains: domains).write(to: file, atomically: true, encoding: .utf8)
            target = "test://" + file.path
            cleanup = dir
        }
        defer { if let cleanup { try? FileManager.default.removeItem(at: cleanup) } }
        let result: (domains: Int, sandpiperMs: Double, virshMs: Double?)
        do { result = try SamplingFixture.measure(uri: target!, rounds: rounds) } catch {
            throw Output.failure(error, json: json)
        }
        let report = Report(domains: result.domains, rounds: rounds, sandpiperMsPerRound: result.sandpiperMs,
                            virshMsPerRound: result.virshMs, ratio: result.virshMs.map { $0 / max(result.sandpiperMs, 1e-9) })
        if json { print(try Output.json(report)); return }
        print("sampling \(result.domains) domains, \(rounds) rounds")
        print(String(format: "  sandpiper (one virConnectGetAllDomainStats)  %8.3f ms/round", result.sandpiperMs))
        if let v = result.virshMs {
            print(String(format: "  virsh domstats (one process per round)      %8.3f ms/round  (x%.1f)", v, v / max(result.sandpiperMs, 1e-9)))
        } else {
            print("  virsh not installed (apt-get install libvirt-clients): no comparison")
        }
    }
}

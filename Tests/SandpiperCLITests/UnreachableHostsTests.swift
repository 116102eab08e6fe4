import Foundation
import XCTest

/// Hosts that cannot be reached — refusing the connection, closing it at once (as sshd does on a key or protocol
/// failure), or accepting it and never answering — are `unknown` with the reason, within the per-host deadline,
/// every time: no crash (SIGPIPE from libvirt's ssh transport used to kill about one run in six with exit 141),
/// no lock or temp file left. Everything here talks to 127.0.0.1 only.
final class UnreachableHostsTests: XCTestCase {
    func testHundredObservesAgainstUnreachableHostsNeverCrashOrLeaveALock() throws {
        let hung = try LoopbackListener(.neverAnswers)
        let closing = try LoopbackListener(.closesAtOnce)
        defer { hung.stop(); closing.stop() }
        let refused = try LoopbackListener.refusedPort()
        let unreachable: [(String, String)] = [
            ("pm4", "qemu+tcp://127.0.0.1:\(hung.port)/system"),
            ("pm5", "qemu+ssh://root@127.0.0.1:\(hung.port)/system"),
            ("pm6", "qemu+ssh://root@127.0.0.1:\(closing.port)/system"),
            ("pm7", "qemu+tcp://127.0.0.1:\(closing.port)/system"),
            ("pm8", "qemu+ssh://root@127.0.0.1:\(refused)/system"),
            ("pm9", "qemu+tcp://127.0.0.1:\(refused)/system"),
        ]
        // Ten lanes of ten runs: each lane has its own cluster directory (one run per cluster at a time).
        let lanes = 10, runsPerLane = 10, hostTimeout = 1.0
        let clusters = try (0..<lanes).map { _ in try Self.cluster(self, adding: unreachable) }
        let failures = Failures()
        let group = DispatchGroup()
        let start = ContinuousClock.now
        for cluster in clusters {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                for _ in 0..<runsPerLane {
                    failures.add(Self.observeOnce(cluster, hosts: unreachable.map(\.0), hostTimeout: hostTimeout))
                }
            }
        }
        XCTAssertEqual(group.wait(timeout: .now() + 300), .success, "the observes did not finish")
        let elapsed = ContinuousClock.now - start
        XCTAssertEqual(failures.runs, lanes * runsPerLane)
        XCTAssertEqual(failures.all, [], "\(failures.all.count) of \(failures.runs) observes went wrong")
        XCTAssertLessThan(elapsed, .seconds(90))
    }

    /// One `observe --json` run; what went wrong with it (empty when nothing did).
    private static func observeOnce(_ cluster: URL, hosts: [String], hostTimeout: Double) -> [String] {
        let started = ContinuousClock.now
        let run: Run
        do {
            run = try CLI.run(["observe", cluster.path, "--json", "--host-timeout", "\(hostTimeout)"], timeout: 60)
        } catch { return ["observe did not finish: \(error)"] }
        let took = ContinuousClock.now - started
        var problems: [String] = []
        // A run killed by a signal shows up here too (Foundation reports the signal number, 13 for SIGPIPE).
        if run.status != 0 { problems.append("exit \(run.status): \(run.stderr.suffix(400))") }
        // The deadline is per host, all hosts at once: a run takes about one deadline, plus start-up.
        if took > .seconds(hostTimeout + 8) { problems.append("took \(took) with a \(hostTimeout) s host deadline") }
        let leftovers = ((try? FileManager.default.contentsOfDirectory(atPath: cluster.path)) ?? [])
            .filter { $0 == ".sandpiper.lock" || $0.hasSuffix(".tmp") }
        if !leftovers.isEmpty { problems.append("left behind: \(leftovers)") }
        guard run.status == 0 else { return problems }
        guard let object = try? JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any],
              let reported = object["hosts"] as? [[String: Any]] else {
            return problems + ["no JSON report: \(run.stdout.prefix(200))"]
        }
        let byName = Dictionary(reported.map { (($0["name"] as? String) ?? "", $0) }, uniquingKeysWith: { a, _ in a })
        for name in ["pm1", "pm2", "pm3"] where byName[name]?["status"] as? String != "up" {
            problems.append("\(name) is not up: \(byName[name] ?? [:])")
        }
        for name in hosts {
            let host = byName[name] ?? [:]
            let reason = host["reason"] as? String ?? ""
            if host["status"] as? String != "unknown" || reason.isEmpty || reason.contains("\n") {
                problems.append("\(name) is not unknown with a reason: \(host)")
            }
        }
        return problems
    }

    /// A copy of the demo cluster with `hosts` added (no VMs declared on them).
    private static func cluster(_ test: XCTestCase, adding hosts: [(String, String)]) throws -> URL {
        let dir = try CLI.sandbox(test).appendingPathComponent("Clusters/demo")
        let spec = dir.appendingPathComponent("cluster.yaml")
        let text = try String(contentsOf: spec, encoding: .utf8)
        let added = hosts.map { "  - name: \($0.0)\n    uri: \($0.1)\n" }.joined()
        guard let vms = text.range(of: "\nvms:\n") else { throw CocoaError(.fileReadCorruptFile) }
        try text.replacingCharacters(in: vms, with: "\n" + added + "vms:\n").write(to: spec, atomically: true, encoding: .utf8)
        return dir
    }
}

private final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var all: [String] = []
    private var count = 0
    var runs: Int { lock.lock(); defer { lock.unlock() }; return count }
    func add(_ problems: [String]) { lock.lock(); count += 1; all += problems; lock.unlock() }
}

/// A TCP listener on 127.0.0.1 that misbehaves on purpose: it accepts connections and then either holds them open
/// without a byte (a hung host) or closes them at once (a peer that drops the session, as sshd does on a bad key).
final class LoopbackListener: @unchecked Sendable {
    enum Behaviour { case neverAnswers, closesAtOnce }
    let port: Int
    private let fd: Int32
    private let lock = NSLock()
    private var held: [Int32] = []
    private var stopped = false

    init(_ behaviour: Behaviour) throws {
        fd = try Self.boundSocket()
        guard listen(fd, 512) == 0 else { close(fd); throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        port = Self.port(of: fd)
        Thread.detachNewThread { [self] in
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 { if errno == EINTR { continue }; return }
                lock.lock()
                if behaviour == .neverAnswers && !stopped { held.append(client) } else { close(client) }
                lock.unlock()
            }
        }
    }

    /// A loopback port with nothing listening: connections to it are refused.
    static func refusedPort() throws -> Int {
        let fd = try boundSocket()
        defer { close(fd) }
        return port(of: fd)
    }

    func stop() {
        lock.lock(); defer { lock.unlock() }
        guard !stopped else { return }
        stopped = true
        shutdown(fd, Int32(SHUT_RDWR))  // wakes the accept loop
        close(fd)
        for c in held { close(c) }
        held = []
    }

    private static func boundSocket() throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard ok == 0 else { close(fd); throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        return fd
    }

    private static func port(of fd: Int32) -> Int {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

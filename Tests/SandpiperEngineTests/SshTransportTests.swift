import Foundation
import SandpiperEngine
import SandpiperLibvirt
import SandpiperModel
import SandpiperTestSupport
import XCTest

/// libvirt's ssh transport for real: a real sshd (127.0.0.1, spare port, generated keys, host key verified) in
/// front of the two lab daemons. observe, plan and apply (a live migration a -> b) run through `qemu+ssh://`
/// URIs, then a peer-to-peer live migration b -> a in which daemon B itself reaches A through sshd.
/// The oracle is independent of ssh: each daemon's own unix socket, and sshd's log of accepted logins.
final class SshTransportTests: XCTestCase {
    func testObservePlanApplyAndPeerToPeerMigrationOverSsh() throws {
        if let reason = QemuLab.unavailableReason() ?? SshLab.unavailableReason() { throw XCTSkip(reason) }
        let lab = try QemuLab()
        var cleanup: [LibvirtConnection] = []
        defer { lab.teardown(domain: "tiny", connections: cleanup) }
        let (unixA, unixB) = try lab.startPair(
            hostUUIDs: ("77777777-7777-4777-8777-777777777777", "88888888-8888-4888-8888-888888888888"), migrationPortMin: 50400)
        cleanup += [unixA, unixB]
        let ssh = try SshLab()
        defer { ssh.stop() }
        let uriA = ssh.uri(socket: lab.uri("A")), uriB = ssh.uri(socket: lab.uri("B"))

        // A wrong host key is refused: ssh verifies the server, the host is unknown with ssh's reason.
        XCTAssertThrowsError(try LibvirtConnection(uri: ssh.uri(socket: lab.uri("A"), wrongHostKey: true))) { error in
            XCTAssertTrue("\(error)".contains("Host key verification failed"), "\(error)")
            XCTAssertFalse("\(error)".contains(ssh.keyFile.path), "key path scrubbed: \(error)")
        }
        XCTAssertEqual(ssh.acceptedLogins, 0, ssh.log)

        _ = try unixA.define(xml: QemuLab.tinyXML())
        try unixA.start("tiny")

        // An operator repository whose hosts are reached through sshd.
        let root = try temporaryDirectory(self)
        try LabCluster.writePolicy(root: root)
        let dir = try LabCluster.write(root: root, name: "lab", hosts: [("a", uriA), ("b", uriB)],
                                       vms: ["{name: tiny, vcpus: 1, memory: 64MiB, placement: {host: b}}"],
                                       trace: [.init("tiny", memMiB: 20, guestFreeMiB: 40)])

        let cluster = try ClusterLoader.load(dir.path)
        let connections = FleetConnections(cluster: cluster, timeout: .seconds(60))
        defer { connections.closeAll() }
        XCTAssertNil(connections.failure("a"))
        XCTAssertNil(connections.failure("b"))
        XCTAssertGreaterThanOrEqual(ssh.acceptedLogins, 2, "both hosts were reached through sshd: \(ssh.log)")

        // observe: what the ssh connections report equals what the daemons' own sockets report.
        let snapshot = try Engine.observe(cluster, connections: connections, state: nil)
        XCTAssertEqual(snapshot.observation.hosts.map { "\($0.name) \($0.status)" }, ["a up", "b up"])
        XCTAssertEqual(snapshot.observation.vms.map { "\($0.name)@\($0.host)" }, ["tiny@a"])
        XCTAssertEqual(try connections.connection("a")!.domain(named: "tiny").uuid, try unixA.domain(named: "tiny").uuid)

        // plan + apply: the placement is repaired by a live migration a -> b over the ssh connections.
        let document = Engine.plan(cluster, snapshot: snapshot, state: nil)
        let moves = document.actions.filter { $0.kind == .migrate }
        XCTAssertEqual(moves.map { "\($0.vm) \($0.from ?? "") -> \($0.to ?? "") \($0.mode?.rawValue ?? "")" },
                       ["tiny a -> b live"])
        let report = try Applier(cluster: cluster, connections: connections, state: nil).apply(document)
        XCTAssertTrue(report.succeeded, "\(report.outcomes)")
        XCTAssertNil(report.outcomes.first { $0.actionID == moves[0].id }?.detail, "moved live, not cold")
        XCTAssertEqual(try unixB.domain(named: "tiny").state, .running)
        XCTAssertNil(try unixA.domainIfExists(named: "tiny"))
        let stateText = try String(contentsOf: StateFile(directory: dir).url, encoding: .utf8)
        XCTAssertFalse(stateText.contains(ssh.keyFile.path), "no key path in state.json")
        XCTAssertFalse(stateText.contains(ssh.root.path), "no lab path in state.json")

        // Peer to peer b -> a: daemon B (user virtlab) runs ssh itself, through the same sshd, to reach A.
        let loginsBefore = ssh.acceptedLogins
        let sshB = try XCTUnwrap(connections.connection("b"))
        let sshA = try XCTUnwrap(connections.connection("a"))
        let back = try sshB.migrateLive("tiny", to: sshA,
                                        options: LiveMigrationOptions(migrateURI: "tcp://127.0.0.1", peerToPeer: true,
                                                                      peerURI: uriA, timeout: .seconds(240)))
        XCTAssertFalse(back.alreadyDone)
        XCTAssertEqual(try unixA.domain(named: "tiny").state, .running)
        XCTAssertNil(try unixB.domainIfExists(named: "tiny"))
        XCTAssertGreaterThan(ssh.acceptedLogins, loginsBefore, "daemon B logged in through sshd: \(ssh.log)")
        XCTAssertFalse(back.steps.joined().contains(ssh.keyFile.path), "\(back.steps)")
    }
}

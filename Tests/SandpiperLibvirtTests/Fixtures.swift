import Foundation
import XCTest
@testable import SandpiperLibvirt

/// Test-driver node files written to a temp dir. Each file is one independent in-process "host".
enum Fixture {
    /// A domain for a node file or for define. `running` uses the test driver's runstate extension.
    /// The last MAC byte for a domain name: FNV-1a of its UTF-8, so the same name gets the same MAC in every
    /// process (`hashValue` is seeded per process).
    static func stableByte(_ name: String) -> Int {
        var h: UInt32 = 2_166_136_261
        for b in name.utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
        return Int(h % 200)
    }

    static func domainXML(name: String, uuid: String, memoryMiB: Int = 512, maxMemoryMiB: Int = 1024,
                          vcpus: Int = 1, maxVcpus: Int = 2, running: Bool? = nil) -> String {
        let ns = running == nil ? "" : " xmlns:test='http://libvirt.org/schemas/domain/test/1.0'"
        let runstate = running.map { "\n  <test:runstate>\($0 ? 1 : 5)</test:runstate>" } ?? ""
        return """
        <domain type='test'\(ns)>
          <name>\(name)</name>
          <uuid>\(uuid)</uuid>
          <memory unit='MiB'>\(maxMemoryMiB)</memory>
          <currentMemory unit='MiB'>\(memoryMiB)</currentMemory>
          <vcpu current='\(vcpus)'>\(maxVcpus)</vcpu>
          <os><type arch='x86_64'>hvm</type></os>
          <on_poweroff>destroy</on_poweroff>
          <on_reboot>restart</on_reboot>
          <on_crash>destroy</on_crash>
          <devices>
            <interface type='network'><source network='default'/><mac address='52:54:00:00:00:\(String(format: "%02x", stableByte(name)))'/></interface>
            <memballoon model='virtio'/>
          </devices>\(runstate)
        </domain>
        """
    }

    /// A node with `cpus` CPUs (1 NUMA node, 1 socket, cpus cores, 1 thread), `memoryMiB` and the given domains.
    static func nodeXML(cpus: Int, memoryMiB: Int, domains: [String]) -> String {
        """
        <?xml version='1.0'?>
        <node>
          <cpu>
            <mhz>2400</mhz>
            <model>x86_64</model>
            <active>\(cpus)</active>
            <nodes>1</nodes>
            <sockets>1</sockets>
            <cores>\(cpus)</cores>
            <threads>1</threads>
          </cpu>
          <memory>\(memoryMiB * 1024)</memory>
        \(domains.joined(separator: "\n"))
        </node>
        """
    }

    /// Writes a node file into a fresh temp dir and returns its `test:///abs/path.xml` URI.
    static func hostURI(_ name: String, cpus: Int = 8, memoryMiB: Int = 16384, domains: [String]) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sandpiper-libvirt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let file = dir.appendingPathComponent("\(name).xml")
        try nodeXML(cpus: cpus, memoryMiB: memoryMiB, domains: domains).write(to: file, atomically: true, encoding: .utf8)
        return "test://" + file.path
    }

    static let uuidA = "11111111-2222-4333-8444-000000000001"
    static let uuidB = "11111111-2222-4333-8444-000000000002"
    static let uuidC = "11111111-2222-4333-8444-000000000003"

    /// pm1: web1 running (2 of 4 vCPUs, 1024 of 2048 MiB), db1 shut off.
    static func pm1() throws -> String {
        try hostURI("pm1", cpus: 8, memoryMiB: 16384, domains: [
            domainXML(name: "web1", uuid: uuidA, memoryMiB: 1024, maxMemoryMiB: 2048, vcpus: 2, maxVcpus: 4, running: true),
            domainXML(name: "db1", uuid: uuidB, memoryMiB: 512, maxMemoryMiB: 512, vcpus: 1, maxVcpus: 1, running: false),
        ])
    }

    /// pm2: an empty host with 4 CPUs and 8 GiB.
    static func pm2() throws -> String {
        try hostURI("pm2", cpus: 4, memoryMiB: 8192, domains: [])
    }
}

/// Asserts that `body` throws a `LibvirtError` and returns it.
func XCTAssertLibvirtError<T>(_ body: @autoclosure () throws -> T, file: StaticString = #filePath, line: UInt = #line)
    -> LibvirtError? {
    do {
        _ = try body()
        XCTFail("expected a LibvirtError", file: file, line: line)
        return nil
    } catch let e as LibvirtError {
        return e
    } catch {
        XCTFail("expected a LibvirtError, got \(error)", file: file, line: line)
        return nil
    }
}

import Foundation
import SandpiperEngine

/// The measured side of `bench sampling`.
enum SamplingFixture {
    static func nodeXML(domains: Int) -> String {
        var xml = "<node>\n  <cpu><mhz>2400</mhz><model>x86_64</model><nodes>1</nodes><sockets>1</sockets>"
            + "<cores>64</cores><threads>1</threads><active>64</active></cpu>\n  <memory>\(1 << 30)</memory>\n"
        for i in 0..<domains {
            xml += "  <domain type='test'><name>vm\(i)</name><memory unit='MiB'>512</memory>"
                + "<vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os></domain>\n"
        }
        return xml + "</node>\n"
    }

    static func measure(uri: String, rounds: Int) throws -> (domains: Int, sandpiperMs: Double, virshMs: Double?) {
        let sampler = try StatsProbe(uri: uri)
        let domains = try sampler.round()  // warm-up, and the domain count
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<rounds { _ = try sampler.round() }
        let ours = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6 / Double(rounds)

        let virsh = ["/usr/bin/virsh", "/bin/virsh"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let virsh else { return (domains, ours, nil) }
        let vstart = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<rounds {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: virsh)
            p.arguments = ["-c", uri, "domstats", "--raw"]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            p.waitUntilExit()
        }
        let theirs = Double(DispatchTime.now().uptimeNanoseconds - vstart) / 1e6 / Double(rounds)
        return (domains, ours, theirs)
    }
}

import Foundation
import SandpiperModel

/// Fills a domain XML template from the spec: name, uuid, vcpu, memory and currentMemory, and the VM's
/// entitlements (`<cputune>` shares and quota, `<memtune>` limits, as the planner's `tune` would set them, so a
/// new VM needs no second plan) are set — replaced when present, inserted after `<domain ...>` when absent;
/// everything else is kept as written.
public enum DomainTemplate {
    public static func render(_ template: String, vm: VMSpec, uuid: String) throws(EngineError) -> String {
        guard template.contains("<domain") else { throw .apply("template for \(vm.name) has no <domain> element") }
        var xml = template
        // Drop XML comments so placeholder text in them cannot be mistaken for elements.
        while let c = xml.range(of: "<!--"), let e = xml[c.upperBound...].range(of: "-->") {
            xml.removeSubrange(c.lowerBound..<e.upperBound)
        }
        let memoryKiB = Int(vm.memoryMiB * 1024)
        let elements: [(String, String)] = [
            ("name", "<name>\(escape(vm.name))</name>"),
            ("uuid", "<uuid>\(uuid)</uuid>"),
            ("memory", "<memory unit='KiB'>\(memoryKiB)</memory>"),
            ("currentMemory", "<currentMemory unit='KiB'>\(memoryKiB)</currentMemory>"),
            ("vcpu", "<vcpu>\(vm.vcpus)</vcpu>"),
        ] + entitlementElements(vm)
        for (tag, replacement) in elements {
            if let range = elementRange(tag, in: xml) {
                xml.replaceSubrange(range, with: replacement)
            } else if let start = xml.range(of: "<domain"), let end = xml[start.upperBound...].firstIndex(of: ">") {
                xml.insert(contentsOf: "\n  " + replacement, at: xml.index(after: end))
            }
        }
        return xml
    }

    /// `<cputune>` and `<memtune>` for the spec's resource controls, in the planner's terms.
    static func entitlementElements(_ vm: VMSpec) -> [(String, String)] {
        let cpu = vm.resources.cpu, mem = vm.resources.memory
        var cputune = "<cputune><shares>\(cpu.shares.cpuShares(vcpus: vm.vcpus))</shares>"
        if let limit = cpu.limit, limit > 0 {
            cputune += "<period>100000</period><quota>\(Int((limit * 100_000).rounded()))</quota>"
        }
        var out = [("cputune", cputune + "</cputune>")]
        var memtune = ""
        if let limit = mem.limit { memtune += "<hard_limit unit='KiB'>\(Int(limit * 1024))</hard_limit>" }
        if mem.reservation > 0 { memtune += "<soft_limit unit='KiB'>\(Int(mem.reservation * 1024))</soft_limit>" }
        if !memtune.isEmpty { out.append(("memtune", "<memtune>\(memtune)</memtune>")) }
        return out
    }

    /// The range of `<tag ...>...</tag>` (first occurrence, direct text content only).
    static func elementRange(_ tag: String, in xml: String) -> Range<String.Index>? {
        var search = xml.startIndex..<xml.endIndex
        while let start = xml.range(of: "<\(tag)", range: search) {
            let next = xml[start.upperBound...].first
            // `<memory` must not match `<memoryBacking`.
            if next == ">" || next == " " || next == "\t" || next == "\n" {
                guard let end = xml.range(of: "</\(tag)>", range: start.upperBound..<xml.endIndex) else { return nil }
                return start.lowerBound..<end.upperBound
            }
            search = start.upperBound..<xml.endIndex
        }
        return nil
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
    }

    /// A stable UUID for a VM name within a cluster (so re-defining after a crash yields the same domain).
    public static func uuid(cluster: String, vm: String) -> String {
        let h = Array(SHA256.hex("sandpiper/\(cluster)/\(vm)").prefix(32))
        var chars = h
        chars[12] = "4"  // version 4 layout, variant bits below
        chars[16] = "8"
        let s = String(chars)
        func part(_ a: Int, _ b: Int) -> String {
            String(s[s.index(s.startIndex, offsetBy: a)..<s.index(s.startIndex, offsetBy: b)])
        }
        return "\(part(0, 8))-\(part(8, 12))-\(part(12, 16))-\(part(16, 20))-\(part(20, 32))"
    }
}

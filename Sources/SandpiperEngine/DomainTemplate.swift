import Foundation
import SandpiperModel

/// Fills a domain XML template from the spec: name, uuid, vcpu, memory and currentMemory, and the VM's
/// entitlements (`<cputune>` shares and quota, `<memtune>` limits, as the planner's `tune` would set them, so a
/// new VM needs no second plan) are set — replaced when present, inserted after `<domain ...>` when absent;
/// everything else is kept as written. Entitlements a host refuses (`tuning`, e.g. QEMU in session mode) are not
/// written (`refusedKnobs` says which). A virtio balloon without a stats period gets one, so the guest's memory
/// statistics stay current for gray-box profiling.
public enum DomainTemplate {
    /// The balloon stats period written into defined domains (seconds).
    public static let statsPeriodSeconds = 2

    public static func render(_ template: String, vm: VMSpec, uuid: String,
                              tuning: HostTuning? = nil) throws(EngineError) -> String {
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
        ]
        for (tag, replacement) in elements {
            if let range = elementRange(tag, in: xml) {
                xml.replaceSubrange(range, with: replacement)
            } else {
                insertInDomain(replacement, in: &xml)
            }
        }
        // Entitlements set only their own children: an operator's vcpupin, emulatorpin, swap_hard_limit... stay.
        for (parent, children) in entitlementChildren(vm) where accepts(parent, tuning) {
            setChildren(children, of: parent, in: &xml)
        }
        addStatsPeriod(in: &xml)
        return xml
    }

    /// What `render` left out for a host that refuses it, for the action's report; nil when nothing was.
    public static func refusedKnobs(_ vm: VMSpec, tuning: HostTuning?) -> String? {
        let refused = entitlementChildren(vm).filter { !$0.1.isEmpty && !accepts($0.0, tuning) }
        guard !refused.isEmpty else { return nil }
        let knobs = refused.map { parent, children in "<\(parent)> " + children.map(\.0).joined(separator: ", ") }
        return "not written: " + knobs.joined(separator: "; ") + (tuning?.reason.map { " (\($0))" } ?? "")
    }

    private static func accepts(_ parent: String, _ tuning: HostTuning?) -> Bool {
        guard let tuning else { return true }
        return parent == "cputune" ? tuning.cpu : tuning.memory
    }

    /// `<memballoon model='virtio'>` without `<stats period>`: libvirt's guest statistics would be one snapshot.
    static func addStatsPeriod(in xml: inout String) {
        guard let start = xml.range(of: "<memballoon") else { return }
        let rest = xml[start.lowerBound...]
        guard let tagEnd = rest.firstIndex(of: ">") else { return }
        let openTag = xml[start.lowerBound...tagEnd]
        guard openTag.contains("model='virtio") || openTag.contains("model=\"virtio") else { return }
        let stats = "<stats period='\(statsPeriodSeconds)'/>"
        if openTag.hasSuffix("/>") {
            xml.replaceSubrange(start.lowerBound...tagEnd, with: openTag.dropLast(2) + ">" + stats + "</memballoon>")
            return
        }
        guard let close = xml.range(of: "</memballoon>", range: tagEnd..<xml.endIndex) else { return }
        if xml[tagEnd..<close.lowerBound].contains("<stats") { return }
        xml.insert(contentsOf: stats, at: close.lowerBound)
    }

    private static func insertInDomain(_ element: String, in xml: inout String) {
        if let start = xml.range(of: "<domain"), let end = xml[start.upperBound...].firstIndex(of: ">") {
            xml.insert(contentsOf: "\n  " + element, at: xml.index(after: end))
        }
    }

    /// Sets `children` (tag, element) inside `<parent>`: each replaces a child of that tag or is appended;
    /// `<parent/>` is expanded; an absent parent is added to the domain.
    static func setChildren(_ children: [(String, String)], of parent: String, in xml: inout String) {
        guard !children.isEmpty else { return }
        if let empty = xml.range(of: "<\(parent)/>") ?? xml.range(of: "<\(parent) />") {
            xml.replaceSubrange(empty, with: "<\(parent)>" + children.map(\.1).joined() + "</\(parent)>")
            return
        }
        guard let range = elementRange(parent, in: xml),
              let open = xml[range].firstIndex(of: ">"), let close = xml[range].range(of: "</\(parent)>") else {
            insertInDomain("<\(parent)>" + children.map(\.1).joined() + "</\(parent)>", in: &xml)
            return
        }
        var content = String(xml[xml.index(after: open)..<close.lowerBound])
        for (tag, element) in children {
            if let r = elementRange(tag, in: content) { content.replaceSubrange(r, with: element) }
            else { content += element }
        }
        xml.replaceSubrange(xml.index(after: open)..<close.lowerBound, with: content)
    }

    /// The `<cputune>` and `<memtune>` children for the spec's resource controls, in the planner's terms.
    static func entitlementChildren(_ vm: VMSpec) -> [(String, [(String, String)])] {
        let cpu = vm.resources.cpu, mem = vm.resources.memory
        var cputune = [("shares", "<shares>\(cpu.shares.cpuShares(vcpus: vm.vcpus))</shares>")]
        if let limit = cpu.limit, limit > 0 {
            cputune += [("period", "<period>100000</period>"), ("quota", "<quota>\(Int((limit * 100_000).rounded()))</quota>")]
        }
        var memtune: [(String, String)] = []
        if let limit = mem.limit { memtune.append(("hard_limit", "<hard_limit unit='KiB'>\(Int(limit * 1024))</hard_limit>")) }
        if mem.reservation > 0 {
            memtune.append(("soft_limit", "<soft_limit unit='KiB'>\(Int(mem.reservation * 1024))</soft_limit>"))
        }
        return [("cputune", cputune), ("memtune", memtune)]
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

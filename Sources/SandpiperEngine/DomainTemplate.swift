import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import SandpiperModel

/// Fills a domain XML template from the spec: name, uuid, vcpu, memory and currentMemory, and the VM's
/// entitlements (`<cputune>` shares and quota, `<memtune>` limits, as the planner's `tune` would set them, so a
/// new VM needs no second plan) are set — replaced when present, added when absent; everything else is kept as
/// written. Only the root `<domain>`'s direct children are edited (plus `<devices>/<memballoon>`), through an XML
/// tree, so a `<name>` deeper in the document or inside a comment is never touched. Entitlements a host refuses
/// (`tuning`, e.g. QEMU in session mode) are not written (`refusedKnobs` says which). A virtio balloon without a
/// stats period gets one, so the guest's memory statistics stay current for gray-box profiling.
public enum DomainTemplate {
    /// The balloon stats period written into defined domains (seconds).
    public static let statsPeriodSeconds = 2

    public static func render(_ template: String, vm: VMSpec, uuid: String,
                              tuning: HostTuning? = nil) throws(EngineError) -> String {
        // The document owns the tree: it must outlive every edit and the final print.
        let (document, domain) = try parse(template, vm: vm.name)
        defer { withExtendedLifetime(document) {} }
        let memoryKiB = String(Int(vm.memoryMiB * 1024))
        // In this order at the top of <domain> when absent; replaced in place when present.
        let basics: [(String, String, [String: String])] = [
            ("name", vm.name, [:]),
            ("uuid", uuid, [:]),
            ("memory", memoryKiB, ["unit": "KiB"]),
            ("currentMemory", memoryKiB, ["unit": "KiB"]),
            ("vcpu", String(vm.vcpus), [:]),
        ]
        for (index, (tag, value, attributes)) in basics.enumerated() {
            if let old = child(tag, of: domain) {
                set(old, value, attributes)
            } else {
                // FoundationXML on Linux traps inserting at childCount: append there instead.
                let element = makeElement(tag, value, attributes)
                if index < domain.childCount { domain.insertChild(element, at: index) } else { domain.addChild(element) }
            }
        }
        // Entitlements set only their own children: an operator's vcpupin, emulatorpin, swap_hard_limit... stay.
        for (parent, children) in entitlementChildren(vm) where accepts(parent, tuning) && !children.isEmpty {
            let container: XMLElement
            if let existing = child(parent, of: domain) {
                container = existing
            } else {
                container = XMLElement(name: parent)
                domain.addChild(container)
            }
            for (tag, value, attributes) in children {
                if let old = child(tag, of: container) {
                    set(old, value, attributes)
                } else {
                    container.addChild(makeElement(tag, value, attributes))
                }
            }
        }
        addStatsPeriod(to: domain)
        return domain.xmlString(options: [.nodeCompactEmptyElement])
    }

    /// The template's root `<domain>`, or a clear refusal: FoundationXML's tree parser recovers from (or crashes
    /// on) malformed input, so well-formedness is checked first with the strict event parser.
    static func parse(_ template: String, vm: String) throws(EngineError) -> (XMLDocument, XMLElement) {
        if template.range(of: "<!DOCTYPE", options: .caseInsensitive) != nil {
            throw .apply("template for \(vm) may not declare a DTD or entities (<!DOCTYPE ...>)")
        }
        let data = Data(template.utf8)
        let checker = WellFormedness()
        let parser = XMLParser(data: data)
        parser.shouldResolveExternalEntities = false
        parser.delegate = checker
        let parsed = parser.parse()
        let code = parser.parserError.map { ($0 as NSError).code }
        if checker.root == nil && (code == nil || code == 5) {
            throw .apply("template for \(vm) is empty: it has no <domain> element")
        }
        if !parsed || code != nil || !checker.open.isEmpty {
            let reason = switch code {
            case 4?: "not XML"
            case nil, 5?: "it ends before </\(checker.open.last ?? "domain")>"
            case 26?: "undeclared entity"
            case 76?: "a closing tag does not match the open element"
            case let code?: "libxml2 error \(code)"
            }
            throw .apply("template for \(vm) is not well-formed XML at line \(parser.lineNumber), "
                + "column \(parser.columnNumber): \(reason)")
        }
        guard let root = checker.root else { throw .apply("template for \(vm) has no <domain> element") }
        guard root == "domain" else { throw .apply("template for \(vm) has <\(root)> as its root, not <domain>") }
        let document: XMLDocument
        do { document = try XMLDocument(data: data, options: [.nodePreserveAll, .nodeLoadExternalEntitiesNever]) } catch {
            throw .apply("template for \(vm) cannot be parsed: \(error.localizedDescription)")
        }
        guard let domain = document.rootElement() else { throw .apply("template for \(vm) has no <domain> element") }
        return (document, domain)
    }

    /// Tracks open elements and the root's name; the parser itself reports syntax errors.
    private final class WellFormedness: NSObject, XMLParserDelegate {
        var open: [String] = []
        var root: String?
        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?,
                    qualifiedName: String?, attributes: [String: String] = [:]) {
            if root == nil { root = name }
            open.append(name)
        }
        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            if open.last == name { open.removeLast() }
        }
    }

    /// The first direct child element named `tag` (comments and deeper elements are not children by that name).
    private static func child(_ tag: String, of parent: XMLElement) -> XMLElement? {
        parent.elements(forName: tag).first
    }

    private static func makeElement(_ tag: String, _ value: String, _ attributes: [String: String]) -> XMLElement {
        let element = XMLElement(name: tag)
        set(element, value, attributes)
        return element
    }

    /// Edits in place (FoundationXML's replaceChild is unreliable on Linux): the text and exactly these attributes.
    private static func set(_ element: XMLElement, _ value: String, _ attributes: [String: String]) {
        element.stringValue = value
        element.attributes = attributes.sorted(by: { $0.key < $1.key }).map {
            XMLNode.attribute(withName: $0.key, stringValue: $0.value) as! XMLNode
        }
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
    static func addStatsPeriod(to domain: XMLElement) {
        guard let devices = child("devices", of: domain), let balloon = child("memballoon", of: devices),
              balloon.attribute(forName: "model")?.stringValue == "virtio",
              child("stats", of: balloon) == nil else { return }
        let stats = XMLElement(name: "stats")
        stats.addAttribute(XMLNode.attribute(withName: "period", stringValue: String(statsPeriodSeconds)) as! XMLNode)
        balloon.addChild(stats)
    }

    /// The `<cputune>` and `<memtune>` children (tag, value, attributes) for the spec's resource controls, in the
    /// planner's terms.
    static func entitlementChildren(_ vm: VMSpec) -> [(String, [(String, String, [String: String])])] {
        let cpu = vm.resources.cpu, mem = vm.resources.memory
        var cputune = [("shares", String(cpu.shares.cpuShares(vcpus: vm.vcpus)), [String: String]())]
        if let limit = cpu.limit, limit > 0 {
            cputune += [("period", "100000", [:]), ("quota", String(Int((limit * 100_000).rounded())), [:])]
        }
        var memtune: [(String, String, [String: String])] = []
        if let limit = mem.limit { memtune.append(("hard_limit", String(Int(limit * 1024)), ["unit": "KiB"])) }
        if mem.reservation > 0 {
            memtune.append(("soft_limit", String(Int(mem.reservation * 1024)), ["unit": "KiB"]))
        }
        return [("cputune", cputune), ("memtune", memtune)]
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

internal import CLibvirt
import Foundation

extension LibvirtConnection {
    /// Makes the guest memory statistics of every running domain with a virtio balloon live: libvirt's guest
    /// fields are a one-time snapshot unless a stats period is set. Where the live XML has no `<stats period>`,
    /// `virDomainSetMemoryStatsPeriod` sets `seconds` (live, and in the saved definition of a persistent domain).
    /// Returns the period in effect per domain (0: none, e.g. on a read-only connection); domains without a
    /// virtio balloon are left out. Failures are not errors: stale statistics are detected by the sampler.
    public func ensureMemoryStatsPeriod(seconds: Int) -> [String: Int] {
        (try? withAllDomains { (doms) throws(LibvirtError) -> [String: Int] in
            var out: [String: Int] = [:]
            for dom in doms where virDomainIsActive(dom) == 1 {
                guard let name = virDomainGetName(dom).map({ String(cString: $0) }),
                      let xmlPtr = virDomainGetXMLDesc(dom, 0) else { virResetLastError(); continue }
                let xml = String(cString: xmlPtr)
                free(xmlPtr)
                guard let period = Self.memoryStatsPeriod(inDomainXML: xml) else { continue }
                if period > 0 || readOnly { out[name] = period; continue }
                let live = VIR_DOMAIN_AFFECT_LIVE.rawValue
                var rc = virDomainSetMemoryStatsPeriod(dom, Int32(seconds),
                                                       live | (virDomainIsPersistent(dom) == 1 ? VIR_DOMAIN_AFFECT_CONFIG.rawValue : 0))
                if rc < 0 { rc = virDomainSetMemoryStatsPeriod(dom, Int32(seconds), live) }
                virResetLastError()
                out[name] = rc == 0 ? seconds : 0
            }
            return out
        }) ?? [:]
    }

    /// The stats period of a domain's virtio balloon (0 when none is set), or nil without a virtio balloon.
    static func memoryStatsPeriod(inDomainXML xml: String) -> Int? {
        guard let start = xml.range(of: "<memballoon") else { return nil }
        let rest = xml[start.lowerBound...]
        let end = rest.range(of: "</memballoon>")?.upperBound ?? rest.range(of: "/>")?.upperBound ?? rest.endIndex
        let element = rest[..<end]
        guard element.contains("model='virtio") || element.contains("model=\"virtio") else { return nil }
        guard let p = element.range(of: "period=") else { return 0 }
        let digits = element[p.upperBound...].dropFirst().prefix { $0.isNumber }
        return Int(digits) ?? 0
    }
}

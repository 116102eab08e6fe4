internal import CLibvirt
import Foundation

/// A domain's serial console through libvirt (`virDomainOpenConsole` on a non-blocking stream), what `virsh
/// console` uses: lines go to the guest, its output is collected. Reading polls the stream, so every wait has a
/// deadline and a guest that never answers costs a timeout, not a hang.
public final class DomainConsole: @unchecked Sendable {
    private var stream: OpaquePointer?  // virStreamPtr
    private let name: String
    private var pending = ""

    init(stream: OpaquePointer, name: String) {
        self.stream = stream
        self.name = name
    }

    deinit { close() }

    /// Aborts and frees the stream. Idempotent.
    public func close() {
        guard let s = stream else { return }
        stream = nil
        virStreamAbort(s)
        virResetLastError()
        virStreamFree(s)
    }

    /// Writes `text` to the guest's console.
    public func write(_ text: String) throws(LibvirtError) {
        guard let s = stream else { throw LibvirtError(code: 0, domain: 0, message: "console of \(name) is closed") }
        var bytes = Array(text.utf8)
        while !bytes.isEmpty {
            virResetLastError()
            let n = bytes.withUnsafeBufferPointer { p in
                p.baseAddress!.withMemoryRebound(to: CChar.self, capacity: p.count) { virStreamSend(s, $0, p.count) }
            }
            if n == -2 { Thread.sleep(forTimeInterval: 0.01); continue }
            if n < 0 { throw takeLastError("write to the console of \(name)") }
            bytes.removeFirst(Int(n))
        }
    }

    /// Whatever the guest printed that has not been read yet (waits up to `timeout` for the first bytes).
    public func read(timeout: TimeInterval) throws(LibvirtError) -> String {
        let deadline = Date().addingTimeInterval(timeout)
        var out = pending
        pending = ""
        repeat {
            let chunk = try readAvailable()
            out += chunk
            if !out.isEmpty && chunk.isEmpty { break }
            if chunk.isEmpty { Thread.sleep(forTimeInterval: 0.02) }
        } while Date() < deadline
        return out
    }

    /// Sends one line and returns the first whole line of output that starts with `answerPrefix`, or throws
    /// after `timeout`. Output the guest wrote before the command (boot messages, earlier answers) is dropped.
    public func command(_ line: String, answerPrefix: String, timeout: TimeInterval = 30) throws(LibvirtError) -> String {
        _ = try read(timeout: 0.2)
        try write(line + "\n")
        return try waitForLine(prefix: answerPrefix, timeout: timeout)
    }

    /// Waits for a whole line of output that starts with `prefix` (e.g. the guest's boot marker).
    public func waitForLine(prefix: String, timeout: TimeInterval) throws(LibvirtError) -> String {
        let deadline = Date().addingTimeInterval(timeout)
        var buffer = pending
        pending = ""
        while true {
            while let nl = buffer.firstIndex(where: { $0 == "\n" || $0 == "\r\n" }) {
                let line = buffer[..<nl].trimmingCharacters(in: CharacterSet(charactersIn: "\r"))
                buffer = String(buffer[buffer.index(after: nl)...])
                if line.hasPrefix(prefix) {
                    pending = buffer
                    return line
                }
            }
            guard Date() < deadline else {
                pending = buffer
                throw LibvirtError(code: 0, domain: 0,
                                   message: "no line starting with '\(prefix)' from the console of \(name) within \(Int(timeout)) s")
            }
            let chunk = try readAvailable()
            if chunk.isEmpty { Thread.sleep(forTimeInterval: 0.02) } else { buffer += chunk }
        }
    }

    private func readAvailable() throws(LibvirtError) -> String {
        guard let s = stream else { throw LibvirtError(code: 0, domain: 0, message: "console of \(name) is closed") }
        var data = [CChar](repeating: 0, count: 4096)
        var out = ""
        while true {
            virResetLastError()
            let n = virStreamRecv(s, &data, data.count)
            if n == -2 || n == 0 { return out }  // nothing right now / end of stream
            if n < 0 { throw takeLastError("read the console of \(name)") }
            out += String(decoding: data[0..<Int(n)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }
}

extension LibvirtConnection {
    /// Opens the first console of `name` (forcing off any other client holding it).
    public func openConsole(_ name: String) throws(LibvirtError) -> DomainConsole {
        try withHandle { (conn) throws(LibvirtError) -> DomainConsole in
            let s: OpaquePointer = try libvirtCall("virStreamNew on \(redactedURI)", scrub: scrub) {
                virStreamNew(conn, VIR_STREAM_NONBLOCK.rawValue)
            }
            do throws(LibvirtError) {
                _ = try withDomain(name) { (dom) throws(LibvirtError) in
                    try libvirtCall("virDomainOpenConsole '\(name)' on \(redactedURI)", scrub: scrub) {
                        virDomainOpenConsole(dom, nil, s, VIR_DOMAIN_CONSOLE_FORCE.rawValue)
                    }
                }
            } catch {
                virStreamFree(s)
                throw error
            }
            return DomainConsole(stream: s, name: name)
        }
    }
}

import Foundation
import SandpiperLibvirt

/// Two real libvirtd (QEMU driver) daemons in session mode on this machine, set up exactly like
/// /work/shared/labs/qemu-two-daemons.sh (LAB_MODE=session): an unprivileged user `virtlab`, one XDG config/cache/
/// runtime tree per daemon, distinct host_uuid and migration port ranges, stdio_handler = "file".
/// One deviation: each daemon's XDG_CACHE_HOME is kept across runs (/var/tmp/sandpiper-qemu-lab-cache/<A|B>) so QEMU
/// capability probing (most of the start-up time) is done once.
/// Teardown kills only the PIDs this harness started (daemons, and guests by their pidfiles).
public final class QemuLab: @unchecked Sendable {
    /// Session: unprivileged daemons, no cgroups. Root: daemons as root, each in its own mount namespace with
    /// private /etc/libvirt, /run/libvirt, /var/lib/libvirt... (the lab's LAB_MODE=root): cgroups, so CPU and memory
    /// tuning work.
    public enum Mode: String, Sendable { case session, root }
    public static let user = "virtlab"
    public static let libvirtd = "/usr/sbin/libvirtd"
    public static let qemu = "/usr/bin/qemu-system-x86_64"
    public static let setpriv = "/usr/bin/setpriv"

    public struct Daemon {
        let name: String
        let dir: URL
        let process: Process
        let uri: String
    }

    public let root: URL
    public let mode: Mode
    public private(set) var daemons: [String: Daemon] = [:]
    private let t0 = Date()

    /// Why the lab cannot run here, or nil.
    public static func unavailableReason() -> String? {
        if getuid() != 0 { return "the QEMU lab needs root (it runs the daemons as user \(user) via setpriv)" }
        for bin in [libvirtd, qemu, setpriv] where !FileManager.default.isExecutableFile(atPath: bin) {
            return "\(bin) is not installed (apt-get install -y --no-install-recommends libvirt-daemon libvirt-daemon-driver-qemu qemu-system-x86 libvirt-clients)"
        }
        return nil
    }

    public init(mode: Mode = .session) throws {
        self.mode = mode
        root = URL(fileURLWithPath: "/tmp/sandpiper-qemu-lab/\(mode.rawValue.prefix(1))\(getpid())-\(UUID().uuidString.prefix(4))")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        try Self.run("/bin/chmod", ["755", root.path, root.deletingLastPathComponent().path])
        if (try? Self.run("/usr/bin/id", [Self.user])) == nil {
            try Self.run("/usr/sbin/useradd", ["-m", "-s", "/bin/bash", Self.user])
        }
        // libvirtd as root resolves its compiled-in QEMU user before it reads qemu.conf.
        if mode == .root, (try? Self.run("/usr/bin/id", ["libvirt-qemu"])) == nil {
            try Self.run("/usr/sbin/useradd", ["-r", "-U", "-M", "-d", "/var/lib/libvirt", "-s", "/usr/sbin/nologin",
                                                "libvirt-qemu"])
        }
    }

    public func log(_ s: String) {
        print(String(format: "[qemu-lab %6.2fs] ", Date().timeIntervalSince(t0)) + s)
    }

    @discardableResult
    public static func run(_ path: String, _ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard p.terminationStatus == 0 else {
            throw NSError(domain: "QemuLab", code: Int(p.terminationStatus),
                          userInfo: [NSLocalizedDescriptionKey: "\(path) \(args.joined(separator: " ")): \(text)"])
        }
        return text
    }

    /// Starts daemon `name` (A or B) like the lab's start_daemon.
    public func startDaemon(_ name: String, hostUUID: String, migrationPortMin: Int) throws {
        if mode == .root { return try startRootDaemon(name, hostUUID: hostUUID, migrationPortMin: migrationPortMin) }
        let d = root.appendingPathComponent(name)
        let fm = FileManager.default
        for sub in ["config/libvirt", "runtime", "home"] {
            try fm.createDirectory(at: d.appendingPathComponent(sub), withIntermediateDirectories: true)
        }
        let cache = URL(fileURLWithPath: "/var/tmp/sandpiper-qemu-lab-cache/\(name)")
        try fm.createDirectory(at: cache, withIntermediateDirectories: true)
        try """
        host_uuid = "\(hostUUID)"
        log_outputs = "3:file:\(d.path)/libvirtd.log"

        """.write(to: d.appendingPathComponent("config/libvirt/libvirtd.conf"), atomically: true, encoding: .utf8)
        try """
        stdio_handler = "file"
        migration_port_min = \(migrationPortMin)
        migration_port_max = \(migrationPortMin + 63)

        """.write(to: d.appendingPathComponent("config/libvirt/qemu.conf"), atomically: true, encoding: .utf8)
        try Self.run("/bin/chown", ["-R", "\(Self.user):", d.path, cache.path])
        try Self.run("/bin/chmod", ["700", d.appendingPathComponent("runtime").path])

        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.setpriv)
        p.arguments = ["--reuid=\(Self.user)", "--regid=\(Self.user)", "--init-groups", "--",
                       "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=\(d.path)/home",
                       "XDG_CONFIG_HOME=\(d.path)/config", "XDG_CACHE_HOME=\(cache.path)",
                       "XDG_RUNTIME_DIR=\(d.path)/runtime",
                       Self.libvirtd, "-f", "\(d.path)/config/libvirt/libvirtd.conf"]
        _ = fm.createFile(atPath: d.appendingPathComponent("stdout.log").path, contents: nil)
        let logHandle = try FileHandle(forWritingTo: d.appendingPathComponent("stdout.log"))
        p.standardOutput = logHandle
        p.standardError = logHandle
        p.standardInput = FileHandle.nullDevice
        try p.run()  // setpriv execs env, which execs libvirtd: this PID is libvirtd's
        let uri = "qemu+unix:///session?socket=\(d.path)/runtime/libvirt/libvirt-sock"
        daemons[name] = Daemon(name: name, dir: d, process: p, uri: uri)
        log("libvirtd \(name) started, pid \(p.processIdentifier)")
    }

    /// Root mode (qemu-two-daemons.sh LAB_MODE=root): libvirtd as root in a private mount namespace, its own
    /// socket dir, QEMU as root without a security driver.
    private func startRootDaemon(_ name: String, hostUUID: String, migrationPortMin: Int) throws {
        let d = root.appendingPathComponent(name)
        let fm = FileManager.default
        for sub in ["etc", "run", "lib", "log", "sock"] {
            try fm.createDirectory(at: d.appendingPathComponent(sub), withIntermediateDirectories: true)
        }
        // The capability cache is kept across runs, as in session mode.
        let cache = URL(fileURLWithPath: "/var/tmp/sandpiper-qemu-lab-cache/root-\(name)")
        try fm.createDirectory(at: cache, withIntermediateDirectories: true)
        try """
        host_uuid = "\(hostUUID)"
        unix_sock_dir = "\(d.path)/sock"
        unix_sock_rw_perms = "0700"
        auth_unix_rw = "none"
        auth_unix_ro = "none"
        log_outputs = "3:file:\(d.path)/libvirtd.log"

        """.write(to: d.appendingPathComponent("etc/libvirtd.conf"), atomically: true, encoding: .utf8)
        try """
        user = "root"
        group = "root"
        dynamic_ownership = 0
        security_driver = "none"
        stdio_handler = "file"
        migration_port_min = \(migrationPortMin)
        migration_port_max = \(migrationPortMin + 63)

        """.write(to: d.appendingPathComponent("etc/qemu.conf"), atomically: true, encoding: .utf8)
        let script = """
            set -e
            mkdir -p /etc/libvirt /run/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt
            mount --bind '\(d.path)/etc' /etc/libvirt
            mount --bind '\(d.path)/run' /run/libvirt
            mount --bind '\(d.path)/lib' /var/lib/libvirt
            mount --bind '\(cache.path)' /var/cache/libvirt
            mount --bind '\(d.path)/log' /var/log/libvirt
            exec \(Self.libvirtd) -f /etc/libvirt/libvirtd.conf -p '\(d.path)/libvirtd.pidfile'
            """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        p.arguments = ["-m", "--propagation", "private", "/bin/bash", "-c", script]
        _ = fm.createFile(atPath: d.appendingPathComponent("stdout.log").path, contents: nil)
        let logHandle = try FileHandle(forWritingTo: d.appendingPathComponent("stdout.log"))
        p.standardOutput = logHandle
        p.standardError = logHandle
        p.standardInput = FileHandle.nullDevice
        try p.run()  // unshare and bash exec: this PID is libvirtd's
        let uri = "qemu+unix:///system?socket=\(d.path)/sock/libvirt-sock"
        daemons[name] = Daemon(name: name, dir: d, process: p, uri: uri)
        log("libvirtd \(name) (root mode) started, pid \(p.processIdentifier)")
    }

    /// Waits until the daemon answers (like wait_ready, with a longer budget for a cold capability cache).
    /// Starts daemons A and B (migration ports from `migrationPortMin` and `migrationPortMin + 150`, 64 each) and
    /// connects to both over their unix sockets.
    public func startPair(hostUUIDs: (a: String, b: String),
                          migrationPortMin: Int) throws -> (a: LibvirtConnection, b: LibvirtConnection) {
        try startDaemon("A", hostUUID: hostUUIDs.a, migrationPortMin: migrationPortMin)
        try startDaemon("B", hostUUID: hostUUIDs.b, migrationPortMin: migrationPortMin + 150)
        return (try connect("A"), try connect("B"))
    }

    public func connect(_ name: String, timeout: TimeInterval = 60) throws -> LibvirtConnection {
        let d = daemons[name]!
        let deadline = Date().addingTimeInterval(timeout)
        var lastError: Error?
        while Date() < deadline {
            guard d.process.isRunning else {
                let tail = (try? String(contentsOf: d.dir.appendingPathComponent("libvirtd.log"), encoding: .utf8))?
                    .split(separator: "\n").suffix(5).joined(separator: "\n") ?? ""
                throw NSError(domain: "QemuLab", code: 1, userInfo: [NSLocalizedDescriptionKey: "libvirtd \(name) died: \(tail)"])
            }
            do {
                let conn = try LibvirtConnection(uri: d.uri)
                _ = try conn.hostInfo()
                log("libvirtd \(name) ready")
                return conn
            } catch {
                lastError = error
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
        throw lastError ?? NSError(domain: "QemuLab", code: 2)
    }

    public func uri(_ name: String) -> String { daemons[name]!.uri }

    /// Root mode: the host directory that daemon `name` sees as /var/lib/libvirt in its own mount namespace (so
    /// /var/lib/libvirt/images/x is a different file for A and for B, as on two machines).
    public func varLibLibvirt(_ name: String) -> URL { daemons[name]!.dir.appendingPathComponent("lib") }

    public static func tinyXML(name: String = "tiny") -> String {
        """
        <domain type='qemu'>
          <name>\(name)</name>
          <uuid>5a5a5a5a-0000-4000-8000-000000000001</uuid>
          <memory unit='MiB'>64</memory>
          <currentMemory unit='MiB'>64</currentMemory>
          <vcpu>1</vcpu>
          <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
          <features><acpi/></features>
          <clock offset='utc'/>
          <on_poweroff>destroy</on_poweroff>
          <on_reboot>restart</on_reboot>
          <on_crash>destroy</on_crash>
          <devices>
            <emulator>/usr/bin/qemu-system-x86_64</emulator>
            <controller type='usb' model='none'/>
            <video><model type='none'/></video>
            <memballoon model='virtio'><stats period='1'/></memballoon>
          </devices>
        </domain>
        """
    }

    /// Removes `domain` from both daemons, kills guests by their pidfiles, stops the daemons we started.
    public func teardown(domain: String, connections: [LibvirtConnection]) {
        for c in connections {
            try? c.destroy(domain)
            try? c.undefine(domain)
            c.close()
        }
        killGuests([domain])
        stopDaemons()
    }

    /// Kills guests named `domains` that libvirt left running, by the pidfiles of our daemons only.
    public func killGuests(_ domains: [String]) {
        for d in daemons.values {
            for domain in domains {
            let pidfile = d.dir.appendingPathComponent(mode == .root ? "run/qemu/\(domain).pid"
                                                                         : "runtime/libvirt/qemu/run/\(domain).pid")
            if let s = try? String(contentsOf: pidfile, encoding: .utf8), let pid = Int32(s.trimmingCharacters(in: .whitespacesAndNewlines)),
               pid > 1 {
                kill(pid, SIGTERM)
            }
            }
        }
    }

    /// Stops the daemons this lab started and removes its directory (kept with SANDPIPER_KEEP_QEMU_LAB=1).
    public func stopDaemons() {
        for d in daemons.values where d.process.isRunning {
            kill(d.process.processIdentifier, SIGTERM)
            let deadline = Date().addingTimeInterval(10)
            while d.process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
            if d.process.isRunning { kill(d.process.processIdentifier, SIGKILL) }
            d.process.waitUntilExit()
        }
        // Logs are kept only when asked for (SANDPIPER_KEEP_QEMU_LAB=1), e.g. to debug a failing run.
        if ProcessInfo.processInfo.environment["SANDPIPER_KEEP_QEMU_LAB"] == nil {
            try? FileManager.default.removeItem(at: root)
        } else {
            log("lab kept at \(root.path)")
        }
        log("teardown done")
    }
}

extension QemuLab {
    /// Writes `Clusters/lab` under `root` (which must hold `Policies/`): the lab's daemons A and B as hosts `a` and
    /// `b`, and the tiny guest pinned to `b` with a quiet replayed trace, so that a plan repairs its placement
    /// with a live migration a -> b.
    public func writeCluster(root: URL) throws -> URL {
        try LabCluster.write(root: root, name: "lab", hosts: [("a", uri("A")), ("b", uri("B"))],
                             vms: ["{name: tiny, vcpus: 1, memory: 64MiB, placement: {host: b}}"],
                             trace: [.init("tiny", memMiB: 20, guestFreeMiB: 40)])
    }
}

import ArgumentParser
import SandpiperEngine

/// Where samples come from, shared by observe, plan and reconcile.
struct TelemetryFlags: ParsableArguments {
    @Option(help: "Trace telemetry: use the window ending at this time in seconds (default: the end of the trace).")
    var at: Double?

    @Option(help: "Live telemetry: number of samples to take (default: the policy's window n).")
    var samples: Int?

    @Option(help: "Live telemetry: seconds between samples (default: the spec's telemetry interval).")
    var interval: Double?

    func validate() throws {
        if let s = samples, s < 1 { throw ValidationError("--samples must be at least 1") }
        if let i = interval, i <= 0 { throw ValidationError("--interval must be positive") }
        if let t = at, t < 0 { throw ValidationError("--at must not be negative") }
    }

    /// Engine options; sampling progress goes to stderr unless `quiet` (JSON output).
    func options(quiet: Bool) -> TelemetryOptions {
        TelemetryOptions(traceTime: at, intervalSeconds: interval, samples: samples,
                         progress: Progress.sampling(quiet: quiet))
    }
}

/// Who commits, shared by the commands that write to git.
struct GitIdentityFlags: ParsableArguments {
    @Option(help: "Commit author \"Name <email>\" (default: $SANDPIPER_GIT_AUTHOR, then git's user.name/user.email).")
    var author: String?

    @Option(help: "Committer \"Name <email>\" (default: $SANDPIPER_GIT_COMMITTER, then the author).")
    var committer: String?
}

/// How long observation waits for each host, shared by observe and plan.
struct HostDeadlineFlags: ParsableArguments {
    @Option(help: "Seconds each host has to connect and answer; a host that does not is unknown, with the reason.")
    var hostTimeout: Double = 15

    func validate() throws {
        guard hostTimeout > 0, hostTimeout <= 3600 else { throw ValidationError("--host-timeout must be in (0, 3600]") }
    }

    var timeout: Duration { .milliseconds(Int((hostTimeout * 1000).rounded(.up))) }
}

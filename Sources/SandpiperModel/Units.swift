/// Parsing and printing of the units used in cluster specs and policies (DESIGN.md section 3):
/// sizes `MiB GiB TiB` (and `M G T` for the same), bandwidth `Mbit Gbit`, durations `500ms 5s 2m 1h`.
public enum Units {
    /// "2GiB" -> 2048 (MiB). Returns nil for anything that is not a size with a unit.
    public static func parseSizeMiB(_ text: String) -> Double? {
        let table: [(String, Double)] = [
            ("TiB", 1024 * 1024), ("GiB", 1024), ("MiB", 1), ("T", 1024 * 1024), ("G", 1024), ("M", 1),
        ]
        return parse(text, table)
    }

    /// "1Gbit" -> 1000 (Mbit/s).
    public static func parseBandwidthMbps(_ text: String) -> Double? {
        parse(text, [("Gbit", 1000), ("Mbit", 1)])
    }

    /// "5m" -> 300 (seconds).
    public static func parseDurationSeconds(_ text: String) -> Double? {
        parse(text, [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)])
    }

    /// A decimal number with an optional fractional part; no exponent, no sign, no spaces.
    public static func parseNumber(_ text: String) -> Double? {
        // ASCII digits with at most one inner dot, checked on bytes (Characters cost a tenth of `validate`).
        let utf8 = text.utf8
        guard let first = utf8.first, let last = utf8.last, first != UInt8(ascii: "."), last != UInt8(ascii: ".")
        else { return nil }
        var dots = 0
        for byte in utf8 {
            if byte == UInt8(ascii: ".") { dots += 1; continue }
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
        }
        guard dots <= 1 else { return nil }
        return Double(text)
    }

    private static func parse(_ text: String, _ table: [(String, Double)]) -> Double? {
        for (suffix, factor) in table where text.hasSuffix(suffix) {
            let number = String(text.dropLast(suffix.count))
            // A bare letter after the number must not match a longer unit's tail ("5GiB" is not "5Gi" + "B").
            guard let value = parseNumber(number) else { continue }
            return value * factor
        }
        return nil
    }

    /// 2048 -> "2GiB", 1536 -> "1.5GiB", 100 -> "100MiB".
    public static func formatMiB(_ mib: Double) -> String {
        if mib >= 1024 * 1024, mib.truncatingRemainder(dividingBy: 1024 * 1024 / 8) == 0 {
            return trim(mib / (1024 * 1024)) + "TiB"
        }
        if mib >= 1024, mib.truncatingRemainder(dividingBy: 128) == 0 { return trim(mib / 1024) + "GiB" }
        return trim(mib) + "MiB"
    }

    public static func formatMbps(_ mbps: Double) -> String {
        if mbps >= 1000, mbps.truncatingRemainder(dividingBy: 100) == 0 { return trim(mbps / 1000) + "Gbit" }
        return trim(mbps) + "Mbit"
    }

    public static func formatSeconds(_ s: Double) -> String {
        if s >= 3600, s.truncatingRemainder(dividingBy: 3600) == 0 { return trim(s / 3600) + "h" }
        if s >= 60, s.truncatingRemainder(dividingBy: 60) == 0 { return trim(s / 60) + "m" }
        if s < 1, s > 0 { return trim(s * 1000) + "ms" }
        return trim(s) + "s"
    }

    /// Shortest decimal form with at most 3 fractional digits: 2 -> "2", 0.5 -> "0.5".
    public static func trim(_ value: Double) -> String {
        let rounded = (value * 1000).rounded() / 1000
        if rounded == rounded.rounded() && abs(rounded) < 1e15 { return String(Int64(rounded)) }
        var s = String(rounded)
        while s.contains(".") && s.hasSuffix("0") { s.removeLast() }
        return s
    }
}

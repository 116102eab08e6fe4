import Foundation
import SandpiperModel

/// The trace CSV reader: one pass over the UTF-8 bytes, fields trimmed of spaces and tabs, numbers parsed from
/// the bytes (a trace of 20,000 VMs x 288 intervals is 5.8 million rows; Foundation string trimming cost seconds).
/// Accepts LF and CRLF line endings (RFC 4180, what Python's csv module writes) and a leading UTF-8 BOM.
/// Quoted fields are not supported: the schema is numbers and VM names, and a VM name never holds a comma.
enum TraceCSV {
    static let columns = Trace.header.split(separator: ",").map(String.init)

    static func parse(_ bytes: UnsafeBufferPointer<UInt8>, file: String) throws(TraceError) -> Trace {
        var reader = Reader(bytes: bytes, file: file)
        defer { reader.starts.deallocate(); reader.ends.deallocate() }
        return try reader.run()
    }

    private struct Reader {
        let bytes: UnsafeBufferPointer<UInt8>
        let file: String
        var line = 0
        var lineStart = 0
        /// Field bounds of the current line (trimmed), at most 8 kept: enough to say "found 8".
        let starts = UnsafeMutablePointer<Int>.allocate(capacity: 8)
        let ends = UnsafeMutablePointer<Int>.allocate(capacity: 8)

        // Per VM, in order of first appearance.
        var names: [String] = []
        /// The names' bytes back to back (`nameOffsets[i]..<nameOffsets[i + 1]`): a row's VM is recognised
        /// without making and hashing a string.
        var nameBytes: [UInt8] = []
        var nameOffsets: [Int] = [0]
        /// Each VM's rows in file order: time and sample side by side (one array per VM touched per row).
        var rows: [[(time: Double, sample: Sample)]] = []
        /// The time of each VM's latest row, and whether its times arrived strictly ascending so far (then a
        /// repeated time can only be the latest one).
        var lastTime: [Double] = []
        var ascending: [Bool] = []
        /// Built only for a VM whose rows arrive out of time order.
        var seen: [Int: Set<Double>] = [:]

        init(bytes: UnsafeBufferPointer<UInt8>, file: String) { self.bytes = bytes; self.file = file }

        static let comma = UInt8(ascii: ","), newline = UInt8(ascii: "\n"), cr = UInt8(ascii: "\r")
        static let space = UInt8(ascii: " "), tab = UInt8(ascii: "\t"), quote = UInt8(ascii: "\"")

        mutating func run() throws(TraceError) -> Trace {
            var pos = 0
            if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { pos = 3 }
            var index: [String: Int] = [:]
            var distinctTimes = Set<Double>()
            var previousRowTime = Double.nan
            var guess = 0
            var sawHeader = false
            var reserved = false
            while pos < bytes.count {
                let count = nextLine(&pos)
                if count == 1, starts[0] == ends[0] { continue }  // blank (or whitespace-only) line
                guard sawHeader else {
                    try checkHeader(count)
                    sawHeader = true
                    continue
                }
                guard count == 7 else { throw error(at: lineStart, "expected 7 fields, found \(count)") }
                let time = try number(0)!
                guard starts[1] < ends[1] else { throw error(at: starts[1], "vm is required") }
                if bytes[starts[1]] == Reader.quote {
                    throw error(at: starts[1], "quoted fields are not supported (a VM name is written bare)")
                }
                // Traces list the same VMs in the same order each interval: try the VM after the previous one.
                if guess == names.count {
                    if !reserved, guess > 0 {
                        // Back at the first VM after one interval: reserve room for the intervals to come.
                        reserved = true
                        let intervals = bytes.count / max(1, lineStart) + 1
                        for i in rows.indices { rows[i].reserveCapacity(intervals) }
                    }
                    guess = 0
                }
                var vm = guess < names.count && isName(guess) ? guess : -1
                if vm < 0 {
                    let slice = UnsafeBufferPointer(rebasing: bytes[starts[1]..<ends[1]])
                    guard let name = String(validating: slice, as: UTF8.self) else {
                        throw error(at: starts[1], "vm is not UTF-8 text")
                    }
                    if let i = index[name] { vm = i } else {
                        vm = names.count
                        index[name] = vm
                        names.append(name)
                        nameBytes.append(contentsOf: slice)
                        nameOffsets.append(nameBytes.count)
                        rows.append([]); lastTime.append(-.infinity); ascending.append(true)
                    }
                }
                guess = vm + 1
                if !(time > lastTime[vm] && ascending[vm]) { try checkRepeat(time, vm) }
                let sample = Sample(cpu: try number(2)!, netMbps: try number(3)!, memMiB: try number(4)!,
                                    swapKbps: try number(5, optional: true),
                                    guestFreeMiB: try number(6, optional: true))
                rows[vm].append((time, sample))
                lastTime[vm] = time
                if time != previousRowTime { distinctTimes.insert(time); previousRowTime = time }
            }
            guard sawHeader else { throw TraceError(file: file, line: 1, column: 1,
                                                    message: "the file is empty; the header must be exactly: \(Trace.header)") }
            return try assemble(times: distinctTimes.sorted())
        }

        /// Reads the line at `pos` into `starts`/`ends` (trimmed fields), moves `pos` past it, returns the field count.
        mutating func nextLine(_ pos: inout Int) -> Int {
            line += 1
            lineStart = pos
            var count = 0
            var fieldStart = pos
            var p = pos
            let end = bytes.count
            while p < end {
                let b = bytes[p]
                if b == Reader.newline { break }
                if b == Reader.comma {
                    keep(count, fieldStart, p)
                    count += 1
                    fieldStart = p + 1
                }
                p += 1
            }
            var lineEnd = p
            if lineEnd > fieldStart, bytes[lineEnd - 1] == Reader.cr { lineEnd -= 1 }
            keep(count, fieldStart, lineEnd)
            pos = p + 1
            return count + 1
        }

        @inline(__always) func keep(_ i: Int, _ start: Int, _ end: Int) {
            guard i < 8 else { return }
            var s = start, e = end
            while s < e, bytes[s] == Reader.space || bytes[s] == Reader.tab { s += 1 }
            while e > s, bytes[e - 1] == Reader.space || bytes[e - 1] == Reader.tab { e -= 1 }
            starts[i] = s; ends[i] = e
        }

        /// True when the vm field holds the name of VM `i`.
        func isName(_ i: Int) -> Bool {
            let lo = nameOffsets[i], n = nameOffsets[i + 1] - lo
            guard ends[1] - starts[1] == n else { return false }
            return nameBytes.withUnsafeBufferPointer { names in
                memcmp(names.baseAddress! + lo, bytes.baseAddress! + starts[1], n) == 0
            }
        }

        func text(_ field: Int) -> String {
            String(decoding: UnsafeBufferPointer(rebasing: bytes[starts[field]..<ends[field]]), as: UTF8.self)
        }

        /// 1-based column of byte offset `at` on the current line, counted in characters (code points).
        func error(at offset: Int, _ message: String) -> TraceError {
            var column = 1
            for i in lineStart..<min(offset, bytes.count) where bytes[i] & 0xC0 != 0x80 { column += 1 }
            return TraceError(file: file, line: line, column: column, message: message)
        }

        func number(_ field: Int, optional: Bool = false) throws(TraceError) -> Double? {
            let s = starts[field], e = ends[field]
            if s == e {
                if optional { return nil }
                throw error(at: s, "\(TraceCSV.columns[field]) is required")
            }
            if let value = TraceCSV.decimal(bytes, s, e) { return value }
            guard let value = Double(text(field)), value.isFinite, value >= 0 else {
                throw error(at: s, "\(TraceCSV.columns[field]) \"\(text(field))\" is not a non-negative number")
            }
            return value
        }

        /// A second row for the same VM and time is refused at that row.
        mutating func checkRepeat(_ time: Double, _ vm: Int) throws(TraceError) {
            if ascending[vm] {
                let last = lastTime[vm]
                if time > last { return }
                if time < last { ascending[vm] = false; seen[vm] = Set(rows[vm].map(\.time)) }
            }
            if ascending[vm] || seen[vm]!.insert(time).inserted == false {
                throw error(at: lineStart, "a second row for \(names[vm]) at time \(Units.trim(time))")
            }
        }

        func checkHeader(_ count: Int) throws(TraceError) {
            let expected = TraceCSV.columns
            var differences: [String] = []
            var first: Int?
            for i in 0..<min(count, 8, expected.count) where text(i) != expected[i] {
                differences.append("column \(i + 1) is `\(text(i))` but must be `\(expected[i])`")
                first = first ?? starts[i]
            }
            if count < expected.count {
                let missing = expected[count...]
                differences.append(missing.count == 1 ? "column \(count + 1) `\(missing.first!)` is missing"
                    : "columns \(count + 1)-\(expected.count) (\(missing.joined(separator: ", "))) are missing")
                first = first ?? ends[count - 1]
            } else if count > expected.count {
                differences.append("\(count - expected.count) extra column\(count - expected.count == 1 ? "" : "s") "
                    + "after `\(expected.last!)`")
                first = first ?? starts[expected.count]
            }
            guard let first else { return }
            throw error(at: first, differences.joined(separator: "; ") + "; the header must be exactly: \(Trace.header)")
        }

        /// Per VM the samples in time order; every VM must have one row per interval.
        mutating func assemble(times all: [Double]) throws(TraceError) -> Trace {
            var out: [String: [Sample]] = [:]
            out.reserveCapacity(names.count)
            for (vm, name) in names.enumerated() {
                guard rows[vm].count == all.count else {
                    throw TraceError(file: file, line: 1, column: 1,
                                     message: "\(name) has \(rows[vm].count) rows but the trace has \(all.count) intervals "
                                        + "(one row per VM per interval)")
                }
                out[name] = ascending[vm] ? rows[vm].map(\.sample) : rows[vm].sorted { $0.time < $1.time }.map(\.sample)
                rows[vm] = []  // freed as it is copied: the trace is held once, not twice
            }
            return Trace(times: all, samples: out)
        }
    }

    private static let powersOfTen: [Double] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
                                                1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22]

    /// `digits[.digits][e[+-]digits]` with at most 15 significant digits and a small exponent, exactly as
    /// `Double(String)` reads it (Clinger's fast path: one correctly rounded multiply or divide of exact values);
    /// nil for anything else, which the caller hands to `Double(String)`.
    static func decimal(_ b: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Double? {
        var p = start
        var mantissa: UInt64 = 0
        var digits = 0, scale = 0
        let zero = UInt8(ascii: "0")
        while p < end, b[p] &- zero < 10 { mantissa = mantissa &* 10 &+ UInt64(b[p] &- zero); digits += 1; p += 1 }
        guard digits > 0 else { return nil }
        if p < end, b[p] == UInt8(ascii: ".") {
            p += 1
            let before = p
            while p < end, b[p] &- zero < 10 { mantissa = mantissa &* 10 &+ UInt64(b[p] &- zero); digits += 1; p += 1 }
            guard p > before else { return nil }
            scale = before - p
        }
        if p < end, b[p] | 0x20 == UInt8(ascii: "e") {
            p += 1
            var negative = false
            if p < end, b[p] == UInt8(ascii: "-") || b[p] == UInt8(ascii: "+") { negative = b[p] == UInt8(ascii: "-"); p += 1 }
            let before = p
            var exponent = 0
            while p < end, b[p] &- zero < 10, exponent < 1000 { exponent = exponent * 10 + Int(b[p] &- zero); p += 1 }
            guard p > before else { return nil }
            scale += negative ? -exponent : exponent
        }
        guard p == end, digits <= 15, (-22...22).contains(scale) else { return nil }
        let m = Double(mantissa)
        return scale >= 0 ? m * powersOfTen[scale] : m / powersOfTen[-scale]
    }
}

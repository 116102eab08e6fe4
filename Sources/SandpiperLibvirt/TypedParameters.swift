internal import CLibvirt

/// A Swift copy of one `virTypedParameter` value. Internal: typed parameters never cross the module boundary.
enum TypedValue: Sendable, Equatable {
    case int(Int32), uint(UInt32), llong(Int64), ullong(UInt64), double(Double), bool(Bool), string(String)

    var uint64: UInt64? {
        switch self {
        case .int(let v): return v >= 0 ? UInt64(v) : nil
        case .uint(let v): return UInt64(v)
        case .llong(let v): return v >= 0 ? UInt64(v) : nil
        case .ullong(let v): return v
        case .double(let v): return v >= 0 && v < 1.8e19 ? UInt64(v) : nil
        default: return nil
        }
    }

    var int64: Int64? {
        switch self {
        case .int(let v): return Int64(v)
        case .uint(let v): return Int64(v)
        case .llong(let v): return v
        case .ullong(let v): return v <= UInt64(Int64.max) ? Int64(v) : nil
        case .double(let v): return v.isFinite && abs(v) < 9.2e18 ? Int64(v) : nil
        default: return nil
        }
    }
}

/// Copies a C array of typed parameters into a dictionary keyed by field name (last one wins on duplicates).
func copyTypedParameters(_ params: UnsafePointer<virTypedParameter>?, count: Int32) -> [String: TypedValue] {
    guard let params, count > 0 else { return [:] }
    var out: [String: TypedValue] = [:]
    out.reserveCapacity(Int(count))
    for i in 0..<Int(count) {
        let p = params + i
        let name = String(cString: sp_typed_param_field(p))
        let v = p.pointee.value
        let value: TypedValue
        switch UInt32(bitPattern: p.pointee.type) {
        case VIR_TYPED_PARAM_INT.rawValue: value = .int(v.i)
        case VIR_TYPED_PARAM_UINT.rawValue: value = .uint(v.ui)
        case VIR_TYPED_PARAM_LLONG.rawValue: value = .llong(v.l)
        case VIR_TYPED_PARAM_ULLONG.rawValue: value = .ullong(v.ul)
        case VIR_TYPED_PARAM_DOUBLE.rawValue: value = .double(v.d)
        case VIR_TYPED_PARAM_BOOLEAN.rawValue: value = .bool(v.b != 0)
        case VIR_TYPED_PARAM_STRING.rawValue: value = .string(v.s.map { String(cString: $0) } ?? "")
        default: continue
        }
        out[name] = value
    }
    return out
}

/// Builds a libvirt-allocated typed parameter list (`virTypedParamsAdd*`) and frees it (`virTypedParamsFree`).
final class TypedParameterList {
    private(set) var params: UnsafeMutablePointer<virTypedParameter>? = nil
    private(set) var count: Int32 = 0
    private var capacity: Int32 = 0

    deinit { virTypedParamsFree(params, count) }

    func add(_ name: String, ullong value: UInt64) throws(LibvirtError) {
        try libvirtCall("typed parameter \(name)") { virTypedParamsAddULLong(&params, &count, &capacity, name, value) }
    }

    func add(_ name: String, llong value: Int64) throws(LibvirtError) {
        try libvirtCall("typed parameter \(name)") { virTypedParamsAddLLong(&params, &count, &capacity, name, value) }
    }

    func add(_ name: String, uint value: UInt32) throws(LibvirtError) {
        try libvirtCall("typed parameter \(name)") { virTypedParamsAddUInt(&params, &count, &capacity, name, value) }
    }

    func add(_ name: String, string value: String) throws(LibvirtError) {
        try libvirtCall("typed parameter \(name)") { virTypedParamsAddString(&params, &count, &capacity, name, value) }
    }
}

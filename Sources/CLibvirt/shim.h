// libvirt's public headers; only SandpiperLibvirt imports this module.
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

// Swift imports fixed-size C arrays (`char field[VIR_TYPED_PARAM_FIELD_LENGTH]`)
// as homogeneous tuples, which are awkward to turn into a String. This accessor
// hands Swift a plain C string pointer to the NUL-terminated field name instead.
static inline const char *sp_typed_param_field(const virTypedParameter *param) {
    return param->field;
}


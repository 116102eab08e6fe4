// libvirt's public headers; only SandpiperLibvirt imports this module.
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

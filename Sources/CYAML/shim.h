// libyaml's public header; the Swift adapter in SandpiperYAML is the only importer.
#include <yaml.h>

"""Shared by the fixture generators: a libvirt test-driver node file (host CPUs, memory, running domains)."""


def node_xml(cpus, mem_mib, domains):
    doms = []
    for i, dom in enumerate(domains):
        name, vcpus, mib = dom[0], dom[1], dom[2]
        current = dom[3] if len(dom) > 3 else mib
        uuid = "%08x-0000-4000-8000-%012x" % (abs(hash_name(name)) % (1 << 32), i + 1)
        doms.append(f"""  <domain type='test'>
    <name>{name}</name>
    <uuid>{uuid}</uuid>
    <memory unit='MiB'>{mib}</memory>
    <currentMemory unit='MiB'>{current}</currentMemory>
    <vcpu>{vcpus}</vcpu>
    <os><type arch='x86_64'>hvm</type></os>
  </domain>""")
    return f"""<?xml version='1.0'?>
<!-- libvirt test-driver host: CPUs, memory and the domains running on it when Sandpiper first looks. -->
<node>
  <cpu>
    <mhz>2400</mhz>
    <model>x86_64</model>
    <nodes>1</nodes>
    <sockets>1</sockets>
    <cores>{cpus}</cores>
    <threads>1</threads>
    <active>{cpus}</active>
  </cpu>
  <memory>{mem_mib * 1024}</memory>
{chr(10).join(doms)}
</node>
"""

def hash_name(s):
    h = 2166136261
    for c in s.encode():
        h = ((h ^ c) * 16777619) & 0xFFFFFFFF
    return h

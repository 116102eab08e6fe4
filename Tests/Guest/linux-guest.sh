#!/bin/bash
# The test suite's Linux guest (copied from the verified lab recipe shared/labs/linux-guest.sh, build and xml
# only): Debian cloud kernel + busybox-static initramfs that loads virtio_balloon, booted by libvirt from
# <kernel>/<initrd> under TCG (domain type 'qemu'). Its load is scriptable:
#   kernel cmdline:  sp.load=cpu[:N[:PCT]]   N busy loops (default all vCPUs), each PCT% of a vCPU (default 100)
#                    sp.mem=MiB              hold MiB of non-zero data in tmpfs
#   console ttyS0, one command per line:
#                    cpu N [PCT] | mem MiB | stop | stat | sh | blk ...
#   (every command but sh answers one line "SP <cmd>..."; boot prints "SP-READY ...")
#
#   linux-guest.sh build DIR   -> DIR/vmlinuz DIR/initrd.img DIR/kernel-version (DIR made a+rx)
#   linux-guest.sh xml DIR NAME [--vcpus N] [--mem MiB] [--load cpu[:N[:PCT]]] [--alloc MiB] [--uuid UUID]
#                  [--stats-period S] [--log FILE] [--disk PATH[:FMT[:CACHE]]]   -> domain XML on stdout
#
# Needs (Debian 12): busybox-static cpio (.ci/install-deps installs them).
# Kernel: KERNEL_DEB=path/to/linux-image-*-cloud-amd64*.deb (what .ci/install-deps fetches into .build/), else the
#   newest /boot/vmlinuz-*-cloud-amd64, else linux-image-cloud-amd64's kernel package fetched with
#   `apt-get download` and unpacked with dpkg-deb -x (no install).
set -euo pipefail
MODS="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_balloon virtio_blk"

die() { echo "linux-guest.sh: $*" >&2; exit 1; }

write_init() {  # the guest's /init (busybox ash)
cat > "$1" <<'EOF'
#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /mem /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev 2>/dev/null
for mod in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_balloon virtio_blk; do
  [ -f /lib/modules/$mod.ko ] && insmod /lib/modules/$mod.ko
done
m=0; n=0; p=100
mount -t tmpfs -o size=95% tmpfs /mem
CPUPIDS=""
cpu() {   # cpu N [PCT]: N busy loops, loop i pinned to vCPU i mod ncpu, each PCT% busy
  [ -n "$CPUPIDS" ] && kill $CPUPIDS 2>/dev/null; CPUPIDS=""
  n=${1:-0}; p=${2:-100}; nc=$(nproc); i=0
  while [ "$i" -lt "$n" ]; do
    if [ "$p" -ge 100 ]; then
      taskset -c $((i % nc)) sh -c 'while :; do :; done' &
    else   # duty cycle over 200 ms: a busy child is stopped/continued by its parent
      taskset -c $((i % nc)) sh -c 'sh -c "while :; do :; done" & b=$!
        trap "kill -9 $b; exit" TERM
        while :; do usleep '$((p * 2000))'; kill -STOP $b; usleep '$(((100 - p) * 2000))'; kill -CONT $b; done' &
    fi
    CPUPIDS="$CPUPIDS $!"; i=$((i + 1))
  done
}
mem() {   # mem M: hold M MiB of non-zero data in tmpfs /mem (0 frees); 3-7 ms/MiB under TCG
  rm -f /mem/fill; m=${1:-0}
  if [ "$m" -gt 0 ]; then
    yes 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde | head -c 1048576 > /mem/b1
    cat /mem/b1 /mem/b1 /mem/b1 /mem/b1 > /mem/b4; cat /mem/b4 /mem/b4 /mem/b4 /mem/b4 > /mem/b16
    { i=0; while [ $i -lt $((m / 16)) ]; do cat /mem/b16; i=$((i + 1)); done
      i=0; while [ $i -lt $((m % 16)) ]; do cat /mem/b1; i=$((i + 1)); done; } > /mem/fill
    rm -f /mem/b1 /mem/b4 /mem/b16
  fi
}
BLKPID=""
blk() {   # the virtio disk /dev/vda; offsets and sizes in MiB; reads drop the page cache first
  local op=${1:-info} x=${2:-0} y=${3:-0}
  [ -b /dev/vda ] || { echo "SP blk none"; return; }
  case $op in
    info) echo "SP blk vda sectors=$(cat /sys/block/vda/size) busy=$([ -n "$BLKPID" ] && echo on || echo off)" ;;
    w) printf '%s\n' "$y" | dd of=/dev/vda bs=1M seek="$x" conv=notrunc,fsync 2>/dev/null; echo "SP blk w $x $y" ;;
    r) sync; echo 3 > /proc/sys/vm/drop_caches
       echo "SP blk r $x $(dd if=/dev/vda bs=1M skip="$x" count=1 2>/dev/null | head -c 256 | head -n 1 | tr -d '\0')" ;;
    fill) yes 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde | head -c $((x * 1048576)) |
            dd of=/dev/vda bs=1M seek="$y" iflag=fullblock conv=notrunc,fsync 2>/dev/null
          echo "SP blk fill $x at $y" ;;
    sum) sync; echo 3 > /proc/sys/vm/drop_caches
         echo "SP blk sum $x at $y $(dd if=/dev/vda bs=1M skip="$y" count="$x" 2>/dev/null | md5sum | cut -d' ' -f1)" ;;
    busy) [ -n "$BLKPID" ] && kill $BLKPID 2>/dev/null; BLKPID=""
          if [ "$x" -gt 0 ]; then   # rewrite 1 MiB blocks 0..x-1 round and round, sync each round
            yes 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde | head -c 1048576 > /tmp/blk1
            sh -c 'i=0; while :; do dd if=/tmp/blk1 of=/dev/vda bs=1M seek=$((i % '"$x"')) count=1 conv=notrunc 2>/dev/null
                   i=$((i + 1)); [ $((i % '"$x"')) = 0 ] && sync; done' &
            BLKPID=$!
          fi
          echo "SP blk busy=$x" ;;
    *) echo "SP blk ? (info | w MiB WORD | r MiB | fill MiB [AT] | sum MiB [AT] | busy MiB)" ;;
  esac
}
for a in $(cat /proc/cmdline); do
  case $a in
    sp.load=cpu) cpu "$(nproc)" ;;
    sp.load=cpu:*:*) x=${a#sp.load=cpu:}; cpu "${x%%:*}" "${x#*:}" ;;
    sp.load=cpu:*) cpu "${a#sp.load=cpu:}" ;;
    sp.mem=*) mem "${a#sp.mem=}" ;;
  esac
done
echo "SP-READY uptime=$(cut -d' ' -f1 /proc/uptime) cpus=$(nproc) $(grep MemTotal /proc/meminfo | tr -s ' ') loops=$(echo $CPUPIDS | wc -w) mem=$m"
while :; do
  read -r c a1 a2 || { sleep 1; continue; }
  case $c in
    cpu) cpu "$a1" "$a2"; echo "SP cpu=$n pct=$p" ;;
    mem) mem "$a1"; echo "SP mem=$m" ;;
    stop) cpu 0; mem 0; [ -n "$BLKPID" ] && blk busy 0 >/dev/null; echo "SP stop" ;;
    stat) echo "SP stat uptime=$(cut -d' ' -f1 /proc/uptime) $(grep -E '^(MemTotal|MemFree|MemAvailable):' /proc/meminfo | tr -s ' \n' ' ')loops=$(echo $CPUPIDS | wc -w)" ;;
    blk) blk $a1 $a2 ;;
    sh) sh ;;
    '') ;;
    *) echo "SP ? $c (cpu N [PCT] | mem MiB | stop | stat | sh)" ;;
  esac
done
EOF
chmod 755 "$1"
}

build() {  # build DIR
  local out=${1:?usage: build DIR} kv=${KVER:-} src=/ tmp mdir m f
  mkdir -p "$out"; out=$(cd "$out" && pwd)
  [ -x /bin/busybox ] && [[ $(LC_ALL=C ldd /bin/busybox 2>&1) == *"not a dynamic"* ]] ||
    die "/bin/busybox is missing or dynamically linked: apt-get install busybox-static"
  command -v cpio >/dev/null || die "cpio missing: apt-get install cpio"
  tmp=$(mktemp -d)
  [ -n "$kv" ] || [ "${KERNEL_FROM:-}" = deb ] ||
    kv=$( (ls /boot/vmlinuz-*-cloud-amd64 2>/dev/null || true) | sed 's|/boot/vmlinuz-||' | sort -V | tail -1)
  if [ -n "${KERNEL_DEB:-}" ] && [ -f "$KERNEL_DEB" ]; then   # the package .ci/install-deps fetched
    dpkg-deb -x "$KERNEL_DEB" "$tmp/x"; src=$tmp/x
    kv=$(ls "$src"/boot/vmlinuz-* | sed 's|.*/vmlinuz-||' | head -1)
  elif [ -z "$kv" ] || [ ! -f "/boot/vmlinuz-$kv" ] || [ "${KERNEL_FROM:-}" = deb ]; then   # unpack the .deb
    local pkg=linux-image-${kv:-cloud-amd64}
    [ -z "$kv" ] && pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
    [ -n "$pkg" ] || die "no linux-image-cloud-amd64 in apt lists (apt-get update?)"
    (cd "$tmp" && chmod 777 . && apt-get download -q "$pkg" >/dev/null) || die "apt-get download $pkg failed"
    dpkg-deb -x "$tmp"/*.deb "$tmp/x"; src=$tmp/x
    kv=$(ls "$src"/boot/vmlinuz-* | sed 's|.*/vmlinuz-||' | head -1)
  fi
  mdir=$src/lib/modules/$kv; [ -d "$mdir" ] || mdir=$src/usr/lib/modules/$kv
  [ -f "$src/boot/vmlinuz-$kv" ] && [ -d "$mdir" ] || die "kernel $kv incomplete under $src"
  mkdir -p "$tmp/root/bin" "$tmp/root/lib/modules"
  cp /bin/busybox "$tmp/root/bin/busybox"
  for m in $MODS; do   # .ko, .ko.xz or .ko.zst; built-in (=y) ones are simply absent
    f=$(find "$mdir/kernel/drivers/virtio" "$mdir/kernel/drivers/block" -name "$m.ko*" | head -1); [ -n "$f" ] || continue
    case $f in
      *.xz) xz -dc "$f" ;; *.zst) zstd -qdc "$f" ;; *.gz) gzip -dc "$f" ;; *) cat "$f" ;;
    esac > "$tmp/root/lib/modules/$m.ko"
  done
  [ -f "$tmp/root/lib/modules/virtio_balloon.ko" ] || grep -q '^CONFIG_VIRTIO_BALLOON=y' "$src/boot/config-$kv" ||
    die "no virtio_balloon in $kv"
  write_init "$tmp/root/init"
  cp "$src/boot/vmlinuz-$kv" "$out/vmlinuz"
  (cd "$tmp/root" && find . | cpio -o -H newc --quiet | gzip -1) > "$out/initrd.img"
  echo "$kv" > "$out/kernel-version"; rm -rf "$tmp"
  chmod 755 "$out"; chmod 644 "$out/vmlinuz" "$out/initrd.img" "$out/kernel-version"
  echo "built $out: kernel $kv, initrd $(stat -c %s "$out/initrd.img") bytes"
}

xml() {  # xml DIR NAME [opts]
  local dir=${1:?usage: xml DIR NAME [opts]} name=${2:?usage: xml DIR NAME [opts]}; shift 2
  local vcpus=1 mem=512 load="" alloc="" uuid="" period=2 log="" disk="" cmd
  while [ $# -gt 0 ]; do
    case $1 in
      --vcpus) vcpus=$2 ;; --mem) mem=$2 ;; --load) load=$2 ;; --alloc) alloc=$2 ;;
      --uuid) uuid=$2 ;; --stats-period) period=$2 ;; --log) log=$2 ;; --disk) disk=$2 ;;
      *) die "unknown option $1" ;;
    esac; shift 2
  done
  dir=$(cd "$dir" && pwd)
  cmd="console=ttyS0 panic=-1 quiet${alloc:+ sp.mem=$alloc}${load:+ sp.load=$load}"   # fill memory before the loops start
  cat <<EOF
<domain type='qemu'>
  <name>$name</name>${uuid:+
  <uuid>$uuid</uuid>}
  <memory unit='MiB'>$mem</memory>
  <currentMemory unit='MiB'>$mem</currentMemory>
  <vcpu>$vcpus</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$dir/vmlinuz</kernel>
    <initrd>$dir/initrd.img</initrd>
    <cmdline>$cmd</cmdline>
  </os>
  <features><acpi/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>$([ -z "$disk" ] || { IFS=: read -r dp df dc <<<"$disk"
      printf "\n    <disk type='file' device='disk'><driver name='qemu' type='%s' cache='%s'/>" "${df:-qcow2}" "${dc:-none}"
      printf "<source file='%s'/><target dev='vda' bus='virtio'/></disk>" "$dp"; })
    <serial type='pty'>${log:+<log file='$log' append='on'/>}<target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <controller type='usb' model='none'/>
    <video><model type='none'/></video>
    <memballoon model='virtio'>$([ "$period" = 0 ] || echo "<stats period='$period'/>")</memballoon>
  </devices>
</domain>
EOF
}

case ${1:-} in
  build) shift; build "$@" ;;
  xml) shift; xml "$@" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 2 ;;
esac

#!/usr/bin/env bash
# Regenerate the fuzz seed corpus in fuzz/seeds/<target>/ from real tools
# (sfdisk, mkfs.fat + mtools, GNU tar, bmaptool, minisign) and k8r's own
# formats. Deterministic except the minisign key and signature; the output
# is committed, so CI does not need to run this. Usage: fuzz/seeds/make.sh
set -euo pipefail
cd "$(dirname "$0")"
seeds=$PWD
root=$(cd ../.. && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export LC_ALL=C.UTF-8 MTOOLS_SKIP_CHECK=1 SOURCE_DATE_EPOCH=1700000000

put() { # put TARGET NAME: stdin → seeds/TARGET/NAME
	mkdir -p "$seeds/$1"
	cat >"$seeds/$1/$2"
}

# A disk image as fuzz/src/lib.rs's ChunkDisk: size, then every run of
# non-zero 512-byte sectors as (u32 sector, u16 length, bytes).
chunk_disk() {
	python3 - "$1" <<'EOF'
import os, struct, sys
path = sys.argv[1]
size = os.path.getsize(path)
out = bytearray(struct.pack("<Q", size))
with open(path, "rb") as f:
    sector, run_start, run = 0, None, bytearray()
    def flush():
        global run, run_start
        while run:
            piece = run[:65024]
            out.extend(struct.pack("<IH", run_start, len(piece)) + piece)
            run_start += len(piece) // 512
            run = run[len(piece):]
        run_start = None
    # Only where data is (sparse files), so a 64 GiB table is quick.
    pos = 0
    while pos < size:
        try:
            data_at = os.lseek(f.fileno(), pos, os.SEEK_DATA)
        except OSError:
            break
        hole_at = os.lseek(f.fileno(), data_at, os.SEEK_HOLE)
        f.seek(data_at - data_at % 512)
        sector = data_at // 512
        while f.tell() < hole_at:
            block = f.read(512)
            if any(block):
                if run_start is None:
                    run_start = sector
                run.extend(block)
            elif run_start is not None:
                flush()
            sector += 1
        flush()
        pos = hole_at
sys.stdout.buffer.write(bytes(out))
EOF
}

rm -rf "${seeds:?}"/*/

# --- ptable: k8r's MBR and GPT layouts, a vendor-like two-partition MBR,
# a table on a 64 GiB disk, a GPT with a damaged primary.
mbr_k8r='label: dos
label-id: 0x6b387201
start=2048, size=131072, type=c
start=133120, size=262144, type=c
start=395264, size=262144, type=c
start=657408, type=5
start=659456, size=1048576, type=83
start=1710080, size=1048576, type=83
start=2760704, type=83'
gpt_k8r='label: gpt
label-id: 6B387201-0000-4000-8000-000000000001
start=2048, size=131072, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name=config
start=133120, size=262144, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name=boot-a
start=395264, size=262144, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name=boot-b
start=657408, size=1048576, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=working
start=1705984, size=1048576, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=image
start=2754560, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=data'
vendor='label: dos
label-id: 0x1234abcd
start=2048, size=1048576, type=c, bootable
start=1050624, type=83'
table() { # table NAME SIZE SFDISK-SCRIPT
	truncate -s "$2" "$work/$1.img"
	printf '%s\n' "$3" | sfdisk -q "$work/$1.img" >/dev/null
	chunk_disk "$work/$1.img" | put ptable "$1"
}
table mbr-k8r 2G "$mbr_k8r"
table gpt-k8r 2G "$gpt_k8r"
table mbr-vendor 1G "$vendor"
table gpt-64g 64G "$gpt_k8r"
cp "$work/gpt-k8r.img" "$work/gpt-damaged.img"
printf 'XXXXXXXX' | dd of="$work/gpt-damaged.img" bs=1 seek=512 conv=notrunc status=none
chunk_disk "$work/gpt-damaged.img" | put ptable gpt-damaged-primary

# --- fat: FAT12, FAT16 and FAT32 volumes with k8r's config-partition
# files, long names and a subdirectory.
mkdir -p "$work/tree/overlays"
printf '[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n' >"$work/tree/autoboot.txt"
printf 'hostname = "worker-1"\nrole = "worker"\n' >"$work/tree/seed.toml"
printf 'dtoverlay\n' >"$work/tree/overlays/Vc4-KMS-V3D with a long name.dtbo"
head -c 3000 /dev/zero | tr '\0' 'k' >"$work/tree/kernel8.img"
fat() { # fat NAME FAT-BITS SIZE-KIB
	rm -f "$work/$1.img"
	mkfs.fat -C -F "$2" -s 1 -n K8R-TEST -i 6b387201 "$work/$1.img" "$3" >/dev/null
	mcopy -s -i "$work/$1.img" "$work/tree/"* ::/
	chunk_disk "$work/$1.img" | put fat "$1"
}
fat fat12 12 1024
fat fat16 16 8192
fat fat32 32 40960

# --- autoboot, config.txt, cmdline.txt, the whole resolution.
printf '[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n' | put autoboot normal
printf '[all]\ntryboot_a_b=1\nboot_partition=3\n[tryboot]\nboot_partition=2\n' | put autoboot reinstall
printf 'boot_partition=2\r\n' | put autoboot crlf
cfg_ubuntu='[all]
kernel=vmlinuz
cmdline=cmdline.txt
initramfs initrd.img followkernel

[pi4]
max_framebuffers=2
arm_boost=1

[all]
arm_64bit=1
dtoverlay=vc4-kms-v3d
include extra.txt
'
cfg_extra='[pi5]
os_prefix=b/
[cm4]
otg_mode=1
[none]
kernel=never.img
[tryboot]
kernel=kernel8.img
'
sep=$'\n#--8<--\n'
{ printf '\x00%s%s%s' "$cfg_ubuntu" "$sep" "$cfg_extra"; printf '%s[all]\ninclude config.txt\n' "$sep"; } | put config_txt ubuntu-pi4
{ printf '\x83%s%s%s' "$cfg_ubuntu" "$sep" "$cfg_extra"; printf '%sauto_initramfs=1\n' "$sep"; } | put config_txt pi5-tryboot
printf '\x02[all]\nstart_file=start4.elf\nfixup_file=fixup4.dat\ndevice_tree=bcm2711-rpi-4-b.dtb\nkernel=kernel8.img\n' | put config_txt explicit
printf 'console=serial0,115200 console=tty1 root=PARTUUID=6b387201-05 rootfstype=ext4 rootwait fixrtc cgroup_enable=memory\n' | put cmdline working
printf 'root=PARTUUID=6b387201-06 ro init=/usr/bin/k8r-node k8r.mode=reinstall quiet "dyndbg=file x +p" -- single\n' | put cmdline reinstall
printf 'a=b=c  x="" \t y\nsecond line\n' | put cmdline odd
auto_normal=$'[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n'
cmd_a='console=serial0,115200 root=PARTUUID=6b387201-05 rw rootwait'
cmd_b='root=PARTUUID=6b387201-06 ro init=/usr/bin/k8r-node k8r.mode=reinstall'
printf '\x00%s%s%s%s%s%s%s%s%s' "$auto_normal" "$sep" "$cfg_ubuntu" "$sep" "$cmd_a" "$sep" "$cfg_ubuntu" "$sep" "$cmd_b" | put boot_resolve pi4-normal
printf '\x85%s%s%s%s%s%s%s%s%s' "$auto_normal" "$sep" "[all]\nos_prefix=b/\n" "$sep" "$cmd_a" "$sep" "[all]\nkernel=vmlinuz\n" "$sep" "$cmd_b" | put boot_resolve pi5-tryboot
printf '\x07%s%s%s%s%s' "boot_partition=3" "$sep" "" "$sep" "$cmd_a" | put boot_resolve qemu

# --- manifest.json: with and without the disk artifact.
manifest='{
  "format": 1,
  "k8r_version": "0.1.0",
  "version": "1.31.4-k8r.20260101.120000",
  "kubernetes_version": "1.31.4",
  "arch": "aarch64",
  "distro": "ubuntu",
  "distro_version": "24.04",
  "created": "2026-01-01T12:00:00Z",
  "artifacts": {
    "image": {
      "file": "image.img.xz",
      "compression": "xz",
      "size": 512345678,
      "sha256": "5b3c0c3f1e2d4a6b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d",
      "raw_size": 2147483648,
      "raw_sha256": "0b3c0c3f1e2d4a6b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d"
    },
    "boot": {
      "file": "boot.tar.zst",
      "compression": "zstd",
      "size": 61234567,
      "sha256": "1b3c0c3f1e2d4a6b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d",
      "raw_size": 134217728,
      "raw_sha256": "2b3c0c3f1e2d4a6b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d"
    }DISK
  }
}'
printf '%s\n' "${manifest/DISK/}" | put manifest plain
disk=',
    "disk": {
      "file": "bootable_image.img",
      "size": 8589934592,
      "sha256": "3b3c0c3f1e2d4a6b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d",
      "bmap": "bootable_image.img.bmap"
    }'
printf '%s\n' "${manifest/DISK/$disk}" | put manifest with-disk

# --- bmap: what bmaptool writes for a sparse file.
truncate -s 8M "$work/sparse.img"
printf 'data' | dd of="$work/sparse.img" bs=4096 seek=3 conv=notrunc status=none
head -c 20000 /dev/urandom | dd of="$work/sparse.img" bs=4096 seek=1000 conv=notrunc status=none
bmaptool -q create -o "$work/sparse.bmap" "$work/sparse.img"
put bmap bmaptool <"$work/sparse.bmap"
bmaptool -q create --no-checksum -o "$work/nosum.bmap" "$work/sparse.img"
put bmap no-checksum <"$work/nosum.bmap"

# --- variables.cfg (k8r's bash config) and node seeds.
put import example <"$root/examples/variables.cfg"
printf 'IMAGE="https://cdimage.ubuntu.com/x.img.xz"\nK8S_VERSION=1.31.4\nKUBEADM_JOIN_STRING="kubeadm join 10.0.0.1:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:5b3c0c3f1e2d4a6b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d"\nexport CNI_TYPE=\x27flannel\x27 # comment\n' | put import join-string
printf 'hostname = "worker-3"\nrole = "worker"\nnode-ip = "10.0.0.13"\nssh-authorized-keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAT2Asg9/s33hR+cdD6zfs03ryjCqfpWlTxXhSIVyxLi ops@laptop"]\n\n[join]\nendpoint = "k8s.lan:6443"\ntoken = "abcdef.0123456789abcdef"\nca-cert-hash = "sha256:5b3c0c3f1e2d4a6b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d"\n\n[labels]\n"topology.kubernetes.io/zone" = "rack-1"\n' | put seed worker
printf 'hostname = "cp-2"\nrole = "control-plane"\n[join]\nendpoint = "10.0.0.1:6443"\ntoken = "abcdef.0123456789abcdef"\nca-cert-hash = "sha256:5b3c0c3f1e2d4a6b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d"\ncertificate-key = "0b3c0c3f1e2d4a6b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d"\n' | put seed control-plane
printf 'hostname = "cp-1"\nrole = "control-plane"\n' | put seed first

# --- tar: GNU, POSIX (pax) and ustar archives of a boot tree, long names.
mkdir -p "$work/boot/overlays"
printf '[all]\nkernel=vmlinuz\n' >"$work/boot/config.txt"
printf 'root=PARTUUID=6b387201-06 ro\n' >"$work/boot/cmdline.txt"
printf 'x' >"$work/boot/overlays/$(printf 'n%.0s' $(seq 1 120)).dtbo"
head -c 700 /dev/zero >"$work/boot/vmlinuz"
for fmt in gnu posix ustar; do
	[ "$fmt" = ustar ] && rm -f "$work/boot/overlays/"n*
	tar --format=$fmt --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work/boot" -cf - . | put tar "$fmt"
done
ln -s /etc "$work/boot/link"
tar --format=gnu -C "$work/boot" -cf - link config.txt | put tar symlink

# --- signature: public key, NUL, the signature of `k8r\n` (the target's manifest).
minisign -G -W -p "$work/k.pub" -s "$work/k.key" >/dev/null
printf 'k8r\n' >"$work/m"
minisign -S -s "$work/k.key" -m "$work/m" -t "k8r fuzz seed" >/dev/null
{ cat "$work/k.pub"; printf '\0'; cat "$work/m.minisig"; } | put signature valid
{ cat "$work/k.pub"; printf '\0'; sed 's/k8r fuzz seed/k8r fuzz seeD/' "$work/m.minisig"; } | put signature edited-comment

# --- xz_index: one block, many blocks, two streams with padding between.
printf 'k8r\n' | xz -T1 | put xz_index one-block
seq 1 60000 | xz -T2 --block-size=65536 | put xz_index blocks
{ printf 'a' | xz; head -c 8 /dev/zero; printf 'b' | xz --check=sha256; } | put xz_index two-streams

du -sh "$seeds" | cut -f1 | xargs printf 'seed corpus: %s\n'

#!/usr/bin/env bash
# mk-vendor-debian.sh ARCH OUTDIR
#
# Makes a Debian bookworm "vendor image" laid out like a Raspberry Pi image,
# for k8r's VM tests: an MBR disk with
#   p1  FAT32 "RASPIFIRM" at 4 MiB: config.txt, cmdline.txt, kernel, initrd
#       (arm64: exactly what Debian's raspi-firmware package writes there)
#   p2  ext4  "RASPIROOT": a minimal bookworm root (systemd, udev, kmod,
#       e2fsprogs, iproute2, networkd DHCP, serial autologin, k8r-vm-probe)
# ARCH is amd64 or arm64. Writes OUTDIR/vendor.img, OUTDIR/vendor.env
# (geometry, ids, kernel version), OUTDIR/packages.txt, OUTDIR/timings.txt.
#
# Needs root (mmdebstrap --mode=unshare as root keeps every mount in a private
# namespace, so a failure or a kill leaves nothing mounted on the host).
# arm64 also registers qemu-aarch64 with binfmt_misc (a host-wide setting).
# Mirror: K8R_DEBIAN_MIRROR if set, else the Debian bookworm entries of the
# host's apt configuration, else deb.debian.org. K8R_VM_DEB_CACHE, if set,
# is a directory kept between runs holding the downloaded .debs.
#
# This script never writes outside OUTDIR (and K8R_VM_DEB_CACHE), never leaves
# a mount behind, and never touches a block device. The k8r tests run it
# through tests/src/vm/vendor.rs, which caches OUTDIR by this script's hash.
set -Eeuo pipefail

readonly SUITE=bookworm
# Fixed identifiers, so tests can name them and two images differ only where
# their content does ("k8rv" in ASCII). Not bit-for-bit reproducible: the
# mirror moves, and mke2fs -d follows the host's directory order.
readonly DISK_ID=0x6b387276
readonly FAT_VOLID=6B387276
readonly FAT_START_MIB=4
# Timestamps (files copied to FAT, ext4 metadata, mmdebstrap's reproducible
# mode): 2024-01-01T00:00:00Z.
export SOURCE_DATE_EPOCH=1704067200

# Kernel modules a VM (or a headless Kubernetes node) never loads. Leaving
# them out keeps the root small, which every later tier pays for (xz of the
# golden image, streaming it into the guest under TCG). Paths as the
# linux-image packages ship them (bookworm: /lib/modules). Netfilter, bridge,
# overlay, vxlan, virtio, block and filesystem modules all stay.
readonly PRUNED_MODULE_DIRS=(
	drivers/gpu drivers/media drivers/net/wireless drivers/net/ethernet
	drivers/infiniband drivers/staging drivers/iio drivers/bluetooth
	drivers/isdn drivers/net/can drivers/comedi drivers/nfc sound
	net/wireless net/mac80211 net/bluetooth net/nfc
)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
self="$here/$(basename "${BASH_SOURCE[0]}")"
started=$(date +%s.%N)
last=$started

die() { printf 'mk-vendor-debian: error: %s\n' "$*" >&2; exit 1; }
log() { printf 'mk-vendor-debian: %s\n' "$*" >&2; }

# phase NAME: print and record how long the previous phase took.
phase_name=""
phase() {
	local now
	now=$(date +%s.%N)
	if [ -n "$phase_name" ]; then
		awk -v n="$phase_name" -v a="$last" -v b="$now" 'BEGIN { printf "%-12s %7.1f s\n", n, b - a }' |
			tee -a "$out/timings.txt" >&2
	fi
	phase_name=$1
	last=$now
	[ "$1" = end ] || log "phase: $1"
}

need() {
	local tool
	for tool in "$@"; do
		command -v "$tool" >/dev/null || die "$tool not found (install: mmdebstrap e2fsprogs dosfstools mtools fdisk)"
	done
}

# --- hooks (run by mmdebstrap, $1 is the new root) ---------------------------

# Installing linux-image and then udev, systemd, ... would rebuild the
# initramfs several times, and under qemu-user (arm64) each build takes
# minutes. Divert update-initramfs now; the customize hook builds it once.
hook_essential() {
	local root=$1
	chroot "$root" dpkg-divert --quiet --local --rename \
		--divert /usr/sbin/update-initramfs.k8r-deferred --add /usr/sbin/update-initramfs
	printf '#!/bin/sh\necho "update-initramfs: deferred by mk-vendor-debian.sh" >&2\n' >"$root/usr/sbin/update-initramfs"
	chmod 755 "$root/usr/sbin/update-initramfs"
}

hook_customize() {
	local root=$1 arch=$2
	cp -a "$here/rootfs/common/." "$root/"
	echo k8r-vendor >"$root/etc/hostname"
	printf '127.0.0.1\tlocalhost\n127.0.1.1\tk8r-vendor\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
	chroot "$root" passwd --delete root >/dev/null
	chroot "$root" systemctl enable --quiet systemd-networkd.service k8r-vm-probe.service
	# A small explicit initramfs: MODULES=dep cannot see the target disk from a
	# chroot, and MODULES=most costs minutes under qemu-user and tens of MB.
	# gzip: zstd is not in the image, and qemu-aarch64 here hangs on threads.
	# FSTYPE: the fsck hook cannot resolve LABEL=RASPIROOT in a chroot; name
	# the type so the initramfs checks the root before mounting it, as
	# Debian's Pi images do (fsck.repair=yes on their command line).
	printf 'MODULES=list\nCOMPRESS=gzip\nFSTYPE=ext4\n' >"$root/etc/initramfs-tools/conf.d/k8r-vm.conf"
	printf '%s\n' virtio_pci virtio_blk virtio_net virtio_scsi ext4 crc32c_generic vfat nls_cp437 nls_ascii \
		>"$root/etc/initramfs-tools/modules"
	if [ "$arch" = arm64 ]; then
		# What Debian's raspi image build sets, with the console of QEMU's virt
		# machine (PL011, ttyAMA0) instead of the Pi's mini UART.
		printf '\n# k8r VM vendor image\nROOTPART=LABEL=RASPIROOT\nCONSOLES="ttyAMA0,115200"\n' \
			>>"$root/etc/default/raspi-firmware"
	fi
	rm "$root/usr/sbin/update-initramfs"
	chroot "$root" dpkg-divert --quiet --local --rename \
		--divert /usr/sbin/update-initramfs.k8r-deferred --remove /usr/sbin/update-initramfs
	local t0=$SECONDS
	chroot "$root" update-initramfs -c -k all
	log "update-initramfs (once, after all packages): $((SECONDS - t0)) s"
	[ "$arch" = arm64 ] || populate_firmware_amd64 "$root"
	[ -z "${K8R_VM_DEB_CACHE:-}" ] || prune_deb_cache "$root"
}

# amd64 has no raspi-firmware: lay /boot/firmware out the way it does, with
# fixed names and a Pi-style config.txt naming them.
populate_firmware_amd64() {
	local root=$1 kernel initrd
	kernel=$(find "$root/boot" -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -n1)
	initrd=$(find "$root/boot" -maxdepth 1 -name 'initrd.img-*' | sort -V | tail -n1)
	[ -n "$kernel" ] && [ -n "$initrd" ] || die "no kernel or initrd in $root/boot"
	mkdir -p "$root/boot/firmware"
	cp "$kernel" "$root/boot/firmware/vmlinuz"
	cp "$initrd" "$root/boot/firmware/initrd.img"
	cat >"$root/boot/firmware/config.txt" <<-EOF
		# k8r VM vendor image (amd64), laid out like a Raspberry Pi boot partition.
		# The k8r VM harness reads this file the way the Pi firmware would.
		[all]
		kernel=vmlinuz
		initramfs initrd.img followkernel
		cmdline=cmdline.txt
	EOF
	echo "console=ttyS0,115200 root=LABEL=RASPIROOT rw fsck.repair=yes net.ifnames=0 rootwait" \
		>"$root/boot/firmware/cmdline.txt"
}

# Keep only the .debs this root installed, so the cache does not grow with
# every point release.
prune_deb_cache() {
	local root=$1 keep deb
	keep=$(chroot "$root" dpkg-query -W -f '${Package}_${Version}_${Architecture}.deb\n' | sed 's/:/%3a/')
	for deb in "$root"/var/cache/apt/archives/*.deb; do
		[ -e "$deb" ] || continue
		grep -qxF "$(basename "$deb")" <<<"$keep" || rm -f "$deb"
	done
}

# --- host side -------------------------------------------------------------

enable_binfmt_aarch64() {
	[ "$(uname -m)" != aarch64 ] || return 0
	need update-binfmts
	# mmdebstrap refuses foreign architectures without it ("E: install
	# arch-test for foreign architecture support"); only a Recommends.
	command -v arch-test >/dev/null || die "arch-test not found (install: arch-test; mmdebstrap needs it for arm64)"
	mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
	[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64
	grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 || die "qemu-aarch64 binfmt is not enabled"
}

# sources.list lines for the chroot (see the header for the order of choice).
mirror_lines() {
	local components=$1 uri release
	if [ -n "${K8R_DEBIAN_MIRROR:-}" ]; then
		echo "deb ${K8R_DEBIAN_MIRROR} $SUITE $components"
		return
	fi
	local found=0
	while read -r uri release; do
		case "$release" in "$SUITE" | "$SUITE-updates" | "$SUITE-security") ;; *) continue ;; esac
		echo "deb $uri $release $components"
		found=1
	done < <(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Created-By: Packages' 'Origin: Debian' 2>/dev/null | sort -u -k2,2)
	[ "$found" = 0 ] || return 0
	echo "deb http://deb.debian.org/debian $SUITE $components"
	echo "deb http://deb.debian.org/debian $SUITE-updates $components"
	echo "deb http://deb.debian.org/debian-security $SUITE-security $components"
}

bootstrap() {
	local arch=$1 root=$2 components=main kernel=linux-image-$arch extra=""
	if [ "$arch" = arm64 ]; then
		components="main non-free-firmware" # raspi-firmware lives there
		extra=",raspi-firmware"
	fi
	local sources="$work/sources.list"
	mirror_lines "$components" >"$sources"
	log "apt sources:"
	sed 's/^/    /' "$sources" >&2
	local cache_opts=()
	if [ -n "${K8R_VM_DEB_CACHE:-}" ]; then
		case "$K8R_VM_DEB_CACHE" in *[[:space:]]*) die "K8R_VM_DEB_CACHE must not contain spaces" ;; esac
		mkdir -p "$K8R_VM_DEB_CACHE"
		cache_opts=(
			--skip=essential/unlink
			--setup-hook='mkdir -p "$1"/var/cache/apt/archives/'
			--setup-hook="sync-in $K8R_VM_DEB_CACHE /var/cache/apt/archives/"
		)
	fi
	local module_opts=() dir
	for dir in "${PRUNED_MODULE_DIRS[@]}"; do
		module_opts+=("--dpkgopt=path-exclude=/lib/modules/*/kernel/$dir/*"
			"--dpkgopt=path-exclude=/usr/lib/modules/*/kernel/$dir/*")
	done
	local customize=(--customize-hook="\"$self\" --hook customize \"\$1\" $arch")
	[ -z "${K8R_VM_DEB_CACHE:-}" ] ||
		customize+=(--customize-hook="sync-out /var/cache/apt/archives $K8R_VM_DEB_CACHE")
	run_interruptible mmdebstrap --mode=unshare --variant=minbase --architectures="$arch" \
		--include="systemd-sysv,udev,kmod,dbus,initramfs-tools,e2fsprogs,dosfstools,util-linux,iproute2,procps,netbase,$kernel$extra" \
		--dpkgopt='path-exclude=/usr/share/man/*' \
		--dpkgopt='path-exclude=/usr/share/info/*' \
		--dpkgopt='path-exclude=/usr/share/locale/*' \
		--dpkgopt='path-include=/usr/share/locale/locale.alias' \
		--dpkgopt='path-exclude=/usr/share/doc/*' \
		--dpkgopt='path-include=/usr/share/doc/*/copyright' \
		--dpkgopt='path-exclude=/usr/lib/linux-image-*/*' \
		--dpkgopt='path-include=/usr/lib/linux-image-*/broadcom/*' \
		"${module_opts[@]}" \
		"${cache_opts[@]}" \
		--essential-hook="\"$self\" --hook essential \"\$1\"" \
		"${customize[@]}" \
		"$SUITE" "$root" "$sources"
}

# Move the FAT's content out of the root (it is a mount point there) and
# record what the image holds.
split_root() {
	local root=$1
	mv "$root/boot/firmware" "$work/fat"
	mkdir -m 755 "$root/boot/firmware"
	chroot "$root" dpkg-query -W -f '${Package} ${Version} ${Architecture}\n' >"$out/packages.txt"
	# Not part of a vendor image: mmdebstrap copied them from this host.
	rm -f "$root/etc/resolv.conf"
	log "largest parts of the root:"
	# sed reads all of its input: no SIGPIPE for sort under pipefail.
	du -x -k -d 3 "$root" | sort -rn | sed -n '1,15s/^/    /p' >&2
	find "$work/fat" -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +
}

mib_of_kib() { echo $((($1 + 1023) / 1024)); }

make_disk() {
	local arch=$1 root=$2 img=$3
	local fat_kib root_kib files fat_mib root_mib root_start_mib total_mib root_uuid
	fat_kib=$(du -s --apparent-size -k "$work/fat" | cut -f1)
	root_kib=$(du -s -k "$root" | cut -f1)
	files=$(find "$root" -xdev | wc -l)
	# FAT32 needs >= 65525 clusters (32 MiB at 512-byte clusters); leave room
	# for a kernel update. ext4: content + 15% + 128 MiB (journal, inode
	# tables, room for the first boots' logs); k8r grows it later anyway.
	fat_mib=$(mib_of_kib $((fat_kib * 3 / 2 + 16384)))
	[ "$fat_mib" -ge 64 ] || fat_mib=64
	root_mib=$(mib_of_kib $((root_kib * 115 / 100 + 131072)))
	root_start_mib=$((FAT_START_MIB + fat_mib))
	total_mib=$((root_start_mib + root_mib))
	case "$arch" in amd64) root_uuid=6b387276-766d-4000-8000-000000000001 ;; *) root_uuid=6b387276-766d-4000-8000-000000000002 ;; esac
	log "disk: ${total_mib} MiB (FAT ${fat_mib} MiB for ${fat_kib} KiB, root ${root_mib} MiB for ${root_kib} KiB, $files files)"

	rm -f "$img"
	truncate -s "${total_mib}M" "$img"
	sfdisk --quiet --no-reread --no-tell-kernel "$img" <<-EOF
		label: dos
		label-id: $DISK_ID
		unit: sectors

		start=$((FAT_START_MIB * 2048)), size=$((fat_mib * 2048)), type=c
		start=$((root_start_mib * 2048)), size=$((root_mib * 2048)), type=83
	EOF
	# -s 1: 512-byte clusters, so a 64 MiB FAT32 still has the >= 65525
	# clusters that make every reader (mtools, fsck.fat, Linux) agree it is FAT32.
	mkfs.vfat -F 32 -s 1 -n RASPIFIRM -i "$FAT_VOLID" --offset $((FAT_START_MIB * 2048)) "$img" $((fat_mib * 1024)) >/dev/null
	(cd "$work/fat" && MTOOLS_SKIP_CHECK=1 mcopy -s -m -i "$img@@$((FAT_START_MIB * 1048576))" ./* ::/)
	E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH mke2fs -q -F -t ext4 -b 4096 -L RASPIROOT -U "$root_uuid" \
		-N $((files * 2 + 16384)) \
		-E "offset=$((root_start_mib * 1048576)),hash_seed=$root_uuid,nodiscard" \
		-d "$root" "$img" "$((root_mib * 1024))k"

	cat >"$out/vendor.env" <<-EOF
		ARCH=$arch
		SUITE=$SUITE
		KERNEL_VERSION=$(basename "$(find "$root/boot" -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -n1)" | sed 's/^vmlinuz-//')
		DISK_ID=$DISK_ID
		DISK_BYTES=$((total_mib * 1048576))
		FAT_LABEL=RASPIFIRM
		FAT_VOLID=$FAT_VOLID
		FAT_START_BYTES=$((FAT_START_MIB * 1048576))
		FAT_BYTES=$((fat_mib * 1048576))
		ROOT_LABEL=RASPIROOT
		ROOT_UUID=$root_uuid
		ROOT_START_BYTES=$((root_start_mib * 1048576))
		ROOT_BYTES=$((root_mib * 1048576))
		ROOT_USED_KIB=$root_kib
	EOF
}

# Check the result with tools k8r did not write.
verify() {
	local img=$1 fat_start fat_bytes root_start
	fat_start=$(env_value FAT_START_BYTES)
	fat_bytes=$(env_value FAT_BYTES)
	root_start=$(env_value ROOT_START_BYTES)
	sfdisk --verify "$img" >/dev/null
	dd if="$img" of="$work/fat.check" bs=1M skip=$((fat_start / 1048576)) count=$((fat_bytes / 1048576)) status=none
	fsck.fat -n "$work/fat.check" >/dev/null
	rm -f "$work/fat.check"
	e2fsck -fn "$img?offset=$root_start" >/dev/null 2>&1 || e2fsck -fn "$img?offset=$root_start"
	MTOOLS_SKIP_CHECK=1 mdir -i "$img@@$fat_start" -b ::/ | sed 's|^|    FAT: |' >&2
}

env_value() { sed -n "s/^$1=//p" "$out/vendor.env"; }

# Refuses to delete anything with a mount below it (a mount would mean the
# namespace isolation failed; deleting through it could wipe host files).
cleanup() {
	local status=$? mounts
	[ -n "${work:-}" ] && [ -d "$work" ] || exit "$status"
	mounts=$(findmnt -rn -o TARGET | grep -F "$work" || true)
	if [ -n "$mounts" ]; then
		log "mounts left under $work; not deleting it:"
		printf '%s\n' "$mounts" >&2
		exit 1
	fi
	rm -rf --one-file-system "$work"
	exit "$status"
}

# On SIGTERM/SIGINT/SIGHUP (the test harness's timeout, or its death via
# setpriv --pdeathsig): stop mmdebstrap, then the EXIT trap removes the work
# directory. mmdebstrap finishes its current step on SIGTERM (minutes), so
# it gets 10 s and then SIGKILL; its mounts live in its own namespace and
# vanish with it.
interrupted() {
	trap - TERM INT HUP
	log "interrupted; stopping"
	if [ -n "${child:-}" ]; then
		kill -TERM "$child" 2>/dev/null || true
		local _
		for _ in $(seq 50); do
			kill -0 "$child" 2>/dev/null || break
			sleep 0.2
		done
		kill_tree "$child" KILL
		wait "$child" 2>/dev/null || true
	fi
	exit 143
}

# kill_tree PID SIGNAL: children first, so none is reparented out of reach.
kill_tree() {
	local kid
	for kid in $(ps -o pid= --ppid "$1" 2>/dev/null); do
		kill_tree "$kid" "$2"
	done
	kill -"$2" "$1" 2>/dev/null || true
}

# Run a long command in the background and wait for it, so the traps above
# run at once (bash defers traps until a foreground command finishes).
run_interruptible() {
	"$@" &
	child=$!
	local status=0
	wait "$child" || status=$?
	child=""
	return "$status"
}

main() {
	[ $# -eq 2 ] || die "usage: $0 amd64|arm64 OUTDIR"
	local arch=$1
	out=$2
	case "$arch" in amd64 | arm64) ;; *) die "ARCH must be amd64 or arm64, not $arch" ;; esac
	[ "$(id -u)" = 0 ] || die "must run as root (mmdebstrap --mode=unshare as root)"
	need mmdebstrap ps mke2fs e2fsck mkfs.vfat fsck.fat mcopy mdir sfdisk findmnt
	mkdir -p "$out"
	out=$(cd "$out" && pwd)
	: >"$out/timings.txt"
	work="$out/.work"
	trap cleanup EXIT
	trap interrupted TERM INT HUP
	rm -rf --one-file-system "$work"
	mkdir -p "$work"

	phase preflight
	[ "$arch" = amd64 ] || enable_binfmt_aarch64
	phase bootstrap
	bootstrap "$arch" "$work/root"
	phase layout
	split_root "$work/root"
	make_disk "$arch" "$work/root" "$out/vendor.img"
	phase verify
	verify "$out/vendor.img"
	phase end
	awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%-12s %7.1f s\n", "total", b - a }' |
		tee -a "$out/timings.txt" >&2
	log "wrote $out/vendor.img ($(du -h --apparent-size "$out/vendor.img" | cut -f1) apparent, $(du -h "$out/vendor.img" | cut -f1) allocated)"
}

if [ "${1:-}" = --hook ]; then
	case "${2:-}" in
	essential) hook_essential "$3" ;;
	customize) hook_customize "$3" "$4" ;;
	*) die "unknown hook ${2:-}" ;;
	esac
	exit 0
fi
main "$@"

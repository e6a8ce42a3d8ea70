#!/usr/bin/env bash
# k8r-style.sh VENDOR NODE COMPONENTS WORK: the baseline of the builder
# benchmark — what the bash k8r's build.sh does to make image.img.xz, minus
# docker: copy the vendor image, append 1510 MB, grow the root partition and
# filesystem, loop-mount it, copy the payload in, unmount, dd the root
# partition out, e2fsck, shrink to minimum + 50 MB, xz -T0. Needs root.
set -euo pipefail
vendor=$1 node=$2 comps=$3 work=$4
rm -rf -- "$work"
mkdir -p -- "$work/mnt"
img=$work/bootable_image.img
cp -- "$vendor" "$img"
dd if=/dev/zero bs=1M count=1510 status=none >>"$img"
echo ", +" | sfdisk -q -N 2 "$img"
read -r off size < <(sfdisk -J "$img" | python3 -c 'import json,sys; p=json.load(sys.stdin)["partitiontable"]["partitions"][1]; print(p["start"]*512, p["size"]*512)')
loop=$(losetup --find --show --offset "$off" --sizelimit "$size" "$img")
cleanup() { umount "$work/mnt" 2>/dev/null || true; losetup -d "$loop" 2>/dev/null || true; }
trap cleanup EXIT
e2fsck -fy "$loop" >/dev/null || true
resize2fs "$loop" >/dev/null 2>&1
mount "$loop" "$work/mnt"
install -D -m 0755 "$node" "$work/mnt/usr/bin/k8r-node"
mkdir -p "$work/mnt/usr/local/bin" "$work/mnt/usr/local/sbin" "$work/mnt/opt/cni/bin"
for f in kubeadm kubelet kubectl; do install -m 0755 "$comps/$f" "$work/mnt/usr/local/bin/"; done
tar -xzf "$comps"/containerd-static-*.tar.gz -C "$work/mnt/usr/local"
tar -xzf "$comps"/crictl-*.tar.gz -C "$work/mnt/usr/local/bin"
tar -xzf "$comps"/cni-plugins-*.tgz -C "$work/mnt/opt/cni/bin"
install -m 0755 "$comps"/runc.* "$work/mnt/usr/local/sbin/runc"
sync
cleanup
trap - EXIT
dd if="$img" of="$work/image.img" bs=4M iflag=skip_bytes,count_bytes skip="$off" count="$size" status=none
e2fsck -fy "$work/image.img" >/dev/null || true
min=$(resize2fs -P "$work/image.img" 2>/dev/null | awk -F': ' '/Estimated minimum size/ {print $2}')
resize2fs "$work/image.img" $((min + 12800)) >/dev/null 2>&1
xz -T0 -6 -c "$work/image.img" >"$work/image.img.xz"

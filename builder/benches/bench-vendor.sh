#!/usr/bin/env bash
# bench-vendor.sh OUT_DIR BULK_MIB: OUT_DIR/bench-vendor.img, the amd64-like
# vendor layout (tests/fixtures/amd64-like.sh) with BULK_MIB of real files
# from this host's /usr in the root, so the builder benchmark compresses and
# copies something like a real distribution rather than a toy.
set -euo pipefail
OUT=$1
BULK=${2:-512}
FIX=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../../tests/fixtures" && pwd)
# shellcheck source=../../tests/fixtures/lib.sh
source "$FIX/lib.sh"

readonly KVER=6.1.0-28-amd64
readonly BOOT_START=2048 BOOT_SECTORS=131072 # 64 MiB
readonly ROOT_START=133120
ROOT_SECTORS=$(( (BULK * 13 / 10 + 160) * 2048 ))

fixture_begin bench-vendor "$OUT"
debian_boot "$WORK/boot" x86_64 "$KVER"
debian_root "$WORK/root" x86_64 "$KVER"
# Real content: the host's libraries and shared data, up to BULK MiB.
mkdir -p "$WORK/root/usr/share/bench"
(
	cd /usr
	find lib share -type f -size +32k 2>/dev/null | sort | head -n 8000 |
		while read -r f; do
			printf '%s\0' "$f"
		done | tar --null -T - -cf - 2>/dev/null | head -c "$((BULK << 20))" | tar -xf - -C "$WORK/root/usr/share/bench" 2>/dev/null || true
)
disk_new $((ROOT_START + ROOT_SECTORS))
partition <<EOT
label: dos
label-id: 0x2c5e9b71
unit: sectors
sector-size: 512

start=$BOOT_START, size=$BOOT_SECTORS, type=c, bootable
start=$ROOT_START, size=$ROOT_SECTORS, type=83
EOT
fat_format "$BOOT_START" "$BOOT_SECTORS" RASPIFIRM 0x6E2B0D49 32
fat_populate "$BOOT_START" "$WORK/boot"
ext4_build "$ROOT_START" "$ROOT_SECTORS" RASPIROOT 2d8c4f1a-6e3b-4a9d-8f07-c5b1e9a3d643 "$WORK/root"
fixture_end

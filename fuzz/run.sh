#!/usr/bin/env bash
# Run k8r's fuzz targets (fuzz/README.md). CI runs the short default:
#   fuzz/run.sh                       every target for 15 s (about 3 minutes)
#   fuzz/run.sh --seconds 3600 tar    one target for an hour
#   fuzz/run.sh --runs 1000000        every target for 1 M executions
# New inputs go to fuzz/corpus/<target>/ (not committed), crashes to
# fuzz/artifacts/<target>/. Prints executions and crashes per target and
# exits non-zero if any target crashed.
set -euo pipefail
cd "$(dirname "$0")"

seconds=15 runs=0
targets=()
while [ $# -gt 0 ]; do
	case $1 in
	--seconds) seconds=$2; shift 2 ;;
	--runs) runs=$2 seconds=0; shift 2 ;;
	-h | --help) sed -n '2,9p' "$0"; exit 0 ;;
	*) targets+=("$1"); shift ;;
	esac
done
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(sed -n 's/^name = "\(.*\)"/\1/p' Cargo.toml | grep -v '^k8r-fuzz$')

# cargo-fuzz needs nightly for -Zsanitizer. Use the nightly toolchain when
# rustup has (or can fetch) it; otherwise the stable one with
# RUSTC_BOOTSTRAP=1, which unlocks the same flags (see README.md).
toolchain=()
if rustup run nightly rustc --version >/dev/null 2>&1 ||
	rustup toolchain install nightly --profile minimal >/dev/null 2>&1; then
	toolchain=(+nightly)
else
	echo "fuzz: no nightly toolchain; using stable with RUSTC_BOOTSTRAP=1"
	export RUSTC_BOOTSTRAP=1
fi

# cargo fuzz has no --locked: fail here rather than build against versions
# nobody reviewed when Cargo.lock no longer matches the manifests.
cargo "${toolchain[@]}" metadata --locked --format-version 1 >/dev/null
cargo "${toolchain[@]}" fuzz build -O
summary=()
failed=0
for t in "${targets[@]}"; do
	mkdir -p "corpus/$t" "artifacts/$t"
	# -malloc_limit_mb: one allocation over 256 MiB is a finding (an
	# allocation sized by the input), not just over the RSS limit.
	args=(-artifact_prefix="artifacts/$t/" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=256 -max_len=32768)
	[ -f "dict/$t.dict" ] && args+=(-dict="dict/$t.dict")
	if [ "$runs" -gt 0 ]; then args+=(-runs="$runs"); else args+=(-max_total_time="$seconds"); fi
	log="artifacts/$t/last-run.log"
	status=0
	cargo "${toolchain[@]}" fuzz run -O "$t" "corpus/$t" "seeds/$t" -- "${args[@]}" >"$log" 2>&1 || status=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	crashes=$(find "artifacts/$t" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l)
	if [ "$status" -ne 0 ] || [ "$crashes" -gt 0 ]; then
		failed=1
		echo "fuzz: $t FAILED (exit $status); log: fuzz/$log"
		grep -E 'ERROR|panicked|SUMMARY' "$log" | head -5 || true
	fi
	summary+=("$(printf '%-13s %12s executions  %s crash files  corpus %s' "$t" "${execs:-?}" "$crashes" "$(find "corpus/$t" -type f | wc -l)")")
done
printf '%s\n' "${summary[@]}"
exit $failed

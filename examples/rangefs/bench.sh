#!/usr/bin/env bash
# fio through rangefs, once per invalidate lock: the same jobs on a mount with --lock range,
# --lock rwsem and --lock unlocked, and a table of IOPS with the ratios.
#
#   examples/rangefs/bench.sh            (RUNTIME=30 seconds per job; RAMP=2)
#
# The jobs (one mem device of 1 GiB, 100 us per store IO, 16 daemon threads, direct IO):
#   1. 8 jobs of 4 KiB random read/write, 50 % reads, each on its own 8 MiB region of one
#      shared 64 MiB file (the shape of Bueso's shared-file fio run).
#   2. The same, plus one job punching 4 KiB holes anywhere in the file (fio's falloc engine,
#      rw=randtrim); its own rate is shown, so that punches are seen not to starve.
#   3. 8 jobs of 4 KiB random reads of an 8 MiB file held entirely in the daemon's cache.
#
# Needs root (or fusermount3), /dev/fuse, fio and jq (apt-get install fio jq fuse3).
# Environment: RANGEFS (the binary; default: built with cargo --release), RUNTIME, RAMP,
# LOCKS (default "range rwsem unlocked"), KEEP_LOGS=1 (keep fio's JSON output).
set -euo pipefail

runtime=${RUNTIME:-30}
ramp=${RAMP:-2}
locks=${LOCKS:-range rwsem unlocked}
for tool in fio jq mountpoint; do
  command -v "$tool" >/dev/null || { echo "bench.sh: $tool is needed" >&2; exit 1; }
done
cd "$(dirname "$0")/../.."
if [[ -z ${RANGEFS:-} ]]; then
  cargo build --release -q -p rangefs
  RANGEFS=$PWD/target/release/rangefs
fi

work=$(mktemp -d /tmp/rangefs-bench.XXXXXX)
mnt=$work/mnt
mkdir -p "$mnt"
daemon=
cleanup() {
  if mountpoint -q "$mnt" 2>/dev/null; then umount "$mnt" 2>/dev/null || umount -l "$mnt" || true; fi
  if [[ -n $daemon ]] && kill -0 "$daemon" 2>/dev/null; then kill "$daemon" || true; wait "$daemon" || true; fi
  if [[ ${KEEP_LOGS:-0} == 1 ]]; then echo "fio output kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# The job files. FILE, RUNTIME and RAMP are expanded by fio from the environment.
cat >"$work/layout.fio" <<'JOBS'
[layout]
filename=${FILE}
rw=write
bs=1m
size=${SIZE}
ioengine=psync
direct=1
JOBS
cat >"$work/randrw.fio" <<'JOBS'
[global]
filename=${FILE}
ioengine=psync
direct=1
bs=4k
time_based=1
runtime=${RUNTIME}
ramp_time=${RAMP}
group_reporting=1

[randrw]
rw=randrw
rwmixread=50
size=8m
offset_increment=8m
numjobs=8
JOBS
{ cat "$work/randrw.fio"; cat <<'JOBS'

[punch]
new_group
ioengine=falloc
rw=randtrim
offset=0
size=64m
numjobs=1
JOBS
} >"$work/randrw-punch.fio"
cat >"$work/cached.fio" <<'JOBS'
[global]
filename=${FILE}
ioengine=psync
direct=1
bs=4k
size=8m
time_based=1
runtime=${RUNTIME}
ramp_time=${RAMP}
group_reporting=1

[cached]
rw=randread
numjobs=8
JOBS

# fio_iops JSON GROUP KIND: the IOPS of KIND (read, write, trim) in job group GROUP.
fio_iops() { jq -r --arg g "$2" --arg k "$3" '.jobs[] | select(.groupid == ($g | tonumber)) | .[$k].iops' "$1"; }

declare -A result
for lock in $locks; do
  "$RANGEFS" "$mnt" --lock "$lock" --latency-us 100 --capacity 1G --threads 16 \
    2>"$work/rangefs-$lock.log" &
  daemon=$!
  for _ in $(seq 100); do mountpoint -q "$mnt" && break; sleep 0.1; done
  mountpoint -q "$mnt" || { cat "$work/rangefs-$lock.log" >&2; exit 1; }
  export RUNTIME=$runtime RAMP=$ramp

  FILE=$mnt/job1 SIZE=64m fio --output=/dev/null "$work/layout.fio"
  FILE=$mnt/job1 fio --output-format=json --output="$work/$lock-1.json" "$work/randrw.fio"
  j=$work/$lock-1.json
  result[$lock,1]=$(awk -v r="$(fio_iops "$j" 0 read)" -v w="$(fio_iops "$j" 0 write)" 'BEGIN { print r + w }')

  FILE=$mnt/job2 SIZE=64m fio --output=/dev/null "$work/layout.fio"
  FILE=$mnt/job2 fio --output-format=json --output="$work/$lock-2.json" "$work/randrw-punch.fio"
  j=$work/$lock-2.json
  result[$lock,2]=$(awk -v r="$(fio_iops "$j" 0 read)" -v w="$(fio_iops "$j" 0 write)" 'BEGIN { print r + w }')
  result[$lock,2p]=$(fio_iops "$j" 1 trim)

  FILE=$mnt/job3 SIZE=8m fio --output=/dev/null "$work/layout.fio"
  cat "$mnt/job3" >/dev/null # fill the daemon's cache
  FILE=$mnt/job3 fio --output-format=json --output="$work/$lock-3.json" "$work/cached.fio"
  result[$lock,3]=$(fio_iops "$work/$lock-3.json" 0 read)

  umount "$mnt"
  wait "$daemon"
  daemon=
done

printf '\nrangefs, fio %s, %s s per job, %s CPUs, Linux %s\n\n' \
  "$(fio --version)" "$runtime" "$(nproc)" "$(uname -r)"
row() { # row LABEL KEY
  local label=$1 key=$2 line
  line=$(printf '| %-38s' "$label")
  for lock in $locks; do line+=$(printf ' | %10.0f' "${result[$lock,$key]:-0}"); done
  for other in rwsem unlocked; do
    if [[ -n ${result[range,$key]:-} && -n ${result[$other,$key]:-} ]]; then
      line+=$(awk -v a="${result[range,$key]}" -v b="${result[$other,$key]}" \
        'BEGIN { if (b > 0) printf " | %13.2fx", a / b; else printf " | %14s", "-" }')
    fi
  done
  echo "$line |"
}
header=$(printf '| %-38s' "job")
for lock in $locks; do header+=$(printf ' | %10s' "$lock"); done
[[ " $locks " == *" range "* && " $locks " == *" rwsem "* ]] && header+=$(printf ' | %14s' "range/rwsem")
[[ " $locks " == *" range "* && " $locks " == *" unlocked "* ]] && header+=$(printf ' | %14s' "range/unlocked")
echo "$header |"
echo "$header |" | sed 's/[^|]/-/g'
row "1. randrw, 8 jobs (IOPS)" 1
row "2. randrw + punch: the 8 jobs (IOPS)" 2
row "2. randrw + punch: punches/s" 2p
row "3. cached randread, 8 jobs (IOPS)" 3

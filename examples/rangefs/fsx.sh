#!/usr/bin/env bash
# Runs xfstests' fsx through rangefs: both backings, direct IO and the kernel cache, and in
# each, four fsx processes at once on different files, two with mmap reads and writes and
# two without. Punch hole, zero range, fallocate (with and without KEEP_SIZE) and truncate
# are on in every run, and the script fails if fsx switched any of them off at start-up.
#
#   examples/rangefs/fsx.sh /path/to/fsx [OPS]       (OPS per process, default 20000)
#
# fsx is not part of this repository: build it from xfstests' ltp/fsx.c (see the README,
# "A real filesystem"). Environment: RANGEFS (the binary; default: built with cargo --release),
# LOCK (--lock, default the crate's), FSX_ARGS (more fsx options), KEEP_LOGS=1 (keep the work
# directory). Needs root (or fusermount3) and /dev/fuse.
set -euo pipefail

fsx=${1:?usage: $0 /path/to/fsx [OPS]}
ops=${2:-20000}
[[ -x $fsx ]] || { echo "fsx.sh: $fsx is not an executable" >&2; exit 1; }
fsx=$(realpath "$fsx")
cd "$(dirname "$0")/../.."
if [[ -z ${RANGEFS:-} ]]; then
  cargo build --release -q -p rangefs
  RANGEFS=$PWD/target/release/rangefs
fi
lock_args=()
[[ -n ${LOCK:-} ]] && lock_args=(--lock "$LOCK")

work=$(mktemp -d /tmp/rangefs-fsx.XXXXXX)
mnt=$work/mnt
daemon=
cleanup() {
  if mountpoint -q "$mnt" 2>/dev/null; then umount "$mnt" 2>/dev/null || umount -l "$mnt" || true; fi
  if [[ -n $daemon ]] && kill -0 "$daemon" 2>/dev/null; then kill "$daemon" || true; wait "$daemon" || true; fi
  if [[ ${KEEP_LOGS:-0} == 1 ]]; then echo "logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

failed=0
printf '%-6s %-14s %-4s %-9s %8s  %s\n' backing caching proc mmap ops result
for backing in mem file; do
  for caching in direct kernel; do
    run=$work/$backing-$caching
    mkdir -p "$run" "$mnt"
    args=("$mnt" --backing "$backing" "${lock_args[@]}")
    if [[ $backing == file ]]; then mkdir -p "$run/store"; args+=(--store "$run/store"); fi
    [[ $caching == kernel ]] && args+=(--kernel-cache)
    "$RANGEFS" "${args[@]}" 2>"$run/rangefs.log" &
    daemon=$!
    for _ in $(seq 100); do mountpoint -q "$mnt" && break; sleep 0.1; done
    mountpoint -q "$mnt" || { cat "$run/rangefs.log" >&2; echo "fsx.sh: rangefs did not mount" >&2; exit 1; }

    pids=()
    for proc in 1 2 3 4; do
      mmap=on
      extra=()
      if (( proc > 2 )); then mmap=off; extra=(-R -W); fi
      # Each process: its own file, seed and log directory. No -q: the start-up lines say
      # which operations fsx switched off.
      # shellcheck disable=SC2086
      "$fsx" -N "$ops" -S "$proc" -P "$run" "${extra[@]}" ${FSX_ARGS:-} "$mnt/fsx$proc" \
        >"$run/fsx$proc.out" 2>&1 &
      pids+=($!)
    done
    for proc in 1 2 3 4; do
      status=0
      wait "${pids[proc - 1]}" || status=$?
      out=$run/fsx$proc.out
      mmap=on; (( proc > 2 )) && mmap=off
      result=pass
      done_ops=$(sed -n 's/^All \([0-9]*\) operations completed A-OK!$/\1/p' "$out")
      if (( status != 0 )) || [[ -z $done_ops ]]; then result="FAIL (exit $status, see $out)"; fi
      # fsx switches off, with one line at start-up, any fallocate mode the file system
      # refuses; these must stay on.
      # (The punch hole line reads "FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,".)
      if grep -qE 'does not support fallocate mode (0|FALLOC_FL_KEEP_SIZE|FALLOC_FL_PUNCH_HOLE[^,]*|FALLOC_FL_ZERO_RANGE),' "$out"; then
        result="FAIL (an operation was switched off)"
      fi
      [[ $result == pass ]] || failed=1
      printf '%-6s %-14s %-4s %-9s %8s  %s\n' "$backing" "$caching" "$proc" "$mmap" "${done_ops:-?}" "$result"
    done
    grep -h 'disabling' "$run"/fsx1.out | sed 's/^/    fsx: /' || true

    umount "$mnt"
    status=0
    wait "$daemon" || status=$?
    daemon=
    if (( status != 0 )); then
      echo "fsx.sh: rangefs exited $status after unmount" >&2; cat "$run/rangefs.log" >&2; failed=1
    fi
  done
done
exit $failed

#!/usr/bin/env bash
# Shows that each loom model can fail: breaks the property it checks in a scratch copy of the
# crate (one small edit each) and expects that model to fail.
#   bash loom-tests/mutants.sh            # all mutants
#   bash loom-tests/mutants.sh fifo       # the ones whose name contains "fifo"
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export CARGO_TARGET_DIR="$root/target/mutants" RUSTFLAGS="--cfg loom"

caught=0 missed=0
# mutant NAME FILE PERL-SUBSTITUTION MODEL [TEST-FILE]: apply the edit, expect MODEL (in
# loom-tests/tests/TEST-FILE.rs, default lock) to fail.
mutant() {
  local name=$1 file=$2 subst=$3 model=$4 test=${5:-lock}
  [[ -n "$only" && "$name" != *"$only"* ]] && return 0
  rm -rf "$scratch/crate" && mkdir "$scratch/crate"
  (cd "$root" && git ls-files -z | xargs -0 cp --parents -t "$scratch/crate")
  local before
  before=$(sha1sum "$scratch/crate/$file")
  perl -0pi -e "$subst" "$scratch/crate/$file"
  if [[ "$before" == "$(sha1sum "$scratch/crate/$file")" ]]; then
    echo "mutant $name: the edit did not apply (the code moved?)"; exit 2
  fi
  if ! (cd "$scratch/crate" && cargo build -q -p loom-tests --release --tests >"$scratch/out" 2>&1); then
    echo "mutant $name does not compile:"; tail -20 "$scratch/out"; exit 2
  fi
  if (cd "$scratch/crate" && timeout 600 cargo test -q -p loom-tests --release --test "$test" "$model" >"$scratch/out" 2>&1); then
    echo "MISSED  $name: $model still passes"; missed=$((missed + 1))
  else
    local why
    cp "$scratch/out" "$root/target/mutants/last-$name.log"
    if why=$(grep -m1 -oE "deadlock|Causality violation[^.]*|stale data[^\n]{0,40}|assertion [^\n]{0,50}" "$scratch/out"); then
      echo "caught  $name: $model fails ($why)"; caught=$((caught + 1))
    else
      echo "MISSED  $name: $model failed for another reason (target/mutants/last-$name.log)"; missed=$((missed + 1))
    fi
  fi
}
only=${1:-}

mutant readers-conflict src/lock/queue.rs \
  's/self == Mode::Write \|\| other == Mode::Write/true/' \
  two_readers_share_an_overlapping_range
mutant writer-ignores-readers src/lock/queue.rs \
  's/blocking \+= usize::from\(mode.conflicts\(r.mode\)\)/blocking += usize::from(r.mode == Mode::Write)/' \
  a_writer_excludes_overlapping_readers_and_writers
mutant disjoint-conflict src/lock/queue.rs \
  's/for_each_overlap\(start, last, \|r\| \{\n(\s*)blocking/for_each_overlap(0, u64::MAX, |r| {\n$1blocking/' \
  disjoint_writers_both_proceed
mutant fifo-reader-steals src/lock/queue.rs \
  's/blocking \+= usize::from\(mode.conflicts\(r.mode\)\)/blocking += usize::from(mode.conflicts(r.mode) && (mode == Mode::Write || r.blocking == 0))/' \
  three_conflicting_requests_are_granted_in_arrival_order
mutant release-wakes-nobody src/lock/fast.rs \
  's/if woke \{\n(\s*)self.parker.wake\(self.key\(\)\);/if false {\n$1self.parker.wake(self.key());/' \
  a_release_wakes_the_waiter_it_unblocks_and_no_other
mutant release-grants-every-overlap src/lock/queue.rs \
  's/r.blocking -= 1;/r.blocking = 0;/' \
  a_release_wakes_the_waiter_it_unblocks_and_no_other
mutant timeout-keeps-its-count src/lock/queue.rs \
  's/(if gone.blocking > 0 \{\n\s*self.waiting -= 1;)/$1 return false;/' \
  a_timeout_racing_a_release_strands_nobody
mutant downgrade-wakes-nobody src/lock/queue.rs \
  's/self.unblock\(start, last, \|r\| r.prio > prio && r.mode == Mode::Read\)/{ let _ = prio; false }/' \
  downgrade_lets_a_queued_reader_in
mutant claim-without-generation src/lock/fast.rs \
  's/\(word & !TAG\).wrapping_add\(GENERATION\) \| CLAIMED/(word \& !TAG) | CLAIMED/' \
  a_lone_holder_racing_the_request_that_moves_it
mutant lone-release-ignores-move src/lock/fast.rs \
  's/(fn leave_moved\(&self\) \{\n)/$1        if true { return; }\n/' \
  a_lone_holder_racing_the_request_that_moves_it
mutant claim-although-passed src/lock/queue.rs \
  's/(let request = self.tree.get_mut\(id\);\n\s*)if request.blocking == 0 \{/$1if true {/' \
  barging_passes_a_woken_waiter_without_losing_it
mutant pass-without-counting src/lock/queue.rs \
  's/(if mode.conflicts\(r.mode\)) \{\n(\s*)r.blocking \+= 1;/$1 \&\& r.blocking > 0 {\n$2r.blocking += 1;/' \
  barging_passes_a_woken_waiter_without_losing_it
mutant fill-without-lock src/mm/backend.rs \
  's/fn lock_shared\(&self, pages: RangeInclusive<u64>\) -> RangeReadGuard<.._> \{\n(\s*)self.read\(pages\)/fn lock_shared(&self, pages: RangeInclusive<u64>) -> RangeReadGuard<\x27_> {\n$1let _ = pages; self.read(0..0)/; s/self.try_read\(pages\)/{ let _ = pages; self.try_read(0..0) }/' \
  a_fault_racing_a_punch_never_sees_a_reused_block_with_the_range_lock mm

echo "$caught caught, $missed missed"
[[ $missed == 0 ]]

#!/usr/bin/env bash
# Shows that each loom model can fail: breaks the property it checks in a scratch copy of the
# crate (one small edit each) and expects that model to fail.
#   bash loom-tests/mutants.sh            # all mutants
#   bash loom-tests/mutants.sh fifo       # the ones whose name contains "fifo"
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export CARGO_TARGET_DIR="$root/target/mutants" RUSTFLAGS="--cfg rangelock_loom"

caught=0 missed=0
# mutant NAME FILE PERL-SUBSTITUTION MODEL [TEST-FILE]: apply the edit, expect MODEL (in
# loom-tests/tests/TEST-FILE.rs, default lock) to fail. The models of the diagnostics
# (deadlock, stats) build with their feature.
mutant() {
  local name=$1 file=$2 subst=$3 model=$4 test=${5:-lock}
  [[ -n "$only" && "$name" != *"$only"* ]] && return 0
  local features=()
  case $test in
    deadlock) features=(--features deadlock_detection) ;;
    stats) features=(--features stats) ;;
  esac
  rm -rf "$scratch/crate" && mkdir "$scratch/crate"
  (cd "$root" && git ls-files -z | xargs -0 cp --parents -t "$scratch/crate")
  local before
  before=$(sha1sum "$scratch/crate/$file")
  perl -0pi -e "$subst" "$scratch/crate/$file"
  if [[ "$before" == "$(sha1sum "$scratch/crate/$file")" ]]; then
    echo "mutant $name: the edit did not apply (the code moved?)"; exit 2
  fi
  if ! (cd "$scratch/crate" && cargo build -q -p loom-tests --release --tests ${features[@]+"${features[@]}"} >"$scratch/out" 2>&1); then
    echo "mutant $name does not compile:"; tail -20 "$scratch/out"; exit 2
  fi
  if (cd "$scratch/crate" && timeout 1200 cargo test -q -p loom-tests --release ${features[@]+"${features[@]}"} --test "$test" "$model" >"$scratch/out" 2>&1); then
    echo "MISSED  $name: $model still passes"; missed=$((missed + 1))
  else
    local why
    cp "$scratch/out" "$root/target/mutants/last-$name.log"
    if why=$(grep -m1 -oE "deadlock; threads|a false cycle|Causality violation[^.]*|stale data[^\n]{0,40}|assertion [^\n]{0,50}" "$scratch/out"); then
      echo "caught  $name: $model fails ($why)"; caught=$((caught + 1))
    else
      echo "MISSED  $name: $model failed for another reason (target/mutants/last-$name.log)"; missed=$((missed + 1))
    fi
  fi
}
only=${1:-}

mutant readers-conflict src/lock/wait.rs \
  's/self == Mode::Write \|\| other == Mode::Write/true/' \
  two_readers_share_an_overlapping_range
mutant writer-ignores-slot-readers src/lock/fast.rs \
  's/mode.conflicts\(Self::slot_mode\(word, i\)\)/(mode == Mode::Write \&\& Self::slot_mode(word, i) == Mode::Write)/' \
  a_writer_excludes_overlapping_readers_and_writers
mutant disjoint-conflict src/tree.rs \
  's/if e.last >= start && blocks\(&e.val\) \{\n(\s*)count \+= 1;\n(\s*)if first_only/if blocks(\&e.val) {\n${1}count += 1;\n${2}if first_only/' \
  disjoint_writers_both_proceed
mutant fifo-reader-steals src/lock/queue.rs \
  's/fn blocks\(mode: Mode, entry: &Entry\) -> bool \{\n(\s*)mode.conflicts\(entry.mode\(\)\)/fn blocks(mode: Mode, entry: \&Entry) -> bool {\n${1}mode.conflicts(entry.mode()) \&\& !(mode == Mode::Read \&\& entry.node.is_some())/' \
  three_conflicting_requests_are_granted_in_arrival_order
mutant release-wakes-nobody src/lock/queue.rs \
  's/(entry.node = None;\n\s*\}\n\s*)wake.link\(node, false\);/${1}let _ = node;/' \
  a_release_wakes_the_waiter_it_unblocks_and_no_other
mutant release-grants-every-overlap src/lock/queue.rs \
  's/let count = node.blocking\(\);\n(\s*)debug_assert!\(count > 0/let count = node.blocking().min(1);\n$1debug_assert!(count > 0/' \
  a_release_wakes_the_waiter_it_unblocks_and_no_other
mutant timeout-keeps-its-count src/lock/queue.rs \
  's/(self.waiting -= 1;\n\s*\}\n\s*)self.unblock\(start, last, entry, wake\);/${1}if !was_waiting { self.unblock(start, last, entry, wake); }/' \
  a_timeout_racing_a_release_strands_nobody
mutant downgrade-wakes-nobody src/lock/queue.rs \
  's/self.unblock_where\(part.start, part.last, was, \|e\| e.mode\(\) == Mode::Read, wake\);/let _ = was;/' \
  downgrade_lets_a_queued_reader_in
mutant release-ignores-move src/lock/fast.rs \
  's/if word & TREE != 0 \{\n(\s*)return self.release_moved\(i, start, last\);/if false {\n$1return self.release_moved(i, start, last);/' \
  a_lone_holder_racing_the_request_that_moves_it
mutant release-skips-outside-waiters src/lock/queue.rs \
  's/if self.outside.len\(\) != 0 \{/if false {/' \
  a_barging_future_waiting_outside_is_woken_by_the_release future
mutant slot-release-ignores-parked src/lock/fast.rs \
  's/Ok\(_\) if word & PARKED != 0 => return self.notify_outside\(start, last\),\n\s*Ok\(_\) => return,/Ok(_) => return,/' \
  a_barging_future_waiting_outside_is_woken_by_the_release future
mutant fast-release-ignores-parked src/lock/fast.rs \
  's/if word & \(TREE \| LOCKED \| PARKED\) != 0/if word \& (TREE | LOCKED) != 0/' \
  a_barging_future_waiting_outside_is_woken_by_the_release future
mutant demote-drops-parked src/lock/fast.rs \
  's/let mut new = word & \(ALL_OCCUPIED \| ALL_WRITERS \| OUTSIDE_BITS\);/let mut new = word \& (ALL_OCCUPIED | ALL_WRITERS);/' \
  a_barging_future_is_woken_after_the_lock_returns_to_the_slots future
mutant dropped-future-keeps-its-grant src/lock/future.rs \
  's/if self.lock.give_up\(&self.node\) \{/if self.lock.give_up(\&self.node) \&\& false {/' \
  a_pending_future_dropped_while_a_release_grants_it future
mutant stale-waker src/lock/future.rs \
  's/left_over = self.node.set_waker\(waker\);\n(\s*)\}\n(\s*)drop\(left_over\);\n(\s*)true/left_over = Some(waker);\n$1}\n${2}drop(left_over);\n${3}true/' \
  a_waker_replaced_while_a_grant_races future
mutant slot-release-relaxed src/lock/fast.rs \
  's/word & !\(occupied\(i\) \| writer\(i\)\),\n(\s*)Ordering::Release,/word \& !(occupied(i) | writer(i)),\n$1Ordering::Relaxed,/' \
  an_owned_guard_dropped_on_another_thread future
mutant set-checks-its-first-range-only src/lock/queue.rs \
  's/let mut blocking = 0;\n(\s*)for part in parts \{/let mut blocking = 0;\n${1}for part in \&parts[..1] {/' \
  a_set_request_that_partly_overlaps_two_holders future
mutant notified-drop-keeps-notification src/lock/queue.rs \
  's/for part in parts \{\n(\s*)self.notify_outside/for part in \&parts[..0] {\n$1self.notify_outside/' \
  a_notified_barging_future_dropped_passes_its_notification_on future
mutant cover-ignores-range src/lock/wait.rs \
  's/l.mode == Mode::Write && l.start <= n.start && n.last <= l.last/l.mode == Mode::Write/' \
  a_notified_future_covers_only_requests_inside_its_range future
mutant fill-without-lock src/mm/backend.rs \
  's/fn lock_shared\(&self, pages: RangeInclusive<u64>\) -> RangeReadGuard<.._> \{\n(\s*)self.read\(pages\)/fn lock_shared(&self, pages: RangeInclusive<u64>) -> RangeReadGuard<\x27_> {\n$1let _ = pages; self.read(0..0)/; s/self.try_read\(pages\)/{ let _ = pages; self.try_read(0..0) }/' \
  a_fault_racing_a_punch_never_sees_a_reused_block_with_the_range_lock mm

mutant writeback-unserialised src/mm/writeback.rs \
  's/let _writeback = page.writeback\(\);/let _writeback = ();/' \
  two_syncs_and_a_mapped_write_leave_the_newest_version_in_the_store mm

mutant read-fills-without-lock src/mm/read.rs \
  's/let held = self.lock_shared\(first..=fill_end\);/let held = self.lock_shared(super::LAST_PAGE..=super::LAST_PAGE);/' \
  a_read_hit_racing_a_punch_never_sees_a_reused_block mm

mutant hit-ignores-truncate src/mm/read.rs \
  's/(fn read_valid\(&self, seq: u64\) -> bool \{\n\s*)self.0.load\(Ordering::Acquire\) == seq/${1}let _ = seq; true/' \
  a_read_hit_racing_a_shrinking_truncate_returns_one_length_and_its_bytes mm

mutant truncate-end-relaxed src/mm/read.rs \
  's/self.0 .0.fetch_add\(1, Ordering::Release\)/self.0 .0.fetch_add(1, Ordering::Relaxed)/' \
  a_read_hit_racing_a_shrinking_truncate_returns_one_length_and_its_bytes mm

mutant write-fault-reserves-unlocked src/mm/mapping.rs \
  's/(\n(\s*)if let \(Access::Read, Some\(page\)\) = \(access, &cached\) \{)/\n${2}if access == Access::Write { self.backing.reserve(\&mut core::iter::once(index))?; }$1/' \
  a_write_fault_racing_a_truncate_leaves_no_block_past_the_end mm

mutant grant-leaves-its-record src/deadlock.rs \
  's/if granted \{\n(\s*)waits.remove\(&node.addr\(\)\);\n(\s*)return;/if granted {\n${1}return;/' \
  a_grant_racing_the_snapshot_makes_no_false_cycle deadlock

mutant moved-holder-loses-its-owner src/lock/fast.rs \
  's/state.insert_held\(Part \{ start, last, mode \}, seq, who\)/state.insert_held(Part { start, last, mode }, seq, { let _ = who; Requester::NOBODY })/' \
  a_cycle_closing_while_the_detector_looks_is_seen_whole_or_not_at_all deadlock

mutant fast-grant-counted-outside-the-table src/lock/fast.rs \
  's/self.count_fast_grant\(\);\n(\s*)(let writer_bit = if mode == Mode::Write \{ writer\(0\) \} else \{ 0 \};)\n(\s*)(self.unlock_slots\(word \| occupied\(0\) \| writer_bit\);)/$2\n$3$4\n${3}self.count_fast_grant();/' \
  fast_path_grants_racing_each_other_are_all_counted stats

mutant queued-grant-uncounted src/lock/queue.rs \
  's/\*granted \+= 1;/let _ = \&granted;/' \
  a_request_racing_a_release_is_counted_once stats

mutant watch-cleared-by-a-store src/lock/wait.rs \
  's/self.state.fetch_and\(!SPINNING, Ordering::Acquire\) & !SPINNING/{ let s = self.state.load(Ordering::Acquire); self.state.store(s \& !SPINNING, Ordering::Relaxed); s \& !SPINNING }/' \
  a_watching_waiter_racing_its_grant_is_never_left_asleep

mutant watch-read-before-the-grant src/lock/wait.rs \
  's/let was = node.state.swap\(final_state, Ordering::Release\);/let was = node.state.load(Ordering::Relaxed);\n            node.state.store(final_state, Ordering::Release);/' \
  a_watching_waiter_racing_its_grant_is_never_left_asleep

mutant tree-try-grants-anyway src/lock/acquire.rs \
  's/self.acquire_parts\(parts, Wait::Never, who, Since::NOT_YET\) \{/self.acquire_parts(parts, Wait::Never, who, Since::NOT_YET).or(Some(u64::MAX)) {/' \
  the_default_lock_in_tree_mode_tries_the_tree_before_waiting_outside

echo "$caught caught, $missed missed"
[[ $missed == 0 ]]

//! A hierarchical timing wheel with O(1) insert and cancel.
//!
//! The design follows Varghese and Lauck, "Hashed and Hierarchical Timing
//! Wheels" (SOSP 1987), in the six-level, 64-slot shape that tokio and the
//! Linux kernel use.
//!
//! # Invariants
//!
//! 1. Time is counted in ticks of one millisecond from the wheel's epoch.
//!    `elapsed` is the last tick the wheel was advanced to. It never goes
//!    backwards.
//! 2. An entry with deadline `d > elapsed` sits at the level given by the
//!    highest 6-bit group in which `d` and `elapsed` differ, in slot
//!    `(d >> 6 * level) & 63` of that level. So level 0 holds the next 64 ms
//!    one tick per slot, level 1 the next 4 s at 64 ms per slot, and so on up
//!    to level 5 (about 795 days). Later deadlines are clamped to the last
//!    representable tick and re-examined when that slot comes due.
//! 3. An entry with `d <= elapsed` is in the `expired` list, ready to fire.
//! 4. `occupied[level]` has bit `slot` set exactly when that slot's list is
//!    non-empty, so the next non-empty slot is a rotate plus a
//!    trailing-zeros count, not a scan.
//! 5. Entries live in a slab; each slot is a doubly linked list threaded
//!    through the slab by index, which makes cancel O(1). A key carries a
//!    generation, so cancelling an entry that already fired (and whose slab
//!    slot was reused) does nothing.
//!
//! Advancing the wheel to `now` repeatedly takes the earliest non-empty slot
//! whose start is not after `now`, moves `elapsed` to that start, and
//! re-inserts every entry of the slot: by invariant 2 each lands on a lower
//! level or in `expired`. Each entry cascades at most once per level, so the
//! total work is O(levels) per timer however long the wheel sat idle.

const LEVELS: usize = 6;
const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
/// The last tick the wheel can represent; later deadlines are clamped to it.
const MAX_TICK: u64 = (1 << (SLOT_BITS as u64 * LEVELS as u64)) - 1;
const NIL: u32 = u32::MAX;

/// Identifies an entry for [`Wheel::cancel`]. Stale keys are harmless.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimerKey {
    index: u32,
    generation: u32,
}

/// Where an entry currently is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Place {
    Free,
    Slot { level: u8, slot: u8 },
    Expired,
}

struct Entry<V> {
    deadline: u64,
    value: Option<V>,
    prev: u32,
    next: u32,
    place: Place,
    generation: u32,
}

#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

impl List {
    const EMPTY: List = List {
        head: NIL,
        tail: NIL,
    };
}

/// A timing wheel holding values of type `V` (the runtime stores unparkers).
pub(crate) struct Wheel<V> {
    elapsed: u64,
    entries: Vec<Entry<V>>,
    free_head: u32,
    slots: [[List; SLOTS]; LEVELS],
    occupied: [u64; LEVELS],
    expired: List,
    len: usize,
}

impl<V> Wheel<V> {
    /// Creates an empty wheel whose clock starts at tick 0.
    pub(crate) fn new() -> Self {
        Wheel {
            elapsed: 0,
            entries: Vec::new(),
            free_head: NIL,
            slots: [[List::EMPTY; SLOTS]; LEVELS],
            occupied: [0; LEVELS],
            expired: List::EMPTY,
            len: 0,
        }
    }

    /// Number of pending entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Inserts `value` to fire at tick `deadline`. A deadline not after the
    /// wheel's clock fires on the next [`Wheel::advance`].
    pub(crate) fn insert(&mut self, deadline: u64, value: V) -> TimerKey {
        let deadline = deadline.min(MAX_TICK);
        let index = if self.free_head != NIL {
            let index = self.free_head;
            let e = &mut self.entries[index as usize];
            self.free_head = e.next;
            e.deadline = deadline;
            e.value = Some(value);
            e.generation = e.generation.wrapping_add(1);
            index
        } else {
            let index = u32::try_from(self.entries.len()).expect("more than 4 billion timers");
            assert!(index != NIL, "more than 4 billion timers");
            self.entries.push(Entry {
                deadline,
                value: Some(value),
                prev: NIL,
                next: NIL,
                place: Place::Free,
                generation: 0,
            });
            index
        };
        self.len += 1;
        self.place(index);
        TimerKey {
            index,
            generation: self.entries[index as usize].generation,
        }
    }

    /// Removes the entry for `key` and returns its value, or `None` if it
    /// already fired or was cancelled.
    pub(crate) fn cancel(&mut self, key: TimerKey) -> Option<V> {
        let e = self.entries.get(key.index as usize)?;
        if e.generation != key.generation || e.place == Place::Free {
            return None;
        }
        self.unlink(key.index);
        Some(self.release(key.index))
    }

    /// The earliest tick at which something is due, if anything is pending.
    /// Due entries report the wheel's current tick.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        if self.expired.head != NIL {
            return Some(self.elapsed);
        }
        self.next_slot()
            .map(|(_, _, start)| start.max(self.elapsed))
    }

    /// Advances the clock to `now` and calls `fire` for every entry whose
    /// deadline is at or before `now`, in deadline order per slot.
    pub(crate) fn advance(&mut self, now: u64, mut fire: impl FnMut(V)) {
        let now = now.min(MAX_TICK);
        loop {
            while self.expired.head != NIL {
                let index = self.expired.head;
                self.unlink(index);
                fire(self.release(index));
            }
            match self.next_slot() {
                Some((level, slot, start)) if start <= now => {
                    if start > self.elapsed {
                        self.elapsed = start;
                    }
                    self.cascade(level, slot);
                }
                _ => break,
            }
        }
        if now > self.elapsed {
            self.elapsed = now;
        }
    }

    /// The earliest non-empty slot as (level, slot, start tick).
    fn next_slot(&self) -> Option<(usize, usize, u64)> {
        let mut best: Option<(usize, usize, u64)> = None;
        for level in 0..LEVELS {
            let occupied = self.occupied[level];
            if occupied == 0 {
                continue;
            }
            let shift = SLOT_BITS * level as u32;
            let slot_span = 1u64 << shift;
            let level_span = slot_span << SLOT_BITS;
            let now_slot = ((self.elapsed >> shift) & (SLOTS as u64 - 1)) as u32;
            let distance = occupied.rotate_right(now_slot).trailing_zeros();
            let slot = (now_slot + distance) as usize % SLOTS;
            let level_start = self.elapsed & !(level_span - 1);
            let mut start = level_start + slot as u64 * slot_span;
            if start + slot_span <= self.elapsed {
                // The slot is behind the clock inside this level's span:
                // it belongs to the next rotation.
                start += level_span;
            }
            if best.is_none_or(|(_, _, s)| start < s) {
                best = Some((level, slot, start));
            }
        }
        best
    }

    /// Empties one slot and re-places each of its entries (invariant 2).
    fn cascade(&mut self, level: usize, slot: usize) {
        let list = std::mem::replace(&mut self.slots[level][slot], List::EMPTY);
        self.occupied[level] &= !(1u64 << slot);
        let mut index = list.head;
        while index != NIL {
            let next = self.entries[index as usize].next;
            self.place(index);
            index = next;
        }
    }

    /// Links an entry into the list its deadline calls for.
    fn place(&mut self, index: u32) {
        let deadline = self.entries[index as usize].deadline;
        let (place, list) = if deadline <= self.elapsed {
            (Place::Expired, &mut self.expired)
        } else {
            let differing = (deadline ^ self.elapsed) | (SLOTS as u64 - 1);
            let top_bit = 63 - differing.leading_zeros();
            let level = (top_bit / SLOT_BITS) as usize;
            let slot = ((deadline >> (SLOT_BITS * level as u32)) & (SLOTS as u64 - 1)) as usize;
            self.occupied[level] |= 1u64 << slot;
            (
                Place::Slot {
                    level: level as u8,
                    slot: slot as u8,
                },
                &mut self.slots[level][slot],
            )
        };
        let tail = list.tail;
        if tail == NIL {
            list.head = index;
        }
        list.tail = index;
        if tail != NIL {
            self.entries[tail as usize].next = index;
        }
        let e = &mut self.entries[index as usize];
        e.prev = tail;
        e.next = NIL;
        e.place = place;
    }

    /// Unlinks an entry from whatever list holds it.
    fn unlink(&mut self, index: u32) {
        let (prev, next, place) = {
            let e = &self.entries[index as usize];
            (e.prev, e.next, e.place)
        };
        let list = match place {
            Place::Expired => &mut self.expired,
            Place::Slot { level, slot } => &mut self.slots[level as usize][slot as usize],
            Place::Free => unreachable!("unlinking a free timer entry"),
        };
        if prev == NIL {
            list.head = next;
        }
        if next == NIL {
            list.tail = prev;
        }
        let now_empty = list.head == NIL;
        if prev != NIL {
            self.entries[prev as usize].next = next;
        }
        if next != NIL {
            self.entries[next as usize].prev = prev;
        }
        if let (Place::Slot { level, slot }, true) = (place, now_empty) {
            self.occupied[level as usize] &= !(1u64 << slot);
        }
    }

    /// Returns an unlinked entry's slab slot to the free list.
    fn release(&mut self, index: u32) -> V {
        let e = &mut self.entries[index as usize];
        e.place = Place::Free;
        e.next = self.free_head;
        e.prev = NIL;
        self.free_head = index;
        self.len -= 1;
        e.value.take().expect("live timer entry without a value")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(w: &mut Wheel<u64>, now: u64) -> Vec<u64> {
        let mut out = Vec::new();
        w.advance(now, |v| out.push(v));
        out
    }

    #[test]
    fn fires_at_deadline_not_before() {
        let mut w = Wheel::new();
        w.insert(5, 5);
        w.insert(70, 70);
        w.insert(5000, 5000);
        assert!(drain(&mut w, 4).is_empty());
        assert_eq!(drain(&mut w, 5), vec![5]);
        assert!(drain(&mut w, 69).is_empty());
        assert_eq!(drain(&mut w, 70), vec![70]);
        let next = w.next_deadline().unwrap();
        assert!(
            (70..=5000).contains(&next),
            "next deadline {next} must not be after 5000"
        );
        assert!(drain(&mut w, 4999).is_empty());
        assert_eq!(drain(&mut w, 5000), vec![5000]);
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn cancel_is_exact_and_stale_keys_are_ignored() {
        let mut w = Wheel::new();
        let a = w.insert(10, 1);
        let b = w.insert(10, 2);
        assert_eq!(w.cancel(a), Some(1));
        assert_eq!(w.cancel(a), None);
        assert_eq!(drain(&mut w, 10), vec![2]);
        assert_eq!(w.cancel(b), None);
        // The slab slot of `a` is reused; the old key must not cancel the new entry.
        let c = w.insert(20, 3);
        assert_eq!(w.cancel(a), None);
        assert_eq!(w.cancel(c), Some(3));
    }

    #[test]
    fn past_deadlines_fire_immediately() {
        let mut w = Wheel::new();
        drain(&mut w, 1000);
        w.insert(3, 3);
        assert_eq!(w.next_deadline(), Some(1000));
        assert_eq!(drain(&mut w, 1000), vec![3]);
    }

    #[test]
    fn matches_a_sorted_model_across_long_jumps() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut w = Wheel::new();
        let mut model: Vec<(u64, u64)> = Vec::new();
        let mut keys = Vec::new();
        let mut now = 0u64;
        for id in 0..20_000u64 {
            let span = match rng.u8(0..4) {
                0 => 64,
                1 => 5000,
                2 => 300_000,
                _ => 20_000_000,
            };
            let d = now + rng.u64(0..span);
            keys.push((w.insert(d, id), id));
            model.push((d, id));
            if rng.u8(0..10) == 0 {
                let (k, kid) = keys.swap_remove(rng.usize(0..keys.len()));
                if w.cancel(k).is_some() {
                    model.retain(|&(_, m)| m != kid);
                }
            }
            if rng.u8(0..4) == 0 {
                now += rng.u64(0..span);
                let fired = drain(&mut w, now);
                let mut expect: Vec<u64> = model
                    .iter()
                    .filter(|&&(d, _)| d <= now)
                    .map(|&(_, i)| i)
                    .collect();
                model.retain(|&(d, _)| d > now);
                let mut got = fired.clone();
                got.sort_unstable();
                expect.sort_unstable();
                assert_eq!(got, expect, "at tick {now}");
                if let Some(next) = w.next_deadline() {
                    let min = model.iter().map(|&(d, _)| d).min().unwrap();
                    assert!(next <= min, "next_deadline {next} after earliest {min}");
                }
            }
        }
        assert_eq!(w.len(), model.len());
    }
}

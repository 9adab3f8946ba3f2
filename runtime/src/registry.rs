//! The registry of live coroutines: what `goro::coroutines()` lists, and
//! what keeps a parked coroutine's task alive when nobody else holds it
//! (task invariant 5).
//!
//! A task enters the registry when it first runs and leaves when it
//! finishes, both on its home worker, so each worker's shard lock is taken
//! only by that worker (and by a dump): never contended on the hot path.
//! Coroutines that have not started yet are held by the run queues and
//! counted by `stats()`, but not listed. A task records its shard and slot
//! in `registry_key` so removal is O(1).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use parking_lot::Mutex;

use crate::context;
use crate::task::Task;

/// A shard whose last live task leaves and that had more slots than this
/// frees its vectors.
const SHRINK_ABOVE: usize = 4096;

struct Shard {
    slots: Vec<Option<Arc<Task>>>,
    free: Vec<u32>,
}

pub(crate) struct Registry {
    shards: Box<[Mutex<Shard>]>,
}

impl Registry {
    pub(crate) fn new(shards: usize) -> Registry {
        Registry {
            shards: (0..shards.max(1))
                .map(|_| {
                    Mutex::new(Shard {
                        slots: Vec::new(),
                        free: Vec::new(),
                    })
                })
                .collect(),
        }
    }

    pub(crate) fn insert(&self, task: &Arc<Task>) {
        let shard_index = context::worker().map_or(0, |w| w.index % self.shards.len());
        let mut shard = self.shards[shard_index].lock();
        let slot = match shard.free.pop() {
            Some(i) => {
                shard.slots[i as usize] = Some(task.clone());
                i
            }
            None => {
                shard.slots.push(Some(task.clone()));
                (shard.slots.len() - 1) as u32
            }
        };
        task.registry_key.store(
            ((shard_index as u64) << 32) | slot as u64,
            Ordering::Relaxed,
        );
    }

    pub(crate) fn remove(&self, task: &Task) {
        let key = task.registry_key.load(Ordering::Relaxed);
        let (shard_index, slot) = ((key >> 32) as usize, (key & 0xffff_ffff) as u32);
        let removed = {
            let mut shard = self.shards[shard_index].lock();
            let removed = shard.slots[slot as usize].take();
            shard.free.push(slot);
            if shard.free.len() == shard.slots.len() && shard.slots.len() > SHRINK_ABOVE {
                // The last of a burst: give its slots back (a million
                // coroutines leave 12 MB of them otherwise).
                shard.slots = Vec::new();
                shard.free = Vec::new();
            }
            removed
        };
        drop(removed);
    }

    /// The live task with id `id`, if any, looking in shard `hint` first
    /// (a task started on worker `i` is in shard `i`). Costs a scan of the
    /// shards under their locks, without cloning every entry.
    pub(crate) fn find(&self, id: u64, hint: usize) -> Option<Arc<Task>> {
        let n = self.shards.len();
        (0..n).find_map(|k| {
            self.shards[(hint + k) % n]
                .lock()
                .slots
                .iter()
                .flatten()
                .find(|t| t.id() == id)
                .cloned()
        })
    }

    /// Calls `f` for every live task (a snapshot per shard).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Task)) {
        for shard in self.shards.iter() {
            let tasks: Vec<Arc<Task>> = shard.lock().slots.iter().flatten().cloned().collect();
            for t in &tasks {
                f(t);
            }
        }
    }
}

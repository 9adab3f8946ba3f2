//! The coroutine dump: Go's SIGQUIT goroutine report, grouped.
//!
//! A snapshot lists every started coroutine (the registry) and every
//! thread blocked in a goro call right now. Entries with the same kind of
//! entry (coroutine or thread), state, wait reason and source line form a
//! group, printed once with its count, so 100,000 coroutines parked on the
//! same `recv` take three lines. Groups are printed longest wait first;
//! runnable and running coroutines come last. Coroutines that have been
//! spawned but not started yet are counted in the header, not listed (they
//! have no stack and have run no code).
//!
//! The snapshot is taken without stopping anything: a coroutine may park
//! or wake while it is read, so counts can be off by the work in flight.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io;
use std::panic::Location;
use std::time::{Duration, Instant};

use super::wait::{self, WaitInfo, WaitKind};
use crate::scheduler;
use crate::task::State;

/// One entry of a snapshot.
pub(crate) struct Entry {
    pub(crate) thread: bool,
    pub(crate) id: u64,
    pub(crate) name: Option<String>,
    pub(crate) state: State,
    pub(crate) wait: Option<WaitInfo>,
}

/// The members of testing bubble `id`, rendered as [`dump_to`] does:
/// what a bubble's deadlock panic shows.
pub(crate) fn render_bubble(id: u64) -> String {
    let mut out = Vec::new();
    scheduler::get().registry.for_each(|t| {
        if t.bubble.as_ref().is_none_or(|b| b.id != id) {
            return;
        }
        out.push(coroutine_entry(t));
    });
    render(&out, Instant::now())
}

/// A coroutine's line of the dump: its state, and its wait while parked.
fn coroutine_entry(t: &crate::task::Task) -> Entry {
    let state = t.state();
    Entry {
        thread: false,
        id: t.id(),
        name: t.name().map(str::to_owned),
        state,
        wait: if state == State::Parked {
            t.wait.read(super::instant_of_ms)
        } else {
            None
        },
    }
}

/// Every started coroutine and every thread in a goro wait.
pub(crate) fn snapshot() -> Vec<Entry> {
    let mut out = Vec::new();
    scheduler::get().registry.for_each(|t| {
        out.push(coroutine_entry(t));
    });
    wait::for_each_thread(|t| {
        if t.state.load(std::sync::atomic::Ordering::SeqCst) == wait::RUNNING {
            return;
        }
        out.push(Entry {
            thread: true,
            id: t.tid.load(std::sync::atomic::Ordering::Relaxed) as u64,
            name: t.name.clone(),
            state: State::Parked,
            wait: t.slot.read(super::instant_of_us),
        });
    });
    out
}

/// Writes the dump of every coroutine (and every thread blocked in a goro
/// call) to stderr; see [`dump_to`] for the format.
///
/// ```
/// goro::dump();
/// ```
pub fn dump() {
    let mut text = Vec::new();
    let _ = dump_to(&mut text);
    let _ = io::Write::write_all(&mut io::stderr().lock(), &text);
}

/// Writes a Go-style report of every coroutine to `w`: coroutines in the
/// same state, waiting for the same operation at the same source line, are
/// one group with a count; groups are sorted longest wait first, then the
/// runnable and running ones. Threads blocked in goro calls (a `main` in
/// `rx.recv()`) are listed too, and coroutines goro can prove will never
/// wake ([`leaks`](crate::leaks)) in a last section. Costs time
/// proportional to the number of coroutines; stops nothing.
///
/// ```text
/// goro: 100002 coroutines (2 workers, 0 not started), 1 thread in goro waits
///
/// 100000 coroutines [chan receive, 2.1s]:
///     at src/main.rs:12:31
///     ids 3 4 5 6 7 8 9 10 11 12 ... (99990 more)
///
/// coroutine 100003 'ticker' [sleep, 180ms]:
///     at src/main.rs:20:9
///
/// thread 'main' (tid 4242) [join, 2.1s]:
///     at src/main.rs:25:7
/// ```
///
/// ```
/// let mut out = Vec::new();
/// goro::dump_to(&mut out).unwrap();
/// assert!(String::from_utf8(out).unwrap().starts_with("goro: "));
/// ```
pub fn dump_to(mut w: impl io::Write) -> io::Result<()> {
    let entries = snapshot();
    let text = render(&entries, Instant::now());
    w.write_all(text.as_bytes())?;
    let leaks = super::leaks::leaks();
    if !leaks.is_empty() {
        let mut s = format!(
            "goro: {} coroutine(s) can never be woken (goro::leaks):\n",
            leaks.len()
        );
        for l in &leaks {
            let _ = writeln!(s, "    {l}");
        }
        s.push('\n');
        w.write_all(s.as_bytes())?;
    }
    w.flush()
}

type Key = (bool, u8, Option<(WaitKind, *const Location<'static>)>);

struct Group<'a> {
    first: &'a Entry,
    ids: Vec<u64>,
    longest: Duration,
    shortest: Duration,
}

/// Formats a snapshot (separate from the snapshot for tests).
pub(crate) fn render(entries: &[Entry], now: Instant) -> String {
    let mut groups: HashMap<Key, Group<'_>> = HashMap::new();
    let mut threads = 0usize;
    for e in entries {
        threads += e.thread as usize;
        let key: Key = (
            e.thread,
            e.state as u8,
            e.wait.map(|w| (w.kind, w.location as *const _)),
        );
        let waited = e
            .wait
            .map_or(Duration::ZERO, |w| now.saturating_duration_since(w.since));
        let g = groups.entry(key).or_insert(Group {
            first: e,
            ids: Vec::new(),
            longest: waited,
            shortest: waited,
        });
        g.ids.push(e.id);
        g.longest = g.longest.max(waited);
        g.shortest = g.shortest.min(waited);
    }
    let mut list: Vec<Group<'_>> = groups.into_values().collect();
    // Waiting groups first, longest wait first; then runnable, running.
    list.sort_by(|a, b| {
        let rank = |g: &Group<'_>| match g.first.state {
            State::Parked => 0,
            State::Runnable => 1,
            _ => 2,
        };
        rank(a)
            .cmp(&rank(b))
            .then(b.longest.cmp(&a.longest))
            .then(b.ids.len().cmp(&a.ids.len()))
            .then(a.ids.iter().min().cmp(&b.ids.iter().min()))
    });
    let rt = scheduler::get();
    let started = entries.len() - threads;
    let live = crate::stats().coroutines.max(started as u64);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "goro: {live} coroutines ({} workers, {} not started), {threads} thread{} in goro waits\n",
        rt.workers.len(),
        live - started as u64,
        if threads == 1 { "" } else { "s" },
    );
    for g in &mut list {
        g.ids.sort_unstable();
        let e = g.first;
        let what = match (e.state, e.wait) {
            (State::Parked, Some(w)) => {
                if g.ids.len() > 1 && g.longest - g.shortest >= Duration::from_millis(1) {
                    format!("{}, {}-{}", w.kind, human(g.shortest), human(g.longest))
                } else {
                    format!("{}, {}", w.kind, human(g.longest))
                }
            }
            (State::Parked, None) => "parked".to_owned(),
            (State::Runnable, _) => "runnable".to_owned(),
            (State::Running, _) => "running".to_owned(),
            (State::Done, _) => "finishing".to_owned(),
        };
        if g.ids.len() == 1 {
            let label = if e.thread { "thread" } else { "coroutine" };
            let name = e
                .name
                .as_deref()
                .map_or(String::new(), |n| format!(" '{n}'"));
            if e.thread {
                let _ = writeln!(s, "{label}{name} (tid {}) [{what}]:", e.id);
            } else {
                let _ = writeln!(s, "{label} {}{name} [{what}]:", e.id);
            }
        } else {
            let label = if e.thread { "threads" } else { "coroutines" };
            let _ = writeln!(s, "{} {label} [{what}]:", g.ids.len());
        }
        if let Some(w) = e.wait.filter(|_| e.state == State::Parked) {
            let _ = writeln!(s, "    at {}", w.location);
        }
        if g.ids.len() > 1 {
            let shown: Vec<String> = g.ids.iter().take(10).map(u64::to_string).collect();
            let key = if e.thread { "tids" } else { "ids" };
            let _ = write!(s, "    {key} {}", shown.join(" "));
            if g.ids.len() > 10 {
                let _ = write!(s, " ... ({} more)", g.ids.len() - 10);
            }
            s.push('\n');
        }
        s.push('\n');
    }
    s
}

/// `850ms`, `3.2s`, `4m12s`, `2h05m`.
pub(crate) fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(human(Duration::from_millis(850)), "850ms");
        assert_eq!(human(Duration::from_millis(3200)), "3.2s");
        assert_eq!(human(Duration::from_secs(252)), "4m12s");
        assert_eq!(human(Duration::from_secs(7500)), "2h05m");
    }

    #[test]
    fn identical_waits_group_and_sort_longest_first() {
        let now = Instant::now();
        let a = Location::caller();
        let b = Location::caller();
        let wait = |loc, ago| {
            Some(WaitInfo {
                kind: WaitKind::ChanRecv,
                location: loc,
                since: now - Duration::from_millis(ago),
            })
        };
        let mut entries: Vec<Entry> = (0..1000)
            .map(|i| Entry {
                thread: false,
                id: i,
                name: None,
                state: State::Parked,
                wait: wait(a, 100),
            })
            .collect();
        entries.push(Entry {
            thread: false,
            id: 5000,
            name: Some("old".into()),
            state: State::Parked,
            wait: wait(b, 9000),
        });
        let text = render(&entries, now);
        let old = text
            .find("coroutine 5000 'old' [chan receive, 9.0s]")
            .unwrap();
        let many = text.find("1000 coroutines [chan receive, 100ms]").unwrap();
        assert!(old < many, "{text}");
        assert!(text.contains("... (990 more)"), "{text}");
        assert!(text.lines().count() < 12, "{text}");
    }
}

//! Coroutine-locals are destroyed on the coroutine's own worker, after the
//! last user code that runs on the coroutine's behalf (dropping a detached
//! coroutine's result included), and cannot be reached after that.

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread::ThreadId;

thread_local! {
    /// One per OS thread: cloning it into a value makes that value `!Send`
    /// and ties it to the thread it was cloned on.
    static THREAD_RC: Rc<ThreadId> = Rc::new(std::thread::current().id());
}

/// A `!Send` value that reports, when dropped, the thread it was created on
/// and the thread dropping it.
struct Witness {
    home: Rc<ThreadId>,
    report: mpsc::Sender<(ThreadId, ThreadId)>,
}

impl Drop for Witness {
    fn drop(&mut self) {
        let _ = self.report.send((*self.home, std::thread::current().id()));
    }
}

goro::coroutine_local! {
    static SLOT: RefCell<Option<Witness>> = RefCell::new(None);
}

/// A coroutine's result whose `Drop` stores a `Witness` (holding an `Rc`
/// cloned from the dropping thread's `thread_local!`) into a
/// coroutine-local.
struct Outcome {
    report: mpsc::Sender<(ThreadId, ThreadId)>,
}

impl Drop for Outcome {
    fn drop(&mut self) {
        let witness = Witness {
            home: THREAD_RC.with(Rc::clone),
            report: self.report.clone(),
        };
        SLOT.with(|s| *s.borrow_mut() = Some(witness));
    }
}

/// The reported case: a detached coroutine's result stores a `!Send` value
/// into a coroutine-local from its `Drop`, while another thread holds a
/// stale unparker (a strong reference to the task) and lets go of it last.
/// The value must be dropped on the worker, before the coroutine is gone.
#[test]
fn a_detached_result_s_locals_are_dropped_on_the_worker() {
    support::within("detached coroutine's locals", || {
        let (report_tx, report_rx) = mpsc::channel();
        let (unparker_tx, unparker_rx) = mpsc::channel::<goro::park::Unparker>();
        let (go_tx, go_rx) = goro::chan::bounded::<()>(1);
        let h = goro::spawn(move || {
            unparker_tx.send(goro::park::current()).unwrap();
            go_rx.recv().unwrap();
            Outcome { report: report_tx }
        });
        let id = h.id();
        let stale = unparker_rx.recv().unwrap();
        // Detach before the closure returns: the coroutine drops its own
        // result.
        drop(h);
        go_tx.send(()).unwrap();
        support::eventually("the coroutine to finish", || {
            !goro::coroutines().iter().any(|c| c.id == id)
        });
        // The coroutine has returned and its worker has let go of it;
        // `stale` may now hold the last reference to its task.
        let early = report_rx.try_recv();
        drop(stale);
        let (home, dropped_on) = match early {
            Ok(r) => r,
            Err(_) => {
                let late = report_rx
                    .recv_timeout(support::PATIENCE)
                    .expect("the witness was never dropped");
                panic!(
                    "the coroutine finished with a coroutine-local still alive; it was \
                     dropped later, on thread {:?} (created on {:?}, test thread {:?})",
                    late.1,
                    late.0,
                    std::thread::current().id()
                );
            }
        };
        assert_eq!(
            home, dropped_on,
            "a !Send coroutine-local was dropped on another thread than its worker"
        );
    });
}

/// Where a result was dropped: the thread, and the coroutine (if any).
type DroppedAt = (ThreadId, Option<u64>);

/// A result that reports where it is dropped, and whether the dropping
/// context's `SLOT` could be used from its `Drop`.
struct Probe {
    report: mpsc::Sender<(DroppedAt, bool)>,
}

impl Drop for Probe {
    fn drop(&mut self) {
        let usable = SLOT.try_with(|_| ()).is_ok();
        let _ = self
            .report
            .send(((std::thread::current().id(), goro::current_id()), usable));
    }
}

/// A coroutine returning a `Probe`, and what the test needs to watch it.
struct Probed {
    handle: goro::JoinHandle<Probe>,
    /// Where the probe was dropped, and whether `SLOT` was usable there.
    reports: mpsc::Receiver<(DroppedAt, bool)>,
    /// The coroutine's worker thread.
    worker: ThreadId,
    /// The coroutine returns once this is sent on.
    go: goro::chan::Sender<()>,
}

fn spawn_probe() -> Probed {
    let (report, reports) = mpsc::channel();
    let (worker_tx, worker_rx) = mpsc::channel();
    let (go, go_rx) = goro::chan::bounded::<()>(1);
    let handle = goro::spawn(move || {
        worker_tx.send(std::thread::current().id()).unwrap();
        go_rx.recv().unwrap();
        Probe { report }
    });
    let worker = worker_rx.recv().unwrap();
    Probed {
        handle,
        reports,
        worker,
        go,
    }
}

#[test]
fn a_result_is_dropped_by_whoever_takes_it() {
    support::within("where results are dropped", || {
        let me = std::thread::current().id();

        // Detached before the closure returned: the coroutine drops it, on
        // its worker, with its locals alive.
        let p = spawn_probe();
        let id = p.handle.id();
        drop(p.handle);
        p.go.send(()).unwrap();
        let (at, usable) = p.reports.recv().unwrap();
        assert_eq!(at, (p.worker, Some(id)));
        assert!(
            usable,
            "a detached result's Drop must see its coroutine's locals"
        );

        // Joined on a thread: dropped by the joiner.
        let p = spawn_probe();
        p.go.send(()).unwrap();
        drop(p.handle.join().unwrap());
        assert_eq!(p.reports.recv().unwrap(), ((me, None), true));

        // Handle dropped after the coroutine finished: dropped by the
        // handle's dropper.
        let p = spawn_probe();
        p.go.send(()).unwrap();
        support::eventually("the coroutine to finish", || p.handle.is_finished());
        drop(p.handle);
        assert_eq!(p.reports.recv().unwrap(), ((me, None), true));

        // Joined by another coroutine: dropped there, with that
        // coroutine's locals.
        let p = spawn_probe();
        p.go.send(()).unwrap();
        let h = p.handle;
        let joiner = goro::spawn(move || {
            drop(h.join().unwrap());
            (std::thread::current().id(), goro::current_id())
        });
        let joiner_id = joiner.id();
        let joiner_at = joiner.join().unwrap();
        assert_eq!(joiner_at.1, Some(joiner_id));
        assert_eq!(p.reports.recv().unwrap(), (joiner_at, true));
    });
}

/// What the teardown-order values saw, in order.
static EVENTS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn event(e: impl Into<String>) {
    EVENTS.lock().unwrap().push(e.into());
}

/// Tries `key` with `try_with` and with `with` (catching its panic), and
/// records both outcomes under `label`.
fn probe_key<T>(label: &str, key: &'static goro::LocalKey<T>) {
    let tried = key.try_with(|_| ());
    let with = std::panic::catch_unwind(|| key.with(|_| ())).map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    });
    match (tried, with) {
        (Ok(()), Ok(())) => event(format!("{label}: ok")),
        (Err(e), Err(msg)) => {
            assert_eq!(e.to_string(), "already destroyed");
            assert!(
                msg.contains("cannot access a coroutine-local value during or after destruction"),
                "{msg}"
            );
            event(format!("{label}: gone"))
        }
        (t, w) => panic!("{label}: try_with gave {t:?} but with gave {w:?}"),
    }
}

struct Older;
impl Drop for Older {
    fn drop(&mut self) {
        event("drop older");
        probe_key("older sees newer", &NEWER);
        probe_key("older sees itself", &OLDER);
    }
}

struct Newer;
impl Drop for Newer {
    fn drop(&mut self) {
        event("drop newer");
        probe_key("newer sees older", &OLDER);
        // First used here, during teardown: created, then dropped in turn.
        probe_key("newer sees fresh", &FRESH);
    }
}

struct Fresh;
impl Drop for Fresh {
    fn drop(&mut self) {
        event("drop fresh");
        probe_key("fresh sees newer", &NEWER);
        probe_key("fresh sees older", &OLDER);
    }
}

goro::coroutine_local! {
    static OLDER: Older = Older;
    static NEWER: Newer = Newer;
    static FRESH: Fresh = Fresh;
}

/// Values are dropped newest first; a destructor may use a value not yet
/// dropped and may create one not used before (dropped next), but finds a
/// dropped value gone: `try_with` fails with `AccessError`, `with` panics.
/// All of it happens before `join` returns.
#[test]
fn teardown_drops_newest_first_and_dropped_values_are_gone() {
    support::within("teardown order", || {
        let h = goro::spawn(|| {
            OLDER.with(|_| ());
            NEWER.with(|_| ());
        });
        h.join().unwrap();
        assert_eq!(
            *EVENTS.lock().unwrap(),
            [
                "drop newer",
                "newer sees older: ok",
                "newer sees fresh: ok",
                "drop fresh",
                "fresh sees newer: gone",
                "fresh sees older: ok",
                "drop older",
                "older sees newer: gone",
                "older sees itself: gone",
            ]
        );
    });
}

/// Outcomes of accesses made after a detached coroutine's teardown.
static AFTER: std::sync::Mutex<Vec<(bool, bool)>> = std::sync::Mutex::new(Vec::new());

/// A panic payload whose `Drop` tries a coroutine-local. A detached
/// coroutine drops it after its locals are gone: the last user code that
/// can run on the coroutine's behalf.
struct LatePayload;
impl Drop for LatePayload {
    fn drop(&mut self) {
        let tried = LATE.try_with(|_| ()).is_err();
        let with_panicked = std::panic::catch_unwind(|| LATE.with(|_| ())).is_err();
        AFTER.lock().unwrap().push((tried, with_panicked));
    }
}

/// A coroutine-local whose destructor panics with a `LatePayload`.
struct PanicsOnDrop;
impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        std::panic::panic_any(LatePayload);
    }
}

struct Late;

goro::coroutine_local! {
    static LATE: Late = Late;
    static BOMB: PanicsOnDrop = PanicsOnDrop;
}

/// After teardown every access fails, even for a key the coroutine never
/// used: nothing is created again.
#[test]
fn after_teardown_access_fails() {
    support::within("access after teardown", || {
        let (go_tx, go_rx) = goro::chan::bounded::<()>(1);
        let h = goro::spawn(move || {
            go_rx.recv().unwrap();
            BOMB.with(|_| ());
        });
        drop(h);
        go_tx.send(()).unwrap();
        support::eventually("the late payload to be dropped", || {
            !AFTER.lock().unwrap().is_empty()
        });
        assert_eq!(*AFTER.lock().unwrap(), [(true, true)]);
    });
}

struct PanicsWithMessage;
impl Drop for PanicsWithMessage {
    fn drop(&mut self) {
        panic!("a local's destructor panicked");
    }
}

goro::coroutine_local! {
    static FAULTY: PanicsWithMessage = PanicsWithMessage;
}

/// A panic in a local's destructor after the closure returned normally is
/// the coroutine's panic: `join` returns it.
#[test]
fn join_returns_a_local_destructor_s_panic() {
    support::within("a local's panic on drop", || {
        let h = goro::spawn(|| {
            FAULTY.with(|_| ());
            5
        });
        let payload = h.join().expect_err("the destructor's panic");
        assert_eq!(
            payload.downcast_ref::<&str>(),
            Some(&"a local's destructor panicked")
        );
        // The runtime goes on.
        assert_eq!(goro::spawn(|| 1).join().unwrap(), 1);
    });
}

/// Signals that a coroutine's teardown reached `Gate`'s destructor, then
/// waits there for the test to let it go.
struct Gate;
impl Drop for Gate {
    fn drop(&mut self) {
        let (reached, release) = GATE_CHANNELS.lock().unwrap().take().expect("gate armed");
        reached.send(()).unwrap();
        release.recv().unwrap();
    }
}

type GateChannels = (mpsc::Sender<()>, goro::chan::Receiver<()>);
static GATE_CHANNELS: std::sync::Mutex<Option<GateChannels>> = std::sync::Mutex::new(None);

goro::coroutine_local! {
    static GATE: Gate = Gate;
}

/// A handle dropped while the coroutine is destroying its locals (its
/// closure has returned, `join` would still wait) drops the result itself:
/// the coroutine no longer runs user code for it.
#[test]
fn a_handle_dropped_during_teardown_drops_the_result_itself() {
    support::within("handle dropped during teardown", || {
        let (reached_tx, reached) = mpsc::channel();
        let (release, release_rx) = goro::chan::bounded::<()>(1);
        *GATE_CHANNELS.lock().unwrap() = Some((reached_tx, release_rx));
        let (report, reports) = mpsc::channel();
        let h = goro::spawn(move || {
            GATE.with(|_| ());
            Probe { report }
        });
        reached.recv().unwrap();
        assert!(!h.is_finished(), "finished before its locals were dropped");
        drop(h);
        assert_eq!(
            reports.try_recv(),
            Ok(((std::thread::current().id(), None), true)),
            "the result must be dropped by the handle's dropper, at once"
        );
        release.send(()).unwrap();
    });
}

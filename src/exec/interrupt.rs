//! Ctrl-C (SIGINT) and SIGTERM: stop cleanly.
//!
//! Workers run in process groups of their own, so the terminal's Ctrl-C reaches nbmemo only
//! (a worker interrupted mid-cell would report a `KeyboardInterrupt`, indistinguishable from
//! the cell's own). nbmemo's handler marks the process interrupted and kills every live worker
//! with its process group: their cells fail as crashed, which is never cached; the scheduler
//! starts nothing more; the command saves what finished and exits with status 130.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Live workers: their pids (each leads its own process group).
static WORKERS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Told when an interrupt arrives (the watch loop waits on this channel).
static LISTENER: Mutex<Option<Sender<()>>> = Mutex::new(None);

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Installs the handler (once per process; later calls do nothing).
pub fn install() {
    let _ = ctrlc::set_handler(interrupt);
}

/// What the handler does, for embedders that catch the signal themselves (the Python package,
/// where Python owns SIGINT): marks the process interrupted and kills every live worker.
pub fn interrupt() {
    INTERRUPTED.store(true, Ordering::SeqCst);
    kill_workers();
    if let Some(listener) = lock(&LISTENER).as_ref() {
        let _ = listener.send(());
    }
}

/// Forgets an interrupt once the interrupted run has ended, so that a long-lived process (the
/// Python package) can run again.
pub fn clear() {
    INTERRUPTED.store(false, Ordering::SeqCst);
}

/// Whether an interrupt arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Sends `()` on `sender` when an interrupt arrives.
pub fn listen(sender: Sender<()>) {
    *lock(&LISTENER) = Some(sender);
}

/// Remembers a worker process, to kill on interrupt.
pub(crate) fn register(pid: u32) {
    lock(&WORKERS).push(pid);
}

/// Forgets a worker process (it was killed or ended).
pub(crate) fn unregister(pid: u32) {
    lock(&WORKERS).retain(|&known| known != pid);
}

/// Kills every live worker and its process group.
fn kill_workers() {
    let pids: Vec<u32> = lock(&WORKERS).clone();
    for pid in pids {
        #[cfg(unix)]
        if let Ok(pid) = i32::try_from(pid) {
            use nix::sys::signal::{Signal, kill, killpg};
            use nix::unistd::Pid;
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

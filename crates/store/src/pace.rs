//! Threads in the background (a rebuild beside the live models, at a lowered priority) give
//! the CPU up every [`SLICE`] of their work.
//!
//! A lower priority alone does not keep the API's threads from waiting: Linux's scheduler
//! (EEVDF) may leave the thread on a CPU running for the rest of its slice, until a timer tick
//! (4 ms on the development machine), before a thread that has just woken (a query's) gets
//! the CPU, whatever their priorities. Measured over a rebuild at
//! 100 k leads under load, the API's threads waited more than 1 ms for a CPU 2.0 s in all,
//! two thirds of it behind the rebuild's threads. A background thread that yields at short
//! intervals hands its CPU to such a waiting thread within [`SLICE`]; with nobody waiting,
//! the yield returns at once.
//!
//! A thread is in the background when its nice value is above the process's main thread's
//! (threads a background thread starts inherit it), read once per thread. Not every part of
//! a rebuild can call it: SQLite's sort worker threads (index builds) and single long steps
//! (the merge of a sort, the flush of the search index's hash) run at the lower priority
//! without pacing.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// How long a background thread works before it offers its CPU.
pub const SLICE: Duration = Duration::from_micros(250);

/// Calls between looks at the clock.
const EVERY: u32 = 32;

#[derive(Clone, Copy)]
struct Pace {
    /// `None` until the thread's priority is first read.
    background: Option<bool>,
    calls: u32,
    since: Option<Instant>,
}

thread_local! {
    static PACE: Cell<Pace> = const {
        Cell::new(Pace { background: None, calls: 0, since: None })
    };
}

/// One unit of a loop's work (an event read, decoded or applied, a row written) done: on a
/// thread in the background, offers the CPU once [`SLICE`] has passed since it last did.
#[inline]
pub fn tick() {
    // `try_with`: a statement run while the thread's locals are torn down just does not yield.
    let _ = PACE.try_with(|pace| {
        let mut p = pace.get();
        let background = match p.background {
            Some(b) => b,
            None => {
                let b = lowered();
                p.background = Some(b);
                b
            }
        };
        if background {
            p.calls = p.calls.wrapping_add(1);
            if p.calls % EVERY == 0 {
                let now = Instant::now();
                match p.since {
                    Some(since) if now.duration_since(since) < SLICE => {}
                    Some(_) => {
                        std::thread::yield_now();
                        p.since = Some(Instant::now());
                    }
                    None => p.since = Some(now),
                }
            }
        }
        pace.set(p);
    });
}

/// Marks the calling thread as in the background (it has just lowered its priority).
pub fn in_the_background() {
    let _ = PACE.try_with(|pace| {
        let mut p = pace.get();
        p.background = Some(true);
        pace.set(p);
    });
}

/// Whether the calling thread runs at a lower priority than the process's main thread (a
/// server started with `nice` paces none of its threads for that).
fn lowered() -> bool {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getpid, getpriority_process};
        static PROCESS: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
        let process = *PROCESS.get_or_init(|| getpriority_process(Some(getpid())).unwrap_or(0));
        getpriority_process(Some(rustix::thread::gettid())).is_ok_and(|n| n > process)
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn background() -> Option<bool> {
        PACE.with(Cell::get).background
    }

    #[test]
    fn a_thread_at_the_usual_priority_never_yields_and_one_marked_lowered_does() {
        std::thread::spawn(|| {
            for _ in 0..EVERY * 2 {
                tick();
            }
            assert_eq!(background(), Some(false));
            assert_eq!(PACE.with(Cell::get).since, None, "the clock is never read");
            in_the_background();
            for _ in 0..EVERY * 2 {
                tick();
            }
            assert_eq!(background(), Some(true));
            assert!(
                PACE.with(Cell::get).since.is_some(),
                "the clock is read every {EVERY} calls"
            );
        })
        .join()
        .unwrap();
    }

    /// A rebuild's thread lowers its own priority; the threads it starts (decoding, reading
    /// the log, building the search index) inherit it and know it from their nice value.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_thread_started_by_a_lowered_one_is_in_the_background() {
        std::thread::spawn(|| {
            let me = Some(rustix::thread::gettid());
            let now = rustix::process::getpriority_process(me).unwrap();
            if now >= 19 {
                return; // already as low as it goes: nothing to lower it below
            }
            rustix::process::setpriority_process(me, (now + 5).min(19)).unwrap();
            std::thread::spawn(|| {
                tick();
                assert_eq!(background(), Some(true));
            })
            .join()
            .unwrap();
        })
        .join()
        .unwrap();
    }
}

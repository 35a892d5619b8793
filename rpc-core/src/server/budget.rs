//! [`Budget`]: the server's one memory budget (`Config::max_memory`),
//! shared by every connection.
//!
//! Each connection reports what it holds (running calls' payloads, unsent
//! replies, queued events, a partial frame) as one `AtomicUsize` add or sub
//! when that changes between its turns; nothing is locked on the way. Over
//! the budget, a connection holding more than [`FLOOR`] stops reading and
//! parks its waker here until usage falls below the budget; a connection
//! holding less is always read, so a well-behaved client is served while
//! the hogs wait.
//!
//! One connection at a time, among those whose partial frame is all they
//! hold, may read on over the budget to complete that frame (the
//! exemption, at most one frame over): a partial
//! frame can only be finished by reading, so without it connections that
//! all wait for the rest of their frames would wait for each other forever,
//! and would never see their peers close.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::Waker;

/// What any connection may hold however full the budget is.
pub(super) const FLOOR: usize = 64 * 1024;

/// Usage above which the heap is trimmed once it has fallen again.
const TRIM_ABOVE: usize = 8 * 1024 * 1024;

#[derive(Debug)]
pub(super) struct Budget {
    limit: usize,
    used: AtomicUsize,
    /// The connection that may finish its frame over the budget; 0 for none.
    exempt: AtomicU64,
    /// Wakers parked (a count, read without the lock on every release).
    parked: AtomicUsize,
    /// Bumped when the parked wakers are woken: a connection parks once
    /// per generation.
    generation: AtomicUsize,
    wakers: Mutex<Vec<Waker>>,
    /// Usage went over [`TRIM_ABOVE`] since the last trim.
    high: AtomicBool,
}

impl Budget {
    pub(super) fn new(limit: usize) -> Self {
        Budget {
            limit: limit.max(1),
            used: AtomicUsize::new(0),
            exempt: AtomicU64::new(0),
            parked: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            wakers: Mutex::new(Vec::new()),
            high: AtomicBool::new(false),
        }
    }

    /// Bytes held by every connection together.
    pub(super) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// A connection held `old` bytes and now holds `new`.
    pub(super) fn update(&self, old: usize, new: usize) {
        if new > old {
            let before = self.used.fetch_add(new - old, Ordering::SeqCst);
            if before + (new - old) > TRIM_ABOVE && before <= TRIM_ABOVE {
                self.high.store(true, Ordering::Relaxed);
            }
        } else if new < old {
            let before = self.used.fetch_sub(old - new, Ordering::SeqCst);
            if before - (old - new) < self.limit && self.parked.load(Ordering::SeqCst) > 0 {
                self.wake_all();
            }
        }
    }

    /// Whether a connection holding `held` bytes must stop reading.
    pub(super) fn over(&self, held: usize) -> bool {
        held > FLOOR && self.used.load(Ordering::Relaxed) >= self.limit
    }

    /// Takes the exemption for connection `id` (at most one holds it).
    pub(super) fn claim(&self, id: u64) -> bool {
        self.exempt
            .compare_exchange(0, id, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Gives the exemption back; the parked connections may claim it.
    pub(super) fn release(&self, id: u64) {
        if self
            .exempt
            .compare_exchange(id, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            && self.parked.load(Ordering::SeqCst) > 0
        {
            self.wake_all();
        }
    }

    /// Parks `waker` until usage falls below the budget, unless it already
    /// has (then returns false: read on). `parked` is the connection's
    /// generation of its last park.
    pub(super) fn park(&self, waker: &Waker, parked: &mut Option<usize>) -> bool {
        let mut wakers = self.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        let generation = self.generation.load(Ordering::Relaxed);
        if *parked != Some(generation) {
            wakers.push(waker.clone());
            self.parked.fetch_add(1, Ordering::SeqCst);
            *parked = Some(generation);
        }
        drop(wakers);
        // Checked after parking: a release in between either sees the
        // parked count or is seen here.
        self.used.load(Ordering::SeqCst) >= self.limit
    }

    fn wake_all(&self) {
        let wakers = {
            let mut wakers = self.wakers.lock().unwrap_or_else(PoisonError::into_inner);
            self.generation.fetch_add(1, Ordering::Relaxed);
            self.parked.store(0, Ordering::SeqCst);
            std::mem::take(&mut *wakers)
        };
        for waker in wakers {
            waker.wake();
        }
    }

    /// Whether usage went high and has fallen back near nothing since the
    /// last call that said so: the moment to give freed memory back.
    pub(super) fn take_trim(&self) -> bool {
        self.used() < TRIM_ABOVE / 8 && self.high.swap(false, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::task::Wake;

    use super::*;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn hogs_over_the_budget_park_until_usage_falls() {
        let budget = Budget::new(4 * FLOOR);
        let woken = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&woken));
        budget.update(0, 3 * FLOOR);
        assert!(!budget.over(3 * FLOOR), "under the budget");
        budget.update(0, 2 * FLOOR);
        assert_eq!(budget.used(), 5 * FLOOR);
        assert!(budget.over(3 * FLOOR));
        assert!(budget.over(2 * FLOOR));
        assert!(!budget.over(FLOOR), "a small holder is always read");
        assert!(!budget.over(0));
        let mut parked = None;
        assert!(budget.park(&waker, &mut parked));
        assert!(budget.park(&waker, &mut parked), "parked once");
        assert_eq!(budget.parked.load(Ordering::SeqCst), 1);
        budget.update(2 * FLOOR, FLOOR);
        assert_eq!(woken.0.load(Ordering::SeqCst), 0, "still at the budget");
        budget.update(3 * FLOOR, FLOOR);
        assert_eq!(woken.0.load(Ordering::SeqCst), 1);
        assert_eq!(budget.used(), 2 * FLOOR);
        assert!(!budget.park(&waker, &mut parked), "under again: read on");
        budget.update(FLOOR, 0);
        budget.update(FLOOR, 0);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn one_connection_at_a_time_is_exempt_and_its_release_wakes_the_parked() {
        let budget = Budget::new(FLOOR);
        let woken = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&woken));
        budget.update(0, 4 * FLOOR);
        assert!(budget.claim(1));
        assert!(!budget.claim(2), "one at a time");
        let mut parked = None;
        assert!(budget.park(&waker, &mut parked));
        budget.release(2);
        assert_eq!(woken.0.load(Ordering::SeqCst), 0, "not the holder's");
        budget.release(1);
        assert_eq!(woken.0.load(Ordering::SeqCst), 1);
        assert!(budget.claim(2));
    }

    #[test]
    fn a_fall_after_high_usage_asks_for_one_trim() {
        let budget = Budget::new(usize::MAX);
        assert!(!budget.take_trim());
        budget.update(0, TRIM_ABOVE + 1);
        assert!(!budget.take_trim(), "still high");
        budget.update(TRIM_ABOVE + 1, 0);
        assert!(budget.take_trim());
        assert!(!budget.take_trim(), "once");
    }
}

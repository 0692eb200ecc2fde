//! The per-table commit sequencer: the writes of one process to one table take turns, so none
//! of them races another inside delta-rs (where the loser would fail or retry blindly).
//!
//! - [`Sequencer::turn`]: an exclusive turn (UPDATE, DELETE, MERGE, overwrite, restore, alter…),
//!   taken in arrival order; the write runs on the latest snapshot while it holds the turn.
//! - [`Sequencer::join`]: group commit for appends. The append joins the table's queue, then
//!   waits for the turn or for its answer. Whoever gets the turn first leads: it takes every
//!   queued append that can share its commit and commits them together (one Delta version),
//!   then answers each. Appends that arrive while a commit is in flight queue up behind it and
//!   go in the next one, so the more writers there are, the more each commit carries.
//!
//! Both waits are bounded: a write that does not get its turn in time fails with
//! [`TablesError::Busy`] and nothing of it is committed. A queued append that a leader has
//! already taken is being committed: it waits for that commit's answer, so its status is true.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedMutexGuard, oneshot};

use crate::{Result, TablesError};

/// How long a write waits for its turn by default (`BASIN_COMMIT_WAIT` seconds overrides it).
pub const DEFAULT_COMMIT_WAIT: Duration = Duration::from_secs(30);

/// Where a grouped job's answer goes.
pub(crate) type Answer<R> = oneshot::Sender<Result<R>>;

/// The turns and append queues of the tables of one process, by table name.
pub(crate) struct Sequencer<J, R> {
    slots: Mutex<HashMap<String, Arc<Slot<J, R>>>>,
    wait: Duration,
}

struct Slot<J, R> {
    turn: Arc<tokio::sync::Mutex<()>>,
    queue: Mutex<Vec<Queued<J, R>>>,
    next_id: AtomicU64,
}

struct Queued<J, R> {
    id: u64,
    job: J,
    answer: Answer<R>,
}

impl<J: Send + 'static, R: Send + 'static> Sequencer<J, R> {
    pub(crate) fn new(wait: Duration) -> Self {
        Sequencer {
            slots: Mutex::new(HashMap::new()),
            wait,
        }
    }

    fn slot(&self, table: &str) -> Arc<Slot<J, R>> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .entry(table.to_string())
            .or_insert_with(|| {
                Arc::new(Slot {
                    turn: Arc::new(tokio::sync::Mutex::new(())),
                    queue: Mutex::new(Vec::new()),
                    next_id: AtomicU64::new(0),
                })
            })
            .clone()
    }

    fn busy(&self, table: &str) -> TablesError {
        TablesError::Busy {
            table: table.to_string(),
            waited: self.wait.as_secs_f64().ceil() as u64,
        }
    }

    /// An exclusive turn on `table`: no other write of this process to it runs until the
    /// guard is dropped.
    pub(crate) async fn turn(&self, table: &str) -> Result<OwnedMutexGuard<()>> {
        let slot = self.slot(table);
        tokio::time::timeout(self.wait, slot.turn.clone().lock_owned())
            .await
            .map_err(|_| self.busy(table))
    }

    /// Queues `job` for a group commit on `table` and returns its answer. `joins(a, b)`: whether
    /// job `b` may share job `a`'s commit. `commit` commits a group (the leader's job first)
    /// and answers every job of it; it runs as a task of its own, holding the turn, so a caller
    /// that goes away cannot leave a group half answered.
    pub(crate) async fn join<F, Fut>(
        &self,
        table: &str,
        job: J,
        joins: fn(&J, &J) -> bool,
        commit: F,
    ) -> Result<R>
    where
        F: FnOnce(Vec<(J, Answer<R>)>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let slot = self.slot(table);
        let (answer, mut answered) = oneshot::channel();
        let id = slot.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&slot.queue).push(Queued { id, job, answer });
        let deadline = tokio::time::sleep(self.wait);
        tokio::pin!(deadline);
        let guard = tokio::select! {
            a = &mut answered => return outcome(a, table),
            guard = slot.turn.clone().lock_owned() => guard,
            _ = &mut deadline => {
                let withdrawn = {
                    let mut queue = lock(&slot.queue);
                    let i = queue.iter().position(|q| q.id == id);
                    i.map(|i| queue.remove(i)).is_some()
                };
                if withdrawn {
                    return Err(self.busy(table));
                }
                // A leader has taken it and is committing it: its answer is the truth.
                return outcome(answered.await, table);
            }
        };
        // A leader that took this job answered it before it gave up the turn.
        if let Ok(a) = answered.try_recv() {
            return a;
        }
        let group = {
            let mut queue = lock(&slot.queue);
            let Some(mine) = queue.iter().position(|q| q.id == id) else {
                return Err(TablesError::Invalid(format!(
                    "the append to '{table}' was lost by the commit sequencer; nothing was committed"
                )));
            };
            let lead = queue.remove(mine);
            let mut group = vec![(lead.job, lead.answer)];
            let mut i = 0;
            while i < queue.len() {
                if joins(&group[0].0, &queue[i].job) {
                    let q = queue.remove(i);
                    group.push((q.job, q.answer));
                } else {
                    i += 1;
                }
            }
            group
        };
        let committing = commit(group);
        tokio::spawn(async move {
            committing.await;
            drop(guard);
        });
        outcome(answered.await, table)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn outcome<R>(a: Result<Result<R>, oneshot::error::RecvError>, table: &str) -> Result<R> {
    a.unwrap_or_else(|_| {
        Err(TablesError::Invalid(format!(
            "the commit of an append to '{table}' stopped unexpectedly; look at the table's history before retrying"
        )))
    })
}

/// The pause before retry `attempt` (1, 2, …) of a commit that lost to another process:
/// growing, with jitter so that the losers do not collide again.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let base = 20u64 << attempt.min(6);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    Duration::from_millis(base + nanos % base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    type Seq = Sequencer<u32, usize>;

    /// A group commit that takes `pause` and answers each job with the size of its group.
    fn commit_slowly(
        commits: Arc<AtomicUsize>,
        pause: Duration,
    ) -> impl FnOnce(Vec<(u32, Answer<usize>)>) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>>
    {
        move |group| {
            Box::pin(async move {
                tokio::time::sleep(pause).await;
                commits.fetch_add(1, Ordering::SeqCst);
                let n = group.len();
                for (_, answer) in group {
                    let _ = answer.send(Ok(n));
                }
            })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn appends_that_arrive_during_a_commit_share_the_next_one() {
        let seq = Arc::new(Seq::new(Duration::from_secs(10)));
        let commits = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let (seq, commits) = (seq.clone(), commits.clone());
                tokio::spawn(async move {
                    let commit = commit_slowly(commits, Duration::from_millis(50));
                    seq.join("t", i, |_, _| true, commit).await.unwrap()
                })
            })
            .collect();
        let mut acknowledged = 0;
        for t in tasks {
            assert!(t.await.unwrap() >= 1);
            acknowledged += 1;
        }
        assert_eq!(acknowledged, 64);
        let commits = commits.load(Ordering::SeqCst);
        assert!(commits < 16, "64 appends took {commits} commits");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn jobs_that_cannot_share_a_commit_get_their_own() {
        let seq = Arc::new(Seq::new(Duration::from_secs(10)));
        let commits = Arc::new(AtomicUsize::new(0));
        // Odd and even jobs may not share a commit.
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let (seq, commits) = (seq.clone(), commits.clone());
                tokio::spawn(async move {
                    let commit = commit_slowly(commits, Duration::from_millis(30));
                    seq.join("t", i, |a, b| a % 2 == b % 2, commit)
                        .await
                        .unwrap()
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert!(commits.load(Ordering::SeqCst) >= 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn exclusive_turns_run_one_after_another() {
        let seq = Arc::new(Seq::new(Duration::from_secs(10)));
        let inside = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (seq, inside) = (seq.clone(), inside.clone());
                tokio::spawn(async move {
                    let _turn = seq.turn("t").await.unwrap();
                    assert_eq!(
                        inside.fetch_add(1, Ordering::SeqCst),
                        0,
                        "two writers at once"
                    );
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        // Other tables do not wait.
        let _a = seq.turn("a").await.unwrap();
        let _b = seq.turn("b").await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_that_cannot_get_its_turn_is_told_so_and_not_committed() {
        let seq = Arc::new(Seq::new(Duration::from_millis(100)));
        let held = seq.turn("t").await.unwrap();
        let e = seq.turn("t").await.unwrap_err();
        assert!(matches!(e, TablesError::Busy { .. }), "{e}");
        assert!(e.to_string().contains("'t'"), "{e}");
        let commits = Arc::new(AtomicUsize::new(0));
        let commit = commit_slowly(commits.clone(), Duration::ZERO);
        let e = seq.join("t", 1, |_, _| true, commit).await.unwrap_err();
        assert!(matches!(e, TablesError::Busy { .. }), "{e}");
        drop(held);
        // The timed-out append left the queue: the next leader commits only its own job.
        let commit = commit_slowly(commits.clone(), Duration::ZERO);
        assert_eq!(seq.join("t", 2, |_, _| true, commit).await.unwrap(), 1);
        assert_eq!(commits.load(Ordering::SeqCst), 1);
    }
}

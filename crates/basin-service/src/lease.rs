//! Background jobs that only one node may run at a time (maintenance, sources, model
//! schedules): [`Hub::run_exclusive`] holds a lease in the catalog while the job runs.

use std::future::Future;
use std::time::Duration;

use basin_catalog::{Catalog, Lease};
use tokio::time::Instant;

use crate::{Hub, Result};

/// What became of a job run under a lease.
#[derive(Debug)]
pub enum Exclusive<T> {
    /// The job ran to its end under the lease (released afterwards).
    Ran(T),
    /// Another holder has the lease (`None`: it expired in the meantime); the job did not run.
    Busy(Option<Lease>),
    /// The lease was lost while the job ran (not renewed in time, another holder may have it):
    /// the job was stopped at its next await point. Work it committed under this lease's token
    /// may be followed by the new holder's.
    Lost(Lease),
}

impl Hub {
    /// Runs `job` if this process can take the lease `name` (held for `ttl`, renewed every
    /// third of it while the job runs), and releases the lease when the job ends. If the lease
    /// is lost — a renewal finds it taken, or no renewal succeeds within `ttl` (the catalog is
    /// away) — the job is dropped at once: a node that lost its lease stops before the next
    /// holder starts. The job receives the lease; its `token` (fencing token) grows with every
    /// new holder, so that writes it tags can be told apart from a later holder's.
    pub async fn run_exclusive<T, F, Fut>(
        &self,
        name: &str,
        ttl: Duration,
        job: F,
    ) -> Result<Exclusive<T>>
    where
        F: FnOnce(Lease) -> Fut,
        Fut: Future<Output = T>,
    {
        let catalog = self.catalog().clone();
        let asked = Instant::now();
        let Some(lease) = catalog.try_acquire(name, &holder_id(), ttl).await? else {
            return Ok(Exclusive::Busy(catalog.lease(name).await?));
        };
        let renewer = tokio::spawn(keep(catalog.clone(), lease.clone(), ttl, asked + ttl));
        let job = job(lease.clone());
        tokio::pin!(job);
        let mut renewer = AbortOnDrop(renewer);
        tokio::select! {
            out = &mut job => {
                renewer.0.abort();
                // A failed release is harmless: the lease expires by itself.
                let _ = catalog.release(&lease).await;
                Ok(Exclusive::Ran(out))
            }
            _ = &mut renewer.0 => Ok(Exclusive::Lost(lease)),
        }
    }
}

/// Renews `lease` every third of `ttl`; returns once it is lost: a renewal finds it gone, or
/// `deadline` (when the lease expires unless renewed, on this process's clock) passes without
/// a successful renewal.
async fn keep(catalog: Catalog, mut lease: Lease, ttl: Duration, mut deadline: Instant) {
    loop {
        tokio::time::sleep(ttl / 3).await;
        let sent = Instant::now();
        if sent >= deadline {
            return;
        }
        match tokio::time::timeout_at(deadline, catalog.renew(&lease, ttl)).await {
            Ok(Ok(Some(renewed))) => {
                lease = renewed;
                deadline = sent + ttl;
            }
            Ok(Ok(None)) | Err(_) => return,
            // The catalog is away for now: try again until the deadline.
            Ok(Err(_)) => {}
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A holder name unique to this call: host, process and a random part.
fn holder_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!(
        "{host}:{}:{:016x}",
        std::process::id(),
        rand::random::<u64>()
    )
}

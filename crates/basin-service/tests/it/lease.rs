//! `Hub::run_exclusive` on two hubs over one catalog (two nodes): one runs the job, the other
//! is told it is busy; a job longer than the lease keeps it by renewal; a job whose lease is
//! lost is stopped and told.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use basin_service::{Exclusive, Hub, HubConfig};
use basin_testkit::DataDir;

fn config(dir: &std::path::Path) -> HubConfig {
    HubConfig {
        data_dir: dir.to_path_buf(),
        catalog_url: None,
        keystore_dir: None,
        master_key: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_node_runs_an_exclusive_job_and_a_lost_lease_stops_it() {
    let data = DataDir::new().await;
    let a = Hub::open(&config(data.path())).await.unwrap();
    let b = Hub::open(&config(data.path())).await.unwrap();
    let ttl = Duration::from_millis(400);

    // Both nodes start the job at once; the job outlives its lease's ttl three times over, so
    // it holds only by renewal. Exactly one runs it; the other sees who holds it.
    let job = |node: &'static str| {
        move |lease: basin_catalog::Lease| async move {
            tokio::time::sleep(Duration::from_millis(1200)).await;
            (node, lease.token)
        }
    };
    let (ra, rb) = tokio::join!(
        a.run_exclusive("maintenance", ttl, job("a")),
        b.run_exclusive("maintenance", ttl, job("b"))
    );
    let (ran, busy) = match (ra.unwrap(), rb.unwrap()) {
        (Exclusive::Ran(r), Exclusive::Busy(h)) | (Exclusive::Busy(h), Exclusive::Ran(r)) => (r, h),
        other => panic!("expected one run and one busy: {other:?}"),
    };
    assert_eq!(ran.1, 1);
    let holder = busy.expect("the holder is named");
    assert_eq!(holder.token, 1);
    // Released at the end: the next run starts at once, with the next token.
    let next = a
        .run_exclusive("maintenance", ttl, |lease| async move { lease.token })
        .await
        .unwrap();
    assert!(matches!(next, Exclusive::Ran(2)), "{next:?}");

    // A lease lost while the job runs (here: released behind its back and taken by another
    // node, as when it expired during a pause) stops the job and says so.
    let finished = Arc::new(AtomicBool::new(false));
    let (catalog, done) = (b.catalog().clone(), finished.clone());
    let outcome = a
        .run_exclusive("maintenance", ttl, move |lease| async move {
            assert!(catalog.release(&lease).await.unwrap());
            let thief = catalog
                .try_acquire("maintenance", "thief", Duration::from_secs(30))
                .await
                .unwrap()
                .expect("released");
            assert_eq!(thief.token, lease.token + 1);
            tokio::time::sleep(Duration::from_secs(10)).await;
            done.store(true, Ordering::SeqCst);
        })
        .await
        .unwrap();
    match outcome {
        Exclusive::Lost(lease) => assert_eq!(lease.token, 3),
        other => panic!("expected the lease lost: {other:?}"),
    }
    assert!(!finished.load(Ordering::SeqCst), "the job ran on");
    let busy = b
        .run_exclusive("maintenance", ttl, |_| async {})
        .await
        .unwrap();
    assert!(
        matches!(&busy, Exclusive::Busy(Some(l)) if l.holder == "thief"),
        "{busy:?}"
    );
}

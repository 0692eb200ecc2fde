//! Leases for background jobs, on SQLite and on a real PostgreSQL: two nodes (two catalog
//! handles, each with its own connections) race for one lease.

use std::time::Duration;

use basin_catalog::{Catalog, CatalogError};
use basin_testkit::{DataDir, postgres};

/// Holders on `a` and `b` (two nodes) race; exactly one wins each round.
async fn exercise(a: &Catalog, b: &Catalog) {
    let ttl = Duration::from_millis(700);
    // Sixteen holders, half on each node, ask at the same instant: exactly one wins.
    let tries = (0..16).map(|i| {
        let catalog = if i % 2 == 0 { a.clone() } else { b.clone() };
        async move {
            catalog
                .try_acquire("maintenance", &format!("node{i}"), ttl)
                .await
                .unwrap()
        }
    });
    let won: Vec<_> = futures::future::join_all(tries)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(won.len(), 1, "{won:?}");
    let first = won.into_iter().next().unwrap();
    assert_eq!(first.token, 1);
    assert_eq!(b.lease("maintenance").await.unwrap().as_ref(), Some(&first));

    // The holder renews and keeps its token; asking again as the holder extends it too.
    let renewed = a.renew(&first, ttl).await.unwrap().expect("still held");
    assert_eq!(renewed.token, first.token);
    assert!(renewed.expires_at_ms >= first.expires_at_ms);
    let again = b
        .try_acquire("maintenance", &first.holder, ttl)
        .await
        .unwrap()
        .expect("the holder asks again");
    assert_eq!(again.token, first.token);
    assert!(
        a.try_acquire("maintenance", "other", ttl)
            .await
            .unwrap()
            .is_none()
    );

    // Expiry hands it over, with a larger token; the old holder is told it lost the lease.
    tokio::time::sleep(ttl + Duration::from_millis(300)).await;
    assert_eq!(a.lease("maintenance").await.unwrap(), None);
    let second = b
        .try_acquire("maintenance", "other", ttl)
        .await
        .unwrap()
        .expect("expired leases are free");
    assert_eq!(second.token, first.token + 1);
    assert_eq!(a.renew(&first, ttl).await.unwrap(), None);
    assert!(!a.release(&first).await.unwrap());
    assert_eq!(b.lease("maintenance").await.unwrap(), Some(second.clone()));

    // A release frees it at once; the next holder's token is larger still.
    assert!(b.release(&second).await.unwrap());
    let third = a
        .try_acquire("maintenance", &first.holder, Duration::from_secs(60))
        .await
        .unwrap()
        .expect("released leases are free");
    assert_eq!(third.token, second.token + 1);
    // Other names are independent.
    assert!(
        b.try_acquire("sources", "other", ttl)
            .await
            .unwrap()
            .is_some()
    );

    let err = a.try_acquire("", "x", ttl).await.unwrap_err();
    assert!(matches!(err, CatalogError::BadValue(_)), "{err}");
    let err = a.try_acquire("x", "x", Duration::ZERO).await.unwrap_err();
    assert!(err.to_string().contains("time to live"), "{err}");
}

#[tokio::test]
async fn leases_on_sqlite() {
    let data = DataDir::new().await;
    let other = Catalog::open_sqlite(&data.catalog_path()).await.unwrap();
    exercise(&data.catalog, &other).await;
}

#[tokio::test]
async fn leases_on_postgres() {
    let server = postgres::Server::start();
    let a = Catalog::connect(&server.url()).await.unwrap();
    let b = Catalog::connect(&server.url()).await.unwrap();
    exercise(&a, &b).await;
}

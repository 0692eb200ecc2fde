//! The service layer over a real catalog: listings in pages, search, access requests.

mod backup;
mod lease;
mod listing;
mod models;
mod policies;
mod requests;
mod search;
mod tags;

use basin_service::{Hub, Session};
use basin_testkit::{DataDir, rows};

/// A hub over the fixture's catalog, with its keystore in the data directory.
pub(crate) fn hub_of(data: &DataDir) -> Hub {
    let keys = basin_keys::Keystore::open(&data.path().join("keys"), None).unwrap();
    Hub::new(data.catalog.clone(), keys, data.path().to_path_buf())
}

/// A session of user `name` (created when missing) after the administrator ran each of
/// `grants` (`GRANT … ON …`) `TO name`.
pub(crate) async fn user_with(hub: &Hub, data: &DataDir, name: &str, grants: &[&str]) -> Session {
    if data.catalog.user(name).await.unwrap().is_none() {
        data.catalog
            .create_user(name, None, &Default::default())
            .await
            .unwrap();
    }
    let admin = hub.user_session("admin", &[], "test").await.unwrap();
    for g in grants {
        rows(admin.engine(), &format!("{g} TO {name}")).await;
    }
    hub.user_session(name, &[], "test").await.unwrap()
}

/// Runs a test on a thread with a large stack: debug builds of the SQL engine under a session
/// need more than a test thread's.
pub(crate) fn on_large_stack<F: Future<Output = ()> + 'static>(
    test: impl FnOnce() -> F + Send + 'static,
) {
    std::thread::Builder::new()
        .stack_size(16 << 20)
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(test())
        })
        .unwrap()
        .join()
        .unwrap();
}

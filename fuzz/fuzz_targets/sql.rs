//! The SQL front end with its governance rewrite: any text planned as a restricted principal
//! (`analyst`: a row filter, a mask, a hidden table). No panic, no hang. Planning only: the
//! query's rows are not computed (a huge but valid query is not a finding).
#![no_main]

use std::sync::OnceLock;

use basin_sql::Engine;
use libfuzzer_sys::fuzz_target;

#[path = "world.rs"]
mod world;

fuzz_target!(|data: &[u8]| {
    static WORLD: OnceLock<world::World> = OnceLock::new();
    let world = WORLD.get_or_init(world::make);
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    // What the audit log and the REST server ask of any text.
    let _ = Engine::tables_named(sql);
    let _ = Engine::is_query(sql);
    world.runtime.block_on(async {
        if let Err(e) = world.analyst.engine().stream(sql).await {
            // A hidden table answers like a missing one: its name shows up in an error only
            // when the query itself spelled it.
            let text = e.to_string().to_lowercase();
            assert!(
                !text.contains("secret") || sql.to_lowercase().contains("secret"),
                "{sql:?}: {text}"
            );
        }
    });
});

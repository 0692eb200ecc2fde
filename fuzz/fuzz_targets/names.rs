//! Name parsing: `Name`, `DatasetRef`, `TableRef` and "did you mean" on any text. No panic; a
//! reference that parses prints back to text that parses to the same reference.
#![no_main]

use basin_core::{DatasetRef, Name, TableRef, closest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(name) = Name::parse("table", &text) {
        assert_eq!(Name::parse("table", name.as_str()).unwrap(), name);
    }
    if let Ok(dataset) = DatasetRef::parse(&text) {
        assert_eq!(DatasetRef::parse(&dataset.to_string()).unwrap(), dataset);
        let _ = dataset.table(&text);
    }
    if let Ok(table) = TableRef::parse(&text) {
        assert_eq!(TableRef::parse(&table.to_string()).unwrap(), table);
        let _ = table.dataset_ref();
    }
    let middle = text
        .char_indices()
        .nth(text.chars().count() / 2)
        .map_or(text.len(), |(i, _)| i);
    let (a, b) = text.split_at(middle);
    let _ = TableRef::new(a, b, &text);
    let _ = closest(&text, ["orders", "customers", a, b]);
});

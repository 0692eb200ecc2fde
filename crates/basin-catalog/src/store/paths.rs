//! Storage paths: a hub's root or a table's location inside the data directory is stored
//! relative to it and resolved when read, so that a copied, restored or mounted data directory
//! keeps working wherever it is. Object-store URLs (`s3://…`) and paths elsewhere are stored
//! absolute, as are the entries of catalogs written before (they keep working where they are).

use std::path::{Path, PathBuf};

use crate::Catalog;

impl Catalog {
    /// The same catalog, storing paths inside `data_dir` relative to it.
    pub fn with_data_dir(mut self, data_dir: &Path) -> Catalog {
        self.data_dir = Some(std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.into()));
        self
    }

    /// How `location` (a URL or an absolute path) is stored: relative to the data directory
    /// when inside it, else as given.
    pub(crate) fn stored_location(&self, location: &str) -> String {
        let Some(dir) = &self.data_dir else {
            return location.to_string();
        };
        let path = if location.starts_with("file://") {
            match url::Url::parse(location)
                .ok()
                .and_then(|u| u.to_file_path().ok())
            {
                Some(p) => p,
                None => return location.to_string(),
            }
        } else if location.contains("://") || !Path::new(location).is_absolute() {
            return location.to_string();
        } else {
            PathBuf::from(location)
        };
        match path.strip_prefix(dir) {
            Ok(relative) if relative.as_os_str().is_empty() => ".".to_string(),
            Ok(relative) => relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/"),
            Err(_) => location.to_string(),
        }
    }

    /// A stored location as a URL to open: a relative one resolved against the data directory.
    pub(crate) fn resolved_location(&self, stored: &str) -> String {
        let Some(dir) = &self.data_dir else {
            return stored.to_string();
        };
        if stored.contains("://") || Path::new(stored).is_absolute() {
            return stored.to_string();
        }
        let path = if stored == "." {
            dir.clone()
        } else {
            dir.join(stored)
        };
        match url::Url::from_directory_path(&path) {
            Ok(url) => url.as_str().trim_end_matches('/').to_string(),
            Err(()) => path.display().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn catalog(dir: &Path) -> Catalog {
        Catalog::open_sqlite(&dir.join("catalog.db"))
            .await
            .unwrap()
            .with_data_dir(dir)
    }

    #[tokio::test]
    async fn paths_inside_the_data_dir_are_stored_relative() {
        let tmp = tempfile::tempdir().unwrap();
        let c = catalog(tmp.path()).await;
        let inside = url::Url::from_directory_path(tmp.path().join("hubs/main")).unwrap();
        let stored = c.stored_location(inside.as_str().trim_end_matches('/'));
        assert_eq!(stored, "hubs/main");
        assert_eq!(
            c.resolved_location(&stored),
            inside.as_str().trim_end_matches('/')
        );
        // Elsewhere, and object stores: as given.
        for given in [
            "s3://bucket/prefix",
            "file:///elsewhere/hubs/x",
            "/elsewhere/y",
        ] {
            assert_eq!(c.stored_location(given), given);
            assert_eq!(c.resolved_location(given), given);
        }
    }

    /// A catalog written before (absolute entries) reads as it did; storing its hub's root
    /// again makes the entries relative.
    #[tokio::test]
    async fn absolute_entries_of_older_catalogs_keep_working() {
        let tmp = tempfile::tempdir().unwrap();
        let root = url::Url::from_directory_path(tmp.path().join("hubs/old")).unwrap();
        let root = root.as_str().trim_end_matches('/').to_string();
        let before = Catalog::open_sqlite(&tmp.path().join("catalog.db"))
            .await
            .unwrap();
        before
            .create_hub(crate::NewHub {
                name: basin_core::Name::parse("hub", "old").unwrap(),
                storage_root: root.clone(),
                description: String::new(),
            })
            .await
            .unwrap();
        let stored = || async {
            let (s,): (String,) =
                sqlx::query_as("SELECT storage_root FROM hubs WHERE name = 'old'")
                    .fetch_one(&before.pool)
                    .await
                    .unwrap();
            s
        };
        assert_eq!(stored().await, root);
        let now = catalog(tmp.path()).await;
        assert_eq!(now.require_hub("old").await.unwrap().storage_root, root);
        now.move_hub_root("old", &root).await.unwrap();
        assert_eq!(stored().await, "hubs/old");
        assert_eq!(now.require_hub("old").await.unwrap().storage_root, root);
    }
}

//! Counters for `/metrics`, in the Prometheus text format.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Default)]
pub(crate) struct Metrics {
    pub requests: [AtomicU64; 5],
    pub request_micros: AtomicU64,
    pub queries: AtomicU64,
    pub query_rows: AtomicU64,
    pub logins_failed: AtomicU64,
    pub uploads: AtomicU64,
}

impl Metrics {
    pub fn record(&self, status: u16, micros: u64) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.requests[class].fetch_add(1, Relaxed);
        self.request_micros.fetch_add(micros, Relaxed);
    }

    pub fn render(&self) -> String {
        let mut out = String::from(
            "# HELP basin_http_requests_total HTTP requests answered, by status class.\n# TYPE basin_http_requests_total counter\n",
        );
        for (i, n) in self.requests.iter().enumerate() {
            out.push_str(&format!(
                "basin_http_requests_total{{class=\"{}xx\"}} {}\n",
                i + 1,
                n.load(Relaxed)
            ));
        }
        let counters = [
            (
                "basin_http_request_seconds_sum",
                "Time spent answering HTTP requests.",
                self.request_micros.load(Relaxed) as f64 / 1e6,
            ),
            (
                "basin_queries_total",
                "SQL statements run.",
                self.queries.load(Relaxed) as f64,
            ),
            (
                "basin_query_rows_total",
                "Rows returned by queries.",
                self.query_rows.load(Relaxed) as f64,
            ),
            (
                "basin_logins_failed_total",
                "Failed logins.",
                self.logins_failed.load(Relaxed) as f64,
            ),
            (
                "basin_uploads_total",
                "Files uploaded into tables.",
                self.uploads.load(Relaxed) as f64,
            ),
        ];
        for (name, help, value) in counters {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
            ));
        }
        out
    }
}

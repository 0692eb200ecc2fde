//! Leases for background jobs that several nodes could run (maintenance, schedules): at most
//! one holder per name at a time, until the lease expires unless renewed. Each operation is one
//! conditional statement, so two nodes racing for a lease cannot both win (no read-then-write).
//! Time is the catalog database's clock, the one clock every node shares; a holder's own clock
//! only decides when it gives up (see `basin_service::Hub::run_exclusive`).

use std::time::Duration;

use sqlx::AssertSqlSafe;

use super::Catalog;
use crate::error::DbContext;
use crate::{CatalogError, Result};

/// A lease held by `holder` until `expires_at_ms` (catalog clock, milliseconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    pub holder: String,
    /// The fencing token: larger for every new holder of the name, never reused. A job passes it
    /// along with what it writes, so that a holder that lost the lease can be told apart.
    pub token: i64,
    pub expires_at_ms: i64,
}

const MAX_NAME_CHARS: usize = 200;

impl Catalog {
    /// Takes the lease `name` for `holder` for `ttl`, if nobody else holds it now (it is free,
    /// expired or released, or `holder` holds it already: then it is extended with the same
    /// token). `None`: another holder has it; [`Catalog::lease`] says who.
    pub async fn try_acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>> {
        check(name, holder, ttl)?;
        let now = self.now_ms_sql();
        let sql = format!(
            "INSERT INTO leases (name, holder, expires_at, token) VALUES ($1, $2, {now} + $3, 1) \
             ON CONFLICT (name) DO UPDATE SET \
               token = CASE WHEN leases.holder = excluded.holder AND leases.expires_at > {now} \
                            THEN leases.token ELSE leases.token + 1 END, \
               holder = excluded.holder, \
               expires_at = excluded.expires_at \
             WHERE leases.expires_at <= {now} OR leases.holder = excluded.holder \
             RETURNING token, expires_at"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(name)
            .bind(holder)
            .bind(ttl_ms(ttl))
            .fetch_optional(&self.pool)
            .await
            .ctx(|| format!("acquiring the lease '{name}'"))?;
        row.map(|r| lease(name, holder, &r)).transpose()
    }

    /// Extends `lease` by `ttl` from now; `None` if it was lost (it expired, and possibly another
    /// holder took it): the holder must stop what it does under the lease.
    pub async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Option<Lease>> {
        check(&lease.name, &lease.holder, ttl)?;
        let now = self.now_ms_sql();
        let sql = format!(
            "UPDATE leases SET expires_at = {now} + $4 \
             WHERE name = $1 AND holder = $2 AND token = $3 AND expires_at > {now} \
             RETURNING token, expires_at"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(&lease.name)
            .bind(&lease.holder)
            .bind(lease.token)
            .bind(ttl_ms(ttl))
            .fetch_optional(&self.pool)
            .await
            .ctx(|| format!("renewing the lease '{}'", lease.name))?;
        row.map(|r| self::lease(&lease.name, &lease.holder, &r))
            .transpose()
    }

    /// Gives `lease` up, so that another holder may take it at once; `false` if it had been
    /// lost already. The row stays (expired), so that the fencing token keeps growing.
    pub async fn release(&self, lease: &Lease) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE leases SET expires_at = 0 WHERE name = $1 AND holder = $2 AND token = $3",
        )
        .bind(&lease.name)
        .bind(&lease.holder)
        .bind(lease.token)
        .execute(&self.pool)
        .await
        .ctx(|| format!("releasing the lease '{}'", lease.name))?;
        Ok(done.rows_affected() == 1)
    }

    /// The current holder of the lease `name`, if it is held (not expired).
    pub async fn lease(&self, name: &str) -> Result<Option<Lease>> {
        let now = self.now_ms_sql();
        let sql = format!(
            "SELECT holder, token, expires_at FROM leases WHERE name = $1 AND expires_at > {now}"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .ctx(|| format!("reading the lease '{name}'"))?;
        row.map(|r| {
            let holder: String = super::get(&r, "holder")?;
            lease(name, &holder, &r)
        })
        .transpose()
    }

    /// The catalog database's clock in milliseconds since the epoch, as an SQL expression.
    fn now_ms_sql(&self) -> &'static str {
        if self.sqlite {
            "CAST((julianday('now') - 2440587.5) * 86400000.0 AS BIGINT)"
        } else {
            "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
        }
    }
}

fn lease(name: &str, holder: &str, row: &sqlx::any::AnyRow) -> Result<Lease> {
    Ok(Lease {
        name: name.to_string(),
        holder: holder.to_string(),
        token: super::get(row, "token")?,
        expires_at_ms: super::get(row, "expires_at")?,
    })
}

fn ttl_ms(ttl: Duration) -> i64 {
    ttl.as_millis() as i64
}

fn check(name: &str, holder: &str, ttl: Duration) -> Result<()> {
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(CatalogError::BadValue(format!(
            "invalid lease name '{name}': use 1 to {MAX_NAME_CHARS} characters"
        )));
    }
    if holder.is_empty() {
        return Err(CatalogError::BadValue(format!(
            "the lease '{name}' needs a holder name"
        )));
    }
    if ttl < Duration::from_millis(1) || ttl > Duration::from_secs(7 * 24 * 3600) {
        return Err(CatalogError::BadValue(format!(
            "invalid time to live for the lease '{name}' ({ttl:?}): use 1 ms to 7 days"
        )));
    }
    Ok(())
}

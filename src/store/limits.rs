//! The account's usage limits, kept in one row (`usage_limit`) that every process on the database
//! shares: the pause a refusal started, which the claim statement obeys (see
//! [`Store::claim_ready`]), and the last warning that a limit is near. What the pause means and
//! how long it lasts is decided in [`crate::usage_limit`]; this is only where it is kept.
//!
//! "Once" holds across processes because each change is one atomic write: a refusal reports a
//! new pause only if none was on, and only the one executor whose write ends a pause that has
//! passed learns that it did (and announces the resume).

use rusqlite::{Connection, OptionalExtension, params};

use super::{Store, StoreError};
use crate::model::Millis;
use crate::usage_limit::{Pause, Warning};

/// What the database knows of the account's limits.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UsageLimits {
    /// The pause, while it is on (its end may have passed without an executor ending it yet).
    pub pause: Option<Pause>,
    /// The last refusal, paused or not (for doctor).
    pub last_refusal: Option<Pause>,
    /// The last warning that a limit was near, however old.
    pub warning: Option<Warning>,
}

impl UsageLimits {
    /// The pause, if work waits for it at `now`.
    pub fn paused_at(&self, now: Millis) -> Option<&Pause> {
        self.pause.as_ref().filter(|p| p.until > now)
    }
}

/// Records the pause a refusal asks for, in the transaction that sends its task back to wait.
/// A pause already on is only ever lengthened (a weekly limit outlasts a 5-hour one). Returns the
/// pause when it starts one (none was on), for the executor to announce.
pub(super) fn record_pause(tx: &Connection, pause: &Pause) -> Result<Option<Pause>, StoreError> {
    let on: bool = tx
        .prepare_cached("SELECT coalesce(paused_until > ?1, 0) FROM usage_limit WHERE id = 1")?
        .query_row([pause.seen_at], |row| row.get(0))
        .optional()?
        .unwrap_or(false);
    tx.prepare_cached(
        "INSERT INTO usage_limit (id, kind, resets_at, seen_at, paused_until, paused_since) VALUES (1, ?1, ?2, ?3, ?4, ?3)
         ON CONFLICT (id) DO UPDATE SET kind = ?1, resets_at = ?2, seen_at = ?3, paused_until = ?4,
             paused_since = CASE WHEN coalesce(paused_until > ?3, 0) THEN coalesce(paused_since, ?3) ELSE ?3 END
         WHERE NOT coalesce(paused_until > ?4 AND paused_until > ?3, 0)",
    )?
    .execute(params![pause.kind, pause.resets_at, pause.seen_at, pause.until])?;
    Ok((!on).then(|| pause.clone()))
}

/// Records the last warning that a limit is near, with an attempt's outcome.
pub(super) fn record_warning(tx: &Connection, warning: &Warning) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE usage_limit SET warning_kind = ?1, warning_utilization = ?2, warning_threshold = ?3,
             warning_resets_at = ?4, warning_seen_at = ?5
         WHERE id = 1",
    )?
    .execute(params![
        warning.kind,
        warning.utilization,
        warning.surpassed_threshold,
        warning.resets_at,
        warning.seen_at
    ])?;
    Ok(())
}

/// The pause on, if any (ended or not).
pub(super) fn current_pause(tx: &Connection) -> Result<Option<Pause>, StoreError> {
    Ok(tx
        .prepare_cached(
            "SELECT kind, resets_at, seen_at, paused_until FROM usage_limit
             WHERE id = 1 AND paused_until IS NOT NULL",
        )?
        .query_row([], |row| {
            Ok(Pause { kind: row.get(0)?, resets_at: row.get(1)?, seen_at: row.get(2)?, until: row.get(3)? })
        })
        .optional()?)
}

impl Store {
    /// What the database knows of the account's limits. A database of an older schema (a
    /// reader does not migrate) knows none.
    pub fn usage_limits(&mut self) -> Result<UsageLimits, StoreError> {
        self.read(|tx| {
            let exists: bool = tx
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'usage_limit')",
                )?
                .query_row([], |row| row.get(0))?;
            if !exists {
                return Ok(UsageLimits::default());
            }
            let row = tx
                .prepare_cached(
                    "SELECT kind, resets_at, seen_at, paused_until, warning_kind, warning_utilization,
                         warning_threshold, warning_resets_at, warning_seen_at
                     FROM usage_limit WHERE id = 1",
                )?
                .query_row([], |row| {
                    let seen_at: Option<Millis> = row.get(2)?;
                    let until: Option<Millis> = row.get(3)?;
                    let refusal = seen_at.map(|seen_at| Pause {
                        kind: row.get(0).unwrap_or(None),
                        resets_at: row.get(1).unwrap_or(None),
                        seen_at,
                        until: until.unwrap_or(seen_at),
                    });
                    let warning_seen: Option<Millis> = row.get(8)?;
                    let warning = warning_seen.map(|seen_at| Warning {
                        kind: row.get(4).unwrap_or(None),
                        utilization: row.get(5).unwrap_or(None),
                        surpassed_threshold: row.get(6).unwrap_or(None),
                        resets_at: row.get(7).unwrap_or(None),
                        seen_at,
                    });
                    Ok(UsageLimits {
                        pause: refusal.clone().filter(|_| until.is_some()),
                        last_refusal: refusal,
                        warning,
                    })
                })
                .optional()?;
            Ok(row.unwrap_or_default())
        })
    }

    /// Ends the pause if it has passed at `now`; returns it to the one caller that ended it (who
    /// announces that work resumes), `None` to every other.
    pub fn end_pause(&mut self, now: Millis) -> Result<Option<Pause>, StoreError> {
        self.write(|tx| {
            let Some(pause) = current_pause(tx)?.filter(|p| p.until <= now) else { return Ok(None) };
            let since: Option<Millis> = tx
                .prepare_cached("SELECT paused_since FROM usage_limit WHERE id = 1")?
                .query_row([], |row| row.get(0))?;
            tx.prepare_cached(
                "UPDATE usage_limit SET paused_until = NULL, paused_since = NULL WHERE id = 1 AND paused_until <= ?1",
            )?
            .execute([now])?;
            // The time spent waiting does not count against orchestration deadlines (an hour by
            // default, less than a 5-hour limit): they move on by as long as the pause lasted.
            let lasted = since.map_or(0, |since| (pause.until - since).max(0));
            tx.prepare_cached(
                "UPDATE orchestrations SET deadline_at = deadline_at + ?1
                 WHERE deadline_at IS NOT NULL AND merged_into IS NULL AND status IN ('pending', 'running')",
            )?
            .execute([lasted])?;
            Ok(Some(pause))
        })
    }

    /// A person's "try now": a pause on ends at `now` (an executor then ends it, announces it and
    /// claims). Returns the pause it cut short; `None` when none was on.
    pub fn resume_now(&mut self, now: Millis) -> Result<Option<Pause>, StoreError> {
        self.write(|tx| {
            let Some(pause) = current_pause(tx)?.filter(|p| p.until > now) else { return Ok(None) };
            tx.prepare_cached("UPDATE usage_limit SET paused_until = ?1 WHERE id = 1 AND paused_until > ?1")?
                .execute([now])?;
            Ok(Some(pause))
        })
    }
}

//! The transaction journal: SQLite on disk (WAL, synchronous=FULL), one row per transaction
//! with its state history, written before and after every step that cannot be undone.
//!
//! No full PAN, track 2 or cryptographic key is ever stored: the PAN is masked.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

/// Journal errors.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// SQLite failed.
    #[error("journal: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The directory could not be created.
    #[error("journal directory: {0}")]
    Io(#[from] std::io::Error),
}

/// Where a transaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnState {
    /// Amount taken; waiting for a card.
    Started,
    /// The kernel finished with the card.
    CardRead,
    /// The authorization request is about to be sent (a timeout from here means reversal).
    Authorising,
    /// The host approved.
    Approved,
    /// The host or the card declined.
    Declined,
    /// The kernel ended without an authorization (try another interface, end application).
    Ended,
    /// The card or reader failed before the transaction could complete.
    CardError,
    /// The host could not be reached; nothing was authorised and nothing needs reversing.
    HostUnreachable,
    /// The request may have reached the host but no answer came: a reversal is owed.
    ReversalPending,
    /// The operator cancelled.
    Cancelled,
    /// The host acknowledged the reversal of a request whose answer never came.
    Reversed,
}

impl TxnState {
    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Started => "started",
            TxnState::CardRead => "card_read",
            TxnState::Authorising => "authorising",
            TxnState::Approved => "approved",
            TxnState::Declined => "declined",
            TxnState::Ended => "ended",
            TxnState::CardError => "card_error",
            TxnState::HostUnreachable => "host_unreachable",
            TxnState::ReversalPending => "reversal_pending",
            TxnState::Cancelled => "cancelled",
            TxnState::Reversed => "reversed",
        }
    }
}

/// One journal row as read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JournalRow {
    /// Row ID.
    pub id: i64,
    /// When it started (RFC 3339, UTC).
    pub created_at: String,
    /// Transaction type.
    pub txn_type: String,
    /// Amount in minor units.
    pub amount_minor: u64,
    /// ISO 4217 numeric currency.
    pub currency: u16,
    /// STAN.
    pub stan: u32,
    /// Current state.
    pub state: String,
    /// Reason code for the current state, if any.
    pub reason: Option<String>,
    /// Masked PAN.
    pub pan_masked: Option<String>,
    /// Scheme.
    pub scheme: Option<String>,
    /// AID, hex.
    pub aid: Option<String>,
    /// Host response code.
    pub response_code: Option<String>,
    /// Authorization code.
    pub auth_code: Option<String>,
    /// Retrieval reference number.
    pub rrn: Option<String>,
    /// `none`, `pending` or `done`.
    pub reversal: String,
    /// Every state with its time, one per line.
    pub history: String,
}

/// The card facts the journal keeps (masked).
#[derive(Debug, Clone, Default)]
pub struct CardFacts {
    /// Masked PAN.
    pub pan_masked: Option<String>,
    /// Scheme name.
    pub scheme: Option<String>,
    /// AID, hex.
    pub aid: Option<String>,
}

/// The journal.
pub struct Journal {
    conn: Connection,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Journal")
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Journal {
    /// Opens (creating if needed) the journal at `path`.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS transactions (
                id INTEGER PRIMARY KEY,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                txn_type TEXT NOT NULL,
                amount_minor INTEGER NOT NULL,
                currency INTEGER NOT NULL,
                stan INTEGER NOT NULL,
                state TEXT NOT NULL,
                reason TEXT,
                pan_masked TEXT,
                scheme TEXT,
                aid TEXT,
                response_code TEXT,
                auth_code TEXT,
                rrn TEXT,
                reversal TEXT NOT NULL DEFAULT 'none',
                history TEXT NOT NULL DEFAULT ''
            );
            CREATE TABLE IF NOT EXISTS counters (
                name TEXT PRIMARY KEY,
                value INTEGER NOT NULL
            );
            CREATE TABLE IF NOT EXISTS torn_log (
                id INTEGER PRIMARY KEY,
                created_unix INTEGER NOT NULL,
                txn_id INTEGER NOT NULL,
                record BLOB NOT NULL
            );",
        )?;
        // Columns added after the first release of the schema.
        let columns: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info('transactions')")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for (name, decl) in [
            ("reversal_msg", "BLOB"),
            ("reversal_attempts", "INTEGER NOT NULL DEFAULT 0"),
        ] {
            if !columns.iter().any(|c| c == name) {
                conn.execute_batch(&format!(
                    "ALTER TABLE transactions ADD COLUMN {name} {decl}"
                ))?;
            }
        }
        let mut j = Journal { conn };
        j.recover()?;
        Ok(j)
    }

    /// After a crash: a transaction left in `authorising` with its reversal armed may have
    /// reached the host, so its reversal becomes pending.
    fn recover(&mut self) -> Result<(), JournalError> {
        let t = now();
        self.conn.execute(
            "UPDATE transactions SET state = 'reversal_pending', reversal = 'pending', updated_at = ?1,
                reason = 'interrupted', history = history || ?1 || ' reversal_pending interrupted' || char(10)
             WHERE state = 'authorising' AND reversal_msg IS NOT NULL",
            params![t],
        )?;
        Ok(())
    }

    /// Stores the sealed reversal message before the request leaves (it is only sent if the
    /// request's fate becomes unknown).
    pub fn arm_reversal(&mut self, id: i64, sealed: &[u8]) -> Result<(), JournalError> {
        self.conn.execute(
            "UPDATE transactions SET reversal_msg = ?2 WHERE id = ?1",
            params![id, sealed],
        )?;
        Ok(())
    }

    /// Forgets the armed reversal (the host answered, or never got the request).
    pub fn disarm_reversal(&mut self, id: i64) -> Result<(), JournalError> {
        self.conn.execute(
            "UPDATE transactions SET reversal_msg = NULL WHERE id = ?1",
            params![id],
        )?;
        Ok(())
    }

    /// Transactions whose reversal is owed: (id, sealed message, attempts so far), oldest
    /// first.
    pub fn pending_reversals(&self) -> Result<Vec<(i64, Vec<u8>, u32)>, JournalError> {
        let mut st = self.conn.prepare(
            "SELECT id, reversal_msg, reversal_attempts FROM transactions
             WHERE reversal = 'pending' AND reversal_msg IS NOT NULL ORDER BY id",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Counts a reversal attempt that got no acknowledgement.
    pub fn reversal_attempt(&mut self, id: i64, reason: &str) -> Result<(), JournalError> {
        let t = now();
        self.conn.execute(
            "UPDATE transactions SET reversal_attempts = reversal_attempts + 1, updated_at = ?2,
                history = history || ?2 || ' reversal_attempt ' || ?3 || char(10)
             WHERE id = ?1",
            params![id, t, reason],
        )?;
        Ok(())
    }

    /// The host acknowledged the reversal: the transaction is reversed and the sealed message
    /// is erased.
    pub fn reversal_done(&mut self, id: i64) -> Result<(), JournalError> {
        self.set_state(id, TxnState::Reversed, Some("reversal acknowledged"))?;
        self.conn.execute(
            "UPDATE transactions SET reversal = 'done', reversal_msg = NULL WHERE id = ?1",
            params![id],
        )?;
        Ok(())
    }

    /// Adds a sealed kernel 2 torn record (Book C-2 torn transaction log) for transaction
    /// `txn_id`, keeping at most `max` records: the oldest go first.
    pub fn torn_add(
        &mut self,
        txn_id: i64,
        sealed: &[u8],
        created_unix: i64,
        max: usize,
    ) -> Result<(), JournalError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO torn_log (created_unix, txn_id, record) VALUES (?1, ?2, ?3)",
            params![created_unix, txn_id, sealed],
        )?;
        tx.execute(
            "DELETE FROM torn_log WHERE id NOT IN
                (SELECT id FROM torn_log ORDER BY id DESC LIMIT ?1)",
            params![max as i64],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Drops torn records created before `oldest_unix` (their lifetime, DF811C, is over) and
    /// returns the rest, oldest first: (row id, transaction id, sealed record).
    pub fn torn_live(
        &mut self,
        oldest_unix: i64,
    ) -> Result<Vec<(i64, i64, Vec<u8>)>, JournalError> {
        self.conn.execute(
            "DELETE FROM torn_log WHERE created_unix < ?1",
            params![oldest_unix],
        )?;
        let mut st = self
            .conn
            .prepare("SELECT id, txn_id, record FROM torn_log ORDER BY id")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Removes a torn record (recovered or superseded).
    pub fn torn_remove(&mut self, id: i64) -> Result<(), JournalError> {
        self.conn
            .execute("DELETE FROM torn_log WHERE id = ?1", params![id])?;
        Ok(())
    }

    /// The journal mode SQLite reports (`wal`).
    #[cfg(test)]
    pub fn journal_mode(&self) -> Result<String, JournalError> {
        Ok(self
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))?)
    }

    /// The next system trace audit number, 1-999999, persisted.
    pub fn next_stan(&mut self) -> Result<u32, JournalError> {
        let tx = self.conn.transaction()?;
        let cur: Option<i64> = tx
            .query_row("SELECT value FROM counters WHERE name = 'stan'", [], |r| {
                r.get(0)
            })
            .optional()?;
        let next = match cur {
            Some(v) if (1..999_999).contains(&v) => v + 1,
            _ => 1,
        };
        tx.execute(
            "INSERT INTO counters(name, value) VALUES('stan', ?1)
             ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            params![next],
        )?;
        tx.commit()?;
        Ok(next as u32)
    }

    /// Records a new transaction in state `started`.
    pub fn begin(
        &mut self,
        txn_type: &str,
        amount_minor: u64,
        currency: u16,
        stan: u32,
    ) -> Result<i64, JournalError> {
        let t = now();
        self.conn.execute(
            "INSERT INTO transactions(created_at, updated_at, txn_type, amount_minor, currency, stan, state, history)
             VALUES(?1, ?1, ?2, ?3, ?4, ?5, 'started', ?6)",
            params![t, txn_type, amount_minor as i64, currency, stan, format!("{t} started\n")],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Moves a transaction to `state` with an optional reason code, appending to its history.
    pub fn set_state(
        &mut self,
        id: i64,
        state: TxnState,
        reason: Option<&str>,
    ) -> Result<(), JournalError> {
        let t = now();
        let line = match reason {
            Some(r) => format!("{t} {} {r}\n", state.name()),
            None => format!("{t} {}\n", state.name()),
        };
        self.conn.execute(
            "UPDATE transactions SET state = ?2, reason = ?3, updated_at = ?4, history = history || ?5,
                reversal = CASE WHEN ?2 = 'reversal_pending' THEN 'pending' ELSE reversal END
             WHERE id = ?1",
            params![id, state.name(), reason, t, line],
        )?;
        Ok(())
    }

    /// Stores the (masked) card facts.
    pub fn set_card(&mut self, id: i64, card: &CardFacts) -> Result<(), JournalError> {
        self.conn.execute(
            "UPDATE transactions SET pan_masked = ?2, scheme = ?3, aid = ?4 WHERE id = ?1",
            params![id, card.pan_masked, card.scheme, card.aid],
        )?;
        Ok(())
    }

    /// Stores the host's answer.
    pub fn set_host(
        &mut self,
        id: i64,
        response_code: &str,
        auth_code: Option<&str>,
        rrn: Option<&str>,
    ) -> Result<(), JournalError> {
        self.conn.execute(
            "UPDATE transactions SET response_code = ?2, auth_code = ?3, rrn = ?4 WHERE id = ?1",
            params![id, response_code, auth_code, rrn],
        )?;
        Ok(())
    }

    /// One row.
    pub fn get(&self, id: i64) -> Result<Option<JournalRow>, JournalError> {
        Ok(self
            .conn
            .query_row(&format!("{SELECT} WHERE id = ?1"), params![id], row)
            .optional()?)
    }

    /// The most recent rows, newest first.
    pub fn recent(&self, limit: usize) -> Result<Vec<JournalRow>, JournalError> {
        let mut st = self
            .conn
            .prepare(&format!("{SELECT} ORDER BY id DESC LIMIT ?1"))?;
        let rows = st.query_map(params![limit as i64], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

const SELECT: &str = "SELECT id, created_at, txn_type, amount_minor, currency, stan, state, reason,
    pan_masked, scheme, aid, response_code, auth_code, rrn, reversal, history FROM transactions";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JournalRow> {
    Ok(JournalRow {
        id: r.get(0)?,
        created_at: r.get(1)?,
        txn_type: r.get(2)?,
        amount_minor: r.get::<_, i64>(3)? as u64,
        currency: r.get(4)?,
        stan: r.get(5)?,
        state: r.get(6)?,
        reason: r.get(7)?,
        pan_masked: r.get(8)?,
        scheme: r.get(9)?,
        aid: r.get(10)?,
        response_code: r.get(11)?,
        auth_code: r.get(12)?,
        rrn: r.get(13)?,
        reversal: r.get(14)?,
        history: r.get(15)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_log_keeps_the_newest_and_drops_the_expired() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let mut j = Journal::open(&path).unwrap();
        j.torn_add(1, b"first", 1000, 2).unwrap();
        j.torn_add(2, b"second", 1010, 2).unwrap();
        j.torn_add(3, b"third", 1020, 2).unwrap();
        let live = j.torn_live(0).unwrap();
        let txns: Vec<i64> = live.iter().map(|r| r.1).collect();
        assert_eq!(txns, vec![2, 3], "at most two, the oldest went");
        drop(j);
        let mut j = Journal::open(&path).unwrap();
        let live = j.torn_live(1015).unwrap();
        assert_eq!(live.len(), 1, "the one created at 1010 expired");
        assert_eq!(live[0].2, b"third");
        j.torn_remove(live[0].0).unwrap();
        assert!(j.torn_live(0).unwrap().is_empty());
    }

    #[test]
    fn rows_states_and_stan_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let id = {
            let mut j = Journal::open(&path).unwrap();
            assert_eq!(j.journal_mode().unwrap(), "wal");
            assert_eq!(j.next_stan().unwrap(), 1);
            assert_eq!(j.next_stan().unwrap(), 2);
            let id = j.begin("sale", 1234, 978, 2).unwrap();
            j.set_state(id, TxnState::Authorising, None).unwrap();
            j.set_state(id, TxnState::ReversalPending, Some("response_timeout"))
                .unwrap();
            id
        };
        let mut j = Journal::open(&path).unwrap();
        assert_eq!(j.next_stan().unwrap(), 3);
        let r = j.get(id).unwrap().unwrap();
        assert_eq!(r.state, "reversal_pending");
        assert_eq!(r.reversal, "pending");
        assert_eq!(r.reason.as_deref(), Some("response_timeout"));
        assert_eq!(r.history.lines().count(), 3);
        assert!(
            r.history
                .lines()
                .last()
                .unwrap()
                .ends_with("reversal_pending response_timeout")
        );
        assert_eq!(j.recent(10).unwrap().len(), 1);
    }
}

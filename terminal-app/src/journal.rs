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
    /// A software update holds the terminal (`kassa update check --hold`): no transaction
    /// may start until it is released or the terminal restarts.
    #[error("a software update is being installed; payments resume after the restart")]
    UpdateHold,
}

/// When opening the journal recovers what a crash left.
#[derive(Debug, Clone, Copy)]
enum Recovery {
    /// When no other process holds the journal's lock.
    IfFree,
    /// After waiting up to this long for the lock.
    Wait(std::time::Duration),
    /// Never (readers).
    Never,
}

/// Takes the exclusive lock on `journal.db.lock`, trying for up to `wait`.
fn take_lock(
    path: &Path,
    wait: std::time::Duration,
) -> Result<Option<std::fs::File>, JournalError> {
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path.with_extension("db.lock"))?;
    let until = std::time::Instant::now() + wait;
    loop {
        match lock.try_lock() {
            Ok(()) => return Ok(Some(lock)),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < until => {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
        }
    }
}

/// Counts of what the host is owed and what is in progress ([`Journal::counts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Advices owed.
    pub advices: usize,
    /// Reversals owed.
    pub reversals: usize,
    /// QR payments whose outcome is unknown.
    pub unknown: usize,
    /// Rows between their start and their outcome.
    pub in_progress: usize,
}

/// [`Journal::counts`] on `conn` (the journal, or a transaction of it).
fn counts_in(conn: &Connection) -> Result<Counts, JournalError> {
    Ok(conn.query_row(
        "SELECT
            COALESCE(SUM(advice = 'pending'), 0),
            COALESCE(SUM(reversal = 'pending'), 0),
            COALESCE(SUM(state = 'unknown'), 0),
            COALESCE(SUM(state IN ('started', 'card_read', 'authorising', 'void_pending')), 0)
         FROM transactions",
        [],
        |r| {
            Ok(Counts {
                advices: r.get::<_, i64>(0)? as usize,
                reversals: r.get::<_, i64>(1)? as usize,
                unknown: r.get::<_, i64>(2)? as usize,
                in_progress: r.get::<_, i64>(3)? as usize,
            })
        },
    )?)
}

/// How long an update hold lasts when its updater never releases it, seconds.
pub const UPDATE_HOLD_S: i64 = 1800;

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
    /// The host could not be reached and the terminal approved offline (store-and-forward):
    /// an advice is owed to the host (`advice` says whether it went).
    OfflineApproved,
    /// The operator voided it and the host acknowledged (or, offline, it never left).
    Voided,
    /// A void was asked for; its reversal waits for the host's acknowledgement.
    VoidPending,
    /// Refused before any card or host was involved (bad amount, refund above the original,
    /// wrong supervisor PIN...): `reason` is the code.
    Refused,
    /// A QR payment whose outcome the host never told: a status check is owed (never
    /// approved by guess).
    Unknown,
}

impl TxnState {
    /// Every state.
    pub const ALL: [TxnState; 16] = [
        TxnState::Started,
        TxnState::CardRead,
        TxnState::Authorising,
        TxnState::Approved,
        TxnState::Declined,
        TxnState::Ended,
        TxnState::CardError,
        TxnState::HostUnreachable,
        TxnState::ReversalPending,
        TxnState::Cancelled,
        TxnState::Reversed,
        TxnState::OfflineApproved,
        TxnState::Voided,
        TxnState::VoidPending,
        TxnState::Refused,
        TxnState::Unknown,
    ];

    /// The state stored as `name` (an unknown name reads as `ended`).
    pub fn from_name(name: &str) -> TxnState {
        TxnState::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .unwrap_or(TxnState::Ended)
    }

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
            TxnState::OfflineApproved => "offline_approved",
            TxnState::Voided => "voided",
            TxnState::VoidPending => "void_pending",
            TxnState::Refused => "refused",
            TxnState::Unknown => "unknown",
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
    /// The transaction this one refers to (a refund's sale, a completion's pre-authorization).
    pub original_id: Option<i64>,
    /// Tip included in `amount_minor` (taxi mode), minor units.
    pub tip_minor: u64,
    /// The batch it belongs to (closed by `kassa report z`).
    pub batch: i64,
    /// Store-and-forward advice: `none`, `pending` or `done`.
    pub advice: String,
    /// When the customer receipt was printed (RFC 3339), if it was.
    pub printed_at: Option<String>,
    /// A QR payment's reference (the code's 62.05), null for cards.
    pub qr_ref: Option<String>,
}

/// The host's answer as the journal keeps it.
#[derive(Debug, Clone, Copy)]
pub struct HostRecord<'a> {
    /// Response code (field 39).
    pub response_code: &'a str,
    /// Authorization code (field 38).
    pub auth_code: Option<&'a str>,
    /// Retrieval reference number (field 37).
    pub rrn: Option<&'a str>,
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
    /// The journal's lock file, held exclusively by the first `Journal` of the data
    /// directory in any process (None when another holds it).
    _lock: Option<std::fs::File>,
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
        Self::open_with(path, Recovery::IfFree)
    }

    /// Opens the journal for the payment screen, the long-running process: waits up to
    /// `wait` for the lock (a short command may hold it for a moment), then recovers what a
    /// crash left. Without the lock after `wait` it goes on without recovering, and says so.
    pub fn open_primary(path: &Path, wait: std::time::Duration) -> Result<Journal, JournalError> {
        Self::open_with(path, Recovery::Wait(wait))
    }

    /// Opens the journal to read it (`kassa journal list`, `kassa status`, `kassa update
    /// check`): never takes the lock, never recovers, so a running payment's rows and a
    /// crashed one's are shown as they are, and the next writer recovers the latter.
    pub fn open_read(path: &Path) -> Result<Journal, JournalError> {
        Self::open_with(path, Recovery::Never)
    }

    fn open_with(path: &Path, recovery: Recovery) -> Result<Journal, JournalError> {
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
            CREATE TABLE IF NOT EXISTS batches (
                id INTEGER PRIMARY KEY,
                closed_at TEXT NOT NULL,
                totals TEXT NOT NULL,
                response_code TEXT
            );
            CREATE TABLE IF NOT EXISTS update_hold (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                since_unix INTEGER NOT NULL
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
            ("original_id", "INTEGER"),
            ("tip_minor", "INTEGER NOT NULL DEFAULT 0"),
            ("batch", "INTEGER NOT NULL DEFAULT 1"),
            ("advice", "TEXT NOT NULL DEFAULT 'none'"),
            ("advice_msg", "BLOB"),
            ("advice_attempts", "INTEGER NOT NULL DEFAULT 0"),
            // The sealed request of an approved transaction, kept until its batch closes: a
            // void reverses it, a completion refers to it.
            ("request_msg", "BLOB"),
            ("printed_at", "TEXT"),
            // The customer receipt as laid out before printing (masked PAN only), for reprints.
            ("receipt", "TEXT"),
            // QR payments: the reference, `mp` or `cp`, and how many status checks were sent.
            ("qr_ref", "TEXT"),
            ("qr_mode", "TEXT"),
            ("qr_checks", "INTEGER NOT NULL DEFAULT 0"),
        ] {
            if !columns.iter().any(|c| c == name) {
                conn.execute_batch(&format!(
                    "ALTER TABLE transactions ADD COLUMN {name} {decl}"
                ))?;
            }
        }
        // Recovery rewrites the rows a crash left half-done, so it may only run when no live
        // process has them in hand: the first opener takes an exclusive lock on
        // `journal.db.lock` (released by the kernel when the process dies, even by SIGKILL)
        // and recovers; an opener that finds it held (the payment screen is running while an
        // operator reads the journal) leaves the rows alone.
        let held = match recovery {
            Recovery::Never => None,
            Recovery::IfFree => take_lock(path, std::time::Duration::ZERO)?,
            Recovery::Wait(wait) => {
                let held = take_lock(path, wait)?;
                if held.is_none() {
                    tracing::warn!(
                        "journal lock still held by another process after {wait:?}: no recovery now"
                    );
                }
                held
            }
        };
        let mut j = Journal { conn, _lock: None };
        if held.is_some() {
            j.recover()?;
        } else {
            tracing::debug!(
                "journal in use by another process: its unfinished rows are left to it"
            );
        }
        j._lock = held;
        Ok(j)
    }

    /// After a crash: a transaction left in `authorising` with its reversal armed may have
    /// reached the host, so its reversal becomes pending; one that never got that far
    /// (`started`, `card_read`, or `authorising` before the reversal was armed) sent nothing
    /// and ends as `ended` with reason `interrupted`. Advices and reversals already owed stay
    /// owed; the engine sends them.
    fn recover(&mut self) -> Result<(), JournalError> {
        let t = now();
        let tx = self.conn.transaction()?;
        // A QR payment request that was stored may have reached the host and been paid: its
        // outcome is unknown until a status check tells.
        tx.execute(
            "UPDATE transactions SET state = 'unknown', updated_at = ?1,
                reason = 'interrupted', history = history || ?1 || ' unknown interrupted' || char(10)
             WHERE state = 'authorising' AND qr_ref IS NOT NULL AND request_msg IS NOT NULL",
            params![t],
        )?;
        tx.execute(
            "UPDATE transactions SET state = 'reversal_pending', reversal = 'pending', updated_at = ?1,
                reason = 'interrupted', history = history || ?1 || ' reversal_pending interrupted' || char(10)
             WHERE state = 'authorising' AND reversal_msg IS NOT NULL",
            params![t],
        )?;
        tx.execute(
            "UPDATE transactions SET state = 'ended', updated_at = ?1,
                reason = 'interrupted', history = history || ?1 || ' ended interrupted' || char(10)
             WHERE state IN ('started', 'card_read', 'authorising') AND advice != 'pending'",
            params![t],
        )?;
        tx.commit()?;
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

    /// Transactions whose reversal is owed: (id, sealed message, attempts so far), oldest
    /// first.
    pub fn pending_reversals(&self) -> Result<Vec<(i64, Vec<u8>, u32)>, JournalError> {
        let mut st = self.conn.prepare(
            "SELECT id, reversal_msg, reversal_attempts FROM transactions
             WHERE reversal = 'pending' AND reversal_msg IS NOT NULL AND advice != 'pending'
             ORDER BY id",
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

    /// The host acknowledged the reversal: the transaction is reversed (or voided, when the
    /// reversal was a void) and the sealed messages are erased, in one SQLite transaction.
    pub fn reversal_done(&mut self, id: i64) -> Result<(), JournalError> {
        let t = now();
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE transactions SET
                state = CASE WHEN state = 'void_pending' THEN 'voided' ELSE 'reversed' END,
                reason = CASE WHEN state = 'void_pending' THEN 'void acknowledged' ELSE 'reversal acknowledged' END,
                reversal = 'done', reversal_msg = NULL, request_msg = NULL, updated_at = ?2,
                advice = CASE WHEN advice = 'pending' THEN 'done' ELSE advice END, advice_msg = NULL,
                history = history || ?2 || ' ' ||
                    CASE WHEN state = 'void_pending' THEN 'voided' ELSE 'reversed' END || char(10)
             WHERE id = ?1",
            params![id, t],
        )?;
        tx.commit()?;
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
        let batch = self.current_batch()?;
        // A transaction (a STAN) cannot start under an update hold; the check and the insert
        // are one statement, so a hold and a start never cross. Refusals (STAN 0) still go in.
        let inserted = self.conn.execute(
            "INSERT INTO transactions(created_at, updated_at, txn_type, amount_minor, currency, stan, state, history, batch)
             SELECT ?1, ?1, ?2, ?3, ?4, ?5, 'started', ?6, ?7
             WHERE ?5 = 0 OR NOT EXISTS (SELECT 1 FROM update_hold WHERE since_unix > ?8)",
            params![
                t,
                txn_type,
                amount_minor as i64,
                currency,
                stan,
                format!("{t} started\n"),
                batch,
                chrono::Utc::now().timestamp() - UPDATE_HOLD_S
            ],
        )?;
        if inserted == 0 {
            return Err(JournalError::UpdateHold);
        }
        Ok(self.conn.last_insert_rowid())
    }

    /// What the host is owed and what is in progress, counted in one query (for the health
    /// report and the update gate).
    pub fn counts(&self) -> Result<Counts, JournalError> {
        counts_in(&self.conn)
    }

    /// The newest row that ended in an error state: its reason (or state) and when.
    pub fn last_error(&self) -> Result<Option<(String, String)>, JournalError> {
        Ok(self
            .conn
            .query_row(
                "SELECT COALESCE(reason, state), created_at FROM transactions
                 WHERE state IN ('card_error', 'host_unreachable', 'reversal_pending', 'unknown')
                 ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// When the update hold in force began (Unix seconds), if one is.
    pub fn update_hold(&self) -> Result<Option<i64>, JournalError> {
        let cutoff = chrono::Utc::now().timestamp() - UPDATE_HOLD_S;
        Ok(self
            .conn
            .query_row(
                "SELECT since_unix FROM update_hold WHERE since_unix > ?1",
                params![cutoff],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Holds the terminal for a software update: only when no transaction is between its
    /// start and its outcome and nothing is owed to the host (checked and held in one write
    /// transaction, so no transaction can start in between). `None` when the hold is now in
    /// force, else the update gate's reason code for refusing it.
    pub fn hold_for_update(&mut self) -> Result<Option<&'static str>, JournalError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let c = counts_in(&tx)?;
        if c.in_progress > 0 {
            return Ok(Some("transaction_in_progress"));
        }
        if c.advices + c.reversals + c.unknown > 0 {
            return Ok(Some("queue_not_empty"));
        }
        tx.execute(
            "INSERT OR REPLACE INTO update_hold(id, since_unix) VALUES (1, ?1)",
            params![chrono::Utc::now().timestamp()],
        )?;
        tx.commit()?;
        Ok(None)
    }

    /// Ends an update hold (the update is over, or did not happen).
    pub fn release_update_hold(&mut self) -> Result<(), JournalError> {
        self.conn.execute("DELETE FROM update_hold", [])?;
        Ok(())
    }

    /// Records what a transaction refers to and its tip.
    pub fn set_details(
        &mut self,
        id: i64,
        original_id: Option<i64>,
        tip_minor: u64,
    ) -> Result<(), JournalError> {
        self.conn.execute(
            "UPDATE transactions SET original_id = ?2, tip_minor = ?3 WHERE id = ?1",
            params![id, original_id, tip_minor as i64],
        )?;
        Ok(())
    }

    /// The open batch's number (1 until the first close).
    pub fn current_batch(&self) -> Result<i64, JournalError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM counters WHERE name = 'batch'", [], |r| {
                r.get(0)
            })
            .optional()?
            .unwrap_or(1))
    }

    /// Closes the open batch with its totals (JSON) and the host's answer, and opens the next:
    /// one SQLite transaction. The requests kept for voids and completions are erased.
    pub fn close_batch(
        &mut self,
        totals_json: &str,
        response_code: Option<&str>,
    ) -> Result<i64, JournalError> {
        let batch = self.current_batch()?;
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO batches(id, closed_at, totals, response_code) VALUES(?1, ?2, ?3, ?4)",
            params![batch, now(), totals_json, response_code],
        )?;
        tx.execute(
            "INSERT INTO counters(name, value) VALUES('batch', ?1)
             ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            params![batch + 1],
        )?;
        // Pre-authorizations stay open across batches (a hotel stay): their requests stay
        // until completed or voided.
        tx.execute(
            "UPDATE transactions SET request_msg = NULL WHERE batch = ?1 AND txn_type != 'preauth'",
            params![batch],
        )?;
        tx.commit()?;
        Ok(batch)
    }

    /// The rows of batch `batch`, oldest first.
    pub fn batch_rows(&self, batch: i64) -> Result<Vec<JournalRow>, JournalError> {
        let mut st = self
            .conn
            .prepare(&format!("{SELECT} WHERE batch = ?1 ORDER BY id"))?;
        let rows = st.query_map(params![batch], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every row, oldest first (exports).
    pub fn all(&self) -> Result<Vec<JournalRow>, JournalError> {
        let mut st = self.conn.prepare(&format!("{SELECT} ORDER BY id"))?;
        let rows = st.query_map([], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records the host's answer and the state it leads to, and disarms the reversal, in one
    /// SQLite transaction: a crash leaves either the armed reversal of an unanswered request
    /// or the recorded answer, never an answered request with nothing to show for it.
    /// `keep_request` is the sealed request kept for a later void or completion.
    pub fn record_answer(
        &mut self,
        id: i64,
        answer: &HostRecord<'_>,
        state: TxnState,
        keep_request: Option<&[u8]>,
    ) -> Result<(), JournalError> {
        let t = now();
        let reason = format!("rc {}", answer.response_code);
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE transactions SET response_code = ?2, auth_code = ?3, rrn = ?4,
                reversal_msg = NULL, request_msg = ?5, state = ?6, reason = ?7, updated_at = ?8,
                history = history || ?8 || ' ' || ?6 || ' ' || ?7 || char(10)
             WHERE id = ?1",
            params![
                id,
                answer.response_code,
                answer.auth_code,
                answer.rrn,
                keep_request,
                state.name(),
                reason,
                t
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The host could not be reached before the request left: disarms the reversal and moves
    /// to `host_unreachable`, atomically.
    pub fn record_unreachable(&mut self, id: i64, reason: &str) -> Result<(), JournalError> {
        let t = now();
        self.conn.execute(
            "UPDATE transactions SET reversal_msg = NULL, state = 'host_unreachable', reason = ?2,
                updated_at = ?3, history = history || ?3 || ' host_unreachable ' || ?2 || char(10)
             WHERE id = ?1",
            params![id, reason, t],
        )?;
        Ok(())
    }

    /// The terminal approved without the host (a card's offline approval, or store-and-forward
    /// while the host is unreachable): state `offline_approved` with the response code the
    /// terminal set (Y1, Y3), its approval code and the sealed advice owed to the host, which
    /// is also the request a void would reverse. One SQLite transaction.
    pub fn record_offline(
        &mut self,
        id: i64,
        response_code: &str,
        auth_code: &str,
        sealed_advice: &[u8],
        reason: &str,
    ) -> Result<(), JournalError> {
        let t = now();
        self.conn.execute(
            "UPDATE transactions SET reversal_msg = NULL, state = 'offline_approved', reason = ?2,
                response_code = ?3, auth_code = ?4, advice = 'pending', advice_msg = ?5,
                advice_attempts = 0, request_msg = ?5, updated_at = ?6,
                history = history || ?6 || ' offline_approved ' || ?2 || char(10)
             WHERE id = ?1",
            params![id, reason, response_code, auth_code, sealed_advice, t],
        )?;
        Ok(())
    }

    /// Queues an advice the host must acknowledge (a completion): the row moves to `state`
    /// with `response_code`/`auth_code`, and the sealed message is both the advice and the
    /// request a void would reverse.
    pub fn queue_advice(
        &mut self,
        id: i64,
        state: TxnState,
        auth_code: &str,
        sealed: &[u8],
        reason: &str,
    ) -> Result<(), JournalError> {
        let t = now();
        self.conn.execute(
            "UPDATE transactions SET state = ?2, reason = ?3, auth_code = ?4, advice = 'pending',
                advice_msg = ?5, advice_attempts = 0, request_msg = ?5, updated_at = ?6,
                history = history || ?6 || ' ' || ?2 || ' ' || ?3 || char(10)
             WHERE id = ?1",
            params![id, state.name(), reason, auth_code, sealed, t],
        )?;
        Ok(())
    }

    /// The host refused an advice (response code not 00): nothing more to send, and the
    /// transaction is declined after all.
    pub fn advice_refused(&mut self, id: i64, response_code: &str) -> Result<(), JournalError> {
        let t = now();
        let reason = format!("advice refused rc {response_code}");
        self.conn.execute(
            "UPDATE transactions SET advice = 'done', advice_msg = NULL, request_msg = NULL,
                state = 'declined', response_code = ?2, reason = ?3, updated_at = ?4,
                history = history || ?4 || ' declined ' || ?3 || char(10)
             WHERE id = ?1",
            params![id, response_code, reason, t],
        )?;
        Ok(())
    }

    /// Offline approvals not yet forwarded: (count, total in minor units).
    pub fn offline_exposure(&self) -> Result<(u64, u64), JournalError> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(amount_minor), 0) FROM transactions
             WHERE state = 'offline_approved' AND advice = 'pending'",
            [],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
        )?)
    }

    /// What has been refunded against `original` so far (approved or pending refunds).
    pub fn refunded(&self, original: i64) -> Result<u64, JournalError> {
        Ok(self.conn.query_row(
            "SELECT COALESCE(SUM(amount_minor), 0) FROM transactions
             WHERE original_id = ?1 AND txn_type = 'refund'
               AND state IN ('approved', 'offline_approved', 'authorising', 'reversal_pending', 'void_pending')",
            params![original],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    /// The completion of pre-authorization `preauth`, if one stands.
    pub fn completion_of(&self, preauth: i64) -> Result<Option<i64>, JournalError> {
        Ok(self
            .conn
            .query_row(
                "SELECT id FROM transactions WHERE original_id = ?1 AND txn_type = 'completion'
                   AND state IN ('approved', 'offline_approved', 'void_pending', 'started')
                 ORDER BY id DESC LIMIT 1",
                params![preauth],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Pre-authorizations holding funds, from any batch (they stay open across batches):
    /// approved and without a standing completion. (count, total in minor units); one query.
    pub fn open_preauths(&self) -> Result<(u64, u64), JournalError> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(p.amount_minor), 0) FROM transactions p
             WHERE p.txn_type = 'preauth' AND p.state = 'approved'
               AND NOT EXISTS (SELECT 1 FROM transactions c
                   WHERE c.original_id = p.id AND c.txn_type = 'completion'
                     AND c.state IN ('approved', 'offline_approved', 'void_pending', 'started'))",
            [],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
        )?)
    }

    /// The newest transaction a void could apply to (approved, in the open batch).
    pub fn last_voidable(&self) -> Result<Option<i64>, JournalError> {
        let batch = self.current_batch()?;
        Ok(self
            .conn
            .query_row(
                "SELECT id FROM transactions WHERE batch = ?1
                   AND state IN ('approved', 'offline_approved') ORDER BY id DESC LIMIT 1",
                params![batch],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Stores the receipt as laid out, before it is printed.
    pub fn set_receipt(&mut self, id: i64, text: &str) -> Result<(), JournalError> {
        self.conn.execute(
            "UPDATE transactions SET receipt = ?2 WHERE id = ?1",
            params![id, text],
        )?;
        Ok(())
    }

    /// The stored receipt of a transaction.
    pub fn receipt(&self, id: i64) -> Result<Option<String>, JournalError> {
        Ok(self
            .conn
            .query_row(
                "SELECT receipt FROM transactions WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    /// Advices owed to the host: (id, sealed advice, attempts so far), oldest first.
    pub fn pending_advices(&self) -> Result<Vec<(i64, Vec<u8>, u32)>, JournalError> {
        let mut st = self.conn.prepare(
            "SELECT id, advice_msg, advice_attempts FROM transactions
             WHERE advice = 'pending' AND advice_msg IS NOT NULL ORDER BY id",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Counts an advice attempt before it is sent. False when the advice is no longer owed
    /// (withdrawn by a void meanwhile): then it must not be sent.
    pub fn advice_attempt(&mut self, id: i64, reason: &str) -> Result<bool, JournalError> {
        let t = now();
        let n = self.conn.execute(
            "UPDATE transactions SET advice_attempts = advice_attempts + 1, updated_at = ?2,
                history = history || ?2 || ' advice_attempt ' || ?3 || char(10)
             WHERE id = ?1 AND advice = 'pending'",
            params![id, t, reason],
        )?;
        Ok(n == 1)
    }

    /// Withdraws an advice that was never sent (a void before forwarding): the row becomes
    /// `voided`. False when it was attempted already (or is not owed): then it may have
    /// reached the host and must be reversed instead. One conditional update, so a `sync` in
    /// another process cannot send it after it was withdrawn.
    pub fn withdraw_advice(&mut self, id: i64) -> Result<bool, JournalError> {
        let t = now();
        let n = self.conn.execute(
            "UPDATE transactions SET advice = 'none', advice_msg = NULL, request_msg = NULL,
                state = 'voided', reason = 'void before forwarding', updated_at = ?2,
                history = history || ?2 || ' voided before forwarding' || char(10)
             WHERE id = ?1 AND advice = 'pending' AND advice_attempts = 0",
            params![id, t],
        )?;
        Ok(n == 1)
    }

    /// Appends a line to a transaction's history.
    pub fn note(&mut self, id: i64, text: &str) -> Result<(), JournalError> {
        let t = now();
        self.conn.execute(
            "UPDATE transactions SET updated_at = ?2, history = history || ?2 || ' ' || ?3 || char(10)
             WHERE id = ?1",
            params![id, t, text],
        )?;
        Ok(())
    }

    /// The host acknowledged the advice: erase the sealed copy it was sent from (the request
    /// a void would reverse stays until the batch closes). A completion takes the host's
    /// response code and RRN; an offline approval keeps the code the terminal set (Y1, Y3).
    pub fn advice_done(
        &mut self,
        id: i64,
        response_code: &str,
        rrn: Option<&str>,
    ) -> Result<(), JournalError> {
        let t = now();
        self.conn.execute(
            "UPDATE transactions SET advice = 'done', advice_msg = NULL, updated_at = ?2,
                response_code = CASE WHEN state = 'offline_approved' THEN response_code ELSE ?3 END,
                rrn = COALESCE(?4, rrn),
                history = history || ?2 || ' advice_acknowledged' || char(10)
             WHERE id = ?1",
            params![id, t, response_code, rrn],
        )?;
        Ok(())
    }

    /// The sealed request kept for a void or completion.
    pub fn request_msg(&self, id: i64) -> Result<Option<Vec<u8>>, JournalError> {
        Ok(self
            .conn
            .query_row(
                "SELECT request_msg FROM transactions WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    /// A void: the sealed reversal is armed and the row waits for the host (void_pending).
    pub fn arm_void(&mut self, id: i64, sealed_reversal: &[u8]) -> Result<(), JournalError> {
        let t = now();
        self.conn.execute(
            "UPDATE transactions SET reversal_msg = ?2, reversal = 'pending', reversal_attempts = 0,
                state = 'void_pending', reason = 'void', updated_at = ?3,
                history = history || ?3 || ' void_pending' || char(10)
             WHERE id = ?1",
            params![id, sealed_reversal, t],
        )?;
        Ok(())
    }

    /// Marks the customer receipt printed.
    pub fn set_printed(&mut self, id: i64) -> Result<(), JournalError> {
        let t = now();
        self.conn.execute(
            "UPDATE transactions SET printed_at = ?2, history = history || ?2 || ' receipt_printed' || char(10)
             WHERE id = ?1",
            params![id, t],
        )?;
        Ok(())
    }

    /// Approved transactions whose receipt was never printed (a crash in between).
    pub fn unprinted(&self) -> Result<Vec<JournalRow>, JournalError> {
        let mut st = self.conn.prepare(&format!(
            "{SELECT} WHERE state IN ('approved', 'offline_approved') AND printed_at IS NULL ORDER BY id"
        ))?;
        let rows = st.query_map([], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A named counter (PIN failures, lock-out time).
    pub fn counter(&self, name: &str) -> Result<i64, JournalError> {
        Ok(self
            .conn
            .query_row(
                "SELECT value FROM counters WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0))
    }

    /// Advances a named counter in one immediate (write-locked) SQLite transaction: `next`
    /// gets the current value (0 when unset) and gives the new one, which is stored before
    /// this returns. Two processes on one journal never get the same value.
    pub fn advance_counter<E>(
        &mut self,
        name: &str,
        next: impl FnOnce(i64) -> Result<i64, E>,
    ) -> Result<Result<i64, E>, JournalError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let cur: i64 = tx
            .query_row(
                "SELECT value FROM counters WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0);
        let value = match next(cur) {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        tx.execute(
            "INSERT INTO counters(name, value) VALUES(?1, ?2)
             ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            params![name, value],
        )?;
        tx.commit()?;
        Ok(Ok(value))
    }

    /// Sets a named counter.
    pub fn set_counter(&mut self, name: &str, value: i64) -> Result<(), JournalError> {
        self.conn.execute(
            "INSERT INTO counters(name, value) VALUES(?1, ?2)
             ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            params![name, value],
        )?;
        Ok(())
    }

    /// Stores a QR payment's reference, mode and sealed request, and moves to `authorising`,
    /// in one SQLite transaction, before the request leaves: a crash from here leaves a row
    /// that a status check resolves.
    pub fn qr_begin(
        &mut self,
        id: i64,
        reference: &str,
        mode: &str,
        sealed_request: &[u8],
    ) -> Result<(), JournalError> {
        let t = now();
        self.conn.execute(
            "UPDATE transactions SET qr_ref = ?2, qr_mode = ?3, request_msg = ?4,
                state = 'authorising', updated_at = ?5,
                history = history || ?5 || ' authorising qr ' || ?3 || char(10)
             WHERE id = ?1",
            params![id, reference, mode, sealed_request, t],
        )?;
        Ok(())
    }

    /// QR payments whose outcome is unknown: (row, sealed request, status checks so far).
    pub fn unknown_qr(&self) -> Result<Vec<(i64, Vec<u8>, u32)>, JournalError> {
        let mut st = self.conn.prepare(
            "SELECT id, request_msg, qr_checks FROM transactions
             WHERE state = 'unknown' AND request_msg IS NOT NULL ORDER BY id",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Counts one status check of a QR payment.
    pub fn qr_checked(&mut self, id: i64) -> Result<(), JournalError> {
        self.conn.execute(
            "UPDATE transactions SET qr_checks = qr_checks + 1 WHERE id = ?1",
            params![id],
        )?;
        Ok(())
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
    pan_masked, scheme, aid, response_code, auth_code, rrn, reversal, history, original_id,
    tip_minor, batch, advice, printed_at, qr_ref FROM transactions";

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
        original_id: r.get(16)?,
        tip_minor: r.get::<_, i64>(17)? as u64,
        batch: r.get(18)?,
        advice: r.get(19)?,
        printed_at: r.get(20)?,
        qr_ref: r.get(21)?,
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

    #[test]
    fn an_interrupted_qr_payment_becomes_unknown_and_a_card_one_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let (qr, card) = {
            let mut j = Journal::open(&path).unwrap();
            let qr = j.begin("sale", 500, 978, 1).unwrap();
            j.qr_begin(qr, "KKASSA001261130000001", "mp", b"sealed")
                .unwrap();
            let card = j.begin("sale", 600, 978, 2).unwrap();
            j.set_state(card, TxnState::Authorising, None).unwrap();
            (qr, card)
        };
        // The process died: on reopening, the QR payment may have been paid (a status
        // check is owed); the card one never sent its request (no reversal armed).
        let mut j = Journal::open(&path).unwrap();
        let r = j.get(qr).unwrap().unwrap();
        assert_eq!(r.state, "unknown");
        assert_eq!(r.qr_ref.as_deref(), Some("KKASSA001261130000001"));
        assert_eq!(j.unknown_qr().unwrap(), vec![(qr, b"sealed".to_vec(), 0)]);
        j.qr_checked(qr).unwrap();
        assert_eq!(j.unknown_qr().unwrap()[0].2, 1);
        assert_eq!(j.get(card).unwrap().unwrap().state, "ended");
    }
}

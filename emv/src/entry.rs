//! Entry Point (EMV Contactless Book B) and the sans-IO transaction driver.
//!
//! ```text
//! start()          Start A: pre-processing per combination (§3.1)
//! begin()          Start B/C: SELECT PPSE (§3.3.2)
//! on_response()    Start C: candidate list, final SELECT (§3.3.3)
//!                  Start D: kernel activation (§3.4), then the kernel's own states
//! ```
//! The caller drives it: every [`Step::Transmit`] command goes to the card and its raw response
//! comes back through [`Transaction::on_response`], until a [`Step::Outcome`]. Transport-level
//! status words (`61xx`, `6Cxx`) are handled here, below the kernels.

use crate::apdu::{Assembler, Command, Response, Transport};
use crate::card::{KernelId, Pan, Scheme, Track2};
use crate::config::{Combination, TerminalConfig, TxnInput};
use crate::outcome::{
    CardSummary, Cvm, Language, Message, Oda, Outcome, OutcomeKind, Reason, Status, UiRequest,
};
use crate::tags as t;
use crate::tlv::{self, TagStore};
use crate::util::{self, bcd_n};
use crate::{c2, c3};

/// The DF name of the Proximity Payment System Environment.
pub const PPSE: &[u8] = b"2PAY.SYS.DDF01";

/// Most commands one transaction may send (including GET RESPONSE rounds) before it ends with
/// [`Reason::TooManyCommands`]. A card with a full AFL needs fewer than 40.
pub const MAX_COMMANDS: usize = 64;

/// Kernels this crate implements. Combinations for other kernels are ignored at start.
pub const IMPLEMENTED_KERNELS: &[KernelId] = &[
    KernelId::C2,
    KernelId::C3,
    KernelId::C4,
    KernelId::C5,
    KernelId::C6,
    KernelId::C7,
];

/// Errors in the caller's input to [`EntryPoint::start`] (not card errors: those are
/// outcomes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// Amount does not fit in 12 digits.
    #[error("amount {0} does not fit in 12 digits")]
    AmountTooLarge(u64),
    /// Currency or country code above 999.
    #[error("currency or country code {0} is not a 3-digit number")]
    BadCode(u16),
    /// No combination uses an implemented kernel.
    #[error("no AID is configured for an implemented kernel")]
    NoCombinations,
}

/// One step of the transaction.
#[derive(Debug)]
pub enum Step {
    /// Send this command to the card and pass the response to
    /// [`Transaction::on_response`].
    Transmit(Command),
    /// The transaction reached an outcome.
    Outcome(Box<Outcome>),
}

/// Entry Point: holds the terminal configuration and starts transactions.
#[derive(Debug, Clone)]
pub struct EntryPoint {
    config: TerminalConfig,
}

/// A combination after pre-processing (Book B §3.1.1, the "Entry Point Pre-Processing
/// Indicators").
#[derive(Debug, Clone)]
pub(crate) struct Preprocessed {
    pub combo: Combination,
    pub not_allowed: bool,
    pub cvm_required: bool,
    pub ttq: Option<[u8; 4]>,
}

impl EntryPoint {
    /// An Entry Point for this terminal.
    pub fn new(config: &TerminalConfig) -> Self {
        EntryPoint {
            config: config.clone(),
        }
    }

    /// Start A: checks the input, runs pre-processing for every combination and fills the
    /// terminal's data objects.
    pub fn start(&self, input: TxnInput) -> Result<Transaction, StartError> {
        let amount = bcd_n(input.amount, 6).ok_or(StartError::AmountTooLarge(input.amount))?;
        let other =
            bcd_n(input.amount_other, 6).ok_or(StartError::AmountTooLarge(input.amount_other))?;
        let currency =
            bcd_n(input.currency as u64, 2).ok_or(StartError::BadCode(input.currency))?;
        if input.currency > 999 {
            return Err(StartError::BadCode(input.currency));
        }
        if self.config.country > 999 {
            return Err(StartError::BadCode(self.config.country));
        }
        let combos: Vec<Combination> = self
            .config
            .combinations
            .iter()
            .filter(|c| IMPLEMENTED_KERNELS.contains(&c.kernel))
            .cloned()
            .collect();
        if combos.is_empty() {
            return Err(StartError::NoCombinations);
        }
        let pre = combos.into_iter().map(|c| preprocess(c, &input)).collect();

        let mut data = TagStore::new();
        data.insert(t::AMOUNT_AUTHORISED, amount);
        data.insert(
            t::AMOUNT_AUTHORISED_BIN,
            (input.amount as u32).to_be_bytes().to_vec(),
        );
        data.insert(t::AMOUNT_OTHER, other);
        data.insert(t::TXN_CURRENCY, currency);
        data.insert(t::TXN_CURRENCY_EXPONENT, vec![input.currency_exponent]);
        data.insert(
            t::TERMINAL_COUNTRY,
            bcd_n(self.config.country as u64, 2).expect("checked"),
        );
        data.insert(t::TXN_DATE, input.date.to_bcd().to_vec());
        data.insert(t::TXN_TIME, input.time.to_bcd().to_vec());
        data.insert(t::TXN_TYPE, vec![input.txn_type.code()]);
        data.insert(t::UNPREDICTABLE_NUMBER, input.unpredictable_number.to_vec());
        data.insert(t::TVR, vec![0u8; 5]);
        data.insert(t::TSI, vec![0u8; 2]);
        data.insert(t::TERMINAL_TYPE, vec![self.config.terminal_type]);
        data.insert(t::TERMINAL_CAPABILITIES, self.config.capabilities.to_vec());
        data.insert(
            t::ADDITIONAL_TERMINAL_CAPABILITIES,
            self.config.additional_capabilities.to_vec(),
        );
        data.insert(
            t::MERCHANT_CATEGORY_CODE,
            bcd_n(self.config.merchant_category_code as u64, 2).unwrap_or_default(),
        );
        data.insert(t::TERMINAL_ID, self.config.terminal_id.as_bytes().to_vec());
        data.insert(t::POS_ENTRY_MODE, vec![0x07]);

        Ok(Transaction {
            ctx: Ctx {
                pre,
                data,
                selected: None,
                capks: self.config.capks.clone(),
                today: input.date,
                oda_records: Vec::new(),
                remaining: Vec::new(),
                torn_log: input.torn_log,
                signed_objects: Vec::new(),
            },
            state: Some(State::Start),
            assembler: Assembler::default(),
            commands: 0,
        })
    }
}

/// Book B §3.1.1: for each combination, compare the amount with the reader limits and set the
/// indicators and the TTQ copy.
fn preprocess(combo: Combination, input: &TxnInput) -> Preprocessed {
    let amount = input.amount;
    // Requirement 3.1.1.1: copy the configured TTQ and clear byte 2 bits 8 and 7.
    let mut ttq = combo.ttq.map(|mut q| {
        q[1] &= !0xC0;
        q
    });
    let mut not_allowed = false;
    let mut cvm_required = false;
    // 3.1.1.3: with status check on, an amount of one unit of the currency asks for an
    // online cryptogram.
    if combo.status_check
        && amount == 10u64.pow(input.currency_exponent as u32)
        && let Some(q) = ttq.as_mut()
    {
        q[1] |= 0x80;
    }
    // 3.1.1.6/3.1.1.7: zero amount.
    if amount == 0 {
        if combo.zero_amount_allowed {
            if let Some(q) = ttq.as_mut() {
                q[1] |= 0x80; // online cryptogram required
            }
        } else {
            not_allowed = true;
        }
    }
    // 3.1.1.8: at or above the contactless transaction limit, not allowed. Kernel 2 has two
    // limits (Book C-2 DF8124/DF8125, for cards without and with on-device CVM) and applies
    // the right one itself once it knows the card: here only the higher one rules out.
    let limit = match (combo.kernel, combo.emv_mode.on_device_cvm_txn_limit) {
        (KernelId::C2, Some(od)) => combo.contactless_txn_limit.map(|l| l.max(od)),
        _ => combo.contactless_txn_limit,
    };
    if limit.is_some_and(|l| amount >= l) {
        not_allowed = true;
    }
    // 3.1.1.9: above the floor limit, an online cryptogram is required.
    if combo.floor_limit.is_some_and(|l| amount > l)
        && let Some(q) = ttq.as_mut()
    {
        q[1] |= 0x80;
    }
    // 3.1.1.11: at or above the CVM required limit, a CVM is required.
    if combo.cvm_required_limit.is_some_and(|l| amount >= l) {
        cvm_required = true;
        if let Some(q) = ttq.as_mut() {
            q[1] |= 0x40;
        }
    }
    Preprocessed {
        combo,
        not_allowed,
        cvm_required,
        ttq,
    }
}

/// An application on the card that matches a combination (Book B §3.3.2.5).
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub adf_name: Vec<u8>,
    pub kernel: KernelId,
    pub priority: u8,
    pub combo_index: usize,
    /// Extended selection data (9F29) to append to the ADF name in the final SELECT.
    pub extended: Option<Vec<u8>>,
}

/// Transaction-wide context shared by all states.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub pre: Vec<Preprocessed>,
    pub data: TagStore,
    pub selected: Option<Candidate>,
    /// CA public keys for offline data authentication.
    pub capks: Vec<crate::oda::CaPublicKey>,
    /// The transaction date (certificate expiry checks).
    pub today: crate::util::Date,
    /// Static data to be authenticated, built while reading the records (Book 3 §10.3).
    pub oda_records: Vec<u8>,
    /// Candidates not yet tried, for Outcome Select Next.
    pub remaining: Vec<Candidate>,
    /// The caller's torn transaction log (kernel 2).
    pub torn_log: Vec<crate::torn::TornRecord>,
    /// Kernel 6: the GPO response objects a signed offline approval covers.
    pub signed_objects: Vec<u8>,
}

impl Ctx {
    /// The kernel of the selected application.
    pub fn kernel(&self) -> KernelId {
        self.selected.as_ref().map_or(KernelId(0), |c| c.kernel)
    }

    /// The pre-processing result of the selected combination.
    pub fn selected_pre(&self) -> Option<&Preprocessed> {
        self.selected.as_ref().map(|c| &self.pre[c.combo_index])
    }

    /// Builds an outcome from the current data.
    ///
    /// The UI request takes the card's most preferred language (5F2D) when the selected
    /// application gave one (Book A §7.1, Language Preference).
    pub fn outcome(&self, kind: OutcomeKind, reason: Reason, mut ui: UiRequest) -> Outcome {
        if ui.language.is_none() && self.selected.is_some() {
            ui.language = self
                .data
                .get(t::LANGUAGE_PREFERENCE)
                .unwrap_or_default()
                .chunks(2)
                .find_map(Language::parse);
        }
        Outcome {
            kind,
            ui,
            reason,
            cvm: Cvm::NoCvm,
            oda: Oda::NotPerformed,
            card: self.card_summary(),
            data: self.data.clone(),
            online_data: Vec::new(),
            torn_new: None,
            torn_done: None,
        }
    }

    /// An End Application outcome that asks for another card.
    pub fn end_application(&self, reason: Reason) -> Outcome {
        self.outcome(
            OutcomeKind::EndApplication,
            reason,
            UiRequest {
                message: Message::TryAnotherCard,
                status: Status::ProcessingError,
                hold_time_ms: 1500,
                language: None,
            },
        )
    }

    fn card_summary(&self) -> Option<CardSummary> {
        let sel = self.selected.as_ref()?;
        let d = &self.data;
        let text = |tag| {
            d.get(tag)
                .map(|v| String::from_utf8_lossy(v).trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let track2 = d.get(t::TRACK2).and_then(Track2::parse);
        let pan = d
            .get(t::PAN)
            .and_then(Pan::from_cn)
            .or_else(|| track2.as_ref().map(Track2::pan));
        let expiry_yymm = d
            .get(t::EXPIRY)
            .filter(|v| v.len() == 3)
            .map(|v| util::hex(&v[..2]))
            .or_else(|| track2.as_ref().map(|t| t.expiry_yymm().to_string()));
        Some(CardSummary {
            aid: d.get(t::DF_NAME).unwrap_or(&sel.adf_name).to_vec(),
            label: text(t::APPLICATION_LABEL),
            preferred_name: text(t::PREFERRED_NAME),
            kernel: sel.kernel,
            scheme: Scheme::from_aid(&sel.adf_name),
            languages: parse_languages(d.get(t::LANGUAGE_PREFERENCE).unwrap_or_default()),
            pan,
            psn: d
                .get(t::PSN)
                .and_then(util::parse_bcd_n)
                .and_then(|v| u8::try_from(v).ok()),
            expiry_yymm,
        })
    }
}

/// Language Preference (5F2D, Book 1 §11.3.4 / Book 4 §11.1): up to four two-letter ISO 639-1
/// codes, most preferred first. Codes that are not two ASCII letters are skipped.
pub fn parse_languages(v: &[u8]) -> Vec<String> {
    v.chunks(2)
        .filter(|c| c.len() == 2 && c.iter().all(u8::is_ascii_alphabetic))
        .map(|c| String::from_utf8_lossy(c).to_ascii_lowercase())
        .take(4)
        .collect()
}

/// What a state's transition produces.
pub(crate) enum Transition {
    /// Move to `State` and send `Command`.
    Send(State, Command),
    /// Finish.
    Finish(Outcome),
}

/// The states of Entry Point and the kernels. Each transition consumes its state.
#[derive(Debug)]
pub(crate) enum State {
    /// Before `begin`.
    Start,
    /// SELECT PPSE sent.
    SelectPpse(SelectPpse),
    /// Final SELECT of a candidate sent.
    FinalSelect(FinalSelect),
    /// Kernel 3: GET PROCESSING OPTIONS sent.
    C3Gpo(c3::AwaitGpo),
    /// Kernels 3 and 7 (and the GENERATE AC kernels): READ RECORD sent.
    C3Records(c3::ReadRecords),
    /// Kernel 2: GET PROCESSING OPTIONS sent.
    C2Gpo(c2::AwaitGpo),
    /// Kernel 2: RECOVER AC sent (torn transaction recovery).
    C2RecoverAc(c2::AwaitRecoverAc),
    /// Kernel 2: GENERATE AC sent.
    C2GenAc(c2::AwaitGenAc),
}

impl State {
    fn on_response(self, resp: Response, ctx: &mut Ctx) -> Transition {
        match self {
            State::Start => Transition::Finish(ctx.end_application(Reason::AlreadyFinished)),
            State::SelectPpse(s) => s.on_response(resp, ctx),
            State::FinalSelect(s) => s.on_response(resp, ctx),
            State::C3Gpo(s) => s.on_response(resp, ctx),
            State::C3Records(s) => s.on_response(resp, ctx),
            State::C2Gpo(s) => s.on_response(resp, ctx),
            State::C2RecoverAc(s) => s.on_response(resp, ctx),
            State::C2GenAc(s) => s.on_response(resp, ctx),
        }
    }
}

/// Waiting for the answer to SELECT PPSE.
#[derive(Debug)]
pub(crate) struct SelectPpse;

impl SelectPpse {
    /// Book B §3.3.2: build the candidate list from the PPSE directory.
    fn on_response(self, resp: Response, ctx: &mut Ctx) -> Transition {
        if !resp.is_ok() {
            return Transition::Finish(ctx.end_application(Reason::PpseFailed(resp.sw)));
        }
        let fci = match tlv::expect_template(&resp.data, t::FCI_TEMPLATE) {
            Ok(f) => f,
            Err(e) => return Transition::Finish(ctx.end_application(Reason::MalformedResponse(e))),
        };
        let mut entries = Vec::new();
        // 6F > A5 > BF0C > 61*; walk() checks the whole structure first.
        if let Err(e) = tlv::walk(&resp.data, |_, _| {}) {
            return Transition::Finish(ctx.end_application(Reason::MalformedResponse(e)));
        }
        for a5 in fci
            .children()
            .flatten()
            .filter(|o| o.tag() == t::FCI_PROPRIETARY)
        {
            for bf0c in a5
                .children()
                .flatten()
                .filter(|o| o.tag() == t::FCI_ISSUER_DISCRETIONARY)
            {
                for app in bf0c
                    .children()
                    .flatten()
                    .filter(|o| o.tag() == t::APPLICATION_TEMPLATE)
                {
                    let mut aid = None;
                    let mut priority = 0u8;
                    let mut kernel_id = None;
                    let mut extended = None;
                    for o in app.children().flatten() {
                        match o.tag() {
                            t::AID_CARD if (5..=16).contains(&o.value().len()) => {
                                aid = Some(o.value().to_vec())
                            }
                            t::PRIORITY if o.value().len() == 1 => priority = o.value()[0] & 0x0F,
                            // Book B §3.3.2.5: the first byte's low six bits carry the short
                            // kernel ID when bits 8-7 are 00 (international kernels).
                            t::KERNEL_ID if !o.value().is_empty() && o.value()[0] & 0xC0 == 0 => {
                                kernel_id = Some(KernelId(o.value()[0] & 0x3F))
                            }
                            t::EXTENDED_SELECTION => extended = Some(o.value().to_vec()),
                            _ => {}
                        }
                    }
                    if let Some(aid) = aid {
                        entries.push((aid, priority, kernel_id, extended));
                    }
                }
            }
        }
        // Book B §3.3.2.5: for each combination, each directory entry whose ADF name matches
        // the AID and whose requested kernel (9F2A, or the RID's default) is the combination's
        // kernel becomes a candidate, unless pre-processing ruled the combination out.
        let mut candidates = Vec::new();
        let mut ruled_out = false;
        for (combo_index, pre) in ctx.pre.iter().enumerate() {
            for (aid, priority, kernel_id, extended) in &entries {
                let aid_matches = if pre.combo.partial_match {
                    aid.starts_with(&pre.combo.aid)
                } else {
                    *aid == pre.combo.aid
                };
                let requested = kernel_id.or_else(|| KernelId::default_for_aid(aid));
                if aid_matches && requested == Some(pre.combo.kernel) {
                    if pre.not_allowed {
                        ruled_out = true;
                        continue;
                    }
                    candidates.push(Candidate {
                        adf_name: aid.clone(),
                        kernel: pre.combo.kernel,
                        priority: *priority,
                        combo_index,
                        // Book B §3.3.2.6: 9F29 is used when the combination supports
                        // extended selection; the final SELECT names ADF || 9F29.
                        extended: extended.clone().filter(|_| pre.combo.extended_selection),
                    });
                }
            }
        }
        if candidates.is_empty() {
            let reason = if ruled_out {
                Reason::AmountNotAllowed
            } else {
                Reason::NoCommonApplication
            };
            if ruled_out {
                // Book B §3.1.1.13: no combination allowed for this amount.
                return Transition::Finish(ctx.outcome(
                    OutcomeKind::TryAnotherInterface,
                    reason,
                    UiRequest {
                        message: Message::InsertOrSwipe,
                        status: Status::ProcessingError,
                        hold_time_ms: 2000,
                        language: None,
                    },
                ));
            }
            return Transition::Finish(ctx.end_application(reason));
        }
        // §3.3.3.3: highest priority first (1 highest; 0, no priority, lowest); ties keep the
        // terminal's combination order.
        candidates.sort_by_key(|c| if c.priority == 0 { 16 } else { c.priority });
        FinalSelect::next(candidates, ctx)
    }
}

/// Waiting for the answer to the final SELECT of a candidate.
#[derive(Debug)]
pub(crate) struct FinalSelect {
    remaining: Vec<Candidate>,
    current: Candidate,
}

impl FinalSelect {
    /// Selects the next candidate, or ends when none are left (Book B §3.3.3.6). With extended
    /// selection, the SELECT carries ADF name || 9F29 (Book B §3.3.3.2).
    pub(crate) fn next(mut remaining: Vec<Candidate>, ctx: &mut Ctx) -> Transition {
        if remaining.is_empty() {
            return Transition::Finish(ctx.end_application(Reason::NoCommonApplication));
        }
        let current = remaining.remove(0);
        // A new application: forget what the previous one left.
        ctx.selected = None;
        ctx.oda_records.clear();
        let mut name = current.adf_name.clone();
        if let Some(ext) = &current.extended {
            name.extend_from_slice(ext);
        }
        let cmd = Command::select(&name);
        Transition::Send(State::FinalSelect(FinalSelect { remaining, current }), cmd)
    }

    fn on_response(self, resp: Response, ctx: &mut Ctx) -> Transition {
        // §3.3.3.4: a failed SELECT or a malformed FCI removes the candidate.
        let fci_ok = resp.is_ok()
            && tlv::expect_template(&resp.data, t::FCI_TEMPLATE).is_ok()
            && tlv::walk(&resp.data, |_, _| {}).is_ok();
        if !fci_ok {
            return FinalSelect::next(self.remaining, ctx);
        }
        let mut fci = TagStore::new();
        if fci.absorb(&resp.data, |_| false).is_err() {
            return FinalSelect::next(self.remaining, ctx);
        }
        for (tag, v) in fci.iter() {
            if crate::tags::card_may_set(tag, 0) {
                ctx.data.insert(tag, v);
            }
        }
        let current = self.current;
        ctx.data.insert(
            t::AID_TERMINAL,
            ctx.pre[current.combo_index].combo.aid.clone(),
        );
        let kernel = current.kernel;
        ctx.selected = Some(current);
        ctx.remaining = self.remaining;
        // Start D: kernel activation (§3.4). Kernel 7 (UnionPay qPBOC) shares kernel 3's
        // state machine with its own rules where they differ.
        match kernel {
            KernelId::C3 | KernelId::C6 | KernelId::C7 => c3::activate(ctx),
            k if c2::is_gen_ac_kernel(k) => c2::activate(ctx),
            other => Transition::Finish(ctx.end_application(Reason::KernelNotSupported(other))),
        }
    }
}

/// One contactless transaction in progress.
#[derive(Debug)]
pub struct Transaction {
    ctx: Ctx,
    state: Option<State>,
    assembler: Assembler,
    commands: usize,
}

impl Transaction {
    /// Start B/C: the first command (SELECT PPSE), or an immediate outcome when pre-processing
    /// allowed no combination.
    pub fn begin(&mut self) -> Step {
        if !matches!(self.state, Some(State::Start)) {
            return self.finish(self.ctx.end_application(Reason::AlreadyFinished));
        }
        if self.ctx.pre.iter().all(|p| p.not_allowed) {
            // Book B §3.1.1.13: Outcome Try Another Interface.
            let o = self.ctx.outcome(
                OutcomeKind::TryAnotherInterface,
                Reason::AmountNotAllowed,
                UiRequest {
                    message: Message::InsertOrSwipe,
                    status: Status::ProcessingError,
                    hold_time_ms: 2000,
                    language: None,
                },
            );
            return self.finish(o);
        }
        self.send(State::SelectPpse(SelectPpse), Command::select(PPSE))
    }

    /// Feeds the card's raw response (data and SW1 SW2) to the current state.
    pub fn on_response(&mut self, raw: &[u8]) -> Step {
        let Some(state) = self.state.take() else {
            return self.finish(self.ctx.end_application(Reason::AlreadyFinished));
        };
        let resp = match Response::parse(raw) {
            Ok(r) => r,
            Err(_) => return self.finish(self.ctx.end_application(Reason::MalformedApdu)),
        };
        let resp = match self.assembler.receive(resp) {
            Transport::Done(r) => r,
            Transport::Send(cmd) => {
                self.state = Some(state);
                return self.transmit(cmd);
            }
        };
        match state.on_response(resp, &mut self.ctx) {
            Transition::Send(next, cmd) => self.send(next, cmd),
            Transition::Finish(o) => self.finish(o),
        }
    }

    /// The card left the field or the exchange with it failed (an L1 communication error)
    /// while a command was outstanding.
    ///
    /// Book A §6.2 and Book C-3 §5.2 / C-7: a communication error before the card read is
    /// complete ends in Outcome Try Again, restart at Start B, with the request "Present card
    /// again" and the status Ready to Read, so the cardholder taps once more. The outcome keeps
    /// the selected application (its scheme and the card's languages, so the request can be
    /// shown in the cardholder's language) but none of the card's data: nothing from a torn
    /// exchange is used for a payment. After an outcome this is End Application
    /// (Reason::AlreadyFinished).
    ///
    /// Kernel 2 (Book C-2 S9.11-9.15): when the card left with GENERATE AC outstanding, the
    /// outcome carries a torn record ([`Outcome::torn_new`]) for the caller's log; a record
    /// this GENERATE AC superseded is settled ([`Outcome::torn_done`]). A card lost during
    /// RECOVER AC keeps its record.
    pub fn on_card_lost(&mut self) -> Step {
        let Some(state) = self.state.take() else {
            return self.finish(self.ctx.end_application(Reason::AlreadyFinished));
        };
        let (torn_new, torn_done) = match &state {
            State::C2GenAc(g) => (c2::torn_record(&self.ctx), g.superseded),
            _ => (None, None),
        };
        let mut o = self.ctx.outcome(
            OutcomeKind::TryAgain,
            Reason::CardLost,
            UiRequest {
                message: Message::PresentCardAgain,
                status: Status::ReadyToRead,
                hold_time_ms: 0,
                language: None,
            },
        );
        if let Some(card) = o.card.as_mut() {
            card.pan = None;
            card.psn = None;
            card.expiry_yymm = None;
        }
        o.data = TagStore::new();
        o.torn_new = torn_new;
        o.torn_done = torn_done;
        self.finish(o)
    }

    /// The data objects gathered so far (for traces and diagnostics).
    pub fn data(&self) -> &TagStore {
        &self.ctx.data
    }

    fn send(&mut self, next: State, cmd: Command) -> Step {
        self.state = Some(next);
        self.assembler.sent(&cmd);
        self.transmit(cmd)
    }

    fn transmit(&mut self, cmd: Command) -> Step {
        self.commands += 1;
        if self.commands > MAX_COMMANDS {
            self.state = None;
            return Step::Outcome(Box::new(self.ctx.end_application(Reason::TooManyCommands)));
        }
        Step::Transmit(cmd)
    }

    fn finish(&mut self, o: Outcome) -> Step {
        self.state = None;
        Step::Outcome(Box::new(o))
    }
}

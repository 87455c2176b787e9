//! The kernel, a virtual card, the terminal's link and the host simulator together, over real
//! mutual TLS on loopback.

use std::time::Duration;

use acquirer::iso8583::BCD87;
use acquirer::messages::{AuthorizationRequest, AuthorizationResponse, ProcessingCode};
use acquirer::{Link, LinkConfig, LinkErrorKind};
use drivers::VirtualCard;
use emv::entry::{EntryPoint, Step};
use emv::outcome::{Outcome, OutcomeKind};
use emv::tags as t;
use sim::{
    CardFault, DevPki, HostConfig, HostFault, HostRules, HostSim, IssuerKey, builtin_card,
    builtin_profiles,
};
use zeroize::Zeroizing;

fn run_kernel(card: &mut dyn VirtualCard, amount: u64) -> Outcome {
    let (config, input) = emv::testdata::terminal_and_input(amount);
    let mut txn = EntryPoint::new(&config).start(input).unwrap();
    let mut step = txn.begin();
    loop {
        match step {
            Step::Transmit(cmd) => step = txn.on_response(&card.process(&cmd.to_bytes().unwrap())),
            Step::Outcome(o) => return *o,
        }
    }
}

fn request(o: &Outcome, amount: u64, stan: u32) -> AuthorizationRequest {
    let card = o.card.as_ref().unwrap();
    let track2 = emv::card::Track2::parse(o.data.get(t::TRACK2).unwrap()).unwrap();
    AuthorizationRequest {
        processing: ProcessingCode::Purchase,
        pan: Zeroizing::new(card.pan.as_ref().unwrap().expose().to_string()),
        amount_minor: amount,
        transmission: "1129120000".into(),
        stan,
        local_time: "120000".into(),
        local_date: "1129".into(),
        expiry_yymm: card.expiry_yymm.clone().map(Zeroizing::new),
        pos_entry_mode: "072".into(),
        psn: card.psn,
        pos_condition: acquirer::messages::PosCondition::Normal,
        track2: Some(Zeroizing::new(track2.expose_digits(true))),
        terminal_id: "KASSA001".into(),
        merchant_id: "KASSA-DEMO".into(),
        currency: 978,
        icc_data: o.online_data.clone(),
        pin: None,
    }
}

async fn host(pki: &DevPki, client_ca: &str, fault: Option<HostFault>) -> HostSim {
    host_with(pki, client_ca, fault, HostRules::default()).await
}

async fn host_with(
    pki: &DevPki,
    client_ca: &str,
    fault: Option<HostFault>,
    rules: HostRules,
) -> HostSim {
    let tls = pki.host_server_config(client_ca).unwrap();
    HostSim::start(
        "127.0.0.1:0",
        tls,
        HostConfig {
            issuers: IssuerKey::from_profiles(&builtin_profiles()),
            dialect: &BCD87,
            fault,
            rules,
        },
    )
    .await
    .unwrap()
}

fn link(addr: std::net::SocketAddr, creds: &acquirer::Credentials) -> Link {
    Link::new(
        LinkConfig {
            address: addr.to_string(),
            server_name: "127.0.0.1".into(),
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_millis(800),
            dialect: &BCD87,
            allow_tls12: false,
        },
        creds,
    )
    .unwrap()
}

#[test]
fn kernel_reads_the_virtual_visa_card() {
    let mut card = builtin_card("visa").unwrap().unwrap();
    let o = run_kernel(&mut card, 1234);
    assert_eq!(o.kind, OutcomeKind::OnlineRequest, "{:?}", o.reason);
    let summary = o.card.as_ref().unwrap();
    assert_eq!(summary.aid, hex::decode("A0000000031010").unwrap());
    assert_eq!(summary.pan.as_ref().unwrap().masked(), "476173******0119");
    assert_eq!(summary.languages, vec!["en".to_string()]);
    assert_eq!(summary.label.as_deref(), Some("VISA CREDIT"));
    assert_eq!(o.cvm, emv::outcome::Cvm::NoCvm);
    // Field 55 starts with the cryptogram and carries the kernel's data.
    assert_eq!(&o.online_data[..3], &[0x9F, 0x26, 0x08]);
    let mut f55 = emv::tlv::TagStore::new();
    f55.absorb(&o.online_data, |_| false).unwrap();
    assert_eq!(
        f55.get(t::AMOUNT_AUTHORISED),
        Some(&[0, 0, 0, 0, 0x12, 0x34][..])
    );
    assert_eq!(
        f55.get(t::UNPREDICTABLE_NUMBER),
        Some(&[0xDE, 0xAD, 0xBE, 0xEF][..])
    );
    // Floor limit 0: byte 2 bit 8 "online cryptogram required" is set by pre-processing.
    assert_eq!(f55.get(t::TTQ), Some(&[0x22, 0x80, 0x40, 0x00][..]));
    // Above the CVM required limit (50.00) the card's CTQ asks for a signature.
    let o = run_kernel(&mut card, 6000);
    assert_eq!(o.cvm, emv::outcome::Cvm::Signature);
    assert_eq!(o.data.get(t::TTQ), Some(&[0x22, 0xC0, 0x40, 0x00][..]));
    // At or above the contactless limit: try another interface, nothing sent to the card.
    let o = run_kernel(&mut card, 100_000);
    assert_eq!(o.kind, OutcomeKind::TryAnotherInterface);
}

#[tokio::test]
async fn approval_over_mutual_tls() {
    let pki = DevPki::generate("Test CA", "KASSA001").unwrap();
    let host = host(&pki, &pki.ca_cert, None).await;
    let mut link = link(host.local_addr(), &pki.terminal_credentials());
    let mut card = builtin_card("visa").unwrap().unwrap();
    for stan in 1..=2 {
        let o = run_kernel(&mut card, 1234);
        let ex = link
            .exchange(&request(&o, 1234, stan).to_message().unwrap())
            .await
            .unwrap();
        assert_eq!(ex.tls_version, "TLSv1.3");
        // The second exchange reuses the connection.
        assert_eq!(ex.new_connection, stan == 1);
        let r = AuthorizationResponse::from_message(&ex.response).unwrap();
        assert_eq!(r.response_code, "00");
        assert_eq!(r.stan, stan);
        assert_eq!(r.auth_code.as_ref().unwrap().len(), 6);
        assert_eq!(r.rrn.as_ref().unwrap().len(), 12);
        // The ARPC is method 1 over the ARQC under the card's key.
        let arqc: [u8; 8] = o
            .data
            .get(t::APPLICATION_CRYPTOGRAM)
            .unwrap()
            .try_into()
            .unwrap();
        let imk = emv::crypto::Key16::from_hex("0123456789ABCDEFFEDCBA9876543210").unwrap();
        let mk = emv::crypto::derive_icc_master_key(&imk, "4761739001010119", 1).unwrap();
        let mut expected = vec![0x91, 0x0A];
        expected.extend_from_slice(&emv::crypto::arpc_method1(&mk, arqc, *b"00"));
        expected.extend_from_slice(b"00");
        assert_eq!(r.icc_data, expected);
    }
    let ledger = host.ledger();
    assert_eq!(ledger.len(), 2);
    assert_eq!(ledger[0].pan, "476173******0119");
    assert_eq!(ledger[0].response_code, "00");
}

#[tokio::test]
async fn wrong_card_key_is_declined_05() {
    let pki = DevPki::generate("Test CA", "KASSA001").unwrap();
    let host = host(&pki, &pki.ca_cert, None).await;
    let mut link = link(host.local_addr(), &pki.terminal_credentials());
    let mut card = builtin_card("visa")
        .unwrap()
        .unwrap()
        .with_fault(CardFault::WrongAcKey);
    let o = run_kernel(&mut card, 1234);
    assert_eq!(o.kind, OutcomeKind::OnlineRequest);
    let ex = link
        .exchange(&request(&o, 1234, 7).to_message().unwrap())
        .await
        .unwrap();
    let r = AuthorizationResponse::from_message(&ex.response).unwrap();
    assert_eq!(r.response_code, "05");
    assert!(r.auth_code.is_none());
    assert_eq!(host.ledger()[0].reason, "ARQC verification failed");
}

#[tokio::test]
async fn terminal_refuses_a_host_from_another_ca() {
    let terminal_pki = DevPki::generate("Terminal's acquirer CA", "KASSA001").unwrap();
    let rogue = DevPki::generate("Rogue CA", "KASSA001").unwrap();
    // The rogue host would even accept our client certificate.
    let host = host(&rogue, &terminal_pki.ca_cert, None).await;
    let mut link = link(host.local_addr(), &terminal_pki.terminal_credentials());
    let mut card = builtin_card("visa").unwrap().unwrap();
    let o = run_kernel(&mut card, 1234);
    let e = link
        .exchange(&request(&o, 1234, 1).to_message().unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind, LinkErrorKind::HostCertificateRejected, "{e}");
    assert!(!e.request_sent);
    assert!(host.ledger().is_empty(), "nothing reached the rogue host");
}

#[tokio::test]
async fn host_refusing_the_client_certificate() {
    let pki = DevPki::generate("Acquirer CA", "KASSA001").unwrap();
    let other = DevPki::generate("Some other CA", "X").unwrap();
    // The host trusts only terminals of another CA.
    let host = host(&pki, &other.ca_cert, None).await;
    let mut link = link(host.local_addr(), &pki.terminal_credentials());
    let mut card = builtin_card("visa").unwrap().unwrap();
    let o = run_kernel(&mut card, 1234);
    let e = link
        .exchange(&request(&o, 1234, 1).to_message().unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind, LinkErrorKind::ClientCertificateRejected, "{e}");
    assert!(!e.request_sent);
    assert!(host.ledger().is_empty());
}

#[tokio::test]
async fn silent_host_times_out_after_the_request_was_sent() {
    let pki = DevPki::generate("Acquirer CA", "KASSA001").unwrap();
    let host = host(&pki, &pki.ca_cert, Some(HostFault::Silent)).await;
    let mut link = link(host.local_addr(), &pki.terminal_credentials());
    let mut card = builtin_card("visa").unwrap().unwrap();
    let o = run_kernel(&mut card, 1234);
    let e = link
        .exchange(&request(&o, 1234, 1).to_message().unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind, LinkErrorKind::ResponseTimeout);
    assert!(e.request_sent, "a timed-out request must be reversed");
    assert!(
        !link.is_connected(),
        "the link drops a connection after a failure"
    );
}

#[tokio::test]
async fn nothing_listening_is_refused() {
    let pki = DevPki::generate("Acquirer CA", "KASSA001").unwrap();
    // Bind and drop to get a free port with nothing on it.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut link = link(addr, &pki.terminal_credentials());
    let mut m = acquirer::Message::new(100);
    m.set_str(11, "000001");
    let e = link.exchange(&m).await.unwrap_err();
    assert_eq!(e.kind, LinkErrorKind::Refused, "{e}");
    assert!(!e.request_sent);
}

#[test]
fn kernel_copes_with_get_response_and_wrong_le() {
    use sim::transport::{T0Card, T0Style};
    let plain = run_kernel(&mut builtin_card("visa").unwrap().unwrap(), 1234);
    for style in [T0Style::GetResponse { chunk: 16 }, T0Style::WrongLe] {
        let mut card = T0Card::new(builtin_card("visa").unwrap().unwrap(), style);
        let o = run_kernel(&mut card, 1234);
        assert_eq!(
            o.kind,
            OutcomeKind::OnlineRequest,
            "{style:?}: {}",
            o.reason
        );
        // Same card data, same cryptogram inputs: the field 55 bytes match the plain run.
        assert_eq!(o.online_data, plain.online_data, "{style:?}");
    }
}

fn rules(text: &str) -> HostRules {
    HostRules::parse(text).unwrap()
}

#[tokio::test]
async fn insufficient_funds_51_and_balance() {
    let pki = DevPki::generate("Acquirer CA", "KASSA001").unwrap();
    // 20.00 open to buy on every card.
    let host = host_with(&pki, &pki.ca_cert, None, rules("default_balance = 2000\n")).await;
    let mut link = link(host.local_addr(), &pki.terminal_credentials());
    let mut card = builtin_card("visa").unwrap().unwrap();
    let codes: Vec<String> = {
        let mut v = Vec::new();
        for (stan, amount) in [(1, 1500u64), (2, 1000), (3, 500)] {
            let o = run_kernel(&mut card, amount);
            let ex = link
                .exchange(&request(&o, amount, stan).to_message().unwrap())
                .await
                .unwrap();
            v.push(
                AuthorizationResponse::from_message(&ex.response)
                    .unwrap()
                    .response_code,
            );
        }
        v
    };
    // 15.00 approved, 10.00 exceeds the 5.00 left, 5.00 approved.
    assert_eq!(codes, vec!["00", "51", "00"]);
    assert!(host.ledger()[1].reason.contains("insufficient funds"));
}

#[tokio::test]
async fn rule_declines_05_above_an_amount() {
    let pki = DevPki::generate("Acquirer CA", "KASSA001").unwrap();
    let host = host_with(
        &pki,
        &pki.ca_cert,
        None,
        rules("[[rules]]\namount_above = 10000\nrespond = \"05\"\n"),
    )
    .await;
    let mut link = link(host.local_addr(), &pki.terminal_credentials());
    let mut card = builtin_card("visa").unwrap().unwrap();
    let o = run_kernel(&mut card, 20000);
    let ex = link
        .exchange(&request(&o, 20000, 1).to_message().unwrap())
        .await
        .unwrap();
    assert_eq!(
        AuthorizationResponse::from_message(&ex.response)
            .unwrap()
            .response_code,
        "05"
    );
}

#[tokio::test]
async fn timeout_then_reversal_recorded_by_the_simulator() {
    let pki = DevPki::generate("Acquirer CA", "KASSA001").unwrap();
    // The first authorization gets no answer; everything after is normal.
    let host = host_with(
        &pki,
        &pki.ca_cert,
        None,
        rules("[[rules]]\nmti = \"0100\"\naction = \"silent\"\nonce = true\n"),
    )
    .await;
    let mut link = link(host.local_addr(), &pki.terminal_credentials());
    let mut card = builtin_card("visa").unwrap().unwrap();
    let o = run_kernel(&mut card, 1234);
    let original = request(&o, 1234, 77).to_message().unwrap();
    let e = link.exchange(&original).await.unwrap_err();
    assert_eq!(e.kind, LinkErrorKind::ResponseTimeout);
    assert!(e.request_sent);
    // The terminal reverses; the link reconnects by itself.
    let r = acquirer::messages::reversal(&original, false);
    let ex = link.exchange(&r).await.unwrap();
    assert_eq!(ex.response.mti, 410);
    assert_eq!(ex.response.get_str(39).as_deref(), Some("00"));
    assert!(ex.new_connection, "the timed-out connection was dropped");
    // A repeat is acknowledged too (idempotent).
    let ex = link
        .exchange(&acquirer::messages::reversal(&original, true))
        .await
        .unwrap();
    assert_eq!(ex.response.mti, 411);
    let ledger = host.ledger();
    assert_eq!(ledger[0].status, sim::EntryStatus::Reversed, "{ledger:?}");
    assert_eq!(ledger[1].reason, "reversed");
    assert_eq!(ledger[2].reason, "already reversed");
}

#[tokio::test]
async fn connection_dropped_mid_response() {
    let pki = DevPki::generate("Acquirer CA", "KASSA001").unwrap();
    let host = host_with(
        &pki,
        &pki.ca_cert,
        None,
        rules("[[rules]]\naction = \"drop\"\nonce = true\n"),
    )
    .await;
    let mut link = link(host.local_addr(), &pki.terminal_credentials());
    let mut card = builtin_card("visa").unwrap().unwrap();
    let o = run_kernel(&mut card, 1234);
    let e = link
        .exchange(&request(&o, 1234, 5).to_message().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(e.kind, LinkErrorKind::Closed | LinkErrorKind::Io),
        "{e}"
    );
    assert!(
        e.request_sent,
        "the host read the request before dropping: reverse it"
    );
    // The next exchange reconnects and works.
    let o = run_kernel(&mut card, 1234);
    let ex = link
        .exchange(&request(&o, 1234, 6).to_message().unwrap())
        .await
        .unwrap();
    assert!(ex.new_connection);
    assert_eq!(ex.response.get_str(39).as_deref(), Some("00"));
}

#[tokio::test]
async fn a_response_with_the_wrong_stan_is_not_taken() {
    let pki = DevPki::generate("Acquirer CA", "KASSA001").unwrap();
    let host = host_with(
        &pki,
        &pki.ca_cert,
        None,
        rules("[[rules]]\naction = \"wrong-stan\"\n"),
    )
    .await;
    let mut link = link(host.local_addr(), &pki.terminal_credentials());
    let mut card = builtin_card("visa").unwrap().unwrap();
    let o = run_kernel(&mut card, 1234);
    let e = link
        .exchange(&request(&o, 1234, 9).to_message().unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        e.kind,
        LinkErrorKind::ResponseTimeout,
        "the mismatched answer was discarded"
    );
}

#[tokio::test]
async fn network_management_and_reconciliation() {
    use acquirer::messages::{BatchTotals, NetworkCode, network, reconciliation};
    let pki = DevPki::generate("Acquirer CA", "KASSA001").unwrap();
    let host = host(&pki, &pki.ca_cert, None).await;
    let mut link = link(host.local_addr(), &pki.terminal_credentials());
    let ex = link
        .exchange(&network(NetworkCode::SignOn, 1, "1129120000", "KASSA001"))
        .await
        .unwrap();
    assert_eq!(
        (ex.response.mti, ex.response.get_str(39).unwrap().as_str()),
        (810, "00")
    );
    let mut card = builtin_card("visa").unwrap().unwrap();
    for (stan, amount) in [(2, 1000u64), (3, 2500)] {
        let o = run_kernel(&mut card, amount);
        link.exchange(&request(&o, amount, stan).to_message().unwrap())
            .await
            .unwrap();
    }
    let wrong = BatchTotals {
        debits: 2,
        debits_amount: 3400,
        ..Default::default()
    };
    let ex = link
        .exchange(&reconciliation(
            4,
            "1129235900",
            "KASSA001",
            "KASSA-DEMO",
            978,
            wrong,
        ))
        .await
        .unwrap();
    assert_eq!(ex.response.get_str(39).as_deref(), Some("95"));
    let right = BatchTotals {
        debits: 2,
        debits_amount: 3500,
        ..Default::default()
    };
    let ex = link
        .exchange(&reconciliation(
            5,
            "1129235900",
            "KASSA001",
            "KASSA-DEMO",
            978,
            right,
        ))
        .await
        .unwrap();
    assert_eq!(ex.response.get_str(39).as_deref(), Some("00"));
    // The same close again (as when its answer was lost): the same answer, nothing settled twice.
    let again = |stan| reconciliation(stan, "1129235900", "KASSA001", "KASSA-DEMO", 978, right);
    let ex = link.exchange(&again(6)).await.unwrap();
    assert_eq!(ex.response.get_str(39).as_deref(), Some("00"));
    assert!(
        host.ledger()
            .last()
            .is_some_and(|e| e.reason.contains("already closed"))
    );
    // Once there is new business, those totals no longer balance.
    let o = run_kernel(&mut card, 700);
    link.exchange(&request(&o, 700, 7).to_message().unwrap())
        .await
        .unwrap();
    let ex = link.exchange(&again(8)).await.unwrap();
    assert_eq!(ex.response.get_str(39).as_deref(), Some("95"));
}

#[tokio::test]
async fn many_terminals_at_once() {
    let pki = DevPki::generate("Acquirer CA", "KASSA001").unwrap();
    let host = host(&pki, &pki.ca_cert, None).await;
    let addr = host.local_addr();
    let creds = pki.terminal_credentials();
    let mut tasks = Vec::new();
    for t in 0..16u32 {
        let creds = creds.clone();
        tasks.push(tokio::spawn(async move {
            let mut link = link(addr, &creds);
            let mut card = builtin_card("visa").unwrap().unwrap();
            for i in 0..5u32 {
                let o = run_kernel(&mut card, 100 + i as u64);
                let mut r = request(&o, 100 + i as u64, t * 100 + i + 1);
                r.terminal_id = format!("TERM{t:04}");
                let ex = link.exchange(&r.to_message().unwrap()).await.unwrap();
                assert_eq!(ex.response.get_str(39).as_deref(), Some("00"));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(host.ledger().len(), 80);
}

#[tokio::test]
async fn reconnection_backs_off_after_failures() {
    let pki = DevPki::generate("Acquirer CA", "KASSA001").unwrap();
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut link = link(addr, &pki.terminal_credentials());
    let mut m = acquirer::Message::new(800);
    m.set_str(11, "000001").set_str(70, "301");
    assert_eq!(
        link.exchange(&m).await.unwrap_err().kind,
        LinkErrorKind::Refused
    );
    // Straight away: the link does not try again yet.
    let e = link.exchange(&m).await.unwrap_err();
    assert_eq!(e.kind, LinkErrorKind::Backoff, "{e}");
    assert!(!e.request_sent);
    // After the wait it tries again (and is refused again, waiting longer).
    tokio::time::sleep(acquirer::link::FIRST_BACKOFF + std::time::Duration::from_millis(50)).await;
    assert_eq!(
        link.exchange(&m).await.unwrap_err().kind,
        LinkErrorKind::Refused
    );
    tokio::time::sleep(acquirer::link::FIRST_BACKOFF + std::time::Duration::from_millis(50)).await;
    assert_eq!(
        link.exchange(&m).await.unwrap_err().kind,
        LinkErrorKind::Backoff,
        "the second wait is twice as long"
    );
}

#[tokio::test]
async fn connection_closed_half_way_through_the_response() {
    let pki = DevPki::generate("Acquirer CA", "KASSA001").unwrap();
    let host = host_with(
        &pki,
        &pki.ca_cert,
        None,
        rules("[[rules]]\naction = \"truncate\"\n"),
    )
    .await;
    let mut link = link(host.local_addr(), &pki.terminal_credentials());
    let mut card = builtin_card("visa").unwrap().unwrap();
    let o = run_kernel(&mut card, 1234);
    let e = link
        .exchange(&request(&o, 1234, 5).to_message().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e.kind,
            LinkErrorKind::Closed | LinkErrorKind::Io | LinkErrorKind::Tls
        ),
        "{e}"
    );
    assert!(
        e.request_sent,
        "half an answer means the host processed it: reverse"
    );
}

#[tokio::test]
async fn tls12_only_when_allowed() {
    let pki = DevPki::generate("Acquirer CA", "KASSA001").unwrap();
    let tls = pki
        .host_server_config_versions(&pki.ca_cert, &[&rustls::version::TLS12])
        .unwrap();
    let host = HostSim::start(
        "127.0.0.1:0",
        tls,
        HostConfig {
            issuers: IssuerKey::from_profiles(&builtin_profiles()),
            dialect: &BCD87,
            fault: None,
            rules: HostRules::default(),
        },
    )
    .await
    .unwrap();
    let mut echo = acquirer::Message::new(800);
    echo.set_str(11, "000001").set_str(70, "301");
    let mut strict = link(host.local_addr(), &pki.terminal_credentials());
    let e = strict.exchange(&echo).await.unwrap_err();
    assert_eq!(e.kind, LinkErrorKind::Tls, "TLS 1.3 only by default: {e}");
    let mut cfg = strict.config().clone();
    cfg.allow_tls12 = true;
    let mut lenient = Link::new(cfg, &pki.terminal_credentials()).unwrap();
    let ex = lenient.exchange(&echo).await.unwrap();
    assert_eq!(ex.tls_version, "TLSv1.2");
}

/// The UnionPay debit card read by kernel 7 on a terminal that supports online PIN (TTQ
/// byte 1 bit 3).
fn run_unionpay_debit(amount: u64) -> Outcome {
    let (mut config, input) = emv::testdata::terminal_and_input(amount);
    let c = &mut config.combinations[0];
    c.aid = hex::decode("A0000003330101").unwrap();
    c.kernel = emv::card::KernelId::C7;
    c.ttq = Some([0x26, 0x00, 0x40, 0x80]);
    let mut card = builtin_card("unionpay-debit").unwrap().unwrap();
    let mut txn = EntryPoint::new(&config).start(input).unwrap();
    let mut step = txn.begin();
    loop {
        match step {
            Step::Transmit(cmd) => step = txn.on_response(&card.process(&cmd.to_bytes().unwrap())),
            Step::Outcome(o) => return *o,
        }
    }
}

/// Sends the card's request with `pin` enciphered as a terminal loaded with the test key
/// would (AES DUKPT counter `counter`, format 4; or TDES DUKPT and format 0), and returns the
/// response code.
async fn send_with_pin(
    link: &mut Link,
    o: &Outcome,
    stan: u32,
    pin: &str,
    counter: u32,
    tdes: bool,
) -> String {
    use acquirer::pin::{EncipheredPin, aes_dukpt, format0, format4, tdes_dukpt};
    let pan = "6250946000000024";
    let enciphered = if tdes {
        let (ipek, mut ksn) = sim::pinkeys::test_tdes_initial_key();
        ksn[9] = counter as u8;
        let key = tdes_dukpt::pin_key(&ipek, &ksn).unwrap();
        EncipheredPin::Format0 {
            block: format0(pin, pan, &key).unwrap(),
            ksn,
        }
    } else {
        let (ik, mut ksn) = sim::pinkeys::test_aes_initial_key();
        ksn.counter = counter;
        let key = aes_dukpt::working_key(&ik, &ksn, aes_dukpt::Usage::PinEncryption).unwrap();
        EncipheredPin::Format4 {
            block: format4(pin, pan, &key, &[0x5A; 8]).unwrap(),
            ksn: ksn.to_bytes(),
        }
    };
    let mut r = request(o, 30_000, stan);
    r.pos_entry_mode = "071".into();
    r.pin = Some(enciphered);
    let ex = link.exchange(&r.to_message().unwrap()).await.unwrap();
    AuthorizationResponse::from_message(&ex.response)
        .unwrap()
        .response_code
}

#[tokio::test]
async fn the_issuer_checks_online_pins_and_counts_wrong_ones() {
    // Under the CVM limit no PIN; over it the debit card asks for one (CTQ 8000).
    assert_eq!(run_unionpay_debit(1_000).cvm, emv::outcome::Cvm::NoCvm);
    let o = run_unionpay_debit(30_000);
    assert_eq!(o.kind, OutcomeKind::OnlineRequest, "{:?}", o.reason);
    assert_eq!(o.cvm, emv::outcome::Cvm::OnlinePin);

    let pki = DevPki::generate("Test CA", "KASSA001").unwrap();
    let host = host(&pki, &pki.ca_cert, None).await;
    let mut link = link(host.local_addr(), &pki.terminal_credentials());
    // The right PIN under both schemes.
    assert_eq!(
        send_with_pin(&mut link, &o, 1, "2468", 1, false).await,
        "00"
    );
    assert_eq!(send_with_pin(&mut link, &o, 2, "2468", 1, true).await, "00");
    // A block enciphered under a key the BDK does not give: 55, not counted against the
    // cardholder.
    {
        use acquirer::pin::{EncipheredPin, Key16, format4};
        let mut r = request(&o, 30_000, 3);
        r.pin = Some(EncipheredPin::Format4 {
            block: format4("2468", "6250946000000024", &Key16([7; 16]), &[0; 8]).unwrap(),
            ksn: hex::decode("4B41535341000001000000FF")
                .unwrap()
                .try_into()
                .unwrap(),
        });
        let ex = link.exchange(&r.to_message().unwrap()).await.unwrap();
        let code = AuthorizationResponse::from_message(&ex.response)
            .unwrap()
            .response_code;
        assert_eq!(code, "55");
    }
    // Wrong PINs: 55, 55, then the third is 75, and from then on even the right one is 75.
    assert_eq!(
        send_with_pin(&mut link, &o, 4, "1111", 2, false).await,
        "55"
    );
    assert_eq!(
        send_with_pin(&mut link, &o, 5, "2469", 3, false).await,
        "55"
    );
    assert_eq!(
        send_with_pin(&mut link, &o, 6, "24680", 4, false).await,
        "75"
    );
    assert_eq!(
        send_with_pin(&mut link, &o, 7, "8642", 5, false).await,
        "75"
    );
    assert_eq!(
        send_with_pin(&mut link, &o, 8, "2468", 6, false).await,
        "75"
    );
    let ledger = host.ledger();
    let verdicts: Vec<(String, Option<bool>)> = ledger
        .iter()
        .map(|e| (e.response_code.clone(), e.pin_verified))
        .collect();
    assert_eq!(
        verdicts,
        vec![
            ("00".into(), Some(true)),
            ("00".into(), Some(true)),
            ("55".into(), Some(false)),
            ("55".into(), Some(false)),
            ("55".into(), Some(false)),
            ("75".into(), Some(false)),
            ("75".into(), Some(false)),
            ("75".into(), Some(false)),
        ]
    );
    assert!(
        ledger[2].reason.contains("does not decipher"),
        "{}",
        ledger[2].reason
    );
    assert_eq!(ledger[3].reason, "incorrect PIN (1 of 3)");
    // Nothing in the ledger is a PIN.
    let text = serde_json::to_string(&ledger).unwrap();
    assert!(!text.contains("2468") && !text.contains("6250946000000024"));
}

#[tokio::test]
async fn terminal_refuses_expired_wrong_name_and_self_signed_host_certificates() {
    use sim::BadHostCertificate as Bad;
    for (bad, detail) in [
        (Bad::Expired, "expired"),
        (Bad::WrongName, "server name"),
        (Bad::SelfSigned, "not issued by the acquirer CA"),
    ] {
        let pki = DevPki::generate_with_bad_host("Acquirer CA", "KASSA001", bad).unwrap();
        let host = host(&pki, &pki.ca_cert, None).await;
        let mut link = link(host.local_addr(), &pki.terminal_credentials());
        let mut echo = acquirer::Message::new(800);
        echo.set_str(11, "000001").set_str(70, "301");
        let e = link.exchange(&echo).await.unwrap_err();
        assert_eq!(
            e.kind,
            LinkErrorKind::HostCertificateRejected,
            "{bad:?}: {e}"
        );
        assert!(e.to_string().contains(detail), "{bad:?}: {e}");
        assert!(
            !e.request_sent,
            "{bad:?}: nothing may leave before the host is trusted"
        );
        assert!(host.ledger().is_empty(), "{bad:?}");
    }
}

#[tokio::test]
async fn the_simulator_refuses_a_client_without_a_certificate() {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pki = DevPki::generate("Acquirer CA", "KASSA001").unwrap();
    let host = host(&pki, &pki.ca_cert, None).await;
    // A client that trusts the host but presents no certificate of its own.
    let mut roots = rustls::RootCertStore::empty();
    {
        use rustls::pki_types::pem::PemObject as _;
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(pki.ca_cert.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(host.local_addr())
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let answered = match tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
    {
        // TLS 1.3: the client's side of the handshake ends first; the host's refusal comes
        // as an alert on the first read.
        Ok(mut tls) => {
            let mut echo = acquirer::Message::new(800);
            echo.set_str(11, "000001").set_str(70, "301");
            let bytes = echo.encode(&BCD87).unwrap();
            let mut frame = (bytes.len() as u16).to_be_bytes().to_vec();
            frame.extend_from_slice(&bytes);
            let _ = tls.write_all(&frame).await;
            let mut buf = [0u8; 64];
            matches!(
                tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf)).await,
                Ok(Ok(n)) if n > 0
            )
        }
        Err(_) => false,
    };
    assert!(!answered, "a client without a certificate got an answer");
    assert!(host.ledger().is_empty());
}

//! QR payments between the terminal's link and the host simulator, over mutual TLS on
//! loopback: a merchant-presented order paid, rejected or left by the simulated wallet, its
//! status checked and cancelled; consumer-presented codes accepted or refused by format.

use std::time::Duration;

use acquirer::iso8583::BCD87;
use acquirer::qr::{QrMode, QrPaymentRequest, QrResponse, QrStatus, status_request};
use acquirer::{Link, LinkConfig, LinkErrorKind, Message};
use emv::qr::{AdditionalData, Initiation, MerchantAccount, MerchantQr, Template};
use sim::{DevPki, EntryStatus, HostConfig, HostRules, HostSim, IssuerKey, WalletAction};
use zeroize::Zeroizing;

async fn host(pki: &DevPki, rules: &str) -> HostSim {
    HostSim::start(
        "127.0.0.1:0",
        pki.host_server_config(&pki.ca_cert).unwrap(),
        HostConfig {
            issuers: IssuerKey::from_profiles(&sim::builtin_profiles()),
            dialect: &BCD87,
            fault: None,
            rules: HostRules::parse(rules).unwrap(),
        },
    )
    .await
    .unwrap()
}

fn link(host: &HostSim, pki: &DevPki) -> Link {
    Link::new(
        LinkConfig {
            address: host.local_addr().to_string(),
            server_name: "127.0.0.1".into(),
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_millis(800),
            dialect: &BCD87,
            allow_tls12: false,
        },
        &pki.terminal_credentials(),
    )
    .unwrap()
}

fn code(reference: &str, amount: &str) -> String {
    MerchantQr {
        initiation: Some(Initiation::Dynamic),
        accounts: vec![MerchantAccount::Template(Template {
            id: 26,
            gui: "A000000333010101".into(),
            fields: vec![(1, "KASSA0001".into())],
        })],
        mcc: "5812".into(),
        currency: "978".into(),
        amount: Some(amount.into()),
        tip: None,
        country: "DE".into(),
        merchant_name: "KASSA DEMO".into(),
        merchant_city: "BERLIN".into(),
        postal_code: None,
        additional: Some(AdditionalData {
            reference_label: Some(reference.into()),
            ..AdditionalData::default()
        }),
        language: None,
        rfu: vec![],
        unreserved: vec![],
    }
    .encode()
    .unwrap()
}

fn request(mode: QrMode, reference: &str, stan: u32, consumer: Option<&str>) -> Message {
    QrPaymentRequest {
        mode,
        reference: reference.into(),
        consumer_code: consumer.map(|c| Zeroizing::new(c.to_string())),
        payload_crc: None,
        amount_minor: 1234,
        currency: 978,
        transmission: "1130120000".into(),
        stan,
        local_time: "120000".into(),
        local_date: "1130".into(),
        terminal_id: "KASSA001".into(),
        merchant_id: "KASSA-DEMO".into(),
    }
    .to_message()
    .unwrap()
}

async fn status(link: &mut Link, original: &Message, stan: u32) -> QrResponse {
    let m = status_request(original, stan, "1130120100").unwrap();
    let ex = link.exchange(&m).await.unwrap();
    assert_eq!(ex.response.mti, 610);
    QrResponse::from_message(&ex.response).unwrap()
}

#[tokio::test]
async fn merchant_presented_order_paid_by_the_wallet() {
    let pki = DevPki::generate("Acquirer CA", "KASSA001").unwrap();
    let host = host(&pki, "").await;
    let mut link = link(&host, &pki);
    let original = request(QrMode::MerchantPresented, "R1", 10, None);
    let ex = link.exchange(&original).await.unwrap();
    assert_eq!(ex.response.mti, 210);
    let r = QrResponse::from_message(&ex.response).unwrap();
    assert_eq!(r.status(), QrStatus::Pending);
    assert_eq!(r.reference.as_deref(), Some("R1"));
    // Not paid yet.
    assert_eq!(
        status(&mut link, &original, 11).await.status(),
        QrStatus::Pending
    );
    // The wallet scans a code for another amount: refused, the order stays pending.
    let e = host
        .wallet(&code("R1", "12.35"), WalletAction::Complete)
        .unwrap_err();
    assert!(e.contains("1235"), "{e}");
    // A code with a broken CRC is not a code.
    let mut broken = code("R1", "12.34");
    broken.replace_range(broken.len() - 1.., "0");
    if broken == code("R1", "12.34") {
        broken.replace_range(broken.len() - 1.., "1");
    }
    assert!(host.wallet(&broken, WalletAction::Complete).is_err());
    let paid = host
        .wallet(&code("R1", "12.34"), WalletAction::Complete)
        .unwrap();
    assert_eq!(paid.response_code, "00");
    let s = status(&mut link, &original, 12).await;
    assert_eq!(s.status(), QrStatus::Paid);
    assert_eq!(s.wallet.as_deref(), Some("UnionPay"));
    assert_eq!(s.auth_code, paid.auth_code);
    // Paying twice is refused.
    assert!(
        host.wallet(&code("R1", "12.34"), WalletAction::Complete)
            .is_err()
    );
    // An unknown reference.
    let other = request(QrMode::MerchantPresented, "NOPE", 13, None);
    assert_eq!(
        status(&mut link, &other, 14).await.status(),
        QrStatus::NotFound
    );
    let ledger = host.ledger();
    assert_eq!(ledger[0].status, EntryStatus::Approved);
    assert_eq!(ledger[0].wallet.as_deref(), Some("UnionPay"));
}

#[tokio::test]
async fn rejected_and_abandoned_orders() {
    let pki = DevPki::generate("Acquirer CA", "KASSA001").unwrap();
    let host = host(&pki, "").await;
    let mut link = link(&host, &pki);
    let a = request(QrMode::MerchantPresented, "R2", 20, None);
    link.exchange(&a).await.unwrap();
    host.wallet(&code("R2", "12.34"), WalletAction::Reject)
        .unwrap();
    assert_eq!(
        status(&mut link, &a, 21).await.status(),
        QrStatus::Declined("05".into())
    );
    // Left alone, then cancelled by the terminal's reversal: a late payment is refused.
    let b = request(QrMode::MerchantPresented, "R3", 22, None);
    link.exchange(&b).await.unwrap();
    host.wallet(&code("R3", "12.34"), WalletAction::Ignore)
        .unwrap();
    assert_eq!(status(&mut link, &b, 23).await.status(), QrStatus::Pending);
    let ex = link
        .exchange(&acquirer::messages::reversal(&b, false))
        .await
        .unwrap();
    assert_eq!(ex.response.get_str(39).as_deref(), Some("00"));
    assert!(
        host.wallet(&code("R3", "12.34"), WalletAction::Complete)
            .is_err()
    );
    assert_eq!(
        status(&mut link, &b, 24).await.status(),
        QrStatus::Declined("05".into())
    );
    // The same reference twice is a duplicate.
    let again = request(QrMode::MerchantPresented, "R3", 25, None);
    let ex = link.exchange(&again).await.unwrap();
    assert_eq!(ex.response.get_str(39).as_deref(), Some("94"));
}

#[tokio::test]
async fn consumer_presented_codes_by_format() {
    let pki = DevPki::generate("Acquirer CA", "KASSA001").unwrap();
    let host = host(&pki, "").await;
    let mut link = link(&host, &pki);
    for (i, (code, wallet)) in [
        ("6212345678901234567", Some("UnionPay")),
        ("134567890123456789", Some("WeChat Pay")),
        ("281234567890123456", Some("Alipay")),
        // 85 05 "CPV01", 61 (4F A000000333010101, 5A PAN): EMVCo CPM in base64.
        (
            "hQVDUFYwMWEUTwigAAADMwEBAVoIYhI0VniQEj8=",
            Some("EMVCo CPM"),
        ),
        ("hQVDUFYwMmEUTwigAAADMwEBAVoIYhI0VniQEj8=", None),
        ("hQVDUFYwMWEUTwigAAADMwEBAVoIYhI0VniQEj8", None),
        ("123", None),
        ("ABCDEFGHIJKLMNOPQRS", None),
        ("9912345678901234567", None),
    ]
    .into_iter()
    .enumerate()
    {
        let m = request(
            QrMode::ConsumerPresented,
            &format!("C{i}"),
            30 + i as u32,
            Some(code),
        );
        let ex = link.exchange(&m).await.unwrap();
        let r = QrResponse::from_message(&ex.response).unwrap();
        match wallet {
            Some(w) => {
                assert_eq!(r.status(), QrStatus::Paid, "{code}");
                assert_eq!(r.wallet.as_deref(), Some(w));
                assert!(r.auth_code.is_some());
            }
            None => assert_eq!(r.status(), QrStatus::Declined("14".into()), "{code}"),
        }
    }
    // The ledger never holds the consumer's code.
    let ledger = format!("{:?}", host.ledger());
    assert!(!ledger.contains("281234567890123456"));
}

#[tokio::test]
async fn a_silent_status_times_out() {
    let pki = DevPki::generate("Acquirer CA", "KASSA001").unwrap();
    let host = host(&pki, "[[rules]]\nmti = \"0600\"\naction = \"silent\"\n").await;
    let mut link = link(&host, &pki);
    let original = request(QrMode::MerchantPresented, "R9", 40, None);
    link.exchange(&original).await.unwrap();
    host.wallet(&code("R9", "12.34"), WalletAction::Complete)
        .unwrap();
    let m = status_request(&original, 41, "1130120100").unwrap();
    let e = link.exchange(&m).await.unwrap_err();
    assert_eq!(e.kind, LinkErrorKind::ResponseTimeout);
}

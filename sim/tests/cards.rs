//! The virtual cards' cryptography checked from outside: an ARQC against a value computed
//! independently (Python `cryptography`, see below), and fDDA and CDA signatures verified with
//! the Kassa test CA public key through the terminal's own ODA code, failing after one byte
//! changes.

use drivers::VirtualCard;
use emv::oda::{self, CertData, RustCrypto};
use emv::tags as t;
use emv::tlv::{self, Tag, TagStore};
use emv::util::Date;
use sim::builtin_card;
use sim::emvpki::ca_public_keys;

const TODAY: Date = Date {
    year: 2026,
    month: 11,
    day: 29,
};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

fn ok(r: Vec<u8>) -> Vec<u8> {
    assert_eq!(
        &r[r.len() - 2..],
        &[0x90, 0x00],
        "{}",
        hex::encode_upper(&r)
    );
    r[..r.len() - 2].to_vec()
}

/// PDOL data for the Visa PDOL (TTQ, amount 12.34, other 0, DE, TVR 0, EUR, 2026-11-29,
/// purchase, UN DEADBEEF).
fn visa_pdol_data(ttq: &str) -> Vec<u8> {
    h(&format!(
        "{ttq} 000000001234 000000000000 0276 0000000000 0978 261129 00 DEADBEEF"
    ))
}

fn gpo(card: &mut dyn VirtualCard, data: &[u8]) -> Vec<u8> {
    let mut c = vec![0x80, 0xA8, 0x00, 0x00];
    let mut body = Vec::new();
    tlv::encode(t::COMMAND_TEMPLATE, data, &mut body);
    c.push(body.len() as u8);
    c.extend_from_slice(&body);
    c.push(0x00);
    ok(card.process(&c))
}

fn select(card: &mut dyn VirtualCard, aid: &str) {
    ok(card.process(&h("00A404000E325041592E5359532E444446303100")));
    let aid = h(aid);
    let mut c = vec![0x00, 0xA4, 0x04, 0x00, aid.len() as u8];
    c.extend_from_slice(&aid);
    c.push(0);
    ok(card.process(&c));
}

/// Reads the records named by the AFL; returns all objects and the raw records.
fn read_records(card: &mut dyn VirtualCard, afl: &[u8]) -> (TagStore, Vec<(u8, u8, Vec<u8>)>) {
    let mut store = TagStore::new();
    let mut raw = Vec::new();
    for (sfi, rec) in emv::parse_afl(afl).unwrap() {
        let r = ok(card.process(&[0x00, 0xB2, rec, (sfi << 3) | 4, 0x00]));
        store.absorb(&r, |_| false).unwrap();
        raw.push((sfi, rec, r));
    }
    (store, raw)
}

/// Recovers the ICC public key through the chain, as a terminal does.
fn icc_key(
    store: &TagStore,
    raw: &[(u8, u8, Vec<u8>)],
    afl: &[u8],
    aip: &[u8],
    rid: [u8; 5],
    pan: &str,
) -> oda::IccPublicKey {
    let ca = ca_public_keys()
        .into_iter()
        .find(|k| k.rid == rid && k.index == store.get(t::CA_PK_INDEX).unwrap()[0])
        .expect("Kassa test CA key");
    let issuer = oda::recover_issuer_key(
        &RustCrypto,
        &ca,
        CertData {
            cert: store.get(t::ISSUER_PK_CERT).unwrap(),
            remainder: store.get(t::ISSUER_PK_REMAINDER).unwrap_or_default(),
            exponent: store.get(Tag::new(0x9F32)).unwrap(),
        },
        pan,
        TODAY,
    )
    .unwrap();
    let static_data = oda::static_data(afl, raw, store.get(Tag::new(0x9F4A)), aip).unwrap();
    oda::recover_icc_key(
        &RustCrypto,
        &issuer,
        CertData {
            cert: store.get(t::ICC_PK_CERT).unwrap(),
            remainder: store.get(Tag::new(0x9F48)).unwrap_or_default(),
            exponent: store.get(Tag::new(0x9F47)).unwrap(),
        },
        &static_data,
        pan,
        TODAY,
    )
    .unwrap()
}

#[test]
fn arqc_matches_an_independent_computation() {
    // Computed outside Kassa with Python's `cryptography` TripleDES: Book 2 A1.4.1 option A
    // from IMK 0123456789ABCDEFFEDCBA9876543210, PAN 4761739001010119, PSN 01 (MK
    // 80A89B585BBF64C2F12915BF578FABE0), then ISO 9797-1 MAC algorithm 3, padding method 1,
    // over 9F02 9F03 9F1A 95 5F2A 9A 9C 9F37 || AIP 2000 || ATC 0002 || CVR 03A00000.
    let mut card = builtin_card("visa").unwrap().unwrap();
    select(&mut card, "A0000000031010");
    let r = gpo(&mut card, &visa_pdol_data("22004000"));
    let mut s = TagStore::new();
    s.absorb(&r, |_| false).unwrap();
    assert_eq!(s.get(t::ATC), Some(&h("0002")[..]));
    assert_eq!(s.get(t::CID), Some(&[0x80][..]));
    assert_eq!(
        hex::encode_upper(s.get(t::APPLICATION_CRYPTOGRAM).unwrap()),
        "D375014604E4DB6D"
    );
    // Without "ODA for online authorisations" in the TTQ, no signature for an ARQC.
    assert!(s.get(t::SDAD).is_none());
}

#[test]
fn fdda_signature_verifies_and_fails_after_one_byte() {
    for (name, good) in [("visa", true), ("visa-badsig", false)] {
        let mut card = builtin_card(name).unwrap().unwrap();
        select(&mut card, "A0000000031010");
        // TTQ byte 1 bit 1: offline data authentication for online authorisations.
        let pdol_data = visa_pdol_data("23004000");
        let g = gpo(&mut card, &pdol_data);
        let mut gs = TagStore::new();
        gs.absorb(&g, |_| false).unwrap();
        let afl = gs.get(t::AFL).unwrap().to_vec();
        let aip = gs.get(t::AIP).unwrap().to_vec();
        let (store, raw) = read_records(&mut card, &afl);
        let pan = emv::card::Pan::from_cn(store.get(t::PAN).unwrap()).unwrap();
        let icc = icc_key(&store, &raw, &afl, &aip, [0xA0, 0, 0, 0, 3], pan.expose());
        // fDDA version 01 (Book C-3 Annex C): UN || amount || currency || 9F69.
        let car = gs.get(t::CARD_AUTH_RELATED_DATA).unwrap();
        assert_eq!(car[0], 0x01, "fDDA version 01");
        assert_eq!(&car[5..7], gs.get(t::CTQ).unwrap());
        let mut tdata = h("DEADBEEF 000000001234 0978");
        tdata.extend_from_slice(car);
        let sdad = gs.get(t::SDAD).unwrap();
        let result = oda::verify_sdad(&RustCrypto, &icc, sdad, &tdata);
        if good {
            // ICC dynamic data: length 02 and the ATC.
            assert_eq!(result.unwrap(), h("02 0002"));
            let mut bad = sdad.to_vec();
            bad[10] ^= 0x80;
            assert!(oda::verify_sdad(&RustCrypto, &icc, &bad, &tdata).is_err());
            let mut other_amount = tdata.clone();
            other_amount[9] = 0x35;
            assert!(oda::verify_sdad(&RustCrypto, &icc, sdad, &other_amount).is_err());
        } else {
            assert!(
                result.is_err(),
                "{name}: the defective signature must not verify"
            );
        }
    }
}

#[test]
fn cda_signature_and_transaction_data_hash() {
    let mut card = builtin_card("mastercard").unwrap().unwrap();
    select(&mut card, "A0000000041010");
    let pdol_data = h("22"); // 9F35 terminal type
    let g = gpo(&mut card, &pdol_data);
    let mut gs = TagStore::new();
    gs.absorb(&g, |_| false).unwrap();
    let afl = gs.get(t::AFL).unwrap().to_vec();
    let aip = gs.get(t::AIP).unwrap().to_vec();
    let (store, raw) = read_records(&mut card, &afl);
    let pan = emv::card::Pan::from_cn(store.get(t::PAN).unwrap()).unwrap();
    let icc = icc_key(&store, &raw, &afl, &aip, [0xA0, 0, 0, 0, 4], pan.expose());
    // CDOL1: 9F02 9F03 9F1A 95 5F2A 9A 9C 9F37 9F35 9F34.
    let cdol1_data =
        h("000000001234 000000000000 0276 0000000000 0978 261129 00 CAFEBABE 22 1F0002");
    let mut cmd = vec![0x80, 0xAE, 0x90, 0x00, cdol1_data.len() as u8];
    cmd.extend_from_slice(&cdol1_data);
    cmd.push(0);
    let r = ok(card.process(&cmd));
    let tpl = tlv::expect_template(&r, t::RESPONSE_FORMAT2).unwrap();
    let mut objects = Vec::new();
    let mut sdad = None;
    let mut cid = None;
    for o in tpl.children() {
        let o = o.unwrap();
        if o.tag() == t::SDAD {
            sdad = Some(o.value().to_vec());
        } else {
            if o.tag() == t::CID {
                cid = Some(o.value()[0]);
            }
            tlv::encode(o.tag(), o.value(), &mut objects);
        }
    }
    let sdad = sdad.expect("CDA signature in the response");
    assert!(
        tlv::find(&r, t::APPLICATION_CRYPTOGRAM).unwrap().is_none(),
        "the AC is only inside the signature"
    );
    // Book 2 §6.6: the terminal data for the hash is the unpredictable number.
    let dyn_data = oda::verify_sdad(&RustCrypto, &icc, &sdad, &h("CAFEBABE")).unwrap();
    let n = dyn_data[0] as usize;
    assert_eq!(dyn_data[1 + n], cid.unwrap(), "CID inside = CID outside");
    // Transaction data hash code over PDOL data, CDOL1 data and the response objects.
    use sha1::Digest;
    let mut hasher = sha1::Sha1::new();
    hasher.update(&pdol_data);
    hasher.update(&cdol1_data);
    hasher.update(&objects);
    let tdhc: [u8; 20] = hasher.finalize().into();
    assert_eq!(&dyn_data[1 + n + 1 + 8..], &tdhc);
    let mut bad = sdad.clone();
    bad[77] ^= 0x04;
    assert!(oda::verify_sdad(&RustCrypto, &icc, &bad, &h("CAFEBABE")).is_err());
    assert!(oda::verify_sdad(&RustCrypto, &icc, &sdad, &h("CAFEBABF")).is_err());
}

#[test]
fn dda_internal_authenticate() {
    // A Discover-keyed card (65537 keys) in EMV mode with DDA.
    let text = sim::card::builtin_profile_text("discover")
        .unwrap()
        .replace(
            "flow = \"dpas\"",
            "flow = \"mchip\"\ncdol1 = \"9F0206 9F3704\"",
        )
        .replace(
            "pdol = \"9F6604 9F0206 9F0306 9F1A02 9505 5F2A02 9A03 9C01 9F3704\"",
            "pdol = \"9F3501\"",
        )
        .replace("oda = \"cda\"", "oda = \"dda\"");
    let mut card =
        sim::card::EmvCard::from_profile(&sim::card::parse_profile("dda", &text).unwrap()).unwrap();
    select(&mut card, "A0000001523010");
    let g = gpo(&mut card, &h("22"));
    let mut gs = TagStore::new();
    gs.absorb(&g, |_| false).unwrap();
    let afl = gs.get(t::AFL).unwrap().to_vec();
    let aip = gs.get(t::AIP).unwrap().to_vec();
    let (store, raw) = read_records(&mut card, &afl);
    assert_eq!(store.get(Tag::new(0x9F49)), Some(&h("9F3704")[..]), "DDOL");
    let pan = emv::card::Pan::from_cn(store.get(t::PAN).unwrap()).unwrap();
    let icc = icc_key(
        &store,
        &raw,
        &afl,
        &aip,
        [0xA0, 0, 0, 0x01, 0x52],
        pan.expose(),
    );
    assert_eq!(icc.exponent, vec![1, 0, 1]);
    let r = ok(card.process(&h("0088000004 12345678 00")));
    let sdad = tlv::find(&r, t::SDAD).unwrap().unwrap().to_vec();
    assert_eq!(
        oda::verify_sdad(&RustCrypto, &icc, &sdad, &h("12345678")).unwrap(),
        h("02 0002")
    );
    assert!(oda::verify_sdad(&RustCrypto, &icc, &sdad, &h("12345679")).is_err());
}

/// Issuer scripts with secure messaging (Book 2 §9, Book 3 §6.5): the issuer side builds the
/// commands from IMK-SMI/IMK-SMC, the card derives its own keys from the same IMKs and checks
/// the MAC over the transaction's ATC and ARQC.
#[test]
fn issuer_scripts_with_secure_messaging() {
    use emv::crypto::{Key16, derive_icc_master_key};
    use sim::script::{ScriptCommand, ScriptContext, SmKeys, build_script_command, pin_block};
    use zeroize::Zeroizing;

    let mut card = builtin_card("visa").unwrap().unwrap();
    let keys = SmKeys {
        mk_smi: derive_icc_master_key(
            &Key16::from_hex("89ABCDEF0123456776543210FEDCBA98").unwrap(),
            "4761739001010119",
            1,
        )
        .unwrap(),
        mk_smc: derive_icc_master_key(
            &Key16::from_hex("76543210FEDCBA9889ABCDEF01234567").unwrap(),
            "4761739001010119",
            1,
        )
        .unwrap(),
    };
    let verify = |card: &mut dyn VirtualCard, pin: &str| {
        let mut c = h("0020008008");
        c.extend_from_slice(&pin_block(pin).unwrap()[..]);
        let r = card.process(&c);
        u16::from_be_bytes([r[r.len() - 2], r[r.len() - 1]])
    };
    // Three wrong PINs block the PIN; the right one is then refused too.
    assert_eq!(verify(&mut card, "9999"), 0x63C2);
    assert_eq!(verify(&mut card, "9999"), 0x63C1);
    assert_eq!(verify(&mut card, "9999"), 0x63C0);
    assert_eq!(verify(&mut card, "1234"), 0x6983);

    // Outside a transaction a script is refused.
    select(&mut card, "A0000000031010");
    let sw = |r: Vec<u8>| u16::from_be_bytes([r[r.len() - 2], r[r.len() - 1]]);
    let ctx0 = ScriptContext {
        atc: [0, 1],
        ac: [0; 8],
    };
    let cmd = build_script_command(&ScriptCommand::PinUnblock, &keys, &ctx0).unwrap();
    assert_eq!(sw(card.process(&cmd)), 0x6985);

    // An online transaction: the ARQC comes with the GPO response.
    let r = gpo(&mut card, &visa_pdol_data("22004000"));
    let ctx = ScriptContext {
        atc: tlv::find(&r, t::ATC).unwrap().unwrap().try_into().unwrap(),
        ac: tlv::find(&r, t::APPLICATION_CRYPTOGRAM)
            .unwrap()
            .unwrap()
            .try_into()
            .unwrap(),
    };
    // A MAC for another transaction, or with one bit changed: 6988, nothing changes.
    let stale = ScriptContext { atc: [0, 1], ..ctx };
    let cmd = build_script_command(&ScriptCommand::PinUnblock, &keys, &stale).unwrap();
    assert_eq!(sw(card.process(&cmd)), 0x6988);
    let mut cmd = build_script_command(&ScriptCommand::PinUnblock, &keys, &ctx).unwrap();
    let last = cmd.len() - 1;
    cmd[last] ^= 0x80;
    assert_eq!(sw(card.process(&cmd)), 0x6988);
    assert_eq!(ok(card.process(&h("80CA9F1700"))), h("9F170100"));
    // PIN unblock, then a PIN change enciphered under SMC.
    let cmd = build_script_command(&ScriptCommand::PinUnblock, &keys, &ctx).unwrap();
    assert_eq!(sw(card.process(&cmd)), 0x9000);
    assert_eq!(ok(card.process(&h("80CA9F1700"))), h("9F170103"));
    let change = ScriptCommand::PinChange(Zeroizing::new("24680".into()));
    let cmd = build_script_command(&change, &keys, &ctx).unwrap();
    assert_eq!(sw(card.process(&cmd)), 0x9000);
    assert_eq!(verify(&mut card, "1234"), 0x63C2);
    assert_eq!(verify(&mut card, "24680"), 0x9000);
    // Application block: the next SELECT answers 6A81.
    let cmd = build_script_command(&ScriptCommand::ApplicationBlock, &keys, &ctx).unwrap();
    assert_eq!(sw(card.process(&cmd)), 0x9000);
    assert_eq!(sw(card.process(&h("00A4040007A000000003101000"))), 0x6A81);
}

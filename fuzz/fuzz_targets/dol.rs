//! DOLs: parse, build, split must agree on lengths and never panic.
#![no_main]

use emv::dol;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First half: the DOL. Second half: values handed out for every tag.
    let (d, values) = data.split_at(data.len() / 2);
    if let Ok(entries) = dol::parse(d) {
        let built = dol::build(&entries, |_| Some(values));
        assert_eq!(built.len(), dol::data_len(&entries));
        let parts = dol::split(&entries, &built).expect("built data splits");
        assert_eq!(parts.len(), entries.len());
        for (e, (tag, v)) in entries.iter().zip(parts) {
            assert_eq!(e.tag, tag);
            assert_eq!(e.len, v.len());
        }
        let _ = emv::explain::explain(emv::tags::PDOL, d, 0, None);
    }
});

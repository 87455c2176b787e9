//! The UI's twelve languages: which one to show, chosen by the merchant, by the cardholder
//! with one tap, or from the card (EMV tag 5F2D, Language Preference, with the issuer country
//! 5F28 as a hint between Simplified and Traditional Chinese), and how amounts are written in
//! each.

/// One language the UI speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Language {
    /// The catalogue's name under `ui/lang/` (`zh_TW`); `en` is the source language.
    pub code: &'static str,
    /// ISO 639-1, as cards write it in 5F2D (`zh`).
    pub iso639: &'static str,
    /// The language's own name, for the language buttons (`繁體中文`).
    pub name: &'static str,
    /// Decimal separator in amounts.
    pub decimal: char,
    /// Thousands separator in amounts.
    pub group: char,
}

const fn lang(
    code: &'static str,
    iso639: &'static str,
    name: &'static str,
    decimal: char,
    group: char,
) -> Language {
    Language {
        code,
        iso639,
        name,
        decimal,
        group,
    }
}

/// The languages, in the order the language buttons show them.
pub const LANGUAGES: [Language; 12] = [
    lang("en", "en", "English", '.', ','),
    lang("zh_CN", "zh", "简体中文", '.', ','),
    lang("zh_TW", "zh", "繁體中文", '.', ','),
    lang("ja", "ja", "日本語", '.', ','),
    lang("ko", "ko", "한국어", '.', ','),
    lang("ru", "ru", "Русский", ',', '\u{a0}'),
    lang("fr", "fr", "Français", ',', '\u{202f}'),
    lang("de", "de", "Deutsch", ',', '.'),
    lang("es", "es", "Español", ',', '.'),
    lang("th", "th", "ไทย", '.', ','),
    lang("vi", "vi", "Tiếng Việt", ',', '.'),
    lang("pt", "pt", "Português", ',', '.'),
];

/// The language with catalogue name `code` (`"ja"`, `"zh_TW"`), or a plain ISO 639-1 code
/// (`"zh"` gives Simplified Chinese).
pub fn by_code(code: &str) -> Option<&'static Language> {
    LANGUAGES
        .iter()
        .find(|l| l.code.eq_ignore_ascii_case(code))
        .or_else(|| {
            LANGUAGES
                .iter()
                .find(|l| l.iso639.eq_ignore_ascii_case(code))
        })
}

/// Issuer countries (ISO 3166-1 numeric) that write Traditional Chinese: Taiwan, Hong Kong,
/// Macao.
const TRADITIONAL_CHINESE: [u16; 3] = [158, 344, 446];

/// The first language of the card's preference list (5F2D: ISO 639-1 codes, most preferred
/// first) that the UI has; Chinese becomes Traditional when the issuer country (5F28) is
/// Taiwan, Hong Kong or Macao. None: the card names no language the UI has (the caller keeps
/// the merchant's default).
pub fn from_card(preferences: &[String], issuer_country: Option<u16>) -> Option<&'static Language> {
    preferences.iter().find_map(|p| {
        let p = p.to_ascii_lowercase();
        if p == "zh" {
            let traditional = issuer_country.is_some_and(|c| TRADITIONAL_CHINESE.contains(&c));
            return by_code(if traditional { "zh_TW" } else { "zh_CN" });
        }
        LANGUAGES.iter().find(|l| l.iso639 == p)
    })
}

/// Errors selecting a language.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LangError {
    /// Not one of [`LANGUAGES`].
    #[error("language {0:?} is not one of the UI's languages")]
    Unknown(String),
    /// Slint has no catalogue for it (a build without the bundled translations).
    #[error("no translation bundled for {0}: {1}")]
    NotBundled(String, String),
}

/// Switches every `@tr` text of the UI to `code`. Must run on the UI thread.
pub fn select(code: &str) -> Result<&'static Language, LangError> {
    let l = by_code(code).ok_or_else(|| LangError::Unknown(code.to_string()))?;
    slint::select_bundled_translation(l.code)
        .map_err(|e| LangError::NotBundled(l.code.to_string(), e.to_string()))?;
    Ok(l)
}

/// The catalogues, embedded: the same files Slint bundles, read by Rust code for what is not
/// drawn by Slint (the customer receipt, voice prompts).
const CATALOGUES: [(&str, &str); 11] = [
    (
        "zh_CN",
        include_str!("../lang/zh_CN/LC_MESSAGES/kassa-ui.po"),
    ),
    (
        "zh_TW",
        include_str!("../lang/zh_TW/LC_MESSAGES/kassa-ui.po"),
    ),
    ("ja", include_str!("../lang/ja/LC_MESSAGES/kassa-ui.po")),
    ("ko", include_str!("../lang/ko/LC_MESSAGES/kassa-ui.po")),
    ("ru", include_str!("../lang/ru/LC_MESSAGES/kassa-ui.po")),
    ("fr", include_str!("../lang/fr/LC_MESSAGES/kassa-ui.po")),
    ("de", include_str!("../lang/de/LC_MESSAGES/kassa-ui.po")),
    ("es", include_str!("../lang/es/LC_MESSAGES/kassa-ui.po")),
    ("th", include_str!("../lang/th/LC_MESSAGES/kassa-ui.po")),
    ("vi", include_str!("../lang/vi/LC_MESSAGES/kassa-ui.po")),
    ("pt", include_str!("../lang/pt/LC_MESSAGES/kassa-ui.po")),
];

type Catalogue = std::collections::HashMap<(String, String), String>;

/// The `(msgctxt, msgid) -> msgstr` entries of a catalogue written one line per field (as
/// Kassa's are; scripts/tr-extract checks them).
fn parse_catalogue(text: &str) -> Catalogue {
    fn unquote(line: &str, key: &str) -> Option<String> {
        let rest = line.strip_prefix(key)?.trim();
        let inner = rest.strip_prefix('"')?.strip_suffix('"')?;
        Some(inner.replace("\\\"", "\"").replace("\\\\", "\\"))
    }
    let mut out = Catalogue::new();
    let (mut ctx, mut id) = (String::new(), None::<String>);
    for line in text.lines() {
        if let Some(c) = unquote(line, "msgctxt") {
            ctx = c;
        } else if let Some(i) = unquote(line, "msgid") {
            id = Some(i);
        } else if let Some(s) = unquote(line, "msgstr") {
            if let Some(i) = id.take()
                && !i.is_empty()
            {
                out.insert((std::mem::take(&mut ctx), i), s);
            }
            ctx.clear();
        }
    }
    out
}

fn catalogues() -> &'static std::collections::HashMap<&'static str, Catalogue> {
    static C: std::sync::OnceLock<std::collections::HashMap<&'static str, Catalogue>> =
        std::sync::OnceLock::new();
    C.get_or_init(|| {
        CATALOGUES
            .iter()
            .map(|(code, text)| (*code, parse_catalogue(text)))
            .collect()
    })
}

/// `msgid` in context `context` translated into `language` (a catalogue name or ISO 639-1
/// code); the English `msgid` when the language or the entry is unknown. For text Slint does
/// not draw: receipts, voice prompts. scripts/tr-extract finds these calls too.
pub fn tr(language: &str, context: &str, msgid: &str) -> String {
    let code = by_code(language).map(|l| l.code).unwrap_or("en");
    catalogues()
        .get(code)
        .and_then(|c| c.get(&(context.to_string(), msgid.to_string())))
        .filter(|s| !s.is_empty())
        .cloned()
        .unwrap_or_else(|| msgid.to_string())
}

/// An amount in minor units written the way `language` writes money: `1,234.50` in English,
/// `1.234,50` in German, `1 234,50` in French.
pub fn format_amount(minor: u64, exponent: u8, language: &Language) -> String {
    let div = 10u64.pow(exponent as u32);
    let whole = (minor / div).to_string();
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(language.group);
        }
        grouped.push(c);
    }
    if exponent == 0 {
        return grouped;
    }
    format!(
        "{grouped}{}{:0width$}",
        language.decimal,
        minor % div,
        width = exponent as usize
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_preferences_pick_the_first_supported_language() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(from_card(&s(&["ja", "en"]), Some(392)).unwrap().code, "ja");
        assert_eq!(from_card(&s(&["zh"]), Some(156)).unwrap().code, "zh_CN");
        assert_eq!(from_card(&s(&["zh"]), Some(158)).unwrap().code, "zh_TW");
        assert_eq!(from_card(&s(&["zh"]), Some(344)).unwrap().code, "zh_TW");
        // Hungarian first, then German: German.
        assert_eq!(from_card(&s(&["hu", "de"]), None).unwrap().code, "de");
        // Nothing the UI has: None (the merchant's default stays).
        assert_eq!(from_card(&s(&["hu", "fi"]), None), None);
        assert_eq!(from_card(&[], None), None);
    }

    #[test]
    fn amounts_per_language() {
        let f = |code| format_amount(123_456_789, 2, by_code(code).unwrap());
        assert_eq!(f("en"), "1,234,567.89");
        assert_eq!(f("de"), "1.234.567,89");
        assert_eq!(f("fr"), "1\u{202f}234\u{202f}567,89");
        assert_eq!(f("ru"), "1\u{a0}234\u{a0}567,89");
        assert_eq!(f("ja"), "1,234,567.89");
        assert_eq!(format_amount(5, 2, by_code("en").unwrap()), "0.05");
        assert_eq!(format_amount(1500, 0, by_code("ja").unwrap()), "1,500");
        assert_eq!(by_code("xx"), None);
        assert_eq!(by_code("zh").unwrap().code, "zh_CN");
        assert_eq!(by_code("ZH_tw").unwrap().code, "zh_TW");
    }

    #[test]
    fn rust_side_translations() {
        assert_eq!(tr("ja", "Receipt", "APPROVED"), "承認");
        assert_eq!(tr("zh", "Receipt", "AMOUNT"), "金额");
        assert_eq!(tr("zh_TW", "Receipt", "AMOUNT"), "金額");
        assert_eq!(
            tr("de", "Voice", "Please tap your card"),
            "Bitte Karte auflegen"
        );
        // English, unknown languages and unknown entries: the source text.
        assert_eq!(tr("en", "Receipt", "APPROVED"), "APPROVED");
        assert_eq!(tr("hu", "Receipt", "APPROVED"), "APPROVED");
        assert_eq!(tr("ja", "Receipt", "NO SUCH LABEL"), "NO SUCH LABEL");
    }

    #[test]
    fn every_language_has_a_catalogue() {
        for l in LANGUAGES.iter().filter(|l| l.code != "en") {
            let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("lang")
                .join(l.code)
                .join("LC_MESSAGES/kassa-ui.po");
            assert!(p.is_file(), "{}", p.display());
        }
    }
}

//! Every case of the shared libphonenumber fixture.
use casebridge_rules::phone::Phone;

/// The shared fixture when the checkout sits beside `shared/` (so updates are seen), else the
/// copy kept in this crate (a checkout anywhere else still runs every case).
fn fixture() -> std::path::PathBuf {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .map(|a| a.join("shared/fixtures/phone_numbers.json"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| here.join("tests/fixtures/phone_numbers.json"))
}

#[test]
fn every_fixture_case_normalizes_as_libphonenumber_does() {
    let text = std::fs::read_to_string(fixture()).expect("fixture readable");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("fixture is JSON");
    let cases = doc["cases"].as_array().expect("cases");
    assert!(cases.len() > 50);
    let mut failures = Vec::new();
    for c in cases {
        let input = c["input"].as_str().unwrap_or_default();
        let region = c["region"].as_str().unwrap_or_default();
        let p = Phone::parse(input, region);
        let want_e164 = c["e164"].as_str();
        let want_ext = c["extension"].as_str();
        let got = (p.parsed.then_some(p.number.as_str()), p.extension.as_deref(), p.valid);
        let want = (want_e164, want_ext, c["valid"].as_bool().unwrap_or(false));
        let verbatim_ok = p.parsed || p.number == input.trim();
        if got != want || !verbatim_ok {
            failures.push(format!("{input:?}/{region}: got {got:?}, want {want:?}"));
        }
        if let Some(nd) = c["national_digits"].as_str()
            && p.national_digits.as_deref() != Some(nd)
        {
            failures.push(format!("{input:?}/{region}: national {:?}, want {nd}", p.national_digits));
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

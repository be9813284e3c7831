//! behaviour.md §2.1 and §2.5: phone numbers as libphonenumber reads them, through the HTTP API.

use serde_json::json;

use crate::harness::*;

const T: &str = "2026-11-20T10:00:00Z";

/// Every spelling of one Brazilian number ends on one account: the first call creates it, the
/// others find it. Area code 55 (the country code's digits) and 0900 numbers used to split.
#[tokio::test]
async fn brazil_area_code_55_and_0900_callers_get_one_account_each() {
    let s = Server::start().await;
    s.put_settings(settings(json!({"region": "BR"}))).await;
    let numbers = [
        ("+555532221234", &["(55) 3222-1234", "+55 55 3222-1234", "55 3222 1234", "5532221234"][..]),
        ("+5555991234567", &["(55) 99123-4567", "+5555991234567", "55 99123 4567"][..]),
        ("+55900950293", &["0900 95 0293", "+55900950293", "+55 900 95 0293"][..]),
    ];
    for (n, (e164, spellings)) in numbers.iter().enumerate() {
        let mut account = None;
        for (i, spelling) in spellings.iter().enumerate() {
            let id = format!("br{n}-{i}");
            s.send(call(&id, &format!("2026-11-20T1{i}:00:00Z"), spelling, &["Q"])).await;
            let v = s.session(&id).await;
            let want = if i == 0 { "created" } else { "found" };
            assert_eq!(v["account_outcome"], want, "{spelling}: {v}");
            let acc = v["account_id"].as_str().unwrap_or_else(|| panic!("{spelling}: no account: {v}")).to_string();
            assert_eq!(account.get_or_insert_with(|| acc.clone()), &acc, "{spelling}: one account for {e164}");
        }
        let acc = s.get(&format!("/v1/crm/accounts/{}", account.unwrap())).await;
        assert_eq!(acc["phone"], *e164, "{acc}");
        let found = s.get(&format!("/v1/crm/accounts?phone={}", urlencode(e164))).await;
        assert_eq!(found["accounts"].as_array().unwrap().len(), 1, "{e164}: {found}");
    }
}

/// An extension is not part of the matching key, but the created account and the phone note keep it.
#[tokio::test]
async fn an_extension_is_kept_on_the_account_and_in_the_note() {
    let s = Server::start().await;
    s.send(call("x1", T, "(212) 736-5000 ext. 45", &["Q"])).await;
    let x1 = s.session("x1").await;
    assert_eq!(x1["account_outcome"], "created", "{x1}");
    let acc = s.get(&format!("/v1/crm/accounts/{}", x1["account_id"].as_str().unwrap())).await;
    assert_eq!(acc["phone"], "+12127365000", "the phone field stays E.164: {acc}");
    assert_eq!(acc["custom_fields"]["phone_extension"], "45", "{acc}");
    let rec = s.record_of("x1").await;
    let notes: Vec<&str> = rec["notes"].as_array().unwrap().iter().map(|n| n["body"].as_str().unwrap()).collect();
    assert!(notes.contains(&"Customer phone: +12127365000 ext. 45"), "{notes:?}");
    s.send(call("x2", "2026-11-20T11:00:00Z", "+1 212 736 5000", &["Q"])).await;
    assert_eq!(s.session("x2").await["account_id"], x1["account_id"], "matching ignores the extension");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'0'..=b'9' | b'A'..=b'Z' | b'a'..=b'z' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

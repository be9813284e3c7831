//! The Rules page: boxes appear, disappear and warn as the settings do; a title preview; a
//! save and a refused save.

use super::Browser;
use crate::harness::Server;

#[tokio::test]
async fn rules_show_hide_warn_preview_save_and_refuse() {
    let s = Server::start().await;
    let Some(b) = Browser::start("rules_show_hide_warn_preview_save_and_refuse", &s.base).await else { return };
    b.goto("/rules").await;
    b.find("#rules-form").await;
    let append = "#field-records-append_to_open_in_leaf_queue";
    assert!(b.displayed(append).await, "append is offered while lookup is on");
    assert!(!b.displayed("#field-records-append_requires_same_channel").await, "its options wait for append");

    // Skip lookup: the append box and the account-based links disappear.
    b.click("#accounts-skip_lookup").await;
    b.wait_js(&format!("return document.querySelector('{append}').hidden"), "append hidden").await;
    b.wait_js(
        "return document.querySelector('#session_data-unrecorded_session_link').value === 'none' && document.querySelector('option[value=account]').hidden",
        "account links hidden, none chosen",
    )
    .await;
    b.click("#accounts-skip_lookup").await;
    b.wait_js(&format!("return !document.querySelector('{append}').hidden"), "append back").await;

    // Append on: its secondary options appear.
    b.click("#records-append_to_open_in_leaf_queue").await;
    assert!(b.displayed("#field-records-append_to_closed_within_days").await);
    b.click("#records-append_to_closed_within_days-on").await;
    b.fill("#records-append_to_closed_within_days", "7").await;

    // Delay until connected with abandoned calls: the abandoned box warns at once.
    b.click("#records-delay_call_until_connected").await;
    b.click("#records-abandoned_calls").await;
    b.wait_text("#msg-records-abandoned-calls", "only calls that connect to an agent get records").await;

    // Abandoned chats: two modes appear, N only for the second.
    assert!(!b.displayed("#records-abandoned_chats-all").await);
    b.click("#records-abandoned_chats-on").await;
    assert!(b.displayed("#records-abandoned_chats-all").await);
    assert!(!b.displayed("#records-abandoned_chats-n").await);
    b.click("#records-abandoned_chats-min").await;
    assert!(b.displayed("#records-abandoned_chats-n").await);
    b.fill("#records-abandoned_chats-n", "2").await;

    // The title's live preview and its variable chips.
    b.fill("#records-title_template", "Call ").await;
    b.click("button.chip[data-insert='{CALL_ID}']").await;
    b.wait_text("#title-preview", "Call call-42").await;
    b.fill("#records-title_template", "{CALL_TYPE} on {MENU_PATH}").await;
    b.wait_text("#title-preview", "IVR Call on Support > Billing").await;
    b.screenshot("rules").await;

    b.click("#save-rules").await;
    b.wait_text("#notice", "Saved").await;
    let saved = s.get("/v1/settings").await;
    assert_eq!(saved["records"]["delay_call_until_connected"], true, "{saved}");
    assert_eq!(saved["records"]["append_to_closed_within_days"], 7);
    assert_eq!(saved["records"]["abandoned_chats"]["mode"], "min_customer_messages");
    assert_eq!(saved["records"]["abandoned_chats"]["min_customer_messages"], 2);
    assert_eq!(saved["records"]["title_template"], "{CALL_TYPE} on {MENU_PATH}");
    b.wait_text("#msg-records-abandoned-calls", "has no effect").await;

    // A refused save: each message next to its field, nothing saved, what was typed kept.
    b.fill("#records-title_template", "{CALL_TYPE} {NOPE}").await;
    b.wait_text("#title-preview", "unknown variable {NOPE}").await;
    b.fill("#records-chat_short_abandon_seconds", "soon").await;
    b.click("#save-rules").await;
    b.wait_text("#notice", "Not saved").await;
    b.wait_text("#msg-records-title-template", "unknown variable {NOPE}").await;
    let short = b.text("#msg-records-chat-short-abandon-seconds").await;
    assert!(!short.is_empty(), "the number's own message: {short}");
    let typed = b.find("#records-title_template").await.prop("value").await.unwrap_or_default();
    assert_eq!(typed.as_deref(), Some("{CALL_TYPE} {NOPE}"));
    let after = s.get("/v1/settings").await;
    assert_eq!(after["records"]["title_template"], "{CALL_TYPE} on {MENU_PATH}", "nothing saved");
    b.screenshot("rules-refused").await;
    b.assert_no_errors().await;
    b.close().await;
}

//! Cases of [`SettingsStore`].

use std::sync::Arc;

use casebridge_store::{SettingsChange, Store};

pub async fn settings_round_trip(store: Arc<dyn Store>) {
    assert_eq!(store.settings_get().await.expect("get"), None);
    store.settings_put(r#"{"region":"US"}"#).await.expect("put");
    assert_eq!(store.settings_get().await.expect("get").as_deref(), Some(r#"{"region":"US"}"#));
    store.settings_put(r#"{"region":"FR"}"#).await.expect("put");
    assert_eq!(store.settings_get().await.expect("get").as_deref(), Some(r#"{"region":"FR"}"#));
}

pub async fn settings_changes_are_kept_newest_first(store: Arc<dyn Store>) {
    assert!(store.settings_history(10).await.expect("history").is_empty());
    let paths = vec!["region".to_string()];
    let first = store
        .settings_change(SettingsChange {
            doc: r#"{"region":"FR"}"#,
            source: "token",
            changed: &paths,
            restored_from: None,
        })
        .await
        .expect("change");
    assert_eq!(store.settings_get().await.expect("get").as_deref(), Some(r#"{"region":"FR"}"#), "saved with its row");
    let two = vec!["region".to_string(), "time_zone".to_string()];
    let second = store
        .settings_change(SettingsChange {
            doc: r#"{"region":"DE","time_zone":"Europe/Berlin"}"#,
            source: "loopback",
            changed: &two,
            restored_from: Some(first),
        })
        .await
        .expect("change");
    assert!(second > first, "ids increase");
    let h = store.settings_history(10).await.expect("history");
    assert_eq!(h.iter().map(|v| v.id).collect::<Vec<_>>(), vec![second, first], "newest first");
    assert_eq!(h[0].changed, two);
    assert_eq!(h[0].source, "loopback");
    assert_eq!(h[0].restored_from, Some(first));
    assert_eq!(h[1].doc, r#"{"region":"FR"}"#);
    assert_eq!(h[1].restored_from, None);
    assert_eq!(store.settings_history(1).await.expect("history").len(), 1, "limit");
    let v = store.settings_version(first).await.expect("version").expect("found");
    assert_eq!((v.source.as_str(), v.changed.clone()), ("token", paths));
    assert!(store.settings_version(second + 100).await.expect("version").is_none());
    // A plain put (start-up from a config file) adds no row.
    store.settings_put(r#"{"region":"US"}"#).await.expect("put");
    assert_eq!(store.settings_history(10).await.expect("history").len(), 2);
}

//! Cases of [`SettingsStore`].

use std::sync::Arc;

use casebridge_store::Store;

pub async fn settings_round_trip(store: Arc<dyn Store>) {
    assert_eq!(store.settings_get().await.expect("get"), None);
    store.settings_put(r#"{"region":"US"}"#).await.expect("put");
    assert_eq!(store.settings_get().await.expect("get").as_deref(), Some(r#"{"region":"US"}"#));
    store.settings_put(r#"{"region":"FR"}"#).await.expect("put");
    assert_eq!(store.settings_get().await.expect("get").as_deref(), Some(r#"{"region":"FR"}"#));
}

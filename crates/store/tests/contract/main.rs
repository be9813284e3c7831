//! Contract tests of the storage traits. Each case is an `async fn(Arc<dyn Store>)` written
//! only against the traits, so every backend runs the same bodies: a backend adds one
//! `all_cases!` line with a function that opens a fresh, migrated, empty store (or
//! `None` after printing why the backend is not available here).

mod agents;
mod builtin_crm;
mod cluster;
mod events;
mod outbox;
mod sessions;
mod settings;
mod support;

/// Instantiates every case for one backend, as `<backend>::<concern>::<case>` tests.
macro_rules! contract_suite {
    ($backend:ident, $open:path, { $($module:ident: [$($case:ident),* $(,)?]),* $(,)? }) => {
        mod $backend {
            $(
                mod $module {
                    $(
                        #[tokio::test]
                        async fn $case() {
                            let Some(fixture) = $open(concat!(stringify!($backend), "::", stringify!($module), "::", stringify!($case))).await else { return };
                            crate::$module::$case(fixture.store.clone()).await;
                        }
                    )*
                }
            )*
        }
    };
}

/// Adds the built-in CRM's cases (which the in-memory store runs too) to a suite.
macro_rules! with_builtin_crm_cases {
    ($backend:ident, $open:path, { $($modules:tt)* }) => {
        contract_suite!($backend, $open, {
            $($modules)*
            builtin_crm: [
                accounts_are_idempotent_by_external_key,
                accounts_are_found_by_phone_email_or_user_id,
                records_are_idempotent_by_key,
                status_decides_closedness,
                append_session_adds_tags_and_reopens,
                notes_are_idempotent_by_key,
                custom_field_definitions_are_ensured_once,
                fields_merge_and_activities_withdraw,
            ],
        });
    };
}

/// Every case, for one backend.
macro_rules! all_cases {
    ($backend:ident, $open:path) => {
        with_builtin_crm_cases!($backend, $open, {
            cluster: [
                a_leased_lane_is_left_to_its_node,
                a_node_renews_only_its_own_live_write_leases,
                an_outcome_under_an_old_fence_is_refused,
                a_step_over_applied_events_is_refused,
                nodes_beat_leave_and_share_the_shards,
                customer_locks_exclude_other_holders,
                the_pace_ledger_is_shared,
            ],
            events: [
                intake_is_idempotent,
                a_batch_is_stored_whole,
                ingest_groups_counts_each_group,
                same_id_same_content_is_a_duplicate,
                same_id_other_content_is_a_conflict_and_stores_nothing,
                a_conflict_leaves_the_other_groups_alone,
                pending_events_besides_those_being_committed,
                new_events_of_several_groups_keep_their_order,
                pending_events_come_in_arrival_order_until_applied,
                settled_waits_for_rules_and_first_attempts,
                events_since_lists_bodies_received_after_a_time,
            ],
            sessions: [
                commit_steps_writes_session_timeline_outbox_and_activities,
                load_sessions_reads_the_stored_ones_at_once,
                a_later_step_replaces_the_session_and_extends_the_timeline,
                steps_of_one_session_in_one_commit_apply_in_order,
                sessions_by_account_pages_newest_first,
                list_sessions_filters_and_pages_newest_first,
                a_waiting_session_is_listed_by_its_first_event,
                each_rewrite_of_a_session_keeps_its_filters_in_step,
                session_gauges_count_waiting_and_stuck_sessions,
                session_settled_waits_for_events_and_first_attempts,
            ],
            outbox: [
                keys_busy_while_a_write_is_pending,
                lane_pending_until_its_writes_are_delivered,
                a_write_delivered_with_its_step_is_stored_done,
                claim_returns_the_first_due_row_of_each_lane,
                complete_with_a_created_ref_answers_ref_get,
                a_batch_of_outcomes_resolves_every_session_of_its_keys,
                a_batch_of_outcomes_is_recorded_whole_or_not_at_all,
                lanes_are_claimed_with_their_batches,
                outcomes_recorded_at_once_are_fenced_per_lane,
                retry_schedules_the_next_attempt,
                park_lists_as_dead_and_redrive_puts_back,
                outbox_counts_by_state,
                command_state_and_commands_settled,
            ],
            settings: [settings_round_trip, settings_changes_are_kept_newest_first],
            agents: [
                dispositions_create_update_and_conflict,
                agent_identity_and_versioned_save,
                agent_busy_while_on_a_session_not_over,
                dial_requests_with_their_handoff,
                activities_filter_and_wrapup_revisions,
                a_wrapup_event_is_applied_after_its_writes,
                enabled_fields_keep_the_first_time,
            ],
        });
    };
}

all_cases!(sqlite, crate::support::open_sqlite);
all_cases!(postgres, crate::support::open_postgres);

// The built-in CRM's cases on the in-memory store that replays use (no database).
with_builtin_crm_cases!(memory, crate::support::open_memory, {});

//! Every write is one transaction with its change-log and audit entries; failures leave
//! nothing behind; change-log sequences are gap-free and ordered per tenant.

use crate::backend_tests;
use crate::harness::{Backend, TestDb};
use crate::store_isolation::open;
use idhub::model::{Actor, Member, MemberType, NewGroup, NewUser, PageRequest, Slug};
use idhub::store::StoreError;
use std::collections::BTreeSet;

backend_tests!(
    writes_append_change_log_and_audit,
    failed_writes_leave_nothing_behind,
    concurrent_writes_get_unique_increasing_sequences,
    usernames_are_unique_case_insensitively,
    membership_changes_are_idempotent_and_versioned,
    tokens_authenticate_until_revoked_or_expired,
);

fn user(name: &str) -> NewUser {
    NewUser {
        user_name: name.into(),
        active: true,
        ..Default::default()
    }
}

async fn writes_append_change_log_and_audit(b: Backend) {
    let db = TestDb::new(&b).await;
    let store = open(&db).await;
    let actor = Actor {
        actor_type: "admin".into(),
        actor_id: Some("op-1".into()),
        request_id: Some("req-9".into()),
        ..Actor::default()
    };
    let t = store
        .create_tenant(&actor, &Slug::parse("acme").unwrap(), "Acme", &[])
        .await
        .unwrap();
    let ts = store.tenant(t.id.clone());
    let u = ts.create_user(&actor, user("bjensen")).await.unwrap();
    let u2 = ts
        .replace_user(&actor, &u.id, user("bjensen2"), Some(1))
        .await
        .unwrap();
    assert_eq!(u2.version, 2);
    ts.delete_user(&actor, &u.id, None).await.unwrap();

    let changes = ts.changes_after(0, 100).await.unwrap();
    let seqs: Vec<i64> = changes.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    let ops: Vec<(&str, &str)> = changes
        .iter()
        .map(|c| (c.resource_type.as_str(), c.operation.as_str()))
        .collect();
    assert_eq!(
        ops,
        [
            ("Tenant", "create"),
            ("User", "create"),
            ("User", "update"),
            ("User", "delete")
        ]
    );
    assert_eq!(changes[2].resource_version, 2);
    assert_eq!(ts.changes_after(2, 100).await.unwrap().len(), 2);

    let audit = ts
        .list_audit(PageRequest {
            page: 1,
            limit: 100,
        })
        .await
        .unwrap();
    let actions: BTreeSet<&str> = audit.items.iter().map(|e| e.action.as_str()).collect();
    for a in ["tenant.create", "user.create", "user.update", "user.delete"] {
        assert!(actions.contains(a), "{a} missing from {actions:?}");
    }
    let create = audit
        .items
        .iter()
        .find(|e| e.action == "user.create")
        .unwrap();
    assert_eq!(create.actor_id.as_deref(), Some("op-1"));
    assert_eq!(create.request_id.as_deref(), Some("req-9"));
    assert_eq!(create.target_id.as_deref(), Some(u.id.as_str()));
    store.close().await;
}

async fn failed_writes_leave_nothing_behind(b: Backend) {
    let db = TestDb::new(&b).await;
    let store = open(&db).await;
    let sys = Actor::system();
    let t = store
        .create_tenant(&sys, &Slug::parse("acme").unwrap(), "Acme", &[])
        .await
        .unwrap();
    let ts = store.tenant(t.id.clone());
    let u = ts.create_user(&sys, user("alice")).await.unwrap();
    let before_changes = ts.changes_after(0, 100).await.unwrap().len();
    let before_audit = ts.list_audit(PageRequest::default()).await.unwrap().total;

    // A group whose second member does not exist: neither the group nor the first membership.
    let members = [
        Member {
            member_id: u.id.clone(),
            member_type: MemberType::User,
        },
        Member {
            member_id: "does-not-exist".into(),
            member_type: MemberType::User,
        },
    ];
    let r = ts
        .create_group(
            &sys,
            NewGroup {
                display_name: "Half".into(),
                ..Default::default()
            },
            &members,
        )
        .await;
    assert!(
        matches!(r, Err(StoreError::InvalidReference(ref id)) if id == "does-not-exist"),
        "{r:?}"
    );
    assert_eq!(
        ts.list_groups(PageRequest::default(), None)
            .await
            .unwrap()
            .total,
        0
    );
    assert!(ts.groups_of(&u.id).await.unwrap().is_empty());

    // A duplicate userName.
    assert!(matches!(
        ts.create_user(&sys, user("ALICE")).await,
        Err(StoreError::Conflict {
            constraint: "users_user_name_key"
        })
    ));
    // A rename onto a taken userName, a rename of a user that does not exist (PostgreSQL
    // tries these as one statement first, whose log rows must not outlive its failure).
    let other = ts.create_user(&sys, user("bob")).await.unwrap();
    let before_changes = before_changes + 1;
    let before_audit = before_audit + 1;
    assert!(
        matches!(
            ts.replace_user(&sys, &other.id, user("Alice"), None).await,
            Err(StoreError::Conflict { .. })
        ),
        "a taken userName"
    );
    assert!(matches!(
        ts.replace_user(&sys, "no-such-user", user("carol"), None)
            .await,
        Err(StoreError::NotFound)
    ));
    // A stale version.
    assert!(matches!(
        ts.replace_user(&sys, &u.id, user("x"), Some(7)).await,
        Err(StoreError::VersionMismatch)
    ));
    assert!(matches!(
        ts.delete_user(&sys, &u.id, Some(7)).await,
        Err(StoreError::VersionMismatch)
    ));

    assert_eq!(
        ts.list_users(PageRequest::default(), None)
            .await
            .unwrap()
            .total,
        2
    );
    assert_eq!(
        ts.get_user(&other.id).await.unwrap().unwrap().user_name,
        "bob"
    );
    assert_eq!(
        ts.get_user(&u.id).await.unwrap().unwrap().user_name,
        "alice"
    );
    assert_eq!(
        ts.changes_after(0, 100).await.unwrap().len(),
        before_changes
    );
    assert_eq!(
        ts.list_audit(PageRequest::default()).await.unwrap().total,
        before_audit
    );
    store.close().await;
}

async fn concurrent_writes_get_unique_increasing_sequences(b: Backend) {
    let db = TestDb::new(&b).await;
    let store = open(&db).await;
    let sys = Actor::system();
    let t = store
        .create_tenant(&sys, &Slug::parse("acme").unwrap(), "Acme", &[])
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..24 {
        let ts = store.tenant(t.id.clone());
        tasks.push(tokio::spawn(async move {
            ts.create_user(&Actor::system(), user(&format!("user{i}")))
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let seqs: Vec<i64> = store
        .tenant(t.id.clone())
        .changes_after(0, 1000)
        .await
        .unwrap()
        .iter()
        .map(|c| c.seq)
        .collect();
    // Unique and increasing in commit-log order on both backends; on SQLite also gap-free
    // (a per-tenant counter), on PostgreSQL drawn from a sequence (gap-free here only because
    // nothing rolled back).
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 25, "{seqs:?}");
    assert_eq!(seqs, sorted);
    assert_eq!(seqs, (1..=25).collect::<Vec<i64>>());
    store.close().await;
}

async fn usernames_are_unique_case_insensitively(b: Backend) {
    let db = TestDb::new(&b).await;
    let store = open(&db).await;
    let sys = Actor::system();
    let t = store
        .create_tenant(&sys, &Slug::parse("acme").unwrap(), "Acme", &[])
        .await
        .unwrap();
    let ts = store.tenant(t.id);
    let u = ts
        .create_user(&sys, user("Barbara.Jensen@Example.com"))
        .await
        .unwrap();
    assert_eq!(
        ts.find_user_by_user_name("barbara.jensen@example.COM")
            .await
            .unwrap()
            .unwrap()
            .id,
        u.id
    );
    let other = ts.create_user(&sys, user("other")).await.unwrap();
    assert!(matches!(
        ts.replace_user(&sys, &other.id, user("BARBARA.JENSEN@example.com"), None)
            .await,
        Err(StoreError::Conflict {
            constraint: "users_user_name_key"
        })
    ));
    store.close().await;
}

async fn membership_changes_are_idempotent_and_versioned(b: Backend) {
    let db = TestDb::new(&b).await;
    let store = open(&db).await;
    let sys = Actor::system();
    let t = store
        .create_tenant(&sys, &Slug::parse("acme").unwrap(), "Acme", &[])
        .await
        .unwrap();
    let ts = store.tenant(t.id);
    let u1 = ts.create_user(&sys, user("u1")).await.unwrap();
    let u2 = ts.create_user(&sys, user("u2")).await.unwrap();
    let g = ts
        .create_group(
            &sys,
            NewGroup {
                display_name: "G".into(),
                ..Default::default()
            },
            &[],
        )
        .await
        .unwrap();
    let child = ts
        .create_group(
            &sys,
            NewGroup {
                display_name: "Child".into(),
                ..Default::default()
            },
            &[],
        )
        .await
        .unwrap();
    let m = |id: &str, t: MemberType| Member {
        member_id: id.to_owned(),
        member_type: t,
    };
    let g1 = ts
        .add_members(
            &sys,
            &g.id,
            &[m(&u1.id, MemberType::User), m(&child.id, MemberType::Group)],
        )
        .await
        .unwrap();
    assert_eq!(g1.version, 2);
    // Adding an existing member again succeeds and changes nothing but the version.
    let g2 = ts
        .add_members(
            &sys,
            &g.id,
            &[m(&u1.id, MemberType::User), m(&u2.id, MemberType::User)],
        )
        .await
        .unwrap();
    assert_eq!(g2.version, 3);
    assert_eq!(
        ts.list_members(&g.id, PageRequest::default())
            .await
            .unwrap()
            .total,
        3
    );
    // Removing a non-member is not an error.
    ts.remove_members(&sys, &g.id, &["nobody".to_owned(), u2.id.clone()])
        .await
        .unwrap();
    let members = ts
        .list_members(&g.id, PageRequest::default())
        .await
        .unwrap();
    let ids: BTreeSet<String> = members.items.iter().map(|m| m.member_id.clone()).collect();
    assert_eq!(ids, BTreeSet::from([u1.id.clone(), child.id.clone()]));
    // Deleting a member user removes the membership and bumps the group.
    let before = ts.get_group(&g.id).await.unwrap().unwrap().version;
    ts.delete_user(&sys, &u1.id, None).await.unwrap();
    assert_eq!(
        ts.list_members(&g.id, PageRequest::default())
            .await
            .unwrap()
            .total,
        1
    );
    assert_eq!(
        ts.get_group(&g.id).await.unwrap().unwrap().version,
        before + 1
    );
    // Deleting the nested group removes it from its parent.
    ts.delete_group(&sys, &child.id).await.unwrap();
    assert_eq!(
        ts.list_members(&g.id, PageRequest::default())
            .await
            .unwrap()
            .total,
        0
    );
    store.close().await;
}

async fn tokens_authenticate_until_revoked_or_expired(b: Backend) {
    let db = TestDb::new(&b).await;
    let store = open(&db).await;
    let sys = Actor::system();
    let t = store
        .create_tenant(&sys, &Slug::parse("acme").unwrap(), "Acme", &[])
        .await
        .unwrap();
    let ts = store.tenant(t.id.clone());
    let tok = ts.create_token(&sys, "scim", "okta", None).await.unwrap();
    assert!(tok.secret.starts_with("idh_scim_"));
    assert!(
        !format!("{tok:?}").contains(&tok.secret),
        "Debug must not show the secret"
    );
    let listed = ts.list_tokens("scim").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(tok.secret.starts_with(&listed[0].prefix));
    assert_eq!(
        store
            .authenticate_token(&tok.secret)
            .await
            .unwrap()
            .unwrap()
            .principal
            .tenant_id,
        t.id
    );
    assert!(
        store
            .authenticate_token("idh_scim_wrong")
            .await
            .unwrap()
            .is_none()
    );
    // Use is recorded.
    assert!(
        ts.list_tokens("scim").await.unwrap()[0]
            .last_used_at
            .is_some()
    );

    ts.revoke_token(&sys, &tok.info.id).await.unwrap();
    assert!(
        store
            .authenticate_token(&tok.secret)
            .await
            .unwrap()
            .is_none()
    );

    let expired = ts
        .create_token(&sys, "scim", "old", Some(idhub::model::now_micros() - 1))
        .await
        .unwrap();
    assert!(
        store
            .authenticate_token(&expired.secret)
            .await
            .unwrap()
            .is_none()
    );
    // The stored row has the hash, never the secret.
    let raw: Vec<String> = sqlx::query_scalar::<_, String>("SELECT token_hash FROM tokens")
        .fetch_all(&connect_raw(&db.url).await)
        .await
        .unwrap();
    assert!(raw.iter().all(|h| h.len() == 64 && !h.contains("idh_")));
    store.close().await;
}

async fn connect_raw(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(url).await.unwrap()
}

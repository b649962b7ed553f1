//! Tenant B can neither see nor change tenant A's rows through any store call.

use crate::backend_tests;
use crate::harness::{Backend, TestDb};
use idhub::cache::CacheConfig;
use idhub::metrics::Metrics;
use idhub::model::{Actor, Member, MemberType, NewGroup, NewUser, PageRequest, Slug};
use idhub::store::{Store, StoreError, StoreOptions};
use std::time::Duration;

backend_tests!(tenant_b_cannot_reach_tenant_a);

pub async fn open(db: &TestDb) -> Store {
    let opts = StoreOptions {
        max_connections: 8,
        acquire_timeout: Duration::from_secs(10),
        cache: CacheConfig {
            max_entries: 1000,
            ttl: Duration::from_secs(300),
            budget_bytes: 16 << 20,
        },
        notify_hold: Duration::ZERO,
    };
    let store = Store::connect(&db.url, &opts, &Metrics::new().unwrap())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store
}

fn user(name: &str) -> NewUser {
    NewUser {
        user_name: name.into(),
        active: true,
        email: Some(format!("{name}@a.test")),
        ..Default::default()
    }
}

async fn tenant_b_cannot_reach_tenant_a(b: Backend) {
    let db = TestDb::new(&b).await;
    let store = open(&db).await;
    let sys = Actor::system();
    let ta = store
        .create_tenant(&sys, &Slug::parse("a").unwrap(), "A", &[])
        .await
        .unwrap();
    let tb = store
        .create_tenant(&sys, &Slug::parse("b").unwrap(), "B", &[])
        .await
        .unwrap();
    let a = store.tenant(ta.id.clone());
    let bs = store.tenant(tb.id.clone());

    let alice = a.create_user(&sys, user("alice")).await.unwrap();
    let ag = a
        .create_group(
            &sys,
            NewGroup {
                display_name: "Admins".into(),
                ..Default::default()
            },
            &[Member {
                member_id: alice.id.clone(),
                member_type: MemberType::User,
            }],
        )
        .await
        .unwrap();
    a.set_password_hash(&sys, &alice.id, "$argon2id$fake")
        .await
        .unwrap();
    a.grant_role(&sys, &alice.id, "admin").await.unwrap();
    let tok = a.create_token(&sys, "scim", "okta", None).await.unwrap();
    let bg = bs
        .create_group(
            &sys,
            NewGroup {
                display_name: "B group".into(),
                ..Default::default()
            },
            &[],
        )
        .await
        .unwrap();

    // Reads see nothing of A.
    assert!(bs.get_user(&alice.id).await.unwrap().is_none());
    assert!(bs.find_user_by_user_name("alice").await.unwrap().is_none());
    assert_eq!(
        bs.list_users(PageRequest::default(), None)
            .await
            .unwrap()
            .total,
        0
    );
    assert_eq!(
        bs.list_users(PageRequest::default(), Some("alice"))
            .await
            .unwrap()
            .total,
        0
    );
    assert!(bs.get_group(&ag.id).await.unwrap().is_none());
    assert_eq!(
        bs.list_groups(PageRequest::default(), Some("admins"))
            .await
            .unwrap()
            .total,
        0
    );
    assert_eq!(
        bs.list_members(&ag.id, PageRequest::default())
            .await
            .unwrap()
            .total,
        0
    );
    assert!(bs.groups_of(&alice.id).await.unwrap().is_empty());
    assert!(bs.password_hash(&alice.id).await.unwrap().is_none());
    assert!(bs.user_roles(&alice.id).await.unwrap().is_empty());
    assert!(bs.list_tokens("scim").await.unwrap().is_empty());
    assert!(
        bs.list_audit(PageRequest::default())
            .await
            .unwrap()
            .items
            .iter()
            .all(|e| e.target_id.as_deref() != Some(alice.id.as_str()))
    );
    assert!(
        bs.changes_after(0, 1000)
            .await
            .unwrap()
            .iter()
            .all(|c| c.resource_id != alice.id && c.resource_id != ag.id)
    );

    // Writes cannot touch A.
    assert!(matches!(
        bs.replace_user(&sys, &alice.id, user("mallory"), None)
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        bs.replace_user(&sys, &alice.id, user("mallory"), Some(1))
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        bs.delete_user(&sys, &alice.id, None).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        bs.delete_group(&sys, &ag.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        bs.add_members(&sys, &ag.id, &[]).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        bs.remove_members(&sys, &ag.id, std::slice::from_ref(&alice.id))
            .await,
        Err(StoreError::NotFound)
    ));
    // …nor pull A's user into B's group.
    let m = [Member {
        member_id: alice.id.clone(),
        member_type: MemberType::User,
    }];
    assert!(matches!(
        bs.add_members(&sys, &bg.id, &m).await,
        Err(StoreError::InvalidReference(_))
    ));
    assert!(matches!(
        bs.set_password_hash(&sys, &alice.id, "x").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        bs.grant_role(&sys, &alice.id, "admin").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        bs.revoke_token(&sys, &tok.info.id).await,
        Err(StoreError::NotFound)
    ));

    // The same userName is free in B (uniqueness is per tenant).
    bs.create_user(&sys, user("ALICE")).await.unwrap();

    // A is intact.
    let still = a.get_user(&alice.id).await.unwrap().unwrap();
    assert_eq!(still.user_name, "alice");
    assert_eq!(still.version, 1);
    assert_eq!(
        a.list_members(&ag.id, PageRequest::default())
            .await
            .unwrap()
            .total,
        1
    );
    assert_eq!(
        a.password_hash(&alice.id).await.unwrap().as_deref(),
        Some("$argon2id$fake")
    );
    assert_eq!(a.user_roles(&alice.id).await.unwrap(), ["admin"]);
    let auth = store
        .authenticate_token(&tok.secret)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(auth.principal.tenant_id, ta.id);
    assert!(a.list_tokens("scim").await.unwrap()[0].revoked_at.is_none());
    store.close().await;
}

//! A write is never followed by a stale read on the same node.

use crate::backend_tests;
use crate::harness::{Backend, TestDb};
use crate::store_isolation::open;
use idhub::model::{Actor, Hostname, Member, MemberType, NewGroup, NewUser, Slug};
use idhub::store::TenantUpdate;

backend_tests!(
    reads_after_writes_are_fresh,
    concurrent_readers_never_resurrect_old_versions
);

fn user(name: &str, display: &str) -> NewUser {
    NewUser {
        user_name: name.into(),
        display_name: Some(display.into()),
        active: true,
        ..Default::default()
    }
}

async fn reads_after_writes_are_fresh(b: Backend) {
    let db = TestDb::new(&b).await;
    let store = open(&db).await;
    let sys = Actor::system();
    let t = store
        .create_tenant(&sys, &Slug::parse("acme").unwrap(), "Acme", &[])
        .await
        .unwrap();
    let ts = store.tenant(t.id.clone());

    // User by id: cached, then replaced, then deleted.
    let u = ts.create_user(&sys, user("u", "One")).await.unwrap();
    assert_eq!(
        ts.get_user(&u.id)
            .await
            .unwrap()
            .unwrap()
            .display_name
            .as_deref(),
        Some("One")
    );
    assert_eq!(ts.get_user(&u.id).await.unwrap().unwrap().version, 1); // served from the cache
    ts.replace_user(&sys, &u.id, user("u", "Two"), None)
        .await
        .unwrap();
    let again = ts.get_user(&u.id).await.unwrap().unwrap();
    assert_eq!(
        (again.display_name.as_deref(), again.version),
        (Some("Two"), 2)
    );
    ts.delete_user(&sys, &u.id, None).await.unwrap();
    assert!(ts.get_user(&u.id).await.unwrap().is_none());

    // Group by id: membership changes bump the cached version.
    let m = ts.create_user(&sys, user("m", "M")).await.unwrap();
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
    assert_eq!(ts.get_group(&g.id).await.unwrap().unwrap().version, 1);
    ts.add_members(
        &sys,
        &g.id,
        &[Member {
            member_id: m.id.clone(),
            member_type: MemberType::User,
        }],
    )
    .await
    .unwrap();
    assert_eq!(ts.get_group(&g.id).await.unwrap().unwrap().version, 2);
    ts.delete_group(&sys, &g.id).await.unwrap();
    assert!(ts.get_group(&g.id).await.unwrap().is_none());

    // Token → principal: revocation is seen by the next authentication.
    let tok = ts.create_token(&sys, "scim", "t", None).await.unwrap();
    assert!(
        store
            .authenticate_token(&tok.secret)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .authenticate_token(&tok.secret)
            .await
            .unwrap()
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

    // Host → tenant (including a cached "unknown") and tenant by id.
    let host = Hostname::parse("sso.acme.test").unwrap();
    assert_eq!(store.resolve_host(&host).await.unwrap(), None);
    store
        .update_tenant(
            &sys,
            &t.id,
            TenantUpdate {
                hostnames: Some(vec![host.clone()]),
                display_name: Some("Acme 2".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(store.resolve_host(&host).await.unwrap(), Some(t.id.clone()));
    assert_eq!(
        store
            .tenant_by_id(&t.id)
            .await
            .unwrap()
            .unwrap()
            .display_name,
        "Acme 2"
    );
    store
        .update_tenant(
            &sys,
            &t.id,
            TenantUpdate {
                hostnames: Some(vec![]),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(store.resolve_host(&host).await.unwrap(), None);
    store.close().await;
}

/// Readers hammer a user while a writer updates it; after each write returns, no read may
/// show an older version than the one written.
async fn concurrent_readers_never_resurrect_old_versions(b: Backend) {
    let db = TestDb::new(&b).await;
    let store = open(&db).await;
    let sys = Actor::system();
    let t = store
        .create_tenant(&sys, &Slug::parse("acme").unwrap(), "Acme", &[])
        .await
        .unwrap();
    let ts = store.tenant(t.id.clone());
    let u = ts.create_user(&sys, user("u", "v1")).await.unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..4 {
        let ts = ts.clone();
        let id = u.id.clone();
        let stop = stop.clone();
        readers.push(tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                ts.get_user(&id).await.unwrap();
                n += 1;
                tokio::task::yield_now().await;
            }
            n
        }));
    }
    for i in 2..=30 {
        let written = ts
            .replace_user(&sys, &u.id, user("u", &format!("v{i}")), None)
            .await
            .unwrap();
        assert_eq!(written.version, i64::from(i));
        let read = ts.get_user(&u.id).await.unwrap().unwrap();
        assert!(
            read.version >= written.version,
            "stale read: version {} after writing {}",
            read.version,
            written.version
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for r in readers {
        total += r.await.unwrap();
    }
    assert!(total > 0);
    store.close().await;
}

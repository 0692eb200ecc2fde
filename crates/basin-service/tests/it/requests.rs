//! Access requests through the service: a consumer with USAGE asks for SELECT, an owner with
//! MANAGE approves (the grant is made) or denies; others can neither see nor decide; a hidden
//! object answers like a missing one; every step is audited.

use basin_catalog::access::{Privilege, RequestStatus, Securable};
use basin_service::RequestScope;
use basin_testkit::{DataDir, error, rows};

use crate::user_with;

fn object(text: &str) -> Securable {
    Securable::parse(text).unwrap()
}

#[test]
fn request_approve_deny_cancel() {
    crate::on_large_stack(requests);
}

async fn requests() {
    let data = DataDir::with(&["main"], &["sales", "hr"]).await;
    let hub = crate::hub_of(&data);
    data.catalog.ensure_admin("admin").await.unwrap();
    let admin = hub.user_session("admin", &[], "test").await.unwrap();
    rows(
        admin.engine(),
        "CREATE TABLE sales.orders AS SELECT * FROM (VALUES (1, 10.5), (2, 20.0)) AS v(id, amount)",
    )
    .await;
    rows(
        admin.engine(),
        "CREATE TABLE hr.salaries AS SELECT 1 AS id, 100 AS pay",
    )
    .await;

    let owner = user_with(&hub, &data, "owner", &["GRANT MANAGE ON DATASET sales"]).await;
    let analyst = user_with(&hub, &data, "analyst", &["GRANT USAGE ON DATASET sales"]).await;
    let other = user_with(&hub, &data, "other", &["GRANT USAGE ON DATASET sales"]).await;
    let nobody = user_with(&hub, &data, "nobody", &[]).await;
    let sql = "SELECT id, amount FROM sales.orders ORDER BY id";
    assert!(error(analyst.engine(), sql).await.contains("not found"));

    // Asking: a reason is required, one pending request per object.
    let sales = object("dataset main.sales");
    let e = analyst
        .request_access(&sales, Privilege::Select, " ")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("reason"), "{e}");
    let e = analyst
        .request_access(&sales, Privilege::Modify, "x")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("only SELECT"), "{e}");
    let r = analyst
        .request_access(&sales, Privilege::Select, "monthly revenue report")
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.requester.as_str()),
        (RequestStatus::Pending, "analyst")
    );
    let e = analyst
        .request_access(&sales, Privilege::Select, "again")
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("already has a pending request"),
        "{e}"
    );

    // A hidden object answers exactly like a missing one.
    let hidden = analyst
        .request_access(&object("dataset main.hr"), Privilege::Select, "curious")
        .await
        .unwrap_err()
        .to_string();
    let missing = analyst
        .request_access(&object("dataset main.nope"), Privilege::Select, "curious")
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(hidden.replace("hr", "X"), missing.replace("nope", "X"));
    let e = analyst
        .request_access(
            &object("table main.hr.salaries"),
            Privilege::Select,
            "curious",
        )
        .await
        .unwrap_err();
    assert!(matches!(e, basin_service::ServiceError::NotFound(_)), "{e}");

    // Others neither see nor decide it.
    for s in [&other, &nobody] {
        assert!(
            s.access_requests(RequestScope::ToReview, None)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            s.access_requests(RequestScope::Mine, None)
                .await
                .unwrap()
                .is_empty()
        );
        let e = s.approve_request(&r.id, "").await.unwrap_err().to_string();
        assert_eq!(e, format!("access request '{}' not found", r.id));
        assert!(s.access_request(&r.id).await.is_err());
    }
    let e = analyst
        .approve_request(&r.id, "")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("need MANAGE"), "{e}");

    // The owner sees it, approves it: the grant is made and the analyst reads.
    let queue = owner
        .access_requests(RequestScope::ToReview, Some(RequestStatus::Pending))
        .await
        .unwrap();
    assert_eq!(
        queue.iter().map(|q| q.id.as_str()).collect::<Vec<_>>(),
        [r.id.as_str()]
    );
    let approved = owner.approve_request(&r.id, "ok for Q3").await.unwrap();
    assert_eq!(approved.status, RequestStatus::Approved);
    assert_eq!(approved.decided_by.as_deref(), Some("owner"));
    assert_eq!(approved.comment, "ok for Q3");
    assert_eq!(rows(analyst.engine(), sql).await, ["1|10.5", "2|20.0"]);
    let e = owner
        .approve_request(&r.id, "")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("is approved"), "{e}");
    let e = analyst
        .request_access(&sales, Privilege::Select, "more")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("already have SELECT"), "{e}");

    // Denied: a comment is required, and access stays closed.
    let table = object("dataset main.sales");
    let r2 = other
        .request_access(&table, Privilege::Select, "just looking")
        .await
        .unwrap();
    let e = owner
        .deny_request(&r2.id, "  ")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("comment"), "{e}");
    let e = other
        .deny_request(&r2.id, "no")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("need MANAGE"), "{e}");
    let denied = owner
        .deny_request(&r2.id, "use the aggregated view")
        .await
        .unwrap();
    assert_eq!(denied.status, RequestStatus::Denied);
    assert!(error(other.engine(), sql).await.contains("not found"));
    let mine = other
        .access_requests(RequestScope::Mine, None)
        .await
        .unwrap();
    assert_eq!(mine[0].comment, "use the aggregated view");

    // Cancelled by its requester only.
    let r3 = other
        .request_access(&table, Privilege::Select, "second try")
        .await
        .unwrap();
    let e = owner.cancel_request(&r3.id).await.unwrap_err().to_string();
    assert!(e.contains("only other may cancel"), "{e}");
    assert_eq!(
        other.cancel_request(&r3.id).await.unwrap().status,
        RequestStatus::Cancelled
    );
    assert!(owner.approve_request(&r3.id, "").await.is_err());
    assert!(error(other.engine(), sql).await.contains("not found"));

    // Everything is audited.
    let events = admin.audit_events(None, 1000).await.unwrap();
    for action in [
        "access_request.create",
        "access_request.approve",
        "access_request.deny",
        "access_request.cancel",
        "grant",
    ] {
        assert!(
            events
                .iter()
                .any(|e| e.action == action && e.outcome == "ok"),
            "{action}"
        );
    }
    assert!(events.iter().any(|e| e.action == "access_request.approve"
        && e.outcome == "denied"
        && e.principal == "nobody"));
}

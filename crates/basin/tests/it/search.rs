//! End-to-end: search over REST and the CLI on the `basin demo` hub — ranking, typos, facets,
//! refused input, and each sample user finding only what it may see.

use serde_json::Value;

use crate::Basin;
use crate::access_requests::demo;
use crate::server::{ADMIN_PASSWORD, Answer, Server, problem};

fn names(a: &Answer) -> Vec<&str> {
    a.body["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", a.text))
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn rest_search_ranks_filters_and_hides() {
    let b = demo();
    let mut server = Server::start(&b, &[]);
    server.kill_at_exit(None);
    let s = server.client();
    let admin = s.login("admin", ADMIN_PASSWORD).await;
    let search = |token: String, query: &'static str| {
        let s = &s;
        async move {
            s.call("GET", &format!("/api/v1/search{query}"), Some(&token), None)
                .await
        }
    };

    let a = search(admin.clone(), "?q=customers").await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(names(&a)[0], "main.sales.customers");
    assert_eq!(a.body["hits"][0]["matched"], "exact");
    assert_eq!(a.body["hits"][0]["kind"], "table");
    assert!(a.body["facets"]["hub"][0]["value"] == "main", "{}", a.text);
    // Typos, prefixes, columns, filters.
    assert!(names(&search(admin.clone(), "?q=custmers").await).contains(&"main.sales.customers"));
    let a = search(admin.clone(), "?q=segm").await;
    assert_eq!(names(&a), ["main.sales.customers.segment"]);
    assert_eq!(a.body["hits"][0]["data_type"], "VARCHAR");
    let a = search(
        admin.clone(),
        "?q=order&layer=source&tag=demo&domain=sales&limit=2",
    )
    .await;
    assert_eq!(a.body["hits"].as_array().unwrap().len(), 2, "{}", a.text);
    let token = a.body["next_page_token"].as_str().unwrap().to_string();
    let next = s
        .call("GET", &format!("/api/v1/search?q=order&layer=source&tag=demo&domain=sales&limit=2&page_token={token}"), Some(&admin), None)
        .await;
    assert_eq!(next.status, 200, "{}", next.text);
    assert!(names(&next).iter().all(|n| !names(&a).contains(n)));
    assert_eq!(
        search(admin.clone(), "?q=order&layer=semantic").await.body["total"],
        0
    );

    // Bad input: problem+json naming what to change.
    for (query, word) in [
        ("", "q is empty"),
        ("?q=%20", "q is empty"),
        ("?q=orders&limt=5", "unknown field 'limt'"),
        ("?q=orders&limit=0", "limit"),
        ("?q=orders&layer=gold", "gold"),
        ("?q=orders&page_token=zzz", "page_token"),
    ] {
        let a = search(admin.clone(), query).await;
        let detail = problem(&a, 400).body["detail"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(detail.contains(word), "{query}: {detail}");
    }
    let long = format!("/api/v1/search?q={}", "x".repeat(201));
    let a = s.call("GET", &long, Some(&admin), None).await;
    assert!(
        problem(&a, 400).body["detail"]
            .as_str()
            .unwrap()
            .contains("200")
    );
    problem(
        &s.call("GET", "/api/v1/search?q=orders", None, None).await,
        401,
    );

    // Each user finds what it may see, and hidden objects count in no facet.
    let outsider = s.login("outsider", "demo-password-1").await;
    let a = search(outsider.clone(), "?q=customers").await;
    assert_eq!(a.body["total"], 0, "{}", a.text);
    assert_eq!(a.body["facets"]["hub"], Value::Array(vec![]));
    assert_eq!(search(outsider.clone(), "?q=sales").await.body["total"], 0);
    // The consumer sees the dataset (USAGE), whose description names customers, not its tables.
    let consumer = s.login("consumer", "demo-password-1").await;
    assert_eq!(
        names(&search(consumer.clone(), "?q=customers").await),
        ["main.sales"]
    );
    let analyst = s.login("analyst", "demo-password-1").await;
    assert!(
        names(&search(analyst.clone(), "?q=customer").await)
            .contains(&"main.sales.customers.customer_id")
    );

    let spec = s
        .call("GET", "/api/v1/openapi.json", Some(&admin), None)
        .await;
    let params: Vec<&str> = spec.body["paths"]["/api/v1/search"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        params,
        [
            "q",
            "hub",
            "layer",
            "domain",
            "tag",
            "owner",
            "limit",
            "page_token"
        ]
    );
}

#[test]
fn cli_search_prints_hits_in_every_format() {
    let b: Basin = demo();
    let out = b.ok(&["--output", "json", "search", "ordres", "--limit", "5"]);
    let r: Value = serde_json::from_str(&out).unwrap();
    assert!(
        r["hits"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["name"] == "main.sales.orders"),
        "{out}"
    );
    assert!(r["facets"]["layer"][0]["value"] == "source", "{out}");
    let out = b.ok(&["search", "orders", "--hub", "main"]);
    let first = out.lines().nth(3).unwrap_or_default();
    assert!(
        first.starts_with("| table ")
            && first.contains("| main.sales.orders ")
            && first.contains("| exact "),
        "{out}"
    );
    let out = b.ok(&["--output", "csv", "search", "segment"]);
    assert_eq!(
        out.lines().next(),
        Some("kind,name,matched,description,tags"),
        "{out}"
    );
    assert!(
        out.contains("column,main.sales.customers.segment,exact"),
        "{out}"
    );
    let out = b.ok(&["--as", "outsider", "--output", "json", "search", "orders"]);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["total"], 0);
    let e = b.fails(&["search", "orders", "--layer", "gold"]);
    assert!(e.contains("gold"), "{e}");
    let e = b.fails(&["search", "  "]);
    assert!(e.contains("q is empty"), "{e}");
}

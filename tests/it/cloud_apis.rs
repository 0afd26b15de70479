//! B2 and Swift are not tested against the live services: what locksmith must obtain
//! through their own APIs (a B2 bucket ID, a Swift storage URL and token) is tested
//! against recorded responses served on loopback.

use std::collections::BTreeMap;

use base64::Engine as _;
use locksmith::backend::{b2, swift};
use locksmith::secret::Secret;
use serde_json::{Value, json};

use crate::common::rt;
use crate::services::*;

fn client() -> reqwest::Client {
    locksmith::install_tls_provider();
    reqwest::Client::new()
}

fn authorized(allowed: Value) -> String {
    json!({"accountId": "acc-1", "authorizationToken": "Tok-B2-7", "apiUrl": "{SELF}",
           "allowed": allowed})
    .to_string()
}

fn lookup(srv: &TestServer, bucket: &str) -> Result<String, String> {
    rt().block_on(b2::bucket_id(
        &client(),
        &srv.url(""),
        "key-id",
        &Secret::new("B2-Key-Secret"),
        bucket,
    ))
}

#[test]
fn b2_bucket_id_is_looked_up_by_name() {
    let srv = TestServer::canned(vec![
        route(
            "GET",
            "/b2api/v2/b2_authorize_account",
            200,
            &[],
            &authorized(json!({"bucketId": null})),
        ),
        route(
            "POST",
            "/b2api/v2/b2_list_buckets",
            200,
            &[],
            r#"{"buckets":[{"bucketId":"bkt-other","bucketName":"other"},{"bucketId":"bkt-42","bucketName":"backups"}]}"#,
        ),
    ]);
    assert_eq!(lookup(&srv, "backups").unwrap(), "bkt-42");
    let reqs = srv.taken();
    assert_eq!(reqs.len(), 2);
    let basic = base64::engine::general_purpose::STANDARD.encode("key-id:B2-Key-Secret");
    assert_eq!(reqs[0].headers["authorization"], format!("Basic {basic}"));
    assert_eq!(reqs[1].headers["authorization"], "Tok-B2-7");
    let body: Value = serde_json::from_slice(&reqs[1].body).unwrap();
    assert_eq!(body, json!({"accountId": "acc-1", "bucketName": "backups"}));
    let e = lookup(&srv, "nope").unwrap_err();
    assert!(e.contains("no bucket \"nope\""), "{e}");
}

#[test]
fn b2_key_restricted_to_the_bucket_needs_no_listing() {
    let srv = TestServer::canned(vec![route(
        "GET",
        "/b2api/v2/b2_authorize_account",
        200,
        &[],
        &authorized(json!({"bucketId": "bkt-9", "bucketName": "backups"})),
    )]);
    assert_eq!(lookup(&srv, "backups").unwrap(), "bkt-9");
    assert_eq!(srv.taken().len(), 1);
}

#[test]
fn b2_bad_key_is_a_clear_error_without_the_key() {
    let srv = TestServer::canned(vec![route(
        "GET",
        "/b2api/v2/b2_authorize_account",
        401,
        &[],
        "{}",
    )]);
    let e = lookup(&srv, "backups").unwrap_err();
    assert!(
        e.contains("B2_ACCOUNT_ID") && !e.contains("B2-Key-Secret"),
        "{e}"
    );
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn swift_v1_auth_gives_storage_url_and_token() {
    let srv = TestServer::canned(vec![route(
        "GET",
        "/auth/v1.0",
        200,
        &[
            ("X-Storage-Url", "{SELF}/v1/AUTH_test"),
            ("X-Auth-Token", "Tok-Swift-1"),
        ],
        "",
    )]);
    let s = rt()
        .block_on(swift::session(
            &client(),
            &env(&[
                ("ST_AUTH", &format!("{}/auth/v1.0", srv.url(""))),
                ("ST_USER", "test:tester"),
                ("ST_KEY", "St-Key-Secret"),
            ]),
        ))
        .unwrap();
    assert_eq!(s.storage_url, format!("{}/v1/AUTH_test", srv.url("")));
    assert_eq!(s.token.expose(), "Tok-Swift-1");
    let r = &srv.taken()[0];
    assert_eq!(r.headers["x-auth-user"], "test:tester");
    assert_eq!(r.headers["x-auth-key"], "St-Key-Secret");
}

#[test]
fn swift_keystone_v3_picks_the_regions_public_endpoint() {
    let catalog = json!({"token": {"catalog": [
        {"type": "identity", "endpoints": [{"interface": "public", "region": "RegionOne", "url": "http://id"}]},
        {"type": "object-store", "endpoints": [
            {"interface": "internal", "region": "RegionTwo", "url": "http://internal-two"},
            {"interface": "public", "region": "RegionOne", "url": "http://public-one"},
            {"interface": "public", "region": "RegionTwo", "url": "http://public-two"}]}]}});
    let srv = TestServer::canned(vec![route(
        "POST",
        "/v3/auth/tokens",
        201,
        &[("X-Subject-Token", "Tok-Keystone-3")],
        &catalog.to_string(),
    )]);
    let s = rt()
        .block_on(swift::session(
            &client(),
            &env(&[
                ("OS_AUTH_URL", &format!("{}/v3", srv.url(""))),
                ("OS_USERNAME", "backup"),
                ("OS_PASSWORD", "Os-Pass-Secret"),
                ("OS_PROJECT_NAME", "backups"),
                ("OS_REGION_NAME", "RegionTwo"),
            ]),
        ))
        .unwrap();
    assert_eq!(s.storage_url, "http://public-two");
    assert_eq!(s.token.expose(), "Tok-Keystone-3");
    let body: Value = serde_json::from_slice(&srv.taken()[0].body).unwrap();
    assert_eq!(body["auth"]["identity"]["methods"], json!(["password"]));
    assert_eq!(
        body["auth"]["identity"]["password"]["user"]["name"],
        "backup"
    );
    assert_eq!(
        body["auth"]["identity"]["password"]["user"]["domain"]["name"],
        "Default"
    );
    assert_eq!(body["auth"]["scope"]["project"]["name"], "backups");
}

#[test]
fn swift_storage_url_and_token_are_used_as_given() {
    let s = rt()
        .block_on(swift::session(
            &client(),
            &env(&[
                ("OS_STORAGE_URL", "https://swift.example/v1/AUTH_x"),
                ("OS_AUTH_TOKEN", "Tok-Given"),
            ]),
        ))
        .unwrap();
    assert_eq!(s.storage_url, "https://swift.example/v1/AUTH_x");
    let e = rt()
        .block_on(swift::session(&client(), &env(&[])))
        .unwrap_err();
    assert!(e.contains("OS_AUTH_URL"), "{e}");
}

/// B2's and Keystone's logins built their own HTTP clients and ignored `RESTIC_CACERT`:
/// now every client comes from one builder, so a CA file that cannot be read is reported
/// before any login is tried.
#[test]
fn b2_and_keystone_logins_trust_restic_cacert() {
    for (repo, env) in [
        (
            "b2:bucket:prefix",
            vec![("B2_ACCOUNT_ID", "id"), ("B2_ACCOUNT_KEY", "B2-Key-Secret")],
        ),
        (
            "swift:container:/prefix",
            vec![
                ("OS_AUTH_URL", "http://127.0.0.1:9/v3"),
                ("OS_USERNAME", "u"),
                ("OS_PASSWORD", "Os-Password-Secret"),
            ],
        ),
    ] {
        let out = crate::common::locksmith_cmd()
            .args(["-r", repo, "-o", "b2.api-url=http://127.0.0.1:9", "locks"])
            .env("RESTIC_PASSWORD", "pw")
            .env("RESTIC_CACERT", "/nonexistent/private-ca.pem")
            .envs(env)
            .output()
            .unwrap();
        let text = crate::common::text(&out);
        assert_eq!(out.status.code(), Some(1), "{repo}: {text}");
        assert!(
            text.contains("RESTIC_CACERT /nonexistent/private-ca.pem"),
            "{repo}: {text}"
        );
        assert!(!text.contains("Secret"), "{repo}: {text}");
    }
}

//! API discovery cached on disk per cluster: a second client resolves kinds without
//! discovery, a CRD installed after the cache was written is found (one refresh on a miss), a
//! corrupt cache file is ignored and rewritten.

use crate::common;
use bosun::discovery_cache::{CacheConfig, DEFAULT_TTL};
use bosun::kube_client::connect_with;
use std::time::{Duration, Instant};

fn config(dir: &tempfile::TempDir) -> CacheConfig {
    CacheConfig {
        dir: dir.path().join("discovery"),
        ttl: DEFAULT_TTL,
    }
}

/// A new client of the sandbox (a new `bosun run`), discovery cached in `cfg`.
async fn client(cfg: Option<&CacheConfig>) -> bosun::kube_client::Cluster {
    connect_with(&common::kube_target(), cfg)
        .await
        .expect("connect")
}

/// The one cache file in `cfg`'s directory.
fn cache_file(cfg: &CacheConfig) -> std::path::PathBuf {
    let files: Vec<_> = std::fs::read_dir(&cfg.dir)
        .expect("cache dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(files.len(), 1, "one file per cluster: {files:?}");
    files[0].clone()
}

#[tokio::test]
async fn a_second_client_resolves_kinds_from_the_disk_cache_without_discovery() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(&dir);
    let first = client(Some(&cfg)).await;
    let (ar, _) = first
        .resolve("deploy")
        .await
        .expect("resolve")
        .expect("found");
    assert_eq!(
        (ar.group.as_str(), ar.kind.as_str()),
        ("apps", "Deployment")
    );
    assert_eq!(first.discoveries(), 1);
    let file = cache_file(&cfg);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", file.display());

    // a new client (a second `bosun run`) resolves from the file
    let second = client(Some(&cfg)).await;
    for kind in ["pods", "ConfigMap", "deployments.apps", "clusterroles"] {
        assert!(
            second.resolve(kind).await.expect("resolve").is_some(),
            "{kind}"
        );
    }
    assert_eq!(second.discoveries(), 0, "resolved from the disk cache");

    // without a disk cache, every client discovers
    let uncached = client(None).await;
    assert!(uncached.resolve("pods").await.expect("resolve").is_some());
    assert_eq!(uncached.discoveries(), 1);
}

#[tokio::test]
async fn a_crd_installed_after_the_cache_was_written_is_found_by_one_refresh() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(&dir);
    // a long-lived client (`bosun mcp`) that discovered before the CRD existed
    let long_lived = client(Some(&cfg)).await;
    assert!(long_lived.resolve("pods").await.expect("resolve").is_some());
    assert_eq!(long_lived.discoveries(), 1);

    let group = format!("{}.cache.bosun.test", common::suffix());
    let crd = common::create(serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("gadgets.{group}")},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object",
                    "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    }))
    .await;
    // the server serves the new kind once its CRD is established (outside bosun's cache)
    let kc = common::kube().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while kube::discovery::group(&kc, &group).await.is_err() {
        assert!(Instant::now() < deadline, "CRD {group} never served");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // a new client starts from the file written before the CRD: the miss refreshes it once
    let fresh = client(Some(&cfg)).await;
    let (ar, caps) = fresh
        .resolve(&format!("gadgets.{group}"))
        .await
        .expect("resolve")
        .expect("the new kind is found after a refresh");
    assert_eq!(ar.kind, "Gadget");
    assert!(bosun::kube_client::is_namespaced(&caps));
    assert_eq!(fresh.discoveries(), 1, "one refresh on the miss");
    // and the long-lived client, whose memory predates the CRD, finds it too
    let (ar, _) = bosun::tools::k8s::resolve_gvk(&long_lived, &format!("{group}/v1"), "Gadget")
        .await
        .expect("resolve_gvk after a refresh");
    assert_eq!(ar.plural, "gadgets");
    assert_eq!(long_lived.discoveries(), 2);
    // the refreshed file serves the next client without discovery
    let next = client(Some(&cfg)).await;
    assert!(next.resolve("Gadget").await.expect("resolve").is_some());
    assert_eq!(next.discoveries(), 0);
    // a kind the server does not serve costs one discovery, then errors as before
    let err = bosun::tools::k8s::resolve_kind(&next, "nosuchwidgets")
        .await
        .expect_err("unknown kind");
    assert!(err.to_string().contains("no resource type"), "{err}");
    assert_eq!(next.discoveries(), 1);

    let name = crd.metadata.name.clone().unwrap_or_default();
    let api: kube::Api<kube::api::DynamicObject> = kube::Api::all_with(
        kc,
        &bosun::tools::k8s::ar(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
        ),
    );
    let _ = api.delete(&name, &Default::default()).await;
}

#[tokio::test]
async fn a_corrupt_cache_file_is_ignored_and_rewritten() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(&dir);
    let first = client(Some(&cfg)).await;
    assert!(first.resolve("pods").await.expect("resolve").is_some());
    let file = cache_file(&cfg);
    std::fs::write(&file, b"{\"format\": 1, \"resources\": [tru").expect("corrupt it");

    let second = client(Some(&cfg)).await;
    let (ar, _) = second
        .resolve("services")
        .await
        .expect("a corrupt cache is not an error")
        .expect("found");
    assert_eq!(ar.kind, "Service");
    assert_eq!(second.discoveries(), 1, "the corrupt file was not used");
    let text = std::fs::read_to_string(&file).expect("rewritten");
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON again");
    assert!(v["resources"].as_array().is_some_and(|r| !r.is_empty()));

    // the rewritten file serves a third client
    let third = client(Some(&cfg)).await;
    assert!(third.resolve("services").await.expect("resolve").is_some());
    assert_eq!(third.discoveries(), 0);
}

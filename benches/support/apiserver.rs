//! A stand-in for a Kubernetes API server's `/version` (the preflight's only request), shared
//! by the benchmarks that start the real binary.

use std::path::{Path, PathBuf};

/// A stand-in for the API server's `/version`, which `bosun run` asks before its first model
/// call (the preflight): a real user pays that round trip, so the cold start includes it. It
/// answers every request with a 1.20 version object, on its own thread, for the process's life.
pub fn fake_apiserver_kubeconfig(home: &Path) -> PathBuf {
    use std::io::Write;
    static ADDR: std::sync::OnceLock<std::net::SocketAddr> = std::sync::OnceLock::new();
    let addr = *ADDR.get_or_init(|| {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        std::thread::spawn(move || {
            for mut s in l.incoming().flatten() {
                let mut buf = [0u8; 4096];
                let _ = std::io::Read::read(&mut s, &mut buf);
                let body = r#"{"major":"1","minor":"20","gitVersion":"v1.20.2","gitCommit":"","gitTreeState":"","buildDate":"","goVersion":"","compiler":"","platform":"linux/amd64"}"#;
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        addr
    });
    let path = home.join("kubeconfig");
    let kc = format!("apiVersion: v1\nkind: Config\ncurrent-context: bench\nclusters:\n- name: bench\n  cluster: {{server: \"http://{addr}\"}}\ncontexts:\n- name: bench\n  context: {{cluster: bench, user: bench}}\nusers:\n- name: bench\n  user: {{token: bench}}\n");
    std::fs::write(&path, kc).expect("kubeconfig");
    path
}

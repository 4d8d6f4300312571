//! Test certificates, made by the `openssl` CLI at test time.

/// A self-signed certificate for `domain`, valid for `days`, and its
/// private key: `(cert_pem, key_pem)`.
pub fn self_signed(domain: &str, days: u32) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let ok = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj"])
        .arg(format!("/CN={domain}"))
        .arg("-addext")
        .arg(format!("subjectAltName=DNS:{domain}"))
        .arg("-days")
        .arg(days.to_string())
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run openssl (Debian package openssl)")
        .success();
    assert!(ok, "openssl req failed");
    (
        std::fs::read_to_string(cert).unwrap(),
        std::fs::read_to_string(key).unwrap(),
    )
}

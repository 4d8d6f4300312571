// The UI bundle is embedded from target/site; make sure the folder exists so
// a plain `cargo build` or `cargo test` works before the bundle is built, and
// re-embed when the bundle changes.
fn main() {
    let site = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/site");
    std::fs::create_dir_all(&site).expect("create target/site");
    println!("cargo:rerun-if-changed=../target/site");
    println!("cargo:rerun-if-changed=migrations");
}

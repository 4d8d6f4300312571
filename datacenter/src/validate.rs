//! Checks on everything a user can set on a component. Messages say what is
//! allowed, so the console can show them as they are.

use crate::api::*;
use std::collections::HashSet;

pub const MAX_ENV: usize = 200;
pub const MAX_ENV_VALUE: usize = 32 * 1024;
pub const MAX_REPLICAS: u32 = 100;

pub fn dns_label(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} “{}” is not valid: use 1–63 lowercase letters, digits or dashes, starting and ending with a letter or digit",
            name.chars().take(40).collect::<String>()
        ))
    }
}

fn env_name(what: &str, name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let ok = name.len() <= 128
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} “{}” is not valid: use letters, digits and _, not starting with a digit",
            name.chars().take(40).collect::<String>()
        ))
    }
}

/// Every problem at once, so a form can show them together.
pub fn component(spec: &ComponentSpec) -> Result<(), Vec<String>> {
    let mut errs = vec![];
    let mut check = |r: Result<(), String>| {
        if let Err(e) = r {
            errs.push(e)
        }
    };
    check(dns_label("component name", &spec.name));
    check(source(&spec.source));
    let mut seen = HashSet::new();
    for p in &spec.ports {
        if p.port == 0 {
            check(Err("port 0 is not a valid port (use 1–65535)".into()));
        }
        if !seen.insert(p.port) {
            check(Err(format!("port {} is listed twice", p.port)));
        }
    }
    if spec.env.len() + spec.secrets.len() > MAX_ENV {
        check(Err(format!(
            "at most {MAX_ENV} environment variables and secrets together"
        )));
    }
    let mut names = HashSet::new();
    for e in &spec.env {
        check(env_name("environment variable", &e.name));
        if e.value.len() > MAX_ENV_VALUE {
            check(Err(format!(
                "the value of {} is longer than {MAX_ENV_VALUE} bytes",
                e.name
            )));
        }
        if !names.insert(e.name.clone()) {
            check(Err(format!("environment variable {} is set twice", e.name)));
        }
    }
    for (name, value) in &spec.secrets {
        check(env_name("secret", name));
        if value.len() > MAX_ENV_VALUE {
            check(Err(format!(
                "the secret {name} is longer than {MAX_ENV_VALUE} bytes"
            )));
        }
        if names.contains(name) {
            check(Err(format!(
                "{name} is both an environment variable and a secret"
            )));
        }
    }
    let mut vols = HashSet::new();
    for v in &spec.volumes {
        check(dns_label("volume name", &v.name));
        if !v.mount_path.starts_with('/')
            || v.mount_path.split('/').any(|s| s == "..")
            || v.mount_path.len() > 255
        {
            check(Err(format!(
                "volume {}: the mount path must be absolute, without `..`",
                v.name
            )));
        }
        if !(1..=1_048_576).contains(&v.size_mb) {
            check(Err(format!("volume {}: size must be 1 MB – 1 TB", v.name)));
        }
        if !vols.insert(v.name.clone()) {
            check(Err(format!("volume {} is listed twice", v.name)));
        }
    }
    for d in &spec.dependencies {
        check(dns_label("dependency app", &d.app));
        check(dns_label("dependency component", &d.component));
    }
    if let Some(h) = &spec.health {
        let port = match h {
            HealthProbe::Http { port, path } => {
                if !path.starts_with('/') || path.len() > 255 {
                    check(Err("the health check path must start with /".into()));
                }
                *port
            }
            HealthProbe::Tcp { port } => *port,
        };
        if !spec.ports.iter().any(|p| p.port == port) {
            check(Err(format!(
                "the health check uses port {port}, which the component does not declare"
            )));
        }
    }
    if !(10..=64_000).contains(&spec.resources.cpu_millicores) {
        check(Err("CPU must be between 10 and 64000 millicores".into()));
    }
    if !(16..=262_144).contains(&spec.resources.memory_mb) {
        check(Err("memory must be between 16 MB and 256 GB".into()));
    }
    if spec.replicas > MAX_REPLICAS {
        check(Err(format!("at most {MAX_REPLICAS} replicas")));
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

pub const MAX_ROUTE_TARGETS: usize = 16;
pub const MAX_WEIGHT: u32 = 10_000;

/// Lowercase, trimmed, without a trailing dot: how domains are stored and matched.
pub fn normalize_domain(domain: &str) -> String {
    domain.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// A host name, or a wildcard `*.` in front of one.
pub fn domain(domain: &str) -> Result<(), String> {
    let name = domain.strip_prefix("*.").unwrap_or(domain);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if domain.len() <= 253 && name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(format!(
            "domain “{}” is not valid: use lowercase labels of letters, digits and dashes separated by dots, optionally starting with *.",
            domain.chars().take(80).collect::<String>()
        ))
    }
}

/// A header or cookie name: an HTTP token.
fn token(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} “{}” is not a valid name",
            name.chars().take(40).collect::<String>()
        ))
    }
}

fn match_value(what: &str, m: &ValueMatch) -> Result<(), String> {
    token(what, &m.name)?;
    if m.value.len() > 1024 || m.value.bytes().any(|b| b.is_ascii_control() || b == b';') {
        return Err(format!(
            "the {what} value must be printable, without ;, at most 1024 bytes"
        ));
    }
    Ok(())
}

/// Every problem of an HTTP route at once (its domain normalized first).
pub fn http_route(spec: &HttpRouteSpec) -> Result<(), Vec<String>> {
    let mut errs = vec![];
    let mut check = |r: Result<(), String>| {
        if let Err(e) = r {
            errs.push(e)
        }
    };
    check(domain(&spec.domain));
    let p = &spec.path_prefix;
    if !p.starts_with('/')
        || p.len() > 1024
        || p.split('/').any(|s| s == "..")
        || p.bytes()
            .any(|b| b.is_ascii_control() || b == b' ' || b == b'?' || b == b'#')
    {
        check(Err(
            "the path prefix must start with /, without spaces, ? or # or ..".into(),
        ));
    }
    if let Some(h) = &spec.header {
        check(match_value("header", h));
    }
    if let Some(c) = &spec.cookie {
        check(match_value("cookie", c));
    }
    if spec.targets.is_empty() || spec.targets.len() > MAX_ROUTE_TARGETS {
        check(Err(format!("a route needs 1–{MAX_ROUTE_TARGETS} targets")));
    }
    let mut seen = HashSet::new();
    for t in &spec.targets {
        check(dns_label("target app", &t.app));
        check(dns_label("target component", &t.component));
        if t.weight > MAX_WEIGHT {
            check(Err(format!("weights go from 0 to {MAX_WEIGHT}")));
        }
        if !seen.insert((&t.app, &t.component)) {
            check(Err(format!("{}/{} is a target twice", t.app, t.component)));
        }
    }
    if !spec.targets.is_empty() && spec.targets.iter().all(|t| t.weight == 0) {
        check(Err("at least one target needs a weight above 0".into()));
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

/// Ports below 1024 need privileges the gateway should not have.
pub fn tcp_route(spec: &TcpRouteSpec) -> Result<(), Vec<String>> {
    let mut errs = vec![];
    if spec.listen_port < 1024 {
        errs.push("a TCP route listens on a port from 1024 to 65535".into());
    }
    for r in [
        dns_label("target app", &spec.app),
        dns_label("target component", &spec.component),
    ] {
        if let Err(e) = r {
            errs.push(e);
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

fn source(s: &Source) -> Result<(), String> {
    let url_ok = |u: &str| {
        (u.starts_with("https://")
            || u.starts_with("http://")
            || u.starts_with("file:///")
            || u.starts_with("git@"))
            && u.len() <= 1024
            && !u.chars().any(|c| c.is_whitespace() || c.is_control())
    };
    let ref_ok = |r: &str| {
        !r.is_empty()
            && r.len() <= 255
            && !r.starts_with('-')
            && !r.contains("..")
            && !r.chars().any(|c| c.is_whitespace() || c.is_control())
    };
    match s {
        Source::Git { url, reference } | Source::Dockerfile { url, reference } => {
            if !url_ok(url) {
                return Err(
                    "the git URL must be http(s)://, file:/// or git@…, without spaces".into(),
                );
            }
            if !ref_ok(reference) {
                return Err("the git ref is not valid".into());
            }
            Ok(())
        }
        Source::Image { image } => {
            if image.is_empty()
                || image.len() > 255
                || image.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                Err("the image reference is not valid".into())
            } else {
                Ok(())
            }
        }
        Source::Upload => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ComponentSpec {
        ComponentSpec {
            name: "web".into(),
            source: Source::Git {
                url: "https://example.com/a.git".into(),
                reference: "main".into(),
            },
            build: Default::default(),
            ports: vec![Port {
                port: 8080,
                protocol: Protocol::Http,
                inner: true,
                outer: true,
            }],
            env: vec![EnvVar {
                name: "MODE".into(),
                value: "prod".into(),
                outer: false,
            }],
            secrets: [("API_KEY".to_string(), "s3cret".to_string())].into(),
            volumes: vec![],
            dependencies: vec![],
            health: Some(HealthProbe::Http {
                port: 8080,
                path: "/health".into(),
            }),
            resources: Resources::default(),
            replicas: 2,
        }
    }

    #[test]
    fn a_sound_spec_passes() {
        assert_eq!(component(&spec()), Ok(()));
    }

    #[test]
    fn every_problem_is_reported() {
        let mut s = spec();
        s.name = "Web_1".into();
        s.ports.push(Port {
            port: 8080,
            protocol: Protocol::Tcp,
            inner: false,
            outer: false,
        });
        s.env.push(EnvVar {
            name: "1BAD".into(),
            value: "x".into(),
            outer: false,
        });
        s.health = Some(HealthProbe::Tcp { port: 9999 });
        s.resources.memory_mb = 1;
        s.replicas = 1000;
        s.volumes.push(Volume {
            name: "data".into(),
            mount_path: "/var/../etc".into(),
            size_mb: 10,
        });
        s.source = Source::Git {
            url: "ftp://x".into(),
            reference: "main".into(),
        };
        let errs = component(&s).unwrap_err();
        assert_eq!(errs.len(), 8, "{errs:#?}");
    }
}

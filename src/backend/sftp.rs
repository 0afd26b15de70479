//! `sftp:` locations to an OpenDAL SFTP operator (the system's `ssh`, so its
//! configuration, agent and keys apply).

#[cfg(feature = "sftp")]
use opendal::Operator;
#[cfg(feature = "sftp")]
use opendal::services::Sftp;

#[cfg(feature = "sftp")]
use super::Settings;

pub const DECLARED: super::Declared = super::Declared {
    scheme: "sftp",
    options: &["sftp.key", "sftp.known-hosts"],
    env_prefixes: &[],
    secrets: &[],
};

/// An SFTP location: where to connect and the repository's path there.
#[derive(Debug, PartialEq, Eq)]
pub struct SftpLocation {
    /// `ssh://[user@]host[:port]`
    pub endpoint: String,
    /// Absolute (`/srv/repo`) or relative to the login directory (`repo`).
    pub path: String,
}

/// restic's forms: `user@host:/abs/path`, `host:relative`, `//user@host:port//abs/path`
/// (after `sftp:`), and `//user@host:port/relative`.
pub fn parse(spec: &str) -> Result<SftpLocation, String> {
    if let Some(rest) = spec.strip_prefix("//") {
        let (authority, path) = rest
            .split_once('/')
            .ok_or("no path (sftp://[user@]host[:port]/path)")?;
        if authority.is_empty() || path.is_empty() {
            return Err("sftp://[user@]host[:port]/path needs a host and a path".into());
        }
        return Ok(SftpLocation {
            endpoint: format!("ssh://{authority}"),
            path: path.to_string(),
        });
    }
    let (host, path) = spec
        .split_once(':')
        .ok_or("no path (sftp:[user@]host:/path)")?;
    if host.is_empty() || path.is_empty() {
        return Err("sftp:[user@]host:/path needs a host and a path".into());
    }
    Ok(SftpLocation {
        endpoint: format!("ssh://{host}"),
        path: path.to_string(),
    })
}

/// The operator, rooted at `/` (or the login directory) and the repository's path below
/// it. OpenDAL creates its root's directories on connect; an existing root keeps that
/// from ever writing to the server.
#[cfg(feature = "sftp")]
pub fn operator(spec: &str, cfg: &Settings) -> Result<(Operator, String), String> {
    let loc = parse(spec)?;
    let absolute = loc.path.starts_with('/');
    let mut b = Sftp::default()
        .endpoint(&loc.endpoint)
        .root(if absolute { "/" } else { "" })
        .known_hosts_strategy(
            cfg.options
                .get("sftp.known-hosts")
                .map_or("strict", String::as_str),
        );
    if let Some(key) = cfg.options.get("sftp.key") {
        b = b.key(key);
    }
    let op = Operator::new(b).map_err(|e| format!("SFTP configuration: {}", e.message()))?;
    Ok((op, loc.path.trim_matches('/').to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restic_sftp_forms() {
        assert_eq!(
            parse("backup@host:/srv/repo").unwrap(),
            SftpLocation {
                endpoint: "ssh://backup@host".into(),
                path: "/srv/repo".into()
            }
        );
        assert_eq!(
            parse("//backup@host:2222//srv/repo").unwrap(),
            SftpLocation {
                endpoint: "ssh://backup@host:2222".into(),
                path: "/srv/repo".into()
            }
        );
        assert_eq!(parse("host:repo").unwrap().path, "repo");
        assert!(parse("host").is_err());
        assert!(parse("//host").is_err());
    }
}

//! Package runners on a `berth run` command line. `npx -y PKG@VER` and
//! `uvx PKG==VER` fetch a package and start it in one step, which inside a
//! sandbox cannot work: there is no network and no writable home to install
//! into. So berth does the fetching itself, on the host, the way `berth
//! serve` materializes a manifest's package (`npm install --ignore-scripts`,
//! `pip install --only-binary`, into a content-keyed artifact directory), and
//! runs what was installed in the sandbox with that directory mounted
//! read-only.

use std::process::Command;

use anyhow::{Context, bail};

use berth_catalog::artifact::{Artifacts, Launch};
use berth_catalog::manifest::Package;

/// Where `berth run` keeps installed packages: `$BERTH_ARTIFACTS`, else
/// `$XDG_CACHE_HOME/berth/artifacts`, else `~/.cache/berth/artifacts`.
pub const ENV_ARTIFACTS: &str = "BERTH_ARTIFACTS";

/// The package a runner command line names, and the arguments after it.
#[derive(Debug)]
pub struct Runner {
    /// The package to install.
    pub package: Package,
    /// The server's own arguments.
    pub args: Vec<String>,
}

/// Recognizes `npx [-y|--yes] PKG[@VERSION] ARGS…` and
/// `uvx PKG[==VERSION|@VERSION] ARGS…`. Anything else (another program, or a
/// runner flag berth does not model, such as `npx -p` or `uvx --from`) is
/// `None` and runs as given.
pub fn parse(program: &str, args: &[String]) -> Option<Runner> {
    let name = program.rsplit('/').next().unwrap_or(program);
    let (registry, quiet): (&str, &[&str]) = match name {
        "npx" => ("npm", &["-y", "--yes", "-q", "--quiet"]),
        "uvx" => ("pypi", &["-q", "--quiet"]),
        _ => return None,
    };
    let at = args.iter().position(|a| !quiet.contains(&a.as_str()))?;
    let spec = &args[at];
    if spec.starts_with('-') {
        return None;
    }
    let (identifier, version) = if registry == "npm" { split_npm(spec) } else { split_pypi(spec) };
    if identifier.is_empty() || version.is_some_and(str::is_empty) {
        return None;
    }
    let package = Package {
        registry_type: registry.into(),
        identifier: identifier.into(),
        version: version.map(str::to_owned),
        file_sha256: None,
        runtime_arguments: Vec::new(),
        package_arguments: Vec::new(),
        environment_variables: Vec::new(),
    };
    Some(Runner { package, args: args[at + 1..].to_vec() })
}

/// `@scope/pkg@1.2.3` → (`@scope/pkg`, `1.2.3`).
pub fn split_npm(spec: &str) -> (&str, Option<&str>) {
    let at = spec.char_indices().skip(1).find(|(_, c)| *c == '@').map(|(i, _)| i);
    match at {
        Some(i) => (&spec[..i], Some(&spec[i + 1..])),
        None => (spec, None),
    }
}

/// `pkg==1.2.3` or `pkg@1.2.3` → (`pkg`, `1.2.3`).
pub fn split_pypi(spec: &str) -> (&str, Option<&str>) {
    match spec.split_once("==").or_else(|| spec.split_once('@')) {
        Some((n, v)) => (n, Some(v)),
        None => (spec, None),
    }
}

/// The version npm would install for `name` now (`npm view`).
pub fn npm_latest(name: &str) -> anyhow::Result<String> {
    let out =
        Command::new("npm").args(["view", name, "version"]).output().context("running `npm view` to pin a version")?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || v.is_empty() {
        bail!("could not find {name} on npm to pin its version");
    }
    Ok(v)
}

/// The newest version of `name` on PyPI (`pip index versions`).
pub fn pypi_latest(name: &str) -> anyhow::Result<String> {
    let out = Command::new("python3")
        .args(["-m", "pip", "index", "versions", name, "--disable-pip-version-check"])
        .output()
        .context("running `pip index versions` to pin a version")?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "mcp-server-time (2026.10.19)"
    text.lines()
        .next()
        .and_then(|l| l.split_once('(')?.1.split_once(')').map(|(v, _)| v.to_owned()))
        .with_context(|| format!("could not find {name} on PyPI to pin its version"))
}

/// Installs the runner's package (once per version; later runs reuse it)
/// and returns how to start it. An unpinned package is pinned to the
/// registry's current version first, so the installed copy is that
/// version's and a newer release is picked up by the next start.
pub async fn install(runner: &Runner) -> anyhow::Result<Launch> {
    let Some(root) = berth_runtime::sandboxes::cache_dir(ENV_ARTIFACTS, "artifacts") else {
        bail!("no directory for installed packages: set {ENV_ARTIFACTS} or HOME");
    };
    let mut package = runner.package.clone();
    if package.version.is_none() {
        let (registry, name) = (package.registry_type.clone(), package.identifier.clone());
        let pinned = tokio::task::spawn_blocking(move || match registry.as_str() {
            "npm" => npm_latest(&name),
            _ => pypi_latest(&name),
        })
        .await??;
        package.version = Some(pinned);
    }
    let p = &package;
    let what = format!("{}{}", p.identifier, p.version.as_deref().map(|v| format!("@{v}")).unwrap_or_default());
    eprintln!("berth: {what} ({}) for the sandbox, installed under {} on first use", p.registry_type, root.display());
    let artifact = Artifacts::new(root)
        .materialize(p)
        .await
        .map_err(|e| anyhow::anyhow!("installing {what} for the sandbox: {e} (or run it as is with --sandbox none)"))?;
    Ok(artifact.launch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    fn named(program: &str, line: &str) -> Option<(String, String, Option<String>, Vec<String>)> {
        parse(program, &args(line)).map(|r| (r.package.registry_type, r.package.identifier, r.package.version, r.args))
    }

    #[test]
    fn npx_and_uvx_lines_name_their_package() {
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(
            named("npx", "-y @modelcontextprotocol/server-everything@2026.8.31 stdio"),
            Some(("npm".into(), "@modelcontextprotocol/server-everything".into(), s("2026.8.31"), args("stdio")))
        );
        assert_eq!(named("/usr/bin/npx", "--yes left-pad"), Some(("npm".into(), "left-pad".into(), None, vec![])));
        assert_eq!(
            named("uvx", "mcp-server-time==2025.9.25 --local-timezone UTC"),
            Some(("pypi".into(), "mcp-server-time".into(), s("2025.9.25"), args("--local-timezone UTC")))
        );
        assert_eq!(
            named("uvx", "mcp-server-time@1.0"),
            Some(("pypi".into(), "mcp-server-time".into(), s("1.0"), vec![]))
        );
    }

    #[test]
    fn other_lines_run_as_given() {
        for (program, line) in [
            ("node", "server.js"),
            ("npx", "-p pkg cmd"),
            ("npx", "-y"),
            ("npx", "-y pkg@"),
            ("uvx", "--from pkg cmd"),
            ("uvx", "pkg=="),
            ("python3", "-m mcp_server_time"),
        ] {
            assert!(parse(program, &args(line)).is_none(), "{program} {line}");
        }
    }
}

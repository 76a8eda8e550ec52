//! From a catalog entry to what the supervisor launches: the sandbox spec
//! built from the manifest's package, its materialized artifact and its
//! hosting extension.

use berth_catalog::artifact::Artifact;
use berth_catalog::manifest::{EraHint, Manifest, Registry};
use berth_sandbox::{Limits, Mount, Network, SandboxSpec};
use zeroize::Zeroizing;

use crate::sandboxes::Backend;
use crate::upstream::{Era, HostConfig};

/// The directories a hosted server may write: its private `/tmp` only.
const HOME: &str = "/tmp";

/// Why a manifest cannot be launched as it stands.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// A required environment variable has no value.
    #[error(
        "{connector} needs the environment variable {name}, which has no value or default; \
         an admin sets it with PUT /admin/v1/connectors/{{name}}/secrets/{name}"
    )]
    MissingEnv {
        /// Connector.
        connector: String,
        /// The variable.
        name: String,
    },
    /// The backend asked for is not built into this berth.
    #[error("{connector} asks for the {backend} sandbox, which this berth does not have")]
    Backend {
        /// Connector.
        connector: String,
        /// The backend named.
        backend: &'static str,
    },
}

/// Builds the supervisor's configuration and picks the backend.
/// `secrets` are the values an admin set for the connector's declared
/// variables; a manifest's fixed `value` wins, a `default` fills in.
pub fn plan(
    manifest: &Manifest,
    artifact: &Artifact,
    default: Backend,
    secrets: &[(String, Zeroizing<String>)],
) -> Result<(Backend, HostConfig), LaunchError> {
    let name = format!("{}@{}", manifest.server.name, manifest.server.version);
    let package = manifest.package();
    let hosting = &manifest.hosting;
    let backend = match hosting.sandbox.backend {
        None if package.registry() == Some(Registry::Oci) => Backend::Container,
        None => default,
        Some(b) => Backend::from_manifest(b)
            .ok_or_else(|| LaunchError::Backend { connector: name.clone(), backend: "wasi" })?,
    };
    let launch = &artifact.launch;
    let mut args = launch.args.clone();
    args.extend(package.package_arguments.iter().flat_map(|a| a.words()));
    let mut spec = SandboxSpec::command(launch.program.clone(), args);
    if backend == Backend::Wasi {
        // The artifact's program is the guest itself.
        spec.module = Some(launch.program.clone().into());
    }
    spec.image = launch.image.clone().or_else(|| hosting.sandbox.image.clone());
    spec.env = vec![
        ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
        ("HOME".into(), HOME.into()),
        ("LANG".into(), "C.UTF-8".into()),
    ];
    spec.env.extend(launch.env.iter().cloned());
    for var in &package.environment_variables {
        let secret = secrets.iter().find(|(n, _)| n == &var.name).map(|(_, v)| v.to_string());
        match var.value.clone().or(secret).or_else(|| var.default.clone()) {
            Some(v) => spec.env.push((var.name.clone(), v)),
            None if var.is_required => {
                return Err(LaunchError::MissingEnv { connector: name, name: var.name.clone() });
            }
            None => {}
        }
    }
    spec.mounts = launch.mounts.iter().map(Mount::read_only).collect();
    let l = &hosting.limits;
    spec.limits = Limits {
        memory: l.memory.map(u64::from),
        pids: l.pids,
        cpus: l.cpus,
        nofile: l.nofile,
        tmpfs: l.tmpfs.map(u64::from),
        cpu_deadline: l.cpu_deadline_ms.map(std::time::Duration::from_millis),
        ..Limits::default()
    };
    if !hosting.egress.is_empty() {
        // Enforced by the sandbox's egress proxy (native backend); the
        // other backends refuse to launch rather than ignore it.
        spec.network = Network::Egress { allow: hosting.egress.clone() };
    }
    let mut config = HostConfig::new(name, spec);
    config.era = match hosting.era {
        EraHint::Auto => None,
        EraHint::Legacy => Some(Era::Legacy),
        EraHint::Modern => Some(Era::Modern),
    };
    Ok((backend, config))
}

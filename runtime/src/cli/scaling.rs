//! `berth run`'s instance flags: by default one server, started at once and
//! kept running, as a local bridge should; `--max-instances` turns on the
//! same autoscaling pools `berth serve` gives its connectors.

use std::time::Duration;

use anyhow::bail;
use berth_runtime::pool::Scaling;

use super::parse;

#[derive(clap::Args)]
pub struct ScalingArgs {
    /// Instances kept running even when idle (0 lets the server stop after
    /// `--idle-timeout`).
    #[arg(long, default_value_t = 1)]
    min_instances: usize,
    /// Most instances at once.
    #[arg(long, default_value_t = 1)]
    max_instances: usize,
    /// Requests in flight per instance the autoscaler aims for.
    #[arg(long, default_value_t = 16)]
    target_concurrency: usize,
    /// Most requests one instance serves at once; more wait in a queue
    /// (default: no limit).
    #[arg(long)]
    max_concurrency: Option<usize>,
    /// Most requests waiting for an instance with room.
    #[arg(long, default_value_t = 256)]
    queue: usize,
    /// Longest a request waits in the queue, e.g. `30s`.
    #[arg(long, default_value = "30s", value_parser = parse::duration)]
    queue_timeout: Duration,
    /// Started instances kept idle beyond demand, to hide cold starts.
    #[arg(long, default_value_t = 0)]
    warm: usize,
    /// No request for this long lets instances beyond the minimum stop.
    #[arg(long, default_value = "5m", value_parser = parse::duration)]
    idle_timeout: Duration,
    /// How often each instance must answer a `ping` or `server/discover`;
    /// one that does not within 10 s is replaced (default: never checked).
    #[arg(long, value_parser = parse::duration)]
    health_interval: Option<Duration>,
}

impl ScalingArgs {
    /// The pool's shape, or why the flags disagree.
    pub fn scaling(&self) -> anyhow::Result<Scaling> {
        if self.max_instances == 0 || self.min_instances > self.max_instances {
            bail!(
                "--min-instances ({}) must not exceed --max-instances ({}), which must be at least 1",
                self.min_instances,
                self.max_instances
            );
        }
        if self.warm > self.max_instances {
            bail!("--warm ({}) must not exceed --max-instances ({})", self.warm, self.max_instances);
        }
        let mut s = Scaling {
            min: self.min_instances,
            max: self.max_instances,
            target: self.target_concurrency.max(1),
            warm: self.warm,
            idle: self.idle_timeout,
            health_interval: self.health_interval.unwrap_or(Duration::ZERO),
            ..Scaling::default()
        };
        if let Some(most) = self.max_concurrency {
            s.max_concurrency = most.max(1);
            s.queue = self.queue;
            s.queue_timeout = self.queue_timeout;
        }
        Ok(s)
    }
}

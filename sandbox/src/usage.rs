//! Reading an instance's resource usage from the kernel: a cgroup's
//! accounting files for the native backend, `/proc` for a plain process.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::Usage;

/// The usage charged to an instance's cgroups, one directory per hierarchy
/// on cgroup v1 (`cpuacct.usage`, `memory.usage_in_bytes`) or the one
/// directory on v2 (`cpu.stat`'s `usage_usec`, `memory.current`).
pub(crate) fn of_cgroups(dirs: &[PathBuf]) -> Usage {
    let read = |dir: &Path, file: &str| std::fs::read_to_string(dir.join(file)).ok();
    let number = |text: Option<String>| text.and_then(|t| t.trim().parse::<u64>().ok());
    let mut usage = Usage::default();
    for dir in dirs {
        if let Some(ns) = number(read(dir, "cpuacct.usage")) {
            usage.cpu = Some(Duration::from_nanos(ns));
        } else if let Some(us) = read(dir, "cpu.stat").and_then(|s| stat_field(&s, "usage_usec")) {
            usage.cpu = Some(Duration::from_micros(us));
        }
        if let Some(bytes) = number(read(dir, "memory.usage_in_bytes")).or_else(|| number(read(dir, "memory.current")))
        {
            usage.memory = Some(bytes);
        }
    }
    usage
}

fn stat_field(stat: &str, key: &str) -> Option<u64> {
    stat.lines().find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
}

/// A plain process's own CPU time and resident set (its children's are not
/// counted until it has waited for them).
pub(crate) fn of_process(pid: u32) -> Usage {
    use nix::unistd::{SysconfVar, sysconf};
    let tick = sysconf(SysconfVar::CLK_TCK).ok().flatten().filter(|&t| t > 0).unwrap_or(100) as u64;
    let page = sysconf(SysconfVar::PAGE_SIZE).ok().flatten().filter(|&p| p > 0).unwrap_or(4096) as u64;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
    // Fields after the command name (which may hold spaces): utime and
    // stime are the 12th and 13th of them, in clock ticks.
    let cpu = stat.as_deref().and_then(|s| {
        let fields: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(Duration::from_nanos(ticks.saturating_mul(1_000_000_000 / tick)))
    });
    let memory = std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * page);
    Usage { cpu, memory }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_used_some_cpu_and_memory() {
        let spin = std::time::Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < Duration::from_millis(30) {
            x = x.wrapping_mul(31).wrapping_add(1);
        }
        std::hint::black_box(x);
        let u = of_process(std::process::id());
        assert!(u.cpu.is_some_and(|c| c >= Duration::from_millis(10)), "{u:?}");
        assert!(u.memory.is_some_and(|m| m > 1 << 20), "{u:?}");
        assert_eq!(of_process(u32::MAX), Usage::default());
    }

    #[test]
    fn v2_cpu_stat_is_read_by_key() {
        assert_eq!(stat_field("usage_usec 1234\nuser_usec 1000\n", "usage_usec"), Some(1234));
        assert_eq!(stat_field("user_usec 1000\n", "usage_usec"), None);
    }
}

//! The private root: a tmpfs holding read-only binds of the host's system
//! directories and the declared mounts, a minimal `/etc`, a private `/tmp`,
//! a minimal `/dev` and the new PID namespace's `/proc`. Nothing else of the
//! host is reachable after `pivot_root`.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use super::InitSpec;
use super::init::{Context, Failed};

/// Host directories every program needs, bound read-only.
const SYSTEM: &[&str] = &["/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin"];
/// Host files of `/etc` that are safe and commonly needed.
const ETC_FILES: &[&str] = &["/etc/ld.so.cache", "/etc/localtime", "/etc/mime.types"];
/// Host directories of `/etc` that are safe and commonly needed.
const ETC_DIRS: &[&str] = &["/etc/ssl", "/etc/ca-certificates", "/etc/alternatives", "/etc/pki"];
/// Device nodes bound from the host.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

const NOSUID_NODEV: MsFlags = MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV);

/// Builds the root under `spec.root` and pivots into it.
pub fn build(spec: &InitSpec) -> Result<(), Failed> {
    let none: Option<&str> = None;
    // Nothing we mount may propagate back to the host.
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none).ctx(|| "making / private".into())?;
    let root = &spec.root;
    mount(Some("tmpfs"), root, Some("tmpfs"), NOSUID_NODEV, Some("size=4m,mode=0755"))
        .ctx(|| format!("mounting the root tmpfs at {}", root.display()))?;

    for dir in SYSTEM {
        mirror(root, Path::new(dir), false)?;
    }
    etc(root)?;
    // The private /tmp comes before the declared mounts, so that a mount
    // below /tmp (a build directory, say) lands on top of it, not under it.
    let tmp = root.join("tmp");
    fs::create_dir_all(&tmp).ctx(|| "creating /tmp".into())?;
    let size = spec.limits.tmpfs.unwrap_or(64 << 20);
    mount(Some("tmpfs"), &tmp, Some("tmpfs"), NOSUID_NODEV, Some(format!("size={size},mode=1777").as_str()))
        .ctx(|| "mounting /tmp".into())?;
    for m in &spec.mounts {
        place(root, &m.path, m.inside(), m.writable)?;
    }
    dev(root)?;
    let proc = root.join("proc");
    fs::create_dir_all(&proc).ctx(|| "creating /proc".into())?;
    mount(Some("proc"), &proc, Some("proc"), NOSUID_NODEV | MsFlags::MS_NOEXEC, none)
        .ctx(|| "mounting /proc".into())?;

    pivot(root)?;
    // The root itself (a tmpfs) becomes read-only; /tmp stays writable.
    mount(none, "/", none, MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | NOSUID_NODEV, none)
        .ctx(|| "remounting / read-only".into())
}

/// Makes host `path` appear at the same path under `root` (see [`place`]).
fn mirror(root: &Path, path: &Path, writable: bool) -> Result<(), Failed> {
    place(root, path, path, writable)
}

/// Makes host `path` appear at `at` under `root`: a symlink stays a
/// symlink, a directory or file becomes a bind mount (read-only unless
/// `writable`). Missing host paths are skipped.
fn place(root: &Path, path: &Path, at: &Path, writable: bool) -> Result<(), Failed> {
    let Ok(meta) = fs::symlink_metadata(path) else { return Ok(()) };
    let target = inside(root, at);
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).ctx(|| format!("creating {}", parent.display()))?;
    }
    if meta.file_type().is_symlink() {
        let to = fs::read_link(path).ctx(|| format!("reading link {}", path.display()))?;
        if fs::symlink_metadata(&target).is_err() {
            symlink(&to, &target).ctx(|| format!("linking {}", target.display()))?;
        }
        return Ok(());
    }
    if meta.is_dir() {
        fs::create_dir_all(&target).ctx(|| format!("creating {}", target.display()))?;
    } else if fs::symlink_metadata(&target).is_err() {
        fs::write(&target, b"").ctx(|| format!("creating {}", target.display()))?;
    }
    bind(path, &target, writable)
}

fn bind(src: &Path, target: &Path, writable: bool) -> Result<(), Failed> {
    let none: Option<&str> = None;
    mount(Some(src), target, none, MsFlags::MS_BIND | MsFlags::MS_REC, none)
        .ctx(|| format!("binding {}", src.display()))?;
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | NOSUID_NODEV | kept_flags(target);
    if !writable {
        flags |= MsFlags::MS_RDONLY;
    }
    mount(none, target, none, flags, none).ctx(|| format!("restricting {}", target.display()))
}

/// The restrictions a bind already carries from its source mount, which a
/// remount must repeat: in a user namespace the kernel locks them, and a
/// remount that would lift one (`noexec`, say) fails. As root it keeps a
/// read-only or `noexec` source so.
fn kept_flags(target: &Path) -> MsFlags {
    use nix::sys::statvfs::{FsFlags, statvfs};
    let Ok(st) = statvfs(target) else { return MsFlags::empty() };
    let f = st.flags();
    let mut kept = MsFlags::empty();
    if f.contains(FsFlags::ST_RDONLY) {
        kept |= MsFlags::MS_RDONLY;
    }
    if f.contains(FsFlags::ST_NOEXEC) {
        kept |= MsFlags::MS_NOEXEC;
    }
    if f.contains(FsFlags::ST_NOATIME) {
        kept |= MsFlags::MS_NOATIME;
    }
    if f.contains(FsFlags::ST_NODIRATIME) {
        kept |= MsFlags::MS_NODIRATIME;
    }
    if f.contains(FsFlags::ST_RELATIME) {
        kept |= MsFlags::MS_RELATIME;
    }
    kept
}

fn inside(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// A minimal `/etc`: the sandbox user, no host secrets.
fn etc(root: &Path) -> Result<(), Failed> {
    let etc = root.join("etc");
    fs::create_dir_all(&etc).ctx(|| "creating /etc".into())?;
    let files = [
        ("passwd", "root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/tmp:/usr/sbin/nologin\n"),
        ("group", "root:x:0:\nnogroup:x:65534:\n"),
        ("hosts", "127.0.0.1 localhost\n::1 localhost\n"),
        ("resolv.conf", ""),
        ("nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n"),
        ("hostname", "berth\n"),
    ];
    for (name, body) in files {
        fs::write(etc.join(name), body).ctx(|| format!("writing /etc/{name}"))?;
    }
    for f in ETC_FILES.iter().chain(ETC_DIRS) {
        mirror(root, Path::new(f), false)?;
    }
    Ok(())
}

/// A minimal `/dev` of bound host device nodes.
fn dev(root: &Path) -> Result<(), Failed> {
    let dev = root.join("dev");
    fs::create_dir_all(&dev).ctx(|| "creating /dev".into())?;
    let none: Option<&str> = None;
    mount(Some("tmpfs"), &dev, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC, Some("size=64k,mode=0755"))
        .ctx(|| "mounting /dev".into())?;
    for name in DEVICES {
        let host = Path::new("/dev").join(name);
        if host.exists() {
            let target = dev.join(name);
            fs::write(&target, b"").ctx(|| format!("creating /dev/{name}"))?;
            mount(Some(&host), &target, none, MsFlags::MS_BIND, none).ctx(|| format!("binding /dev/{name}"))?;
        }
    }
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        symlink(to, dev.join(link)).ctx(|| format!("linking /dev/{link}"))?;
    }
    fs::create_dir_all(dev.join("shm")).ctx(|| "creating /dev/shm".into())?;
    Ok(())
}

fn pivot(root: &Path) -> Result<(), Failed> {
    let old = root.join(".old-root");
    fs::create_dir_all(&old).ctx(|| "creating the old-root mount point".into())?;
    nix::unistd::pivot_root(root, &old).ctx(|| "pivot_root".into())?;
    nix::unistd::chdir("/").ctx(|| "chdir /".into())?;
    umount2("/.old-root", MntFlags::MNT_DETACH).ctx(|| "detaching the old root".into())?;
    fs::remove_dir("/.old-root").ctx(|| "removing the old-root mount point".into())
}

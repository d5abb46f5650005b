//! Network namespaces for tests of two hosts on one machine: a namespace joined to the
//! root namespace by a veth pair on a /30 of its own, whose link the test can cut and
//! restore (a real partition, not a stopped server). Made with iproute2 (`ip netns add`,
//! `ip link add … type veth`); removed when dropped, also while a failed test unwinds.

use std::ffi::OsStr;
use std::process::{Command, Stdio};

use super::Cmd;

/// A network namespace with a veth pair to the root namespace; deleted with its link
/// when dropped.
pub struct Netns {
    /// The namespace's name (`ip netns exec NAME`).
    pub name: String,
    /// The root namespace's end of the veth pair.
    pub host_if: String,
    /// The root namespace's address on the link (where a server listens for this host).
    pub host_addr: String,
    /// The namespace's address on the link.
    pub addr: String,
}

/// Runs `ip ARGS`; its failure, with what it printed.
pub fn ip<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Result<(), String> {
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let out = Command::new("ip")
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {args:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl Netns {
    /// A namespace `NAME` (at most 11 characters: the interfaces are `NAMEh`, `NAMEn`)
    /// linked to the root namespace on `10.SUBNET.0/30`: the root end `.1`, the
    /// namespace's `.2`, both up, and the namespace's loopback up.
    pub fn new(name: &str, subnet: &str) -> Result<Netns, String> {
        let ns = Netns {
            name: name.to_string(),
            host_if: format!("{name}h"),
            host_addr: format!("10.{subnet}.1"),
            addr: format!("10.{subnet}.2"),
        };
        let peer = format!("{name}n");
        // From here on, Drop removes whatever was made.
        ip(["netns", "add", name])?;
        ip([
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ])?;
        ip(["link", "set", &peer, "netns", name])?;
        ip([
            "addr",
            "add",
            &format!("{}/30", ns.host_addr),
            "dev",
            &ns.host_if,
        ])?;
        ip(["link", "set", &ns.host_if, "up"])?;
        ns.exec_ip(&["addr", "add", &format!("{}/30", ns.addr), "dev", &peer])?;
        ns.exec_ip(&["link", "set", &peer, "up"])?;
        ns.exec_ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    fn exec_ip(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["netns", "exec", &self.name, "ip"];
        all.extend_from_slice(args);
        ip(all)
    }

    /// Cuts the link (the root end down): nothing passes until [`restore`](Self::restore).
    pub fn cut(&self) -> Result<(), String> {
        ip(["link", "set", &self.host_if, "down"])
    }

    /// Restores the link cut by [`cut`](Self::cut).
    pub fn restore(&self) -> Result<(), String> {
        ip(["link", "set", &self.host_if, "up"])
    }

    /// `cmd` run inside the namespace (`ip netns exec NAME spool …`).
    pub fn wrap(&self, cmd: Cmd) -> Cmd {
        cmd.wrap(["ip", "netns", "exec", &self.name])
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the root end deletes the pair; deleting the namespace, its end too.
        let _ = ip(["link", "del", &self.host_if]);
        let _ = ip(["netns", "del", &self.name]);
    }
}

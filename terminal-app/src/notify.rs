//! The systemd notification protocol (sd_notify(3)): READY=1 once the payment screen is up,
//! WATCHDOG=1 from the UI loop, STATUS= lines for `systemctl status`. A datagram to the socket
//! in `$NOTIFY_SOCKET`; nothing happens when Kassa does not run under systemd.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Sends `state` (`READY=1`, `WATCHDOG=1`, `STATUS=...`) to systemd, if it listens.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    let path = path.to_string_lossy().into_owned();
    let sent = if let Some(name) = path.strip_prefix('@') {
        // An abstract socket (Linux).
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .and_then(|a| sock.send_to_addr(state.as_bytes(), &a))
    } else {
        sock.send_to(state.as_bytes(), &path)
    };
    if let Err(e) = sent {
        tracing::debug!(error = %e, "sd_notify not delivered");
    }
}

/// How often to ping the watchdog: half of `$WATCHDOG_USEC`, if systemd set one for us.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Some(pid) = std::env::var("WATCHDOG_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        && pid != std::process::id()
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_reach_the_socket() {
        // The child: systemd's side is the parent's socket. (Edition 2024 makes set_var
        // unsafe and this crate forbids unsafe code, so the variable is set for a child.)
        if std::env::var_os("KASSA_TEST_NOTIFY_CHILD").is_some() {
            notify("READY=1");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let st = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "notify::tests::datagrams_reach_the_socket"])
            .env("NOTIFY_SOCKET", &path)
            .env("KASSA_TEST_NOTIFY_CHILD", "1")
            .status()
            .unwrap();
        assert!(st.success());
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }

    #[test]
    fn no_watchdog_without_systemd() {
        if std::env::var_os("WATCHDOG_USEC").is_none() {
            assert_eq!(watchdog_interval(), None);
        }
    }
}

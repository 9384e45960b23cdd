//! The podvisor image alone (docker/Dockerfile, prebuilt-binary path): an empty image holding
//! /podvisor as its ENTRYPOINT.

mod support;

use support::docker::{self, docker_ok, Cleanup};

#[test]
fn image_is_empty_but_for_podvisor_and_small() {
    docker::require_docker();
    let mut cleanup = Cleanup::new();
    let image = docker::podvisor_image(&mut cleanup);
    let entrypoint = docker_ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .Config.Entrypoint}}",
        &image,
    ]);
    assert_eq!(entrypoint, r#"["/podvisor"]"#);
    let size: u64 = docker_ok(&["image", "inspect", "-f", "{{.Size}}", &image])
        .parse()
        .expect("image size");
    // Issue 11's budget: <= 2.5 MiB with TLS (rustls, ring) in.
    assert!(
        size <= 5 * 512 * 1024,
        "image is {size} bytes, want <= 2.5 MiB"
    );

    let version = cleanup.run(&[&image, "--version"]);
    let out = version.expect_ok();
    assert!(
        out.starts_with(&format!("podvisor {}", env!("CARGO_PKG_VERSION"))),
        "\n{}",
        version.explain()
    );
}

#[test]
fn a_wait_that_times_out_exits_124() {
    docker::require_docker();
    let mut cleanup = Cleanup::new();
    let image = docker::podvisor_image(&mut cleanup);
    // No network at all: nothing can ever listen on 127.0.0.1:9 here.
    let done = cleanup.run(&[
        "--network",
        "none",
        &image,
        "--wait-tcp",
        "127.0.0.1:9",
        "--timeout",
        "1s",
    ]);
    assert_eq!(done.code, Some(124), "\n{}", done.explain());
    assert!(
        done.stderr.contains("tcp://127.0.0.1:9") && done.stderr.contains("not ready"),
        "\n{}",
        done.explain()
    );
}

#[test]
fn localhost_and_hosts_names_resolve_in_the_empty_image() {
    docker::require_docker();
    let mut cleanup = Cleanup::new();
    let image = docker::podvisor_image(&mut cleanup);
    // Without a listener the check fails at once, and the last error names the loopback
    // address it tried: proof that the name was resolved (localhost: loopback by RFC 6761;
    // sidecar.test: only in the /etc/hosts Docker mounts, from --add-host).
    for host in ["localhost", "sidecar.test"] {
        let target = format!("{host}:9");
        let done = cleanup.run(&[
            "--add-host",
            "sidecar.test:127.0.0.1",
            &image,
            "--wait-tcp",
            &target,
            "--retries",
            "0",
            "--timeout",
            "20s",
        ]);
        assert_eq!(done.code, Some(124), "\n{}", done.explain());
        assert!(
            done.stderr.contains(" 127.0.0.1:9: ") || done.stderr.contains(" [::1]:9: "),
            "{host} did not resolve to loopback\n{}",
            done.explain()
        );
    }
}

#[test]
fn install_to_a_volume_from_the_empty_image() {
    docker::require_docker();
    let mut cleanup = Cleanup::new();
    let image = docker::podvisor_image(&mut cleanup);
    let base = docker::base_image();
    let volume = cleanup.volume("ws");
    let mount = format!("{volume}:/workspace");

    let done = cleanup.run(&["-v", &mount, &image, "--install-to", "/workspace/bin"]);
    assert!(done.ok(), "\n{}", done.explain());
    assert!(
        done.stderr.contains("installed /workspace/bin/podvisor"),
        "\n{}",
        done.explain()
    );

    // Another container of the pod (another image, another UID) runs the copy.
    let mut sum = std::process::Command::new("sha256sum");
    sum.arg(docker::static_binary());
    let sum = docker::bounded(sum, std::time::Duration::from_secs(30));
    let want = sum
        .expect_ok()
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    let check = cleanup.run(&[
        "-v",
        &mount,
        "--user",
        "65534:65534",
        &base,
        "sh",
        "-c",
        "stat -c %a /workspace/bin/podvisor && sha256sum </workspace/bin/podvisor \
             && /workspace/bin/podvisor --version",
    ]);
    let out = check.expect_ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"755"), "\n{}", check.explain());
    assert_eq!(
        lines.get(1).and_then(|l| l.split_whitespace().next()),
        Some(want.as_str()),
        "\n{}",
        check.explain()
    );
    assert!(
        lines.get(2).is_some_and(|l| l.starts_with("podvisor ")),
        "\n{}",
        check.explain()
    );

    // A read-only root file system: one line, exit 125.
    let fail = cleanup.run(&["--read-only", &image, "--install-to", "/bin"]);
    assert_eq!(fail.code, Some(125), "\n{}", fail.explain());
    assert_eq!(fail.stderr.lines().count(), 1, "\n{}", fail.explain());
    assert!(
        fail.stderr.starts_with("podvisor: error: ") && fail.stderr.contains("/bin"),
        "\n{}",
        fail.explain()
    );
}

/// The static binary alone in an empty root (a chroot: no /proc, no /etc at all): `localhost`
/// still means the loopback address (musl alone would ask DNS and hang), and a wait succeeds.
#[test]
fn static_binary_in_an_empty_root_resolves_localhost() {
    let root = support::TempDir::new("empty-root");
    std::fs::copy(docker::static_binary(), root.path().join("podvisor")).expect("copy");
    let listener = support::wait::listen_any(support::wait::V4);
    let target = format!("localhost:{}", listener.local_addr().expect("addr").port());
    let mut cmd = std::process::Command::new("chroot");
    cmd.arg(root.path()).args([
        "/podvisor",
        "--wait-tcp",
        &target,
        "--retries",
        "0",
        "--timeout",
        "10s",
    ]);
    let done = docker::bounded(cmd, std::time::Duration::from_secs(30));
    assert!(done.ok(), "\n{}", done.explain());
    assert!(
        done.elapsed < std::time::Duration::from_secs(3),
        "slow: a DNS query?\n{}",
        done.explain()
    );
}

/// A DNS server for one test: answers every A query with 127.0.0.1 and every other query with
/// no records, on `ip:53` (UDP), until the returned flag is set.
fn tiny_dns(
    ip: &str,
) -> (
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<usize>,
) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let sock = std::net::UdpSocket::bind((ip, 53))
        .unwrap_or_else(|e| panic!("cannot bind {ip}:53 for the test DNS server: {e}"));
    sock.set_read_timeout(Some(std::time::Duration::from_millis(100)))
        .expect("read timeout");
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let server = std::thread::spawn(move || {
        let mut answered = 0;
        let mut buf = [0u8; 512];
        while !flag.load(Ordering::SeqCst) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            // Header (12 bytes), then one question: name labels, a zero byte, type, class.
            let Some(end) = buf[12..n].iter().position(|&b| b == 0).map(|p| 12 + p + 5) else {
                continue;
            };
            if end > n {
                continue;
            }
            let is_a = buf[end - 4..end - 2] == [0, 1];
            let mut reply = buf[..end].to_vec();
            reply[2] = 0x81; // response, recursion desired
            reply[3] = 0x80; // recursion available, NOERROR
            reply[6..12].copy_from_slice(&[0, is_a as u8, 0, 0, 0, 0]);
            if is_a {
                // Name: pointer to the question; type A, class IN, TTL 5, 4 bytes: 127.0.0.1.
                reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 127, 0, 0, 1]);
                answered += 1;
            }
            let _ = sock.send_to(&reply, from);
        }
        answered
    });
    (stop, server)
}

/// A name only DNS knows, resolved in the empty image through the /etc/resolv.conf Docker
/// writes (`--dns`): musl's resolver needs nothing else from the image.
#[test]
fn dns_names_resolve_through_resolv_conf_in_the_empty_image() {
    docker::require_docker();
    let mut cleanup = Cleanup::new();
    let image = docker::podvisor_image(&mut cleanup);
    // The host's address on the default bridge, reachable from a container on it.
    let mut ip = std::process::Command::new("ip");
    ip.args(["-4", "-o", "addr", "show", "docker0"]);
    let ip = docker::bounded(ip, std::time::Duration::from_secs(10));
    let bridge = ip
        .expect_ok()
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .unwrap_or_else(|| panic!("no IPv4 address on docker0\n{}", ip.explain()))
        .to_string();
    let (stop, server) = tiny_dns(&bridge);
    let done = cleanup.run(&[
        "--dns",
        &bridge,
        &image,
        "--wait-tcp",
        "sidecar.podvisor-test.example:9",
        "--retries",
        "0",
        "--timeout",
        "20s",
    ]);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let answered = server.join().expect("dns thread");
    assert_eq!(done.code, Some(124), "\n{}", done.explain());
    assert!(
        done.stderr.contains(" 127.0.0.1:9: "),
        "the name did not resolve to the address DNS gave\n{}",
        done.explain()
    );
    assert!(
        answered > 0,
        "the DNS server was never asked\n{}",
        done.explain()
    );
}

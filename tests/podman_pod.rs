//! The Kubernetes examples played by a real pod runtime, podman 4.3 (tests/support/podman.rs
//! says how podman is set up). Each test asserts every container's exit code and that the pod
//! completes, and prints the time from the step's end to the sidecar's end.
//!
//! - examples/kubernetes/job-ordinary-sidecar.yaml, its pod template played as a Pod with
//!   `podman kube play` (podman refuses `kind: Job`): the step exits 0, exits 3, is SIGKILLed
//!   mid-step, the pod is stopped mid-step; on a kubelet-like 0777 emptyDir, and on podman's own
//!   root-owned 0755 one with the step running as UID 100 (as curlimages/curl).
//! - examples/kubernetes/job-native-sidecar.yaml, played step by step the way the kubelet does
//!   it, since podman ignores `restartPolicy: Always` on init containers and refuses their
//!   startupProbe: init container, sidecar, its startupProbe through `podman exec`, step, then
//!   `podman stop` of the sidecar (its image's STOPSIGNAL, SIGKILL after the grace period).

mod support;

use std::fs;
use std::time::Duration;

use serde_json::Value;
use support::podman::{self, Ended, KubePod, PodGuard};

const ORDINARY: &str = "kubernetes/job-ordinary-sidecar.yaml";
const NATIVE: &str = "kubernetes/job-native-sidecar.yaml";
/// Bound on a whole pod's run; one takes about 2 s alone here.
const POD_TIMEOUT: Duration = Duration::from_secs(120);
/// A step that has fetched the page and then runs on until something stops it.
const LONG_STEP: &[&str] = &[
    "sh",
    "-c",
    "curl -sf http://localhost/ >/dev/null && echo step-is-running && exec sleep 300",
];

/// The ordinary-sidecar pod, played: its guard, the containers (init, step, nginx) and how
/// each ended once the pod completed.
struct Ordinary {
    guard: PodGuard,
    init: String,
    step: String,
    nginx: String,
    volume: String,
}

impl Ordinary {
    /// The example's pod with `edit` applied, played; `volume_mode` as in KubePod::from_job.
    fn play(tag: &str, volume_mode: Option<u32>, edit: impl FnOnce(&mut KubePod)) -> Self {
        Self::play_as(tag, volume_mode, edit, KubePod::play)
    }

    /// As `play`, started by `start` (`KubePod::play` or `KubePod::play_in_order`).
    fn play_as(
        tag: &str,
        volume_mode: Option<u32>,
        edit: impl FnOnce(&mut KubePod),
        start: fn(&KubePod),
    ) -> Self {
        let mut guard = PodGuard::new(tag);
        let mut kube = KubePod::from_job(ORDINARY, &mut guard, volume_mode);
        edit(&mut kube);
        let names = kube.container_names();
        let (init, step, nginx) = (
            guard.container("podvisor"),
            guard.container("step"),
            guard.container("nginx"),
        );
        let mut expected = [init.clone(), nginx.clone(), step.clone()];
        let mut names = names;
        names.sort();
        expected.sort();
        assert_eq!(names, expected, "the example's containers");
        let volume = kube.pod["spec"]["volumes"][0]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        start(&kube);
        Self {
            guard,
            init,
            step,
            nginx,
            volume,
        }
    }

    fn explain(&self) -> String {
        self.guard.explain()
    }

    /// Waits for the pod to complete, asserts the exit codes of init, step and nginx, prints
    /// the time from the step's end to nginx's, and returns the step's and nginx's ends.
    fn completes_with(&self, test: &str, codes: [i32; 3]) -> (Ended, Ended) {
        self.guard.wait_completed(POD_TIMEOUT);
        let ends = [&self.init, &self.step, &self.nginx].map(|c| podman::ended(c));
        assert_eq!(
            ends.map(|e| e.code),
            codes,
            "exit codes of init, step, nginx\n{}",
            self.explain()
        );
        let ms = podman::ms_between(ends[1], ends[2]);
        println!("{test}: step end -> sidecar end: {ms:.1} ms");
        // Either may end first when both are stopped at once (`podman pod stop`).
        assert!(
            ms.abs() < 20_000.0,
            "nginx ended {ms:.1} ms after the step\n{}",
            self.explain()
        );
        (ends[1], ends[2])
    }

    /// The step's marker (`/workspace/podvisor/step.json`), if any, read from the volume.
    fn marker(&self) -> Option<Value> {
        let path = self
            .guard
            .volume_dir(&self.volume)
            .join("podvisor/step.json");
        let text = fs::read_to_string(path).ok()?;
        Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("marker {text:?}: {e}")))
    }

    fn assert_logs(&self, container: &str, needle: &str) {
        assert!(
            podman::logs(container).contains(needle),
            "no {needle:?} in {container}'s logs\n{}",
            self.explain()
        );
    }
}

/// The kubelet's emptyDir: 0777, so the step's UID can make the marker's folder.
const KUBELET_EMPTYDIR: Option<u32> = Some(0o777);

#[test]
fn ordinary_sidecar_step_exits_0() {
    let pod = Ordinary::play("ord-0", KUBELET_EMPTYDIR, |_| {});
    pod.completes_with("ordinary_sidecar_step_exits_0", [0, 0, 0]);
    pod.assert_logs(&pod.step, "Welcome to nginx");
    pod.assert_logs(&pod.nginx, "until-condition holds");
    let marker = pod.marker().expect("the step's marker");
    assert_eq!(marker["status"], "exited", "{marker}");
    assert_eq!(marker["exit_code"], 0, "{marker}");
}

#[test]
fn ordinary_sidecar_step_exits_3() {
    let pod = Ordinary::play("ord-3", KUBELET_EMPTYDIR, |kube| {
        kube.replace_after_dashes(
            "step",
            &["sh", "-c", "curl -sf http://localhost/ && exit 3"],
        );
    });
    pod.completes_with("ordinary_sidecar_step_exits_3", [0, 3, 0]);
    pod.assert_logs(&pod.nginx, "until-condition holds");
    let marker = pod.marker().expect("the step's marker");
    assert_eq!(marker["exit_code"], 3, "{marker}");
}

/// SIGKILL leaves no marker; the sidecar sees the lock free and stops nginx all the same.
#[test]
fn ordinary_sidecar_step_sigkilled_mid_step() {
    let pod = Ordinary::play("ord-kill", KUBELET_EMPTYDIR, |kube| {
        kube.replace_after_dashes("step", LONG_STEP);
    });
    podman::wait_for_log(&pod.step, "step-is-running", POD_TIMEOUT, || pod.explain());
    podman::podman_ok(&["kill", "--signal", "KILL", &pod.step]);
    pod.completes_with("ordinary_sidecar_step_sigkilled_mid_step", [0, 137, 0]);
    assert!(pod.marker().is_none(), "a marker after SIGKILL?");
    pod.assert_logs(&pod.nginx, "until-condition holds");
}

/// `podman pod stop`: every container gets its image's STOPSIGNAL at once, TERM for the step
/// (the curl image sets none), QUIT for nginx.
#[test]
fn ordinary_sidecar_pod_stopped_mid_step() {
    let pod = Ordinary::play("ord-stop", KUBELET_EMPTYDIR, |kube| {
        kube.replace_after_dashes("step", LONG_STEP);
    });
    podman::wait_for_log(&pod.step, "step-is-running", POD_TIMEOUT, || pod.explain());
    assert_eq!(podman::stop_signal(&pod.nginx), "3", "nginx's STOPSIGNAL");
    assert_eq!(
        podman::stop_signal(&pod.step),
        "15",
        "the step's STOPSIGNAL"
    );
    let asked = podman::now();
    let stop = podman::podman(
        ["pod", "stop", "-t", "30", &pod.guard.name],
        Duration::from_secs(90),
    );
    assert!(stop.ok(), "{}\n{}", stop.explain(), pod.explain());
    let (step, nginx) = pod.completes_with("ordinary_sidecar_pod_stopped_mid_step", [0, 143, 0]);
    let (to_step, to_nginx) = (
        podman::ms_between(asked, step),
        podman::ms_between(asked, nginx),
    );
    println!(
        "ordinary_sidecar_pod_stopped_mid_step: podman pod stop -> step end {to_step:.1} ms, \
         -> nginx end {to_nginx:.1} ms"
    );
    // Their stop signals stopped them, well before podman's SIGKILL after 30 s.
    assert!(
        to_step < 20_000.0 && to_nginx < 20_000.0,
        "{}",
        pod.explain()
    );
    let marker = pod.marker().expect("the step's marker");
    assert_eq!(marker["status"], "signaled", "{marker}");
    assert_eq!(marker["signal"], "SIGTERM", "{marker}");
}

/// podman's emptyDir is root:root 0755 (so are hostPath and many PVC volumes): the step, UID
/// 100, cannot make /workspace/podvisor; the sidecar's `--until-marker` makes it (1777) as it
/// starts. Started as the kubelet starts containers, in the order listed (nginx first):
/// `podman kube play` starts them all at once, and a step that starts first fails to prepare
/// its marker (README: examples/README.md, "Proven in a pod runtime").
#[test]
fn ordinary_sidecar_on_a_root_owned_0755_volume() {
    let pod = Ordinary::play_as("ord-0755", None, |_| {}, KubePod::play_in_order);
    pod.completes_with("ordinary_sidecar_on_a_root_owned_0755_volume", [0, 0, 0]);
    let dir = pod.guard.volume_dir(&pod.volume);
    let mode = |p: &std::path::Path| {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(p).map(|m| m.mode() & 0o7777).unwrap_or(0)
    };
    assert_eq!(mode(&dir), 0o755, "podman's emptyDir");
    assert_eq!(mode(&dir.join("podvisor")), 0o1777, "the marker folder");
    let marker = pod.marker().expect("the step's marker");
    assert_eq!(marker["exit_code"], 0, "{marker}");
}

/// The native-sidecar example, as the kubelet plays it.
struct Native {
    guard: PodGuard,
    spec: Value,
    volume: String,
    init: String,
    sidecar: String,
    step: String,
}

impl Native {
    fn new(tag: &str) -> Self {
        let job = podman::example_json(NATIVE);
        let spec = job["spec"]["template"]["spec"].clone();
        let mut guard = PodGuard::new(tag);
        let volume = guard.volume("workspace", 0o777);
        let (init, sidecar, step) = (
            guard.container("podvisor"),
            guard.container("nginx"),
            guard.container("step"),
        );
        podman::podman_ok(&[
            "pod",
            "create",
            "--name",
            &guard.name,
            "--network",
            "none",
            // As kube play does: the infra container ends with the last container, so the pod
            // completes.
            "--exit-policy",
            "stop",
        ]);
        Self {
            guard,
            spec,
            volume,
            init,
            sidecar,
            step,
        }
    }

    fn explain(&self) -> String {
        self.guard.explain()
    }

    /// `podman run --pod` arguments for the example's container `name` as `container`, from
    /// `image`, its command (Kubernetes' `command` replaces the ENTRYPOINT) or args.
    fn run_args(
        &self,
        name: &str,
        container: &str,
        image: &str,
        command: &[String],
    ) -> Vec<String> {
        let c = podman::container(&self.spec, name);
        let mut args: Vec<String> = ["--pod", &self.guard.name, "--name", container]
            .map(String::from)
            .to_vec();
        for m in c["volumeMounts"].as_array().into_iter().flatten() {
            let path = m["mountPath"].as_str().unwrap_or_default();
            args.extend(["-v".into(), format!("{}:{path}", self.volume)]);
        }
        if let Some((entry, rest)) = command.split_first() {
            args.extend(["--entrypoint".into(), entry.clone(), image.into()]);
            args.extend(rest.iter().cloned());
        } else {
            args.push(image.into());
            args.extend(podman::strings(&c["args"]));
        }
        args
    }

    fn command(&self, name: &str) -> Vec<String> {
        podman::strings(&podman::container(&self.spec, name)["command"])
    }

    /// The plain init container: runs to its end, exit 0.
    fn init_container(&self) {
        let images = podman::images();
        let mut args = vec!["run".to_string()];
        args.extend(self.run_args("podvisor", &self.init, &images.podvisor, &[]));
        let done = podman::podman(&args, Duration::from_secs(120));
        assert!(done.ok(), "{}\n{}", done.explain(), self.explain());
    }

    /// The sidecar (from `image`, running `command`), then its startupProbe through `podman
    /// exec` every periodSeconds until it passes, at most failureThreshold times.
    fn start_sidecar(&self, image: &str, command: &[String]) {
        let c = podman::container(&self.spec, "nginx");
        assert_eq!(c["restartPolicy"], "Always", "a native sidecar");
        let mut args = vec!["run".to_string(), "-d".into()];
        args.extend(self.run_args("nginx", &self.sidecar, image, command));
        podman::podman_ok(&args);
        let probe = &c["startupProbe"];
        let period = probe["periodSeconds"].as_u64().unwrap_or(10);
        let tries = probe["failureThreshold"].as_u64().unwrap_or(3);
        let mut exec = vec!["exec".to_string(), self.sidecar.clone()];
        exec.extend(podman::strings(&probe["exec"]["command"]));
        for attempt in 1..=tries {
            let run = podman::podman(&exec, Duration::from_secs(60));
            if run.ok() {
                println!("startupProbe passed at attempt {attempt}");
                return;
            }
            assert_eq!(run.code, Some(124), "{}\n{}", run.explain(), self.explain());
            std::thread::sleep(Duration::from_secs(period));
        }
        panic!("startupProbe failed {tries} times\n{}", self.explain());
    }

    /// The step, to its end: its exit code.
    fn run_step(&self) -> i32 {
        let images = podman::images();
        let mut args = vec!["run".to_string(), "-d".into()];
        args.extend(self.run_args("step", &self.step, &images.curl, &self.command("step")));
        podman::podman_ok(&args);
        let wait = podman::podman(["wait", &self.step], POD_TIMEOUT);
        assert!(wait.ok(), "{}\n{}", wait.explain(), self.explain());
        podman::ended(&self.step).code
    }

    /// The kubelet's part once the main containers have ended: `podman stop` sends the
    /// sidecar's STOPSIGNAL, then SIGKILL after the pod's grace period. Then the pod completes;
    /// returns the sidecar's end, after printing the time from the step's end.
    fn stop_sidecar(&self, test: &str) -> Ended {
        let grace = self.spec["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap_or(u64::from(podman::K8S_GRACE_SECONDS))
            .to_string();
        let asked = podman::now();
        let stop = podman::podman(
            ["stop", "-t", &grace, &self.sidecar],
            Duration::from_secs(120),
        );
        assert!(stop.ok(), "{}\n{}", stop.explain(), self.explain());
        self.guard.wait_completed(POD_TIMEOUT);
        let (step, sidecar) = (podman::ended(&self.step), podman::ended(&self.sidecar));
        let ms = podman::ms_between(step, sidecar);
        let stopping = podman::ms_between(asked, sidecar);
        println!(
            "{test}: step end -> sidecar end: {ms:.1} ms (the test's podman calls included); \
             podman stop -> sidecar end: {stopping:.1} ms (podman stop returned after {:?})",
            stop.elapsed
        );
        // The STOPSIGNAL stopped it, well before the runtime's SIGKILL after the grace period.
        assert!(
            (0.0..20_000.0).contains(&ms) && stopping < 20_000.0,
            "the sidecar ended {ms:.1} ms after the step, {stopping:.1} ms after podman stop\n{}",
            self.explain()
        );
        sidecar
    }

    /// The whole native lifecycle with the sidecar from `image` running `command` (its
    /// STOPSIGNAL `stopsignal`, a number): init container and step exit 0, the pod completes;
    /// returns the sidecar's end.
    fn lifecycle(&self, test: &str, image: &str, command: &[String], stopsignal: &str) -> Ended {
        self.init_container();
        self.start_sidecar(image, command);
        assert_eq!(
            podman::stop_signal(&self.sidecar),
            stopsignal,
            "the sidecar's STOPSIGNAL"
        );
        assert_eq!(self.run_step(), 0, "the step\n{}", self.explain());
        let sidecar = self.stop_sidecar(test);
        assert_eq!(podman::ended(&self.init).code, 0, "{}", self.explain());
        sidecar
    }
}

/// The example as it is: nginx under `--sidecar --stop-signal=QUIT`, stopped with the nginx
/// image's STOPSIGNAL (QUIT), exits 0.
#[test]
fn native_sidecar_played_step_by_step() {
    let pod = Native::new("native");
    let images = podman::images();
    let sidecar = pod.lifecycle(
        "native_sidecar_played_step_by_step",
        &images.nginx,
        &pod.command("nginx"),
        "3",
    );
    assert_eq!(sidecar.code, 0, "the sidecar\n{}", pod.explain());
    assert!(
        podman::logs(&pod.step).contains("Welcome to nginx"),
        "{}",
        pod.explain()
    );
}

/// An image whose STOPSIGNAL is SIGINT (as the official postgres image) and whose program
/// dies of it (a shell wrapper around the server, no `--stop-signal`): that INT is the stop
/// request, so the sidecar exits 0, not 130.
#[test]
fn native_sidecar_dying_of_its_images_sigint_exits_0() {
    let pod = Native::new("native-int");
    let images = podman::images();
    let command: Vec<String> = [
        "/workspace/bin/podvisor",
        "--sidecar",
        "--grace-period=10s",
        "--",
        "sh",
        "-c",
        "nginx -g 'daemon off;' & wait",
    ]
    .map(String::from)
    .to_vec();
    let sidecar = pod.lifecycle(
        "native_sidecar_dying_of_its_images_sigint_exits_0",
        &images.interrupt,
        &command,
        "2",
    );
    assert_eq!(sidecar.code, 0, "the sidecar\n{}", pod.explain());
}

//! `--proxy NAME[:READY_PORT[:SHUTDOWN_PORT]]`: a mesh or proxy sidecar's readiness wait and
//! shutdown call, from one word. README "Shutdown calls for meshes and proxies" cites where
//! each endpoint comes from.

/// One known proxy: where it says it is ready, and where it is asked to quit.
struct Preset {
    name: &'static str,
    ready_port: u16,
    ready_path: &'static str,
    shutdown_port: u16,
    shutdown_path: &'static str,
}

const PRESETS: [Preset; 5] = [
    // pilot-agent: Envoy's readiness on the health port, quitquitquit on the status port.
    Preset {
        name: "istio",
        ready_port: 15021,
        ready_path: "/healthz/ready",
        shutdown_port: 15020,
        shutdown_path: "/quitquitquit",
    },
    // Envoy's admin interface (no default port of its own; 15000 is Istio's and the common one).
    Preset {
        name: "envoy",
        ready_port: 15000,
        ready_path: "/ready",
        shutdown_port: 15000,
        shutdown_path: "/quitquitquit",
    },
    // The proxy's admin server; /shutdown answers only with the shutdown endpoint enabled.
    Preset {
        name: "linkerd",
        ready_port: 4191,
        ready_path: "/ready",
        shutdown_port: 4191,
        shutdown_path: "/shutdown",
    },
    // Cloud SQL Auth Proxy v2: --health-check on --http-port, --quitquitquit on --admin-port.
    Preset {
        name: "cloudsql",
        ready_port: 9090,
        ready_path: "/readiness",
        shutdown_port: 9091,
        shutdown_path: "/quitquitquit",
    },
    // daprd's HTTP API port.
    Preset {
        name: "dapr",
        ready_port: 3500,
        ready_path: "/v1.0/healthz/outbound",
        shutdown_port: 3500,
        shutdown_path: "/v1.0/shutdown",
    },
];

/// A preset with its ports: the readiness URL (a wait target) and the shutdown URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    /// `http://localhost:PORT/PATH`, for the wait-target parser.
    pub ready: String,
    /// `http://localhost:PORT/PATH`, for the shutdown calls.
    pub shutdown: String,
}

/// Parses `NAME`, `NAME:READY_PORT` or `NAME:READY_PORT:SHUTDOWN_PORT` (an empty port keeps
/// the preset's). When a preset serves both calls on one port (envoy, linkerd, dapr), a new
/// ready port moves the shutdown call with it.
pub fn parse(text: &str) -> Result<Proxy, String> {
    let mut parts = text.trim().split(':');
    let name = parts.next().unwrap_or_default().to_ascii_lowercase();
    let names = || {
        PRESETS
            .iter()
            .map(|p| p.name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let preset = PRESETS
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| format!("unknown proxy '{name}' (known: {})", names()))?;
    let ready_port = port(parts.next(), "ready")?;
    let shutdown_port = port(parts.next(), "shutdown")?;
    if parts.next().is_some() {
        return Err("expected NAME[:READY_PORT[:SHUTDOWN_PORT]], e.g. istio:15021:15020".into());
    }
    let ready = ready_port.unwrap_or(preset.ready_port);
    let one_port = preset.ready_port == preset.shutdown_port;
    let shutdown = shutdown_port.unwrap_or(if one_port {
        ready
    } else {
        preset.shutdown_port
    });
    Ok(Proxy {
        ready: format!("http://localhost:{ready}{}", preset.ready_path),
        shutdown: format!("http://localhost:{shutdown}{}", preset.shutdown_path),
    })
}

/// An optional port: absent or empty keeps the preset's.
fn port(text: Option<&str>, which: &str) -> Result<Option<u16>, String> {
    match text.map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => t
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| t.parse::<u16>().ok())
            .flatten()
            .filter(|&p| p != 0)
            .map(Some)
            .ok_or_else(|| format!("the {which} port '{t}' must be a number from 1 to 65535")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_follow_the_table() {
        let p = |t: &str| parse(t).unwrap();
        assert_eq!(
            p("istio"),
            Proxy {
                ready: "http://localhost:15021/healthz/ready".into(),
                shutdown: "http://localhost:15020/quitquitquit".into(),
            }
        );
        assert_eq!(p("envoy").shutdown, "http://localhost:15000/quitquitquit");
        assert_eq!(p("linkerd").ready, "http://localhost:4191/ready");
        assert_eq!(p("linkerd").shutdown, "http://localhost:4191/shutdown");
        assert_eq!(p("cloudsql").ready, "http://localhost:9090/readiness");
        assert_eq!(p("cloudsql").shutdown, "http://localhost:9091/quitquitquit");
        assert_eq!(
            p("dapr").ready,
            "http://localhost:3500/v1.0/healthz/outbound"
        );
        assert_eq!(p("dapr").shutdown, "http://localhost:3500/v1.0/shutdown");
        assert_eq!(p(" Istio "), p("istio"));
    }

    #[test]
    fn ports_can_be_changed() {
        let p = |t: &str| parse(t).unwrap();
        assert_eq!(
            p("istio:25021:25020"),
            Proxy {
                ready: "http://localhost:25021/healthz/ready".into(),
                shutdown: "http://localhost:25020/quitquitquit".into(),
            }
        );
        // Two ports: a new ready port leaves the shutdown port alone, and the other way round.
        assert_eq!(
            p("istio:25021").shutdown,
            "http://localhost:15020/quitquitquit"
        );
        assert_eq!(
            p("istio::25020").ready,
            "http://localhost:15021/healthz/ready"
        );
        assert_eq!(
            p("istio::25020").shutdown,
            "http://localhost:25020/quitquitquit"
        );
        // One port: it moves both.
        assert_eq!(
            p("envoy:9901").shutdown,
            "http://localhost:9901/quitquitquit"
        );
        assert_eq!(
            p("envoy:9901:9902").shutdown,
            "http://localhost:9902/quitquitquit"
        );
        assert_eq!(
            p("cloudsql:9190").shutdown,
            "http://localhost:9091/quitquitquit"
        );
    }

    #[test]
    fn bad_presets_are_named() {
        let e = parse("istoi").unwrap_err();
        assert!(e.contains("istoi") && e.contains("istio"), "{e}");
        for bad in [
            "istio:0",
            "istio:x",
            "istio:1:2:3",
            "istio:70000",
            "envoy:+1",
            "",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
